"""Tests for drpc.baselines.threshold (plain threshold rules, no upstream counterpart)."""

from __future__ import annotations

import numpy as np
import pytest

from drpc.baselines.threshold import (
    ThresholdConfig,
    VerticalThresholdConfig,
    next_last_change_s,
    threshold_cpu_limits,
    threshold_replicas,
)

NOW = 10_000.0
NEVER = np.nan


def test_horizontal_steps_up_down_and_holds():
    cfg = ThresholdConfig()
    current = np.array([3, 3, 3, 3, 3])
    util = np.array([0.95, 0.8, 0.5, 0.3, 0.1])  # above, at up threshold, between, at down, below
    new = threshold_replicas(current, util, cfg, np.full(5, NEVER), NOW, 1, 10)
    assert new.tolist() == [4, 3, 3, 3, 2]
    assert new.dtype == np.int64


def test_horizontal_cooldown_blocks_steps():
    cfg = ThresholdConfig(cooldown_s=60.0)
    current = np.array([3, 3, 3])
    util = np.array([0.95, 0.95, 0.1])
    last = np.array([NOW - 30.0, NOW - 60.0, NOW - 59.9])
    assert threshold_replicas(current, util, cfg, last, NOW, 1, 10).tolist() == [3, 4, 3]


def test_horizontal_clamps_to_bounds_even_in_cooldown():
    cfg = ThresholdConfig(step_up=3, step_down=2)
    current = np.array([9, 2, 12, 0])
    util = np.array([0.99, 0.01, 0.5, 0.5])
    last = np.array([NEVER, NEVER, NOW, NOW])
    new = threshold_replicas(current, util, cfg, last, NOW, np.array([1, 1, 1, 1]), 10)
    assert new.tolist() == [10, 1, 10, 1]


def test_horizontal_nan_utilization_holds():
    new = threshold_replicas([4], [np.nan], ThresholdConfig(), [NEVER], NOW, 1, 10)
    assert new.tolist() == [4]


def test_horizontal_config_validation():
    with pytest.raises(ValueError):
        ThresholdConfig(scale_up_utilization=0.3, scale_down_utilization=0.5)
    with pytest.raises(ValueError):
        ThresholdConfig(step_up=-1)


def test_next_last_change_tracks_changes_only():
    last = np.array([1.0, 2.0, NEVER])
    got = next_last_change_s(last, np.array([3, 3, 3]), np.array([4, 3, 2]), NOW)
    assert got.tolist() == [NOW, 2.0, NOW]


def test_horizontal_converges_on_a_loop():
    """A closed loop: load of 2.5 cores at 1 core per replica settles within the band."""
    cfg = ThresholdConfig(cooldown_s=60.0)
    replicas = np.array([1])
    last = np.array([NEVER])
    for step in range(20):
        now = NOW + 30.0 * step
        util = 2500.0 / (replicas * 1000.0)
        new = threshold_replicas(replicas, util, cfg, last, now, 1, 10)
        last = next_last_change_s(last, replicas, new, now)
        replicas = new
    assert replicas.tolist() == [4]  # 2.5/4 = 0.625, inside [0.3, 0.8]


def test_vertical_raises_on_throttling_or_high_utilization():
    cfg = VerticalThresholdConfig()
    limit = np.array([1000, 1000, 1000, 1000])
    throttled = np.array([0.2, 0.0, 0.05, 0.0])
    util = np.array([0.5, 0.95, 0.7, 0.7])
    new = threshold_cpu_limits(limit, throttled, util, cfg, np.full(4, NEVER), NOW, 100, 8000)
    assert new.tolist() == [1250, 1250, 1000, 1000]


def test_vertical_lowers_only_without_throttling():
    cfg = VerticalThresholdConfig()
    limit = np.array([1000, 1000, 1000])
    throttled = np.array([0.0, 0.05, 0.2])
    util = np.array([0.2, 0.2, 0.2])  # low utilization everywhere
    new = threshold_cpu_limits(limit, throttled, util, cfg, np.full(3, NEVER), NOW, 100, 8000)
    # the third is throttled despite low average usage: raise wins
    assert new.tolist() == [800, 1000, 1250]


def test_vertical_rounding_bounds_and_cooldown():
    cfg = VerticalThresholdConfig(step_up_factor=1.01, step_down_factor=0.99, cooldown_s=120.0)
    limit = np.array([10, 10, 7900, 150, 500])
    throttled = np.array([0.5, 0.0, 0.5, 0.0, 0.5])
    util = np.array([0.5, 0.1, 0.5, 0.1, 0.5])
    last = np.array([NEVER, NEVER, NEVER, NEVER, NOW - 60.0])
    new = threshold_cpu_limits(limit, throttled, util, cfg, last, NOW, 100, 8000)
    # +1 at least (10 -> 11, then clamped to min 100); -1 at least (10 -> 9 -> 100);
    # 7900*1.01 = 7979; 150*0.99 = 148.5 -> 148; last one is in cooldown
    assert new.tolist() == [100, 100, 7979, 148, 500]


def test_vertical_config_validation():
    with pytest.raises(ValueError):
        VerticalThresholdConfig(step_up_factor=1.0)
    with pytest.raises(ValueError):
        VerticalThresholdConfig(step_down_factor=1.2)
    with pytest.raises(ValueError):
        VerticalThresholdConfig(utilization_down=0.95, utilization_up=0.9)
