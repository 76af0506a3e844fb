"""The teacher as an RLlib RLModule: TD3 with the per-service shared networks.

Plug into :class:`~drpc.algorithms.td3.TD3Config` with
``.rl_module(rl_module_spec=RLModuleSpec(module_class=PerServiceTD3Module,
model_config={"teacher_hidden": [128, 128]}))``. Observations are the env's (S, F) feature
rows and actions its (S, 3) matrix, for any S.
"""

from __future__ import annotations

import gymnasium as gym
from torch import nn

from drpc.algorithms.td3 import TD3TorchRLModule
from drpc.teacher.networks import PerServiceActor, PerServiceCritic

__all__ = ["PerServiceTD3Module", "DEFAULT_HIDDEN"]

DEFAULT_HIDDEN = (128, 128)


def _dims(obs_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 2):
        raise ValueError(f"the teacher needs (services, features) observations, got {obs_space}")
    if not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 2):
        raise ValueError(f"the teacher needs (services, knobs) actions, got {action_space}")
    if obs_space.shape[0] != action_space.shape[0]:
        raise ValueError(
            f"observation rows ({obs_space.shape[0]}) and action rows ({action_space.shape[0]}) "
            "must both be the services"
        )
    return int(obs_space.shape[1]), int(action_space.shape[1])


class PerServiceTD3Module(TD3TorchRLModule):
    """TD3 module whose actor and twin critics share weights across services."""

    def _hidden(self) -> tuple[int, ...]:
        return tuple(self.model_config.get("teacher_hidden", DEFAULT_HIDDEN))

    def build_actor(self, obs_space: gym.Space, action_space: gym.spaces.Box) -> nn.Module:
        n_features, n_actions = _dims(obs_space, action_space)
        return PerServiceActor(n_features, n_actions, self._hidden(), layer_norm=True)

    def build_critic(self, obs_space: gym.Space, action_space: gym.spaces.Box) -> nn.Module:
        n_features, n_actions = _dims(obs_space, action_space)
        return PerServiceCritic(n_features, n_actions, self._hidden(), layer_norm=True)

    # -- per-service critics (used by the learner when the batch has component rewards) --

    def q_components(self, obs, actions):
        """Twin per-service Qs, each (B, S)."""
        return self.critic1.per_service(obs, actions), self.critic2.per_service(obs, actions)

    def q_components_target(self, obs, actions):
        """Twin per-service target Qs, each (B, S)."""
        return (
            self.critic1_target.per_service(obs, actions),
            self.critic2_target.per_service(obs, actions),
        )
