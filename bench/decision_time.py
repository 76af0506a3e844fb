"""Benchmark: decision time of the central teacher vs per-node students as the app grows.

One CPU core (the process is pinned to the first core it may use; torch uses one thread).
Inputs are synthetic feature rows of the right shape (uniform in [0, 1]); only the networks'
forward passes are timed (the features, the forecast and the action mapping are the same for
both and not included):

* central: the teacher network (:class:`drpc.teacher.networks.PerServiceActor`, the bundled
  teacher's sizes and weights) over all S services at once, (1, S, 18) -> (1, S, 3);
* distributed: the services spread round robin over N nodes; each node's students
  (:class:`drpc.imitation.students.NodeStudents`, the real student size) decide for their
  services in one batched call, (k, 17) -> (k, 3). Nodes run in parallel on their own
  machines, so a decision takes the *slowest node's* time: per repetition the maximum over
  the nodes, timed one after another on the one core.

Each configuration runs ``repeats`` times after a warm-up; p50 (the median) and p99 over the
repetitions are reported in milliseconds. Writes JSON and a PNG plot (time vs services);
not a test: absolute numbers depend on the machine.

    python bench/decision_time.py                 # 10 .. 10,000 services, 1/2/4/8 nodes
    python bench/decision_time.py --quick         # fewer repetitions, up to 1,000 services
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SIZES = (10, 100, 1000, 10000)
NODES = (1, 2, 4, 8)
OUT = Path(__file__).resolve().parent / "results" / "decision_time.json"


def _pin() -> int:
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    return core


def _stats(seconds: np.ndarray) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "repeats": int(ms.size),
    }


def _repeats(base: int, services: int) -> int:
    """Fewer repetitions for the largest apps (each takes milliseconds)."""
    return max(20, base // max(1, services // 1000))


def _time(fn, repeats: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out


def central(actor, n_services: int, repeats: int, rng: np.random.Generator) -> dict:
    """The teacher network over all services."""
    import torch

    x = torch.from_numpy(rng.random((1, n_services, actor.n_features), dtype=np.float32))

    def decide():
        with torch.inference_mode():
            return actor(x)

    return _stats(_time(decide, repeats))


def distributed(n_services: int, n_nodes: int, repeats: int, rng: np.random.Generator) -> dict:
    """Per-node students; per repetition the slowest node's time."""
    from drpc.imitation.local import N_LOCAL
    from drpc.imitation.students import NodeStudents, StudentBank

    groups = []
    for node in range(n_nodes):
        k = len(range(node, n_services, n_nodes))  # round robin: sizes differ by at most one
        if k == 0:
            continue
        bank = StudentBank(k)
        students = NodeStudents(f"node-{node}", [f"s{i}" for i in range(k)], bank)
        groups.append((students, rng.random((k, N_LOCAL), dtype=np.float32)))
    for students, x in groups:  # warm-up
        for _ in range(5):
            students(x)
    per_node = np.empty((repeats, len(groups)))
    for r in range(repeats):
        for j, (students, x) in enumerate(groups):
            t = time.perf_counter()
            students(x)
            per_node[r, j] = time.perf_counter() - t
    slowest = per_node.max(axis=1)
    return {
        **_stats(slowest),
        "services_per_node": max(len(s) for s, _ in groups),
        "all_nodes_on_one_core_p50_ms": round(float(np.median(per_node.sum(axis=1))) * 1e3, 4),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [r["services"] for r in result["central"]]
    ax.errorbar(
        sizes,
        [r["p50_ms"] for r in result["central"]],
        yerr=[[0] * len(sizes), [r["p99_ms"] - r["p50_ms"] for r in result["central"]]],
        marker="o",
        color="black",
        label="central teacher (all services)",
        capsize=3,
    )
    for n in result["nodes"]:
        rows = [r for r in result["distributed"] if r["nodes"] == n]
        ax.errorbar(
            [r["services"] for r in rows],
            [r["p50_ms"] for r in rows],
            yerr=[[0] * len(rows), [r["p99_ms"] - r["p50_ms"] for r in rows]],
            marker="s",
            linestyle="--",
            label=f"students, {n} node{'s' if n > 1 else ''} (slowest node)",
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("services in the app")
    ax.set_ylabel("decision time per interval (ms, p50; bar to p99)")
    ax.set_title("Decision time on one CPU core: central vs per-node students")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT), help=f"JSON file (default: {OUT})")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, up to 1,000")
    parser.add_argument("--repeats", type=int, help="repetitions per configuration")
    args = parser.parse_args(argv)

    core = _pin()
    import torch

    torch.set_num_threads(1)
    from drpc.imitation.local import N_LOCAL
    from drpc.imitation.students import NodeStudents, StudentBank, student_param_count
    from drpc.teacher.checkpoint import bundled_teacher, load_actor

    sizes = SIZES[:3] if args.quick else SIZES
    base = args.repeats or (100 if args.quick else 1000)
    rng = np.random.default_rng(0)
    meta = bundled_teacher()
    actor = load_actor(meta)
    started = time.perf_counter()

    bank = StudentBank(100)
    node100 = NodeStudents("node-0", [f"s{i}" for i in range(100)], bank)
    x100 = rng.random((100, N_LOCAL), dtype=np.float32)
    headline = _stats(_time(lambda: node100(x100), max(base, 200)))

    rows_central, rows_dist = [], []
    for s in sizes:
        reps = _repeats(base, s)
        rows_central.append({"services": s, **central(actor, s, reps, rng)})
        for n in NODES:
            rows_dist.append({"services": s, "nodes": n, **distributed(s, n, reps, rng)})
        print(
            f"{s:>6} services: central p50 {rows_central[-1]['p50_ms']:.3f} ms; per node p50 "
            + ", ".join(f"{r['nodes']}n {r['p50_ms']:.3f}" for r in rows_dist[-len(NODES) :])
            + " ms",
            flush=True,
        )
    result = {
        "benchmark": "decision_time",
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "pinned_core": core,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "quick": bool(args.quick),
        "inputs": "synthetic uniform [0, 1] features of the right shape",
        "teacher_network": {
            **meta["network"],
            "params": sum(p.numel() for p in actor.parameters()),
        },
        "student_network": {
            "n_inputs": N_LOCAL,
            "hidden": list(bank.hidden),
            "params_per_student": student_param_count(),
        },
        "per_node_100_services": headline,
        "nodes": list(NODES),
        "central": rows_central,
        "distributed": rows_dist,
        "wall_s": round(time.perf_counter() - started, 1),
        "notes": "distributed p50/p99: per repetition the slowest node (nodes decide in "
        "parallel on their own machines), here timed one after another on one core; "
        "all_nodes_on_one_core_p50_ms: the sum over nodes.",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(
        f"per node, 100 services: p50 {headline['p50_ms']:.3f} ms, p99 {headline['p99_ms']:.3f} ms"
    )
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
