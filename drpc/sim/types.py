"""Data the simulator takes and returns: its configuration, actions and observations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

__all__ = ["ClusterConfig", "Action", "Observation", "PodTable", "Phase", "ResizeStatus"]


class Phase:
    """Pod phases as small integers (kept in numpy arrays)."""

    FREE = 0  # unused slot
    PENDING = 1  # created, not scheduled (no node fits its requests)
    STARTING = 2  # scheduled, container starting (not Ready)
    READY = 3  # serving
    TERMINATING = 4  # deleted: no longer serving, still holds its node's resources
    CRASHED = 5  # OOM-killed, waiting for its restart back-off (CrashLoopBackOff)

    NAMES = {0: "Free", 1: "Pending", 2: "Starting", 3: "Ready", 4: "Terminating", 5: "Crashed"}


class ResizeStatus:
    """In-place resize state of a pod (Kubernetes 1.35 conditions)."""

    NONE = 0
    IN_PROGRESS = 1  # PodResizeInProgress: admitted, actuating after the resize delay
    DEFERRED = 2  # PodResizePending reason Deferred: fits the node, not free right now
    INFEASIBLE = 3  # PodResizePending reason Infeasible: exceeds the node's allocatable

    NAMES = {0: "", 1: "InProgress", 2: "Deferred", 3: "Infeasible"}


@dataclass(frozen=True)
class ClusterConfig:
    """Nodes, timing and model constants of the simulated cluster."""

    n_nodes: int = 4
    """Number of worker nodes."""
    node_cpu_millicores: float = 16000.0
    """Allocatable CPU per node (millicores)."""
    node_memory_mib: float = 65536.0
    """Allocatable memory per node (MiB)."""
    interval_s: float = 15.0
    """Control interval: one step() advances this many seconds."""
    substeps: int = 15
    """Internal steps per interval for arrivals, backlog and pod readiness."""
    cfs_period_s: float = 0.1
    """CFS bandwidth period (s); the quota per period is limit x period."""
    max_utilization: float = 0.98
    """Pod utilisation a queue sustains; arrivals beyond it build a backlog."""
    scheduling_delay_s: float = 1.0
    """Time from scheduling to container start (image cached)."""
    startup_jitter: float = 0.1
    """Pod startup time is startup_s x U(1 - j, 1 + j)."""
    startup_cpu_fraction: float = 0.5
    """CPU a starting container burns, as a fraction of its limit."""
    resize_delay_s: float = 3.0
    """Time from an admitted in-place resize to the new limits taking effect."""
    termination_grace_s: float = 5.0
    """A deleted pod stops serving at once and frees its node's requests after this."""
    oom_backoff_initial_s: float = 10.0
    """First restart back-off after an OOM kill; doubles per restart."""
    oom_backoff_max_s: float = 300.0
    """Cap on the restart back-off (kubelet's CrashLoopBackOff maximum)."""
    backoff_reset_s: float = 600.0
    """A pod Ready this long has its restart back-off reset."""
    max_inflight_per_pod: float = 100.0
    """Requests a pod holds in memory at once (thread pool + accept queue); the rest of a
    backlog waits in the load balancer and costs the pod no memory."""
    memory_jitter: float = 0.05
    """Per-pod working-set factor U(1 - j, 1 + j), so OOM kills do not hit all pods at once."""
    arrival_noise: Literal["poisson", "none"] = "poisson"
    """Per-interval Poisson sampling of each endpoint's arrivals, or the trace's rate exactly."""
    min_cpu_millicores: float = 10.0
    """Smallest CPU request/limit an action may set."""
    min_memory_mib: float = 16.0
    """Smallest memory request/limit an action may set."""

    def __post_init__(self) -> None:
        checks = {
            "n_nodes": self.n_nodes >= 1,
            "node_cpu_millicores": self.node_cpu_millicores > 0,
            "node_memory_mib": self.node_memory_mib > 0,
            "interval_s": self.interval_s > 0,
            "substeps": self.substeps >= 1,
            "max_utilization": 0 < self.max_utilization < 1,
            "cfs_period_s": self.cfs_period_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ClusterConfig.{name}: invalid value {getattr(self, name)!r}")


@dataclass
class Action:
    """Absolute targets per service; ``None`` or a NaN entry (-1 for replicas) means no change.

    The simulator clamps every target to the service's [min_replicas, max_replicas], to
    [min_cpu_millicores, 2 x node allocatable] and [min_memory_mib, 2 x node allocatable], and
    lowers a request above its limit to the limit. Like Kubernetes, it accepts requests larger
    than a node: a resize then stays Infeasible and a new pod Pending. Vertical targets update
    the Deployment template and are applied to running pods by in-place resize.
    """

    replicas: np.ndarray | None = None
    cpu_request_millicores: np.ndarray | None = None
    cpu_limit_millicores: np.ndarray | None = None
    memory_request_mib: np.ndarray | None = None
    memory_limit_mib: np.ndarray | None = None

    FIELDS = (
        "replicas",
        "cpu_request_millicores",
        "cpu_limit_millicores",
        "memory_request_mib",
        "memory_limit_mib",
    )


@dataclass(frozen=True)
class PodTable:
    """Live pods (not Free) at the end of an interval, one entry per pod, upstream-shaped."""

    uid: np.ndarray  # stable pod id
    service: np.ndarray
    node: np.ndarray  # -1 while Pending
    phase: np.ndarray
    ready: np.ndarray  # bool
    created_s: np.ndarray
    start_s: np.ndarray  # container start (nan while Pending)
    ready_transition_s: np.ndarray  # last Ready condition transition
    deletion_s: np.ndarray  # nan unless Terminating
    restarts: np.ndarray
    cpu_request_millicores: np.ndarray  # allocated
    cpu_limit_millicores: np.ndarray  # actuated
    memory_request_mib: np.ndarray
    memory_limit_mib: np.ndarray
    cpu_usage_millicores: np.ndarray
    memory_working_set_mib: np.ndarray
    resize_status: np.ndarray
    spec_cpu_request_millicores: np.ndarray  # desired (spec.containers[].resources)
    spec_cpu_limit_millicores: np.ndarray
    spec_memory_request_mib: np.ndarray
    spec_memory_limit_mib: np.ndarray

    def __len__(self) -> int:
        return int(self.uid.size)


@dataclass(frozen=True)
class Observation:
    """What Prometheus would hold after one interval, per service (S,) and per endpoint (E,).

    Names follow the metric each value stands for; see docs/metrics.md for the mapping to
    cAdvisor, kube-state-metrics and service-mesh metric names.
    """

    time_s: float
    interval: int
    # per service
    request_rate_rps: np.ndarray
    throughput_rps: np.ndarray
    error_rate: np.ndarray  # failed / arrived
    latency_mean_ms: np.ndarray  # per visit, includes queueing, throttling and backlog
    latency_p50_ms: np.ndarray
    latency_p95_ms: np.ndarray
    latency_p99_ms: np.ndarray
    queueing_delay_ms: np.ndarray  # mean wait in queue (M/M/c part + backlog)
    cpu_usage_millicores: np.ndarray  # sum over Ready pods (not starting ones, as the HPA)
    cpu_throttled_ratio: np.ndarray
    memory_working_set_mib: np.ndarray  # sum over Ready pods
    replicas_desired: np.ndarray
    replicas_ready: np.ndarray
    pods_pending: np.ndarray
    cpu_request_millicores: np.ndarray  # template (Deployment spec)
    cpu_limit_millicores: np.ndarray
    memory_request_mib: np.ndarray
    memory_limit_mib: np.ndarray
    oom_kills: np.ndarray
    backlog_requests: np.ndarray
    # per endpoint
    endpoint_rps: np.ndarray
    endpoint_error_rate: np.ndarray
    endpoint_latency_mean_ms: np.ndarray
    endpoint_latency_p50_ms: np.ndarray
    endpoint_latency_p95_ms: np.ndarray
    endpoint_latency_p99_ms: np.ndarray
    endpoint_slo_ms: np.ndarray
    # cluster
    cpu_allocated_millicores: float  # sum of requests of pods holding node resources
    memory_allocated_mib: float
    node_cpu_requested_millicores: np.ndarray
    node_memory_requested_mib: np.ndarray
    node_cpu_usage_millicores: np.ndarray  # CPU used on each node (at most its allocatable)
    pod_snapshot: Callable[[], PodTable] = field(repr=False, compare=False)

    @cached_property
    def pods(self) -> PodTable:
        """The pod table at the end of this interval (built on first use, before the next step)."""
        return self.pod_snapshot()
