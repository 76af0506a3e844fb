"""The set-point warm start: the grid search picks the best fixed set-point and the actor then
outputs it."""

from __future__ import annotations

import pytest
import torch

from drpc.evaluate import run_policy
from drpc.rllib_env.actions import ActionMapping
from drpc.rllib_env.features import N_FEATURES
from drpc.scenario import load_scenario
from drpc.teacher.networks import PerServiceActor
from drpc.teacher.setpoint import constant_policy, search_setpoint, set_constant_output

TARGET = ActionMapping(mode="target")


def test_search_picks_the_lowest_score_and_records_the_grid():
    found = search_setpoint(
        ["train-sock-shop-azure-conv"], TARGET, utilization_grid=(-1.0, 0.5), cpu_grid=(-0.5, 1.0)
    )
    assert len(found.table) == 4
    assert found.score == min(row["score"] for row in found.table)
    assert list(found.action) in [row["action"] for row in found.table]
    row = found.table[0]["scenarios"]["train-sock-shop-azure-conv"]
    assert set(row) == {"slo_violation_fraction", "cpu_core_hours"}
    # A lower utilisation target and a bigger limit cost more CPU: the grid is not flat.
    costs = {
        tuple(r["action"][:2]): r["scenarios"]["train-sock-shop-azure-conv"] for r in found.table
    }
    assert costs[(-1.0, 1.0)]["cpu_core_hours"] > costs[(0.5, -0.5)]["cpu_core_hours"]


def test_search_needs_target_mode():
    with pytest.raises(ValueError, match="target"):
        search_setpoint(["train-sock-shop-azure-conv"], ActionMapping(mode="delta"))


def test_constant_output_matches_the_set_point_policy():
    torch.manual_seed(0)
    actor = PerServiceActor(N_FEATURES, hidden=(16, 16))
    action = (0.25, 0.5, 0.0)
    set_constant_output(actor, action)
    out = actor(torch.randn(5, 7, N_FEATURES))
    torch.testing.assert_close(out, torch.tensor(action).expand(5, 7, 3), atol=0.05, rtol=0)
    # Still trainable: the last layer's weights are small, not zero.
    last = [m for m in actor.head if isinstance(m, torch.nn.Linear)][-1]
    assert 0 < last.weight.abs().max() < 0.05
    # The network's decisions on a scenario are those of the constant set-point.
    from drpc.teacher.policy import TeacherPolicy

    scenario = load_scenario("train-sock-shop-azure-conv")
    a = run_policy(scenario, TeacherPolicy.from_actor(actor, TARGET), progress=False).summary
    b = run_policy(scenario, constant_policy(action, TARGET), progress=False).summary
    assert a["cpu_core_hours"] == pytest.approx(b["cpu_core_hours"], rel=0.05)


def test_constant_output_checks_the_action_size():
    actor = PerServiceActor(N_FEATURES, hidden=(16, 16))
    with pytest.raises(ValueError, match="2 components, the actor 3"):
        set_constant_output(actor, (0.1, 0.2))
