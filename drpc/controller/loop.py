"""The control loop: Prometheus -> policy (or HPA fallback) -> safety -> Kubernetes, every
``sync_period_s``, with its own Prometheus metrics.

:meth:`Controller.sync_once` is one pass and returns a :class:`SyncReport`;
:meth:`Controller.run` repeats it until a ``threading.Event`` is set. Own metrics (served by
:meth:`Controller.serve_metrics` on ``metrics_port``; all prefixed ``drpc_controller_``):

* ``syncs_total``, ``sync_duration_seconds`` (histogram);
* ``decisions_total{source}`` (policy/fallback, per service and sync);
* ``actions_total{knob,result}``; ``k8s_retries_total``;
* ``errors_total{kind}`` (prometheus, policy, kubernetes);
* ``holds_total{kind}`` (prometheus_unavailable, stale, missing, invalid, no_fresh_service) and
  ``held_services`` (gauge, this sync); ``hold`` (1 while the whole sync holds);
* ``fallback_active`` (1 while the HPA fallback decides);
* ``metric_age_seconds{namespace,service,source}`` (age of the newest sample per source).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from drpc.controller.apply import KubeApplier
from drpc.controller.audit import AuditLog
from drpc.controller.config import ControllerConfig, split_service
from drpc.controller.metrics import FIELD_SOURCE, PrometheusSource, ServiceReading, SnapshotResult
from drpc.controller.policy_client import (
    PolicyClient,
    PolicyUnavailableError,
    hpa_fallback_replicas,
)
from drpc.controller.safety import (
    Action,
    Observed,
    Proposal,
    SafetyState,
    converge_new_pods,
    plan_service,
)

__all__ = ["SyncReport", "ControllerMetrics", "Controller"]

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one sync did."""

    time_s: float
    source: str | None = None
    """policy, fallback or None (held / nothing to decide)."""
    hold_reason: str | None = None
    """Why the whole sync held (no action at all), else None."""
    held: dict[str, str] = field(default_factory=dict)
    """``namespace/name`` -> hold reason, per held service."""
    actions: list[tuple[Action, str]] = field(default_factory=list)
    """Every planned action with its result."""
    notes: dict[str, list[str]] = field(default_factory=dict)
    """``namespace/name`` -> the safety rules that changed or blocked something."""
    staleness: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """``namespace/name`` -> field -> age of its newest sample (s)."""
    snapshot_result: SnapshotResult | None = None
    duration_s: float = 0.0


def _hold_kind(reason: str) -> str:
    for prefix, kind in (("prometheus unavailable", "prometheus_unavailable"),
                         ("stale", "stale"), ("missing", "missing"), ("invalid", "invalid"),
                         ("no service", "no_fresh_service")):  # fmt: skip
        if reason.startswith(prefix):
            return kind
    return "other"


class ControllerMetrics:
    """The controller's own metrics in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r, p = self.registry, "drpc_controller_"
        self.syncs = Counter(p + "syncs", "Syncs run", registry=r)
        self.sync_seconds = Histogram(
            p + "sync_duration_seconds", "Wall time of one sync", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )  # fmt: skip
        self.decisions = Counter(p + "decisions", "Per-service decisions", ["source"], registry=r)
        self.actions = Counter(
            p + "actions", "Actions by knob and result", ["knob", "result"], registry=r
        )
        self.errors = Counter(p + "errors", "Errors by kind", ["kind"], registry=r)
        self.holds = Counter(p + "holds", "Service holds by kind", ["kind"], registry=r)
        self.held_services = Gauge(p + "held_services", "Services held this sync", registry=r)
        self.hold = Gauge(p + "hold", "1 while the whole sync holds", registry=r)
        self.fallback_active = Gauge(
            p + "fallback_active", "1 while the HPA fallback decides", registry=r
        )
        self.k8s_retries = Counter(p + "k8s_retries", "Kubernetes write retries", registry=r)
        self.metric_age = Gauge(
            p + "metric_age_seconds", "Age of the newest sample per source",
            ["namespace", "service", "source"], registry=r,
        )  # fmt: skip

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), for tests and health checks."""
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else float(v)


