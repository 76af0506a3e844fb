"""Prometheus exposition of the twin: cAdvisor, kube-state-metrics and Istio names.

:class:`Counters` integrates every counter once per simulated interval; :func:`render` writes
the text format 0.0.4 from a :class:`MetricsFrame` (plain arrays, built under the state lock,
rendered outside it).

Time: Prometheus scrapes in wall time, so every *rate-type* counter (CPU seconds, CFS periods,
requests, latency histograms) is integrated over **wall time**: the increment of one interval
is ``rate x interval_s / speed``. ``rate(x[w])`` over a wall-clock window then returns the
simulated per-second rate, and the PromQL of ``docs/metrics.md`` returns the simulator's
Observation values at any ``--speed`` (at ``--speed 1`` the counters are the plain totals).
*Event* counters (``container_oom_events_total``, ``kube_pod_container_status_restarts_total``)
count events. Counters increase in steps, once per simulated interval (``interval_s / speed``
wall seconds); use rate windows of at least four intervals.

Latency histograms: per interval and per service (and per entry endpoint), the simulator gives
p50, p95, p99 and the mean. The twin fits a lognormal ``ln L ~ N(mu, sigma^2)`` by least
squares on the three log-quantiles (``ln q_p = mu + sigma z_p``, ``z = 0, 1.645, 2.326``),
truncated at the request timeout (no request takes longer; the mass beyond goes to the
timeout), and adds ``count x CDF(le)`` to each bucket; ``_sum`` adds ``count x mean`` with the
simulated mean, and ``_count`` adds the request count. Buckets are Istio's defaults
(:data:`ISTIO_BUCKETS_MS`), so ``histogram_quantile`` has Istio's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from drpc.sim.types import Phase

__all__ = [
    "ISTIO_BUCKETS_MS",
    "CONTENT_TYPE",
    "Counters",
    "MetricsFrame",
    "PodSeries",
    "lognormal_fit",
    "bucket_fractions",
    "render",
]

ISTIO_BUCKETS_MS = np.array(
    [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
     600000, 1800000, 3600000],
    dtype=np.float64,
)  # fmt: skip
"""Istio's default ``istio_request_duration_milliseconds`` bucket bounds (ms)."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_Z = np.array([0.0, 1.6448536269514722, 2.3263478740408408])  # standard normal p50, p95, p99
_MIB = float(2**20)
_SERVING = (Phase.READY, Phase.STARTING)


