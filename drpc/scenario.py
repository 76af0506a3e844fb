"""Scenarios: an app, a trace window, a rescale, a cluster and a seed, as a YAML file.

A scenario is everything needed to reproduce a run. Bundled scenarios live in
``drpc/scenarios/*.yaml``; ``drpc evaluate --scenario NAME_OR_FILE`` runs one, and the same
fields can be given as CLI flags (:func:`scenario_from_flags`). Paths inside a scenario file
are relative to that file. Errors name the file and the field before anything runs.

Example::

    name: default
    app: trainticket
    trace:
      file: nasa
      window_s: [1036800, 1123200]   # trace seconds [start, end)
      split: eval                    # the window must lie in the trace's evaluation split
      time_compression: 4            # trace seconds per simulated second
      peak_utilization: 0.8          # window peak = 0.8 x app capacity at max replicas
    cluster: {n_nodes: auto, node_cpu_millicores: 16000, node_memory_mib: 65536}
    sim: {interval_s: 15, substeps: 15, arrival_noise: poisson}
    seed: 7
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drpc.sim.app import (
    App,
    AppError,
    app_from_data,
    bundled_files,
    load_app,
    load_data_file,
    resolve_data_file,
)
from drpc.sim.app import format_validation_error as _format
from drpc.sim.cluster import ClusterSim
from drpc.sim.graph import CompiledApp, compile_app
from drpc.sim.types import ClusterConfig
from drpc.workload.traces import Trace, TraceError, eval_window, load_trace, train_window

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioSpec",
    "bundled_scenarios",
    "load_scenario",
    "scenario_from_flags",
    "build_scenario",
]


class ScenarioError(ValueError):
    """A scenario that cannot be built; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class TraceSpec(_Strict):
    """Which trace drives the app and how it is rescaled."""

    file: str = Field(min_length=1, description="bundled trace name or CSV path")
    window_s: tuple[float, float] | None = Field(
        default=None, description="[start, end) in trace seconds; default the whole split"
    )
    split: Literal["train", "eval", "any"] = Field(
        default="any", description="the window must lie inside this split of a bundled trace"
    )
    time_compression: float = Field(default=1.0, gt=0, le=3600)
    peak_utilization: float | None = Field(default=None, gt=0, le=2.0)
    peak_rps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_scale(self) -> TraceSpec:
        if self.peak_utilization is not None and self.peak_rps is not None:
            raise ValueError("give peak_utilization or peak_rps, not both")
        if self.window_s is not None and not self.window_s[0] < self.window_s[1]:
            raise ValueError(f"window_s start must be before end, got {list(self.window_s)}")
        return self


class ClusterSpec(_Strict):
    """Worker nodes; ``n_nodes: auto`` fits the requests of every service at max replicas with
    15% spare, and has the CPU the app uses at its capacity (``CompiledApp.capacity_rps``), so
    that a trace rescaled to a fraction of that capacity can be served at all."""

    n_nodes: int | Literal["auto"] = "auto"
    node_cpu_millicores: float = Field(default=16000.0, gt=0)
    node_memory_mib: float = Field(default=65536.0, gt=0)


class SimSpec(_Strict):
    """Simulation timing (see :class:`drpc.sim.types.ClusterConfig`)."""

    interval_s: float = Field(default=15.0, gt=0, le=3600)
    substeps: int = Field(default=15, ge=1, le=600)
    arrival_noise: Literal["poisson", "none"] = "poisson"


class ServiceOverride(_Strict):
    """Per-service changes to the app for this scenario."""

    replicas: int | None = Field(default=None, ge=0)
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)


