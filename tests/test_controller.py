"""The live controller (drpc/controller): config, PromQL templating, every safety rule, the
policy client and HPA fallback (against a local stub of /v1/decide), the Kubernetes side
against the REAL digital twin with the official client (scale + resize, injected 409/500/404,
retries, idempotence, dry run, allowlist), and the whole loop against a REAL Prometheus that
scrapes the twin (skipped when the prometheus binary is missing), including a Prometheus
outage (hold, reported) and its restart (resume).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from drpc.controller.apply import KubeApplier, cpu_millicores, load_kube_clients
from drpc.controller.audit import AuditLog
from drpc.controller.config import ConfigError, config_from_dict, load_config
from drpc.controller.loop import Controller
from drpc.controller.metrics import (
    DEFAULT_QUERIES,
    SERVICE_FIELDS,
    MetricsUnavailableError,
    PrometheusSource,
    escape_label_value,
    escape_regex,
    render_query,
)
from drpc.controller.policy_client import (
    PolicyClient,
    PolicyUnavailableError,
    hpa_fallback_replicas,
)
from drpc.controller.safety import (
    Action,
    Observed,
    Proposal,
    SafetyState,
    clamp_to_bounds,
    converge_new_pods,
    in_cooldown,
    keep_cpu_capacity,
    limit_ratio_step,
    limit_replica_step,
    memory_limit_not_below_working_set,
    namespace_allowed,
    no_scale_down_without_ready_pods,
    plan_service,
    request_keeping_ratio,
    stabilize_scale_down,
    within_dead_band,
)
from drpc.serve.schema import DecideResponse, Snapshot
from drpc.twin.testing import (
    FaultInjector,
    find_binary,
    free_port,
    load_cached_scenario,
    running_twin,
    wait_until,
)

NS = "trainticket"
SVC = "ts-travel-service"
PROMETHEUS = find_binary("prometheus", "/usr/bin/prometheus", "/usr/local/bin/prometheus")


def cfg(**kw):
    base = {
        "namespaces": [NS],
        "metrics_port": -1,
        "k8s_backoff_s": 0.01,
        "k8s_backoff_max_s": 0.05,
    }
    base.update(kw)
    return config_from_dict(base)


# ------------------------------------------------------------------------------------- config


def test_config_yaml_round_trip_and_field_naming_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "namespaces": [NS],
                "sync_period_s": 5,
                "services_bounds": {f"{NS}/{SVC}": {"max_replicas": 6}},
                "queries": {"request_rate_rps": 'sum(my_rps{app="$svc"})'},
            }
        )
    )
    c = load_config(path, dry_run=True)
    assert c.sync_period_s == 5.0 and c.dry_run is True
    assert c.bounds_for(NS, SVC).max_replicas == 6 and c.bounds_for(NS, "other").max_replicas == 20
    for bad, msg in (
        ({"sync_period": 5}, "did you mean 'sync_period_s'"),
        ({"services_bounds": {"a": {"max_replica": 3}}}, "did you mean 'max_replicas'"),
        ({"max_replicas": "x"}, "max_replicas: expected int"),
        ({"queries": {"request_rate": "x"}}, "did you mean 'request_rate_rps'"),
        ({"namespaces": ["Bad_NS"]}, "not a namespace name"),
        ({"min_replicas": 5, "max_replicas": 2}, "min_replicas"),
        ({"rate_window": "1 minute"}, "rate_window"),
        ({"sync_period_s": 0}, "sync_period_s must be > 0"),
    ):
        with pytest.raises(ConfigError, match=msg):
            config_from_dict(bad)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


# ------------------------------------------------------------------------------------- PromQL


def test_queries_render_with_escaped_validated_names_only():
    for key, template in DEFAULT_QUERIES.items():
        q = render_query(template, namespace=NS, service="ts-ui.v2", window="1m")
        assert "$" not in q, key
    q = render_query(
        DEFAULT_QUERIES["cpu_usage_millicores"], namespace=NS, service="a.b", window="1m"
    )
    assert 'pod=~"a\\\\.b-[a-z0-9]+-[a-z0-9]+"' in q and 'namespace="trainticket"' in q
    assert escape_label_value('a"b\\c\n') == 'a\\"b\\\\c\\n'
    assert escape_regex("a.b-c") == "a\\.b\\-c"
    for evil in ('x"} or vector(1) #', "UPPER", "a b", ""):
        with pytest.raises(ValueError):
            render_query('up{x="$svc"}', namespace=NS, service=evil, window="1m")
    with pytest.raises(ValueError):
        render_query("up", namespace='ns"', service=None, window="1m")
    with pytest.raises(ValueError, match="placeholder"):
        render_query("up{$nope}", namespace=NS, service="a", window="1m")


def _fake_prometheus(values, fresh_s, fail=False):
    """A query function: field -> value, fresh_* -> timestamps; None = empty result."""

    def query(promql, at_s):
        if fail:
            raise MetricsUnavailableError("ConnectionError: refused")
        for key, template in DEFAULT_QUERIES.items():
            if key.startswith("endpoint_"):
                if promql != render_query(template, namespace=NS, service=None, window="1m"):
                    continue
                if key == "endpoint_rps":
                    return [{"metric": {"request_path": "login"}, "value": [at_s, "12.5"]}]
                return []
            if promql == render_query(template, namespace=NS, service=SVC, window="1m"):
                if key.startswith("fresh_"):
                    t = fresh_s.get(key[6:], at_s - 1)
                    return [] if t is None else [{"metric": {}, "value": [at_s, str(t)]}]
                v = values.get(key)
                return [] if v is None else [{"metric": {}, "value": [at_s, str(v)]}]
        raise AssertionError(promql)

    return query


GOOD = {
    "request_rate_rps": 40.0, "throughput_rps": 39.0, "error_rate": 0.025, "latency_p99_ms": "NaN",
    "cpu_usage_millicores": 300.0, "cpu_throttled_ratio": 0.1, "memory_working_set_mib": 200.0,
    "replicas_desired": 2, "replicas_ready": 2, "pods_pending": 0, "cpu_limit_millicores": 500.0,
    "memory_limit_mib": 512.0, "cpu_request_millicores": 200.0, "memory_request_mib": 256.0,
    "backlog_requests": None,
}  # fmt: skip


def test_snapshot_from_prometheus_staleness_and_holds():
    c = cfg(services=[SVC], max_metric_age_s=30)
    now = 1_800_000_000.0
    src = PrometheusSource(c, query=_fake_prometheus(GOOD, {}))
    try:
        r = src.read([(NS, SVC)], now_s=now)
        assert r.hold_reason is None and r.held == {}
        m = r.snapshot.services[0]
        assert (m.replicas_ready, m.cpu_usage_millicores, m.latency_p99_ms) == (2, 300.0, 0.0)
        assert m.backlog_requests == 0.0  # optional and missing: the schema default
        assert r.snapshot.endpoints[0].rps == 12.5 and r.snapshot.entry_rps_history == []
        ages = r.readings[f"{NS}/{SVC}"].age_s(now)
        assert set(ages) == set(SERVICE_FIELDS) and all(
            a == pytest.approx(1.0) for a in ages.values()
        )
        r2 = src.read([(NS, SVC)], now_s=now + 15)
        assert r2.snapshot.entry_rps_history == [12.5]  # earlier syncs' entry rate
        Snapshot.model_validate_json(r2.snapshot.model_dump_json())  # the wire format

        stale = PrometheusSource(c, query=_fake_prometheus(GOOD, {"cadvisor": now - 90}))
        r = stale.read([(NS, SVC)], now_s=now)
        assert (
            r.snapshot is None
            and "stale metric: cpu_usage_millicores is 90 s old" in r.held[f"{NS}/{SVC}"]
        )
        stale.close()
        missing = PrometheusSource(c, query=_fake_prometheus({**GOOD, "replicas_ready": None}, {}))
        r = missing.read([(NS, SVC)], now_s=now)
        assert "missing metric: replicas_ready" in r.held[f"{NS}/{SVC}"]
        missing.close()
        invalid = PrometheusSource(
            c, query=_fake_prometheus({**GOOD, "cpu_limit_millicores": 0}, {})
        )
        assert (
            "invalid metrics: cpu_limit_millicores"
            in invalid.read([(NS, SVC)], now).held[f"{NS}/{SVC}"]
        )
        invalid.close()
        down = PrometheusSource(c, query=_fake_prometheus(GOOD, {}, fail=True))
        r = down.read([(NS, SVC)], now_s=now)
        assert r.hold_reason.startswith("prometheus unavailable") and r.snapshot is None
        down.close()
    finally:
        src.close()


# ------------------------------------------------------------------------------- safety rules


def test_each_safety_rule():
    assert namespace_allowed("a", ["a", "b"]) and not namespace_allowed("c", ["a"])
    assert not namespace_allowed("a", [])  # an empty allowlist allows nothing
    assert clamp_to_bounds(25, 1, 20) == 20 and clamp_to_bounds(0, 1, 20) == 1
    assert limit_replica_step(2, 10, 4) == 6 and limit_replica_step(10, 1, 4) == 6
    assert limit_replica_step(3, 4, 4) == 4
    assert limit_ratio_step(500, 2000, 0.5) == 750 and limit_ratio_step(500, 100, 0.5) == 250
    assert within_dead_band(500, 520, 0.05) and not within_dead_band(500, 530, 0.05)
    assert in_cooldown(100.0, 110.0, 30) and not in_cooldown(100.0, 130.0, 30)
    assert not in_cooldown(None, 0.0, 30)
    # stabilisation: down only to the highest recommendation of the window; window boundary strict
    recs = [(0.0, 8), (100.0, 5), (200.0, 3)]
    assert stabilize_scale_down(recs, 200.0, 300, current=6) == 6  # 8 still in the window
    assert stabilize_scale_down(recs, 300.0, 300, current=6) == 5  # t=0 exactly at the boundary
    assert stabilize_scale_down([(0.0, 4), (1.0, 9)], 1.0, 300, current=5) == 9  # up: at once
    assert no_scale_down_without_ready_pods(4, 0, 2) == 4
    assert (
        no_scale_down_without_ready_pods(4, 0, 6) == 6
        and no_scale_down_without_ready_pods(4, 1, 2) == 2
    )
    assert memory_limit_not_below_working_set(100, 400, ready=2) == pytest.approx(220)
    assert memory_limit_not_below_working_set(100, 400, ready=0) == 100
    assert request_keeping_ratio(250, 1000, 500, 1, 1) == 125  # decision's ratio
    assert request_keeping_ratio(None, 0, 500, 50, 200) == 125  # the current ratio
    assert request_keeping_ratio(2000, 1000, 500, 1, 1) == 500  # never above the limit


def _obs(**kw):
    base = dict(replicas=4, replicas_ready=4, cpu_limit_millicores=500, cpu_request_millicores=250,
                memory_limit_mib=512, memory_request_mib=256, memory_working_set_mib=400)  # fmt: skip
    base.update(kw)
    return Observed(**base)


def test_converge_new_pods_resizes_only_pods_off_the_applied_limits():
    pods = [(1500.0, 750.0, 512.0, 256.0), (500.0, 250.0, 512.0, 256.0), (2000.0, 1000, 700, 350)]
    targets = {"cpu": (1500.0, 750.0), "memory": (512.0, 256.0)}
    (cpu, mem) = converge_new_pods(NS, SVC, pods, targets, planned=[])
    assert (cpu.knob, cpu.old, cpu.new, cpu.new_request, cpu.source) == (
        "cpu", 500.0, 1500.0, 750.0, "converge")  # fmt: skip
    assert "2 pod(s)" in cpu.reason  # the template pod and the larger one, both to the target
    assert (mem.knob, mem.old, mem.new) == ("memory", 700, 512.0)
    # a knob the plan changes this sync is left to that action; no target: nothing to converge
    assert [a.knob for a in converge_new_pods(NS, SVC, pods, targets, planned=["cpu"])] == [
        "memory"
    ]
    assert converge_new_pods(NS, SVC, pods, {}, planned=[]) == []
    assert converge_new_pods(NS, SVC, pods[:1], targets, planned=[]) == []


def test_plan_service_composes_the_rules():
    c = cfg(cooldown_replicas_s=60, scale_down_stabilization_s=120, max_replica_step=2)
    st = SafetyState()
    bounds = c.bounds_for(NS, SVC)
    up = Proposal(NS, SVC, "policy", "p", replicas=30, cpu_limit_millicores=5000,
                  cpu_request_millicores=2500, memory_limit_mib=100, memory_request_mib=50)  # fmt: skip
    actions, notes = plan_service(up, _obs(memory_working_set_mib=1600), bounds, c, st, 0.0)
    by = {a.knob: a for a in actions}
    assert by["replicas"].new == 6  # 30 -> bounds 20 -> step +2
    assert by["cpu"].new == 750 and by["cpu"].new_request == 375  # step x1.5, ratio kept
    assert by["memory"].new == 440  # 100 -> not below the working set (400/pod x 1.1)
    assert "memory: kept above the working set -> 440" in notes
    assert any("clamped" in n for n in notes) and any("step limited" in n for n in notes)
    for a in actions:
        st.record_change(f"{NS}/{SVC}", a, 0.0)
    # a continued increase is not held by the cooldown (as the HPA's scale-up): +2 again
    actions, notes = plan_service(up, _obs(replicas=6), bounds, c, st, now_s=15.0)
    assert [(a.knob, a.new) for a in actions if a.knob == "replicas"] == [("replicas", 8)]
    # ... but a reversal is: no scale-down 30 s after a scale-up
    down3 = Proposal(NS, SVC, "policy", "p", replicas=3)
    st3 = SafetyState(last_change_s={(f"{NS}/{SVC}", "replicas"): 15.0},
                      last_change_up={(f"{NS}/{SVC}", "replicas"): True})  # fmt: skip
    st3.recommendations[f"{NS}/{SVC}"] = [(-1000.0, 8)]  # stabilisation window long past
    actions, notes = plan_service(down3, _obs(replicas=8), bounds, c, st3, now_s=45.0)
    assert "replicas" not in {a.knob for a in actions} and any("cooldown" in n for n in notes)
    # scale-down is stabilised: the window still holds 20
    down = Proposal(NS, SVC, "policy", "p", replicas=1)
    actions, notes = plan_service(down, _obs(replicas=6), bounds, c, st, now_s=100.0)
    assert actions == [] and any("stabilised" in n for n in notes)
    actions, _ = plan_service(down, _obs(replicas=6), bounds, c, st, now_s=151.0)
    assert [(a.knob, a.new) for a in actions] == [("replicas", 4)]  # window passed; step -2
    # first sight of a service: the current count is the first recommendation (as the HPA),
    # so nothing scales down before a full window has passed
    st2 = SafetyState()
    actions, notes = plan_service(down, _obs(), bounds, c, st2, now_s=0.0)
    assert actions == [] and "replicas: scale-down stabilised 1 -> 4" in notes
    # zero ready pods (after the window): no scale-down, no resource change
    actions, notes = plan_service(
        Proposal(NS, SVC, "policy", "p", replicas=1, cpu_limit_millicores=900),
        _obs(replicas_ready=0), bounds, c, st2, now_s=500.0,
    )  # fmt: skip
    assert actions == [] and "replicas: no ready pods, no scale-down" in notes
    # dead band: a 2% change is no action
    actions, _ = plan_service(
        Proposal(NS, SVC, "policy", "p", cpu_limit_millicores=510), _obs(), bounds, c, st2, 0.0
    )
    assert actions == []
    # allowlist refusal
    actions, notes = plan_service(Proposal("kube-system", SVC, "policy", "p", replicas=9),
                                  _obs(), bounds, c, SafetyState(), 0.0)  # fmt: skip
    assert actions == [] and "allowlist" in notes[0]


def test_capacity_is_kept_when_a_bigger_limit_is_held_back():
    # the rule alone: 3 x 200m -> wants 1 x 600m; the limit step allows 300m this sync
    assert keep_cpu_capacity(3, 1, 200, 300, 1, 600) == 2  # 600m kept: ceil(600 / 300)
    assert keep_cpu_capacity(3, 1, 200, 600, 1, 600) == 1  # the full limit lands: 1 pod is enough
    assert keep_cpu_capacity(3, 2, 200, 200, 2, 200) == 2  # the policy wants less capacity
    assert keep_cpu_capacity(3, 5, 200, 100, 5, 100) == 5  # scale-ups pass unchanged
    # composed: the replica cut is held to the capacity the step-limited CPU limit gives
    c = cfg(scale_down_stabilization_s=0, max_replica_step=10, max_limit_step_ratio=0.5)
    trade = Proposal(NS, SVC, "policy", "p", replicas=1, cpu_limit_millicores=1500)
    actions, notes = plan_service(trade, _obs(replicas=3), c.bounds_for(NS, SVC), c,
                                  SafetyState(), 0.0)  # fmt: skip
    by = {a.knob: a for a in actions}
    assert by["cpu"].new == 750  # 500 x 1.5
    assert by["replicas"].new == 2  # 3 x 500m = 1500m kept: ceil(1500 / 750)
    assert "replicas: CPU capacity kept, 1 -> 2" in notes


# ------------------------------------------------------------------- policy stub and fallback


@dataclass
class StubPolicy:
    """A local ``POST /v1/decide`` (schema-checked) that adds ``delta`` replicas and scales limits."""

    token: str = "s3cret"
    delta: int = 1
    limit_factor: float = 1.2
    fail_next: int = 0  # answer 503 this many times
    calls: int = 0

    def start(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                stub.calls += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    return self._send(401, {"detail": "bad token"})
                if self.path != "/v1/decide":
                    return self._send(404, {"detail": "not found"})
                if stub.fail_next > 0:
                    stub.fail_next -= 1
                    return self._send(503, {"detail": "busy"})
                try:
                    snap = Snapshot.model_validate_json(body)
                except Exception as err:  # noqa: BLE001
                    return self._send(422, {"detail": str(err)})
                decisions = [
                    {"service": s.name, "node": "node-1", "replicas": s.replicas_desired + stub.delta,
                     "cpu_limit_millicores": s.cpu_limit_millicores * stub.limit_factor,
                     "memory_limit_mib": s.memory_limit_mib * stub.limit_factor,
                     "cpu_request_millicores": s.cpu_limit_millicores * stub.limit_factor / 4,
                     "memory_request_mib": s.memory_limit_mib * stub.limit_factor / 2}
                    for s in snap.services
                ]  # fmt: skip
                info = {"kind": "students", "version": "stub", "checksum": "0" * 64,
                        "app": "trainticket", "services": len(decisions), "nodes": ["node-1"]}  # fmt: skip
                self._send(200, {"policy": info, "decisions": decisions, "decision_ms": 0.1})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_policy():
    s = StubPolicy().start()
    yield s
    s.stop()


def _snapshot():
    return Snapshot(time_s=1.0, services=[{"name": SVC, "request_rate_rps": 1, "cpu_usage_millicores": 100,
                    "memory_working_set_mib": 100, "replicas_ready": 2, "replicas_desired": 2,
                    "cpu_limit_millicores": 500, "memory_limit_mib": 512}])  # fmt: skip


def test_policy_client_token_retries_and_errors(stub_policy):
    sleeps = []
    client = PolicyClient(stub_policy.url, "s3cret", retries=2, backoff_s=0.1, sleep=sleeps.append)
    resp = client.decide(_snapshot())
    assert isinstance(resp, DecideResponse) and resp.decisions[0].replicas == 3
    stub_policy.fail_next = 2
    assert client.decide(_snapshot()).decisions[0].replicas == 3
    assert client.attempts == 3 and sleeps == [0.1, 0.2]  # exponential back-off on 5xx
    stub_policy.fail_next = 5
    with pytest.raises(PolicyUnavailableError, match="3 attempts failed; last: HTTP 503"):
        client.decide(_snapshot())
    stub_policy.fail_next = 0
    calls = stub_policy.calls
    with pytest.raises(PolicyUnavailableError, match="HTTP 401"):  # a 4xx is not retried
        PolicyClient(stub_policy.url, "wrong", sleep=sleeps.append).decide(_snapshot())
    assert stub_policy.calls == calls + 1
    dead = PolicyClient(
        f"http://127.0.0.1:{free_port()}", "t", retries=1, timeout_s=1, sleep=sleeps.append
    )
    with pytest.raises(PolicyUnavailableError, match="ConnectionError"):
        dead.decide(_snapshot())
    assert dead.attempts == 2


def test_hpa_fallback_replicas():
    fb = hpa_fallback_replicas(current_replicas=2, ready_replicas=2, cpu_usage_millicores=400,
                               cpu_request_millicores=100, target_utilization_percent=80)  # fmt: skip
    assert fb.replicas == 5 and "200%" in fb.reason  # ceil(2.5 x 2)
    fb = hpa_fallback_replicas(current_replicas=4, ready_replicas=4, cpu_usage_millicores=40,
                               cpu_request_millicores=100)  # fmt: skip
    assert fb.replicas == 1
    within = hpa_fallback_replicas(current_replicas=2, ready_replicas=2, cpu_usage_millicores=170,
                                   cpu_request_millicores=100)  # fmt: skip
    assert within.replicas == 2  # 85% vs 80%: inside the 10% tolerance
    assert hpa_fallback_replicas(current_replicas=3, ready_replicas=0, cpu_usage_millicores=0,
                                 cpu_request_millicores=100).replicas == 3  # fmt: skip
    assert (
        "missing cpu request"
        in hpa_fallback_replicas(
            current_replicas=3,
            ready_replicas=3,
            cpu_usage_millicores=9,
            cpu_request_millicores=None,
        ).reason
    )


# -------------------------------------------------------------- Kubernetes side: the real twin


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with running_twin(
        load_cached_scenario("default"), speed=100.0, directory=tmp_path_factory.mktemp("twin")
    ) as t:
        wait_until(lambda: t.state.steps >= 2, 20, what="the twin to step")
        yield t


@pytest.fixture
def kube(twin):
    apps, core = load_kube_clients(str(twin.kubeconfig_path))
    faults = FaultInjector(apps.api_client)
    core.api_client = apps.api_client  # one transport for both
    yield apps, core, faults
    faults.restore()


def _replicas(apps, name=SVC):
    return apps.read_namespaced_deployment_scale(name, NS).spec.replicas


def _pod_limits(core, name=SVC):
    pods = core.list_namespaced_pod(NS, label_selector=f"app={name}").items
    return {p.metadata.name: p.spec.containers[0].resources.limits for p in pods
            if p.metadata.deletion_timestamp is None}  # fmt: skip


def test_scale_and_resize_applied_with_retries_never_twice(kube):
    apps, core, faults = kube
    audit = AuditLog()
    applier = KubeApplier(apps, core, cfg(), audit)
    svc = "ts-order-service"
    start = _replicas(apps, svc)
    # 409 (not applied) then 500 after the write reached the twin (response lost), then OK
    faults.add("PATCH", f"/deployments/{svc}/scale", 409)
    faults.add("PATCH", f"/deployments/{svc}/scale", 500, forward=True)
    action = Action(NS, svc, "replicas", start, start + 2, "policy", "test")
    out = applier.apply(action)
    assert out.result == "applied" and out.attempts == 3, out
    assert applier.backoffs == [0.01, 0.02]  # exponential
    assert _replicas(apps, svc) == start + 2
    scale_writes = [w for w in faults.writes if w[1].endswith(f"/deployments/{svc}/scale")]
    assert len(scale_writes) == 1  # the retry saw it applied: never twice
    line = audit.find(action_id=action.action_id)[0]
    assert (line["knob"], line["old"], line["new"], line["result"], line["source"]) == (
        "replicas", start, start + 2, "applied", "policy",
    )  # fmt: skip
    # the same action again: no API call at all
    n = len(faults.writes)
    assert applier.apply(action).result == "duplicate" and len(faults.writes) == n
    # someone else changed it meanwhile: superseded, not overwritten
    stale = Action(NS, svc, "replicas", start, start + 1, "policy", "test")
    assert applier.apply(stale).result == "superseded" and _replicas(apps, svc) == start + 2

    # resize every pod: a 500 after the first pod's write, a 409 on another
    wait_until(lambda: len(_pod_limits(core, svc)) == start + 2, 20, what="new pods")
    pods = sorted(_pod_limits(core, svc))
    old_cpu = applier.observe(NS, svc).cpu_limit_millicores
    faults.add("PATCH", f"/pods/{pods[0]}/resize", 500, forward=True)
    faults.add("PATCH", f"/pods/{pods[1]}/resize", 409)
    act = Action(NS, svc, "cpu", old_cpu, old_cpu + 100, "policy", "test",
                 new_request=(old_cpu + 100) / 4, old_request=old_cpu / 4)  # fmt: skip
    out = applier.apply(act)
    assert out.result == "applied" and out.attempts == 2, out
    want = f"{int(old_cpu + 100)}m"
    assert {v["cpu"] for v in _pod_limits(core, svc).values()} == {want}  # visible via the API
    resize_writes = [w for w in faults.writes if w[1].endswith("/resize")]
    assert sorted(w[1].split("/")[-2] for w in resize_writes) == pods  # each pod exactly once
    assert applier.apply(
        Action(NS, svc, "cpu", old_cpu, old_cpu + 100, "policy", "t", new_request=(old_cpu + 100) / 4)
    ).result == "unchanged"  # fmt: skip
    # retries exhausted: failed, reported, and the next attempt converges
    faults.add("PATCH", f"/deployments/{svc}/scale", 503, times=10)
    cur = _replicas(apps, svc)
    out = applier.apply(Action(NS, svc, "replicas", cur, cur - 1, "fallback", "t"))
    assert out.result == "failed" and "503" in out.detail and out.attempts == 6
    faults.rules.clear()
    assert (
        applier.apply(Action(NS, svc, "replicas", cur, cur - 1, "fallback", "t")).result
        == "applied"
    )


def test_resize_unsupported_falls_back_to_template_only_when_enabled(kube):
    apps, core, faults = kube
    svc = "ts-route-service"
    old = KubeApplier(apps, core, cfg(), AuditLog()).observe(NS, svc)
    act = lambda: Action(NS, svc, "memory", old.memory_limit_mib, old.memory_limit_mib + 64,  # noqa: E731
                         "policy", "t", new_request=old.memory_request_mib)  # fmt: skip
    faults.add("PATCH", "/resize", 404, times=100)  # a cluster without the resize subresource
    out = KubeApplier(apps, core, cfg(), AuditLog()).apply(act())
    assert out.result == "unsupported"
    out = KubeApplier(apps, core, cfg(resize_template_fallback=True), AuditLog()).apply(act())
    assert out.result == "applied" and "template" in out.detail
    dep = apps.read_namespaced_deployment(svc, NS)
    assert (
        dep.spec.template.spec.containers[0].resources.limits["memory"]
        == f"{int(old.memory_limit_mib + 64)}Mi"
    )


def test_dry_run_and_allowlist_write_nothing(kube):
    apps, core, faults = kube
    audit = AuditLog()
    before = _replicas(apps)
    dry = KubeApplier(apps, core, cfg(dry_run=True), audit)
    assert (
        dry.apply(Action(NS, SVC, "replicas", before, before + 3, "policy", "t")).result
        == "dry_run"
    )
    assert (
        dry.apply(Action(NS, SVC, "cpu", 200, 300, "policy", "t", new_request=75)).result
        == "dry_run"
    )
    refused = KubeApplier(apps, core, cfg(), audit)
    assert (
        refused.apply(Action("default", SVC, "replicas", 1, 2, "policy", "t")).result == "refused"
    )
    with pytest.raises(PermissionError):
        refused.list_deployments("kube-system")
    assert faults.writes == [] and _replicas(apps) == before
    assert [r["dry_run"] for r in audit.find(service=SVC)] == [True, True, False]
    assert len(refused.list_deployments(NS)) == 49


# ------------------------------------------------------- the loop: real Prometheus + the twin


@contextlib.contextmanager
def _prometheus_on(port, directory, target):
    """A real Prometheus on a FIXED port (so it can be restarted at the same address)."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "twin", "static_configs": [{"targets": [target]}]}]}  # fmt: skip
    (directory / "prometheus.yml").write_text(yaml.safe_dump(conf))
    with open(directory / "log", "ab") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/-/ready", timeout=2).ok, 30, 0.2, "prometheus")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"
)
def test_loop_with_real_prometheus_policy_fallback_outage_and_resume(
    twin, tmp_path, stub_policy, monkeypatch
):
    port = free_port()
    services = ["ts-travel-service", "ts-ui-dashboard", "ts-basic-service"]
    audit_path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("TEST_POLICY_TOKEN", stub_policy.token)
    config = cfg(
        prometheus_url=f"http://127.0.0.1:{port}", policy_url=stub_policy.url,
        token_env="TEST_POLICY_TOKEN", kubeconfig=str(twin.kubeconfig_path), services=services,
        rate_window="6s", max_metric_age_s=10, sync_period_s=0.5, cooldown_replicas_s=0,
        cooldown_cpu_s=0, cooldown_memory_s=0, scale_down_stabilization_s=5, policy_retries=1,
        policy_backoff_s=0.05, policy_timeout_s=2, audit_log_path=str(audit_path), metrics_port=0,
    )  # fmt: skip
    from drpc.controller.cli import build_controller

    ctl = build_controller(config)
    metrics_port = ctl.serve_metrics()
    target = f"127.0.0.1:{twin.metrics_port}"
    try:
        with _prometheus_on(port, tmp_path / "prom", target):
            # wait until every service has fresh, complete metrics (rate windows filled)
            report = wait_until(lambda: (r := ctl.sync_once()).snapshot_result.snapshot is not None
                                and not r.held and r, 60, 1.0, "fresh metrics")  # fmt: skip
            snap = report.snapshot_result.snapshot
            assert {s.name for s in snap.services} == set(services)
            for s in snap.services:
                assert s.request_rate_rps > 0 and s.cpu_usage_millicores > 0
                assert s.memory_working_set_mib > 0 and s.replicas_ready >= 1
                assert s.cpu_limit_millicores > 0 and s.memory_limit_mib > 0
                assert s.latency_p99_ms > 0 and s.throughput_rps is not None
            assert {e.name for e in snap.endpoints} == set(twin.state.endpoints)
            assert all(
                a is not None and a < 10
                for ages in report.staleness.values()
                for a in ages.values()
            )
            assert report.source == "policy"
            results = {(a.service, a.knob): r for a, r in report.actions}
            results_actions = report.actions
            assert results[(SVC, "replicas")] == "applied" and results[(SVC, "cpu")] == "applied"
            dep = twin.state.get("deployments", NS, SVC).body
            want = next(
                a.new for a, _ in report.actions if a.service == SVC and a.knob == "replicas"
            )
            assert dep["spec"]["replicas"] == want

            # the policy goes down: the HPA fallback decides replicas, and says so
            stub_policy.fail_next = 100
            cpu_set = next(a for a, _ in results_actions if a.service == SVC and a.knob == "cpu")
            report = ctl.sync_once()
            assert report.source == "fallback"
            assert {a.knob for a, _ in report.actions if a.source != "converge"} <= {"replicas"}
            # the pods the scale-up created started from the template; they are resized to
            # the CPU limit the policy set (the fallback itself changes no limits)
            converged = [a for a, r in report.actions if a.source == "converge" and r == "applied"]
            assert any(a.service == SVC and a.knob == "cpu" for a in converged), report.actions
            _, pods = twin.state.list("pods", NS)
            mine = [p for p in pods if p["metadata"]["name"].startswith(SVC + "-")]
            assert len(mine) == dep["spec"]["replicas"]
            assert {cpu_millicores(p["spec"]["containers"][0]["resources"]["limits"]["cpu"])
                    for p in mine} == {cpu_set.new}  # fmt: skip
            assert ctl.audit.find(source="fallback", result="fallback")
            assert ctl.metrics.value("drpc_controller_fallback_active") == 1
            stub_policy.fail_next = 0

        # Prometheus is down: hold, reported as a metric and an audit line, nothing applied
        before = twin.state.get("deployments", NS, SVC).body["spec"]["replicas"]
        report = ctl.sync_once()
        assert report.hold_reason.startswith("prometheus unavailable") and report.actions == []
        assert ctl.metrics.value("drpc_controller_hold") == 1
        assert ctl.metrics.value("drpc_controller_holds_total", kind="prometheus_unavailable") >= 1
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "drpc_controller_hold 1.0" in scraped
        lines = [json.loads(x) for x in audit_path.read_text().splitlines()]
        assert any(x["source"] == "hold" and x["result"] == "held" for x in lines)
        assert twin.state.get("deployments", NS, SVC).body["spec"]["replicas"] == before

        # restarted at the same address: the controller resumes by itself
        with _prometheus_on(port, tmp_path / "prom", target):
            report = wait_until(lambda: (r := ctl.sync_once()).hold_reason is None
                                and not r.held and r, 60, 1.0, "resume")  # fmt: skip
            assert report.source == "policy" and ctl.metrics.value("drpc_controller_hold") == 0
            assert ctl.audit.find(service="*", result="resumed")
            assert (
                ctl.metrics.value(
                    "drpc_controller_actions_total", knob="replicas", result="applied"
                )
                >= 2
            )
    finally:
        ctl.close()