def lognormal_fit(quantiles_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lognormal fit to p50, p95, p99 (rows of a (3, N) array, ms).

    Returns ``(mu, sigma)`` per column, with ``sigma >= 0`` (quantiles <= 0 count as 1 us).
    """
    y = np.log(np.maximum(np.asarray(quantiles_ms, dtype=np.float64), 1e-3))
    zc = _Z - _Z.mean()
    sigma = np.maximum((zc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (zc**2).sum(), 0.0)
    mu = y.mean(axis=0) - sigma * _Z.mean()
    return mu, sigma


def bucket_fractions(
    quantiles_ms: np.ndarray, timeout_ms: float, buckets_ms: np.ndarray = ISTIO_BUCKETS_MS
) -> np.ndarray:
    """Cumulative fraction of requests at or below each bucket bound, (N, B).

    The fitted lognormal (:func:`lognormal_fit`) truncated at ``timeout_ms``.
    """
    mu, sigma = lognormal_fit(quantiles_ms)
    log_le = np.log(buckets_ms)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = (log_le - mu[:, None]) / sigma[:, None]
    step = (log_le >= mu[:, None]).astype(np.float64)
    cdf = np.where(sigma[:, None] > 1e-12, special.ndtr(zs), step)
    cdf = np.where(buckets_ms[None, :] >= timeout_ms, 1.0, cdf)
    return np.maximum.accumulate(np.clip(cdf, 0.0, 1.0), axis=1)


@dataclass(frozen=True)
class PodSeries:
    """Per-pod values of one frame, aligned arrays plus names (sorted by pod key)."""

    keys: np.ndarray  # int64 pod keys (loop epoch << 40 | simulator uid)
    names: list[str]
    uids: list[str]
    services: np.ndarray  # service index
    nodes: list[str]  # "" while unscheduled
    pod_ips: list[str]
    host_ips: list[str]
    phase: np.ndarray
    ready: np.ndarray
    created_wall_s: np.ndarray
    start_wall_s: np.ndarray  # nan while Pending
    deletion_wall_s: np.ndarray  # nan unless Terminating
    restarts: np.ndarray  # total restarts (OOM kills)
    desired_cpu_request_millicores: np.ndarray
    desired_cpu_limit_millicores: np.ndarray
    desired_memory_request_mib: np.ndarray
    desired_memory_limit_mib: np.ndarray
    actual_cpu_limit_millicores: np.ndarray
    actual_memory_limit_mib: np.ndarray
    memory_working_set_mib: np.ndarray
    cpu_usage_millicores: np.ndarray  # last interval
    cpu_seconds: np.ndarray  # counters (wall-time integrated)
    cfs_periods: np.ndarray
    cfs_throttled_periods: np.ndarray
    oom_events: np.ndarray


class Counters:
    """Every counter the twin exposes, integrated once per simulated interval.

    Arrays are replaced, never mutated, so a :class:`MetricsFrame` holding references stays
    consistent while the next interval is integrated.
    """

    def __init__(
        self, n_services: int, n_endpoints: int, buckets_ms: np.ndarray = ISTIO_BUCKETS_MS
    ):
        b = buckets_ms.size
        self.buckets_ms = buckets_ms
        self.pod_keys = np.zeros(0, dtype=np.int64)
        self.pod_cpu_seconds = np.zeros(0)
        self.pod_cfs_periods = np.zeros(0)
        self.pod_cfs_throttled = np.zeros(0)
        self.pod_oom_events = np.zeros(0)
        self.svc_ok = np.zeros(n_services)
        self.svc_err = np.zeros(n_services)
        self.svc_bucket = np.zeros((n_services, b))
        self.svc_sum_ms = np.zeros(n_services)
        self.svc_count = np.zeros(n_services)
        self.ep_ok = np.zeros(n_endpoints)
        self.ep_err = np.zeros(n_endpoints)
        self.ep_bucket = np.zeros((n_endpoints, b))
        self.ep_sum_ms = np.zeros(n_endpoints)
        self.ep_count = np.zeros(n_endpoints)

    def carry_pods(self, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-pod counters for ``keys`` (sorted): carried over by key, 0 for new pods."""
        if self.pod_keys.size == 0:
            zero = np.zeros(keys.size)
            return zero, zero.copy(), zero.copy(), zero.copy()
        pos = np.minimum(np.searchsorted(self.pod_keys, keys), self.pod_keys.size - 1)
        found = self.pod_keys[pos] == keys
        return tuple(
            np.where(found, arr[pos], 0.0)
            for arr in (
                self.pod_cpu_seconds,
                self.pod_cfs_periods,
                self.pod_cfs_throttled,
                self.pod_oom_events,
            )
        )

    def step(
        self,
        *,
        pod_keys: np.ndarray,
        pod_service: np.ndarray,
        pod_phase: np.ndarray,
        pod_cpu_usage_millicores: np.ndarray,
        pod_new_ooms: np.ndarray,
        throttled_ratio: np.ndarray,
        request_rate_rps: np.ndarray,
        error_rate: np.ndarray,
        latency_q_ms: np.ndarray,
        latency_mean_ms: np.ndarray,
        endpoint_rps: np.ndarray,
        endpoint_error_rate: np.ndarray,
        endpoint_q_ms: np.ndarray,
        endpoint_mean_ms: np.ndarray,
        timeout_ms: float,
        interval_s: float,
        cfs_period_s: float,
        speed: float,
    ) -> None:
        """Integrate one interval (pod arrays sorted by key; quantile arrays are (3, N))."""
        wall_s = interval_s / speed
        cpu, periods, throttled, oom = self.carry_pods(pod_keys)
        serving = np.isin(pod_phase, _SERVING)
        ready = pod_phase == Phase.READY
        n_periods = np.where(serving, wall_s / cfs_period_s, 0.0)
        self.pod_keys = pod_keys.copy()
        self.pod_cpu_seconds = (
            cpu + np.where(serving, pod_cpu_usage_millicores, 0.0) / 1000.0 * wall_s
        )
        self.pod_cfs_periods = periods + n_periods
        self.pod_cfs_throttled = throttled + np.where(
            ready, n_periods * throttled_ratio[pod_service], 0.0
        )
        self.pod_oom_events = oom + pod_new_ooms

        count = np.maximum(request_rate_rps, 0.0) * wall_s
        err = np.clip(error_rate, 0.0, 1.0)
        self.svc_err = self.svc_err + count * err
        self.svc_ok = self.svc_ok + count * (1.0 - err)
        frac = bucket_fractions(latency_q_ms, timeout_ms, self.buckets_ms)
        self.svc_bucket = self.svc_bucket + count[:, None] * frac
        self.svc_sum_ms = self.svc_sum_ms + count * latency_mean_ms
        self.svc_count = self.svc_count + count

        ecount = np.maximum(endpoint_rps, 0.0) * wall_s
        eerr = np.clip(endpoint_error_rate, 0.0, 1.0)
        self.ep_err = self.ep_err + ecount * eerr
        self.ep_ok = self.ep_ok + ecount * (1.0 - eerr)
        efrac = bucket_fractions(endpoint_q_ms, timeout_ms, self.buckets_ms)
        self.ep_bucket = self.ep_bucket + ecount[:, None] * efrac
        self.ep_sum_ms = self.ep_sum_ms + ecount * endpoint_mean_ms
        self.ep_count = self.ep_count + ecount


@dataclass(frozen=True)
class MetricsFrame:
    """Everything one scrape renders (references to arrays that are never mutated)."""

    namespace: str
    app: str
    scenario: str
    services: Sequence[str]
    endpoints: Sequence[str]
    endpoint_entry_service: Sequence[str]
    node_names: Sequence[str]
    node_cpu_millicores: float
    node_memory_mib: float
    pods: PodSeries
    spec_replicas: np.ndarray
    status_replicas: np.ndarray
    ready_replicas: np.ndarray
    available_replicas: np.ndarray
    generation: np.ndarray
    counters: Counters
    backlog_requests: np.ndarray
    sim_request_rate_rps: np.ndarray
    sim_error_rate: np.ndarray
    sim_latency_q_ms: np.ndarray  # (3, S)
    sim_latency_mean_ms: np.ndarray
    sim_throttled_ratio: np.ndarray
    sim_cpu_usage_millicores: np.ndarray
    sim_endpoint_rps: np.ndarray
    sim_endpoint_q_ms: np.ndarray  # (3, E)
    sim_endpoint_mean_ms: np.ndarray
    sim_time_s: float
    interval: int
    speed: float
    loop_epoch: int
    trace_finished: bool


# ------------------------------------------------------------------------------ rendering


def _num(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in pairs) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Sequence[tuple[str, str]], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _le(bound: float) -> str:
    return _num(bound)


def _histogram(
    w: _Writer,
    name: str,
    labels: Sequence[tuple[str, str]],
    buckets_ms: np.ndarray,
    cumulative: np.ndarray,
    sum_: float,
    count: float,
) -> None:
    for bound, value in zip(buckets_ms, cumulative, strict=True):
        w.sample(f"{name}_bucket", [*labels, ("le", _le(bound))], value)
    w.sample(f"{name}_bucket", [*labels, ("le", "+Inf")], count)
    w.sample(f"{name}_sum", labels, sum_)
    w.sample(f"{name}_count", labels, count)


_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def render(f: MetricsFrame) -> str:
    """The whole ``/metrics`` page in the Prometheus text format 0.0.4."""
    w = _Writer()
    ns = f.namespace
    p = f.pods
    c = f.counters
    svc_names = [f.services[int(s)] for s in p.services]
    base = [
        [("namespace", ns), ("pod", p.names[i]), ("container", svc_names[i]), ("node", p.nodes[i])]
        for i in range(len(p.names))
    ]
    running = [i for i in range(len(p.names)) if p.phase[i] in _SERVING]
    present = [i for i in range(len(p.names)) if p.nodes[i]]

    # ---- cAdvisor
    w.family(
        "container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."
    )
    for i in present:
        w.sample(
            "container_cpu_usage_seconds_total", [*base[i], ("cpu", "total")], p.cpu_seconds[i]
        )
    w.family(
        "container_cpu_cfs_periods_total",
        "counter",
        "Number of elapsed enforcement period intervals.",
    )
    for i in present:
        w.sample("container_cpu_cfs_periods_total", base[i], p.cfs_periods[i])
    w.family(
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals.",
    )
    for i in present:
        w.sample("container_cpu_cfs_throttled_periods_total", base[i], p.cfs_throttled_periods[i])
    w.family("container_memory_working_set_bytes", "gauge", "Current working set in bytes.")
    for i in running:
        w.sample("container_memory_working_set_bytes", base[i], p.memory_working_set_mib[i] * _MIB)
    w.family("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container.")
    for i in present:
        w.sample("container_spec_memory_limit_bytes", base[i], p.actual_memory_limit_mib[i] * _MIB)
    w.family("container_spec_cpu_quota", "gauge", "CPU quota of the container (us per period).")
    for i in present:
        w.sample("container_spec_cpu_quota", base[i], p.actual_cpu_limit_millicores[i] * 100.0)
    w.family("container_spec_cpu_period", "gauge", "CPU period of the container (us).")
    for i in present:
        w.sample("container_spec_cpu_period", base[i], 100000)
    w.family(
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
    )
    for i in present:
        w.sample("container_oom_events_total", base[i], p.oom_events[i])

    # ---- kube-state-metrics: pods
    pod_id = [
        [("namespace", ns), ("pod", p.names[i]), ("uid", p.uids[i])] for i in range(len(p.names))
    ]
    w.family("kube_pod_info", "gauge", "Information about pod.")
    for i in range(len(p.names)):
        s = svc_names[i]
        w.sample(
            "kube_pod_info",
            [
                *pod_id[i],
                ("host_ip", p.host_ips[i]),
                ("pod_ip", p.pod_ips[i]),
                ("node", p.nodes[i]),
                ("created_by_kind", "ReplicaSet"),
                ("created_by_name", p.names[i].rsplit("-", 1)[0]),
                ("priority_class", ""),
                ("host_network", "false"),
                ("app", s),
            ],
            1,
        )
    w.family("kube_pod_status_phase", "gauge", "The pods current phase.")
    for i in range(len(p.names)):
        phase = "Pending" if p.phase[i] == Phase.PENDING else "Running"
        for name in _PHASES:
            w.sample(
                "kube_pod_status_phase", [*pod_id[i], ("phase", name)], 1 if name == phase else 0
            )
    w.family(
        "kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests."
    )
    for i in range(len(p.names)):
        r = bool(p.ready[i])
        for cond, v in (("true", r), ("false", not r), ("unknown", False)):
            w.sample("kube_pod_status_ready", [*pod_id[i], ("condition", cond)], int(v))
    w.family(
        "kube_pod_status_scheduled",
        "gauge",
        "Describes the status of the scheduling process for the pod.",
    )
    for i in range(len(p.names)):
        sched = bool(p.nodes[i])
        for cond, v in (("true", sched), ("false", not sched), ("unknown", False)):
            w.sample("kube_pod_status_scheduled", [*pod_id[i], ("condition", cond)], int(v))
    w.family("kube_pod_created", "gauge", "Unix creation timestamp")
    for i in range(len(p.names)):
        w.sample("kube_pod_created", pod_id[i], math.floor(p.created_wall_s[i]))
    w.family("kube_pod_start_time", "gauge", "Start time in unix timestamp for a pod.")
    for i in present:
        start = p.start_wall_s[i] if np.isfinite(p.start_wall_s[i]) else p.created_wall_s[i]
        w.sample("kube_pod_start_time", pod_id[i], math.floor(start))
    w.family("kube_pod_deletion_timestamp", "gauge", "Unix deletion timestamp")
    for i in range(len(p.names)):
        if np.isfinite(p.deletion_wall_s[i]):
            w.sample("kube_pod_deletion_timestamp", pod_id[i], math.floor(p.deletion_wall_s[i]))
    for metric, arrays, help_ in (
        (
            "kube_pod_container_resource_requests",
            (p.desired_cpu_request_millicores, p.desired_memory_request_mib),
            "The number of requested request resource by a container.",
        ),
        (
            "kube_pod_container_resource_limits",
            (p.desired_cpu_limit_millicores, p.desired_memory_limit_mib),
            "The number of requested limit resource by a container.",
        ),
    ):
        w.family(metric, "gauge", help_)
        for i in range(len(p.names)):
            lab = [*pod_id[i], ("container", svc_names[i]), ("node", p.nodes[i])]
            w.sample(metric, [*lab, ("resource", "cpu"), ("unit", "core")], arrays[0][i] / 1000.0)
            w.sample(metric, [*lab, ("resource", "memory"), ("unit", "byte")], arrays[1][i] * _MIB)
    cont_id = [[*pod_id[i], ("container", svc_names[i])] for i in range(len(p.names))]
    w.family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "The number of container restarts per container.",
    )
    for i in present:
        w.sample("kube_pod_container_status_restarts_total", cont_id[i], p.restarts[i])
    w.family(
        "kube_pod_container_status_ready",
        "gauge",
        "Describes whether the containers readiness check succeeded.",
    )
    for i in present:
        w.sample("kube_pod_container_status_ready", cont_id[i], int(bool(p.ready[i])))
    w.family(
        "kube_pod_container_status_running",
        "gauge",
        "Describes whether the container is currently in running state.",
    )
    for i in present:
        w.sample("kube_pod_container_status_running", cont_id[i], int(p.phase[i] != Phase.CRASHED))
    w.family(
        "kube_pod_container_status_waiting_reason",
        "gauge",
        "Describes the reason the container is currently in waiting state.",
    )
    for i in present:
        if p.phase[i] == Phase.CRASHED:
            w.sample(
                "kube_pod_container_status_waiting_reason",
                [*cont_id[i], ("reason", "CrashLoopBackOff")],
                1,
            )
    w.family(
        "kube_pod_container_status_last_terminated_reason",
        "gauge",
        "Describes the last reason the container was in terminated state.",
    )
    for i in present:
        if p.restarts[i] > 0:
            w.sample(
                "kube_pod_container_status_last_terminated_reason",
                [*cont_id[i], ("reason", "OOMKilled")],
                1,
            )

    # ---- kube-state-metrics: deployments
    for metric, values, help_ in (
        ("kube_deployment_spec_replicas", f.spec_replicas, "Number of desired pods for a deployment."),
        ("kube_deployment_status_replicas", f.status_replicas, "The number of replicas per deployment."),
        ("kube_deployment_status_replicas_ready", f.ready_replicas, "The number of ready replicas per deployment."),
        ("kube_deployment_status_replicas_available", f.available_replicas, "The number of available replicas per deployment."),
        ("kube_deployment_status_replicas_updated", f.status_replicas, "The number of updated replicas per deployment."),
        ("kube_deployment_status_replicas_unavailable", np.maximum(f.status_replicas - f.available_replicas, 0), "The number of unavailable replicas per deployment."),
        ("kube_deployment_metadata_generation", f.generation, "Sequence number representing a specific generation of the desired state."),
        ("kube_deployment_status_observed_generation", f.generation, "The generation observed by the deployment controller."),
    ):  # fmt: skip
        w.family(metric, "gauge", help_)
        for s, name in enumerate(f.services):
            w.sample(metric, [("namespace", ns), ("deployment", name)], values[s])

    # ---- kube-state-metrics: nodes
    for metric, help_ in (
        ("kube_node_status_allocatable", "The allocatable for different resources of a node."),
        ("kube_node_status_capacity", "The capacity for different resources of a node."),
    ):
        w.family(metric, "gauge", help_)
        for node in f.node_names:
            w.sample(
                metric,
                [("node", node), ("resource", "cpu"), ("unit", "core")],
                f.node_cpu_millicores / 1000.0,
            )
            w.sample(
                metric,
                [("node", node), ("resource", "memory"), ("unit", "byte")],
                f.node_memory_mib * _MIB,
            )
            w.sample(metric, [("node", node), ("resource", "pods"), ("unit", "integer")], 250)
    w.family("kube_node_status_condition", "gauge", "The condition of a cluster node.")
    for node in f.node_names:
        for status in ("true", "false", "unknown"):
            w.sample(
                "kube_node_status_condition",
                [("node", node), ("condition", "Ready"), ("status", status)],
                int(status == "true"),
            )

    # ---- Istio (service mesh)
    w.family(
        "istio_requests_total",
        "counter",
        "Total requests (wall-time integrated, see docs/twin.md).",
    )
    for s, name in enumerate(f.services):
        dest = _dest_labels(ns, name)
        for code, value in (("200", c.svc_ok[s]), ("503", c.svc_err[s])):
            w.sample(
                "istio_requests_total",
                [("reporter", "destination"), ("source_workload", "unknown"), ("source_workload_namespace", "unknown"),
                 *dest, ("request_protocol", "http"), ("response_code", code), ("response_flags", "-" if code == "200" else "URX")],
                value,
            )  # fmt: skip
    for e, path in enumerate(f.endpoints):
        dest = _dest_labels(ns, f.endpoint_entry_service[e])
        for code, value in (("200", c.ep_ok[e]), ("503", c.ep_err[e])):
            w.sample(
                "istio_requests_total",
                [("reporter", "source"), ("source_workload", "istio-ingressgateway"), ("source_workload_namespace", "istio-system"),
                 *dest, ("request_path", path), ("request_protocol", "http"), ("response_code", code),
                 ("response_flags", "-" if code == "200" else "URX")],
                value,
            )  # fmt: skip
    hist = "istio_request_duration_milliseconds"
    w.family(
        hist,
        "histogram",
        "Request duration in milliseconds (lognormal fit per interval, see docs/twin.md).",
    )
    for s, name in enumerate(f.services):
        labels = [
            ("reporter", "destination"),
            ("source_workload", "unknown"),
            *_dest_labels(ns, name),
        ]
        _histogram(w, hist, labels, c.buckets_ms, c.svc_bucket[s], c.svc_sum_ms[s], c.svc_count[s])
    for e, path in enumerate(f.endpoints):
        labels = [
            ("reporter", "source"),
            ("source_workload", "istio-ingressgateway"),
            ("source_workload_namespace", "istio-system"),
            *_dest_labels(ns, f.endpoint_entry_service[e]),
            ("request_path", path),
        ]
        _histogram(w, hist, labels, c.buckets_ms, c.ep_bucket[e], c.ep_sum_ms[e], c.ep_count[e])
    w.family(
        "envoy_cluster_upstream_rq_pending_active",
        "gauge",
        "Requests queued beyond the pods' concurrency (simulated backlog).",
    )
    for s, name in enumerate(f.services):
        w.sample(
            "envoy_cluster_upstream_rq_pending_active",
            [("cluster_name", f"outbound|80||{name}.{ns}.svc.cluster.local"), ("namespace", ns), ("destination_workload", name)],
            f.backlog_requests[s],
        )  # fmt: skip

    # ---- the simulator's own values (no real-cluster equivalent; for checking approximations)
    _sim_gauges(w, f)
    return w.text()


