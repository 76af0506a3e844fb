"""Students against their teacher and the best HPA: DAgger vs behaviour cloning, same budget.

    python bench/students_vs_teacher.py --out bench/results/students_vs_teacher.json  # ~8 min, 1 core
    python bench/students_vs_teacher.py --seeds 0 --budget 20000 --out /tmp/s.json    # quick

For each seed and method (``bc``, ``dagger``) it distils the teacher (default: the bundled one)
into per-node students with :func:`drpc.imitation.distill.distill` (the code of
``drpc distill``) on the training scenario, with the same number of teacher-labelled samples,
then runs students, teacher, the HPA at CPU targets 50/60/70/80% on the evaluation scenario
(default: ``default``) and reports per run:

- ``slo_violation_fraction``, ``failed_request_fraction``, ``cpu_core_hours``;
- ``return``: the teacher's reward summed over the run (higher is better), and
  ``return_ratio`` = teacher's return / the students' (returns are negative, so 1.0 means as
  good as the teacher and 0.95 means 1/0.95 = 5% more cost under the teacher's reward);
- ``beats_best_hpa``: fewer violating intervals than the best HPA (fewest violations, then
  fewest core-hours) at no more core-hours.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from teacher_vs_hpa import HPA_TARGETS, beats, best_hpa  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from drpc.evaluate import run_policy
    from drpc.imitation.distill import DistillConfig, distill, run_return
    from drpc.imitation.policy import load_student_policy
    from drpc.scenario import load_scenario
    from drpc.teacher.checkpoint import bundled_teacher
    from drpc.teacher.policy import load_policy

    torch.set_num_threads(1)
    teacher_dir = args.teacher or bundled_teacher()["folder"]
    scenario = load_scenario(args.scenario)
    teacher = load_policy(teacher_dir, name="teacher")
    reward = teacher.meta["reward"]

    def summarise(result: Any) -> dict[str, Any]:
        s = result.summary
        keys = ("slo_violation_fraction", "failed_request_fraction", "cpu_core_hours")
        return {**{k: s[k] for k in keys}, "return": run_return(result, scenario, reward)}

    reference = {"teacher": summarise(run_policy(scenario, teacher, progress=False))}
    for target in HPA_TARGETS:
        name = f"hpa:target={target}"
        reference[name] = summarise(run_policy(scenario, name, progress=False))
    hpa = best_hpa(reference)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for method in ("bc", "dagger"):
                cfg = DistillConfig(
                    method=method,
                    scenarios=(args.train_scenario,),
                    sample_budget=args.budget,
                    iterations=args.iterations,
                    seed=seed,
                    validation_scenario=None,
                )
                started = time.perf_counter()
                result = distill(teacher_dir, cfg.scenarios, cfg)
                wall_s = time.perf_counter() - started
                ckpt = result.save(Path(tmp) / f"{method}-{seed}")
                students = load_student_policy(ckpt, name=f"students-{method}-{seed}")
                row = summarise(run_policy(scenario, students, progress=False))
                row.update(
                    method=method,
                    seed=seed,
                    samples=len(result.dataset),
                    distill_wall_s=round(wall_s, 1),
                    final_imitation_loss=result.history[-1].loss_after,
                    return_ratio=reference["teacher"]["return"] / row["return"],
                    beats_best_hpa=beats(row, reference[hpa]),
                )
                runs.append(row)
                print(
                    f"{method:>6} seed {seed}: viol {row['slo_violation_fraction']:.4f} "
                    f"core-h {row['cpu_core_hours']:.2f} return {row['return']:.1f} "
                    f"ratio {row['return_ratio']:.3f} beats {hpa}: {row['beats_best_hpa']}",
                    file=sys.stderr,
                )
    by_method = {}
    for method in ("bc", "dagger"):
        rows = [r for r in runs if r["method"] == method]
        ratios = [r["return_ratio"] for r in rows]
        by_method[method] = {
            "return_ratio_mean": sum(ratios) / len(ratios),
            "return_ratio_min": min(ratios),
            "beats_best_hpa": sum(r["beats_best_hpa"] for r in rows),
            "runs": len(rows),
        }
    return {
        "benchmark": "students_vs_teacher",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "teacher": str(teacher_dir),
        "scenario": scenario.name,
        "train_scenario": args.train_scenario,
        "budget_samples": args.budget,
        "iterations": args.iterations,
        "reference": reference,
        "best_hpa": hpa,
        "runs": runs,
        "by_method": by_method,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--teacher", help="teacher checkpoint (default: the bundled teacher)")
    p.add_argument("--scenario", default="default", help="evaluation scenario")
    p.add_argument("--train-scenario", default="train-trainticket-nasa")
    p.add_argument("--budget", type=int, default=150_000, help="teacher-labelled samples")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="bench/results/students_vs_teacher.json")
    args = p.parse_args(argv)
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["by_method"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
