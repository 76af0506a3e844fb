"""Prometheus in: one PromQL query per snapshot field and service, staleness per field.

The default queries are those of ``docs/metrics.md`` (cAdvisor, kube-state-metrics, Istio,
Envoy names); each may be replaced in the config (``queries:``). Placeholders, substituted with
:class:`string.Template` from *validated and escaped* values only:

* ``$svc`` -- the Deployment name, escaped for a PromQL double-quoted string;
* ``$svc_re`` -- the same, RE2-escaped first (for ``=~`` matchers);
* ``$ns`` -- the namespace, escaped like ``$svc``;
* ``$window`` -- ``rate_window`` (validated as a PromQL duration).

Names are checked against the RFC 1123 rules before they reach a query, so nothing but a label
value ever comes from outside the config.

**Staleness.** ``rate()`` and friends are evaluated at query time, so their result's timestamp
says nothing about the data. Each field therefore belongs to a *source* (istio, cadvisor,
deployment, pod, envoy) whose ``fresh_<source>`` query returns the newest raw sample's
timestamp (``max(timestamp(selector))``). A required field whose source is older than
``max_metric_age_s`` (or absent, or whose value is missing) holds the service: no action, and
the reason is reported. When Prometheus cannot be reached every service is held.
"""

from __future__ import annotations

import logging
import math
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from drpc.controller.config import DNS_LABEL, DNS_SUBDOMAIN, ControllerConfig
from drpc.serve.schema import EndpointMetrics, ServiceMetrics, Snapshot

__all__ = [
    "DEFAULT_QUERIES",
    "SERVICE_FIELDS",
    "REQUIRED_FIELDS",
    "FIELD_SOURCE",
    "ENDPOINT_FIELDS",
    "MetricsUnavailableError",
    "escape_label_value",
    "escape_regex",
    "render_query",
    "ServiceReading",
    "SnapshotResult",
    "PrometheusSource",
]

log = logging.getLogger(__name__)

_DST = 'reporter="destination",destination_workload="$svc",destination_workload_namespace="$ns"'
_POD = 'namespace="$ns",pod=~"$svc_re-[a-z0-9]+-[a-z0-9]+"'
_CTR = _POD + ',container!="",container!="POD"'
# Ready pods only (CPU and working set), as the HPA counts them: a starting pod's warm-up burn
# says nothing about the load per serving pod, and counting it feeds a scale-out on itself.
_READY = f'and on(namespace, pod) (kube_pod_status_ready{{{_POD},condition="true"}} == 1)'
_INGRESS = 'reporter="source",source_workload="istio-ingressgateway"'

DEFAULT_QUERIES: dict[str, str] = {
    # --- per service (ServiceMetrics fields, plus the requests the HPA fallback needs)
    "request_rate_rps": f"sum(rate(istio_requests_total{{{_DST}}}[$window]))",
    "throughput_rps": f'sum(rate(istio_requests_total{{{_DST},response_code!~"5.."}}[$window]))',
    "error_rate": (
        f'(sum(rate(istio_requests_total{{{_DST},response_code=~"5.."}}[$window])) or vector(0))'
        f" / sum(rate(istio_requests_total{{{_DST}}}[$window]))"
    ),
    "latency_p99_ms": (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{_DST}}}[$window])))"
    ),
    "cpu_usage_millicores": (
        f"1000 * (sum(rate(container_cpu_usage_seconds_total{{{_CTR}}}[$window]) {_READY})"
        " or vector(0))"
    ),
    "cpu_throttled_ratio": (
        f"sum(rate(container_cpu_cfs_throttled_periods_total{{{_CTR}}}[$window]))"
        f" / sum(rate(container_cpu_cfs_periods_total{{{_CTR}}}[$window]))"
    ),
    "memory_working_set_mib": (
        f"(sum(container_memory_working_set_bytes{{{_CTR}}} {_READY}) or vector(0)) / 2^20"
    ),
    "replicas_desired": 'max(kube_deployment_spec_replicas{namespace="$ns",deployment="$svc"})',
    "replicas_ready": 'max(kube_deployment_status_replicas_ready{namespace="$ns",deployment="$svc"})',
    "pods_pending": f'sum(kube_pod_status_phase{{{_POD},phase="Pending"}})',
    "cpu_limit_millicores": f'1000 * max(kube_pod_container_resource_limits{{{_POD},resource="cpu"}})',
    "memory_limit_mib": f'max(kube_pod_container_resource_limits{{{_POD},resource="memory"}}) / 2^20',
    "cpu_request_millicores": (
        f'1000 * max(kube_pod_container_resource_requests{{{_POD},resource="cpu"}})'
    ),
    "memory_request_mib": f'max(kube_pod_container_resource_requests{{{_POD},resource="memory"}}) / 2^20',
    "backlog_requests": (
        'sum(envoy_cluster_upstream_rq_pending_active{namespace="$ns",destination_workload="$svc"})'
    ),
    # --- freshness per source: the newest raw sample's timestamp (Unix seconds)
    "fresh_istio": f"max(timestamp(istio_requests_total{{{_DST}}}))",
    "fresh_cadvisor": f"max(timestamp(container_cpu_usage_seconds_total{{{_CTR}}}))",
    "fresh_deployment": 'max(timestamp(kube_deployment_spec_replicas{namespace="$ns",deployment="$svc"}))',
    "fresh_pod": f"max(timestamp(kube_pod_container_resource_limits{{{_POD}}}))",
    "fresh_envoy": (
        'max(timestamp(envoy_cluster_upstream_rq_pending_active{namespace="$ns",destination_workload="$svc"}))'
    ),
    # --- entry endpoints (one query for all; the result is keyed by request_path)
    "endpoint_rps": f"sum by (request_path) (rate(istio_requests_total{{{_INGRESS}}}[$window]))",
    "endpoint_error_rate": (
        f'sum by (request_path) (rate(istio_requests_total{{{_INGRESS},response_code=~"5.."}}[$window]))'
        f" / sum by (request_path) (rate(istio_requests_total{{{_INGRESS}}}[$window]))"
    ),
    "endpoint_latency_p99_ms": (
        "histogram_quantile(0.99, sum by (le, request_path) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{_INGRESS}}}[$window])))"
    ),
}
"""PromQL per field (docs/metrics.md); keys ``fresh_*`` give a source's newest sample time."""

