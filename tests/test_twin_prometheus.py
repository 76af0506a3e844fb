"""The twin's /metrics: exposition format and names (always), and a real Prometheus server
scraping it (skipped when the prometheus binary is missing; CI installs it): PromQL from
docs/metrics.md returns the simulation's values.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from drpc.twin.metrics import ISTIO_BUCKETS_MS
from drpc.twin.testing import (
    find_binary,
    load_cached_scenario,
    prometheus_server,
    running_twin,
    wait_until,
)

PROMETHEUS = find_binary("prometheus", "/usr/bin/prometheus", "/usr/local/bin/prometheus")
SPEED = 100.0  # one 15 s interval every 0.15 s of wall time
NS = "trainticket"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with running_twin(
        load_cached_scenario("default"), speed=SPEED, directory=tmp_path_factory.mktemp("twin")
    ) as t:
        yield t


def _scrape(twin) -> str:
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(twin.metrics_url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(
        "text/plain; version=0.0.4"
    )
    return r.text


def test_exposition_parses_and_has_every_name_of_docs_metrics_md(twin):
    wait_until(lambda: twin.state.steps >= 3, 10, what="a few simulated intervals")
    text = _scrape(twin)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    names = {s.name for f in families.values() for s in f.samples} | set(families)  # incl. empty
    documented = set(re.findall(r"\b(?:container|kube|istio|envoy)_[a-z_]+", DOCS.read_text()))
    missing = documented - names - {"envoy_cluster_upstream_rq_time"}  # "no standard metric"
    assert not missing, missing
    assert families["container_cpu_usage_seconds"].type == "counter"
    assert families["istio_request_duration_milliseconds"].type == "histogram"
    assert families["kube_deployment_spec_replicas"].type == "gauge"
    spec = {
        s.labels["deployment"]: s.value for s in families["kube_deployment_spec_replicas"].samples
    }
    assert spec == {
        d: float(twin.state.get("deployments", NS, d).body["spec"]["replicas"]) for d in spec
    }
    for s in families["kube_pod_container_resource_requests"].samples:
        assert (s.labels["resource"], s.labels["unit"]) in (("cpu", "core"), ("memory", "byte"))
    # histograms: cumulative buckets, +Inf equals _count
    buckets: dict[tuple, list[tuple[float, float]]] = {}
    counts = {}
    for s in families["istio_request_duration_milliseconds"].samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_bucket"):
            buckets.setdefault(key, []).append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            counts[key] = s.value
    assert len(buckets) == len(twin.state.services) + len(twin.state.endpoints)
    for key, series in buckets.items():
        values = [v for _, v in sorted(series)]
        assert all(b >= a - 1e-9 for a, b in zip(values, values[1:], strict=False))
        assert values[-1] == pytest.approx(counts[key])
    # counters increase from one scrape to the next (the simulation keeps running)
    first = {
        s.labels["pod"]: s.value
        for s in families["container_cpu_usage_seconds"].samples
        if s.name.endswith("_total")
    }
    wait_until(lambda: twin.state.steps >= 10, 10, what="more intervals")
    again = text_string_to_metric_families(_scrape(twin))
    later = {s.labels["pod"]: s.value for f in again if f.name == "container_cpu_usage_seconds"
             for s in f.samples if s.name.endswith("_total")}  # fmt: skip
    common = set(first) & set(later)
    assert common and all(later[p] >= first[p] for p in common)
    assert sum(later[p] for p in common) > sum(first[p] for p in common)


def _history_rate(twin, t0: float, t1: float, service: int | None = None) -> float:
    """Cores of simulated CPU between wall times t0 and t1, as the counter integrates them."""
    used = 0.0
    for rec in twin.state.history():
        if t0 < rec.wall_s <= t1:
            usage = (
                rec.cpu_usage_millicores.sum()
                if service is None
                else rec.cpu_usage_millicores[service]
            )
            used += usage / 1000.0 * twin.state.interval_wall_s
    return used / (t1 - t0)


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"
)
def test_real_prometheus_scrapes_the_twin(twin, tmp_path):
    from prometheus_api_client import PrometheusConnect

    target = f"127.0.0.1:{twin.metrics_port}"
    with (
        prometheus_server([target], tmp_path / "prom", binary=PROMETHEUS) as url,
        requests.Session() as session,
    ):
        session.trust_env = False
        prom = PrometheusConnect(url=url, disable_ssl=True, session=session, timeout=10)

        def value(query: str, at: float | None = None) -> float:
            params = {"time": f"{at:.3f}"} if at is not None else None
            result = prom.custom_query(query, params=params)
            assert len(result) == 1, (query, result)
            return float(result[0]["value"][1])

        wait_until(lambda: value(f'up{{instance="{target}"}}') == 1, 30, 0.5, "the first scrape")
        window = "6s"
        probe = 'container_cpu_usage_seconds_total{pod=~"ts-ui-dashboard-.*"}'
        # rate() extrapolates to the window's start only when older samples exist: wait for them
        wait_until(lambda: value(f"count_over_time({probe}[12s])") >= 9, 40, 0.5, "9 scrapes")

        # CPU: rate() of the wall-time counter returns the simulated usage (docs/metrics.md)
        at = time.time() - 0.5
        raw = prom.custom_query(f"{probe}[{window}]", params={"time": f"{at:.3f}"})
        stamps = [float(t) for t, _ in raw[0]["values"]]
        t0, t1 = stamps[0], stamps[-1]
        total = value(
            f'sum(rate(container_cpu_usage_seconds_total{{namespace="{NS}",container!=""}}[{window}]))',
            at,
        )
        assert total == pytest.approx(_history_rate(twin, t0, t1), rel=0.1)
        s = twin.state.services.index("ts-ui-dashboard")
        per_svc = value(
            f'1000 * sum(rate(container_cpu_usage_seconds_total{{namespace="{NS}",pod=~"ts-ui-dashboard-.*",'
            f'container!="",container!="POD"}}[{window}]))', at,
        )  # fmt: skip
        assert per_svc == pytest.approx(1000 * _history_rate(twin, t0, t1, s), rel=0.1)
        recent = [r for r in twin.state.history() if t0 < r.wall_s <= t1]
        assert per_svc == pytest.approx(
            np.mean([r.cpu_usage_millicores[s] for r in recent]), rel=0.25
        )

        # requests and latency (Istio names)
        rps = value(
            f'sum(rate(istio_requests_total{{reporter="destination",destination_workload="ts-ui-dashboard",'
            f'destination_workload_namespace="{NS}"}}[{window}]))', at,
        )  # fmt: skip
        assert rps == pytest.approx(np.mean([r.request_rate_rps[s] for r in recent]), rel=0.25)
        p99 = value(
            "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket"
            f'{{reporter="destination",destination_workload="ts-ui-dashboard"}}[{window}])))', at,
        )  # fmt: skip
        # The window pools every interval's requests: its p99 lies between the intervals' p99s,
        # up to the lognormal fit (x0.5..x2) and Istio's coarse buckets (linear within a bucket).
        p99s = [r.latency_p99_ms[s] for r in recent]
        lo = max([0.0] + [b for b in ISTIO_BUCKETS_MS if b <= 0.5 * min(p99s)])
        hi = min(b for b in ISTIO_BUCKETS_MS if b >= 2.0 * max(p99s))
        assert math.isfinite(p99) and lo <= p99 <= hi, (p99, min(p99s), max(p99s))
        mean = value(
            'sum(rate(istio_request_duration_milliseconds_sum{reporter="destination",destination_workload="ts-ui-dashboard"}'
            f'[{window}])) / sum(rate(istio_request_duration_milliseconds_count{{reporter="destination",'
            f'destination_workload="ts-ui-dashboard"}}[{window}]))', at,
        )  # fmt: skip
        rates = np.array([r.request_rate_rps[s] for r in recent])
        sim_mean = float(np.sum(rates * [r.latency_mean_ms[s] for r in recent]) / rates.sum())
        assert mean == pytest.approx(sim_mean, rel=0.15)
        per_path = prom.custom_query(
            "sum by (request_path) (rate(istio_requests_total"
            f'{{reporter="source",source_workload="istio-ingressgateway"}}[{window}]))'
        )
        assert {r["metric"]["request_path"] for r in per_path} == set(twin.state.endpoints)
        throttled = value(
            'sum(rate(container_cpu_cfs_throttled_periods_total{pod=~"ts-ui-dashboard-.*",container!=""}'
            f'[{window}])) / sum(rate(container_cpu_cfs_periods_total{{pod=~"ts-ui-dashboard-.*",container!=""}}[{window}]))', at,
        )  # fmt: skip
        assert 0.0 <= throttled <= 1.0

        # replicas: kube-state-metrics names follow the API
        svc = "ts-travel-service"
        twin.state.update_deployment(NS, svc, replicas=3)
        query = f'kube_deployment_spec_replicas{{namespace="{NS}",deployment="{svc}"}}'
        wait_until(lambda: value(query) == 3, 15, 0.5, "Prometheus to see 3 replicas")
        assert twin.state.get("deployments", NS, svc).body["spec"]["replicas"] == 3
        ready = f'kube_deployment_status_replicas_ready{{deployment="{svc}"}}'
        wait_until(lambda: value(ready) == 3, 15, 0.5, "3 ready replicas in Prometheus")
        pods = f'sum(kube_pod_status_phase{{phase="Running",pod=~"{svc}-.*"}})'
        assert value(pods) == 3
        requests_cpu = (
            f'1000 * max(kube_pod_container_resource_requests{{resource="cpu",pod=~"{svc}-.*"}})'
        )
        assert value(requests_cpu) == pytest.approx(50)
