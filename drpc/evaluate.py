"""The evaluation harness: run policies on a scenario, summarise, write Parquet, JSON and plots.

Python API::

    from drpc.evaluate import evaluate
    from drpc.scenario import load_scenario
    results = evaluate(load_scenario("default"), ["hpa:target=60", "oracle"], out_dir="out")

Output (written to a temporary folder and moved into place only when every policy finished,
so ``out_dir`` never holds a partial result)::

    out_dir/summary.json                 scenario + one summary per policy
    out_dir/comparison.png               load, replicas, CPU and worst p99 of every policy
    out_dir/<policy>/summary.json
    out_dir/<policy>/timeline.parquet    one row per interval (cluster level)
    out_dir/<policy>/services.parquet    one row per interval and service
    out_dir/<policy>/endpoints.parquet   one row per interval and endpoint
    out_dir/<policy>/plot.png            load, replicas, CPU and p99 of the worst services

Summary metrics (``summary.json``):

- ``slo_violation_fraction``: share of intervals in which some endpoint with traffic has an
  end-to-end p99 above its SLO.
- ``failed_request_fraction``: failed entry requests / entry requests.
- ``mean_latency_ms``: request-weighted mean end-to-end latency (failed requests count at the
  timeout).
- ``p99_latency_ms``: the request-weighted 99th percentile, over intervals and endpoints, of
  the per-interval end-to-end p99.
- ``cpu_core_hours`` / ``memory_gib_hours``: allocated resources (requests of pods holding node
  resources), integrated over time; the cost a cluster pays.
- ``scaling_actions``: changes of a service's replica target or resources, counted per service
  and interval.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from drpc.policy import Policy, make_policy
from drpc.scenario import Scenario
from drpc.sim.types import Observation

__all__ = ["RunResult", "run_policy", "evaluate", "format_table", "summarize", "SUMMARY_KEYS"]

SUMMARY_KEYS = (
    "slo_violation_fraction",
    "failed_request_fraction",
    "mean_latency_ms",
    "p99_latency_ms",
    "cpu_core_hours",
    "memory_gib_hours",
    "scaling_actions",
)


@dataclass
class RunResult:
    """One policy's run: its summary and per-interval arrays."""

    policy: str
    summary: dict[str, Any]
    timeline: pa.Table
    services: pa.Table
    endpoints: pa.Table


class _Recorder:
    """Preallocated (interval x service / endpoint) arrays filled from observations."""

    SERVICE = (
        "request_rate_rps",
        "error_rate",
        "latency_p99_ms",
        "cpu_usage_millicores",
        "cpu_throttled_ratio",
        "memory_working_set_mib",
        "replicas_desired",
        "replicas_ready",
        "cpu_request_millicores",
        "cpu_limit_millicores",
        "memory_request_mib",
        "memory_limit_mib",
        "oom_kills",
    )
    ENDPOINT = (
        "endpoint_rps",
        "endpoint_error_rate",
        "endpoint_latency_mean_ms",
        "endpoint_latency_p50_ms",
        "endpoint_latency_p95_ms",
        "endpoint_latency_p99_ms",
    )

    def __init__(self, n_intervals: int, n_services: int, n_endpoints: int):
        self.svc = {k: np.zeros((n_intervals, n_services)) for k in self.SERVICE}
        self.ep = {k: np.zeros((n_intervals, n_endpoints)) for k in self.ENDPOINT}
        self.time_s = np.zeros(n_intervals)
        self.cpu_alloc = np.zeros(n_intervals)
        self.mem_alloc = np.zeros(n_intervals)
        self.n = 0

    def add(self, obs: Observation) -> None:
        i = self.n
        for k in self.SERVICE:
            self.svc[k][i] = getattr(obs, k)
        for k in self.ENDPOINT:
            self.ep[k][i] = getattr(obs, k)
        self.time_s[i] = obs.time_s
        self.cpu_alloc[i] = obs.cpu_allocated_millicores
        self.mem_alloc[i] = obs.memory_allocated_mib
        self.n += 1


def run_policy(
    scenario: Scenario, policy: Policy | str, *, seed: int | None = None, progress: bool = True
) -> RunResult:
    """Run one policy over the whole scenario and return its summary and timelines."""
    if isinstance(policy, str):
        policy = make_policy(policy)
    sim = scenario.make_sim(seed)
    app = scenario.app
    obs = sim.reset()
    policy.reset(sim)
    rec = _Recorder(sim.n_intervals, app.n_services, app.n_endpoints)
    started = time.perf_counter()
    bar = tqdm(
        total=sim.n_intervals,
        desc=f"{policy.name:>18}",
        unit="interval",
        disable=None if progress else True,  # None: off when stderr is not a terminal
        leave=False,
        mininterval=0.5,
    )
    with bar:
        while not sim.done:
            action = policy.act(obs)
            obs = sim.step(action)
            rec.add(obs)
            bar.update(1)
    wall_s = time.perf_counter() - started
    summary = summarize(rec, scenario)
    summary.update(policy=policy.name, wall_s=round(wall_s, 3), seed=sim.seed)
    return RunResult(policy.name, summary, *_tables(rec, scenario))


