"""The digital twin's Kubernetes API: pure helpers, the official Python client, bad input,
resourceVersions, watch, the HPA loop of docs/twin.md, --loop/hold, OOM kills and the CLI.

Everything runs on loopback with bounded requests and timeouts; every twin and process a test
starts is stopped by its fixture or context manager.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from drpc.sim.app import app_from_data
from drpc.sim.graph import compile_app
from drpc.sim.types import ClusterConfig, ResizeStatus
from drpc.twin.metrics import ISTIO_BUCKETS_MS, bucket_fractions, lognormal_fit, render
from drpc.twin.objects import pod_name, template_hash
from drpc.twin.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from drpc.twin.quantity import QuantityError, cpu_millicores, format_cpu, format_memory, memory_mib
from drpc.twin.selectors import SelectorError, matches_labels, parse_label_selector
from drpc.twin.state import TwinOptions, TwinState
from drpc.twin.testing import load_cached_scenario, running_twin, wait_until

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch as k8s_watch  # noqa: E402

SPEED = 200.0  # 15 s intervals every 75 ms; pods (startup <= 99 s) Ready within 0.5 s
SVC = "ts-travel-service"
TIMEOUT = 10  # seconds per HTTP request


# ------------------------------------------------------------------------------ pure helpers


def test_quantities_parse_and_format_canonically():
    assert cpu_millicores("250m") == 250
    assert cpu_millicores("1.5") == 1500
    assert cpu_millicores(2) == 2000
    assert cpu_millicores("1e-3") == 1
    assert memory_mib("1Gi") == 1024
    assert memory_mib("512Mi") == 512
    assert memory_mib("1048576") == 1
    assert format_cpu(1000) == "1" and format_cpu(250) == "250m"
    assert format_memory(1024) == "1Gi" and format_memory(160) == "160Mi"
    for bad in ("abc", "", "1.2.3", "5Xi", True, None, [1], "1e3Mi", "nan"):
        with pytest.raises(QuantityError):
            cpu_millicores(bad)


def test_merge_strategic_and_json_patches():
    pod = {
        "spec": {"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}
    }
    patch = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}}
    for apply in (json_merge_patch, strategic_merge_patch):
        out = apply(pod, patch)
        c = out["spec"]["containers"][0]
        assert c["image"] == "x"  # merged by name, not replaced
        assert c["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}  # input intact
    assert json_merge_patch({"a": 1, "b": 2}, {"a": None, "c": 3}) == {"b": 2, "c": 3}
    out = json_patch({"spec": {"replicas": 1, "l": [1, 2]}}, [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/l/-", "value": 9},
        {"op": "remove", "path": "/spec/l/0"},
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
    ])  # fmt: skip
    assert out == {"spec": {"replicas": 3, "l": [2, 9], "copy": 3}}
    for bad in ({"op": "replace"}, [{"op": "replace", "path": "/nope/x", "value": 1}],
                [{"op": "jump", "path": "/a"}], [{"op": "test", "path": "/spec", "value": 0}], [3]):  # fmt: skip
        with pytest.raises(PatchError):
            json_patch({"spec": {}}, bad)


def test_label_selectors():
    labels = {"app": "a", "tier": "web"}
    for sel, want in (("app=a", True), ("app==a,tier=web", True), ("app!=a", False),
                      ("app in (a, b)", True), ("app notin (a)", False), ("tier", True),
                      ("!tier", False), ("missing!=x", True), ("", True)):  # fmt: skip
        assert matches_labels(parse_label_selector(sel), labels) is want, sel
    for bad in ("app in (a", "=x", "app=(", "a b c"):
        with pytest.raises(SelectorError):
            parse_label_selector(bad)


def test_lognormal_histogram_recovers_quantiles_and_truncates_at_timeout():
    mu, sigma = np.log(40.0), 0.6
    z = np.array([0.0, 1.6448536, 2.3263479])
    q = np.exp(mu + sigma * z)[:, None]
    got_mu, got_sigma = lognormal_fit(q)
    assert got_mu[0] == pytest.approx(mu) and got_sigma[0] == pytest.approx(sigma)
    frac = bucket_fractions(q, timeout_ms=1000.0)[0]
    assert np.all(np.diff(frac) >= 0) and frac[-1] == 1.0
    assert frac[list(ISTIO_BUCKETS_MS).index(50)] == pytest.approx(0.5 + 0.5 * 0.2877, abs=0.01)
    assert frac[list(ISTIO_BUCKETS_MS).index(1000)] == 1.0  # nothing beyond the timeout
    degenerate = bucket_fractions(np.full((3, 2), [0.0, 10000.0]), timeout_ms=10000.0)
    assert degenerate[0, 0] == 1.0 and degenerate[1, :12].max() == 0.0 and degenerate[1, 12] == 1.0


def test_pod_names_are_deployment_hash_suffix_and_unique():
    h = template_hash("ns", "svc")
    names = {pod_name("svc", h, uid) for uid in range(20000)}
    assert len(names) == 20000
    assert all(
        n.startswith(f"svc-{h}-") and len(n.rsplit("-", 1)[1]) == 5 for n in list(names)[:50]
    )
    assert pod_name("svc", h, 7, epoch=1) != pod_name("svc", h, 7)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with running_twin(
        load_cached_scenario("default"), speed=SPEED, directory=tmp_path_factory.mktemp("twin")
    ) as t:
        yield t


@pytest.fixture(scope="module")
def api(twin):
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(twin.kubeconfig_path), client_configuration=cfg)
    with k8s.ApiClient(cfg) as client:
        yield client


@pytest.fixture(scope="module")
def raw(twin, tmp_path_factory):
    """A requests session with the twin's CA and token; returns (session, base URL)."""
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.write_bytes(twin.ca_pem)
    with requests.Session() as s:
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify; no proxies on loopback
        s.verify = str(ca)
        s.headers["Authorization"] = f"Bearer {twin.token}"
        yield s, twin.api_url