def test_controller_dry_run_once_applies_nothing(twin, stub_policy, monkeypatch):
    """The full loop in dry run with fake (fresh) Prometheus answers: decides, logs, writes nothing."""
    monkeypatch.setenv("DRPC_POLICY_TOKEN", stub_policy.token)
    config = cfg(policy_url=stub_policy.url, kubeconfig=str(twin.kubeconfig_path),
                 services=[SVC], dry_run=True, cooldown_replicas_s=0)  # fmt: skip
    apps, core = load_kube_clients(config.kubeconfig)
    faults = FaultInjector(apps.api_client)
    core.api_client = apps.api_client
    audit = AuditLog()
    scale = _replicas(apps)
    values = {**GOOD, "replicas_desired": scale, "replicas_ready": scale}
    source = PrometheusSource(config, query=_fake_prometheus(values, {}))
    ctl = Controller(config, source, PolicyClient(stub_policy.url, stub_policy.token),
                     KubeApplier(apps, core, config, audit), audit)  # fmt: skip
    report = ctl.sync_once()
    assert report.source == "policy" and report.actions
    assert {r for _, r in report.actions} == {"dry_run"} and faults.writes == []
    assert _replicas(apps) == scale
    assert all(x["dry_run"] for x in audit.find(source="policy"))
    stop = threading.Event()  # run(): syncs every sync_period_s until stopped
    ctl.config.sync_period_s = 0.05
    runner = threading.Thread(target=ctl.run, args=(stop,))
    runner.start()
    wait_until(lambda: ctl.metrics.value("drpc_controller_syncs_total") >= 3, 20, 0.05, "3 syncs")
    stop.set()
    runner.join(10)
    assert not runner.is_alive() and faults.writes == [] and _replicas(apps) == scale
    ctl.close()
    with pytest.raises(ValueError, match="allowlist"):
        Controller(cfg(namespaces=[]), source, None, KubeApplier(apps, core, config, audit), audit)


