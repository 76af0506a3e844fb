"""Run every benchmark in bench/ and merge their JSON results into one file, with a table.

    python bench/run_all.py --out bench/results.json            # all of them, ~50 min, 2 cores
    python bench/run_all.py --quick --out bench/results.json    # smaller settings, ~12 min

Each benchmark is a script ``bench/<name>.py`` that accepts ``--out PATH`` and writes JSON.
``--quick`` passes each one the smaller settings in ``QUICK`` (the bundled teacher instead of a
14-minute training run, one seed instead of three, fewer repetitions); the JSON records which.
The headline numbers of every benchmark are printed as one Markdown table (also written next
to the JSON as ``.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "sim_throughput",
    "td3_pendulum",
    "teacher_vs_hpa",
    "students_vs_teacher",
    "decision_time",
    "decide_latency",
)
QUICK: dict[str, list[str]] = {
    "sim_throughput": ["--seconds", "2", "--sizes", "10", "100", "1000"],
    "td3_pendulum": ["--max-env-steps", "8000"],
    "teacher_vs_hpa": ["--checkpoint", "drpc/data/teacher", "--scenario", "default"],
    "students_vs_teacher": ["--seeds", "0", "--budget", "60000"],
    "decision_time": ["--quick"],
    "decide_latency": ["--requests", "100"],
}


def headline(name: str, result: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) rows for the summary table of one benchmark's JSON."""
    try:
        if name == "sim_throughput":
            return [
                (f"intervals/s, {r['services']} services ({r['load']})", f"{r['intervals_per_s']:,.0f}")
                for r in result["results"]
            ]  # fmt: skip
        if name == "td3_pendulum":
            return [
                ("Pendulum-v1 best mean return", f"{result['best_eval_return_mean']:.0f}"),
                ("env steps to reach -250", str(result["env_steps_to_target"])),
            ]
        if name == "teacher_vs_hpa":
            rows = []
            for sc, r in result["scenarios"].items():
                t, h = r["policies"]["teacher"], r["policies"][r["best_hpa"]]
                rows.append(
                    (
                        f"{sc}: teacher vs {r['best_hpa']} (viol. / core-h)",
                        f"{t['slo_violation_fraction']:.4f} / {t['cpu_core_hours']:.1f} vs "
                        f"{h['slo_violation_fraction']:.4f} / {h['cpu_core_hours']:.1f}",
                    )
                )
            return rows
        if name == "students_vs_teacher":
            return [(f"students ({m}) / teacher return, mean", f"{v['return_ratio_mean']:.3f}")
                    for m, v in result["by_method"].items()]  # fmt: skip
        if name == "decision_time":
            return [
                (
                    "one node, 100 services, p50 ms",
                    f"{result['per_node_100_services']['p50_ms']:.2f}",
                )
            ]
        if name == "decide_latency":
            return [(f"/v1/decide p99 / no-op p99, {r['services']} services", f"{r['p99_ratio']:.2f}")
                    for r in result["results"]]  # fmt: skip
    except (KeyError, TypeError) as err:  # a benchmark changed its JSON: say so, keep going
        return [("(headline unavailable)", repr(err))]
    return []


def table(merged: dict[str, Any]) -> str:
    lines = [
        f"Benchmarks run {merged['date']} on {merged['machine']['platform']}, "
        f"{merged['machine']['cpus']} CPUs, Python {merged['machine']['python']}"
        + (" (--quick)" if merged["quick"] else ""),
        "",
        "| benchmark | metric | value |",
        "|---|---|---|",
    ]
    for name, result in merged["benchmarks"].items():
        for metric, value in headline(name, result):
            lines.append(f"| {name} | {metric} | {value} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller settings (see QUICK)")
    args = parser.parse_args(argv)
    merged: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "quick": args.quick,
        "benchmarks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHMARKS:
            out = Path(tmp) / f"{name}.json"
            extra = QUICK.get(name, []) if args.quick else []
            print(f"== {name} {' '.join(extra)}", file=sys.stderr)
            subprocess.run(
                [sys.executable, str(HERE / f"{name}.py"), *extra, "--out", str(out)], check=True
            )
            merged["benchmarks"][name] = json.loads(out.read_text())
    Path(args.out).write_text(json.dumps(merged, indent=2) + "\n")
    text = table(merged)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
