"""The TD3 RLModule: a deterministic actor ``pi``, twin critics ``q`` and their targets.

Everything the TD3 learner needs from a module is five methods (all tensors on the
module's device, batch-first):

* :meth:`TD3TorchRLModule.pi` ``(obs) -> actions`` in the action bounds,
* :meth:`TD3TorchRLModule.q` ``(obs, actions) -> (q1, q2)``, each of shape ``(B,)``,
* :meth:`TD3TorchRLModule.pi_target` and :meth:`TD3TorchRLModule.q_target`, the same
  through the target (Polyak-averaged) copies,
* :meth:`TD3TorchRLModule.actor_parameters` / :meth:`TD3TorchRLModule.critic_parameters`
  for the two optimizers,

plus the action bounds ``action_low``, ``action_high`` and ``action_scale`` (half the
range). A custom network (e.g. one network shared by all services of an app) plugs in by
subclassing and overriding :meth:`~TD3TorchRLModule.build_actor` and
:meth:`~TD3TorchRLModule.build_critic`; the rest (targets, bounds, exploration) is
inherited.

Actions live in the module's action space. With RLlib's default
``normalize_actions=True`` that is ``[-1, 1]`` per dimension (RLlib un-squashes to the
env's bounds before stepping the env); otherwise it is the env's ``Box`` bounds. Either way
the noise scales of TD3 are fractions of ``action_scale``, as in CleanRL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, QNetAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

__all__ = ["MLPActor", "MLPCritic", "TD3ModelConfig", "TD3TorchRLModule", "mlp"]


@dataclasses.dataclass(frozen=True)
class TD3ModelConfig:
    """The module's settings, read from ``model_config`` (other keys are ignored).

    The first three are the network (defaults: the DRPC paper's teacher, 400-300 with
    LayerNorm); the last three are filled in by :class:`~drpc.algorithms.td3.TD3Config`.
    """

    actor_hiddens: tuple[int, ...] = (400, 300)
    """Hidden layer widths of the actor MLP."""
    critic_hiddens: tuple[int, ...] = (400, 300)
    """Hidden layer widths of each critic MLP."""
    layer_norm: bool = True
    """Insert a LayerNorm between each hidden Linear layer and its ReLU."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise, as a fraction of ``action_scale``."""
    learning_starts: int = 0
    """Env steps (global, as RLlib passes ``t``) during which exploration is uniform random."""
    normalize_actions: bool = True
    """True: the module acts in ``[-1, 1]`` and RLlib rescales to the env's bounds."""

    @classmethod
    def from_model_config(cls, model_config: dict[str, Any] | None) -> TD3ModelConfig:
        """Pick this dataclass's keys out of an RLModule ``model_config`` dict."""
        given = dict(model_config or {})
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in given and given[field.name] is not None:
                value = given[field.name]
                kwargs[field.name] = tuple(value) if field.name.endswith("hiddens") else value
        return cls(**kwargs)


def mlp(in_dim: int, hiddens: Sequence[int], out_dim: int, layer_norm: bool) -> nn.Sequential:
    """``Linear -> [LayerNorm] -> ReLU`` per hidden width, then a final ``Linear``."""
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hiddens:
        layers.append(nn.Linear(width, hidden))
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        layers.append(nn.ReLU())
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _flat_dim(space: gym.Space) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(
            f"The default TD3 networks need Box spaces, got {space}; override "
            "build_actor/build_critic for other observation spaces."
        )
    return int(np.prod(space.shape))


class MLPActor(nn.Module):
    """Deterministic policy network: observation -> tanh-squashed action in ``[-1, 1]``."""

    def __init__(self, obs_dim: int, act_dim: int, hiddens: Sequence[int], layer_norm: bool):
        super().__init__()
        self.net = mlp(obs_dim, hiddens, act_dim, layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, *obs_shape) -> (B, act_dim)`` in ``[-1, 1]``."""
        return torch.tanh(self.net(obs.flatten(1)))


class MLPCritic(nn.Module):
    """Action-value network: ``(observation, action) -> Q``."""

    def __init__(self, obs_dim: int, act_dim: int, hiddens: Sequence[int], layer_norm: bool):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hiddens, 1, layer_norm)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B, *obs_shape), (B, act_dim) -> (B,)``, in units of return."""
        return self.net(torch.cat([obs.flatten(1), actions.flatten(1)], dim=-1)).squeeze(-1)


