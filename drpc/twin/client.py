"""From Kubernetes API objects to the HPA's inputs (works against the twin or a real cluster).

:func:`pod_info` and :func:`pod_metric` read the fields ``replica_calculator.go`` reads from a
``v1 Pod`` and a ``metrics.k8s.io`` ``PodMetrics``; :func:`hpa_inputs` does both for a pod
list and a metrics list, taking either JSON dicts or the ``kubernetes`` client's model objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from drpc.baselines.hpa import PodInfo, PodMetric
from drpc.twin.quantity import QuantityError, cpu_millicores

__all__ = ["parse_time", "parse_duration_s", "pod_info", "pod_metric", "hpa_inputs", "as_json"]


def as_json(value: Any) -> Any:
    """A ``kubernetes`` client model (``V1Pod``, ``V1PodList``...) as API JSON; dicts unchanged."""
    if isinstance(value, dict | list):
        return value
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(value)


def parse_time(value: Any) -> float | None:
    """RFC 3339 (``2026-01-02T03:04:05Z``) or a ``datetime`` to seconds since the epoch."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def parse_duration_s(value: str) -> float:
    """A Go duration as metrics-server writes it (``15s``, ``1m0s``, ``150ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total, number, i = 0.0, "", 0
    text = value.strip()
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        for unit in ("ms", "us", "µs", "ns", "h", "m", "s"):
            if text.startswith(unit, i):
                total += float(number) * units[unit]
                number, i = "", i + len(unit)
                break
        else:
            raise ValueError(f"not a duration: {value!r}")
    if number:
        raise ValueError(f"not a duration: {value!r}")
    return total


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """The HPA's view of a ``v1 Pod`` (JSON): phase, Ready condition, times, CPU request."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    ready_cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    request: int | None = 0
    for c in spec.get("containers", []):
        cpu = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
        if cpu is None:
            request = None
            break
        try:
            request = (request or 0) + int(math.ceil(cpu_millicores(cpu) - 1e-9))
        except QuantityError:
            request = None
            break
    return PodInfo(
        name=meta["name"],
        phase=status.get("phase", "Pending"),
        ready=ready_cond is not None and ready_cond.get("status") == "True",
        deletion_timestamp_s=parse_time(meta.get("deletionTimestamp")),
        start_time_s=parse_time(status.get("startTime")),
        ready_transition_s=None
        if ready_cond is None
        else parse_time(ready_cond.get("lastTransitionTime")),
        request_millicores=request,
    )


def pod_metric(metrics: Mapping[str, Any]) -> PodMetric:
    """A ``PodMetrics`` (JSON) as the HPA's sample: summed container CPU (millicores, rounded up
    like ``Quantity.MilliValue``), timestamp and window."""
    usage = sum(cpu_millicores(c["usage"]["cpu"]) for c in metrics.get("containers", []))
    return PodMetric(
        usage_millicores=int(math.ceil(usage - 1e-9)),
        timestamp_s=parse_time(metrics["timestamp"]) or 0.0,
        window_s=parse_duration_s(metrics.get("window", "0s")),
    )


def hpa_inputs(pods: Any, metrics: Any) -> tuple[list[PodInfo], dict[str, PodMetric]]:
    """``(PodInfo list, pod name -> PodMetric)`` from a pod list and a ``PodMetricsList``.

    Both may be API JSON, lists of items, or ``kubernetes`` client objects (``V1PodList`` from
    ``CoreV1Api.list_namespaced_pod``; the dict ``CustomObjectsApi`` returns for metrics).
    """
    pods_json = as_json(pods)
    items: Iterable[Mapping[str, Any]] = (
        pods_json["items"] if isinstance(pods_json, dict) else pods_json
    )
    metrics_json = as_json(metrics)
    m_items = metrics_json["items"] if isinstance(metrics_json, dict) else metrics_json
    return [pod_info(p) for p in items], {m["metadata"]["name"]: pod_metric(m) for m in m_items}
