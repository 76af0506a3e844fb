"""The evaluation harness and the ``drpc`` CLI on short runs of the bundled apps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from drpc.cli import main
from drpc.evaluate import SUMMARY_KEYS, evaluate, format_table
from drpc.policy import PolicyError, make_policy
from drpc.scenario import load_scenario
from drpc.sim.types import Action

# Two hours of the NASA launch-day window around its flash crowd, 4x compressed: 120 intervals.
SHORT = """\
name: short
app: trainticket
trace: {file: nasa, window_s: [1065600, 1072800], split: eval, time_compression: 4, peak_utilization: 0.8}
seed: 3
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("sc") / "short.yaml"
    path.write_text(SHORT)
    return load_scenario(path)


@pytest.fixture(scope="module")
def results(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "out"
    res = evaluate(
        scenario, ["static", "static:replicas=-2", "hpa:target=60", "oracle"], out, progress=False
    )
    return out, res


def test_summary_has_every_metric(results):
    _, res = results
    for r in res:
        for key in SUMMARY_KEYS:
            assert key in r.summary
        assert 0 <= r.summary["slo_violation_fraction"] <= 1
        assert 0 <= r.summary["failed_request_fraction"] <= 1
        assert r.summary["cpu_core_hours"] > 0
        assert r.summary["intervals"] == 120
    table = format_table(res)
    assert "hpa:target=60" in table and "oracle" in table


def test_outputs_are_written_and_readable(results, scenario):
    out, res = results
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["app"] == "trainticket"
    assert [p["policy"] for p in summary["policies"]] == [r.policy for r in res]
    d = out / "hpa_target_60"
    assert pq.read_table(d / "timeline.parquet").num_rows == 120
    assert pq.read_table(d / "services.parquet").num_rows == 120 * scenario.app.n_services
    assert pq.read_table(d / "endpoints.parquet").num_rows == 120 * scenario.app.n_endpoints
    assert (d / "plot.png").stat().st_size > 10_000
    assert (out / "comparison.png").stat().st_size > 10_000


def test_baselines_order_as_expected(results):
    _, res = results
    by = {r.policy: r.summary for r in res}
    # Every service at its maximum is the most expensive and, with the oracle, the safest.
    assert by["static:replicas=-2"]["cpu_core_hours"] > by["oracle"]["cpu_core_hours"]
    assert by["static:replicas=-2"]["cpu_core_hours"] > by["hpa:target=60"]["cpu_core_hours"]
    assert by["oracle"]["slo_violation_fraction"] <= by["static"]["slo_violation_fraction"]
    assert by["static"]["scaling_actions"] == 0


def test_hpa_scales_out_under_load(results):
    _, res = results
    hpa = next(r for r in res if r.policy == "hpa:target=60")
    ready = hpa.timeline.column("replicas_ready").to_numpy()
    assert ready.max() > ready[0]


def test_bad_policy_specs_fail_before_running():
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(PolicyError, match="unknown parameter 'targte'"):
        make_policy("hpa:targte=60")
    with pytest.raises(PolicyError, match="expects int"):
        make_policy("hpa:target=sixty")
    with pytest.raises(PolicyError, match="target must be"):
        make_policy("hpa:target=0")


def test_hpa_scale_down_window_keeps_pods_through_an_outage(scenario):
    """``hpa:scale_down_window_s`` is upstream's downscale stabilisation: after 20 busy
    intervals and a 24-interval (6 min) outage, the default 5-minute window has let the pods go,
    a 10-minute one still holds them."""
    from drpc.sim.cluster import ClusterSim

    busy = np.full((20, scenario.load_rps.shape[1]), float(scenario.load_rps.max()))
    load = np.concatenate([busy, np.zeros((24, busy.shape[1]))])
    end = {}
    for window_s in (300, 600):
        policy = make_policy(f"hpa:target=60,scale_down_window_s={window_s}")
        sim = ClusterSim(scenario.app, scenario.config, load, seed=1)
        obs = sim.reset()
        policy.reset(sim)
        while not sim.done:
            obs = sim.step(policy.act(obs))
        end[window_s] = int(obs.replicas_desired.sum())
    assert end[300] == int(scenario.app.min_replicas.sum()) < end[600]
    with pytest.raises(PolicyError, match="scale_down_window_s must be in"):
        make_policy("hpa:scale_down_window_s=7200")


class _Exploding:
    name = "exploding"

    def reset(self, sim):
        self.n = 0

    def act(self, obs):
        self.n += 1
        if self.n == 5:
            raise RuntimeError("policy crashed")
        return Action()


def test_nothing_is_partially_written(scenario, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="policy crashed"):
        evaluate(scenario, ["static", _Exploding()], out, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


def test_refuses_non_empty_out_without_overwrite(scenario, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        evaluate(scenario, ["static"], tmp_path, progress=False)
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_cli_builds_a_scenario_from_flags(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(
        [
            "evaluate",
            "--app", "online-boutique",
            "--trace", "alibaba",
            "--window", "21600:22200",
            "--peak-utilization", "0.7",
            "--slo-ms", "500",
            "--seed", "7",
            "--policy", "hpa:target=60",
            "--policy", "threshold",
            "--out", str(out),
            "--no-progress",
            "--no-plots",
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "hpa:target=60" in printed and "threshold" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["scenario"]["slo_ms"].values()) == {500}
    assert summary["scenario"]["intervals"] == 40  # 600 trace seconds / 15 s


def test_cli_errors_name_the_problem_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    rc = main(
        [
            "evaluate",
            "--app",
            "trainticket",
            "--trace",
            "nasa",
            "--window",
            "5:x",
            "--out",
            str(out),
        ]
    )
    assert rc == 2
    assert "--window" in capsys.readouterr().err
    rc = main(["evaluate", "--app", "nope", "--trace", "nasa", "--out", str(out)])
    assert rc == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_python_m_drpc_help():
    proc = subprocess.run(
        [sys.executable, "-m", "drpc", "evaluate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--peak-utilization" in proc.stdout and "hpa[:target=80" in proc.stdout


def test_oracle_plans_ahead_of_startup(scenario):
    from drpc.baselines import OraclePolicy

    oracle = OraclePolicy()
    sim = scenario.make_sim()
    sim.reset()
    oracle.reset(sim)
    plan = oracle.plan
    assert plan.shape == (scenario.n_intervals, scenario.app.n_services)
    assert np.all(plan >= scenario.app.min_replicas) and np.all(plan <= scenario.app.max_replicas)
    # Each interval's plan covers the need of every interval up to the startup lead ahead.
    need, lead = oracle.need, oracle.lead
    for t in range(0, scenario.n_intervals, 7):
        assert np.all(plan[t] >= need[t : t + lead + 1].max(axis=0))
    assert (plan.sum(axis=1) > need.sum(axis=1)).any()  # it did scale ahead somewhere


def test_default_scenario_is_bundled():
    sc = load_scenario("default")
    assert sc.app.app.name == "trainticket"
    assert sc.n_intervals == 1440
    assert Path(sc.source).name == "default.yaml"


@pytest.mark.parametrize("name", ["default", "hotel-reservation-nasa", "sock-shop-nasa"])
def test_auto_cluster_has_the_cpu_the_app_burns_at_capacity(name):
    """``n_nodes: auto``: enough nodes for the requests at max replicas and for the CPU the
    pods use at the app's capacity (Hotel Reservation requests 100m per pod with 1000m limits:
    sized on requests alone, its one node had 16 cores where its capacity needs 44)."""
    sc = load_scenario(name)
    app, cfg = sc.app, sc.config
    used_m = app.capacity_rps() * float((app.visits_per_request * app.cpu_s).sum()) * 1e3
    assert cfg.n_nodes * cfg.node_cpu_millicores >= used_m
    requested_m = float((app.max_replicas * app.cpu_request_m0).sum())
    assert cfg.n_nodes * cfg.node_cpu_millicores >= 1.15 * requested_m
