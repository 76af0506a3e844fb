"""The teacher benchmarks' helpers: training overrides and the reliability table."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_overrides_parse_json_and_refuse_unknown_fields():
    bench = _load("teacher_vs_hpa")
    got = bench.train_overrides(
        ["actor_lr=1e-4", 'env_config={"jumps_per_hour": 2}', "hidden=[32]"]
    )
    assert got == {"actor_lr": 1e-4, "env_config": {"jumps_per_hour": 2}, "hidden": (32,)}
    assert bench.train_overrides(["validation_scenario=val-trainticket-nasa"]) == {
        "validation_scenario": "val-trainticket-nasa"
    }
    with pytest.raises(SystemExit, match="colour"):
        bench.train_overrides(["colour=blue"])


def test_reliability_table_reads_the_committed_runs(tmp_path):
    table = _load("teacher_reliability")
    runs = sorted((ROOT / "bench" / "results" / "reliability").glob("*.json"))
    assert runs
    out = tmp_path / "table.json"
    assert table.main([*map(str, runs), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["runs"]) == len(runs)
    for row in data["runs"]:
        beats = (
            row["teacher_violating_intervals"] < row["hpa_violating_intervals"]
            and row["teacher_cpu_core_hours"] <= row["hpa_cpu_core_hours"]
        )
        assert row["beats_best_hpa"] == beats, row["file"]
    defaults = [r for r in data["runs"] if not r["settings"]]
    assert defaults and all(r["file"].startswith("defaults") for r in defaults)
    assert sum(s["runs"] for s in data["by_settings"]) == len(runs)
    # runs of one setting on different code (--label) are counted apart
    labels = {(s["label"], json.dumps(s["settings"])) for s in data["by_settings"]}
    assert len(labels) == len(data["by_settings"])
    by_settings = defaultdict(set)
    for label, settings in labels:
        by_settings[settings].add(label)
    assert any(len(names) > 1 for names in by_settings.values())
    # the validation-day verdict: recorded by newer runs, counted per setting
    verdicts = [r for r in data["runs"] if r["exported_beats_hpa_on_validation"] is not None]
    assert verdicts
    for s in data["by_settings"]:
        mine = [
            r
            for r in verdicts
            if (r["label"], r["settings"]) == (s["label"], s["settings"])
            and r["exported_beats_hpa_on_validation"]
        ]
        if s["beat_hpa_on_validation"] is not None:
            assert s["beat_hpa_on_validation"] == len(mine)
            assert s["of_those_beat_hpa_on_default"] == sum(r["beats_best_hpa"] for r in mine)


def test_reliability_table_refuses_a_result_without_training(tmp_path):
    table = _load("teacher_reliability")
    bad = tmp_path / "eval_only.json"
    bad.write_text(json.dumps({"scenarios": {"default": {}}}))
    with pytest.raises(SystemExit, match="eval_only.json"):
        table.main([str(bad)])


def test_best_hpa_keeps_the_default_window_and_the_teachers_window_apart():
    from types import SimpleNamespace

    bench = _load("teacher_vs_hpa")
    table = {
        "hpa:target=50": {"slo_violation_fraction": 0.01, "cpu_core_hours": 60.0},
        "hpa:target=80": {"slo_violation_fraction": 0.01, "cpu_core_hours": 50.0},
        "hpa:target=80,scale_down_window_s=600": {
            "slo_violation_fraction": 0.0,
            "cpu_core_hours": 55.0,
        },
        "teacher": {"slo_violation_fraction": 0.005, "cpu_core_hours": 45.0},
    }
    assert bench.best_hpa(table) == "hpa:target=80"  # the upstream default window only
    assert bench.best_hpa(table, 600) == "hpa:target=80,scale_down_window_s=600"
    same = table["hpa:target=80,scale_down_window_s=600"]
    tie_cheaper = {"slo_violation_fraction": 0.0, "cpu_core_hours": 50.0}
    assert not bench.beats(tie_cheaper, same) and bench.dominates(tie_cheaper, same)
    assert not bench.dominates(same, same)
    target = SimpleNamespace(mode="target", scale_down_window=40)
    assert bench.teacher_window_s(SimpleNamespace(mapping=target), 15.0) == 600
    hpa_like = SimpleNamespace(mode="target", scale_down_window=20)
    assert bench.teacher_window_s(SimpleNamespace(mapping=hpa_like), 15.0) is None
    assert bench.teacher_window_s("oracle", 15.0) is None