FIELD_SOURCE: dict[str, str] = {
    "request_rate_rps": "istio",
    "throughput_rps": "istio",
    "error_rate": "istio",
    "latency_p99_ms": "istio",
    "cpu_usage_millicores": "cadvisor",
    "cpu_throttled_ratio": "cadvisor",
    "memory_working_set_mib": "cadvisor",
    "replicas_desired": "deployment",
    "replicas_ready": "deployment",
    "pods_pending": "pod",
    "cpu_limit_millicores": "pod",
    "memory_limit_mib": "pod",
    "cpu_request_millicores": "pod",
    "memory_request_mib": "pod",
    "backlog_requests": "envoy",
}
"""Which ``fresh_<source>`` query dates each per-service field."""

SERVICE_FIELDS: tuple[str, ...] = tuple(FIELD_SOURCE)
"""Per-service fields, in query order."""

REQUIRED_FIELDS: frozenset[str] = frozenset(
    {
        "request_rate_rps",
        "cpu_usage_millicores",
        "memory_working_set_mib",
        "replicas_ready",
        "replicas_desired",
        "cpu_limit_millicores",
        "memory_limit_mib",
        "cpu_request_millicores",
        "memory_request_mib",
    }
)
"""Fields without which a service is held (missing or stale); the others default (0)."""

ENDPOINT_FIELDS: tuple[str, ...] = (
    "endpoint_rps",
    "endpoint_error_rate",
    "endpoint_latency_p99_ms",
)

_RATIO_FIELDS = {"error_rate", "cpu_throttled_ratio"}
_INT_FIELDS = {"replicas_ready", "replicas_desired", "pods_pending"}
_EXTRA_FIELDS = {"cpu_request_millicores", "memory_request_mib"}  # not in ServiceMetrics


class MetricsUnavailableError(RuntimeError):
    """Prometheus could not be queried (connection error, HTTP error, bad response)."""


def escape_label_value(value: str) -> str:
    """``value`` escaped for a PromQL double-quoted string (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_regex(value: str) -> str:
    """``value`` as an RE2 literal: every character but ``[A-Za-z0-9_]`` backslash-escaped."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "\\" + c for c in value)


def render_query(template: str, *, namespace: str, service: str | None, window: str) -> str:
    """Substitute the placeholders of ``template`` with checked, escaped values.

    Raises:
        ValueError: ``namespace`` or ``service`` is not an RFC 1123 name, or the template uses
            an unknown placeholder.
    """
    if not DNS_LABEL.match(namespace):
        raise ValueError(f"not a namespace name: {namespace!r}")
    values = {"ns": escape_label_value(namespace), "window": window}
    if service is not None:
        if not DNS_SUBDOMAIN.match(service):
            raise ValueError(f"not a Deployment name: {service!r}")
        values["svc"] = escape_label_value(service)
        values["svc_re"] = escape_label_value(escape_regex(service))
    try:
        return string.Template(template).substitute(values)
    except KeyError as err:
        raise ValueError(f"unknown placeholder ${err.args[0]} in query {template!r}") from None


