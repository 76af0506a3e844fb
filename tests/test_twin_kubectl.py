"""kubectl (>= 1.32) against the digital twin: get, scale, top, patch --subresource=resize, watch,
errors. Each change is read back through the API and in the simulator's own state.

Skipped when kubectl is not installed (CI installs it).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
import yaml

from drpc.sim.types import ResizeStatus
from drpc.twin.testing import Kubectl, find_binary, load_cached_scenario, running_twin, wait_until

KUBECTL = find_binary("kubectl", "/usr/bin/kubectl", "/usr/local/bin/kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (needs >= 1.32)")

SPEED = 200.0


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with running_twin(
        load_cached_scenario("default"), speed=SPEED, directory=tmp_path_factory.mktemp("twin")
    ) as t:
        yield t


@pytest.fixture(scope="module")
def kubectl(twin, tmp_path_factory):
    return Kubectl(twin.kubeconfig_path, binary=KUBECTL, cache_dir=tmp_path_factory.mktemp("kube"))


def _resize_patch(container: str, cpu_request: str, cpu_limit: str) -> str:
    resources = {"requests": {"cpu": cpu_request}, "limits": {"cpu": cpu_limit}}
    return json.dumps({"spec": {"containers": [{"name": container, "resources": resources}]}})


def _pods(kubectl, svc):
    return kubectl.json("get", "pods", "-l", f"app={svc}")["items"]


def _ready(pod):
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def test_get_deployments_pods_nodes_namespaces(twin, kubectl):
    out = kubectl.run("get", "deployments", "-n", twin.namespace).stdout
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert {ln.split()[0] for ln in lines[1:]} == set(twin.state.services)
    dep = kubectl.json("get", "deployment", "ts-travel-service")
    assert dep["metadata"]["resourceVersion"].isdigit() and dep["spec"]["replicas"] >= 1
    pods = kubectl.run("get", "pods", "-l", "app=ts-travel-service", "-o", "wide").stdout
    assert "Running" in pods and "node-" in pods
    nodes = kubectl.run("get", "nodes").stdout
    assert nodes.count("Ready") == twin.scenario.config.n_nodes
    namespaces = kubectl.run("get", "namespaces").stdout
    assert all(ns in namespaces for ns in ("trainticket", "default", "kube-system"))
    assert "No resources found" in kubectl.run("get", "pods", "-n", "default").stderr
    resources = kubectl.run("api-resources").stdout
    assert "deployments" in resources and "metrics.k8s.io/v1beta1" in resources
    assert (
        "successfully rolled out"
        in kubectl.run("rollout", "status", "deployment/ts-travel-service", "--timeout=10s").stdout
    )


def test_scale_changes_the_simulation(twin, kubectl):
    svc = "ts-basic-service"
    s = twin.state.services.index(svc)
    out = kubectl.run("scale", "deployment", svc, "--replicas=4", "-n", twin.namespace).stdout
    assert "scaled" in out
    assert twin.state.get("deployments", twin.namespace, svc).body["spec"]["replicas"] == 4  # API
    wait_until(lambda: twin.state.sim.desired[s] == 4, 5, what="the simulator's replica target")
    wait_until(lambda: sum(_ready(p) for p in _pods(kubectl, svc)) == 4, 15, what="4 Ready pods")
    dep = kubectl.json("get", "deployment", svc)
    assert dep["status"]["readyReplicas"] == 4
    wait_until(
        lambda: twin.state.history()[-1].replicas_ready[s] == 4, 5, what="4 ready in the simulation"
    )
    kubectl.run("scale", "deployment", svc, "--replicas=1")
    wait_until(lambda: twin.state.sim.desired[s] == 1, 5, what="scale-down in the simulator")
    wait_until(lambda: len(_pods(kubectl, svc)) == 1, 15, what="terminated pods to go away")


def test_top_pods_and_nodes(twin, kubectl):
    out = kubectl.run("top", "pods", "-n", twin.namespace).stdout.strip().splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    names = {ln.split()[0] for ln in out[1:]}
    api = {m["metadata"]["name"] for m in twin.state.pod_metrics(twin.namespace)}
    assert len(names & api) >= 0.9 * len(api)  # pods may come and go between the two reads
    assert all(ln.split()[1].endswith("m") and ln.split()[2].endswith("Mi") for ln in out[1:])
    nodes = kubectl.run("top", "nodes").stdout.strip().splitlines()
    assert nodes[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    assert len(nodes) == 1 + twin.scenario.config.n_nodes


def test_patch_resize_subresource_reaches_the_simulator(twin, kubectl):
    svc = "ts-travel-service"
    pod = _pods(kubectl, svc)[0]["metadata"]["name"]
    patch = _resize_patch(svc, "100m", "600m")
    out = kubectl.run(
        "patch", "pod", pod, "--subresource=resize", "--type=merge", "-p", patch
    ).stdout
    assert "patched" in out

    def actual_cpu_limit():
        p = kubectl.json("get", "pod", pod)
        return p["status"]["containerStatuses"][0]["resources"]["limits"]["cpu"]

    wait_until(lambda: actual_cpu_limit() == "600m", 5, what="the resize to be actuated")
    uid = twin.state.pod_uid_of(pod)
    sim = twin.state.sim
    with twin.state.lock:
        slot = int((sim.pods.uid == uid).nonzero()[0][0])
        assert sim.pods.cpu_lim[slot] == pytest.approx(600) and sim.pods.cpu_req[
            slot
        ] == pytest.approx(100)
    # strategic merge (kubectl's default) beyond the node: Infeasible
    big = _resize_patch(svc, "20", "20")
    kubectl.run("patch", "pod", pod, "--subresource", "resize", "-p", big)

    def pending_reason():
        p = kubectl.json("get", "pod", pod)
        return next(
            (c.get("reason") for c in p["status"]["conditions"] if c["type"] == "PodResizePending"),
            None,
        )

    assert wait_until(pending_reason, 5, what="PodResizePending") == "Infeasible"
    with twin.state.lock:
        assert sim.pods.resize[slot] == ResizeStatus.INFEASIBLE
    back = _resize_patch(svc, "50m", "200m")
    kubectl.run("patch", "pod", pod, "--subresource=resize", "-p", back)
    wait_until(
        lambda: pending_reason() is None and actual_cpu_limit() == "200m", 5, what="the resize back"
    )


def test_watch_prints_new_pods(twin, kubectl):
    svc = "ts-food-service"
    cmd = [kubectl.binary, "--kubeconfig", kubectl.kubeconfig, "--cache-dir", kubectl.cache_dir,
           "get", "pods", "-l", f"app={svc}", "-w", "--request-timeout=20s"]  # fmt: skip
    before = {p["metadata"]["name"] for p in _pods(kubectl, svc)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) > len(before), 10, what="the initial listing")
        kubectl.run("scale", "deployment", svc, f"--replicas={len(before) + 2}")
        new = wait_until(
            lambda: {ln.split()[0] for ln in lines[1:] if ln.split()[0] not in before} or None,
            10, what="new pods in the watch",
        )  # fmt: skip
        assert all(n.startswith(svc + "-") for n in new)
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)
        proc.stdout.close()


def test_errors_are_kubernetes_status(twin, kubectl, tmp_path):
    r = kubectl.run("get", "deployment", "nope", check=False)
    assert (
        r.returncode != 0
        and "NotFound" in r.stderr
        and 'deployments.apps "nope" not found' in r.stderr
    )
    r = kubectl.run("scale", "deployment", "ts-travel-service", "--replicas=999", check=False)
    assert r.returncode != 0 and "spec.replicas" in r.stderr and "is invalid" in r.stderr
    bad = '[{"op":"replace","path":"/spec/replicas","value":"abc"}]'
    r = kubectl.run(
        "patch", "deployment", "ts-travel-service", "--type=json", "-p", bad, check=False
    )
    assert r.returncode != 0 and "spec.replicas" in r.stderr
    r = kubectl.run(
        "delete", "pod", _pods(kubectl, "ts-travel-service")[0]["metadata"]["name"], check=False
    )
    assert r.returncode != 0 and "MethodNotAllowed" in r.stderr
    r = kubectl.run("get", "foos", check=False)
    assert r.returncode != 0
    cfg = yaml.safe_load(twin.kubeconfig_path.read_text())
    cfg["users"][0]["user"]["token"] = "wrong"
    wrong = tmp_path / "wrong.kubeconfig"
    wrong.write_text(yaml.safe_dump(cfg))
    r = Kubectl(wrong, binary=KUBECTL, cache_dir=tmp_path / "cache").run("get", "pods", check=False)
    assert r.returncode != 0 and "must be logged in" in r.stderr
    t = twin.state.sim_time_s
    time.sleep(0.2)
    assert twin.state.sim_time_s > t and twin.state.error is None  # still simulating