class TD3TorchRLModule(TorchRLModule, InferenceOnlyAPI, TargetNetworkAPI, QNetAPI):
    """Actor ``pi``, twin critics ``q = (q1, q2)`` and targets of both (TD3, Fujimoto 2018).

    Forward passes:

    * ``_forward_inference``: ``pi(obs)``, deterministic (evaluation, serving).
    * ``_forward_exploration``: ``pi(obs) + N(0, (exploration_noise * action_scale)^2)``
      clipped to the bounds, or uniform random actions while ``t < learning_starts``. It
      returns ``Columns.ACTIONS``, so RLlib's ``GetActions`` connector uses them as is.
    * ``_forward_train``: nothing; :class:`~drpc.algorithms.td3.TD3TorchLearner` calls
      ``pi``/``q``/``pi_target``/``q_target`` itself because the TD3 loss needs them with
      different gradient flows (no-grad targets, frozen critics for the actor loss).

    Override :meth:`build_actor` and :meth:`build_critic` for custom networks.
    """

    framework: str = "torch"

    # -- construction ---------------------------------------------------------------------

    def setup(self) -> None:
        """Build the actor, and (unless ``inference_only``) the two critics."""
        self.td3_config = TD3ModelConfig.from_model_config(self.model_config)
        low, high = self._action_bounds()
        # Not persistent: they follow from the spaces and must move with `.to(device)`.
        self.register_buffer("action_low", low, persistent=False)
        self.register_buffer("action_high", high, persistent=False)
        self.register_buffer("action_scale", (high - low) / 2.0, persistent=False)
        self.register_buffer("action_bias", (high + low) / 2.0, persistent=False)

        self.actor = self.build_actor(self.observation_space, self.action_space)
        if not self.inference_only:
            self.critic1 = self.build_critic(self.observation_space, self.action_space)
            self.critic2 = self.build_critic(self.observation_space, self.action_space)

    def build_actor(self, obs_space: gym.Space, action_space: gym.spaces.Box) -> nn.Module:
        """The actor network: ``forward(obs) -> (B, *action_shape)`` in ``[-1, 1]``.

        The output must be squashed to ``[-1, 1]`` (e.g. by tanh); :meth:`pi` maps it onto
        the action bounds. Override for a custom network.
        """
        cfg = self.td3_config
        return MLPActor(
            _flat_dim(obs_space), _flat_dim(action_space), cfg.actor_hiddens, cfg.layer_norm
        )

    def build_critic(self, obs_space: gym.Space, action_space: gym.spaces.Box) -> nn.Module:
        """One critic network: ``forward(obs, actions) -> (B,)``; called twice (twin Qs).

        ``actions`` are in the module's action bounds. Override for a custom network; the
        two calls must return networks with separate parameters.
        """
        cfg = self.td3_config
        return MLPCritic(
            _flat_dim(obs_space), _flat_dim(action_space), cfg.critic_hiddens, cfg.layer_norm
        )

    def _action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        space = self.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"TD3 needs a continuous (Box) action space, got {space}.")
        if self.td3_config.normalize_actions:
            low = -np.ones(space.shape, dtype=np.float32)
            high = np.ones(space.shape, dtype=np.float32)
        else:
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise ValueError(
                    f"TD3 needs finite action bounds (or normalize_actions=True): {space}."
                )
            low = space.low.astype(np.float32)
            high = space.high.astype(np.float32)
        return torch.as_tensor(low), torch.as_tensor(high)

    # -- the networks, as the learner sees them ------------------------------------------

    def pi(self, obs: Any) -> torch.Tensor:
        """Deterministic action ``mu(obs)`` in ``[action_low, action_high]``."""
        return self.action_bias + self.action_scale * self.actor(obs)

    def q(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Twin action values ``(Q1(obs, a), Q2(obs, a))``, each ``(B,)``."""
        return self.critic1(obs, actions), self.critic2(obs, actions)

    def pi_target(self, obs: Any) -> torch.Tensor:
        """Target-actor action ``mu'(obs)`` in the bounds (no smoothing noise)."""
        return self.action_bias + self.action_scale * self.actor_target(obs)

    def q_target(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Twin target action values ``(Q1'(obs, a), Q2'(obs, a))``, each ``(B,)``."""
        return self.critic1_target(obs, actions), self.critic2_target(obs, actions)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters trained by the actor ("policy") optimizer."""
        return self.actor.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters trained by the critic optimizer (both critics)."""
        yield from self.critic1.parameters()
        yield from self.critic2.parameters()

    # -- TargetNetworkAPI -------------------------------------------------------------------

    def make_target_networks(self) -> None:
        """Create frozen copies ``actor_target``, ``critic1_target``, ``critic2_target``."""
        self.actor_target = make_target_network(self.actor)
        self.critic1_target = make_target_network(self.critic1)
        self.critic2_target = make_target_network(self.critic2)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, target)`` pairs, in the order the soft update walks them."""
        return [
            (self.actor, self.actor_target),
            (self.critic1, self.critic1_target),
            (self.critic2, self.critic2_target),
        ]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Target actions at ``batch[OBS]`` and the twin target Qs of those actions."""
        actions = self.pi_target(batch[Columns.OBS])
        q1, q2 = self.q_target(batch[Columns.OBS], actions)
        return {Columns.ACTIONS: actions, "q1_target": q1, "q2_target": q2}

    # -- QNetAPI ----------------------------------------------------------------------------

    def compute_q_values(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Twin Qs of ``batch[ACTIONS]`` at ``batch[OBS]``."""
        q1, q2 = self.q(batch[Columns.OBS], batch[Columns.ACTIONS])
        return {"q1": q1, "q2": q2}

    # -- InferenceOnlyAPI -------------------------------------------------------------------

    def get_non_inference_attributes(self) -> list[str]:
        """What env runners (inference-only copies) do not need: critics and targets."""
        return ["critic1", "critic2", "actor_target", "critic1_target", "critic2_target"]

    # -- forward passes ---------------------------------------------------------------------

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return {Columns.ACTIONS: self.pi(batch[Columns.OBS])}

    def _forward_exploration(
        self, batch: dict[str, Any], t: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        with torch.no_grad():
            actions = self.pi(batch[Columns.OBS])
            if t is not None and t < self.td3_config.learning_starts:
                # Before learning starts: uniform random actions over the bounds.
                uniform = torch.rand_like(actions)
                return {Columns.ACTIONS: self.action_low + uniform * (2 * self.action_scale)}
            # a = clip(mu(s) + eps, low, high),  eps ~ N(0, (sigma * scale)^2)
            sigma = self.td3_config.exploration_noise * self.action_scale
            noisy = actions + sigma * torch.randn_like(actions)
            return {Columns.ACTIONS: torch.clamp(noisy, self.action_low, self.action_high)}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # The TD3 learner calls pi/q/pi_target/q_target itself (see class docstring).
        return {}

    def get_initial_state(self) -> dict:
        return {}
