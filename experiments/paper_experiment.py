"""The DRPC paper's experiment, reproduced on the simulated cluster.

    python experiments/paper_experiment.py --out experiments/results/paper   # ~10 min, 1 core
    python experiments/paper_experiment.py --quick --out /tmp/paper          # 1 seed, 2 levels

Bai et al. (2024) run TrainTicket under growing load and report, per load level, the average
response time and the failed requests per second of DRPC against FIRM, CoScal and a
threshold autoscaler ("KuScal"), claiming -15% response time and -24% failed requests. Here:

- app and load: the TrainTicket-like app (49 services) under the NASA-HTTP launch-day trace
  (evaluation split: the `default` scenario), at five load levels: the window's peak set to
  0.4, 0.6, 0.8, 1.0 and 1.2 x the app's capacity at max replicas (1.2 cannot be served);
- policies: DRPC's teacher (the bundled one) and its students (distilled here from that
  teacher by DAgger on the training windows), the threshold autoscaler (KuScal style), the
  Kubernetes HPA (80% CPU target, upstream rules), the VPA and the clairvoyant oracle. FIRM
  and CoScal are not reimplemented;
- seeds: each (level, policy) runs with several simulator seeds (Poisson arrivals and the
  random draws of the simulation); tables give mean and standard deviation over seeds;
- metrics per run: request-weighted mean response time (ms; failed requests count at the
  timeout), successful and failed requests per second, SLO-violating interval fraction and
  cost (CPU core-hours allocated); per 30-minute time bucket of the day at level 0.8 the
  same, as the paper's time plots.

Writes ``results.json``, ``table.md`` and three PNGs (response time and failed requests per
load level, the time buckets) into ``--out``.
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

import numpy as np
import yaml

LEVELS = (0.4, 0.6, 0.8, 1.0, 1.2)
SEEDS = (7, 8, 9)
BASELINES = ("threshold", "hpa:target=80", "vpa", "oracle")
BUCKET_S = 1800.0  # simulated seconds per time bucket (30 min)


def scenario_at(level: float, seed: int):
    """The `default` scenario with its peak at ``level`` x capacity and simulator ``seed``."""
    from drpc.scenario import build_scenario, bundled_scenarios

    path = bundled_scenarios()["default"]
    data = yaml.safe_load(path.read_text())
    data["trace"]["peak_utilization"] = level
    data["seed"] = seed
    data["name"] = f"default-peak{level:g}-seed{seed}"
    return build_scenario(data, source=f"{path} (peak {level}, seed {seed})", base_dir=path.parent)


def run_metrics(result: Any, interval_s: float) -> dict[str, float]:
    """The paper's metrics of one harness run."""
    t = result.timeline.to_pandas()
    load = t["load_rps"].to_numpy()
    failed = load * t["failed_fraction"].to_numpy()
    s = result.summary
    return {
        "mean_response_ms": s["mean_latency_ms"],
        "successful_rps": float((load - failed).mean()),
        "failed_rps": float(failed.mean()),
        "slo_violation_fraction": s["slo_violation_fraction"],
        "cpu_core_hours": s["cpu_core_hours"],
    }


