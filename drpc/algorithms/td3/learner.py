"""The TD3 update (Fujimoto et al. 2018, "Addressing Function Approximation Error in
Actor-Critic Methods"), one gradient step per call, in RLlib's Learner pipeline.

Per train batch ``(s, a, r, s', d, n)`` drawn uniformly from the replay buffer:

1. Target-policy smoothing:  ``a' = clip(mu'(s') + clip(eps, -c, c), low, high)``,
   ``eps ~ N(0, (policy_noise * scale)^2)``, ``c = noise_clip * scale``.
2. Clipped double-Q target:  ``y = r + gamma^n * (1 - d) * min(Q1'(s', a'), Q2'(s', a'))``.
3. Critic loss:  ``MSE(Q1(s, a), y) + MSE(Q2(s, a), y)``, every step.
4. Delayed actor loss:  ``-mean(Q1(s, mu(s)))``, every ``policy_frequency``-th step, with
   the critics frozen so that this loss only moves the actor. With ``actor_anchor_weight``
   w > 0: ``-mean(Q1) / mean|Q1| + w * mean((mu(s) - mu'(s))^2)`` (a trust region around the
   target actor mu'; the Q term normalised as in TD3+BC, so w does not depend on reward scale).
5. Soft target update:  ``theta' <- tau * theta + (1 - tau) * theta'`` for the actor and
   both critics, right after each actor update.

Per-component critics (``TD3Config.component_rewards_key``, with a module that has
``q_components``, such as DRPC's per-service teacher): steps 2-3 run per component i (a
service) on its own reward, ``y_i = r_i + gamma * (1 - d) * min(Q1'_i, Q2'_i)``, MSE over
(B, K); the actor still maximises ``Q1 = mean_i Q1_i`` (the components' rewards sum to ``r``).
With ``actor_update_starts``, step 4 waits for that many critic updates (step 5 does not).

Steps 1-4 are :meth:`TD3TorchLearner.compute_loss_for_module`; the single backward pass of
``critic_loss (+ actor_loss)`` is :meth:`TD3TorchLearner.compute_gradients`; the optimizer
steps and step 5 are :meth:`TD3TorchLearner.apply_gradients`. One deviation from the
reference code: the actor loss of step 4 uses the critics as they were *before* this step's
critic update (both losses share one backward pass), one gradient step of staleness.

The learner only touches its module through ``pi``, ``q``, ``pi_target``, ``q_target``,
``actor_parameters``, ``critic_parameters``, ``get_target_network_pairs`` and the bounds
``action_low``/``action_high``/``action_scale`` (see
:class:`~drpc.algorithms.td3.TD3TorchRLModule`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.core.rl_module.apis import QNetAPI, TargetNetworkAPI
from ray.rllib.utils.typing import ModuleID, ParamDict, StateDict, TensorType

if TYPE_CHECKING:
    from drpc.algorithms.td3.config import TD3Config
from drpc.algorithms.td3.replay_buffer import COMPONENT_REWARDS

__all__ = [
    "ACTOR_LOSS_KEY",
    "CRITIC_LOSS_KEY",
    "TD3TorchLearner",
    "clipped_double_q_target",
    "frozen",
    "target_policy_smoothing",
]

CRITIC_LOSS_KEY = "critic_loss"
ACTOR_LOSS_KEY = "actor_loss"
NUM_CRITIC_UPDATES_KEY = "num_critic_updates"
NUM_ACTOR_UPDATES_KEY = "num_actor_updates"


def target_policy_smoothing(
    target_actions: torch.Tensor,
    *,
    noise_std: torch.Tensor | float,
    noise_clip: torch.Tensor | float,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
) -> torch.Tensor:
    """``clip(a' + clip(eps, -noise_clip, noise_clip), low, high)``, ``eps ~ N(0, noise_std^2)``.

    All arguments are in action units (broadcast against ``target_actions``).
    """
    noise = torch.randn_like(target_actions) * noise_std
    noise = torch.clamp(noise, -noise_clip, noise_clip)
    return torch.clamp(target_actions + noise, low, high)


def clipped_double_q_target(
    rewards: torch.Tensor,
    terminateds: torch.Tensor,
    q1_next: torch.Tensor,
    q2_next: torch.Tensor,
    discount: torch.Tensor | float,
) -> torch.Tensor:
    """``r + discount * (1 - terminated) * min(q1', q2')``, all of shape ``(B,)``.

    ``discount`` is ``gamma ** n`` for n-step returns (``r`` is then the discounted n-step
    reward sum). Only termination masks the bootstrap; truncation (time limits) does not.
    """
    not_done = 1.0 - terminateds.float()
    return rewards + discount * not_done * torch.min(q1_next, q2_next)


@contextlib.contextmanager
def frozen(params: Iterable[torch.nn.Parameter]) -> Iterator[None]:
    """Within the block, ``params`` record no gradient (activations still do).

    Used for the actor loss: gradients flow through the critic's activations into the
    actor, but not into the critic's weights.
    """
    changed = [p for p in params if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)


class TD3TorchLearner(TorchLearner):
    """TD3 on RLlib's new API stack: optimizers "critic" and "actor" per module.

    ``num_learners > 1`` averages gradients across learners with ``torch.distributed``
    (the process group RLlib sets up) instead of DDP, because DDP allows one backward per
    forward and all parameters used, while the delayed actor update leaves the actor
    without gradient on most steps.
    """

    # -- setup ------------------------------------------------------------------------------

    def build(self) -> None:
        """Build module and optimizers, sync initial weights across learners, make targets."""
        super().build()
        self._num_critic_updates: dict[ModuleID, int] = defaultdict(int)
        self._target_update_due: set[ModuleID] = set()
        self._broadcast_initial_weights()
        self.module.foreach_module(
            lambda mid, mod: (
                mod.unwrapped().make_target_networks()
                if isinstance(mod.unwrapped(), TargetNetworkAPI)
                else None
            )
        )

    def add_module(self, *, module_id: ModuleID, **kwargs: Any) -> Any:
        spec = super().add_module(module_id=module_id, **kwargs)
        module = self.module[module_id].unwrapped()
        if isinstance(module, TargetNetworkAPI):
            module.make_target_networks()
        return spec

    def configure_optimizers_for_module(
        self, module_id: ModuleID, config: TD3Config | None = None
    ) -> None:
        """Adam for the twin critics (``critic_lr``) and for the actor (``actor_lr``)."""
        module = self.module[module_id].unwrapped()
        critic_params = list(module.critic_parameters())
        actor_params = list(module.actor_parameters())
        shared = {id(p) for p in critic_params} & {id(p) for p in actor_params}
        if shared:
            raise ValueError(
                f"Module {module_id!r}: actor and critics share {len(shared)} parameter "
                "tensors; TD3 trains them with separate optimizers, keep them disjoint."
            )
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="critic",
            optimizer=torch.optim.Adam(critic_params),
            params=critic_params,
            lr_or_lr_schedule=config.critic_lr,
        )
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="actor",
            optimizer=torch.optim.Adam(actor_params),
            params=actor_params,
            lr_or_lr_schedule=config.actor_lr,
        )

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [QNetAPI, TargetNetworkAPI]

    # -- the loss ---------------------------------------------------------------------------

    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: TD3Config,
        batch: dict[str, Any],
        fwd_out: dict[str, TensorType],
    ) -> TensorType:
        """Critic loss every call, plus the actor loss every ``policy_frequency``-th call."""
        module = self.module[module_id].unwrapped()
        obs, actions = batch[Columns.OBS], batch[Columns.ACTIONS]
        rewards, next_obs = batch[Columns.REWARDS], batch[Columns.NEXT_OBS]
        terminateds = batch[Columns.TERMINATEDS]
        discount = config.gamma ** batch["n_step"] if "n_step" in batch else config.gamma

        # 1-2. Target: smoothed target-policy action, min over the twin target critics.
        with torch.no_grad():
            next_actions = target_policy_smoothing(
                module.pi_target(next_obs),
                noise_std=config.policy_noise * module.action_scale,
                noise_clip=config.noise_clip * module.action_scale,
                low=module.action_low,
                high=module.action_high,
            )
            per_component = COMPONENT_REWARDS in batch and hasattr(module, "q_components")
            if per_component:  # one TD target per component (service): r_i + g * min Q'_i
                rewards = batch[COMPONENT_REWARDS]
                q1_next, q2_next = module.q_components_target(next_obs, next_actions)
                terminateds = terminateds.unsqueeze(-1)
            else:
                q1_next, q2_next = module.q_target(next_obs, next_actions)
            target_q = clipped_double_q_target(rewards, terminateds, q1_next, q2_next, discount)

        # 3. Both critics regress onto the same target.
        q1, q2 = module.q_components(obs, actions) if per_component else module.q(obs, actions)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        loss = critic_loss
        self._num_critic_updates[module_id] += 1

        # 4. Delayed policy update: maximise Q1(s, mu(s)) with the critics frozen.
        n_updates = self._num_critic_updates[module_id]
        if n_updates % config.policy_frequency == 0:
            self._target_update_due.add(module_id)  # soft target update after this step
            if n_updates > config.actor_update_starts:  # (warm-up: critics only)
                pi = module.pi(obs)
                with frozen(module.critic_parameters()):
                    q1_pi, _ = module.q(obs, pi)
                actor_loss = -q1_pi.mean()
                if config.actor_anchor_weight > 0:  # trust region around the target actor
                    with torch.no_grad():
                        anchor = module.pi_target(obs)
                    drift = ((pi - anchor) / module.action_scale).pow(2).mean()
                    q_scale = q1_pi.abs().mean().detach().clamp_min(1e-6)
                    actor_loss = actor_loss / q_scale + config.actor_anchor_weight * drift
                    self.metrics.log_value((module_id, "actor_drift"), drift, window=1)
                loss = loss + actor_loss
                self.metrics.log_value((module_id, ACTOR_LOSS_KEY), actor_loss, window=1)
                self.metrics.log_value((module_id, NUM_ACTOR_UPDATES_KEY), 1, reduce="lifetime_sum")

        self.metrics.log_dict(
            {
                CRITIC_LOSS_KEY: critic_loss,
                "q1_mean": q1.mean(),
                "q2_mean": q2.mean(),
                "target_q_mean": target_q.mean(),
                "td_error_mean": (q1 - target_q).abs().mean(),
            },
            key=module_id,
            window=1,
        )
        self.metrics.log_value((module_id, NUM_CRITIC_UPDATES_KEY), 1, reduce="lifetime_sum")
        return loss

    # -- gradients, optimizer steps, target update ------------------------------------------

    def compute_gradients(
        self, loss_per_module: dict[ModuleID, TensorType], **kwargs: Any
    ) -> ParamDict:
        """One backward pass of the summed losses; average over learners if several."""
        grads = super().compute_gradients(loss_per_module, **kwargs)
        # Off actor-update steps the actor has no gradient: leave it out (no Adam step).
        grads = {pid: g for pid, g in grads.items() if g is not None}
        if self._world_size() > 1:
            for g in grads.values():
                torch.distributed.all_reduce(g, op=torch.distributed.ReduceOp.SUM)
                g /= self._world_size()
        return grads

    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        """Optimizer steps, then the soft target update for modules whose actor moved."""
        super().apply_gradients(gradients_dict)
        for module_id in sorted(self._target_update_due):
            tau = self.config.get_config_for_module(module_id).tau
            for online, target in self.module[module_id].unwrapped().get_target_network_pairs():
                update_target_network(main_net=online, target_net=target, tau=tau)
        self._target_update_due.clear()

    def _uncompiled_update(self, batch: dict, **kwargs: Any) -> tuple[Any, Any, Any]:
        # TorchLearner's version enters DDP's `no_sync()` for num_learners > 1; TD3 does
        # not wrap modules in DDP (see class docstring), so this is the same minus that.
        self._compute_off_policyness(batch)
        fwd_out = self.module.forward_train(batch)
        loss_per_module = self.compute_losses(fwd_out=fwd_out, batch=batch)
        gradients = self.compute_gradients(loss_per_module)
        self.apply_gradients(self.postprocess_gradients(gradients))
        return fwd_out, loss_per_module, {}

    # -- several learners -------------------------------------------------------------------

    def _make_modules_ddp_if_necessary(self) -> None:
        # No DDP: gradients are averaged in `compute_gradients`.
        return None

    @staticmethod
    def _world_size() -> int:
        dist = torch.distributed
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def _broadcast_initial_weights(self) -> None:
        """Give every learner rank 0's initial weights (what DDP would do)."""
        if self._world_size() <= 1:
            return
        for module in self.module.values():
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    # -- checkpointing ----------------------------------------------------------------------

    def get_state(self, components: Any = None, *, not_components: Any = None, **kwargs: Any):
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(NUM_CRITIC_UPDATES_KEY, components, not_components):
            state[NUM_CRITIC_UPDATES_KEY] = dict(self._num_critic_updates)
        return state

    def set_state(self, state: StateDict) -> None:
        super().set_state(state)
        if NUM_CRITIC_UPDATES_KEY in state:
            self._num_critic_updates.update(state[NUM_CRITIC_UPDATES_KEY])
