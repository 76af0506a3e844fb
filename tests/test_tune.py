"""`drpc tune`: a real (tiny) Tune sweep with ASHA on the session's Ray: every trial trains,
is scored on the validation scenario, and lands in results.csv and TensorBoard files."""

from __future__ import annotations

import csv
import math

import pytest

from drpc.tune import SweepConfig, format_rows, run_sweep

pytestmark = pytest.mark.slow


def test_sweep_runs_trials_scores_them_and_writes_a_table(ray_session, tmp_path):
    from ray import tune

    sweep = SweepConfig(
        scenarios=("train-sock-shop-azure-conv",),
        validation_scenario="train-sock-shop-azure-conv",
        num_samples=3,
        max_iterations=2,
        grace_period=1,
        validate_every=1,
        steps_per_iteration=16,
        episode_intervals=30,
        cpus_per_trial=1,
        max_concurrent=2,
        out=str(tmp_path / "tune"),
        progress=False,
    )
    space = {
        "actor_lr": tune.choice([1e-4, 1e-3]),
        "learning_starts": 8,
        "reward.slo_weight": tune.uniform(1.0, 8.0),
    }
    rows = run_sweep(sweep, space)
    assert len(rows) == 3
    assert all("error" not in row for row in rows), rows
    scores = [row["best_score"] for row in rows]
    assert scores == sorted(scores) and all(math.isfinite(s) and s > 0 for s in scores)
    assert {row["actor_lr"] for row in rows} <= {1e-4, 1e-3}
    assert all(1.0 <= row["reward.slo_weight"] <= 8.0 for row in rows)
    with open(tmp_path / "tune" / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert list((tmp_path / "tune" / "sweep").rglob("events.out.tfevents*"))  # TensorBoard
    assert "best_score" in format_rows(rows)


def test_sweep_refuses_evaluation_windows(tmp_path):
    with pytest.raises(ValueError, match="train only on training windows"):
        run_sweep(SweepConfig(scenarios=("default",), out=str(tmp_path)))
    with pytest.raises(ValueError, match="not on training windows"):
        run_sweep(SweepConfig(validation_scenario="default", out=str(tmp_path)))
    with pytest.raises(ValueError, match="grace_period"):
        SweepConfig(grace_period=30, max_iterations=10)
