"""Every setting of the controller in one dataclass, loadable from YAML.

``load_config(path)`` reads a YAML mapping whose keys are :class:`ControllerConfig`'s field
names; an unknown key is an error that names it and suggests the closest field, a wrong type is
an error that names the field. Units are in the names (``_s`` seconds, ``_millicores``,
``_mib``). Per-service overrides of the bounds go under ``services_bounds`` (a mapping from
``namespace/name`` or ``name`` to :class:`ServiceBounds` fields).

Example::

    prometheus_url: http://prometheus.monitoring:9090
    policy_url: http://drpc-policy.drpc:8000
    namespaces: [trainticket]
    sync_period_s: 15
    max_replicas: 20
    services_bounds:
      trainticket/ts-ui-dashboard: {min_replicas: 2, max_replicas: 30}
    queries:
      request_rate_rps: sum(rate(my_requests_total{app="$svc",namespace="$ns"}[$window]))
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "ServiceBounds", "ControllerConfig", "load_config", "config_from_dict"]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""A namespace name (RFC 1123 label)."""
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
"""A Deployment name (RFC 1123 subdomain)."""


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


@dataclass(frozen=True)
class ServiceBounds:
    """Bounds one service's knobs must stay within (the global defaults unless overridden)."""

    min_replicas: int = 1
    """Fewest replicas the controller may set (pods)."""
    max_replicas: int = 20
    """Most replicas the controller may set (pods)."""
    min_cpu_limit_millicores: float = 50.0
    """Smallest CPU limit per pod (millicores)."""
    max_cpu_limit_millicores: float = 4000.0
    """Largest CPU limit per pod (millicores)."""
    min_memory_limit_mib: float = 64.0
    """Smallest memory limit per pod (MiB)."""
    max_memory_limit_mib: float = 8192.0
    """Largest memory limit per pod (MiB)."""

    def __post_init__(self) -> None:
        for lo, hi in (
            ("min_replicas", "max_replicas"),
            ("min_cpu_limit_millicores", "max_cpu_limit_millicores"),
            ("min_memory_limit_mib", "max_memory_limit_mib"),
        ):
            if getattr(self, lo) < 0 or getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"{lo} ({getattr(self, lo)}) must be in [0, {hi}]")


