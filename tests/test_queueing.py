"""The simulator's queueing model against Erlang-C (M/M/c) and a discrete-event simulation.

One service, one pod with a CPU limit of c cores (c single-threaded servers), Poisson arrivals
at utilisation 0.5, 0.7 and 0.9, arrival noise off: the simulator's reported mean queueing
delay must match the textbook Erlang-C waiting time, and its p99 response time must match an
independent FCFS M/M/c discrete-event simulation, within 5%.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from drpc.sim.app import app_from_data
from drpc.sim.cluster import ClusterSim
from drpc.sim.graph import compile_app
from drpc.sim.queueing import erlang_b, erlang_c
from drpc.sim.types import ClusterConfig

SERVICE_S = 0.05  # CPU seconds per request


def erlang_c_textbook(c: int, a: float) -> float:
    """Erlang-C by the Erlang-B recursion B(k) = a B(k-1) / (k + a B(k-1))."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def mmc_des(
    c: int, lam: float, service_s: float, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """FCFS M/M/c by direct simulation: waiting and response times of n customers."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / lam, n))
    services = rng.exponential(service_s, n)
    free = [0.0] * c  # heap of the times each server becomes free
    wait = np.empty(n)
    for i in range(n):
        t_free = heapq.heappop(free)
        start = max(t_free, arrivals[i])
        wait[i] = start - arrivals[i]
        heapq.heappush(free, start + services[i])
    burn = n // 10
    return wait[burn:], (wait + services)[burn:]


def one_service_sim(cores: float, rate_rps: float, intervals: int = 8) -> ClusterSim:
    millicores = cores * 1000
    app = app_from_data(
        {
            "name": "mmc",
            "provenance": "test",
            "services": [
                {
                    "name": "svc",
                    "cpu_seconds_per_request": SERVICE_S,
                    "memory_base_mib": 64,
                    "memory_per_inflight_mib": 0.1,
                    "startup_s": 1,
                    "min_replicas": 1,
                    "max_replicas": 1,
                    "replicas": 1,
                    "cpu_request_millicores": millicores,
                    "cpu_limit_millicores": millicores,
                    "memory_request_mib": 4096,
                    "memory_limit_mib": 4096,
                }
            ],
            "endpoints": [{"name": "e", "entry": "svc", "weight": 1, "slo_p99_ms": 10_000}],
        }
    )
    cfg = ClusterConfig(n_nodes=1, arrival_noise="none")
    load = np.full((intervals, cfg.substeps), rate_rps)
    return ClusterSim(compile_app(app), cfg, load, seed=1)


def test_continuous_erlang_matches_textbook_for_integer_servers():
    for c in (1, 2, 3, 5, 8, 20):
        for rho in (0.1, 0.5, 0.7, 0.9, 0.99):
            a = rho * c
            got = float(erlang_c(np.array([c]), np.array([a]))[0])
            assert got == pytest.approx(erlang_c_textbook(c, a), rel=1e-9)


def test_erlang_b_is_monotone_in_real_servers():
    c = np.linspace(0.5, 10, 50)
    b = erlang_b(c, np.full_like(c, 3.0))
    assert np.all(np.diff(b) < 0)


@pytest.mark.parametrize("cores", [1, 2, 4])
@pytest.mark.parametrize("rho", [0.5, 0.7, 0.9])
def test_simulator_matches_erlang_c_and_des(cores: int, rho: float):
    lam = rho * cores / SERVICE_S
    sim = one_service_sim(cores, lam)
    obs = [sim.step() for _ in range(sim.n_intervals)]
    wq_sim_ms = np.mean([o.queueing_delay_ms[0] for o in obs])
    p99_sim_ms = np.mean([o.latency_p99_ms[0] for o in obs])
    mean_sim_ms = np.mean([o.latency_mean_ms[0] for o in obs])

    a = lam * SERVICE_S
    wq_exact_ms = 1000 * erlang_c_textbook(cores, a) * SERVICE_S / (cores - a)
    assert wq_sim_ms == pytest.approx(wq_exact_ms, rel=0.05)
    assert mean_sim_ms == pytest.approx(wq_exact_ms + 1000 * SERVICE_S, rel=0.05)

    wait, response = mmc_des(cores, lam, SERVICE_S, n=300_000, seed=cores * 10 + int(rho * 10))
    assert 1000 * wait.mean() == pytest.approx(wq_exact_ms, rel=0.05)  # the DES itself is sound
    p99_des_ms = 1000 * float(np.quantile(response, 0.99))
    assert p99_sim_ms == pytest.approx(p99_des_ms, rel=0.05)
    # Served everything, nothing failed, no backlog at these utilisations.
    assert obs[-1].error_rate[0] == 0.0
    assert obs[-1].backlog_requests[0] == 0.0
    assert math.isclose(obs[-1].throughput_rps[0], lam, rel_tol=1e-9)


def test_overload_builds_backlog_and_times_out():
    cores = 1
    capacity = cores / SERVICE_S
    sim = one_service_sim(cores, 1.5 * capacity, intervals=60)
    obs = [sim.step() for _ in range(sim.n_intervals)]
    backlog = [o.backlog_requests[0] for o in obs]
    assert backlog[1] > backlog[0] > 0  # the excess carries over
    # Past the 10 s timeout the excess fails: a third of arrivals at 1.5x capacity.
    assert obs[-1].error_rate[0] == pytest.approx(1 / 3, abs=0.03)
    assert obs[-1].latency_p99_ms[0] >= 9_000


def test_quantile_table_matches_the_newton_solver():
    from drpc.sim.queueing import QUANTILES, SojournTable, mmc_sojourn_quantiles_s

    rng = np.random.default_rng(0)
    c = np.concatenate([np.ones(2000), rng.uniform(1, 40, 2000)])
    a = rng.uniform(0.0, 0.98, c.size) * c
    s = rng.uniform(0.001, 0.1, c.size)
    pw = erlang_c(c, a)
    ref = mmc_sojourn_quantiles_s(QUANTILES, c, a, s, newton_steps=8, wait_probability=pw)
    got = SojournTable()(pw, c - a, s)
    assert np.max(np.abs(got / ref - 1)) < 0.005
