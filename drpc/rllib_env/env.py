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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np

from drpc.rllib_env.actions import (
    N_ACTION_COMPONENTS,
    ActionMapping,
    MappingState,
    map_action,
)
from drpc.rllib_env.features import N_FEATURES, FeatureBuilder
from drpc.rllib_env.reward import RewardConfig, compute_reward, service_rewards
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
    spikes_per_hour: float = 0.0
    """Random load spikes overlaid per simulated hour (domain randomisation: the training
    windows have few flash crowds, the evaluation days may have many)."""
    spike_factor: tuple[float, float] = (1.3, 2.5)
    """A spike multiplies the load by a factor drawn uniformly from this range."""
    spike_intervals: tuple[int, int] = (1, 8)
    """A spike lasts a number of intervals drawn uniformly from this range (inclusive)."""
    outages_per_hour: float = 0.0
    """Random traffic outages per simulated hour: the load drops to zero, then returns at
    once (the thundering herd after an upstream outage; evaluation days have them)."""
    outage_intervals: tuple[int, int] = (8, 30)
    """An outage lasts a number of intervals drawn uniformly from this range (inclusive)."""
    jumps_per_hour: float = 0.0
    """Random load jumps per simulated hour: the load rises at once to at least a level drawn
    from ``jump_level`` (a fraction of the scenario's peak) and stays there a few intervals, a
    flash crowd that arrives after a quiet spell (the evaluation days have them: 5-20x within
    one 15 s interval). Spikes multiply the load, so from a quiet spell they stay small."""
    jump_level: tuple[float, float] = (0.2, 0.6)
    """A jump's level as a fraction of the scenario's peak rate, drawn uniformly."""
    jump_intervals: tuple[int, int] = (1, 8)
    """A jump lasts a number of intervals drawn uniformly from this range (inclusive)."""
    warm_start_utilization: float = 0.6
    """Initial replicas serve the first interval's load at this CPU utilisation."""
    forecast: bool = True
    """Feed the GRU forecast of the entry rate into the observation (else the current rate)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    actions: ActionMapping = field(default_factory=ActionMapping)
    service_rewards: bool = True
    """Add ``info["service_rewards"]``: the reward split per service (weighted reward only)."""
    flatten: bool = False
    """Flat (S*F,) observations and (S*3,) actions, for RLlib's default MLP modules (SAC, PPO)."""

    def __post_init__(self) -> None:
        if not self.scenarios:
            raise ValueError("EnvConfig.scenarios: give at least one scenario")
        if self.episode_intervals < 1:
            raise ValueError("EnvConfig.episode_intervals must be >= 1")
        if min(self.spikes_per_hour, self.outages_per_hour, self.jumps_per_hour) < 0:
            raise ValueError(
                "EnvConfig.spikes_per_hour, outages_per_hour and jumps_per_hour must be >= 0"
            )
        j_lo, j_hi = self.jump_level
        if not (0 < j_lo <= j_hi and 1 <= self.jump_intervals[0] <= self.jump_intervals[1]):
            raise ValueError(
                "EnvConfig.jump_level must satisfy 0 < low <= high and jump_intervals "
                f"1 <= low <= high, got {self.jump_level}, {self.jump_intervals}"
            )
        if not 1 <= self.outage_intervals[0] <= self.outage_intervals[1]:
            raise ValueError(
                f"EnvConfig.outage_intervals: 1 <= low <= high, got {self.outage_intervals}"
            )
        f_lo, f_hi = self.spike_factor
        d_lo, d_hi = self.spike_intervals
        if not (0 < f_lo <= f_hi and 1 <= d_lo <= d_hi):
            raise ValueError(
                "EnvConfig.spike_factor must satisfy 0 < low <= high and spike_intervals "
                f"1 <= low <= high, got {self.spike_factor}, {self.spike_intervals}"
            )
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
    for key in (
        "load_scale",
        "spike_factor",
        "spike_intervals",
        "outage_intervals",
        "jump_level",
        "jump_intervals",
    ):
        if key in raw:
            raw[key] = tuple(raw[key])
    if isinstance(raw.get("reward"), Mapping):
        raw["reward"] = RewardConfig(**raw["reward"])
    if isinstance(raw.get("actions"), Mapping):
        act = dict(raw["actions"])
        for key in ("cpu_limit_range", "memory_limit_range"):
            if key in act:
                act[key] = tuple(act[key])
        raw["actions"] = ActionMapping(**act)
    return EnvConfig(**raw)