def _anonymous(s: requests.Session) -> requests.Session:
    anon = requests.Session()
    anon.trust_env = False
    anon.verify = s.verify
    return anon


def _ready_pods(core, ns, svc):
    pods = core.list_namespaced_pod(ns, label_selector=f"app={svc}").items
    return [
        p for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]  # fmt: skip


def _sim_row(twin, pod):
    """The simulator's current pod-table row of a pod (by name)."""
    with twin.state.lock:
        i = twin.state._pod_by_name[pod]
        t = twin.state._table
        return {
            f: getattr(t, f)[i]
            for f in (
                "uid",
                "phase",
                "cpu_limit_millicores",
                "cpu_request_millicores",
                "resize_status",
            )
        }


# ------------------------------------------------------------------------------ official client


def test_version_discovery_and_objects(twin, api):
    assert k8s.VersionApi(api).get_code().minor == "35"
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    deps = apps.list_namespaced_deployment(twin.namespace).items
    assert sorted(d.metadata.name for d in deps) == sorted(twin.state.services)
    assert all(d.metadata.resource_version.isdigit() for d in deps)
    ns = {n.metadata.name for n in core.list_namespace().items}
    assert {"trainticket", "default", "kube-system"} <= ns
    assert core.list_namespaced_pod("default").items == []
    nodes = core.list_node().items
    assert len(nodes) == twin.scenario.config.n_nodes
    assert nodes[0].status.allocatable["cpu"] == "16"
    pods = core.list_namespaced_pod(twin.namespace, label_selector=f"app={SVC}").items
    assert pods and all(
        p.metadata.labels["app"] == SVC and p.metadata.name.startswith(SVC + "-") for p in pods
    )
    p = pods[0]
    assert p.status.phase == "Running"
    assert {c.type for c in p.status.conditions} >= {"Ready", "PodScheduled"}
    assert p.spec.containers[0].resources.limits["cpu"] == "200m"
    assert p.status.container_statuses[0].resources.limits["cpu"] == "200m"
    all_pods = core.list_pod_for_all_namespaces(
        field_selector=f"metadata.name={p.metadata.name}"
    ).items
    assert [x.metadata.name for x in all_pods] == [p.metadata.name]