def summarize(rec: _Recorder, scenario: Scenario) -> dict[str, Any]:
    """The summary metrics of one run (see the module docstring)."""
    app, cfg = scenario.app, scenario.config
    n = rec.n
    ep_rps = rec.ep["endpoint_rps"][:n]
    ep_p99 = rec.ep["endpoint_latency_p99_ms"][:n]
    ep_err = rec.ep["endpoint_error_rate"][:n]
    ep_mean = rec.ep["endpoint_latency_mean_ms"][:n]
    active = ep_rps > 0
    violated_ep = active & (ep_p99 > app.slo_ms[None, :])
    violated = violated_ep.any(axis=1)
    weight = ep_rps * cfg.interval_s  # requests per interval and endpoint
    total = weight.sum()
    hours = cfg.interval_s / 3600.0
    desired = rec.svc["replicas_desired"][:n]
    prev = np.vstack([scenario.app.replicas0[None, :], desired[:-1]])
    changes = desired != prev
    for k, k0 in (
        ("cpu_request_millicores", app.cpu_request_m0),
        ("cpu_limit_millicores", app.cpu_limit_m0),
        ("memory_request_mib", app.memory_request_mib0),
        ("memory_limit_mib", app.memory_limit_mib0),
    ):
        v = rec.svc[k][:n]
        changes |= v != np.vstack([k0[None, :], v[:-1]])
    return {
        "slo_violation_fraction": float(violated.mean()) if n else 0.0,
        "failed_request_fraction": float((ep_err * weight).sum() / total) if total > 0 else 0.0,
        "mean_latency_ms": float((ep_mean * weight).sum() / total) if total > 0 else 0.0,
        "p99_latency_ms": _weighted_quantile(ep_p99.ravel(), weight.ravel(), 0.99),
        "cpu_core_hours": float(rec.cpu_alloc[:n].sum() / 1000.0 * hours),
        "memory_gib_hours": float(rec.mem_alloc[:n].sum() / 1024.0 * hours),
        "scaling_actions": int(changes.sum()),
        "intervals": int(n),
        "simulated_s": float(n * cfg.interval_s),
        "requests": float(total),
        "mean_replicas": float(rec.svc["replicas_ready"][:n].sum(axis=1).mean()) if n else 0.0,
        "oom_kills": int(rec.svc["oom_kills"][:n].sum()),
        "slo_violation_fraction_by_endpoint": {
            name: float(violated_ep[:, e].mean()) if n else 0.0
            for e, name in enumerate(app.endpoint_names)
        },
    }


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    keep = weights > 0
    if not keep.any():
        return 0.0
    v, w = values[keep], weights[keep]
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    return float(v[order][min(np.searchsorted(cw, q * cw[-1]), v.size - 1)])


def _tables(rec: _Recorder, scenario: Scenario) -> tuple[pa.Table, pa.Table, pa.Table]:
    app = scenario.app
    n, s, e = rec.n, app.n_services, app.n_endpoints
    interval = np.arange(n)
    ep_p99 = rec.ep["endpoint_latency_p99_ms"][:n]
    ep_rps = rec.ep["endpoint_rps"][:n]
    active = ep_rps > 0
    worst_ratio = np.where(active, ep_p99 / app.slo_ms[None, :], 0.0).max(axis=1, initial=0.0)
    weight = ep_rps.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        failed = np.where(
            weight > 0, (rec.ep["endpoint_error_rate"][:n] * ep_rps).sum(axis=1) / weight, 0.0
        )
        mean_lat = np.where(
            weight > 0, (rec.ep["endpoint_latency_mean_ms"][:n] * ep_rps).sum(axis=1) / weight, 0.0
        )
    timeline = pa.table(
        {
            "interval": interval,
            "time_s": rec.time_s[:n],
            "load_rps": weight,
            "worst_p99_ms": np.where(active, ep_p99, 0.0).max(axis=1, initial=0.0),
            "worst_p99_over_slo": worst_ratio,
            "slo_violated": (active & (ep_p99 > app.slo_ms[None, :])).any(axis=1),
            "failed_fraction": failed,
            "mean_latency_ms": mean_lat,
            "cpu_allocated_cores": rec.cpu_alloc[:n] / 1000.0,
            "memory_allocated_gib": rec.mem_alloc[:n] / 1024.0,
            "replicas_desired": rec.svc["replicas_desired"][:n].sum(axis=1),
            "replicas_ready": rec.svc["replicas_ready"][:n].sum(axis=1),
            "oom_kills": rec.svc["oom_kills"][:n].sum(axis=1),
        }
    )
    services = pa.table(
        {
            "interval": np.repeat(interval, s),
            "service": pa.DictionaryArray.from_arrays(
                np.tile(np.arange(s, dtype=np.int32), n), app.names
            ),
            **{k: rec.svc[k][:n].ravel() for k in _Recorder.SERVICE},
        }
    )
    endpoints = pa.table(
        {
            "interval": np.repeat(interval, e),
            "endpoint": pa.DictionaryArray.from_arrays(
                np.tile(np.arange(e, dtype=np.int32), n), app.endpoint_names
            ),
            "slo_ms": np.tile(app.slo_ms, n),
            **{k.removeprefix("endpoint_"): rec.ep[k][:n].ravel() for k in _Recorder.ENDPOINT},
        }
    )
    return timeline, services, endpoints


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "policy"


