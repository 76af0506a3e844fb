"""The Gymnasium environment ``drpc/Cluster-v0``: one simulated cluster, one agent for all services.

Each episode draws a scenario from ``scenarios``, a start interval inside it, a load scale and a
seed, so a policy sees many slices of the (training) traces. Observation: a (S, F) matrix of
per-service features (:mod:`drpc.rllib_env.features`). Action: a (S, 3) matrix in [-1, 1]
(replicas, CPU limit, memory limit per service; :mod:`drpc.rllib_env.actions`). Reward:
:mod:`drpc.rllib_env.reward`. An episode ends by truncation after ``episode_intervals``.

    import gymnasium as gym, drpc
    env = gym.make("drpc/Cluster-v0", scenarios=["train-trainticket-nasa"], episode_intervals=240)
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np

from drpc.rllib_env.actions import N_ACTION_COMPONENTS, ActionMapping, map_action
from drpc.rllib_env.features import N_FEATURES, service_features, static_context
from drpc.rllib_env.reward import RewardConfig, compute_reward
from drpc.scenario import Scenario, load_scenario, warm_start_replicas
from drpc.sim.cluster import ClusterSim
from drpc.sim.types import Observation

__all__ = ["EnvConfig", "ClusterEnv", "make_env_config"]


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment's episodes."""

    scenarios: tuple[str, ...] = ("train-trainticket-nasa",)
    """Scenario names or files; one is drawn per episode (all must use apps of equal size)."""
    episode_intervals: int = 240
    """Control intervals per episode (240 x 15 s = 1 simulated hour)."""
    random_start: bool = True
    """Start each episode at a random interval of the scenario (else at 0)."""
    load_scale: tuple[float, float] = (0.8, 1.2)
    """Per-episode multiplier of the scenario's load, drawn uniformly."""
    warm_start_utilization: float = 0.6
    """Initial replicas serve the first interval's load at this CPU utilisation."""
    forecast: bool = True
    """Feed the GRU forecast of the entry rate into the observation (else the current rate)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    actions: ActionMapping = field(default_factory=ActionMapping)

    def __post_init__(self) -> None:
        if not self.scenarios:
            raise ValueError("EnvConfig.scenarios: give at least one scenario")
        if self.episode_intervals < 1:
            raise ValueError("EnvConfig.episode_intervals must be >= 1")
        lo, hi = self.load_scale
        if not 0 < lo <= hi:
            raise ValueError(f"EnvConfig.load_scale must satisfy 0 < low <= high, got {(lo, hi)}")


def make_env_config(data: Mapping[str, Any] | EnvConfig | None = None, **overrides) -> EnvConfig:
    """An :class:`EnvConfig` from a plain dict (e.g. RLlib's ``env_config``); unknown keys fail."""
    if isinstance(data, EnvConfig):
        return dataclasses.replace(data, **overrides) if overrides else data
    raw = dict(data or {})
    raw.update(overrides)
    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"env_config: unknown key(s) {unknown} (known: {sorted(known)})")
    if isinstance(raw.get("scenarios"), str):
        raw["scenarios"] = (raw["scenarios"],)
    if "scenarios" in raw:
        raw["scenarios"] = tuple(raw["scenarios"])
    if "load_scale" in raw:
        raw["load_scale"] = tuple(raw["load_scale"])
    if isinstance(raw.get("reward"), Mapping):
        raw["reward"] = RewardConfig(**raw["reward"])
    if isinstance(raw.get("actions"), Mapping):
        act = dict(raw["actions"])
        for key in ("cpu_limit_range", "memory_limit_range"):
            if key in act:
                act[key] = tuple(act[key])
        raw["actions"] = ActionMapping(**act)
    return EnvConfig(**raw)


class ClusterEnv(gym.Env):
    """A Gymnasium env over :class:`~drpc.sim.cluster.ClusterSim` (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | EnvConfig | None = None, **kwargs):
        self.config = make_env_config(config, **kwargs)
        self.scenarios: list[Scenario] = [load_scenario(s) for s in self.config.scenarios]
        sizes = {sc.app.n_services for sc in self.scenarios}
        if len(sizes) != 1:
            raise ValueError(
                "EnvConfig.scenarios: all scenarios of one env must use apps with the same number "
                f"of services, got {sorted(sizes)}"
            )
        for sc in self.scenarios:
            if sc.n_intervals < self.config.episode_intervals + 1:
                raise ValueError(
                    f"scenario {sc.name!r} has {sc.n_intervals} intervals, fewer than "
                    f"episode_intervals + 1 = {self.config.episode_intervals + 1}"
                )
        self.app = self.scenarios[0].app
        n = self.app.n_services
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (n, N_FEATURES), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n, N_ACTION_COMPONENTS), np.float32)
        self._predictor = None
        if self.config.forecast:
            from drpc.workload.forecast import load_forecaster

            self._predictor = load_forecaster().numpy_predictor()
        self.sim: ClusterSim | None = None
        self.scenario: Scenario | None = None
        self.t = 0

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        cfg = self.config
        sc = self.scenarios[int(rng.integers(len(self.scenarios)))]
        span = sc.n_intervals - cfg.episode_intervals
        start = int(rng.integers(0, span + 1)) if cfg.random_start else 0
        scale = float(rng.uniform(*cfg.load_scale))
        load = sc.load_rps[start : start + cfg.episode_intervals] * scale
        app = dataclasses.replace(
            sc.app,
            replicas0=warm_start_replicas(
                sc.app, float(load[0].mean()), cfg.warm_start_utilization
            ),
        )
        self.scenario = sc
        self.sim = ClusterSim(app, sc.config, load, seed=int(rng.integers(2**31 - 1)))
        self.ctx = static_context(app)
        self.t = 0
        obs = self.sim.reset()
        window = self._predictor.config.window if self._predictor else 1
        first = float(load[0].mean())
        self.history = deque([first] * window, maxlen=window)
        self._last_obs = obs
        info = {"scenario": sc.name, "start_interval": start, "load_scale": scale}
        return self._features(obs), info

    def step(self, action: np.ndarray):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        sim_action, changed = map_action(action, self._last_obs, self.sim.app, self.config.actions)
        obs = self.sim.step(sim_action)
        self._last_obs = obs
        self.t += 1
        self.history.append(float(obs.endpoint_rps.sum()))
        reward, terms = compute_reward(obs, self.sim.app, changed, self.config.reward)
        truncated = self.t >= self.config.episode_intervals or self.sim.done
        active = obs.endpoint_rps > 0
        info = {
            **terms,
            "slo_violated": bool(
                np.any(active & (obs.endpoint_latency_p99_ms > obs.endpoint_slo_ms))
            ),
            "cpu_allocated_cores": obs.cpu_allocated_millicores / 1000.0,
            "actions_changed": int(changed.sum()),
        }
        return self._features(obs), float(reward), False, bool(truncated), info

    # ------------------------------------------------------------------ helpers

    @property
    def last_observation(self) -> Observation:
        return self._last_obs

    def _features(self, obs: Observation) -> np.ndarray:
        hist = np.fromiter(self.history, dtype=np.float64)
        if self._predictor is not None:
            forecast = float(np.max(self._predictor(hist)))
        else:
            forecast = float(hist[-1])
        return service_features(obs, self.sim.app, self.ctx, forecast, self.sim.config.interval_s)