def test_scale_through_the_client_changes_the_simulation(twin, api):
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    svc = "ts-order-service"
    s = twin.state.services.index(svc)
    scale = apps.patch_namespaced_deployment_scale(svc, twin.namespace, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert apps.read_namespaced_deployment(svc, twin.namespace).spec.replicas == 3  # at once
    wait_until(lambda: twin.state.sim.desired[s] == 3, 5, what="the simulator's replica target")
    wait_until(lambda: len(_ready_pods(core, twin.namespace, svc)) == 3, 10, what="3 Ready pods")
    dep = apps.read_namespaced_deployment_status(svc, twin.namespace)
    assert dep.status.ready_replicas == 3 and dep.status.available_replicas == 3
    assert apps.read_namespaced_deployment_scale(svc, twin.namespace).status.replicas == 3
    # PUT (replace) of the Scale, the way HPA controllers write it
    scale = apps.read_namespaced_deployment_scale(svc, twin.namespace)
    scale.spec.replicas = 2
    assert apps.replace_namespaced_deployment_scale(svc, twin.namespace, scale).spec.replicas == 2
    wait_until(lambda: twin.state.sim.desired[s] == 2, 5, what="scale-down in the simulator")


def test_resize_through_the_client_reaches_the_pod(twin, api):
    core = k8s.CoreV1Api(api)
    pod = (
        core.list_namespaced_pod(twin.namespace, label_selector=f"app={SVC}").items[0].metadata.name
    )
    body = {"spec": {"containers": [{"name": SVC, "resources": {
        "requests": {"cpu": "150m"}, "limits": {"cpu": "700m"}}}]}}  # fmt: skip
    out = core.patch_namespaced_pod_resize(pod, twin.namespace, body)
    assert out.spec.containers[0].resources.limits["cpu"] == "700m"
    assert out.spec.containers[0].resources.requests["memory"] == "160Mi"  # kept
    wait_until(
        lambda: core.read_namespaced_pod(pod, twin.namespace).status.container_statuses[0].resources.limits["cpu"] == "700m",
        5, what="the resize to be actuated",
    )  # fmt: skip
    row = _sim_row(twin, pod)
    assert row["cpu_limit_millicores"] == 700 and row["cpu_request_millicores"] == 150
    # Beyond a node (16 cores) but valid: Infeasible, reported as PodResizePending
    big = {"spec": {"containers": [{"name": SVC, "resources": {
        "requests": {"cpu": "20"}, "limits": {"cpu": "20"}}}]}}  # fmt: skip
    core.patch_namespaced_pod_resize(pod, twin.namespace, big)

    def pending():
        conds = core.read_namespaced_pod(pod, twin.namespace).status.conditions
        return [c for c in conds if c.type == "PodResizePending"]

    cond = wait_until(pending, 5, what="PodResizePending")[0]
    assert cond.status == "True" and cond.reason == "Infeasible"
    assert _sim_row(twin, pod)["resize_status"] == ResizeStatus.INFEASIBLE
    got = core.read_namespaced_pod(pod, twin.namespace)
    assert got.status.container_statuses[0].resources.limits["cpu"] == "700m"  # actual unchanged
    # A memory limit below the working set is Deferred (1.35 best-effort check)
    low = {"spec": {"containers": [{"name": SVC, "resources": {
        "requests": {"cpu": "150m", "memory": "16Mi"}, "limits": {"cpu": "700m", "memory": "20Mi"}}}]}}  # fmt: skip
    core.patch_namespaced_pod_resize(pod, twin.namespace, low)
    cond = wait_until(lambda: [c for c in pending() if c.reason == "Deferred"], 5, what="Deferred")[
        0
    ]
    assert _sim_row(twin, pod)["resize_status"] == ResizeStatus.DEFERRED
    restore = {"spec": {"containers": [{"name": SVC, "resources": {
        "requests": {"cpu": "50m", "memory": "160Mi"}, "limits": {"cpu": "200m", "memory": "500Mi"}}}]}}  # fmt: skip
    core.patch_namespaced_pod_resize(pod, twin.namespace, restore)
    wait_until(lambda: not pending(), 5, what="the resize conditions to clear")


def test_json_patch_on_deployment_and_scale(twin, raw):
    s, base = raw
    svc = "ts-contacts-service"
    url = f"{base}/apis/apps/v1/namespaces/{twin.namespace}/deployments/{svc}"
    jp = {"Content-Type": "application/json-patch+json"}
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 2}]
    r = s.patch(url + "/scale", data=json.dumps(ops), headers=jp, timeout=TIMEOUT)
    assert (
        r.status_code == 200 and r.json()["kind"] == "Scale" and r.json()["spec"]["replicas"] == 2
    )
    path = "/spec/template/spec/containers/0/resources/requests/cpu"
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": path, "value": "60m"},
    ]
    r = s.patch(url, data=json.dumps(ops), headers=jp, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert (
        r.json()["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        == "60m"
    )
    i = twin.state.services.index(svc)
    wait_until(lambda: twin.state.sim.desired[i] == 2 and twin.state.sim.tmpl_cpu_req[i] == 60, 5,
               what="the JSON patches in the simulator")  # fmt: skip


def test_template_resources_resize_every_pod_in_place(twin, api):
    apps = k8s.AppsV1Api(api)
    svc = "ts-price-service"
    s = twin.state.services.index(svc)
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": svc, "resources": {"limits": {"cpu": "300m"}}}]}
            }
        }
    }
    dep = apps.patch_namespaced_deployment(svc, twin.namespace, patch)
    assert dep.spec.template.spec.containers[0].resources.limits["cpu"] == "300m"
    assert dep.metadata.generation >= 2
    wait_until(
        lambda: twin.state.sim.tmpl_cpu_lim[s] == 300, 5, what="the template in the simulator"
    )
    core = k8s.CoreV1Api(api)
    wait_until(
        lambda: all(p.status.container_statuses[0].resources.limits["cpu"] == "300m"
                    for p in core.list_namespaced_pod(twin.namespace, label_selector=f"app={svc}").items),
        5, what="in-place resize of the pods",
    )  # fmt: skip


