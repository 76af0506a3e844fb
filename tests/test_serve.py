"""The Ray Serve app (drpc.serve): real Serve in the session's Ray, real HTTP over loopback.

The app is deployed the way a Serve config file / KubeRay deploys it (an import path plus
args through the controller), so a ``user_config`` change is an in-place reconfigure: the hot
reload test sends requests throughout and checks none failed.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
import yaml

from drpc.imitation.checkpoint import WEIGHTS_FILE, save_students
from drpc.imitation.nodes import NodeMap
from drpc.imitation.students import StudentSet
from drpc.serve.schema import DecideResponse
from drpc.sim.app import load_app
from drpc.sim.graph import compile_app
from drpc.teacher.checkpoint import bundled_teacher

APP_NAME = "drpc-test"
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 100_000
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tt_app():
    return compile_app(load_app("trainticket"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tt_app):
    """Two random-init student checkpoints (2 nodes, other weights) and a corrupt one."""
    root = tmp_path_factory.mktemp("serve_ckpt")
    meta = bundled_teacher()
    names = list(tt_app.names)
    out = {}
    for seed in (0, 1):
        students = StudentSet.create(names, NodeMap.round_robin(names, 2), seed=seed)
        out[seed] = save_students(root / f"students-{seed}", students, meta, "trainticket")
    bad = save_students(
        root / "bad",
        StudentSet.create(names, NodeMap.round_robin(names, 2), seed=2),
        meta,
        "trainticket",
    )
    (bad / WEIGHTS_FILE).write_bytes(b"truncated")
    out["bad"] = bad
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deploy_config(checkpoint: Path, user_checkpoint: Path | None = None) -> dict:
    app = {
        "name": APP_NAME,
        "route_prefix": "/",
        "import_path": "drpc.serve.app:build_app",
        "args": {
            "checkpoint": str(checkpoint),
            "token": TOKEN,
            "max_body_bytes": MAX_BODY,
            "max_batch_size": 8,
            "batch_wait_timeout_s": 0.003,
            "ingress_num_cpus": 0.1,
            "agent_num_cpus": 0.1,
        },
    }
    if user_checkpoint is not None:
        app["deployments"] = [
            {"name": "DecideIngress", "user_config": {"checkpoint": str(user_checkpoint)}}
        ]
    return {"applications": [app]}


def _deploy(config: dict) -> None:
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema(**config), _blocking=True)


class Served:
    def __init__(self, url: str):
        self.url = url

    def post(self, body, headers=AUTH, **kw) -> requests.Response:
        if not isinstance(body, dict | list):  # text, bytes or a generator (chunked)
            h = {"content-type": "application/json", **headers}
            return requests.post(self.url + "/v1/decide", data=body, headers=h, timeout=30, **kw)
        return requests.post(self.url + "/v1/decide", json=body, headers=headers, timeout=30, **kw)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)


@pytest.fixture(scope="module")
def served(ray_session, checkpoints):
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        _deploy(_deploy_config(checkpoints[0]))
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the proxy may need a moment to route the new app
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        yield Served(url)
    finally:
        serve.shutdown()


def snapshot(app, **over) -> dict:
    rng = np.random.default_rng(0)
    services = []
    for i, name in enumerate(app.names):
        reps = int(app.replicas0[i])
        lim = float(app.cpu_limit_m0[i])
        services.append(
            {
                "name": name,
                "request_rate_rps": float(rng.uniform(0, 50)),
                "cpu_usage_millicores": float(rng.uniform(0.05, 0.9) * lim * reps),
                "memory_working_set_mib": float(0.4 * app.memory_limit_mib0[i] * reps),
                "replicas_ready": reps,
                "replicas_desired": reps,
                "cpu_limit_millicores": lim,
                "memory_limit_mib": float(app.memory_limit_mib0[i]),
                "latency_p99_ms": 30.0,
            }
        )
    body = {
        "cluster": "test",
        "time_s": 1_732_950_000.0,
        "interval_s": 15,
        "entry_rps_history": [100.0, 110.0, 120.0],
        "services": services,
        "endpoints": [{"name": "/api/v1/x", "rps": 130.0, "latency_p99_ms": 180.0}],
    }
    body.update(over)
    return body


def _detail(r: requests.Response) -> str:
    return json.dumps(r.json()["detail"])


# ----------------------------------------------------------------------------- in-process


def test_batched_node_students_match_per_node_call(checkpoints):
    from drpc.imitation.checkpoint import load_students

    students = load_students(checkpoints[0])
    group = students.nodes()["node-0"]
    x = np.random.default_rng(1).normal(size=(5, len(group), 17)).astype(np.float32)
    batched = group.batch(x)
    for b in range(5):
        np.testing.assert_allclose(batched[b], group(x[b]), rtol=1e-5, atol=1e-6)


def test_teacher_checkpoint_decides_in_process(tt_app):
    from drpc.serve.core import TEACHER_NODE, ServedPolicy, load_node_model
    from drpc.serve.schema import Snapshot

    torch.set_num_threads(1)
    folder = bundled_teacher()["folder"]
    policy = ServedPolicy.load(folder)
    assert policy.info().kind == "teacher" and policy.info().nodes == [TEACHER_NODE]
    model = load_node_model(folder, TEACHER_NODE)
    decisions = policy.decide_local(Snapshot(**snapshot(tt_app)), {TEACHER_NODE: model})
    assert [d.service for d in decisions] == list(tt_app.names)
    # the operator's margin: lower set-points, never fewer replicas; shown in /v1/policy
    margin = ServedPolicy.load(folder, utilization_scale=0.5)
    assert margin.info().utilization_scale == 0.5 and policy.info().utilization_scale == 1.0
    wider = margin.decide_local(Snapshot(**snapshot(tt_app)), {TEACHER_NODE: model})
    assert all(w.replicas >= d.replicas for w, d in zip(wider, decisions, strict=True))
    assert sum(w.replicas for w in wider) > sum(d.replicas for d in decisions)
    with pytest.raises(ValueError, match="utilization_scale must be in"):
        ServedPolicy.load(folder, utilization_scale=3.0)


def test_snapshot_order_and_optional_throughput_in_process(tt_app):
    """The order reused between snapshots with the same names is right for a new order, and
    never lets unknown services through; throughput_rps defaults to the rate per service."""
    from drpc.serve.core import ServedPolicy, SnapshotError
    from drpc.serve.schema import Snapshot

    policy = ServedPolicy.load(bundled_teacher()["folder"])
    body = snapshot(tt_app)
    first = policy.observation(Snapshot(**body))
    assert policy.observation(Snapshot(**body)).request_rate_rps.tolist() == (
        first.request_rate_rps.tolist()
    )
    reversed_ = policy.observation(Snapshot(**dict(body, services=body["services"][::-1])))
    np.testing.assert_array_equal(reversed_.cpu_usage_millicores, first.cpu_usage_millicores)
    np.testing.assert_array_equal(first.throughput_rps, first.request_rate_rps)
    services = [dict(s) for s in body["services"]]
    services[0]["name"] = "not-a-service"
    with pytest.raises(SnapshotError, match="unknown service"):
        policy.observation(Snapshot(**dict(body, services=services)))
    services = [dict(s) for s in body["services"]]
    services[3]["throughput_rps"] = 7.5
    obs = policy.observation(Snapshot(**dict(body, services=services)))
    i = list(tt_app.names).index(services[3]["name"])
    assert obs.throughput_rps[i] == 7.5
    others = np.arange(len(tt_app.names)) != i
    np.testing.assert_array_equal(obs.throughput_rps[others], obs.request_rate_rps[others])


def test_replica_event_loop_sets_serve_switches():
    from drpc.serve.app import ServeArgs, _agent_actor_options, _replica_env

    flags = _agent_actor_options(ServeArgs(), "node-0")["runtime_env"]["env_vars"]
    assert flags == {
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
        "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    }
    assert _replica_env(ServeArgs(replica_event_loop="separate")) == {}


def test_agent_placement_options():
    from drpc.serve.app import ServeArgs, _agent_actor_options

    assert "label_selector" not in _agent_actor_options(ServeArgs(), "node-0")
    assert _agent_actor_options(ServeArgs(placement="label"), "node-3")["label_selector"] == {
        "drpc.io/node": "node-3"
    }
    assert _agent_actor_options(ServeArgs(placement="resource"), "node-1")["resources"] == {
        "drpc_node_node-1": 0.01
    }


def test_deploy_yaml_files_validate():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((REPO / "deploy/serve/serve_config.yaml").read_text())
    ServeDeploySchema(**config)
    assert config["applications"][0]["import_path"] == "drpc.serve.app:build_app"
    docs = list(yaml.safe_load_all((REPO / "deploy/serve/rayservice.yaml").read_text()))
    service = next(d for d in docs if d and d.get("kind") == "RayService")
    assert service["apiVersion"] == "ray.io/v1"
    ServeDeploySchema(**yaml.safe_load(service["spec"]["serveConfigV2"]))
    groups = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert all("labels" in g["rayStartParams"] for g in groups)


# ----------------------------------------------------------------------------- over HTTP


def test_decide_round_trip(served, tt_app, checkpoints):
    from drpc.imitation.checkpoint import load_students
    from drpc.serve.core import ServedPolicy, load_node_model
    from drpc.serve.schema import Snapshot

    body = snapshot(tt_app)
    r = served.post(body)
    assert r.status_code == 200, r.text
    resp = DecideResponse.model_validate(r.json())
    assert [d.service for d in resp.decisions] == list(tt_app.names)
    node_map = load_students(checkpoints[0]).node_map
    assert {d.service: d.node for d in resp.decisions} == node_map.to_dict()
    assert resp.policy.nodes == ["node-0", "node-1"] and resp.decision_ms > 0
    mapping = bundled_teacher()["action_mapping_obj"]
    for i, d in enumerate(resp.decisions):
        assert tt_app.min_replicas[i] <= d.replicas <= tt_app.max_replicas[i]
        lo, hi = (tt_app.cpu_limit_m0[i] * r for r in mapping.cpu_limit_range)
        assert lo - 1e-6 <= d.cpu_limit_millicores <= hi + 1e-6
        lo, hi = (tt_app.memory_limit_mib0[i] * r for r in mapping.memory_limit_range)
        assert lo - 1e-6 <= d.memory_limit_mib <= hi + 1e-6
        assert 0 < d.cpu_request_millicores <= d.cpu_limit_millicores
    # the same numbers as the in-process path (same features, students and mapping)
    policy = ServedPolicy.load(checkpoints[0])
    models = {n: load_node_model(checkpoints[0], n) for n in policy.nodes}
    local = policy.decide_local(Snapshot(**body), models)
    assert [d.model_dump() for d in local] == [d.model_dump() for d in resp.decisions]
    # services in another order: same decisions (mapped by name)
    shuffled = dict(body, services=body["services"][::-1])
    again = DecideResponse.model_validate(served.post(shuffled).json())
    assert again.decisions == resp.decisions


def test_auth(served, tt_app):
    body = snapshot(tt_app)
    assert served.post(body, headers={}).status_code == 401
    assert served.post(body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert served.post(body, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    r = served.post("{not json", headers={})  # auth is checked before the body is read
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for open_path in ("/healthz", "/v1/policy", "/metrics", "/openapi.json"):
        assert served.get(open_path).status_code == 200, open_path


def test_policy_checksum_matches_checkpoint(served, checkpoints):
    info = served.get("/v1/policy").json()
    digest = hashlib.sha256((checkpoints[0] / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert info == {
        "kind": "students",
        "version": checkpoints[0].name,
        "checksum": digest,
        "app": "trainticket",
        "services": 49,
        "nodes": ["node-0", "node-1"],
        "utilization_scale": 1.0,
    }
    assert served.get("/healthz").json()["checksum"] == digest


def _bad_cases(app) -> dict:
    ok = snapshot(app)
    neg = json.loads(json.dumps(ok))
    neg["services"][3]["cpu_usage_millicores"] = -1.0
    unknown = json.loads(json.dumps(ok))
    unknown["services"].append(dict(ok["services"][0], name="ts-no-such-service"))
    missing = dict(ok, services=ok["services"][1:])
    dup = dict(ok, services=[*ok["services"], ok["services"][5]])
    nan_text = json.dumps(ok).replace('"time_s": 1732950000.0', '"time_s": NaN', 1)
    inf_hist = json.dumps(ok).replace(
        '"entry_rps_history": [100.0', '"entry_rps_history": [Infinity', 1
    )
    return {
        "malformed": ('{"time_s": 1, "services": [', 422, "json"),
        "not_an_object": ("[1, 2]", 422, "body"),
        "nan": (nan_text, 422, "time_s"),
        "infinity": (inf_hist, 422, "entry_rps_history"),
        "negative": (neg, 422, "cpu_usage_millicores"),
        "unknown_service": (unknown, 422, "ts-no-such-service"),
        "missing_service": (missing, 422, app.names[0]),
        "duplicate_service": (dup, 422, "appears twice"),
        "extra_field": (dict(ok, surprise=1), 422, "surprise"),
        "oversized": (dict(ok, cluster="x" * 200, padding="y" * MAX_BODY), 413, "exceeds"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "not_an_object",
        "nan",
        "infinity",
        "negative",
        "unknown_service",
        "missing_service",
        "duplicate_service",
        "extra_field",
        "oversized",
    ],
)
def test_bad_input_is_4xx_naming_the_field(served, tt_app, case):
    body, code, needle = _bad_cases(tt_app)[case]
    r = served.post(body)
    assert r.status_code == code, r.text
    assert needle.lower() in _detail(r).lower(), r.text


def test_oversized_body_without_content_length(served, tt_app):
    def chunks():
        yield b'{"time_s": 1, "cluster": "'
        for _ in range(20):
            yield b"z" * 10_000
        yield b'", "services": []}'

    r = served.post(chunks())  # chunked transfer: no Content-Length
    assert r.status_code == 413, r.text


def test_metrics_count_decisions_and_errors(served, tt_app):
    served.post(snapshot(tt_app))
    served.post(snapshot(tt_app), headers={})
    text = served.get("/metrics").text
    value = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, v = line.rpartition(" ")
            value[key] = float(v)
    assert value["drpc_serve_decisions_total"] >= 1
    assert value["drpc_serve_service_decisions_total"] >= 49
    assert value['drpc_serve_errors_total{code="401"}'] >= 1
    assert value['drpc_serve_errors_total{code="422"}'] >= 1
    assert value["drpc_serve_decide_latency_seconds_count"] >= 1
    assert any(k.startswith("drpc_serve_policy_info{") for k in value)


def test_agents_batch_concurrent_snapshots(served, tt_app):
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    handle = serve.get_deployment_handle("NodeAgent-node-0", app_name=APP_NAME)
    body = snapshot(tt_app)
    for _ in range(3):  # a burst of concurrent snapshots; some share a forward pass
        before = handle.stats.remote().result()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: served.post(body).status_code, range(16)))
        assert codes == [200] * 16
        after = handle.stats.remote().result()
        rows, batches = after["rows"] - before["rows"], after["batches"] - before["batches"]
        assert rows == 16
        if batches < rows:
            break
    assert batches < rows, "no two snapshots were ever batched"


def test_hot_reload_drops_nothing(served, tt_app, checkpoints):
    old = served.get("/v1/policy").json()["checksum"]
    new = hashlib.sha256((checkpoints[1] / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert old != new
    body = json.dumps(snapshot(tt_app))
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            r = served.post(body)
            results.append((r.status_code, r.json()["policy"]["checksum"] if r.ok else r.text))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        _deploy(_deploy_config(checkpoints[0], user_checkpoint=checkpoints[1]))
        deadline = time.time() + 60
        while served.get("/v1/policy").json()["checksum"] != new and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert served.get("/v1/policy").json()["checksum"] == new
    assert [c for c, _ in results if c != 200] == [], results[:3]
    seen = [s for _, s in results]
    assert seen[0] == old and seen[-1] == new and set(seen) == {old, new}

    # a corrupt checkpoint is refused; the current one keeps serving
    _deploy(_deploy_config(checkpoints[0], user_checkpoint=checkpoints["bad"]))
    deadline = time.time() + 30
    while served.get("/healthz").json()["last_reload_error"] is None and time.time() < deadline:
        time.sleep(0.1)
    health = served.get("/healthz").json()
    assert "checksum does not match" in health["last_reload_error"]
    assert health["checksum"] == new
    r = served.post(body)
    assert r.status_code == 200 and r.json()["policy"]["checksum"] == new
    assert 'drpc_serve_reloads_total{result="refused"}' in served.get("/metrics").text


# ----------------------------------------------------------------------------- fuzzing


def test_fuzz_from_openapi_schema_never_5xx(served):
    """Schemathesis cases from the app's own OpenAPI schema: every answer is < 500."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_dict(served.get("/openapi.json").json())
    seen: list[int] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=30 if op.method.upper() == "POST" else 3,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def check(case):
            r = case.call(base_url=served.url, headers=AUTH, timeout=30)
            seen.append(r.status_code)
            assert r.status_code < 500, (case.method, case.path, r.status_code, r.text[:300])

        check()
    assert seen and all(c < 500 for c in seen)