@dataclass
class ControllerConfig:
    """All settings of ``drpc controller`` (YAML keys are these field names)."""

    # --- endpoints
    prometheus_url: str = "http://prometheus:9090"
    """Prometheus base URL (its HTTP API is queried)."""
    prometheus_timeout_s: float = 10.0
    """Timeout of one PromQL query (s)."""
    query_concurrency: int = 8
    """PromQL queries in flight at once."""
    policy_url: str = "http://drpc-policy:8000"
    """Base URL of the policy endpoint (``POST {policy_url}/v1/decide``)."""
    token_env: str = "DRPC_POLICY_TOKEN"
    """Environment variable holding the policy endpoint's bearer token (unset: no header)."""
    policy_timeout_s: float = 5.0
    """Timeout of one ``/v1/decide`` call (s)."""
    policy_retries: int = 2
    """Extra attempts after a connection error or 5xx from the policy endpoint."""
    policy_backoff_s: float = 0.5
    """First back-off before retrying the policy endpoint (s; doubles per attempt)."""
    kubeconfig: str | None = None
    """Kubeconfig path (None: in-cluster service account)."""
    k8s_timeout_s: float = 10.0
    """Timeout of one Kubernetes API request (s)."""
    k8s_retries: int = 5
    """Extra attempts of one action after 409 Conflict, 429, 5xx or a connection error."""
    k8s_backoff_s: float = 0.2
    """First back-off before retrying a Kubernetes write (s; doubles per attempt)."""
    k8s_backoff_max_s: float = 5.0
    """Longest back-off between Kubernetes retries (s)."""

    # --- scope
    cluster: str = "default"
    """Cluster id sent in snapshots (logs only)."""
    namespaces: list[str] = field(default_factory=list)
    """Namespace allowlist: the controller reads and writes nothing outside it (required)."""
    services: list[str] = field(default_factory=list)
    """Deployments to control, ``namespace/name`` or ``name`` (empty: all in the allowlist)."""

    # --- timing
    sync_period_s: float = 15.0
    """Time between syncs (s)."""
    interval_s: float = 15.0
    """Control interval sent to the policy (simulated/real seconds per decision)."""
    rate_window: str = "1m"
    """PromQL range of rate() windows (``$window``; about 4 scrape intervals)."""
    max_metric_age_s: float = 60.0
    """A required metric whose newest sample is older than this holds the service (s)."""
    entry_rps_history_len: int = 40
    """Entries of ``entry_rps_history`` kept (earlier syncs' total entry rate)."""

    # --- PromQL (overrides of drpc.controller.metrics.DEFAULT_QUERIES, same keys)
    queries: dict[str, str] = field(default_factory=dict)
    """PromQL per snapshot field with ``$svc``, ``$svc_re``, ``$ns``, ``$window`` placeholders."""

    # --- safety
    min_replicas: int = 1
    """Default fewest replicas per service (pods)."""
    max_replicas: int = 20
    """Default most replicas per service (pods)."""
    min_cpu_limit_millicores: float = 50.0
    """Default smallest CPU limit per pod (millicores)."""
    max_cpu_limit_millicores: float = 4000.0
    """Default largest CPU limit per pod (millicores)."""
    min_memory_limit_mib: float = 64.0
    """Default smallest memory limit per pod (MiB)."""
    max_memory_limit_mib: float = 8192.0
    """Default largest memory limit per pod (MiB)."""
    services_bounds: dict[str, ServiceBounds] = field(default_factory=dict)
    """Per-service bounds, keyed ``namespace/name`` or ``name`` (overrides the defaults)."""
    max_replica_step: int = 4
    """Most replicas added or removed per sync (pods)."""
    max_limit_step_ratio: float = 0.5
    """Most relative change of a CPU or memory limit per sync (0.5: x0.5..x1.5)."""
    min_limit_change_ratio: float = 0.05
    """Relative limit changes below this are ignored (dead band against churn)."""
    cooldown_replicas_s: float = 30.0
    """Time after a replica change before the next one of the same service (s)."""
    cooldown_cpu_s: float = 60.0
    """Time after a CPU change before the next one of the same service (s)."""
    cooldown_memory_s: float = 120.0
    """Time after a memory change before the next one of the same service (s)."""
    scale_down_stabilization_s: float = 600.0
    """HPA-style window: scale down only to the highest recommendation within it (s). 600:
    the teacher's action mapping's window (``ActionMapping.scale_down_window``, 10 min), so
    the live teacher holds pods as it was trained and evaluated to; the HPA's default is 300,
    which lets the pods go at minute 5 of a traffic outage."""
    dry_run: bool = False
    """Decide and log every action, apply nothing."""
    resize_template_fallback: bool = False
    """Patch the Deployment template when the pod resize subresource is unsupported (RBAC!)."""

    # --- fallback
    fallback_enabled: bool = True
    """Use the HPA rules (replicas only) when the policy endpoint is unavailable."""
    fallback_target_cpu_utilization_percent: int = 80
    """HPA fallback's target average CPU utilisation (percent of the request)."""

    # --- observability
    metrics_host: str = "0.0.0.0"
    """Bind address of the controller's own /metrics."""
    metrics_port: int = 9102
    """Port of the controller's own /metrics (-1: off, 0: any free port)."""
    audit_log_path: str | None = None
    """File to append audit JSON lines to (None: the ``drpc.controller.audit`` logger only)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first wrong value."""
        positive = (
            "prometheus_timeout_s", "policy_timeout_s", "k8s_timeout_s", "sync_period_s",
            "interval_s", "max_metric_age_s", "query_concurrency", "max_limit_step_ratio",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "policy_retries", "policy_backoff_s", "k8s_retries", "k8s_backoff_s",
            "k8s_backoff_max_s", "entry_rps_history_len", "max_replica_step",
            "min_limit_change_ratio", "cooldown_replicas_s", "cooldown_cpu_s",
            "cooldown_memory_s", "scale_down_stabilization_s",
        )  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not re.fullmatch(r"[0-9]+(ms|s|m|h)", self.rate_window):
            raise ConfigError(
                f"rate_window must be a PromQL duration like 1m, got {self.rate_window!r}"
            )
        if not 1 <= self.fallback_target_cpu_utilization_percent <= 1000:
            raise ConfigError("fallback_target_cpu_utilization_percent must be in [1, 1000]")
        for ns in self.namespaces:
            if not isinstance(ns, str) or not DNS_LABEL.match(ns):
                raise ConfigError(f"namespaces: {ns!r} is not a namespace name")
        for svc in self.services:
            split_service(svc)
        self.default_bounds()  # checks min <= max
        from drpc.controller.metrics import DEFAULT_QUERIES  # noqa: PLC0415 - avoids a cycle

        unknown = set(self.queries) - set(DEFAULT_QUERIES)
        if unknown:
            raise ConfigError(_unknown("queries", sorted(unknown)[0], DEFAULT_QUERIES))

    def default_bounds(self) -> ServiceBounds:
        """The global bounds as a :class:`ServiceBounds`."""
        return ServiceBounds(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            min_cpu_limit_millicores=self.min_cpu_limit_millicores,
            max_cpu_limit_millicores=self.max_cpu_limit_millicores,
            min_memory_limit_mib=self.min_memory_limit_mib,
            max_memory_limit_mib=self.max_memory_limit_mib,
        )

    def bounds_for(self, namespace: str, name: str) -> ServiceBounds:
        """The bounds of ``namespace/name`` (``namespace/name`` key, then ``name``, then global)."""
        return (
            self.services_bounds.get(f"{namespace}/{name}")
            or self.services_bounds.get(name)
            or self.default_bounds()
        )

    def cooldown_s(self, knob: str) -> float:
        """The cooldown of ``knob`` (``replicas``, ``cpu`` or ``memory``) in seconds."""
        return float(getattr(self, f"cooldown_{knob}_s"))