@dataclass
class ServiceReading:
    """One service's values this sync, their sample times, and why it is held (if it is)."""

    namespace: str
    name: str
    values: dict[str, float | None] = field(default_factory=dict)
    """Field -> value (None: no result, or NaN)."""
    newest_sample_s: dict[str, float | None] = field(default_factory=dict)
    """Field -> Unix time of the newest raw sample of its source (None: none)."""
    metrics: ServiceMetrics | None = None
    """The snapshot entry (None when held)."""
    hold_reason: str | None = None
    """Why no action may be taken for this service (None: fresh and complete)."""

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def cpu_request_millicores(self) -> float | None:
        """CPU request per pod (millicores), for the HPA fallback."""
        return self.values.get("cpu_request_millicores")

    @property
    def memory_request_mib(self) -> float | None:
        """Memory request per pod (MiB)."""
        return self.values.get("memory_request_mib")

    def age_s(self, now_s: float) -> dict[str, float | None]:
        """Field -> age of its newest sample at ``now_s`` (s; None: no sample)."""
        return {
            f: (None if t is None else max(0.0, now_s - t)) for f, t in self.newest_sample_s.items()
        }


@dataclass
class SnapshotResult:
    """What one sync read from Prometheus."""

    time_s: float
    """Evaluation time of every query (Unix s)."""
    readings: dict[str, ServiceReading]
    """``namespace/name`` -> reading (held ones included)."""
    snapshot: Snapshot | None
    """The request for ``/v1/decide`` with the fresh services (None: nothing fresh)."""
    hold_reason: str | None = None
    """Why the whole sync holds (Prometheus unreachable, every service held), else None."""

    @property
    def held(self) -> dict[str, str]:
        """``namespace/name`` -> hold reason, for every held service."""
        return {k: r.hold_reason for k, r in self.readings.items() if r.hold_reason}


QueryFn = Callable[[str, float], list[dict[str, Any]]]
"""``(promql, eval_time_s) -> result`` (the ``data.result`` list of an instant query)."""


