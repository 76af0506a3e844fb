"""`ray_cluster.yaml` and `ray_cluster.gpu.yaml`: valid for `ray up`, and the local one's start
commands, run on loopback (a head and two workers), make a cluster DRPC trains on and the
Serve app runs on (its NodeAgents pinned by the workers' node labels).

The loopback test turns the YAML's commands into argument lists (no shell): `$RAY_HEAD_IP` is
127.0.0.1, `$(hostname)` becomes `node-0`/`node-1` (all workers share this machine's name),
`~/drpc-venv/bin/ray` is this venv's `ray`, the head gets a free port and each node one CPU.
The cluster runs in its own temp dir (a separate session) and only its own processes are stopped afterwards, so
other Ray instances on the machine are left alone. The session's Ray (conftest) is shut down
for the test and restarted after it.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import start_session_ray

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def _prepared(name: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / name).read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # Ray's JSON schema for cluster configs
    return prepared


def test_local_cluster_config_is_valid_and_pins_one_slot_per_worker():
    prepared = _prepared("ray_cluster.yaml")
    assert prepared["provider"]["type"] == "local"
    assert len(prepared["provider"]["worker_ips"]) == prepared["max_workers"] == 2
    head = " ".join(prepared["head_start_ray_commands"])
    assert "drpc_node_slot" not in head  # the head runs the learner, no env runner
    worker = " ".join(prepared["worker_start_ray_commands"])
    assert "--resources='{\"drpc_node_slot\": 1}'" in worker
    assert "--labels=drpc.io/node=$(hostname)" in worker


def test_gpu_cluster_config_is_valid_and_has_a_gpu_learner_node_type():
    prepared = _prepared("ray_cluster.gpu.yaml")
    types = prepared["available_node_types"]
    assert set(types) == {"head", "node_agent", "learner_gpu"}
    assert types["learner_gpu"]["resources"]["GPU"] == 1
    assert types["node_agent"]["resources"]["drpc_node_slot"] == 1
    assert "drpc_node_slot" not in types["head"]["resources"]
    assert types["node_agent"]["max_workers"] >= types["node_agent"]["min_workers"] >= 2


def test_a_broken_config_is_refused_by_the_validation():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["worker_start_ray_commands"] = [{"not": "a command"}]
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


# -- the start commands on loopback -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(command: str, replace: dict[str, str]) -> list[str] | None:
    """One YAML start command as an argument list for this machine (None: skip it)."""
    command = command.split(";")[-1].strip()  # drop `ulimit ...;`
    argv = shlex.split(command)
    while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
        argv.pop(0)  # leading VAR=value assignments (the test sets the environment itself)
    if argv[0].endswith("/ray"):
        argv[0] = RAY
    if argv[1:2] == ["stop"]:
        return None  # `ray stop` stops every Ray on the machine; we stop only ours
    out = []
    for arg in argv:
        for old, new in replace.items():
            arg = arg.replace(old, new)
        if not arg.startswith(("--autoscaling-config", "--dashboard-host")):
            out.append(arg)
    return out


def _stop(temp_dir: str) -> None:
    """Stop the processes of the cluster whose temp dir is ``temp_dir`` (and only those)."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(p.info["cmdline"] or []):
                procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        p.kill()