def time_buckets(result: Any, interval_s: float) -> list[dict[str, float]]:
    """Per 30-minute bucket: mean response time (request-weighted), successful and failed
    requests per second."""
    t = result.timeline.to_pandas()
    bucket = (t["interval"].to_numpy() * interval_s // BUCKET_S).astype(int)
    load = t["load_rps"].to_numpy()
    failed = load * t["failed_fraction"].to_numpy()
    lat = t["mean_latency_ms"].to_numpy()
    rows = []
    for b in np.unique(bucket):
        m = bucket == b
        w = load[m].sum()
        rows.append(
            {
                "bucket": int(b),
                "mean_response_ms": float((lat[m] * load[m]).sum() / w) if w > 0 else 0.0,
                "successful_rps": float((load[m] - failed[m]).mean()),
                "failed_rps": float(failed[m].mean()),
            }
        )
    return rows


def students_checkpoint(teacher: str, folder: Path, budget: int) -> Path:
    from drpc.imitation.distill import DistillConfig, distill

    cfg = DistillConfig(sample_budget=budget, iterations=3, validation_scenario=None)
    return distill(teacher, cfg.scenarios, cfg).save(folder / "students")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    from drpc.evaluate import run_policy
    from drpc.imitation.policy import load_student_policy
    from drpc.policy import make_policy
    from drpc.teacher.checkpoint import bundled_teacher
    from drpc.teacher.policy import load_policy

    torch.set_num_threads(1)
    teacher_dir = bundled_teacher()["folder"]
    levels = LEVELS[1:3] if args.quick else LEVELS
    seeds = SEEDS[:1] if args.quick else SEEDS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        students_dir = students_checkpoint(teacher_dir, Path(tmp), args.distill_budget)

        def policies() -> dict[str, Any]:
            return {
                "DRPC teacher": load_policy(teacher_dir, name="DRPC teacher"),
                "DRPC students": load_student_policy(students_dir, name="DRPC students"),
                **{name: make_policy(name) for name in BASELINES},
            }

        names = list(policies())
        runs: list[dict[str, Any]] = []
        buckets: dict[str, list[list[dict[str, float]]]] = {n: [] for n in names}
        bar = tqdm(total=len(levels) * len(seeds) * len(names), desc="runs", disable=None)
        for level in levels:
            for seed in seeds:
                scenario = scenario_at(level, seed)
                for name, policy in policies().items():
                    result = run_policy(scenario, policy, progress=False)
                    interval_s = scenario.config.interval_s
                    runs.append(
                        {"level": level, "seed": seed, "policy": name}
                        | run_metrics(result, interval_s)
                    )
                    if level == 0.8:
                        buckets[name].append(time_buckets(result, interval_s))
                    bar.update(1)
        bar.close()
    return {
        "experiment": "paper",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "levels": list(levels),
        "seeds": list(seeds),
        "policies": names,
        "distill_budget": args.distill_budget,
        "runs": runs,
        "aggregate": aggregate(runs, names, levels),
        "buckets_at_0.8": {n: mean_buckets(b) for n, b in buckets.items() if b},
        "claims": claims(runs, levels),
        "wall_s": round(time.perf_counter() - started, 1),
    }


METRICS = ("mean_response_ms", "successful_rps", "failed_rps", "slo_violation_fraction",
           "cpu_core_hours")  # fmt: skip


def aggregate(runs, names, levels) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (level, policy)."""
    out = []
    for level in levels:
        for name in names:
            rows = [r for r in runs if r["level"] == level and r["policy"] == name]
            row: dict[str, Any] = {"level": level, "policy": name, "seeds": len(rows)}
            for m in METRICS:
                v = np.array([r[m] for r in rows])
                row[m] = float(v.mean())
                row[m + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            out.append(row)
    return out


def mean_buckets(per_seed: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    n = min(len(b) for b in per_seed)
    return [
        {
            "bucket": per_seed[0][i]["bucket"],
            **{
                k: float(np.mean([b[i][k] for b in per_seed]))
                for k in ("mean_response_ms", "successful_rps", "failed_rps")
            },
        }
        for i in range(n)
    ]


def claims(runs, levels) -> dict[str, Any]:
    """DRPC (teacher, students) against each baseline, the paper's two headline numbers:
    change of the mean response time and of failed requests/s, averaged over the levels
    DRPC and the baseline can serve (peak <= 1.0) and the seeds."""
    served = [lv for lv in levels if lv <= 1.0]
    out: dict[str, Any] = {}
    for drpc in ("DRPC teacher", "DRPC students"):
        for base in ("threshold", "hpa:target=80", "vpa"):
            d = [r for r in runs if r["policy"] == drpc and r["level"] in served]
            b = [r for r in runs if r["policy"] == base and r["level"] in served]
            resp_d = np.mean([r["mean_response_ms"] for r in d])
            resp_b = np.mean([r["mean_response_ms"] for r in b])
            fail_d = np.mean([r["failed_rps"] for r in d])
            fail_b = np.mean([r["failed_rps"] for r in b])
            cost_d = np.mean([r["cpu_core_hours"] for r in d])
            cost_b = np.mean([r["cpu_core_hours"] for r in b])
            out[f"{drpc} vs {base}"] = {
                "response_time_change": float(resp_d / resp_b - 1.0),
                "failed_rps_change": float(fail_d / fail_b - 1.0) if fail_b > 0 else None,
                "cost_change": float(cost_d / cost_b - 1.0),
            }
    return out


def write_outputs(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    agg, names, levels = result["aggregate"], result["policies"], result["levels"]
    width = 0.8 / len(names)
    for metric, label, fname in (
        ("mean_response_ms", "average response time (ms)", "response_time.png"),
        ("failed_rps", "failed requests per second", "failed_requests.png"),
        ("cpu_core_hours", "CPU core-hours allocated", "cost.png"),
    ):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for i, name in enumerate(names):
            rows = [
                next(r for r in agg if r["policy"] == name and r["level"] == lv) for lv in levels
            ]
            x = np.arange(len(levels)) + (i - len(names) / 2 + 0.5) * width
            ax.bar(x, [r[metric] for r in rows], width, yerr=[r[metric + "_std"] for r in rows],
                   label=name, capsize=2)  # fmt: skip
        ax.set_xticks(np.arange(len(levels)), [f"{lv:g}" for lv in levels])
        ax.set_xlabel("peak load / capacity at max replicas")
        ax.set_ylabel(label)
        if metric == "mean_response_ms":
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=3)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
    if result["buckets_at_0.8"]:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        for name, rows in result["buckets_at_0.8"].items():
            hours = [r["bucket"] * BUCKET_S / 3600 for r in rows]
            axes[0].plot(hours, [r["successful_rps"] for r in rows], label=name)
            axes[1].plot(hours, [r["failed_rps"] for r in rows], label=name)
        axes[0].set_ylabel("successful requests/s")
        axes[1].set_ylabel("failed requests/s")
        for ax in axes:
            ax.set_xlabel("simulated hour (30-min buckets, peak 0.8)")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "time_buckets.png", dpi=110)
        plt.close(fig)
    (out / "table.md").write_text(table(result) + "\n")


def table(result: dict[str, Any]) -> str:
    lines = [
        "| peak / capacity | policy | mean response (ms) | successful req/s | failed req/s "
        "| SLO viol. | core-h |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["aggregate"]:
        lines.append(
            f"| {r['level']:g} | {r['policy']} "
            f"| {r['mean_response_ms']:.1f} ± {r['mean_response_ms_std']:.1f} "
            f"| {r['successful_rps']:.1f} ± {r['successful_rps_std']:.1f} "
            f"| {r['failed_rps']:.2f} ± {r['failed_rps_std']:.2f} "
            f"| {r['slo_violation_fraction']:.4f} ± {r['slo_violation_fraction_std']:.4f} "
            f"| {r['cpu_core_hours']:.1f} ± {r['cpu_core_hours_std']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="experiments/results/paper")
    p.add_argument("--quick", action="store_true", help="one seed, two load levels")
    p.add_argument("--distill-budget", type=int, default=60_000, help="students' labels")
    args = p.parse_args(argv)
    result = run(args)
    write_outputs(result, Path(args.out))
    print(table(result))
    print(json.dumps(result["claims"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
