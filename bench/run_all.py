"""Run every benchmark in bench/ and merge their JSON results into one file.

    python bench/run_all.py --out bench/results.json

Each benchmark is a script ``bench/<name>.py`` that accepts ``--out PATH`` and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "sim_throughput",
    "td3_pendulum",
    "teacher_vs_hpa",
    "students_vs_teacher",
    "decision_time",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    args = parser.parse_args(argv)
    merged = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "benchmarks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHMARKS:
            out = Path(tmp) / f"{name}.json"
            print(f"== {name}", file=sys.stderr)
            subprocess.run(
                [sys.executable, str(HERE / f"{name}.py"), "--out", str(out)], check=True
            )
            merged["benchmarks"][name] = json.loads(out.read_text())
    Path(args.out).write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
