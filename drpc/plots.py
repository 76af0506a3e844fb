"""PNG plots of evaluation runs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from drpc.evaluate import RunResult
    from drpc.scenario import Scenario

__all__ = ["plot_run", "plot_comparison", "worst_services"]


def _hours(time_s: np.ndarray) -> np.ndarray:
    return np.asarray(time_s) / 3600.0


def _service_matrix(result: RunResult, column: str, n_services: int) -> np.ndarray:
    values = result.services.column(column).to_numpy()
    return values.reshape(-1, n_services)


def worst_services(result: RunResult, scenario: Scenario, k: int = 5) -> np.ndarray:
    """The ``k`` services with the highest mean p99 latency relative to their own median."""
    n = scenario.app.n_services
    p99 = _service_matrix(result, "latency_p99_ms", n)
    score = np.nanmean(p99, axis=0)
    return np.argsort(-score)[: min(k, n)]


def plot_run(result: RunResult, scenario: Scenario, path: Path) -> Path:
    """Load, replicas, CPU and p99 against the SLO over time for the worst services."""
    app = scenario.app
    n = app.n_services
    tl = result.timeline
    t = _hours(tl.column("time_s").to_numpy())
    worst = worst_services(result, scenario)
    reps = _service_matrix(result, "replicas_ready", n)
    cpu_lim = _service_matrix(result, "cpu_limit_millicores", n)
    p99 = _service_matrix(result, "latency_p99_ms", n)
    fig, ax = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    ax[0].plot(t, tl.column("load_rps").to_numpy(), color="black", lw=0.8)
    ax[0].set_ylabel("entry load (req/s)")
    for s in worst:
        name = app.names[s]
        ax[1].step(t, reps[:, s], where="post", lw=0.9, label=name)
        ax[2].plot(t, reps[:, s] * cpu_lim[:, s] / 1000.0, lw=0.9, label=name)
        ax[3].plot(t, np.where(p99[:, s] > 0, p99[:, s], np.nan), lw=0.7, label=name)
    ax[1].set_ylabel("ready replicas")
    ax[2].set_ylabel("CPU limit x replicas (cores)")
    idle = tl.column("load_rps").to_numpy() <= 0  # no traffic: no latency to show
    worst_e2e = np.where(idle, np.nan, tl.column("worst_p99_ms").to_numpy())
    ax[3].plot(t, worst_e2e, color="black", lw=1.0, label="worst endpoint (e2e)")
    for slo in np.unique(app.slo_ms):
        ax[3].axhline(slo, color="red", ls="--", lw=0.8)
    ax[3].set_yscale("log")
    ax[3].set_ylabel("p99 latency (ms)")
    ax[3].set_xlabel("simulated time (h)")
    ax[1].legend(fontsize=7, ncol=3, loc="upper left")
    s = result.summary
    fig.suptitle(
        f"{scenario.name}: {result.policy}  |  SLO violations {s['slo_violation_fraction']:.1%}, "
        f"failed {s['failed_request_fraction']:.2%}, {s['cpu_core_hours']:.1f} core-h"
        f"  (red: SLOs; worst 5 services by p99)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(results: list[RunResult], scenario: Scenario, path: Path) -> Path:
    """Every policy on one figure: load, total replicas, allocated CPU, worst p99 / SLO."""
    fig, ax = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    tl0 = results[0].timeline
    t = _hours(tl0.column("time_s").to_numpy())
    ax[0].plot(t, tl0.column("load_rps").to_numpy(), color="black", lw=0.8)
    ax[0].set_ylabel("entry load (req/s)")
    for r in results:
        tl = r.timeline
        label = (
            f"{r.policy} (viol. {r.summary['slo_violation_fraction']:.1%}, "
            f"{r.summary['cpu_core_hours']:.1f} core-h)"
        )
        ax[1].step(t, tl.column("replicas_ready").to_numpy(), where="post", lw=0.9, label=label)
        ax[2].plot(t, tl.column("cpu_allocated_cores").to_numpy(), lw=0.9)
        idle = tl.column("load_rps").to_numpy() <= 0
        ax[3].plot(t, np.where(idle, np.nan, tl.column("worst_p99_over_slo").to_numpy()), lw=0.7)
    ax[1].set_ylabel("ready replicas (all services)")
    ax[2].set_ylabel("CPU allocated (cores)")
    ax[3].axhline(1.0, color="red", ls="--", lw=0.8)
    ax[3].set_yscale("log")
    ax[3].set_ylabel("worst endpoint p99 / SLO")
    ax[3].set_xlabel("simulated time (h)")
    ax[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"{scenario.name}: {scenario.app.app.name}, {scenario.n_intervals} intervals", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