def test_resource_versions_change_and_stale_ones_conflict(twin, api, raw):
    apps = k8s.AppsV1Api(api)
    svc = "ts-route-service"
    old = apps.read_namespaced_deployment(svc, twin.namespace)
    want = old.spec.replicas + 1
    new = apps.patch_namespaced_deployment_scale(svc, twin.namespace, {"spec": {"replicas": want}})
    assert int(new.metadata.resource_version) > int(old.metadata.resource_version)
    again = apps.read_namespaced_deployment(svc, twin.namespace)
    assert again.metadata.resource_version != old.metadata.resource_version
    stale = apps.read_namespaced_deployment_scale(svc, twin.namespace)
    stale.metadata.resource_version = old.metadata.resource_version
    stale.spec.replicas = want + 1
    with pytest.raises(k8s.ApiException) as err:
        apps.replace_namespaced_deployment_scale(svc, twin.namespace, stale)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    s, base = raw
    url = f"{base}/apis/apps/v1/namespaces/{twin.namespace}/deployments/{svc}"
    r = s.patch(url, data=json.dumps({"metadata": {"resourceVersion": old.metadata.resource_version},
                                      "spec": {"replicas": want + 1}}),
                headers={"Content-Type": "application/merge-patch+json"}, timeout=TIMEOUT)  # fmt: skip
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert apps.read_namespaced_deployment(svc, twin.namespace).spec.replicas == want


def test_replace_deployment_round_trips(twin, api):
    apps = k8s.AppsV1Api(api)
    svc = "ts-station-service"
    dep = apps.read_namespaced_deployment(svc, twin.namespace)
    dep.spec.replicas = 2
    out = apps.replace_namespaced_deployment(svc, twin.namespace, dep)
    assert out.spec.replicas == 2
    dep = apps.read_namespaced_deployment(svc, twin.namespace)
    dep.spec.template.spec.containers[0].image = "evil:latest"
    with pytest.raises(k8s.ApiException) as err:
        apps.replace_namespaced_deployment(svc, twin.namespace, dep)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and "spec.template.spec.containers[0].image" in body["message"]


def test_metrics_api_and_hpa_loop_from_the_docs(twin, api):
    from drpc.baselines.hpa import HPAController
    from drpc.twin.client import hpa_inputs

    apps, core, custom = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    ns, svc = twin.namespace, "ts-auth-service"
    m = custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", ns, "pods", label_selector=f"app={svc}"
    )
    assert m["kind"] == "PodMetricsList" and m["items"]
    assert m["items"][0]["containers"][0]["usage"]["cpu"].endswith("n")
    nodes = custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    assert len(nodes["items"]) == twin.scenario.config.n_nodes
    speed = twin.state.speed
    hpa = HPAController(max_replicas=6, min_replicas=1, cpu_initialization_period_s=300 / speed,
                        delay_of_initial_readiness_status_s=30 / speed,
                        downscale_stabilization_window_s=300 / speed)  # fmt: skip
    start = apps.read_namespaced_deployment_scale(svc, ns).spec.replicas
    for _ in range(12):  # the loop of docs/twin.md with a 5% target: it must scale up
        scale = apps.read_namespaced_deployment_scale(svc, ns)
        pods = core.list_namespaced_pod(ns, label_selector=f"app={svc}")
        metrics = custom.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", ns, "pods", label_selector=f"app={svc}"
        )
        infos, samples = hpa_inputs(pods, metrics)
        desired = hpa.sync(
            time.time(), scale.spec.replicas, infos, samples, target_utilization_percent=5
        )
        if desired != scale.spec.replicas:
            apps.patch_namespaced_deployment_scale(svc, ns, {"spec": {"replicas": desired}})
        time.sleep(15 / speed)
    assert hpa.last_error is None
    assert apps.read_namespaced_deployment_scale(svc, ns).spec.replicas > start
    s = twin.state.services.index(svc)
    assert twin.state.sim.desired[s] > start