class ScenarioSpec(_Strict):
    """The file format of a scenario."""

    name: str = Field(min_length=1)
    description: str = ""
    app: str = Field(min_length=1, description="bundled app name or app file path")
    trace: TraceSpec
    slo_ms: float | None = Field(default=None, gt=0, description="override every endpoint's SLO")
    cluster: ClusterSpec = ClusterSpec()
    sim: SimSpec = SimSpec()
    seed: int = Field(default=0, ge=0)
    warm_start_utilization: float | None = Field(
        default=0.6,
        gt=0,
        le=1,
        description="start each service with the replicas that serve the first interval's load "
        "at this CPU utilisation of its limits (null: the app's initial replicas)",
    )
    service_overrides: dict[str, ServiceOverride] = Field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A built scenario: the app, the load it sees and the cluster it runs on."""

    spec: ScenarioSpec
    app: CompiledApp
    trace: Trace  # the window, rescaled and time-compressed
    load_rps: np.ndarray  # (n_intervals, substeps) entry request rate
    config: ClusterConfig
    seed: int
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_intervals(self) -> int:
        return int(self.load_rps.shape[0])

    def make_sim(self, seed: int | None = None) -> ClusterSim:
        return ClusterSim(self.app, self.config, self.load_rps, self.seed if seed is None else seed)


def bundled_scenarios() -> dict[str, Path]:
    """Names and paths of the scenarios shipped in ``drpc/scenarios/``."""
    return bundled_files("scenarios")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and build a scenario by bundled name (``default``) or by file path."""
    path = resolve_data_file(name_or_path, bundled_scenarios(), "scenario", ScenarioError)
    data = load_data_file(path, ScenarioError)
    return build_scenario(data, source=str(path), base_dir=path.parent)


def scenario_from_flags(
    *,
    app: str,
    trace: str,
    window: str | None = None,
    peak_utilization: float | None = None,
    peak_rps: float | None = None,
    time_compression: float = 1.0,
    slo_ms: float | None = None,
    seed: int = 0,
    n_nodes: int | None = None,
    interval_s: float = 15.0,
    name: str = "cli",
) -> Scenario:
    """Build a scenario from command-line values (``--window START:END`` in trace seconds)."""
    window_s = None
    if window:
        parts = window.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            window_s = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise ScenarioError(
                f"--window: expected START:END in trace seconds, got {window!r}"
            ) from None
    data: dict[str, Any] = {
        "name": name,
        "app": app,
        "trace": {
            "file": trace,
            "window_s": window_s,
            "time_compression": time_compression,
            "peak_utilization": peak_utilization,
            "peak_rps": peak_rps,
        },
        "slo_ms": slo_ms,
        "seed": seed,
        "sim": {"interval_s": interval_s},
    }
    if n_nodes is not None:
        data["cluster"] = {"n_nodes": n_nodes}
    return build_scenario(data, source="command line", base_dir=Path.cwd())