def test_cli_once_and_bad_config(twin, tmp_path, capsys):
    from drpc.controller.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("sync_period: 3\n")
    assert main(["--config", str(bad), "--namespace", NS]) == 2
    assert "did you mean 'sync_period_s'" in capsys.readouterr().err
    good = tmp_path / "c.yaml"
    good.write_text(yaml.safe_dump({"services": [SVC], "max_metric_age_s": 5, "metrics_port": -1}))
    code = main(["--config", str(good), "--kubeconfig", str(twin.kubeconfig_path), "--namespace", NS,
                 "--prometheus-url", f"http://127.0.0.1:{free_port()}", "--dry-run", "--once"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (
        code == 0
        and out["hold_reason"].startswith("prometheus unavailable")
        and out["actions"] == []
    )


# ------------------------------------------------------------------------- deploy/ manifests


DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "controller"


def _docs():
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_manifests_parse_and_rbac_is_minimal():
    docs = _docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "Deployment"} <= kinds
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = [d for _, d in docs if d["kind"] == "Role"]
    minimal = {
        ("apps", "deployments", ("get", "list", "watch")),
        ("apps", "deployments/scale", ("get", "patch")),
        ("", "pods", ("get", "list", "watch")),
        ("", "pods/resize", ("get", "patch")),
    }
    for role in roles:
        got = {(g, r, tuple(sorted(rule["verbs"]))) for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}  # fmt: skip
        assert got == minimal, (role["metadata"], got ^ minimal)
        assert all("resourceNames" not in r or r["resourceNames"] for r in role["rules"])
    bindings = [d for _, d in docs if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {
        r["metadata"]["namespace"] for r in roles
    }
    dep = next(d for _, d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and pod["automountServiceAccountToken"] is True
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"] and c["resources"]["requests"]
    assert c["livenessProbe"] and c["readinessProbe"]
    cm = next(d for _, d in docs if d["kind"] == "ConfigMap")
    conf = config_from_dict(yaml.safe_load(cm["data"]["controller.yaml"]))  # a valid config
    assert conf.namespaces == sorted(r["metadata"]["namespace"] for r in roles)
    assert not conf.resize_template_fallback  # else RBAC would need "patch deployments"
    kubectl = find_binary("kubectl", "/usr/bin/kubectl", "/usr/local/bin/kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: client-side dry run not checked")
    result = subprocess.run(
        [kubectl, "apply", "--dry-run=client", "--validate=false", "-f", str(DEPLOY),
         "--kubeconfig", "/dev/null", "-o", "name"],
        capture_output=True, text=True, timeout=60, env={"HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if result.returncode != 0 and "unable to recognize" in result.stderr:
        # kubectl maps kinds through the server's discovery even for --dry-run=client
        pytest.skip("kubectl apply --dry-run=client needs an API server for discovery")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == len(docs)