class Controller:
    """One controller: reads, decides, guards, applies.

    Args:
        config: all settings.
        source: the Prometheus reader.
        policy: the policy endpoint client (None: fallback only).
        applier: the Kubernetes writer (also lists and observes Deployments).
        audit: the audit log (shared with ``applier``).
        clock: wall clock (s).
    """

    def __init__(
        self,
        config: ControllerConfig,
        source: PrometheusSource,
        policy: PolicyClient | None,
        applier: KubeApplier,
        audit: AuditLog,
        *,
        metrics: ControllerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if not config.namespaces:
            raise ValueError("the namespace allowlist is empty: give at least one --namespace")
        self.config, self.source, self.policy, self.applier, self.audit = (
            config, source, policy, applier, audit,
        )  # fmt: skip
        self.metrics = metrics or ControllerMetrics()
        self.state = SafetyState()
        self.clock = clock
        self._last_hold: dict[str, str | None] = {}
        self._was_holding = False
        self._metrics_server: Any = None

    # ------------------------------------------------------------------ scope

    def services(self) -> list[tuple[str, str]]:
        """``(namespace, name)`` to control: the configured ones, else every Deployment in the
        allowlist; anything outside the allowlist is dropped with an audit line."""
        out: list[tuple[str, str]] = []
        if self.config.services:
            default_ns = self.config.namespaces[0] if len(self.config.namespaces) == 1 else None
            for spec in self.config.services:
                ns, name = split_service(spec, default_ns)
                if ns is None or ns not in self.config.namespaces:
                    self.audit.record(namespace=ns, service=name, source="hold", result="refused",
                                      reason="namespace not in the allowlist")  # fmt: skip
                    continue
                out.append((ns, name))
            return out
        for ns in self.config.namespaces:
            out += [(ns, name) for name in self.applier.list_deployments(ns)]
        return out

    # ------------------------------------------------------------------ one pass

    def sync_once(self) -> SyncReport:
        """Read, decide, guard and apply once; never raises for I/O errors (they are held)."""
        started = time.monotonic()
        now = self.clock()
        report = SyncReport(time_s=now)
        try:
            self._sync(report, now)
        except Exception as err:  # noqa: BLE001 - the loop must survive anything
            log.exception("sync failed")
            self.metrics.errors.labels("internal").inc()
            report.hold_reason = report.hold_reason or f"internal error: {err}"
        report.duration_s = time.monotonic() - started
        self.metrics.syncs.inc()
        self.metrics.sync_seconds.observe(report.duration_s)
        self.metrics.hold.set(1 if report.hold_reason else 0)
        self.metrics.held_services.set(len(report.held))
        return report

    def _whole_hold(self, report: SyncReport, reason: str, kind: str) -> None:
        report.hold_reason = reason
        self.metrics.holds.labels(_hold_kind(reason)).inc()
        if kind:
            self.metrics.errors.labels(kind).inc()
        self.audit.record(namespace=None, service="*", source="hold", result="held",
                          reason=reason, dry_run=self.config.dry_run)  # fmt: skip
        self._was_holding = True

    def _sync(self, report: SyncReport, now: float) -> None:
        try:
            services = self.services()
        except Exception as err:  # noqa: BLE001 - API down: hold
            self._whole_hold(report, f"kubernetes unavailable: {err}", "kubernetes")
            return
        result = self.source.read(services, now_s=now)
        report.snapshot_result = result
        report.held = result.held
        for key, reading in result.readings.items():
            ages = reading.age_s(now)
            report.staleness[key] = ages
            for src in set(FIELD_SOURCE.values()):
                age = next((a for f, a in ages.items() if FIELD_SOURCE[f] == src), None)
                self.metrics.metric_age.labels(reading.namespace, reading.name, src).set(
                    float("inf") if age is None else age
                )
        if result.hold_reason is not None:
            self._whole_hold(
                report, result.hold_reason,
                "prometheus" if result.hold_reason.startswith("prometheus") else "",
            )  # fmt: skip
            return
        if self._was_holding:
            self.audit.record(service="*", source="hold", result="resumed",
                              reason="fresh metrics again", dry_run=self.config.dry_run)  # fmt: skip
            self._was_holding = False
        for key, reading in result.readings.items():
            if reading.hold_reason is not None:
                self.metrics.holds.labels(_hold_kind(reading.hold_reason)).inc()
            if reading.hold_reason != self._last_hold.get(key):  # audit transitions only
                self.audit.record(
                    namespace=reading.namespace, service=reading.name, source="hold",
                    result="held" if reading.hold_reason else "resumed",
                    reason=reading.hold_reason or "fresh metrics again",
                    dry_run=self.config.dry_run,
                )  # fmt: skip
                self._last_hold[key] = reading.hold_reason
        fresh = {r.name: r for r in result.readings.values() if r.metrics is not None}
        proposals = self._decide(result, fresh, report, now)
        for proposal in proposals:
            self._act(proposal, fresh[proposal.service], report, now)

    def _decide(
        self,
        result: SnapshotResult,
        fresh: dict[str, ServiceReading],
        report: SyncReport,
        now: float,
    ) -> list[Proposal]:
        assert result.snapshot is not None
        if self.policy is not None:
            try:
                resp = self.policy.decide(result.snapshot)
                self.metrics.fallback_active.set(0)
                report.source = "policy"
                label = f"policy {resp.policy.kind} {resp.policy.version}"
                out = []
                for d in resp.decisions:
                    r = fresh.get(d.service)
                    if r is None:
                        continue  # a service the snapshot did not send
                    out.append(Proposal(
                        r.namespace, r.name, "policy", f"{label} (node {d.node})",
                        replicas=d.replicas,
                        cpu_limit_millicores=d.cpu_limit_millicores,
                        cpu_request_millicores=d.cpu_request_millicores,
                        memory_limit_mib=d.memory_limit_mib,
                        memory_request_mib=d.memory_request_mib,
                    ))  # fmt: skip
                self.metrics.decisions.labels("policy").inc(len(out))
                return out
            except PolicyUnavailableError as err:
                self.metrics.errors.labels("policy").inc()
                why = f"policy unavailable: {err}"
        else:
            why = "no policy endpoint configured"
        if not self.config.fallback_enabled:
            self._whole_hold(report, f"{why}; fallback disabled", "")
            return []
        report.source = "fallback"
        self.metrics.fallback_active.set(1)
        self.audit.record(service="*", source="fallback", result="fallback",
                          reason=f"{why}; HPA rules decide replicas", dry_run=self.config.dry_run)  # fmt: skip
        out = []
        for r in fresh.values():
            m = r.metrics
            assert m is not None
            fb = hpa_fallback_replicas(
                current_replicas=m.replicas_desired,
                ready_replicas=m.replicas_ready,
                cpu_usage_millicores=m.cpu_usage_millicores,
                cpu_request_millicores=r.cpu_request_millicores,
                target_utilization_percent=self.config.fallback_target_cpu_utilization_percent,
                now_s=now,
            )
            out.append(Proposal(r.namespace, r.name, "fallback", fb.reason, replicas=fb.replicas))
        self.metrics.decisions.labels("fallback").inc(len(out))
        return out

    def _act(
        self, proposal: Proposal, reading: ServiceReading, report: SyncReport, now: float
    ) -> None:
        m = reading.metrics
        assert m is not None
        try:
            st = self.applier.observe(proposal.namespace, proposal.service)
        except Exception as err:  # noqa: BLE001 - API trouble for one service: skip it
            self.metrics.errors.labels("kubernetes").inc()
            report.notes.setdefault(reading.key, []).append(f"observe failed: {err}")
            return
        # the limits the controller set win over pods still off them (converged below)
        targets = {
            knob: self.state.limit_target[(reading.key, knob)]
            for knob in ("cpu", "memory")
            if (reading.key, knob) in self.state.limit_target
        }
        cpu_l, cpu_r = targets.get("cpu", (st.cpu_limit_millicores, st.cpu_request_millicores))
        mem_l, mem_r = targets.get("memory", (st.memory_limit_mib, st.memory_request_mib))
        observed = Observed(
            replicas=st.replicas,
            replicas_ready=m.replicas_ready,
            cpu_limit_millicores=cpu_l,
            cpu_request_millicores=cpu_r,
            memory_limit_mib=mem_l,
            memory_request_mib=mem_r,
            memory_working_set_mib=m.memory_working_set_mib,
        )
        bounds = self.config.bounds_for(proposal.namespace, proposal.service)
        actions, notes = plan_service(proposal, observed, bounds, self.config, self.state, now)
        if notes:
            report.notes[reading.key] = notes
        actions += converge_new_pods(
            proposal.namespace, proposal.service, st.pod_resources, targets,
            planned=(a.knob for a in actions),
        )  # fmt: skip
        for action in actions:
            if notes:
                action = Action(
                    **{**action.__dict__, "reason": f"{action.reason}; {'; '.join(notes)}"}
                )
            retries_before = len(self.applier.backoffs)
            outcome = self.applier.apply(action)
            self.metrics.k8s_retries.inc(len(self.applier.backoffs) - retries_before)
            self.metrics.actions.labels(action.knob, outcome.result).inc()
            if outcome.result == "failed":
                self.metrics.errors.labels("kubernetes").inc()
            if outcome.result == "applied":
                self.state.record_change(reading.key, action, now)
            report.actions.append((action, outcome.result))

    # ------------------------------------------------------------------ forever

    def serve_metrics(self) -> int | None:
        """Serve ``/metrics`` on ``metrics_host:metrics_port`` (-1: off); returns the port."""
        if self.config.metrics_port < 0:
            return None
        server, _thread = start_http_server(
            self.config.metrics_port, addr=self.config.metrics_host, registry=self.metrics.registry
        )
        self._metrics_server = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop the metrics server and the query threads."""
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        self.source.close()
        if self.policy is not None:
            self.policy.close()

    def run(self, stop: threading.Event, max_syncs: int | None = None) -> None:
        """Sync every ``sync_period_s`` (start to start) until ``stop`` is set."""
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            report = self.sync_once()
            n += 1
            log.info(
                "sync %d: source=%s actions=%d held=%d hold=%s (%.2f s)", n, report.source,
                len(report.actions), len(report.held), report.hold_reason, report.duration_s,
            )  # fmt: skip
            if max_syncs is not None and n >= max_syncs:
                return
            stop.wait(max(0.0, self.config.sync_period_s - (time.monotonic() - started)))
