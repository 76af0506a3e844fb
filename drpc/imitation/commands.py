"""``drpc distill``: a teacher checkpoint and training scenarios in, a student checkpoint out,
then the students beside the teacher and the HPA on evaluation scenarios.

    drpc distill --out runs/students                         # bundled teacher, DAgger
    drpc distill --method bc --budget 150000 --out runs/students-bc
    drpc evaluate --scenario default --policy runs/students --policy drpc/data/teacher

Writes into ``--out``: the student checkpoint (``drpc_students.json`` + ``students.pt``),
``distill_report.json`` (every iteration's imitation loss and validation returns, the config)
and ``eval/<scenario>/`` (the harness's files) with ``eval/<scenario>/report.json``, which adds
each policy's return under the teacher's reward.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["add_distill_arguments", "run_distill", "compare"]

EVAL_BASELINES = ("hpa:target=50", "hpa:target=60", "hpa:target=70", "hpa:target=80")
"""Baselines ``drpc distill`` evaluates next to the students and the teacher by default."""


def _teacher_default() -> str:
    from drpc.teacher.checkpoint import bundled_teacher

    meta = bundled_teacher()
    return meta["folder"] if meta else "runs/teacher"


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    """The ``drpc distill`` flags (one per :class:`~drpc.imitation.distill.DistillConfig` field
    a user sets, plus input, output and evaluation)."""
    from drpc.imitation.distill import DistillConfig

    d = DistillConfig()
    p.add_argument("--teacher", help="teacher checkpoint (default: the bundled teacher)")
    p.add_argument(
        "--method",
        choices=("bc", "dagger"),
        default=d.method,
        help="dagger: the students act and the teacher labels their states; bc: the teacher "
        "acts (default: %(default)s)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        help=f"training scenario (train split; repeatable; default: {d.scenarios[0]})",
    )
    p.add_argument(
        "--validation-scenario",
        default=d.validation_scenario,
        help="training-split scenario for the per-iteration report ('none': skip)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=d.sample_budget,
        help="teacher-labelled samples (services x intervals) in all (default: %(default)s)",
    )
    p.add_argument("--iterations", type=int, default=d.iterations, help="collect-and-fit rounds")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the data per fit")
    p.add_argument("--beta", type=float, default=d.beta, help="DAgger: teacher-acts probability")
    p.add_argument("--beta-decay", type=float, default=d.beta_decay)
    p.add_argument("--eval-intervals", type=int, default=d.eval_intervals)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--node-map", help="JSON/YAML {service: node} (default: round robin)")
    p.add_argument("--save-data", action="store_true", help="write OUT/data/iteration-*.parquet")
    p.add_argument("--out", default="runs/students", help="output folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument(
        "--eval-scenario",
        action="append",
        dest="eval_scenarios",
        help="evaluation scenario after distilling (repeatable; default: default; 'none': skip)",
    )
    p.add_argument(
        "--eval-baseline",
        action="append",
        dest="eval_baselines",
        help=f"baseline beside students and teacher (default: {', '.join(EVAL_BASELINES)})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_distill(args: argparse.Namespace) -> dict[str, Any]:
    """Distil, save, then evaluate; returns the distillation report."""
    import torch

    from drpc.imitation.distill import DistillConfig, distill
    from drpc.imitation.nodes import NodeMap

    torch.set_num_threads(1)  # the students' and the teacher's small nets: one thread is fastest
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise ValueError(f"--out {out}: folder is not empty (pass --overwrite to replace it)")
    d = DistillConfig()
    validation = args.validation_scenario
    cfg = DistillConfig(
        method=args.method,
        scenarios=tuple(args.scenarios or d.scenarios),
        validation_scenario=None if str(validation).lower() in ("none", "") else validation,
        sample_budget=args.budget,
        iterations=args.iterations,
        epochs=args.epochs,
        beta=args.beta,
        beta_decay=args.beta_decay,
        eval_intervals=args.eval_intervals,
        seed=args.seed,
        data_dir=None,
        progress=not args.no_progress,
    )
    node_map = NodeMap.from_file(args.node_map) if args.node_map else None
    teacher = args.teacher or _teacher_default()
    result = distill(teacher, cfg.scenarios, cfg, node_map=node_map)  # nothing written yet
    if out.exists():
        shutil.rmtree(out)
    result.save(out)
    if args.save_data:
        data = out / "data"
        data.mkdir()
        result.dataset.write_parquet(data / "all.parquet")
    report = {
        "teacher": str(teacher),
        "method": cfg.method,
        "samples": len(result.dataset),
        "wall_s": round(result.wall_s, 1),
        "config": dataclasses.asdict(cfg),
        "history": [dataclasses.asdict(r) for r in result.history],
    }
    (out / "distill_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(result.table())
    eval_scenarios = args.eval_scenarios or ["default"]
    if [s.lower() for s in eval_scenarios] != ["none"]:
        for name in eval_scenarios:
            compare(
                name,
                [str(out)],
                teacher,
                list(args.eval_baselines or EVAL_BASELINES),
                out / "eval" / Path(name).stem,
                progress=not args.no_progress,
            )
    print(f"students: {out}")
    return report


def compare(
    scenario_name: str,
    students: list[str],
    teacher: str,
    baselines: list[str],
    out: Path | None,
    progress: bool = False,
) -> dict[str, Any]:
    """Students, teacher and baselines on one scenario, with each run's return under the
    teacher's reward; prints the table and writes ``out/report.json``."""
    from drpc.evaluate import evaluate, format_table
    from drpc.imitation.distill import run_return
    from drpc.imitation.policy import load_student_policy
    from drpc.scenario import load_scenario
    from drpc.teacher.policy import load_policy

    scenario = load_scenario(scenario_name)
    teacher_policy = load_policy(teacher, name="teacher")
    policies: list[Any] = [
        load_student_policy(p, name=f"students:{Path(p).name}", app=scenario.app) for p in students
    ]
    policies += [teacher_policy, *baselines]
    results = evaluate(scenario, policies, out, progress=progress, overwrite=True)
    rows = []
    for r in results:
        summary = dict(r.summary)
        summary.pop("slo_violation_fraction_by_endpoint", None)
        summary["return"] = run_return(r, scenario, teacher_policy.meta["reward"])
        rows.append(summary)
    print(f"\n{scenario.name}:\n{format_table(results)}")
    teacher_return = next(s["return"] for s in rows if s["policy"] == "teacher")
    print("return (the teacher's reward summed over the run; higher is better):")
    for s in rows:
        ratio = teacher_return / s["return"] if s["return"] < 0 else float("nan")
        print(f"  {s['policy']:<40} {s['return']:10.2f}   teacher/this {ratio:6.3f}")
    report = {"scenario": scenario.name, "policies": rows}
    if out is not None:
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
