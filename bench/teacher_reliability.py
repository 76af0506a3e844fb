"""How often does a 14-minute ``drpc train`` beat the HPA on the default scenario?

    python bench/teacher_reliability.py bench/results/reliability/*.json \
        --out bench/results/teacher_reliability.json

Reads the JSON results of ``bench/teacher_vs_hpa.py`` training runs (one per settings and
seed, each made with ``--scenario default`` and, for non-default settings, ``--set``) and
tabulates per run: its ``--label`` (e.g. the code version it measured), the settings that
differ from ``drpc train``'s defaults, the seed, the exported teacher's SLO-violating
intervals and core-hours on ``default`` against the best HPA's, whether it beats the HPA
(fewer violating intervals at no more core-hours), the training minute of the first probe
that beat it, and how many of the validation snapshots collapsed (more than 10% of the
validation day's intervals violating), and whether the exported snapshot beat the HPA on the
validation day (runs before that verdict was recorded: "-"). Then per label and settings:
runs that beat the HPA out of runs, and of the runs whose snapshot beat it on the validation
day, how many beat it on ``default``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

COLLAPSE_FRACTION = 0.1
"""A validation snapshot with more than this fraction of violating intervals has collapsed."""


def non_default_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The training settings of ``config`` that differ from TrainConfig's defaults, minus
    the ones that only say where and how long (out, seed, time budget, evaluation, progress)."""
    from drpc.train import TrainConfig

    ignore = {
        "out",
        "overwrite",
        "seed",
        "time_budget_s",
        "eval_scenarios",
        "eval_baselines",
        "progress",
    }
    defaults = _plain(dataclasses.asdict(TrainConfig()))
    return {
        k: v
        for k, v in config.items()
        if k not in ignore and k in defaults and _plain(v) != defaults[k]
    }


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def run_row(path: Path) -> dict[str, Any]:
    """One training run's line of the table."""
    data = json.loads(path.read_text())
    training = data.get("training")
    if not training or "default" not in data.get("scenarios", {}):
        raise SystemExit(f"{path}: not a teacher_vs_hpa.py training run with --scenario default")
    row = data["scenarios"]["default"]
    teacher, hpa = row["policies"]["teacher"], row["policies"][row["best_hpa"]]
    intervals = row["intervals"]
    validation = training.get("validation") or {}
    history = validation.get("history", [])
    best = validation.get("best") or {}
    return {
        "file": path.name,
        "label": data.get("label", ""),
        "settings": non_default_settings(training["config"]),
        "seed": training["config"]["seed"],
        "train_wall_s": training["train_wall_s"],
        "env_steps": training["env_steps"],
        "teacher_violating_intervals": round(teacher["slo_violation_fraction"] * intervals),
        "teacher_cpu_core_hours": round(teacher["cpu_core_hours"], 2),
        "hpa_violating_intervals": round(hpa["slo_violation_fraction"] * intervals),
        "hpa_cpu_core_hours": round(hpa["cpu_core_hours"], 2),
        "beats_best_hpa": row["teacher_beats_best_hpa"],
        "first_beats_train_min": (
            None
            if training["first_beats_best_hpa_train_s"] is None
            else round(training["first_beats_best_hpa_train_s"] / 60.0, 1)
        ),
        "validation_snapshots": len(history),
        "collapsed_snapshots": sum(
            h["slo_violation_fraction"] > COLLAPSE_FRACTION for h in history
        ),
        # did the exported snapshot beat the HPA on the validation day (training data)?
        # None: the run predates that field of the validation rows
        "exported_beats_hpa_on_validation": best.get("beats_hpa"),
    }


def _validation_agreement(runs: list[dict[str, Any]]) -> dict[str, int | None]:
    verdicts = [r for r in runs if r["exported_beats_hpa_on_validation"] is not None]
    if not verdicts:
        return {"beat_hpa_on_validation": None, "of_those_beat_hpa_on_default": None}
    passed = [r for r in verdicts if r["exported_beats_hpa_on_validation"]]
    return {
        "beat_hpa_on_validation": len(passed),
        "of_those_beat_hpa_on_default": sum(r["beats_best_hpa"] for r in passed),
    }


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", nargs="+", type=Path, help="teacher_vs_hpa.py JSON results")
    parser.add_argument("--out", type=Path, help="write the table here as JSON")
    args = parser.parse_args(argv)
    rows = [run_row(p) for p in args.results]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["label"], json.dumps(r["settings"], sort_keys=True)].append(r)
    summary = [
        {
            "label": label,
            "settings": json.loads(settings),
            "runs": len(runs),
            "beat_hpa": sum(r["beats_best_hpa"] for r in runs),
            # of the runs whose exported snapshot beat the HPA on the validation day, how
            # many beat it on `default` (None when no run records the verdict)
            **_validation_agreement(runs),
            "seeds": sorted(r["seed"] for r in runs),
        }
        for (label, settings), runs in groups.items()
    ]
    print(
        "| label | settings (beyond defaults) | seed | teacher viol. intervals / core-h | HPA | beats | first beat (min) | collapsed snapshots | beat it on validation |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label'] or '-'} | "
            f"{json.dumps(r['settings']) if r['settings'] else 'defaults'} | {r['seed']} | "
            f"{r['teacher_violating_intervals']} / {r['teacher_cpu_core_hours']:.1f} | "
            f"{r['hpa_violating_intervals']} / {r['hpa_cpu_core_hours']:.1f} | "
            f"{'yes' if r['beats_best_hpa'] else 'no'} | {r['first_beats_train_min'] or '-'} | "
            f"{r['collapsed_snapshots']} of {r['validation_snapshots']} | "
            f"{_yes_no(r['exported_beats_hpa_on_validation'])} |"
        )
    for s in summary:
        label = json.dumps(s["settings"]) if s["settings"] else "defaults"
        label = f"[{s['label']}] {label}" if s["label"] else label
        print(f"{label}: {s['beat_hpa']} of {s['runs']} beat the HPA", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps({"runs": rows, "by_settings": summary}, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