class PrometheusSource:
    """Builds a :class:`Snapshot` per sync from Prometheus and keeps ``entry_rps_history``.

    Args:
        config: the controller config (URL, timeout, queries, window, ages).
        query: override of the query function (tests); default: ``prometheus-api-client``.
    """

    def __init__(self, config: ControllerConfig, query: QueryFn | None = None):
        self.config = config
        self.queries = {**DEFAULT_QUERIES, **config.queries}
        self.history: deque[float] = deque(maxlen=max(1, config.entry_rps_history_len))
        self._query = query or self._prometheus_query()
        self._pool = ThreadPoolExecutor(config.query_concurrency, thread_name_prefix="promql")
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the query threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _prometheus_query(self) -> QueryFn:
        import requests  # noqa: PLC0415
        from prometheus_api_client import PrometheusConnect  # noqa: PLC0415
        from urllib3.util.retry import Retry  # noqa: PLC0415

        session = requests.Session()
        session.trust_env = False  # no proxy between the controller and Prometheus
        prom = PrometheusConnect(
            url=self.config.prometheus_url,
            disable_ssl=False,
            session=session,
            timeout=self.config.prometheus_timeout_s,
            retry=Retry(total=0),  # no retries inside a sync: the next sync is the retry
        )

        def query(promql: str, at_s: float) -> list[dict[str, Any]]:
            try:
                return prom.custom_query(promql, params={"time": f"{at_s:.3f}"})
            except Exception as err:  # requests' and the client's errors alike
                raise MetricsUnavailableError(f"{type(err).__name__}: {err}") from err

        return query

    # ------------------------------------------------------------------ reading

    def _scalar(self, result: list[dict[str, Any]]) -> float | None:
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def read(
        self, services: Iterable[tuple[str, str]], now_s: float | None = None
    ) -> SnapshotResult:
        """Query every field of every ``(namespace, name)`` at ``now_s`` (default: now).

        Never raises for Prometheus errors: they become hold reasons.
        """
        now_s = time.time() if now_s is None else now_s
        services = list(services)
        sources = sorted(set(FIELD_SOURCE.values()))
        jobs: dict[tuple[str, str, str], Any] = {}
        for ns, name in services:
            for key in (*SERVICE_FIELDS, *(f"fresh_{s}" for s in sources)):
                promql = render_query(
                    self.queries[key], namespace=ns, service=name, window=self.config.rate_window
                )
                jobs[(ns, name, key)] = self._pool.submit(self._query, promql, now_s)
        endpoint_ns = services[0][0] if services else "default"
        for key in ENDPOINT_FIELDS:
            promql = render_query(
                self.queries[key],
                namespace=endpoint_ns,
                service=None,
                window=self.config.rate_window,
            )
            jobs[("", "", key)] = self._pool.submit(self._query, promql, now_s)

        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        error: str | None = None
        for job_key, fut in jobs.items():
            try:
                results[job_key] = fut.result()
            except MetricsUnavailableError as err:
                error = error or str(err)
            except Exception as err:  # noqa: BLE001 - a malformed answer holds, not crashes
                error = error or f"{type(err).__name__}: {err}"
        if error is not None:
            reason = f"prometheus unavailable: {error}"
            readings = {
                f"{ns}/{n}": ServiceReading(ns, n, hold_reason=reason) for ns, n in services
            }
            return SnapshotResult(now_s, readings, None, hold_reason=reason)

        readings: dict[str, ServiceReading] = {}
        for ns, name in services:
            reading = ServiceReading(ns, name)
            fresh = {s: self._scalar(results[(ns, name, f"fresh_{s}")]) for s in sources}
            for f in SERVICE_FIELDS:
                reading.values[f] = self._scalar(results[(ns, name, f)])
                reading.newest_sample_s[f] = fresh[FIELD_SOURCE[f]]
            reading.hold_reason = self._hold_reason(reading, now_s)
            if reading.hold_reason is None:
                try:
                    reading.metrics = self._service_metrics(reading)
                except ValidationError as err:
                    first = err.errors()[0]
                    reading.hold_reason = (
                        f"invalid metrics: {'.'.join(map(str, first['loc']))}: {first['msg']}"
                    )
            readings[reading.key] = reading

        endpoints = self._endpoints(results)
        seen: set[str] = set()
        for r in readings.values():  # the snapshot names services without their namespace
            if r.metrics is not None and r.name in seen:
                r.metrics, r.hold_reason = None, f"invalid: {r.name!r} is in two namespaces"
            seen.add(r.name)
        fresh_services = [r.metrics for r in readings.values() if r.metrics is not None]
        if not fresh_services:
            return SnapshotResult(
                now_s, readings, None, hold_reason="no service has fresh, complete metrics"
            )
        with self._lock:
            history = list(self.history)
            if endpoints:
                self.history.append(sum(e.rps for e in endpoints))
        snapshot = Snapshot(
            cluster=self.config.cluster,
            time_s=now_s,
            interval_s=self.config.interval_s,
            entry_rps_history=history,
            services=fresh_services,
            endpoints=endpoints,
        )
        return SnapshotResult(now_s, readings, snapshot)

    def _hold_reason(self, reading: ServiceReading, now_s: float) -> str | None:
        """The first missing or stale required field, as a sentence; None when all are fine."""
        max_age = self.config.max_metric_age_s
        for f in SERVICE_FIELDS:
            if f not in REQUIRED_FIELDS:
                continue
            newest = reading.newest_sample_s[f]
            if newest is None:
                return f"missing metric: {f} (no {FIELD_SOURCE[f]} samples)"
            age = now_s - newest
            if age > max_age:
                return f"stale metric: {f} is {age:.0f} s old (> max_metric_age_s {max_age:g})"
            if reading.values[f] is None:
                return f"missing metric: {f} (query returned nothing)"
        return None

    def _service_metrics(self, reading: ServiceReading) -> ServiceMetrics:
        kwargs: dict[str, Any] = {"name": reading.name}
        for f, v in reading.values.items():
            if f in _EXTRA_FIELDS:
                continue
            if v is None:
                continue  # optional: the schema's default
            if f in _RATIO_FIELDS:
                v = min(1.0, max(0.0, v))
            elif f in _INT_FIELDS:
                v = int(round(v))
            else:
                v = max(0.0, v)
            kwargs[f] = v
        if "throughput_rps" not in kwargs:
            kwargs["throughput_rps"] = None
        return ServiceMetrics(**kwargs)

    def _endpoints(
        self, results: dict[tuple[str, str, str], list[dict[str, Any]]]
    ) -> list[EndpointMetrics]:
        by_path: dict[str, dict[str, float]] = {}
        for key in ENDPOINT_FIELDS:
            for row in results.get(("", "", key), []):
                path = row.get("metric", {}).get("request_path")
                value = float(row["value"][1])
                if path and math.isfinite(value):
                    by_path.setdefault(path, {})[key] = value
        out = []
        for path, vals in sorted(by_path.items()):
            if "endpoint_rps" not in vals:
                continue
            out.append(
                EndpointMetrics(
                    name=path[:1024],
                    rps=max(0.0, vals["endpoint_rps"]),
                    error_rate=min(1.0, max(0.0, vals.get("endpoint_error_rate", 0.0))),
                    latency_p99_ms=max(0.0, vals.get("endpoint_latency_p99_ms", 0.0)),
                )
            )
        return out
