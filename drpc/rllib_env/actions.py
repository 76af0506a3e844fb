"""From continuous actions in [-1, 1] to bounded, safe changes of replicas, CPU and memory.

Each service takes three numbers: ``a[:, 0]`` replicas, ``a[:, 1]`` CPU limit, ``a[:, 2]`` memory
limit. Each maps the same way:

- ``|a| <= deadband`` (default 0.1) means *no change*, so "leave it" is easy to express;
- beyond it the change grows linearly with ``(|a| - deadband) / (1 - deadband)`` up to a
  maximum step: replicas change by up to ``max(1, replica_step_fraction x current)`` pods
  (rounded, at least one pod once outside the deadband); CPU and memory limits are multiplied
  by up to ``resource_step_factor`` (default 2, i.e. doubled or halved at +-1);
- every result is clamped: replicas to the service's [min_replicas, max_replicas]; CPU limits to
  [cpu_limit_range[0], cpu_limit_range[1]] x the app's initial limit, and never cut below
  ``cpu_headroom`` x the CPU a pod uses (a throttled pod keeps its limit) nor below the CFS
  quota one mean request needs (``cfs_quota_requests``; a smaller quota makes every request
  wait out throttled periods); memory limits to
  [memory_limit_range[0], memory_limit_range[1]] x the initial limit, and a memory limit never
  below ``memory_headroom`` x the pod's working set (its peak over the last hour with a
  :class:`WorkingSetPeak`, so a cut sized for a quiet minute is not OOM-killed by the next
  burst), never cut while no pod of the service is ready or before the first reading (its
  working set is unknown), and raised
  after an OOM kill as the VPA does (x1.2, +100 MiB at least);
- requests keep the app's request/limit ratio.

That is ``mode="delta"`` (the default). ``mode="target"`` reads the same three numbers as
*set-points* instead, so that any output, a constant included, is a stable controller and
learning only moves the set-points (how the shipped teacher is trained; a delta policy must
first learn to stop its knobs from random-walking):

- ``a[:, 0]`` is a target CPU utilisation per pod, from ``target_utilization_range[0]``
  (a = -1) to ``[1]`` (a = +1), linear; desired replicas = ceil(CPU used / (target x limit)),
  the HPA's rule with a learned, per-service, per-interval target. Within ``tolerance`` of
  the current count (relative, as the HPA's 10%) nothing changes; otherwise the change is
  bounded by ``max(1, replica_step_fraction x current)`` pods;
- ``a[:, 1]`` and ``a[:, 2]`` are CPU and memory limits as multiples of the app's initial
  limit, log-linear over ``cpu_limit_range`` / ``memory_limit_range`` (a = 0: a geometric
  middle), changed only when more than ``tolerance`` away from the current limit, by at most
  ``resource_step_factor`` per interval;
- the same clamps apply: min/max replicas, limit ranges, the memory floor and OOM bump.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.types import Action, Observation

__all__ = [
    "ActionMapping",
    "MappingState",
    "N_ACTION_COMPONENTS",
    "ScaleDownStabilizer",
    "WorkingSetPeak",
    "map_action",
]

N_ACTION_COMPONENTS = 3  # replicas, CPU limit, memory limit


@dataclass(frozen=True)
class ActionMapping:
    """How a continuous action in [-1, 1] becomes a change."""

    mode: str = "delta"
    """'delta': actions are changes; 'target': actions are set-points (see module docstring)."""
    deadband: float = 0.1
    """|a| up to this is "no change" (delta mode)."""
    replica_step_fraction: float = 0.5
    """Largest replica change per interval as a fraction of the current count (at least 1)."""
    resource_step_factor: float = 2.0
    """Largest multiplicative change of a limit per interval (x or / this at |a| = 1)."""
    cpu_limit_range: tuple[float, float] = (0.25, 4.0)
    """CPU limit bounds as multiples of the app's initial limit."""
    memory_limit_range: tuple[float, float] = (0.5, 4.0)
    """Memory limit bounds as multiples of the app's initial limit."""
    memory_headroom: float = 1.2
    """A memory limit stays at least this times the pod's working set (its recent peak, with
    a :class:`WorkingSetPeak`)."""
    memory_peak_window: int = 240
    """Intervals over which a :class:`WorkingSetPeak` remembers each service's largest working
    set per pod (240 x 15 s: one hour; 1: the current one only). The VPA sizes memory on
    peaks too: a limit cut to fit a quiet minute is OOM-killed by the next burst."""
    cpu_headroom: float = 1.2
    """A CPU limit is never cut below this times the pod's current CPU usage (a busy pod
    keeps its limit; no forced raise)."""
    cfs_quota_requests: float = 1.0
    """A CPU limit is never cut below what this many mean requests (visits) need in one CFS
    period: limit x ``cfs_period_s`` >= this x the CPU time of one visit, measured as CPU used /
    visits served. Below it every request waits out whole throttled periods (0: no floor)."""
    cfs_period_s: float = 0.1
    """The CFS quota period (Linux default 100 ms)."""
    scale_down_window: int = 40
    """Target mode: replicas go down only to the largest count wanted over this many last
    intervals (40 x 15 s: 10 minutes, twice the HPA's default 5; 1 = none). Longer than the
    longest traffic outage of the training episodes (``EnvConfig.outage_intervals``, up to 30),
    so pods are still there when the traffic returns all at once: with 5 minutes they go at
    minute 5 of an outage, and the thundering herd meets the minimum."""
    target_utilization_range: tuple[float, float] = (0.05, 0.65)
    """Target mode: CPU utilisation set-point at a = -1 and a = +1."""
    tolerance: float = 0.1
    """Target mode: relative distance from a set-point within which nothing changes."""

    def __post_init__(self) -> None:
        if self.mode not in ("delta", "target"):
            raise ValueError(f"mode must be 'delta' or 'target', got {self.mode!r}")
        lo, hi = self.target_utilization_range
        if not 0 < lo < hi <= 1:
            raise ValueError(
                f"target_utilization_range must satisfy 0 < low < high <= 1, got {(lo, hi)}"
            )
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if not 0 <= self.deadband < 1:
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        for name in ("memory_headroom", "cpu_headroom"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.memory_peak_window < 1:
            raise ValueError(f"memory_peak_window must be >= 1, got {self.memory_peak_window}")
        if self.cfs_quota_requests < 0:
            raise ValueError(f"cfs_quota_requests must be >= 0, got {self.cfs_quota_requests}")
        if not self.cfs_period_s > 0:
            raise ValueError(f"cfs_period_s must be > 0, got {self.cfs_period_s}")
        if self.resource_step_factor <= 1:
            raise ValueError("resource_step_factor must be > 1")
        for name in ("cpu_limit_range", "memory_limit_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= 1 <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= 1 <= high, got {(lo, hi)}")

    def with_scale_down_window(self, intervals: int) -> ActionMapping:
        """Target mode: the same mapping with another scale-down stabilisation window (an
        operator's choice on a trained policy; the network is not touched)."""
        if self.mode != "target":
            raise ValueError("scale_down_window applies to target-mode policies only")
        if not 1 <= intervals <= 240:
            raise ValueError(f"scale_down_window must be in [1, 240] intervals, got {intervals!r}")
        return dataclasses.replace(self, scale_down_window=int(intervals))

    def with_utilization_scale(self, scale: float) -> ActionMapping:
        """Target mode: every learned CPU-utilisation set-point times ``scale`` -- an operator's
        margin on a trained policy, as one lowers the HPA's target (0.9: replicas sized for
        10% more headroom than learned; 1: unchanged). The network is not touched."""
        if self.mode != "target":
            raise ValueError("utilization_scale applies to target-mode policies only")
        lo, hi = self.target_utilization_range
        if not (0 < scale and hi * scale <= 1):
            raise ValueError(
                f"utilization_scale must be in (0, {1 / hi:.3g}] (set-points up to {hi:g}), "
                f"got {scale!r}"
            )
        return dataclasses.replace(self, target_utilization_range=(lo * scale, hi * scale))


def _strength(a: np.ndarray, deadband: float) -> np.ndarray:
    """Signed strength in [-1, 1] after the deadband (0 inside it)."""
    mag = np.clip((np.abs(a) - deadband) / (1.0 - deadband), 0.0, 1.0)
    return np.sign(a) * mag


OOM_BUMP_RATIO = 1.2
"""After an OOM kill the memory limit rises to at least this times its value (the VPA's
``oom-bump-up-ratio``)."""
OOM_MIN_BUMP_MIB = 100.0
"""... and by at least this much (the VPA's ``oom-min-bump-up-bytes``, 100 MiB)."""


def _cpu_bounds(
    obs: Observation, app: CompiledApp, mapping: ActionMapping
) -> tuple[np.ndarray, np.ndarray]:
    """CPU limit bounds: the range, and no cut below

    - headroom x the CPU used per ready pod (a pod at its limit is throttled: cutting it
      deepens the overload);
    - the CFS quota that ``cfs_quota_requests`` mean visits need (CPU used / visits served,
      per ``cfs_period_s``): under it each request waits out throttled periods, which no
      number of replicas fixes (a 75 ms request under a 250m limit takes over 300 ms);
    - the current limit while no pod is ready or no visit was served (usage unknown).

    Unlike memory, a low limit is never forced up."""
    cpu_lo, cpu_hi = (app.cpu_limit_m0 * r for r in mapping.cpu_limit_range)
    current = obs.cpu_limit_millicores
    used_pod = obs.cpu_usage_millicores / np.maximum(obs.replicas_ready, 1)
    keep = mapping.cpu_headroom * used_pod
    unknown = obs.replicas_ready < 1
    if mapping.cfs_quota_requests > 0:
        served = obs.throughput_rps > 0
        cpu_ms_per_visit = obs.cpu_usage_millicores / np.where(served, obs.throughput_rps, 1.0)
        keep = np.maximum(
            keep, mapping.cfs_quota_requests * cpu_ms_per_visit / mapping.cfs_period_s
        )
        unknown |= ~served
    keep = np.where(unknown, current, keep)
    return np.maximum(cpu_lo, np.minimum(np.minimum(cpu_hi, current), keep)), cpu_hi


class WorkingSetPeak:
    """Each service's largest working set per ready pod (MiB) over the last ``window``
    intervals, the basis of the memory floor (as the VPA's recommender uses peaks)."""

    def __init__(self, window: int):
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, int(window)))

    def __call__(self, ws_pod_mib: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """Record this interval's per-pod working set (services with no ready pod add
        nothing) and return the peak over the window, this interval included."""
        self._recent.append(np.where(ready >= 1, ws_pod_mib, 0.0))
        return np.max(self._recent, axis=0)


def _memory_bounds(
    obs: Observation,
    app: CompiledApp,
    mapping: ActionMapping,
    peak: WorkingSetPeak | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Memory limit bounds: the range, and never below headroom x the working set per pod
    (its peak over ``mapping.memory_peak_window`` intervals when ``peak`` keeps them).

    Two cases where the working set cannot be trusted, handled here for every caller:

    - *no ready pod* (starting, crash-looping) or *no reading yet* (a working set of 0, as
      before the first interval is measured): a cut could go below what the pod needs to
      start and keep it down for good; the limit may not go down;
    - *OOM kills this interval*: the limit goes up by the VPA's OOM bump (x1.2, +100 MiB at
      least), capped at the range's top.
    """
    mem_lo, mem_hi = (app.memory_limit_mib0 * r for r in mapping.memory_limit_range)
    ws_pod = obs.memory_working_set_mib / np.maximum(obs.replicas_ready, 1)
    if peak is not None:
        ws_pod = peak(ws_pod, obs.replicas_ready)
    floor = np.maximum(mem_lo, np.minimum(mem_hi, mapping.memory_headroom * ws_pod))
    current = obs.memory_limit_mib
    unknown = (obs.replicas_ready < 1) | (obs.memory_working_set_mib <= 0)
    floor = np.where(unknown, np.maximum(floor, current), floor)
    bumped = np.minimum(mem_hi, np.maximum(current * OOM_BUMP_RATIO, current + OOM_MIN_BUMP_MIB))
    floor = np.where(obs.oom_kills > 0, np.maximum(floor, bumped), floor)
    return floor, mem_hi


def _deltas(
    a: np.ndarray,
    obs: Observation,
    app: CompiledApp,
    mapping: ActionMapping,
    peak: WorkingSetPeak | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delta mode: replicas, CPU and memory limits after the changes ``a`` asks for."""
    st = _strength(a, mapping.deadband)
    current = obs.replicas_desired.astype(np.float64)
    step = np.maximum(1.0, mapping.replica_step_fraction * current)
    delta = np.sign(st[:, 0]) * np.maximum(np.ceil(np.abs(st[:, 0]) * step - 1e-9), 0.0)
    replicas = np.clip(current + delta, app.min_replicas, app.max_replicas)

    log_f = np.log(mapping.resource_step_factor)
    cpu_floor, cpu_hi = _cpu_bounds(obs, app, mapping)
    cpu = np.clip(obs.cpu_limit_millicores * np.exp(st[:, 1] * log_f), cpu_floor, cpu_hi)
    mem_floor, mem_hi = _memory_bounds(obs, app, mapping, peak)
    mem = np.clip(obs.memory_limit_mib * np.exp(st[:, 2] * log_f), mem_floor, mem_hi)
    return replicas, cpu, mem


def _toward(current: np.ndarray, target: np.ndarray, mapping: ActionMapping) -> np.ndarray:
    """A limit moved toward ``target``: unchanged within tolerance, else at most x/÷ step."""
    f = mapping.resource_step_factor
    moved = np.clip(target, current / f, current * f)
    far = np.abs(target / current - 1.0) > mapping.tolerance
    return np.where(far, moved, current)


class ScaleDownStabilizer:
    """The HPA's scale-down stabilisation for target mode: remembers the replica counts wanted
    in the last ``window`` intervals; a decrease goes only down to their maximum."""

    def __init__(self, window: int):
        self.window = max(1, int(window))
        self._recent: list[np.ndarray] = []

    def __call__(self, wanted: np.ndarray, current: np.ndarray) -> np.ndarray:
        """The stabilised count for ``wanted``; the first call counts ``current`` as wanted
        (as the HPA's first recommendation is the current scale)."""
        if self.window == 1:
            return wanted
        history = self._recent or [current]
        self._recent = [*history[-(self.window - 1) :], wanted]
        return np.max(self._recent, axis=0)


def _targets(
    a: np.ndarray,
    obs: Observation,
    app: CompiledApp,
    mapping: ActionMapping,
    stabilizer: ScaleDownStabilizer | None = None,
    peak: WorkingSetPeak | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target mode: replicas, CPU and memory limits moved toward the set-points ``a``."""
    lo, hi = mapping.target_utilization_range
    target_util = lo + (a[:, 0] + 1.0) * 0.5 * (hi - lo)
    current = obs.replicas_desired.astype(np.float64)
    wanted = np.ceil(obs.cpu_usage_millicores / (target_util * obs.cpu_limit_millicores) - 1e-9)
    wanted = np.clip(wanted, app.min_replicas, app.max_replicas)
    if stabilizer is not None:
        wanted = np.maximum(wanted, np.minimum(stabilizer(wanted, current), current))
    step = np.maximum(1.0, np.floor(mapping.replica_step_fraction * current))
    moved = np.clip(wanted, current - step, current + step)
    far = np.abs(wanted - current) > mapping.tolerance * np.maximum(current, 1.0)
    replicas = np.where(far, moved, current)

    def level(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        log_lo, log_hi = np.log(bounds[0]), np.log(bounds[1])
        return np.exp(log_lo + (x + 1.0) * 0.5 * (log_hi - log_lo))

    cpu_floor, cpu_hi = _cpu_bounds(obs, app, mapping)
    cpu_target = app.cpu_limit_m0 * level(a[:, 1], mapping.cpu_limit_range)
    cpu = np.clip(_toward(obs.cpu_limit_millicores, cpu_target, mapping), cpu_floor, cpu_hi)
    mem_floor, mem_hi = _memory_bounds(obs, app, mapping, peak)
    mem_target = app.memory_limit_mib0 * level(a[:, 2], mapping.memory_limit_range)
    mem = np.clip(_toward(obs.memory_limit_mib, mem_target, mapping), mem_floor, mem_hi)
    return replicas, cpu, mem


@dataclass
class MappingState:
    """What a controller that uses the mapping remembers from interval to interval: the
    replica counts wanted lately (scale-down stabilisation, target mode) and each service's
    peak working set per pod (the memory floor). A field left None is not remembered."""

    stabilizer: ScaleDownStabilizer | None = None
    memory_peak: WorkingSetPeak | None = None

    @classmethod
    def for_mapping(cls, mapping: ActionMapping) -> MappingState:
        """A fresh state with the windows of ``mapping`` (one per episode or run)."""
        return cls(
            stabilizer=ScaleDownStabilizer(mapping.scale_down_window),
            memory_peak=WorkingSetPeak(mapping.memory_peak_window),
        )


def map_action(
    action: np.ndarray,
    obs: Observation,
    app: CompiledApp,
    mapping: ActionMapping,
    state: MappingState | None = None,
) -> tuple[Action, np.ndarray]:
    """The simulator action for ``action`` (S, 3) given the current observation.

    ``state`` carries what a controller remembers from interval to interval (call once per
    interval with the same one, from :meth:`MappingState.for_mapping`); None: a stateless
    decision, from the current observation only.
    Returns the :class:`Action` and a (S, 3) boolean array of which components change.
    """
    state = state or MappingState()
    stabilizer, memory_peak = state.stabilizer, state.memory_peak
    a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0), -1.0, 1.0)
    if a.shape != (app.n_services, N_ACTION_COMPONENTS):
        raise ValueError(f"action must have shape ({app.n_services}, 3), got {a.shape}")
    if mapping.mode == "target":
        replicas, cpu, mem = _targets(a, obs, app, mapping, stabilizer, memory_peak)
    else:
        replicas, cpu, mem = _deltas(a, obs, app, mapping, memory_peak)

    changed = np.stack(
        [
            replicas != obs.replicas_desired,
            np.abs(cpu - obs.cpu_limit_millicores) > 0.5,
            np.abs(mem - obs.memory_limit_mib) > 0.5,
        ],
        axis=1,
    )
    nan = np.full(app.n_services, np.nan)
    cpu_ratio = app.cpu_request_m0 / app.cpu_limit_m0
    mem_ratio = app.memory_request_mib0 / app.memory_limit_mib0
    return (
        Action(
            replicas=np.where(changed[:, 0], replicas, nan),
            cpu_limit_millicores=np.where(changed[:, 1], cpu, nan),
            cpu_request_millicores=np.where(changed[:, 1], cpu * cpu_ratio, nan),
            memory_limit_mib=np.where(changed[:, 2], mem, nan),
            memory_request_mib=np.where(changed[:, 2], mem * mem_ratio, nan),
        ),
        changed,
    )
