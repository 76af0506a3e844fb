"""Threshold ("KuScal"-style) autoscaling rules, vectorised over S services.

Horizontal rule (:func:`threshold_replicas`): outside a per-service cooldown, add ``step_up``
replicas when CPU utilization (usage / request) is above ``scale_up_utilization`` and remove
``step_down`` when it is below ``scale_down_utilization``; always clamp to ``[min, max]``.

Vertical rule (:func:`threshold_cpu_limits`): outside a cooldown, multiply the CPU limit by
``step_up_factor`` when the container is throttled in more than ``throttle_up_ratio`` of its CFS
periods or its utilization of the limit is above ``utilization_up``; multiply it by
``step_down_factor`` when it is (almost) never throttled and its utilization is below
``utilization_down``; clamp to ``[min, max]``. Throttling wins over low utilization, because a
throttled container's usage is capped by its limit and understates demand.

These are plain reactive rules, not ports of an upstream controller. Utilizations are fractions
(0.8 = 80 %), CPU is in millicores, times in seconds. A NaN utilization (no data) never triggers a
step. :func:`next_last_change_s` gives the cooldown clock to carry to the next call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ThresholdConfig",
    "VerticalThresholdConfig",
    "next_last_change_s",
    "threshold_cpu_limits",
    "threshold_replicas",
]


@dataclass(frozen=True)
class ThresholdConfig:
    """Horizontal threshold rule.

    Attributes:
        scale_up_utilization: scale up when utilization > this (fraction of request).
        scale_down_utilization: scale down when utilization < this (fraction of request).
        step_up: replicas added per step.
        step_down: replicas removed per step.
        cooldown_s: no step while ``now_s - last_change_s < cooldown_s`` (s).
    """

    scale_up_utilization: float = 0.8
    scale_down_utilization: float = 0.3
    step_up: int = 1
    step_down: int = 1
    cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.scale_down_utilization < self.scale_up_utilization:
            raise ValueError("scale_down_utilization must be below scale_up_utilization")
        if self.step_up < 0 or self.step_down < 0 or self.cooldown_s < 0:
            raise ValueError("steps and cooldown must be non-negative")


@dataclass(frozen=True)
class VerticalThresholdConfig:
    """Vertical (CPU limit) threshold rule.

    Attributes:
        throttle_up_ratio: raise the limit when the throttled-period ratio is > this.
        utilization_up: raise the limit when usage / limit is > this.
        throttle_down_ratio: lowering requires a throttled-period ratio <= this.
        utilization_down: lower the limit when usage / limit is < this.
        step_up_factor: multiplicative raise (> 1).
        step_down_factor: multiplicative cut (in (0, 1)).
        cooldown_s: no step while ``now_s - last_change_s < cooldown_s`` (s).
    """

    throttle_up_ratio: float = 0.1
    utilization_up: float = 0.9
    throttle_down_ratio: float = 0.01
    utilization_down: float = 0.5
    step_up_factor: float = 1.25
    step_down_factor: float = 0.8
    cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.step_up_factor > 1.0:
            raise ValueError("step_up_factor must be > 1")
        if not 0.0 < self.step_down_factor < 1.0:
            raise ValueError("step_down_factor must be in (0, 1)")
        if not self.utilization_down < self.utilization_up:
            raise ValueError("utilization_down must be below utilization_up")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must be non-negative")


def _cooled_down(last_change_s: ArrayLike, now_s: float, cooldown_s: float) -> NDArray[np.bool_]:
    """True where the cooldown has elapsed (a NaN last change means never changed)."""
    last = np.asarray(last_change_s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isnan(last) | (now_s - last >= cooldown_s)


def threshold_replicas(
    current_replicas: ArrayLike,
    cpu_utilization: ArrayLike,
    config: ThresholdConfig,
    last_change_s: ArrayLike,
    now_s: float,
    min_replicas: ArrayLike,
    max_replicas: ArrayLike,
) -> NDArray[np.int64]:
    """New replica counts per service.

    Args:
        current_replicas: replicas per service, shape (S,).
        cpu_utilization: average CPU usage / request per service (fraction), shape (S,).
        config: thresholds, steps and cooldown.
        last_change_s: time of each service's last replica change (s; NaN = never), shape (S,).
        now_s: current time (s).
        min_replicas, max_replicas: bounds per service, shape (S,) or scalars.

    Returns:
        int64 array (S,): ``current + step_up`` above the upper threshold, ``current - step_down``
        below the lower one (only when cooled down), then clamped to ``[min, max]``.
    """
    current = np.asarray(current_replicas, dtype=np.int64)
    util = np.asarray(cpu_utilization, dtype=np.float64)
    ready = _cooled_down(last_change_s, now_s, config.cooldown_s)
    with np.errstate(invalid="ignore"):
        up = ready & (util > config.scale_up_utilization)
        down = ready & (util < config.scale_down_utilization)
    new = current + np.where(up, config.step_up, 0) - np.where(down, config.step_down, 0)
    lo = np.asarray(min_replicas, dtype=np.int64)
    hi = np.asarray(max_replicas, dtype=np.int64)
    return np.minimum(np.maximum(new, lo), hi).astype(np.int64)


def threshold_cpu_limits(
    current_limit_millicores: ArrayLike,
    throttled_ratio: ArrayLike,
    cpu_utilization: ArrayLike,
    config: VerticalThresholdConfig,
    last_change_s: ArrayLike,
    now_s: float,
    min_limit_millicores: ArrayLike,
    max_limit_millicores: ArrayLike,
) -> NDArray[np.int64]:
    """New CPU limits (millicores) per service.

    Args:
        current_limit_millicores: CPU limit per service (millicores), shape (S,).
        throttled_ratio: throttled CFS periods / total periods over the last interval, shape (S,).
        cpu_utilization: usage / limit (fraction), shape (S,).
        config: thresholds, factors and cooldown.
        last_change_s: time of each service's last limit change (s; NaN = never).
        now_s: current time (s).
        min_limit_millicores, max_limit_millicores: bounds (millicores).

    Returns:
        int64 array (S,): a raise is rounded up and at least +1 millicore, a cut is rounded down
        and at least -1 millicore; the result is clamped to ``[min, max]``.
    """
    limit = np.asarray(current_limit_millicores, dtype=np.float64)
    throttled = np.asarray(throttled_ratio, dtype=np.float64)
    util = np.asarray(cpu_utilization, dtype=np.float64)
    ready = _cooled_down(last_change_s, now_s, config.cooldown_s)
    with np.errstate(invalid="ignore"):
        up = ready & ((throttled > config.throttle_up_ratio) | (util > config.utilization_up))
        down = (
            ready
            & ~up
            & (throttled <= config.throttle_down_ratio)
            & (util < config.utilization_down)
        )
    raised = np.maximum(np.ceil(limit * config.step_up_factor), limit + 1.0)
    cut = np.minimum(np.floor(limit * config.step_down_factor), limit - 1.0)
    new = np.where(up, raised, np.where(down, cut, limit))
    lo = np.asarray(min_limit_millicores, dtype=np.float64)
    hi = np.asarray(max_limit_millicores, dtype=np.float64)
    return np.minimum(np.maximum(new, lo), hi).astype(np.int64)


def next_last_change_s(
    last_change_s: ArrayLike, old_values: ArrayLike, new_values: ArrayLike, now_s: float
) -> NDArray[np.float64]:
    """The cooldown clock after a step: ``now_s`` where the value changed, else unchanged."""
    last = np.asarray(last_change_s, dtype=np.float64)
    changed = np.asarray(old_values) != np.asarray(new_values)
    return np.where(changed, now_s, last)