def test_watch_streams_added_pods(twin, api):
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    svc = "ts-seat-service"
    pods = core.list_namespaced_pod(twin.namespace, label_selector=f"app={svc}")
    seen: list[tuple[str, str]] = []

    def run():
        w = k8s_watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, twin.namespace, label_selector=f"app={svc}",
                           resource_version=pods.metadata.resource_version, timeout_seconds=8):  # fmt: skip
            seen.append((ev["type"], ev["object"].metadata.name))
            if sum(1 for t, _ in seen if t == "ADDED") >= 2:
                w.stop()

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.3)
    apps.patch_namespaced_deployment_scale(
        svc, twin.namespace, {"spec": {"replicas": len(pods.items) + 2}}
    )
    th.join(12)
    assert not th.is_alive()
    added = [n for t, n in seen if t == "ADDED"]
    assert len(added) >= 2 and all(n.startswith(svc) for n in added)


# ------------------------------------------------------------------------------ bad input


def _status(r: requests.Response, code: int, reason: str | None = None) -> dict:
    assert r.status_code == code, (r.status_code, r.text[:300])
    body = r.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] and body["message"]
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def test_bad_input_gets_4xx_status_and_the_simulation_keeps_its_state(twin, raw):
    s, base = raw
    ns = twin.namespace
    dep = f"{base}/apis/apps/v1/namespaces/{ns}/deployments/{SVC}"
    scale = dep + "/scale"
    pods_url = f"{base}/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{SVC}"
    pod = s.get(pods_url, timeout=TIMEOUT).json()["items"][0]["metadata"]["name"]
    resize = f"{base}/api/v1/namespaces/{ns}/pods/{pod}/resize"
    merge = {"Content-Type": "application/merge-patch+json"}
    before = s.get(dep, timeout=TIMEOUT).json()
    t_before = twin.state.sim_time_s

    def patch(url, body, headers=merge):
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return s.patch(url, data=data, headers=headers, timeout=TIMEOUT)

    def rs(res):
        return {"spec": {"containers": [{"name": SVC, "resources": res}]}}

    b = _status(patch(scale, b"{not json"), 400, "BadRequest")
    assert "error decoding patch" in b["message"]
    for bad in ("abc", -1, 2.5, None, True, [3], 10**12):
        b = _status(patch(scale, {"spec": {"replicas": bad}}), 422, "Invalid")
        assert "spec.replicas" in b["message"]
    b = _status(patch(dep, {"spec": {"replicas": 500}}), 422, "Invalid")
    assert "between 1 and 20" in b["message"]
    _status(patch(dep, [{"op": "replace", "path": "/spec/replicas", "value": "x"}],
                  {"Content-Type": "application/json-patch+json"}), 422, "Invalid")  # fmt: skip
    _status(
        patch(dep, {"op": "replace"}, {"Content-Type": "application/json-patch+json"}),
        422,
        "Invalid",
    )
    _status(
        patch(
            dep,
            [{"op": "remove", "path": "/spec/nope"}],
            {"Content-Type": "application/json-patch+json"},
        ),
        422,
    )
    _status(
        patch(dep, {"spec": {"replicas": 2}}, {"Content-Type": "text/plain"}),
        415,
        "UnsupportedMediaType",
    )
    _status(
        patch(dep, "spec: {}", {"Content-Type": "application/apply-patch+yaml"}),
        415,
        "UnsupportedMediaType",
    )
    _status(patch(dep, {"spec": {"replicas": 2}}, {}), 415, "UnsupportedMediaType")
    _status(patch(dep, {"metadata": {"labels": {"x": "y"}}}), 422, "Invalid")
    _status(patch(dep, {"spec": {"selector": {"matchLabels": {"app": "other"}}}}), 422, "Invalid")
    _status(patch(dep, {"metadata": {"name": "other"}}), 400, "BadRequest")
    _status(patch(dep, b""), 400, "BadRequest")
    _status(patch(dep, b"\xff\xfe"), 400, "BadRequest")
    _status(patch(dep, "[" * 100000 + "]" * 100000), 400, "BadRequest")
    _status(patch(dep, b"x" * (3 * 1024 * 1024 + 1)), 413)
    _status(
        s.put(dep, data="{}", headers={"Content-Type": "application/json"}, timeout=TIMEOUT),
        422,
        "Invalid",
    )
    _status(s.put(scale, data=json.dumps({"kind": "Pod"}), headers={"Content-Type": "application/json"},
                  timeout=TIMEOUT), 400, "BadRequest")  # fmt: skip
    # resize: bad quantities, requests above limits, other resources, other fields, QoS change
    for res, field in (
        ({"requests": {"cpu": "abc"}}, "requests.cpu"),
        ({"requests": {"cpu": -1}}, "requests.cpu"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "requests"),
        ({"limits": {"nvidia.com/gpu": "1"}}, "limits[nvidia.com/gpu]"),
        ({"requests": {"memory": "1Ki"}}, "requests.memory"),
        ({"limits": {"cpu": None}}, "limits.cpu"),
        ({"requests": {"cpu": "200m", "memory": "500Mi"}}, "spec"),  # would become Guaranteed
    ):
        b = _status(patch(resize, rs(res)), 422, "Invalid")
        assert field in b["message"], (res, b["message"])
    _status(
        patch(resize, {"spec": {"containers": [{"name": SVC, "image": "evil"}]}}), 422, "Invalid"
    )
    _status(
        patch(resize, {"spec": {"containers": [{"name": "other", "resources": {}}]}}),
        422,
        "Invalid",
    )
    _status(patch(resize, {"spec": {"containers": "x"}}), 422, "Invalid")
    # unknown kinds, names, namespaces, verbs, selectors
    _status(s.get(f"{base}/apis/apps/v1/namespaces/{ns}/foos", timeout=TIMEOUT), 404, "NotFound")
    _status(s.get(f"{base}/apis/nope/v1/foos", timeout=TIMEOUT), 404, "NotFound")
    _status(s.get(f"{base}/api/v1/namespaces/{ns}/pods/nope", timeout=TIMEOUT), 404, "NotFound")
    _status(
        s.get(f"{base}/apis/apps/v1/namespaces/nope/deployments/{SVC}", timeout=TIMEOUT),
        404,
        "NotFound",
    )
    _status(
        patch(
            f"{base}/apis/apps/v1/namespaces/{ns}/deployments/nope/scale", {"spec": {"replicas": 1}}
        ),
        404,
    )
    _status(patch(f"{base}/api/v1/namespaces/{ns}/pods/nope/resize", rs({})), 404, "NotFound")
    _status(
        s.get(f"{base}/api/v1/namespaces/{ns}/pods/{pod}/exec", timeout=TIMEOUT), 404, "NotFound"
    )
    _status(s.post(f"{base}/apis/apps/v1/namespaces/{ns}/deployments", data="{}",
                   headers={"Content-Type": "application/json"}, timeout=TIMEOUT), 405, "MethodNotAllowed")  # fmt: skip
    _status(
        s.delete(f"{base}/api/v1/namespaces/{ns}/pods/{pod}", timeout=TIMEOUT),
        405,
        "MethodNotAllowed",
    )
    _status(patch(f"{base}/api/v1/namespaces/{ns}/pods/{pod}", rs({})), 405, "MethodNotAllowed")
    _status(s.request("BREW", dep, timeout=TIMEOUT), 405)
    _status(
        s.get(f"{base}/api/v1/namespaces/{ns}/pods?labelSelector=app+in+(", timeout=TIMEOUT),
        400,
        "BadRequest",
    )
    _status(
        s.get(f"{base}/api/v1/pods?fieldSelector=spec.secret%3Dx", timeout=TIMEOUT),
        400,
        "BadRequest",
    )
    _status(
        s.get(f"{base}/api/v1/pods?watch=1&resourceVersion=abc", timeout=TIMEOUT), 400, "BadRequest"
    )
    _status(patch(dep + "?dryRun=Some", {"spec": {"replicas": 2}}), 400, "BadRequest")
    # authentication
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"},
                    {"Authorization": f"Bearer {twin.token}x"}):  # fmt: skip
        with _anonymous(s) as anon:
            _status(anon.get(dep, headers=headers, timeout=TIMEOUT), 401, "Unauthorized")
    with _anonymous(s) as anon:
        assert anon.get(f"{base}/version", timeout=TIMEOUT).status_code == 200
    # transport garbage: plain text to the TLS port, garbage HTTP over TLS
    with socket.create_connection(("127.0.0.1", twin.api_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            sock.recv(100)
        except OSError:
            pass
    ctx = ssl.create_default_context(cadata=twin.ca_pem.decode())
    with socket.create_connection(("127.0.0.1", twin.api_port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"\x00\x01garbage \r\n\r\n")
            head = tls.recv(200)
    assert b" 400 " in head.split(b"\r\n")[0], head
    # dry run validates without applying
    r = patch(dep + "?dryRun=All", {"spec": {"replicas": 5}})
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 5
    # ... and the simulation kept running and lost nothing
    after = s.get(dep, timeout=TIMEOUT).json()
    assert after["spec"]["replicas"] == before["spec"]["replicas"]
    assert after["spec"]["template"] == before["spec"]["template"]
    wait_until(lambda: twin.state.sim_time_s > t_before + 15, 5, what="simulated time to advance")
    assert twin.state.running and twin.state.error is None


# ------------------------------------------------------------------------------ state-level


def _tiny_scenario(intervals: int, rps: float = 50.0, **service) -> object:
    """A 2-service app on 1 node, flat load: fast to step by hand."""
    base = {"cpu_seconds_per_request": 0.01, "memory_base_mib": 100, "memory_per_inflight_mib": 1,
            "startup_s": 20, "min_replicas": 1, "max_replicas": 10, "replicas": 2,
            "cpu_request_millicores": 500, "cpu_limit_millicores": 1000,
            "memory_request_mib": 256, "memory_limit_mib": 1024}  # fmt: skip
    data = {
        "name": "tiny",
        "provenance": "test",
        "services": [{**base, "name": "fe", **service}, {**base, "name": "db"}],
        "endpoints": [{"name": "e", "entry": "fe", "weight": 1, "slo_p99_ms": 500,
                       "calls": [{"caller": "fe", "callee": "db", "mode": "sequential"}]}],
    }  # fmt: skip
    default = load_cached_scenario("default")
    config = ClusterConfig(n_nodes=1, arrival_noise="none")
    return dataclasses.replace(
        default,
        app=compile_app(app_from_data(data)),
        load_rps=np.full((intervals, config.substeps), rps),
        config=config,
    )


def test_trace_end_holds_or_loops_with_monotonic_counters():
    held = TwinState(_tiny_scenario(4), TwinOptions(speed=1000))
    for _ in range(4):
        assert held.advance()
    t_end = held.sim_time_s
    assert held.advance() is False and held.finished and held.sim_time_s == t_end
    assert held.get("deployments", "tiny", "fe") is not None  # still serving the last state

    threaded = TwinState(_tiny_scenario(4), TwinOptions(speed=1e4))
    threaded.start()
    try:
        wait_until(lambda: threaded.finished, 10, what="the trace to end")
        t_end, steps = threaded.sim_time_s, threaded.steps
        time.sleep(0.3)
        assert threaded.running and threaded.sim_time_s == t_end and threaded.steps == steps == 4
    finally:
        threaded.stop()
    assert not threaded.running

    looped = TwinState(_tiny_scenario(4), TwinOptions(speed=1000, loop=True))
    names0 = {b["metadata"]["name"] for b in looped.list("pods", "tiny")[1]}
    totals, hist = [], []
    for _ in range(13):
        looped.advance()
        f = looped.metrics_frame()
        totals.append(f.counters.svc_ok.sum() + f.counters.svc_err.sum())
        hist.append(f.counters.svc_bucket[:, -1].sum())
    assert looped.epoch == 2 and not looped.finished
    assert np.all(np.diff(totals) >= 0) and np.all(np.diff(hist) >= 0)
    names2 = {b["metadata"]["name"] for b in looped.list("pods", "tiny")[1]}
    assert names0.isdisjoint(names2)  # a new epoch has new pods


def test_clock_re_anchors_without_moving_the_past():
    st = TwinState(_tiny_scenario(6), TwinOptions(speed=10.0))
    st.advance()
    pods_before = {
        b["metadata"]["name"]: b["metadata"]["creationTimestamp"]
        for b in st.list("pods", "tiny")[1]
    }
    t_old = st.sim_time_s - 5.0
    wall_old = st.wall_of(t_old)
    st._re_anchor(100.0)  # the host fell 100 s behind
    assert st.wall_of(t_old) == wall_old
    assert st.wall_of(st.sim_time_s + 1.0) == pytest.approx(wall_old + 100.0 + 6.0 / 10.0)
    st.update_deployment("tiny", "fe", replicas=4)
    st.advance()
    created = {
        b["metadata"]["name"]: b["metadata"]["creationTimestamp"]
        for b in st.list("pods", "tiny")[1]
    }
    assert all(created[n] == ts for n, ts in pods_before.items() if n in created)
    assert len(created) == len(pods_before) + 2
    assert np.all(np.diff(st.wall_of_array(np.array([t_old, st.sim_time_s]))) > 100.0)


def test_oom_kills_show_in_pods_and_metrics():
    # 1 MiB per in-flight request over a 100 MiB base with a 120 MiB limit: overload -> OOM
    st = TwinState(_tiny_scenario(30, rps=150, replicas=1, memory_limit_mib=120, memory_request_mib=120),
                   TwinOptions(speed=1000))  # fmt: skip
    seen_crash = seen_terminating = False
    decoder = k8s.ApiClient()
    for i in range(30):
        if i == 20:
            st.update_deployment("tiny", "db", replicas=1)
        st.advance()
        _, pods = st.list("pods", "tiny")
        for p in pods:
            decoder.deserialize(json.dumps(p), "V1Pod", "application/json")  # the client reads it
            cs = p["status"].get("containerStatuses", [{}])[0]
            if cs.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
                seen_crash = True
            seen_terminating |= "deletionTimestamp" in p["metadata"]
    assert seen_terminating
    restarted = [p for p in st.list("pods", "tiny")[1]
                 if p["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) > 0]  # fmt: skip
    assert seen_crash and restarted
    term = restarted[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    text = render(st.metrics_frame())
    ooms = [ln for ln in text.splitlines() if ln.startswith("container_oom_events_total{")]
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in ooms) >= 1
    assert (
        "kube_pod_container_status_last_terminated_reason{" in text and 'reason="OOMKilled"' in text
    )
    assert all(p["status"]["phase"] in ("Running", "Pending") for p in st.list("pods", "tiny")[1])


def test_a_busy_port_fails_cleanly(twin):
    from drpc.twin import Twin

    before = {t.name for t in threading.enumerate()}
    other = Twin(load_cached_scenario("default"), port=twin.api_port, metrics_port=0)
    with pytest.raises(OSError):
        other.start()
    other.stop()
    assert {t.name for t in threading.enumerate()} <= before


# ------------------------------------------------------------------------------ CLI


def test_cli_serves_and_shuts_down_cleanly_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kc.yaml"
    with open(tmp_path / "stderr.log", "w") as err_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drpc.twin", "--scenario", "default", "--port", "0",
             "--metrics-port", "0", "--kubeconfig", str(kubeconfig), "--speed", "100",
             "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=err_log, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("ready" in ln for ln in lines), 60, what="the twin CLI to start")
        cfg = yaml.safe_load(kubeconfig.read_text())
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        assert cfg["contexts"][0]["context"]["namespace"] == "trainticket"
        conf = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
        with k8s.ApiClient(conf) as c:
            names = [n.metadata.name for n in k8s.CoreV1Api(c).list_namespace().items]
        assert "trainticket" in names
        metrics_url = next(ln.split("metrics ")[1].strip() for ln in lines if "metrics http" in ln)
        with requests.Session() as plain:
            plain.trust_env = False
            assert "kube_deployment_spec_replicas" in plain.get(metrics_url, timeout=TIMEOUT).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, (tmp_path / "stderr.log").read_text()[-2000:]
        reader.join(5)
        assert "stopping" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        proc.stdout.close()
