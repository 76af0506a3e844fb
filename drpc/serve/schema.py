"""The wire format of ``POST /v1/decide``: a cluster snapshot in, per-service decisions out.

Shared by the Serve app (:mod:`drpc.serve`) and the controller, which builds snapshots from
Prometheus (PromQL per field: ``docs/metrics.md``). Every number carries its unit in its name;
every field is validated at the boundary, so a bad request gets a 422 that names the field
(``services[3].cpu_usage_millicores: Input should be greater than or equal to 0``), never a 500.

The endpoint is stateless: the snapshot carries the short history the forecast needs
(``entry_rps_history``), and the decisions are *recommendations* (the policy's set-points turned
into replicas and limits, clamped to the service's bounds and per-interval steps). Scale-down
stabilisation, cooldowns and other safety rules belong to the controller, which holds the state.

Example request::

    {"cluster": "prod-eu", "time_s": 1732950000.0, "interval_s": 15,
     "entry_rps_history": [120.0, 131.5, 140.2],
     "services": [{"name": "ts-travel-service", "request_rate_rps": 42.0,
                   "cpu_usage_millicores": 380.0, "memory_working_set_mib": 410.0,
                   "replicas_ready": 2, "replicas_desired": 2,
                   "cpu_limit_millicores": 1000.0, "memory_limit_mib": 1024.0,
                   "latency_p99_ms": 35.0}],
     "endpoints": [{"name": "/api/v1/travelservice/trips/left", "rps": 120.0,
                    "latency_p99_ms": 180.0, "slo_ms": 500.0}]}
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_SERVICES",
    "MAX_ENDPOINTS",
    "MAX_HISTORY",
    "ServiceMetrics",
    "EndpointMetrics",
    "Snapshot",
    "Decision",
    "DecideResponse",
    "PolicyInfo",
]

MAX_SERVICES = 20_000
"""Most services one snapshot may hold (a larger body is refused with 413 or 422)."""
MAX_ENDPOINTS = 5_000
"""Most endpoints one snapshot may hold."""
MAX_HISTORY = 1_000
"""Most entries of ``entry_rps_history``."""

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ServiceMetrics(BaseModel):
    """One Deployment's metrics over the last interval (what Prometheus holds; units in names)."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=253, description="Deployment name")
    request_rate_rps: float = Field(ge=0, description="requests arriving, per second")
    throughput_rps: float | None = Field(
        default=None, ge=0, description="requests completed, per second (default: the rate)"
    )
    error_rate: float = Field(default=0.0, ge=0, le=1, description="failed / arrived")
    latency_p99_ms: float = Field(default=0.0, ge=0, description="p99 per visit, ms")
    cpu_usage_millicores: float = Field(ge=0, description="CPU used, sum over pods")
    cpu_throttled_ratio: float = Field(default=0.0, ge=0, le=1, description="throttled periods")
    memory_working_set_mib: float = Field(ge=0, description="working set, sum over pods, MiB")
    replicas_ready: int = Field(ge=0, description="ready pods")
    replicas_desired: int = Field(ge=0, description="the Deployment's spec.replicas")
    pods_pending: int = Field(default=0, ge=0, description="pods not yet scheduled")
    cpu_limit_millicores: float = Field(gt=0, description="CPU limit per pod")
    memory_limit_mib: float = Field(gt=0, description="memory limit per pod, MiB")
    backlog_requests: float = Field(default=0.0, ge=0, description="requests queued beyond pods")


class EndpointMetrics(BaseModel):
    """One user-facing endpoint's traffic and end-to-end latency over the last interval."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=1024)
    rps: float = Field(ge=0, description="requests per second at the ingress")
    error_rate: float = Field(default=0.0, ge=0, le=1)
    latency_p99_ms: float = Field(default=0.0, ge=0, description="end-to-end p99, ms")
    slo_ms: float | None = Field(default=None, gt=0, description="p99 SLO, ms (default: the app's)")


class Snapshot(BaseModel):
    """The request body of ``POST /v1/decide``."""

    model_config = _STRICT

    cluster: str = Field(default="default", max_length=253, description="cluster id (logs)")
    time_s: float = Field(ge=0, description="end of the interval, Unix seconds")
    interval_s: float = Field(default=15.0, gt=0, le=3600, description="control interval")
    entry_rps_history: list[float] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="total entry request rate of earlier intervals, oldest first (forecast "
        "input; the current interval's rate is the sum of endpoints[].rps)",
    )
    services: list[ServiceMetrics] = Field(min_length=1, max_length=MAX_SERVICES)
    endpoints: list[EndpointMetrics] = Field(default_factory=list, max_length=MAX_ENDPOINTS)

    @field_validator("entry_rps_history")
    @classmethod
    def _finite_non_negative(cls, v: list[float]) -> list[float]:
        for i, x in enumerate(v):
            if not math.isfinite(x) or x < 0:
                raise ValueError(f"entry {i} is {x}; rates must be finite and >= 0")
        return v

    @field_validator("services")
    @classmethod
    def _unique_services(cls, v: list[ServiceMetrics]) -> list[ServiceMetrics]:
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"service {s.name!r} appears twice")
            seen.add(s.name)
        return v


class Decision(BaseModel):
    """What the policy recommends for one Deployment."""

    service: str
    node: str = Field(description="the NodeAgent (cluster node) that decided")
    replicas: int = Field(ge=0)
    cpu_limit_millicores: float = Field(gt=0)
    memory_limit_mib: float = Field(gt=0)
    cpu_request_millicores: float = Field(gt=0, description="keeps the app's request/limit")
    memory_request_mib: float = Field(gt=0)


class PolicyInfo(BaseModel):
    """``GET /v1/policy``: what is loaded."""

    kind: str = Field(description="'students' or 'teacher'")
    version: str = Field(description="checkpoint folder name or a label given at load time")
    checksum: str = Field(description="SHA-256 of the weights file")
    app: str
    services: int
    nodes: list[str]
    utilization_scale: float = Field(
        default=1.0, description="operator's margin: learned CPU-utilisation set-points times this"
    )


class DecideResponse(BaseModel):
    """The response body of ``POST /v1/decide``."""

    policy: PolicyInfo
    decisions: list[Decision]
    decision_ms: float = Field(description="time spent deciding inside the server, ms")