def perturb_load(
    load: np.ndarray,
    interval_s: float,
    cfg: EnvConfig,
    rng: np.random.Generator,
    peak_rps: float | None = None,
) -> np.ndarray:
    """``load`` (intervals, substeps) with random spikes, outages and jumps overlaid (see
    EnvConfig); jumps rise to a fraction of ``peak_rps`` (default: the peak of ``load``)."""
    if max(cfg.spikes_per_hour, cfg.outages_per_hour, cfg.jumps_per_hour) <= 0:
        return load
    hours = load.shape[0] * interval_s / 3600.0
    peak = float(load.max()) if peak_rps is None else peak_rps
    out = load.copy()

    def windows(rate: float, lengths: tuple[int, int]):
        for _ in range(int(rng.poisson(rate * hours)) if rate > 0 else 0):
            length = int(rng.integers(lengths[0], lengths[1] + 1))
            start = int(rng.integers(0, max(1, load.shape[0] - length + 1)))
            yield slice(start, start + length)

    for span in windows(cfg.spikes_per_hour, cfg.spike_intervals):
        out[span] *= rng.uniform(*cfg.spike_factor)
    for span in windows(cfg.outages_per_hour, cfg.outage_intervals):
        out[span] = 0.0
    for span in windows(cfg.jumps_per_hour, cfg.jump_intervals):
        out[span] = np.maximum(out[span], rng.uniform(*cfg.jump_level) * peak)
    return out


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
        obs_shape = (n * N_FEATURES,) if self.config.flatten else (n, N_FEATURES)
        act_shape = (n * N_ACTION_COMPONENTS,) if self.config.flatten else (n, N_ACTION_COMPONENTS)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, obs_shape, np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, act_shape, np.float32)
        self.features: FeatureBuilder | None = None
        self._builders: dict[str, FeatureBuilder] = {}
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
        load = perturb_load(
            load, sc.config.interval_s, cfg, rng, peak_rps=float(sc.load_rps.max()) * scale
        )
        app = dataclasses.replace(
            sc.app,
            replicas0=warm_start_replicas(
                sc.app, float(load[0].mean()), cfg.warm_start_utilization
            ),
        )
        self.scenario = sc
        self.sim = ClusterSim(app, sc.config, load, seed=int(rng.integers(2**31 - 1)))
        if sc.name not in self._builders:
            self._builders[sc.name] = FeatureBuilder(sc.app, sc.config.interval_s, cfg.forecast)
        self.features = self._builders[sc.name]
        self.features.reset(float(load[0].mean()))
        self._mapping_state = MappingState.for_mapping(cfg.actions)
        self.t = 0
        obs = self.sim.reset()
        self._last_obs = obs
        info = {"scenario": sc.name, "start_interval": start, "load_scale": scale}
        return self._shape(self.features.features(obs)), info

    def step(self, action: np.ndarray):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if self.config.flatten:
            action = np.asarray(action).reshape(-1, N_ACTION_COMPONENTS)
        sim_action, changed = map_action(
            action,
            self._last_obs,
            self.sim.app,
            self.config.actions,
            self._mapping_state,
        )
        obs = self.sim.step(sim_action)
        self._last_obs = obs
        self.t += 1
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
        if self.config.service_rewards and self.config.reward.kind == "weighted":
            info["service_rewards"] = service_rewards(
                obs, self.sim.app, changed, self.config.reward
            )
        return self._shape(self.features(obs)), float(reward), False, bool(truncated), info

    # ------------------------------------------------------------------ helpers

    def _shape(self, features: np.ndarray) -> np.ndarray:
        return features.reshape(-1) if self.config.flatten else features

    @property
    def last_observation(self) -> Observation:
        return self._last_obs
