"""Latency of ``POST /v1/decide`` next to a no-op Serve deployment of the same shape.

For snapshots of 100 and 1,000 services (generated apps, randomly initialised students on 2
nodes: latency does not depend on training), deploy the real app (ingress + one NodeAgent per
node) and the no-op app (same FastAPI ingress, same bearer-token guard, same Snapshot parsing,
a fixed pre-serialised response of the same size, no work) in one local Ray, then over
loopback HTTP (keep-alive):

* ``sequential``: ``--requests`` requests, decide and no-op interleaved one by one so both see
  the same background load; p50 / p99 / mean latency and throughput;
* ``burst``: ``--burst-threads`` clients x ``--burst-per-thread`` requests at once, per app.

Writes ``bench/results/decide_latency.json`` with ``p99_ratio`` = p99(decide) / p99(no-op)
(target <= 1.5). The app calls its NodeAgents over Serve's gRPC transport (``agent_transport``,
the default); ``--compare-transport`` also measures, interleaved with the other two, the same
app calling them as Ray actors with results through the object store. Both apps run their
replicas with ``replica_event_loop`` ``--event-loop`` (default ``main``: user code and outgoing
calls on each replica's main event loop); ``--compare-event-loop`` also measures both apps
with the other setting, interleaved.

    .venv/bin/python bench/decide_latency.py [--sizes 100 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "decide_latency.json"
TOKEN = "bench-token"


def make_checkpoint(n_services: int, root: Path) -> tuple[Path, dict]:
    """Random students for a generated app of ``n_services`` (app stored as app.json)."""
    from drpc.imitation.checkpoint import save_students
    from drpc.imitation.nodes import NodeMap
    from drpc.imitation.students import StudentSet
    from drpc.sim.generate import generate_app, write_app
    from drpc.sim.graph import compile_app
    from drpc.teacher.checkpoint import bundled_teacher

    app = generate_app(n_services, seed=0)
    names = list(app.service_names)
    students = StudentSet.create(names, NodeMap.round_robin(names, 2), seed=0)
    folder = save_students(root / f"students-{n_services}", students, bundled_teacher(), app.name)
    write_app(app, folder / "app.json")
    return folder, snapshot(compile_app(app))


def snapshot(app) -> dict:
    rng = np.random.default_rng(0)
    services = []
    for i, name in enumerate(app.names):
        reps = int(app.replicas0[i])
        lim = float(app.cpu_limit_m0[i])
        services.append(
            {
                "name": name,
                "request_rate_rps": round(float(rng.uniform(0, 50)), 3),
                "cpu_usage_millicores": round(float(rng.uniform(0.05, 0.9) * lim * reps), 3),
                "memory_working_set_mib": round(float(0.4 * app.memory_limit_mib0[i] * reps), 3),
                "replicas_ready": reps,
                "replicas_desired": reps,
                "cpu_limit_millicores": lim,
                "memory_limit_mib": float(app.memory_limit_mib0[i]),
                "latency_p99_ms": 30.0,
            }
        )
    endpoints = [{"name": e, "rps": 10.0, "latency_p99_ms": 100.0} for e in app.endpoint_names]
    return {
        "cluster": "bench",
        "time_s": 1_732_950_000.0,
        "interval_s": 15,
        "entry_rps_history": [100.0 + i for i in range(32)],
        "services": services,
        "endpoints": endpoints,
    }


def stats(latencies_s: list[float], wall_s: float) -> dict:
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
        "throughput_rps": round(ms.size / wall_s, 1),
    }


def timed_post(session, url: str, body: bytes) -> float:
    started = time.perf_counter()
    r = session.post(url, data=body, headers=HEADERS, timeout=60)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    return elapsed


HEADERS = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


def burst(url: str, body: bytes, threads: int, per_thread: int) -> dict:
    import requests

    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as s:
            mine = [timed_post(s, url, body) for _ in range(per_thread)]
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return stats(latencies, time.perf_counter() - started)


def measure(size: int, root: Path, base: str, args: argparse.Namespace) -> dict:
    import requests
    from ray import serve

    from drpc.serve.app import build_app, build_noop_app

    folder, snap = make_checkpoint(size, root)
    body = json.dumps(snap).encode()
    common = {
        "token": TOKEN,
        "ingress_num_cpus": 0.1,
        "agent_num_cpus": 0.1,
        "replica_event_loop": args.event_loop,
    }
    apps = {  # result key -> (Serve app, route prefix)
        "decide": (build_app({"checkpoint": str(folder), **common}), f"/d{size}"),  # gRPC
        "noop": (build_noop_app({**common, "noop_services": size}), f"/n{size}"),
    }
    if args.compare_transport:  # the same app with ingress -> agent calls through Ray actors
        by_ref = {"checkpoint": str(folder), **common, "agent_transport": "object_ref"}
        apps["decide_object_ref"] = (build_app(by_ref), f"/o{size}")
    other_loop = "separate" if args.event_loop == "main" else "main"
    if args.compare_event_loop:  # both apps again, replicas on the other event-loop setting
        other = {**common, "replica_event_loop": other_loop}
        apps[f"decide_{other_loop}_loop"] = (
            build_app({"checkpoint": str(folder), **other}),
            f"/dl{size}",
        )
        apps[f"noop_{other_loop}_loop"] = (
            build_noop_app({**other, "noop_services": size}),
            f"/nl{size}",
        )
    for key, (app, prefix) in apps.items():
        serve.run(app, name=f"{key}{size}", route_prefix=prefix)
    urls = {key: f"{base}{prefix}/v1/decide" for key, (_, prefix) in apps.items()}
    sizes = {}
    with requests.Session() as s:
        for name, url in urls.items():  # warm-up (first calls build routes, caches)
            for _ in range(args.warmup):
                timed_post(s, url, body)
            sizes[name] = len(s.post(url, data=body, headers=HEADERS, timeout=60).content)
        seq: dict[str, list[float]] = {name: [] for name in urls}
        wall = dict.fromkeys(urls, 0.0)
        for _ in range(args.requests):
            for name, url in urls.items():
                t = timed_post(s, url, body)
                seq[name].append(t)
                wall[name] += t
    out = {
        "services": size,
        "request_bytes": len(body),
        "response_bytes": sizes,
        "sequential": {k: stats(v, wall[k]) for k, v in seq.items()},
        "burst": {
            k: burst(u, body, args.burst_threads, args.burst_per_thread) for k, u in urls.items()
        },
    }
    s_ = out["sequential"]
    out["p99_ratio"] = round(s_["decide"]["p99_ms"] / s_["noop"]["p99_ms"], 3)
    out["p50_ratio"] = round(s_["decide"]["p50_ms"] / s_["noop"]["p50_ms"], 3)
    b = out["burst"]
    out["burst_p99_ratio"] = round(b["decide"]["p99_ms"] / b["noop"]["p99_ms"], 3)
    if "decide_object_ref" in s_:
        out["object_ref_p99_ratio"] = round(
            s_["decide_object_ref"]["p99_ms"] / s_["noop"]["p99_ms"], 3
        )
        out["object_ref_p50_ratio"] = round(
            s_["decide_object_ref"]["p50_ms"] / s_["noop"]["p50_ms"], 3
        )
    if args.compare_event_loop:
        d, n = s_[f"decide_{other_loop}_loop"], s_[f"noop_{other_loop}_loop"]
        out[f"{other_loop}_loop_p99_ratio"] = round(d["p99_ms"] / n["p99_ms"], 3)
        out[f"{other_loop}_loop_p50_ratio"] = round(d["p50_ms"] / n["p50_ms"], 3)
    for key in apps:
        serve.delete(f"{key}{size}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--requests", type=int, default=200, help="sequential requests per app")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--burst-threads", type=int, default=8)
    p.add_argument("--burst-per-thread", type=int, default=10)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument(
        "--compare-transport",
        action="store_true",
        help="also measure the app with agent_transport=object_ref, interleaved",
    )
    p.add_argument(
        "--event-loop",
        choices=("main", "separate"),
        default="main",
        help="replica_event_loop of both apps (default: main, the app's default)",
    )
    p.add_argument(
        "--compare-event-loop",
        action="store_true",
        help="also measure both apps with the other replica_event_loop, interleaved",
    )
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)

    import ray
    import torch
    from ray import serve

    torch.set_num_threads(1)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    started = time.perf_counter()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in args.sizes:
                res = measure(size, Path(tmp), f"http://127.0.0.1:{port}", args)
                results.append(res)
                sq = res["sequential"]
                print(
                    f"{size:>5} services: decide p50 {sq['decide']['p50_ms']:.1f} ms p99 "
                    f"{sq['decide']['p99_ms']:.1f} ms | no-op p50 {sq['noop']['p50_ms']:.1f} ms "
                    f"p99 {sq['noop']['p99_ms']:.1f} ms | p99 ratio {res['p99_ratio']:.2f} | "
                    f"burst {res['burst']['decide']['throughput_rps']:.0f} vs "
                    f"{res['burst']['noop']['throughput_rps']:.0f} req/s"
                    + (
                        f" | object_ref p50 {sq['decide_object_ref']['p50_ms']:.1f} ms p99 "
                        f"{sq['decide_object_ref']['p99_ms']:.1f} ms"
                        if "decide_object_ref" in sq
                        else ""
                    )
                    + "".join(
                        f" | {k}: {v:.2f}" for k, v in res.items() if k.endswith("loop_p99_ratio")
                    ),
                    flush=True,
                )
    finally:
        serve.shutdown()
        ray.shutdown()
    import ray as _ray

    report = {
        "benchmark": "POST /v1/decide vs a no-op Serve deployment of the same shape",
        "target": "p99(decide) / p99(no-op) <= 1.5",
        "setup": {
            "ray": _ray.__version__,
            "python": platform.python_version(),
            "cpus_visible": os.cpu_count(),
            "ray_num_cpus": args.num_cpus,
            "nodes": 2,
            "students": "random init (latency does not depend on training)",
            "transport": "HTTP/1.1 keep-alive over loopback (requests)",
            "ingress_to_agents": "Serve gRPC (agent_transport=grpc)",
            "replica_event_loop": args.event_loop,
            "sequential_requests": args.requests,
            "burst": f"{args.burst_threads} threads x {args.burst_per_thread}",
        },
        "results": results,
        "all_within_target": all(r["p99_ratio"] <= 1.5 for r in results),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