@pytest.fixture(scope="module")
def loopback_cluster():
    import ray

    restore = ray.is_initialized()
    if restore:
        ray.shutdown()
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="drpc-rc-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head_extra = ["--num-cpus=1", f"--temp-dir={temp_dir}", "--include-dashboard=false"]
    try:
        for cmd in config["head_start_ray_commands"]:
            argv = _argv(cmd, {"$RAY_HEAD_IP": "127.0.0.1"})
            if argv:
                argv = [a for a in argv if not a.startswith("--port")]
                argv += [f"--port={port}", "--node-ip-address=127.0.0.1", *head_extra]
                subprocess.run(argv, check=True, env=env, capture_output=True, timeout=120)
        for i in range(2):
            replace = {
                "$RAY_HEAD_IP:6379": f"127.0.0.1:{port}",
                "$RAY_HEAD_IP": "127.0.0.1",
                "$(hostname)": f"node-{i}",
            }
            for cmd in config["worker_start_ray_commands"]:
                argv = _argv(cmd, replace)
                if argv:
                    argv += [
                        "--node-ip-address=127.0.0.1",
                        "--num-cpus=1",
                        f"--temp-dir={temp_dir}",
                    ]
                    subprocess.run(argv, check=True, env=env, capture_output=True, timeout=120)
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield ray
    finally:
        ray.shutdown()
        _stop(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if restore:  # as tests/conftest.py's ray_session starts it
            start_session_ray()


@pytest.mark.slow
def test_drpc_trains_on_the_cluster_the_yaml_starts(loopback_cluster):
    import torch

    from drpc.imitation.on_ray import NODE_LABEL, NODE_SLOT, StudentConfig, drpc_config
    from drpc.teacher.checkpoint import bundled_teacher
    from drpc.train import TrainConfig

    ray = loopback_cluster
    nodes = [n for n in ray.nodes() if n["Alive"]]
    labels = sorted(n.get("Labels", {}).get(NODE_LABEL, "") for n in nodes)
    assert labels == ["", "node-0", "node-1"]  # the head has no node label
    assert sorted(n["Resources"].get(NODE_SLOT, 0) for n in nodes) == [0, 1, 1]

    torch.set_num_threads(1)
    teacher = bundled_teacher()["folder"]
    train = TrainConfig(
        episode_intervals=30,
        rollout_fragment_length=8,
        steps_per_iteration=16,
        learning_starts=16,
        batch_size=32,
        validation_scenario=None,
    )
    students = StudentConfig(
        intervals_per_runner=20, updates_per_iteration=20, episode_intervals=30
    )
    algo = drpc_config(train, students, num_nodes=2, teacher=teacher).build_algo()
    try:
        algo.load_teacher(teacher)
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    runner_nodes = results[-1]["students"]["runner_nodes"]
    assert sorted(runner_nodes.values()) == ["node-0", "node-1"]
    losses = [r["students"]["imitation_loss"] for r in results]
    assert all(loss == loss and loss >= 0 for loss in losses)  # finite


@pytest.mark.slow
def test_serve_app_runs_on_the_cluster_with_agents_pinned_by_label(loopback_cluster, tmp_path):
    """The students' NodeAgents placed by the `drpc.io/node` label the YAML's workers carry
    (a replica only fits a node with its label), and /v1/decide answers over HTTP."""
    import requests
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from drpc.imitation.distill import DistillConfig, distill
    from drpc.scenario import load_scenario
    from drpc.teacher.checkpoint import bundled_teacher

    cfg = DistillConfig(method="bc", sample_budget=49 * 40, iterations=1, epochs=5,
                        episode_intervals=30, validation_scenario=None)  # fmt: skip
    students = distill(bundled_teacher()["folder"], cfg=cfg).save(tmp_path / "students")
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = {
            "name": "drpc",
            "route_prefix": "/",
            "import_path": "drpc.serve.app:build_app",
            "args": {"checkpoint": str(students), "token": "t0ken", "placement": "label",
                     "ingress_num_cpus": 0.1, "agent_num_cpus": 0.1},
        }  # fmt: skip
        _get_global_client().deploy_apps(ServeDeploySchema(applications=[app]), _blocking=True)
        url = f"http://127.0.0.1:{port}"
        trainticket = load_scenario("default").app
        services = [
            {
                "name": name,
                "request_rate_rps": 10.0,
                "cpu_usage_millicores": 0.3 * float(trainticket.cpu_limit_m0[i]),
                "memory_working_set_mib": 0.4 * float(trainticket.memory_limit_mib0[i]),
                "replicas_ready": 1,
                "replicas_desired": 1,
                "cpu_limit_millicores": float(trainticket.cpu_limit_m0[i]),
                "memory_limit_mib": float(trainticket.memory_limit_mib0[i]),
            }
            for i, name in enumerate(trainticket.names)
        ]
        body = {"time_s": 0.0, "entry_rps_history": [50.0], "services": services}
        deadline = time.monotonic() + 30
        while True:  # the proxy may need a moment to route the new app
            try:
                r = requests.post(url + "/v1/decide", json=body, timeout=30,
                                  headers={"Authorization": "Bearer t0ken"})  # fmt: skip
                if r.status_code != 404 or time.monotonic() > deadline:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        decisions = r.json()["decisions"]
        assert len(decisions) == trainticket.n_services
        assert {d["node"] for d in decisions} == {"node-0", "node-1"}
    finally:
        serve.shutdown()
