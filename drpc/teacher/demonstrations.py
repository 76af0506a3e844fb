"""Demonstrations for the teacher: a baseline's decisions as env actions, and behaviour cloning.

TD3 from a random actor spends its first thousands of steps thrashing a 49-service cluster
(every knob random-walks, pods OOM and queue), which a 2-core, 15-minute budget cannot afford.
So a run may first *warm-start* the actor: roll a demonstrator (by default the clairvoyant
``oracle`` on the training windows) through the env, translate each of its decisions into the
env's action in [-1, 1] (:func:`env_action_for`), fit the actor to those actions by behaviour
cloning (:func:`behaviour_clone`), and only then let TD3 improve it. The demonstrator sees the
future; the cloned actor sees only what the env shows (metrics and the GRU forecast), so it
must learn to anticipate, and TD3 then tunes it against the reward (including the vertical
knobs, which the oracle never touches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from drpc.rllib_env.actions import N_ACTION_COMPONENTS, ActionMapping
from drpc.sim.graph import CompiledApp
from drpc.sim.types import Action, Observation

__all__ = ["Demonstrations", "behaviour_clone", "collect_demonstrations", "env_action_for"]


def _inverse_strength(strength: np.ndarray, deadband: float) -> np.ndarray:
    """The action whose strength after the deadband is ``strength`` (0 stays 0)."""
    s = np.clip(strength, -1.0, 1.0)
    return np.where(s == 0, 0.0, np.sign(s) * (deadband + (1.0 - deadband) * np.abs(s)))


def env_action_for(
    action: Action | None, obs: Observation, app: CompiledApp, mapping: ActionMapping
) -> np.ndarray:
    """The (S, 3) env action in [-1, 1] that asks for (as near as one interval allows) ``action``.

    The inverse of :func:`drpc.rllib_env.actions.map_action`: replica targets become a signed
    step of at most ``replica_step_fraction`` of the current count; CPU and memory targets a
    log-ratio of at most ``resource_step_factor``. Components the action leaves alone are 0.
    """
    if mapping.mode != "delta":
        raise ValueError(
            "demonstrations translate decisions into delta actions: use actions.mode='delta' "
            f"(got {mapping.mode!r})"
        )
    n = app.n_services
    out = np.zeros((n, N_ACTION_COMPONENTS))
    if action is None:
        return out
    db = mapping.deadband
    if action.replicas is not None:
        want = np.asarray(action.replicas, dtype=np.float64)
        current = obs.replicas_desired.astype(np.float64)
        delta = np.where(
            np.isnan(want), 0.0, np.clip(want, app.min_replicas, app.max_replicas) - current
        )
        step = np.maximum(1.0, mapping.replica_step_fraction * current)
        # map_action rounds |strength| * step up: aim just inside the bucket of |delta| pods.
        strength = np.sign(delta) * np.minimum((np.abs(delta) - 0.5) / step, 1.0)
        out[:, 0] = _inverse_strength(np.where(delta == 0, 0.0, strength), db)
    log_f = np.log(mapping.resource_step_factor)
    for col, target, current in (
        (1, action.cpu_limit_millicores, obs.cpu_limit_millicores),
        (2, action.memory_limit_mib, obs.memory_limit_mib),
    ):
        if target is None:
            continue
        t = np.asarray(target, dtype=np.float64)
        ratio = np.where(np.isnan(t), 0.0, np.log(np.maximum(t, 1e-9) / current) / log_f)
        out[:, col] = _inverse_strength(np.where(np.abs(ratio) < 1e-6, 0.0, ratio), db)
    return out.astype(np.float32)


@dataclass
class Demonstrations:
    """Feature rows and the demonstrator's env actions, one entry per interval."""

    features: np.ndarray  # (N, S, F) float32
    actions: np.ndarray  # (N, S, 3) float32 in [-1, 1]
    demonstrator: str
    mean_reward: float

    def __len__(self) -> int:
        return int(self.features.shape[0])


def collect_demonstrations(
    env_config: Mapping[str, Any],
    demonstrator: str = "oracle",
    steps: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> Demonstrations:
    """Roll ``demonstrator`` (a policy spec) through ``drpc/Cluster-v0`` for ``steps`` intervals.

    The env's random episodes (scenario, start, load scale) apply, so the demonstrations
    cover the same states the teacher trains on. The env is stepped with the translated
    action, so the states are those the actor will reach by imitating it.
    """
    from tqdm.auto import tqdm

    from drpc.policy import make_policy
    from drpc.rllib_env.env import ClusterEnv

    env = ClusterEnv(env_config, flatten=False)  # the actor reads (S, F) rows
    policy = make_policy(demonstrator)
    feats, acts, rewards = [], [], []
    x, _ = env.reset(seed=seed)
    policy.reset(env.sim)
    for _ in tqdm(range(steps), desc="demonstrations", disable=not progress, leave=False):
        obs = env.last_observation
        a = env_action_for(policy.act(obs), obs, env.sim.app, env.config.actions)
        feats.append(x)
        acts.append(a)
        x, r, terminated, truncated, _ = env.step(a)
        rewards.append(r)
        if terminated or truncated:
            x, _ = env.reset()
            policy.reset(env.sim)
    return Demonstrations(
        np.stack(feats).astype(np.float32),
        np.stack(acts).astype(np.float32),
        demonstrator,
        float(np.mean(rewards)),
    )


def behaviour_clone(
    actor: Any,
    demos: Demonstrations,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Fit ``actor`` (obs (B, S, F) -> actions (B, S, 3)) to ``demos`` by mean squared error.

    Returns the mean loss of each epoch.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(demos.features)
    y = torch.as_tensor(demos.actions)
    opt = torch.optim.Adam(actor.parameters(), lr=lr)
    losses: list[float] = []
    actor.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = torch.nn.functional.mse_loss(actor(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / count)
    actor.eval()
    return losses