def split_service(spec: str, default_namespace: str | None = None) -> tuple[str | None, str]:
    """``"ns/name"`` -> ``(ns, name)``; ``"name"`` -> ``(default_namespace, name)``; validated."""
    ns, _, name = spec.rpartition("/")
    if not DNS_SUBDOMAIN.match(name) or (ns and not DNS_LABEL.match(ns)):
        raise ConfigError(f"services: {spec!r} is not 'namespace/deployment' or 'deployment'")
    return (ns or default_namespace), name


def _unknown(where: str, key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r} in {where}{hint}"


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """Check (and gently coerce int -> float) ``value`` against a field's type annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            try:
                return _check_type(where, value, arm)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {annotation}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arm,) = typing.get_args(annotation)
        return [_check_type(f"{where}[{i}]", v, arm) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, arm = typing.get_args(annotation)
        return {str(k): _check_type(f"{where}.{k}", v, arm) for k, v in value.items()}
    if annotation is ServiceBounds:
        if isinstance(value, ServiceBounds):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(ServiceBounds, value, where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ConfigError(
        f"{where}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}"
    )


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown(where, str(key), names))
        kwargs[key] = _check_type(f"{where}.{key}" if where != "config" else key, value, hints[key])
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def config_from_dict(data: dict[str, Any] | None, **overrides: Any) -> ControllerConfig:
    """A :class:`ControllerConfig` from a mapping (YAML keys), then ``overrides`` (CLI flags)."""
    data = dict(data or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _build(ControllerConfig, data, "config")


def load_config(path: str | Path | None, **overrides: Any) -> ControllerConfig:
    """Read a YAML file (None: defaults) into a :class:`ControllerConfig`, then ``overrides``."""
    data: Any = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return config_from_dict(data, **overrides)
