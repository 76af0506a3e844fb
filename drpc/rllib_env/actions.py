"""From continuous actions in [-1, 1] to bounded, safe changes of replicas, CPU and memory.

Each service takes three numbers: ``a[:, 0]`` replicas, ``a[:, 1]`` CPU limit, ``a[:, 2]`` memory
limit. Each maps the same way:

- ``|a| <= deadband`` (default 0.1) means *no change*, so "leave it" is easy to express;
- beyond it the change grows linearly with ``(|a| - deadband) / (1 - deadband)`` up to a
  maximum step: replicas change by up to ``max(1, replica_step_fraction x current)`` pods
  (rounded, at least one pod once outside the deadband); CPU and memory limits are multiplied
  by up to ``resource_step_factor`` (default 2, i.e. doubled or halved at +-1);
- every result is clamped: replicas to the service's [min_replicas, max_replicas]; CPU limits to
  [cpu_limit_range[0], cpu_limit_range[1]] x the app's initial limit, memory limits to
  [memory_limit_range[0], memory_limit_range[1]] x the initial limit, and a memory limit never
  below ``memory_headroom`` x the pod's current working set (so a cut cannot OOM-kill it);
- requests keep the app's request/limit ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.types import Action, Observation

__all__ = ["ActionMapping", "map_action", "N_ACTION_COMPONENTS"]

N_ACTION_COMPONENTS = 3  # replicas, CPU limit, memory limit


@dataclass(frozen=True)
class ActionMapping:
    """How a continuous action in [-1, 1] becomes a change."""

    deadband: float = 0.1
    """|a| up to this is "no change"."""
    replica_step_fraction: float = 0.5
    """Largest replica change per interval as a fraction of the current count (at least 1)."""
    resource_step_factor: float = 2.0
    """Largest multiplicative change of a limit per interval (x or / this at |a| = 1)."""
    cpu_limit_range: tuple[float, float] = (0.25, 4.0)
    """CPU limit bounds as multiples of the app's initial limit."""
    memory_limit_range: tuple[float, float] = (0.5, 4.0)
    """Memory limit bounds as multiples of the app's initial limit."""
    memory_headroom: float = 1.2
    """A memory limit stays at least this times the pod's current working set."""

    def __post_init__(self) -> None:
        if not 0 <= self.deadband < 1:
            raise ValueError(f"deadband must be in [0, 1), got {self.deadband}")
        if self.resource_step_factor <= 1:
            raise ValueError("resource_step_factor must be > 1")
        for name in ("cpu_limit_range", "memory_limit_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= 1 <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= 1 <= high, got {(lo, hi)}")


def _strength(a: np.ndarray, deadband: float) -> np.ndarray:
    """Signed strength in [-1, 1] after the deadband (0 inside it)."""
    mag = np.clip((np.abs(a) - deadband) / (1.0 - deadband), 0.0, 1.0)
    return np.sign(a) * mag


def map_action(
    action: np.ndarray, obs: Observation, app: CompiledApp, mapping: ActionMapping
) -> tuple[Action, np.ndarray]:
    """The simulator action for ``action`` (S, 3) given the current observation.

    Returns the :class:`Action` and a (S, 3) boolean array of which components change.
    """
    a = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0), -1.0, 1.0)
    if a.shape != (app.n_services, N_ACTION_COMPONENTS):
        raise ValueError(f"action must have shape ({app.n_services}, 3), got {a.shape}")
    st = _strength(a, mapping.deadband)

    current = obs.replicas_desired.astype(np.float64)
    step = np.maximum(1.0, mapping.replica_step_fraction * current)
    delta = np.sign(st[:, 0]) * np.maximum(np.ceil(np.abs(st[:, 0]) * step - 1e-9), 0.0)
    replicas = np.clip(current + delta, app.min_replicas, app.max_replicas)

    log_f = np.log(mapping.resource_step_factor)
    cpu_lo, cpu_hi = (app.cpu_limit_m0 * r for r in mapping.cpu_limit_range)
    cpu = np.clip(obs.cpu_limit_millicores * np.exp(st[:, 1] * log_f), cpu_lo, cpu_hi)

    mem_lo, mem_hi = (app.memory_limit_mib0 * r for r in mapping.memory_limit_range)
    ready = np.maximum(obs.replicas_ready, 1)
    ws_pod = obs.memory_working_set_mib / ready
    mem_floor = np.maximum(mem_lo, np.minimum(mem_hi, mapping.memory_headroom * ws_pod))
    mem = np.clip(obs.memory_limit_mib * np.exp(st[:, 2] * log_f), mem_floor, mem_hi)

    changed = np.stack(
        [
            replicas != current,
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
