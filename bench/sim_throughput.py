"""Benchmark: simulated control intervals per second and peak memory vs app size.

Each size runs in its own process pinned to one CPU core, on an Alibaba-like generated app
(``drpc.sim.generate``) under a steady load at 50% of its capacity at the initial replicas
("steady") and at 150% ("overload", where the backlog path runs for the saturated services).
Writes JSON; not a test: absolute numbers depend on the machine.

    python bench/sim_throughput.py --out bench/results/sim_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

SIZES = (10, 100, 1000, 10000)


def _child(n_services: int, load_factor: float, seconds: float) -> dict:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import numpy as np

    from drpc.sim.cluster import ClusterSim
    from drpc.sim.generate import generate_app
    from drpc.sim.graph import compile_app
    from drpc.sim.types import ClusterConfig

    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    app = compile_app(generate_app(n_services, seed=0))
    build_s = time.perf_counter() - t
    need_cpu = float((app.max_replicas * app.cpu_request_m0).sum())
    cfg = ClusterConfig(n_nodes=max(1, int(np.ceil(1.15 * need_cpu / 16000))))
    rate = load_factor * app.capacity_rps(app.replicas0)
    intervals = 100_000
    sim = ClusterSim(app, cfg, np.full((intervals, cfg.substeps), rate), seed=0)
    for _ in range(5):  # warm-up
        sim.step()
    steps = 0
    t = time.perf_counter()
    while time.perf_counter() - t < seconds and steps < intervals - 10:
        sim.step()
        steps += 1
    elapsed = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "services": n_services,
        "endpoints": app.n_endpoints,
        "call_instances": int(app.inst_service.size),
        "pods": int(app.replicas0.sum()),
        "nodes": cfg.n_nodes,
        "load": "steady" if load_factor < 1 else "overload",
        "load_factor_of_initial_capacity": load_factor,
        "intervals": steps,
        "intervals_per_s": steps / elapsed,
        "day_of_15s_intervals_s": 5760 / (steps / elapsed),
        "build_s": build_s,
        "peak_rss_mib": peak_kib / 1024,
        "rss_above_imports_mib": (peak_kib - base_kib) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="bench/results/sim_throughput.json")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed run per case (s)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(int(args.child[0]), float(args.child[1]), args.seconds)))
        return 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    rows = []
    for n in args.sizes:
        for factor in (0.5, 1.5):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--seconds",
                    str(args.seconds),
                    "--child",
                    str(n),
                    str(factor),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{n:>6} services {row['load']:>8}: {row['intervals_per_s']:>8.1f} intervals/s, "
                f"peak RSS {row['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )
    result = {
        "benchmark": "sim_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cores_used": 1,
        },
        "target": ">= 1000 intervals/s at 1,000 services; memory linear in services",
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