def evaluate(
    scenario: Scenario,
    policies: list[str | Policy],
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    plots: bool = True,
) -> list[RunResult]:
    """Run every policy on ``scenario``; if ``out_dir`` is given, write results there atomically.

    Policy specs are parsed before anything runs, so a bad spec fails fast; ``out_dir`` must
    be absent or empty unless ``overwrite``.
    """
    built = [make_policy(p) if isinstance(p, str) else p for p in policies]
    names = [p.name for p in built]
    if len(set(names)) != len(names):
        raise ValueError(f"policies must be distinct, got {names}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: output folder is not empty (pass overwrite to replace it)")
    results = [run_policy(scenario, p, progress=progress) for p in built]
    if out is not None:
        _write(out, scenario, results, plots)
    return results


def scenario_info(scenario: Scenario) -> dict[str, Any]:
    spec = scenario.spec
    return {
        "name": spec.name,
        "source": scenario.source,
        "app": scenario.app.app.name,
        "services": scenario.app.n_services,
        "endpoints": scenario.app.n_endpoints,
        "trace": spec.trace.model_dump(),
        "peak_rps": float(scenario.load_rps.max()) if scenario.load_rps.size else 0.0,
        "mean_rps": float(scenario.load_rps.mean()) if scenario.load_rps.size else 0.0,
        "capacity_rps_at_max_replicas": scenario.app.capacity_rps(),
        "intervals": scenario.n_intervals,
        "interval_s": scenario.config.interval_s,
        "nodes": scenario.config.n_nodes,
        "seed": scenario.seed,
        "slo_ms": dict(zip(scenario.app.endpoint_names, scenario.app.slo_ms.tolist(), strict=True)),
    }


def _write(out: Path, scenario: Scenario, results: list[RunResult], plots: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for r in results:
            d = tmp / _slug(r.policy)
            d.mkdir()
            pq.write_table(r.timeline, d / "timeline.parquet")
            pq.write_table(r.services, d / "services.parquet")
            pq.write_table(r.endpoints, d / "endpoints.parquet")
            (d / "summary.json").write_text(json.dumps(_jsonable(r.summary), indent=2) + "\n")
        summary = {
            "scenario": scenario_info(scenario),
            "policies": [_jsonable(r.summary) for r in results],
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if plots:
            from drpc.plots import plot_comparison, plot_run

            for r in results:
                plot_run(r, scenario, tmp / _slug(r.policy) / "plot.png")
            plot_comparison(results, scenario, tmp / "comparison.png")
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            out.rename(backup)
            tmp.rename(out)
            shutil.rmtree(backup)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def format_table(results: list[RunResult]) -> str:
    """A fixed-width comparison table of the summary metrics, one row per policy."""
    w = max([22, *(len(r.policy) for r in results)])
    header = (
        f"{'policy':<{w}} {'SLO viol.':>9} {'failed':>8} {'mean ms':>8} {'p99 ms':>8} "
        f"{'core-h':>8} {'GiB-h':>8} {'actions':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        s = r.summary
        lines.append(
            f"{r.policy:<{w}} {s['slo_violation_fraction']:>9.3f} "
            f"{s['failed_request_fraction']:>8.4f} {s['mean_latency_ms']:>8.1f} "
            f"{s['p99_latency_ms']:>8.1f} {s['cpu_core_hours']:>8.2f} "
            f"{s['memory_gib_hours']:>8.2f} {s['scaling_actions']:>8d}"
        )
    return "\n".join(lines)