def _dest_labels(ns: str, workload: str) -> list[tuple[str, str]]:
    return [
        ("destination_workload", workload),
        ("destination_workload_namespace", ns),
        ("destination_service_name", workload),
        ("destination_service_namespace", ns),
        ("destination_app", workload),
    ]


def _sim_gauges(w: _Writer, f: MetricsFrame) -> None:
    w.family("drpc_twin_info", "gauge", "The twin's app, scenario and namespace.")
    w.sample(
        "drpc_twin_info", [("app", f.app), ("scenario", f.scenario), ("namespace", f.namespace)], 1
    )
    for name, value, help_ in (
        ("drpc_twin_speed", f.speed, "Simulated seconds per wall second."),
        ("drpc_twin_simulated_time_seconds", f.sim_time_s, "Simulated time since the scenario start (s)."),
        ("drpc_twin_interval", f.interval, "Control intervals simulated since the scenario start."),
        ("drpc_twin_loop_epoch", f.loop_epoch, "How many times the scenario restarted (--loop)."),
        ("drpc_twin_trace_finished", int(f.trace_finished), "1 when the trace ended and the simulation holds its last state."),
    ):  # fmt: skip
        w.family(name, "gauge", help_)
        w.sample(name, [], value)
    _latency_gauges(
        w,
        "drpc_sim_latency_milliseconds",
        "Simulated per-visit latency of the last interval (ms).",
        "service",
        f.services,
        f.sim_latency_q_ms,
        f.sim_latency_mean_ms,
    )
    _latency_gauges(
        w,
        "drpc_sim_endpoint_latency_milliseconds",
        "Simulated end-to-end latency of the last interval (ms).",
        "endpoint",
        f.endpoints,
        f.sim_endpoint_q_ms,
        f.sim_endpoint_mean_ms,
    )
    for metric, values, help_ in (
        ("drpc_sim_request_rate_rps", f.sim_request_rate_rps, "Simulated arrivals of the last interval (req/s)."),
        ("drpc_sim_error_rate", f.sim_error_rate, "Simulated failed / arrived of the last interval."),
        ("drpc_sim_cpu_usage_millicores", f.sim_cpu_usage_millicores, "Simulated CPU usage of the last interval (millicores)."),
        ("drpc_sim_cpu_throttled_ratio", f.sim_throttled_ratio, "Simulated throttled-period ratio of the last interval."),
    ):  # fmt: skip
        w.family(metric, "gauge", help_)
        for s, name in enumerate(f.services):
            w.sample(metric, [("service", name)], values[s])
    w.family(
        "drpc_sim_endpoint_request_rate_rps",
        "gauge",
        "Simulated entry requests of the last interval (req/s).",
    )
    for e, name in enumerate(f.endpoints):
        w.sample("drpc_sim_endpoint_request_rate_rps", [("endpoint", name)], f.sim_endpoint_rps[e])


def _latency_gauges(w, metric: str, help_: str, label: str, names, q_ms, mean_ms) -> None:
    """One gauge family: p50/p95/p99 (rows of ``q_ms``) and the mean, per ``label`` value."""
    w.family(metric, "gauge", help_)
    for i, name in enumerate(names):
        for row, q in enumerate(("0.5", "0.95", "0.99")):
            w.sample(metric, [(label, name), ("quantile", q)], q_ms[row, i])
        w.sample(metric, [(label, name), ("quantile", "mean")], mean_ms[i])