def build_scenario(data: Any, source: str = "<data>", base_dir: Path | None = None) -> Scenario:
    """Validate scenario data and build everything it refers to; errors name ``source``."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format(source, err)) from None
    base = base_dir or Path.cwd()
    app = _load_scenario_app(spec, source, base)
    compiled = compile_app(app)
    trace = _load_window(spec.trace, source, base)
    cfg = _cluster_config(spec, compiled)
    trace = _rescale(spec.trace, trace, compiled, source)
    load = _load_series(trace, cfg)
    if load.shape[0] == 0:
        raise ScenarioError(
            f"{source}: trace.window_s: the window is shorter than one {cfg.interval_s:g} s "
            "interval after time compression"
        )
    if spec.warm_start_utilization is not None:
        compiled = dataclasses.replace(
            compiled,
            replicas0=warm_start_replicas(compiled, load[0].mean(), spec.warm_start_utilization),
        )
    return Scenario(
        spec=spec,
        app=compiled,
        trace=trace,
        load_rps=load,
        config=cfg,
        seed=spec.seed,
        source=source,
    )


def warm_start_replicas(app: CompiledApp, entry_rps: float, utilization: float) -> np.ndarray:
    """Replicas that serve ``entry_rps`` at ``utilization`` of each service's CPU limit, within
    [min_replicas, max_replicas]: a cluster that has been running before the window starts."""
    cores = app.cpu_limit_m0 / 1000.0
    need = np.ceil(entry_rps * app.visits_per_request * app.cpu_s / (cores * utilization))
    return np.clip(need, np.maximum(app.min_replicas, 1), app.max_replicas).astype(np.int64)


def _resolve(path_or_name: str, base: Path, bundled: set[str]) -> str | Path:
    if path_or_name in bundled:
        return path_or_name
    p = Path(path_or_name)
    return p if p.is_absolute() else base / p


def _load_scenario_app(spec: ScenarioSpec, source: str, base: Path) -> App:
    from drpc.sim.app import bundled_apps

    target = _resolve(spec.app, base, set(bundled_apps()))
    try:
        app = load_app(target)
    except AppError as err:
        raise ScenarioError(f"{source}: app: {err}") from None
    services = {s.name: s for s in app.services}
    if not spec.service_overrides and spec.slo_ms is None:
        return app
    data = app.model_dump()
    for name, override in spec.service_overrides.items():
        if name not in services:
            raise ScenarioError(
                f"{source}: service_overrides.{name}: unknown service {name!r} in app {app.name!r}"
            )
        i = app.service_names.index(name)
        data["services"][i].update(
            {k: v for k, v in override.model_dump().items() if v is not None}
        )
    if spec.slo_ms is not None:
        for ep in data["endpoints"]:
            ep["slo_p99_ms"] = spec.slo_ms
    try:
        return app_from_data(data, f"{source} (service_overrides applied to app {app.name!r})")
    except AppError as err:
        raise ScenarioError(str(err)) from None


def _load_window(ts: TraceSpec, source: str, base: Path) -> Trace:
    from drpc.workload.traces import bundled_traces, resolve_trace_name

    try:
        name = resolve_trace_name(ts.file)
        bundled = name in bundled_traces()
    except (KeyError, ValueError, TraceError):
        name, bundled = ts.file, False
    try:
        trace = load_trace(name if bundled else _resolve(ts.file, base, set()))
    except (TraceError, ValueError, OSError) as err:
        raise ScenarioError(f"{source}: trace.file: {err}") from None
    if ts.split != "any":
        if not bundled:
            raise ScenarioError(
                f"{source}: trace.split: {ts.split!r} needs a bundled trace with a known "
                "train/eval split; use split: any for your own file"
            )
        lo, hi = (train_window if ts.split == "train" else eval_window)(name)
        window = ts.window_s or (lo, hi)
        if window[0] < lo or window[1] > hi:
            raise ScenarioError(
                f"{source}: trace.window_s: {list(window)} is not inside the {ts.split} split "
                f"[{lo:g}, {hi:g}) of {name}"
            )
    else:
        window = ts.window_s
    if window is not None:
        try:
            trace = trace.window(*window)
        except ValueError as err:
            raise ScenarioError(f"{source}: trace.window_s: {err}") from None
    if ts.time_compression != 1.0:
        trace = trace.time_compressed(ts.time_compression)
    return trace


def _cluster_config(spec: ScenarioSpec, app: CompiledApp) -> ClusterConfig:
    c = spec.cluster
    n_nodes = c.n_nodes
    if n_nodes == "auto":
        need_cpu = float((app.max_replicas * app.cpu_request_m0).sum()) / c.node_cpu_millicores
        need_mem = float((app.max_replicas * app.memory_request_mib0).sum()) / c.node_memory_mib
        # with requests far below limits (e.g. DeathStarBench's 100m / 1000m) the requests
        # alone give a cluster too small for the CPU the pods burn at the app's capacity
        used_cpu_m = app.capacity_rps() * float((app.visits_per_request * app.cpu_s).sum()) * 1e3
        n_nodes = max(
            1,
            math.ceil(1.15 * max(need_cpu, need_mem)),
            math.ceil(used_cpu_m / c.node_cpu_millicores),
        )
    return ClusterConfig(
        n_nodes=int(n_nodes),
        node_cpu_millicores=c.node_cpu_millicores,
        node_memory_mib=c.node_memory_mib,
        interval_s=spec.sim.interval_s,
        substeps=spec.sim.substeps,
        arrival_noise=spec.sim.arrival_noise,
    )


def _rescale(ts: TraceSpec, trace: Trace, app: CompiledApp, source: str) -> Trace:
    if ts.peak_rps is None and ts.peak_utilization is None:
        return trace
    peak = ts.peak_rps if ts.peak_rps is not None else ts.peak_utilization * app.capacity_rps()
    try:
        return trace.rescaled_to_peak(peak)
    except ValueError as err:
        raise ScenarioError(f"{source}: trace: {err}") from None


def _load_series(trace: Trace, cfg: ClusterConfig) -> np.ndarray:
    """Entry rate at the midpoint of every substep, shape (n_intervals, substeps)."""
    n = int(math.floor(trace.duration_s / cfg.interval_s + 1e-9))
    dt = cfg.interval_s / cfg.substeps
    t = trace.start_s + (
        np.arange(n)[:, None] * cfg.interval_s + (np.arange(cfg.substeps) + 0.5) * dt
    )
    return trace.rate_at(t.ravel()).reshape(n, cfg.substeps) if n else np.zeros((0, cfg.substeps))
