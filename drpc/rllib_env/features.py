"""Per-service observation features for the RL policies, normalised to roughly [0, 1].

One row per service, the same columns for every app, so a network shared across services runs
on apps of any size. ``FEATURES`` names the columns in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.types import Observation

__all__ = [
    "FEATURES",
    "N_FEATURES",
    "FeatureBuilder",
    "StaticContext",
    "service_features",
    "static_context",
]

FEATURES = (
    "load_of_max_capacity",  # request rate / capacity at max replicas (initial limits)
    "cpu_utilization",  # usage / (limit x ready)
    "cpu_throttled_ratio",
    "memory_of_limit",  # working set per pod / memory limit
    "log_p99_over_slo",  # log1p(service p99 / tightest SLO of an endpoint it serves)
    "error_rate",
    "ready_of_max",  # ready replicas / max replicas
    "desired_of_max",
    "pending_of_max",
    "log2_cpu_limit_vs_initial",  # log2(limit / initial) / 3
    "log2_memory_limit_vs_initial",
    "forecast_load_of_max_capacity",  # GRU forecast (max over horizon) in the units of col 0
    "log_backlog",  # log1p(backlog / capacity per interval)
    "log_visits_per_request",  # call-graph context: log1p(visits per entry request)
    "depth",  # shallowest call depth / 6
    "fan_out",  # distinct callees / 10
    "global_log_worst_p99_over_slo",  # same for every service
    "global_entry_load_of_capacity",  # same for every service
)
N_FEATURES = len(FEATURES)


@dataclass(frozen=True)
class StaticContext:
    """What does not change within an episode: capacities and call-graph context per service."""

    max_capacity_rps: np.ndarray  # (S,) at max replicas and initial limits
    tightest_slo_ms: np.ndarray  # (S,)
    log_visits: np.ndarray
    depth: np.ndarray
    fan_out: np.ndarray
    app_capacity_rps: float


def static_context(app: CompiledApp) -> StaticContext:
    """Capacities and call-graph context of ``app``."""
    n = app.n_services
    per_pod = (app.cpu_limit_m0 / 1000.0) / app.cpu_s
    tightest = np.full(n, np.inf)
    np.minimum.at(tightest, app.inst_service, app.slo_ms[app.inst_endpoint])
    tightest = np.where(np.isfinite(tightest), tightest, app.slo_ms.max())
    depth = np.full(n, 6.0)
    np.minimum.at(depth, app.inst_service, app.inst_depth.astype(np.float64))
    caller, callee = app.call_edges()
    distinct = np.unique(np.stack([caller, callee]), axis=1)
    fan = np.bincount(distinct[0], minlength=n).astype(np.float64)  # distinct callees
    return StaticContext(
        max_capacity_rps=app.max_replicas * per_pod,
        tightest_slo_ms=tightest,
        log_visits=np.log1p(app.visits_per_request),
        depth=depth / 6.0,
        fan_out=fan / 10.0,
        app_capacity_rps=app.capacity_rps(),
    )


def service_features(
    obs: Observation,
    app: CompiledApp,
    ctx: StaticContext,
    entry_forecast_rps: float,
    interval_s: float,
) -> np.ndarray:
    """The (S, N_FEATURES) float32 feature matrix for one observation."""
    ready = np.maximum(obs.replicas_ready, 1)
    cap = ctx.max_capacity_rps
    cols = np.empty((app.n_services, N_FEATURES))
    cols[:, 0] = obs.request_rate_rps / cap
    cols[:, 1] = obs.cpu_usage_millicores / (obs.cpu_limit_millicores * ready)
    cols[:, 2] = obs.cpu_throttled_ratio
    cols[:, 3] = obs.memory_working_set_mib / (obs.memory_limit_mib * ready)
    cols[:, 4] = np.log1p(obs.latency_p99_ms / ctx.tightest_slo_ms)
    cols[:, 5] = obs.error_rate
    cols[:, 6] = obs.replicas_ready / app.max_replicas
    cols[:, 7] = obs.replicas_desired / app.max_replicas
    cols[:, 8] = obs.pods_pending / app.max_replicas
    cols[:, 9] = np.log2(obs.cpu_limit_millicores / app.cpu_limit_m0) / 3.0
    cols[:, 10] = np.log2(obs.memory_limit_mib / app.memory_limit_mib0) / 3.0
    cols[:, 11] = entry_forecast_rps * app.visits_per_request / cap
    per_interval = np.maximum(obs.throughput_rps, 1e-3) * interval_s
    cols[:, 12] = np.log1p(obs.backlog_requests / per_interval)
    cols[:, 13] = ctx.log_visits
    cols[:, 14] = ctx.depth
    cols[:, 15] = ctx.fan_out
    active = obs.endpoint_rps > 0
    worst = np.where(active, obs.endpoint_latency_p99_ms / obs.endpoint_slo_ms, 0.0).max(initial=0)
    cols[:, 16] = np.log1p(worst)
    cols[:, 17] = obs.endpoint_rps.sum() / ctx.app_capacity_rps
    return np.clip(np.nan_to_num(cols, nan=0.0, posinf=10.0), -10.0, 10.0).astype(np.float32)


class FeatureBuilder:
    """Observations -> feature rows, keeping the entry-rate history the GRU forecast needs.

    The env and every policy that runs a trained network (teacher, students, the Serve app)
    build their inputs through this one class, so training and serving see the same features::

        fb = FeatureBuilder(app, interval_s=15, forecast=True)
        fb.reset(first_entry_rps)
        x = fb(obs)        # appends obs's entry rate to the history, returns (S, N_FEATURES)
    """

    def __init__(self, app: CompiledApp, interval_s: float, forecast: bool = True):
        self.app = app
        self.interval_s = float(interval_s)
        self.ctx = static_context(app)
        self._predictor = None
        if forecast:
            from drpc.workload.forecast import load_forecaster

            self._predictor = load_forecaster().numpy_predictor()
        self.window = self._predictor.config.window if self._predictor else 1
        self.history: deque[float] = deque([0.0] * self.window, maxlen=self.window)

    def reset(self, entry_rps: float) -> None:
        """Start a new run whose history so far is a flat ``entry_rps`` (requests/s)."""
        self.history = deque([float(entry_rps)] * self.window, maxlen=self.window)

    def forecast_rps(self) -> float:
        """The GRU's peak forecast of the entry rate over its horizon (else the last rate)."""
        hist = np.fromiter(self.history, dtype=np.float64)
        if self._predictor is None:
            return float(hist[-1])
        return float(np.max(self._predictor(hist)))

    def features(self, obs: Observation) -> np.ndarray:
        """Features of ``obs`` without touching the history."""
        return service_features(obs, self.app, self.ctx, self.forecast_rps(), self.interval_s)

    def __call__(self, obs: Observation) -> np.ndarray:
        """Append ``obs``'s entry rate to the history, then return its features."""
        self.history.append(float(obs.endpoint_rps.sum()))
        return self.features(obs)
