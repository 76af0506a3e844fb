"""The simulated cluster: lifecycle, scheduling, resize, OOM, composition, safety, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from drpc.sim.app import app_from_data
from drpc.sim.cluster import ClusterSim
from drpc.sim.graph import compile_app
from drpc.sim.types import Action, ClusterConfig, Phase, ResizeStatus


def service(name: str, **kw) -> dict:
    base = {
        "name": name,
        "cpu_seconds_per_request": 0.01,
        "memory_base_mib": 100,
        "memory_per_inflight_mib": 1,
        "startup_s": 20,
        "min_replicas": 1,
        "max_replicas": 10,
        "replicas": 2,
        "cpu_request_millicores": 500,
        "cpu_limit_millicores": 1000,
        "memory_request_mib": 256,
        "memory_limit_mib": 1024,
    }
    base.update(kw)
    return base


def three_tier(mode: str = "sequential", **fe) -> dict:
    return {
        "name": "three",
        "provenance": "test",
        "services": [service("fe", **fe), service("a"), service("b")],
        "endpoints": [
            {
                "name": "e",
                "entry": "fe",
                "weight": 1,
                "slo_p99_ms": 500,
                "calls": [
                    {"caller": "fe", "callee": "a", "mode": mode},
                    {"caller": "fe", "callee": "b", "mode": mode},
                ],
            }
        ],
    }


def make_sim(
    data: dict, rps: float = 50.0, intervals: int = 40, seed: int = 0, **cfg
) -> ClusterSim:
    config = ClusterConfig(**{"n_nodes": 2, "arrival_noise": "none", **cfg})
    load = np.full((intervals, config.substeps), rps)
    return ClusterSim(compile_app(app_from_data(data)), config, load, seed=seed)


def test_same_seed_same_run_and_seed_matters():
    def run(seed):
        sim = make_sim(three_tier(), rps=80, seed=seed, arrival_noise="poisson")
        out = []
        for i in range(10):
            act = Action(replicas=np.array([4, 3, 3])) if i == 2 else None
            out.append(sim.step(act).latency_p99_ms.copy())
        return np.array(out)

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_scale_up_pods_go_pending_starting_ready_after_startup():
    sim = make_sim(three_tier(), intervals=10)
    sim.step()
    obs = sim.step(Action(replicas=np.array([5, np.nan, -1])))  # NaN / -1: no change
    assert list(obs.replicas_desired) == [5, 2, 2]
    assert obs.replicas_ready[0] == 2  # started 1 s after the interval began; startup 20 s
    phases = obs.pods.phase[obs.pods.service == 0]
    assert (phases == Phase.STARTING).sum() == 3
    obs = sim.step()  # 30 s after the action: ready (startup 20 s +/- 10%)
    assert obs.replicas_ready[0] == 5


def test_observed_cpu_and_working_set_count_ready_pods_only():
    """Starting pods burn CPU (JVM warm-up) and hold a bare working set; the per-service
    observation counts Ready pods only, as the HPA does, so a utilisation rule does not
    scale out for the pods it just started."""
    sim = make_sim(three_tier(), intervals=10)
    sim.step()
    obs = sim.step(Action(replicas=np.array([5, np.nan, np.nan])))
    pods = obs.pods
    fe = pods.service == 0
    starting = fe & (pods.phase == Phase.STARTING)
    assert starting.sum() == 3 and pods.cpu_usage_millicores[starting].min() > 0
    ready = fe & (pods.phase == Phase.READY)
    assert obs.cpu_usage_millicores[0] == pytest.approx(pods.cpu_usage_millicores[ready].sum())
    assert obs.cpu_usage_millicores[0] < pods.cpu_usage_millicores[fe].sum()


def test_scale_down_stops_serving_at_once_and_frees_after_grace():
    sim = make_sim(three_tier(replicas=4), intervals=10)
    sim.step()
    obs = sim.step(Action(replicas=np.array([1, 2, 2])))
    assert obs.replicas_ready[0] == 1
    terminating = (obs.pods.service == 0) & (obs.pods.phase == Phase.TERMINATING)
    assert terminating.sum() == 3  # hold their requests for the grace period
    obs = sim.step()
    assert ((obs.pods.service == 0) & (obs.pods.phase == Phase.TERMINATING)).sum() == 0


def test_pods_that_do_not_fit_stay_pending():
    # One node of 2 cores: 2 + 2 + 2 pods x 500m = 3 cores of requests do not fit.
    sim = make_sim(three_tier(), intervals=5, n_nodes=1, node_cpu_millicores=2000)
    obs = sim.step()
    assert obs.pods_pending.sum() == 2
    assert obs.replicas_ready.sum() == 4
    obs = sim.step(Action(replicas=np.array([1, 1, 2])))  # frees 1 core after the grace period
    obs = sim.step()
    assert obs.pods_pending.sum() == 0


def test_in_place_resize_applies_after_delay_and_raises_capacity():
    # fe alone saturates at 1 core (100 req/s at 10 ms): 150 req/s overloads it.
    sim = make_sim(three_tier(replicas=1), rps=150, intervals=10)
    before = sim.step()
    assert before.error_rate[0] > 0 or before.latency_p99_ms[0] > 1000
    new = np.array([2000.0, np.nan, np.nan])
    obs = sim.step(Action(cpu_limit_millicores=new, cpu_request_millicores=new))
    fe = obs.pods.service == 0
    assert np.all(obs.pods.cpu_limit_millicores[fe] == 2000)  # actuated 3 s into the interval
    assert np.all(obs.pods.resize_status[fe] == ResizeStatus.NONE)
    assert obs.cpu_limit_millicores[0] == 2000  # the template follows
    for _ in range(3):
        obs = sim.step()
    assert obs.latency_p99_ms[0] < before.latency_p99_ms[0]


def test_resize_beyond_node_is_infeasible_and_beyond_free_room_deferred():
    sim = make_sim(three_tier(), intervals=5, node_cpu_millicores=4000)
    sim.step()
    big = np.array([5000.0, np.nan, np.nan])  # more than a node's allocatable
    obs = sim.step(Action(cpu_request_millicores=big, cpu_limit_millicores=big))
    fe = obs.pods.service == 0
    assert np.all(obs.pods.resize_status[fe] == ResizeStatus.INFEASIBLE)
    assert np.all(obs.pods.cpu_limit_millicores[fe] == 1000)  # unchanged
    # 3200m fits an empty node but not next to the other pods: Deferred (retried).
    mid = np.array([3200.0, np.nan, np.nan])
    obs = sim.step(Action(cpu_request_millicores=mid, cpu_limit_millicores=mid))
    assert np.all(obs.pods.resize_status[obs.pods.service == 0] == ResizeStatus.DEFERRED)
    # Shrinking the others makes room; the deferred resize is admitted on a later sync.
    small = np.array([np.nan, 100.0, 100.0])
    sim.step(Action(cpu_request_millicores=small, cpu_limit_millicores=small))
    obs = sim.step()
    assert (obs.pods.cpu_limit_millicores[obs.pods.service == 0] == 3200).any()


def test_oom_kill_restarts_with_backoff():
    # 1.0 MiB per in-flight request and a 120 MiB limit over a 100 MiB base: overload -> OOM.
    data = three_tier(replicas=1, memory_limit_mib=120, memory_request_mib=120)
    sim = make_sim(data, rps=150, intervals=30)
    kills = []
    for _ in range(30):
        obs = sim.step()
        kills.append(obs.oom_kills[0])
    assert sum(kills) >= 2
    restarts = obs.pods.restarts[obs.pods.service == 0]
    assert restarts.max() >= 1


def test_parallel_fanout_is_faster_than_sequential():
    seq = make_sim(three_tier("sequential"), rps=30, intervals=3).step()
    par = make_sim(three_tier("parallel"), rps=30, intervals=3).step()
    assert par.endpoint_latency_mean_ms[0] < seq.endpoint_latency_mean_ms[0]
    own = seq.latency_mean_ms
    assert seq.endpoint_latency_mean_ms[0] == pytest.approx(own.sum(), rel=1e-6)
    assert par.endpoint_latency_mean_ms[0] == pytest.approx(own[0] + max(own[1], own[2]), rel=1e-6)
    assert np.all(
        np.diff(
            [
                seq.endpoint_latency_p50_ms[0],
                seq.endpoint_latency_p95_ms[0],
                seq.endpoint_latency_p99_ms[0],
            ]
        )
        > 0
    )


def test_actions_are_clamped_and_validated():
    sim = make_sim(three_tier(), intervals=5)
    obs = sim.step(Action(replicas=np.array([99, 0, 3])))
    assert list(obs.replicas_desired) == [10, 1, 3]
    with pytest.raises(ValueError, match="replicas"):
        sim.step(Action(replicas=np.array([1, 2])))
    obs = sim.step(Action(cpu_limit_millicores=np.array([1.0, 1e9, np.nan])))
    assert obs.cpu_limit_millicores[0] == ClusterConfig().min_cpu_millicores
    assert obs.cpu_limit_millicores[1] == 2 * sim.config.node_cpu_millicores
    assert obs.cpu_request_millicores[0] <= obs.cpu_limit_millicores[0]


def test_pod_table_must_be_read_before_next_step():
    sim = make_sim(three_tier(), intervals=5)
    obs = sim.step()
    sim.step()
    with pytest.raises(RuntimeError, match="before the next step"):
        _ = obs.pods


def test_cost_counts_scheduled_requests():
    sim = make_sim(three_tier(), intervals=3)
    obs = sim.step()
    assert obs.cpu_allocated_millicores == pytest.approx(6 * 500)
    assert obs.memory_allocated_mib == pytest.approx(6 * 256)


def test_node_cpu_contention_shares_a_full_node():
    # Limits of 3 x 2 pods x 4 cores on one 4-core node, requests 100m: the pods fit by request
    # but demand far more CPU than the node has, so they share it and latency grows.
    fat = {
        "cpu_request_millicores": 100,
        "cpu_limit_millicores": 4000,
        "cpu_seconds_per_request": 0.05,
    }
    data = {
        "name": "fat",
        "provenance": "test",
        "services": [service("fe", **fat), service("a", **fat), service("b", **fat)],
        "endpoints": three_tier()["endpoints"],
    }
    roomy = make_sim(data, rps=60, intervals=6, n_nodes=1, node_cpu_millicores=64000)
    tight = make_sim(data, rps=60, intervals=6, n_nodes=1, node_cpu_millicores=4000)
    for _ in range(5):
        o_roomy, o_tight = roomy.step(), tight.step()
    assert o_tight.node_cpu_usage_millicores[0] <= 4000 + 1e-6
    assert o_roomy.node_cpu_usage_millicores[0] > 4000  # 3 x 60 req/s x 50 ms = 9 cores
    assert o_tight.endpoint_latency_p99_ms[0] > 2 * o_roomy.endpoint_latency_p99_ms[0]


def test_generated_app_runs_and_stays_finite():
    from drpc.sim.generate import generate_app

    app = compile_app(generate_app(1000, seed=2))
    cfg = ClusterConfig(n_nodes=60)
    load = np.full((6, cfg.substeps), 0.8 * app.capacity_rps(app.replicas0))
    sim = ClusterSim(app, cfg, load, seed=0)
    for i in range(6):
        obs = sim.step(Action(replicas=app.replicas0 * 2) if i == 1 else None)
        for name in (
            "latency_p99_ms",
            "error_rate",
            "cpu_usage_millicores",
            "endpoint_latency_p99_ms",
        ):
            assert np.all(np.isfinite(getattr(obs, name))), name
    assert obs.replicas_ready.sum() > app.replicas0.sum()


def test_resize_one_pod_leaves_template_and_siblings():
    sim = make_sim(three_tier(), intervals=5)
    obs = sim.step()
    fe_uids = obs.pods.uid[obs.pods.service == 0]
    sim.resize_pods(fe_uids[:1], cpu_request_millicores=[800], cpu_limit_millicores=[1500])
    obs = sim.step()
    fe = obs.pods.service == 0
    limits = dict(
        zip(obs.pods.uid[fe].tolist(), obs.pods.cpu_limit_millicores[fe].tolist(), strict=True)
    )
    assert limits[int(fe_uids[0])] == 1500 and limits[int(fe_uids[1])] == 1000
    assert obs.cpu_limit_millicores[0] == 1000  # the Deployment template is unchanged
    with pytest.raises(KeyError, match="no live pod"):
        sim.resize_pods([10_000], cpu_limit_millicores=[500])
