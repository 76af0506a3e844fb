"""Bad app, scenario and trace files: the error names the file and the field, nothing runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from drpc.cli import main
from drpc.scenario import ScenarioError, load_scenario
from drpc.sim.app import AppError, load_app

GOOD_SERVICE = {
    "name": "api",
    "cpu_seconds_per_request": 0.01,
    "memory_base_mib": 100,
    "memory_per_inflight_mib": 1,
    "startup_s": "20s",
    "min_replicas": 1,
    "max_replicas": 5,
    "replicas": 1,
    "cpu_request_millicores": "250m",
    "cpu_limit_millicores": "1",
    "memory_request_mib": "256Mi",
    "memory_limit_mib": "1Gi",
}
GOOD_APP = {
    "name": "tiny",
    "provenance": "test",
    "services": [GOOD_SERVICE, {**GOOD_SERVICE, "name": "db"}],
    "endpoints": [
        {
            "name": "get",
            "entry": "api",
            "weight": 1,
            "slo_p99_ms": 200,
            "calls": [{"caller": "api", "callee": "db"}],
        }
    ],
}


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def mutate(path: tuple, value, base=GOOD_APP):
    data = copy.deepcopy(base)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_good_app_loads_with_units(tmp_path):
    app = load_app(write(tmp_path, "app.yaml", GOOD_APP))
    svc = app.services[0]
    assert svc.cpu_request_millicores == 250 and svc.cpu_limit_millicores == 1000
    assert svc.memory_limit_mib == 1024 and svc.startup_s == 20


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("services", 0, "cpu_seconds_per_request"), KeyError, "services[0].cpu_seconds_per_request", "missing"),
        (("services", 1, "memory_limit_mib"), "1GB", "services[1].memory_limit_mib", "unknown memory unit 'GB'"),
        (("services", 0, "cpu_limit_millicores"), "2 cores", "services[0].cpu_limit_millicores", "unknown CPU unit"),
        (("services", 0, "startup_s"), "20 sec", "services[0].startup_s", "unknown time unit"),
        (("services", 0, "memory_base_mib"), -5, "services[0].memory_base_mib", "greater than 0"),
        (("services", 0, "cpu_seconds_per_request"), float("nan"), "services[0].cpu_seconds_per_request", "finite"),
        (("services", 0, "colour"), "blue", "services[0].colour", "unknown field"),
        (("endpoints", 0, "entry"), "nope", "endpoints[0].entry", "unknown service 'nope'"),
        (("endpoints", 0, "calls", 0, "callee"), "ghost", "endpoints[0].calls[0].callee", "unknown service 'ghost'"),
        (("endpoints", 0, "calls", 0, "mode"), "async", "endpoints[0].calls[0].mode", "sequential"),
        (("endpoints", 0, "slo_p99_ms"), 0, "endpoints[0].slo_p99_ms", "greater than 0"),
        (("provenance",), KeyError, "provenance", "missing"),
    ],
)  # fmt: skip
def test_bad_app_names_file_and_field(tmp_path, path, value, field, words):
    bad = write(tmp_path, "bad.yaml", mutate(path, value))
    with pytest.raises(AppError) as err:
        load_app(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert f"{field}:" in msg
    assert words in msg


def test_cycle_and_unreachable_callers_are_refused(tmp_path):
    cyc = mutate(
        ("endpoints", 0, "calls"),
        [{"caller": "api", "callee": "db"}, {"caller": "db", "callee": "api"}],
    )
    with pytest.raises(AppError, match=r"endpoints\[0\].calls: call graph has a cycle"):
        load_app(write(tmp_path, "cyc.yaml", cyc))
    orphan = mutate(("endpoints", 0, "calls"), [{"caller": "db", "callee": "api"}])
    with pytest.raises(AppError, match="not reachable from the entry"):
        load_app(write(tmp_path, "orphan.yaml", orphan))


def test_inconsistent_replicas_and_resources(tmp_path):
    bad = mutate(("services", 0, "replicas"), 9)
    with pytest.raises(AppError, match=r"services\[0\]: replicas 9 outside"):
        load_app(write(tmp_path, "r.yaml", bad))
    bad = mutate(("services", 0, "cpu_request_millicores"), "2")
    with pytest.raises(AppError, match="cpu_request_millicores exceeds cpu_limit_millicores"):
        load_app(write(tmp_path, "c.yaml", bad))


def test_unparsable_file(tmp_path):
    with pytest.raises(AppError, match=r"bad\.yaml: not valid YAML"):
        load_app(write(tmp_path, "bad.yaml", "services: [unclosed"))


SCENARIO = {
    "name": "t",
    "app": "trainticket",
    "trace": {
        "file": "nasa",
        "window_s": [864000, 867600],
        "split": "eval",
        "peak_utilization": 0.5,
    },
}


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("trace", "window_s"), [0, 3600], "trace.window_s", "not inside the eval split"),
        (("trace", "peak_utilization"), -0.1, "trace.peak_utilization", "greater than 0"),
        (("trace", "file"), "nope.csv", "trace.file", "nope"),
        (("trace", "peak_rps"), 10, "trace", "not both"),
        (("app",), "no-such-app", "app", "no-such-app"),
        (("seed",), "x", "seed", "integer"),
        (("sim",), {"interval_s": 15, "speed": 2}, "sim.speed", "unknown field"),
        (("service_overrides",), {"ts-ghost": {"replicas": 2}}, "service_overrides.ts-ghost", "unknown service"),
        (("trace", "window_s"), [900000, 800000], "trace", "start must be before end"),
    ],
)  # fmt: skip
def test_bad_scenario_names_file_and_field(tmp_path, path, value, field, words):
    bad = write(tmp_path, "scenario.yaml", mutate(path, value, SCENARIO))
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    msg = str(err.value)
    assert str(bad) in msg and f"{field}" in msg and words in msg


def test_bad_trace_file_names_row_and_column(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp,rps\n0,1\n60,2\n120,nan\n")
    sc = mutate(("trace",), {"file": str(csv)}, SCENARIO)
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, "s.yaml", sc))
    msg = str(err.value)
    assert "trace.file" in msg and "t.csv" in msg and "rps" in msg and "4" in msg


def test_cli_bad_scenario_writes_nothing(tmp_path, capsys):
    bad = write(tmp_path, "scenario.yaml", mutate(("trace", "peak_utilization"), "high", SCENARIO))
    out = tmp_path / "out"
    assert main(["evaluate", "--scenario", str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "scenario.yaml" in err and "trace.peak_utilization" in err
    assert not out.exists()
