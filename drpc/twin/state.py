"""The twin's state: one simulation thread, one lock, and the Kubernetes objects it implies.

:class:`TwinState` owns a :class:`~drpc.sim.cluster.ClusterSim` and steps it in a background
thread, one control interval (``config.interval_s`` simulated seconds) every
``interval_s / speed`` wall seconds. After each step it turns the observation into Kubernetes
objects (:mod:`drpc.twin.objects`), gives every object whose content changed a new
``metadata.resourceVersion`` (one global counter, like etcd's revision), appends a watch event,
and integrates the Prometheus counters (:class:`drpc.twin.metrics.Counters`).

Writes from the API (replicas, template resources, per-pod resize) take the lock briefly:
replica and template changes are queued as the next step's :class:`~drpc.sim.types.Action`
(the Deployment's ``spec`` shows them at once, like the API server; the simulator acts on them
at the start of the next interval), per-pod resizes go straight to
:meth:`ClusterSim.resize_pods` (admitted at the start of the next interval).

Time: simulated second ``t`` of the current run maps to wall time ``anchor + t / speed``.
When the host cannot keep up (the step falls more than ``max_lag_s`` behind), the anchor
moves forward instead of bursting steps. At the end of the trace the simulation holds its
last state, or starts over with ``loop=True`` (a new *epoch*: new pods, counters continue).
"""

from __future__ import annotations

import bisect
import collections
import copy
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from drpc.scenario import Scenario
from drpc.sim.types import Action, Observation, Phase, PodTable
from drpc.twin import objects as obj
from drpc.twin.errors import ApiError
from drpc.twin.metrics import Counters, MetricsFrame, PodSeries
from drpc.twin.objects import DeploymentView, NodeView, PodView, Resources

__all__ = [
    "TwinOptions",
    "TwinState",
    "StoredObject",
    "WatchEvent",
    "StepRecord",
    "ExpiredError",
    "dns_label",
]

log = logging.getLogger("drpc.twin")

_EPOCH_SHIFT = 40
_FLOAT_FIELDS = 15  # columns of the pod fingerprint


@dataclass(frozen=True)
class TwinOptions:
    """How the twin runs a scenario.

    Attributes:
        namespace: namespace of the app's Deployments and pods (default: the app's name).
        speed: simulated seconds per wall second (1 = real time).
        loop: start the scenario over when the trace ends (else hold the last state).
        max_lag_s: wall seconds the simulation may fall behind before the clock re-anchors.
        event_log_size: watch events kept for ``?watch=true&resourceVersion=...``.
        history_size: per-step records kept for inspection (:meth:`TwinState.history`).
        run_id: seeds object uids; random by default, so uids differ between runs.
    """

    namespace: str | None = None
    speed: float = 1.0
    loop: bool = False
    max_lag_s: float = 2.0
    event_log_size: int = 20_000
    history_size: int = 4096
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {self.speed!r}")
        if self.namespace is not None and dns_label(self.namespace) != self.namespace:
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")


class StoredObject(NamedTuple):
    """An object body and its resourceVersion. Bodies are never mutated once stored."""

    rv: int
    body: dict[str, Any]


class WatchEvent(NamedTuple):
    """One change: ADDED, MODIFIED or DELETED, with the object as of ``rv``."""

    rv: int
    type: str
    resource: str
    namespace: str
    body: dict[str, Any]


@dataclass(frozen=True)
class StepRecord:
    """What one step published (for tests and inspection)."""

    wall_s: float
    sim_time_s: float
    interval: int
    epoch: int
    cpu_usage_millicores: np.ndarray  # per service, the interval's mean
    replicas_desired: np.ndarray
    replicas_ready: np.ndarray
    request_rate_rps: np.ndarray
    latency_mean_ms: np.ndarray
    latency_p99_ms: np.ndarray
    # per entry endpoint (the SLO check: an endpoint with traffic whose p99 is above its SLO)
    endpoint_rps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    endpoint_latency_p99_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    endpoint_slo_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def slo_violated(self) -> bool:
        """Some endpoint with traffic had its p99 above its SLO this interval (as
        :func:`drpc.evaluate.summarize` counts it)."""
        active = self.endpoint_rps > 0
        return bool(np.any(active & (self.endpoint_latency_p99_ms > self.endpoint_slo_ms)))


class ExpiredError(Exception):
    """A watch asked for events older than the event log holds (HTTP 410 Gone)."""


def dns_label(name: str) -> str:
    """``name`` made into a DNS-1123 label (lowercase alphanumerics and '-', <= 63 chars)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "app"


def _nan_equal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return same.all(axis=1)


class TwinState:
    """The simulation, its thread and the object store. Thread-safe; see the module doc."""

    def __init__(self, scenario: Scenario, options: TwinOptions | None = None):
        self.options = options or TwinOptions()
        self.scenario = scenario
        self.app = scenario.app
        self.config = scenario.config
        self.speed = float(self.options.speed)
        self.app_name = self.app.app.name
        self.namespace = self.options.namespace or dns_label(self.app_name)
        self.services: list[str] = list(self.app.names)
        self._svc_index = {name: i for i, name in enumerate(self.services)}
        self.endpoints: list[str] = list(self.app.endpoint_names)
        self.endpoint_entry_service = [
            self.services[int(s)] for s in self.app.inst_service[self.app.roots]
        ]
        self.node_names = [f"node-{i + 1}" for i in range(self.config.n_nodes)]
        self.timeout_ms = float(self.app.timeout_s) * 1000.0
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

        run = self.options.run_id
        self.run_id = run
        self._rv = 0
        self._store: dict[str, dict[tuple[str, str], StoredObject]] = {
            "namespaces": {},
            "nodes": {},
            "pods": {},
            "deployments": {},
        }
        self._events: collections.deque[WatchEvent] = collections.deque(
            maxlen=self.options.event_log_size
        )
        self._history: collections.deque[StepRecord] = collections.deque(
            maxlen=self.options.history_size
        )
        self.counters = Counters(self.app.n_services, self.app.n_endpoints)
        self.epoch = 0
        self.finished = False
        self.steps = 0

        self.sim = scenario.make_sim()
        # Piecewise clock: simulated second t maps to anchor + t / speed, with the anchor of the
        # last segment starting at or before t (a new segment when the clock re-anchors).
        self._anchor_sim_s: list[float] = [-math.inf]
        self._anchor_wall_s: list[float] = [time.time()]
        self._created_wall_s = self.wall_of(-7200.0)
        self._pending_replicas = np.full(self.app.n_services, np.nan)
        self._pending_template = np.full((4, self.app.n_services), np.nan)
        self._generation = np.ones(self.app.n_services, dtype=np.int64)
        self._deploy_changed_wall = np.full(self.app.n_services, self._created_wall_s)
        self._deploy_fp = np.full((self.app.n_services, 8), np.nan)
        self._deploy_uid = [
            obj.object_uid(run, self.namespace, "deployments", s) for s in self.services
        ]
        self._hash = {s: obj.template_hash(self.namespace, s) for s in self.services}
        # per-pod state of the last published step (sorted by key)
        self._keys = np.zeros(0, dtype=np.int64)
        self._table: PodTable | None = None
        self._desired = np.zeros((4, 0))
        self._sim_restarts = np.zeros(0, dtype=np.int64)
        self._restarts = np.zeros(0, dtype=np.int64)
        self._last_oom_s = np.zeros(0)
        self._new_ooms = np.zeros(0)
        self._fp = np.zeros((0, _FLOAT_FIELDS))
        self._pod_meta: dict[int, tuple[str, str, str]] = {}  # key -> (name, uid, ip)
        self._pod_by_name: dict[str, int] = {}  # name -> row in the current table
        self._obs: Observation | None = None
        self._last_step_wall_s = self.anchor_wall_s
        self._frame_cache: tuple[int, MetricsFrame] | None = None
        self._version = 0  # bumped on every change, for caches

        with self.lock:
            self._publish_static()
            self._publish(self.sim.last_observation, integrate=False)

    # ------------------------------------------------------------------ clock

    @property
    def anchor_wall_s(self) -> float:
        """Wall-clock time of simulated second 0 of the current clock segment."""
        return self._anchor_wall_s[-1]

    def wall_of(self, sim_s: float) -> float:
        """Wall-clock time (s since the epoch) of simulated second ``sim_s`` of this run."""
        i = max(bisect.bisect_right(self._anchor_sim_s, sim_s) - 1, 0)
        return self._anchor_wall_s[i] + sim_s / self.speed

    def wall_of_array(self, sim_s: np.ndarray) -> np.ndarray:
        """:meth:`wall_of` for an array (NaN stays NaN)."""
        i = np.maximum(np.searchsorted(self._anchor_sim_s, sim_s, side="right") - 1, 0)
        return np.asarray(self._anchor_wall_s)[i] + sim_s / self.speed

    def _re_anchor(self, behind_s: float) -> None:
        """Shift the clock of everything simulated from now on by ``behind_s`` wall seconds."""
        self._anchor_sim_s.append(float(self.sim.time_s))
        self._anchor_wall_s.append(self.anchor_wall_s + behind_s)
        if len(self._anchor_sim_s) > 1000:  # keep the oldest and the recent segments
            del self._anchor_sim_s[1:2], self._anchor_wall_s[1:2]

    @property
    def sim_time_s(self) -> float:
        """Simulated time of the last published step (s since the scenario start)."""
        return float(self.sim.time_s)

    @property
    def interval_wall_s(self) -> float:
        """Wall seconds per simulated control interval."""
        return self.config.interval_s / self.speed

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        """Start stepping in a background thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="drpc-twin-sim", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the simulation thread and wake every watcher."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.finished:  # trace over, holding the last state
                self._stop.wait(0.25)
                continue
            with self.lock:
                due = self.wall_of(self.sim.time_s + self.config.interval_s)
                now = time.time()
                if due < now - self.options.max_lag_s:
                    behind = now - due
                    self._re_anchor(behind)
                    log.warning("simulation %.1f s behind wall time: clock re-anchored", behind)
                    due = now
            delay = due - time.time()
            if delay > 0:
                self._stop.wait(min(delay, 0.2))
                continue
            try:
                self.advance()
            except Exception as err:  # keep serving the last state; report the failure
                log.exception("simulation step failed; the twin holds its last state")
                self.error = err
                return
            self._stop.wait(0.0005)  # let API threads take the lock between steps

    def advance(self) -> bool:
        """Simulate one interval now (the thread calls this; tests may too). Returns False when
        the trace has ended and the twin holds its state."""
        with self.lock:
            if self.sim.done:
                if not self.options.loop:
                    if not self.finished:
                        log.info(
                            "trace finished at t=%.0f s; holding the last state", self.sim_time_s
                        )
                    self.finished = True
                    return False
                self._restart_epoch()
                return True
            action = self._take_action()
            obs = self.sim.step(action)
            self._publish(obs, integrate=True)
            self._cond.notify_all()
            return True

    def _take_action(self) -> Action | None:
        rep, tmpl = self._pending_replicas, self._pending_template
        if np.all(np.isnan(rep)) and np.all(np.isnan(tmpl)):
            return None
        action = Action(
            replicas=np.where(np.isnan(rep), -1.0, rep) if not np.all(np.isnan(rep)) else None
        )
        for row, name in enumerate(Action.FIELDS[1:]):
            if not np.all(np.isnan(tmpl[row])):
                setattr(action, name, tmpl[row].copy())
        self._pending_replicas = np.full_like(rep, np.nan)
        self._pending_template = np.full_like(tmpl, np.nan)
        return action

    def _restart_epoch(self) -> None:
        self.epoch += 1
        self.sim.reset()
        self._anchor_sim_s, self._anchor_wall_s = [-math.inf], [time.time()]
        self._pending_replicas[:] = np.nan
        self._pending_template[:] = np.nan
        log.info("trace finished: starting over (epoch %d)", self.epoch)
        self._publish(self.sim.last_observation, integrate=False)
        self._cond.notify_all()

    # ------------------------------------------------------------------ publishing

    def _bump(self) -> int:
        self._rv += 1
        self._version += 1
        return self._rv

    def _emit(self, kind: str, resource: str, namespace: str, stored: StoredObject) -> None:
        self._events.append(WatchEvent(stored.rv, kind, resource, namespace, stored.body))

    def _put(self, resource: str, namespace: str, name: str, build: Callable[[int], dict]) -> None:
        rv = self._bump()
        key = (namespace, name)
        kind = "MODIFIED" if key in self._store[resource] else "ADDED"
        stored = StoredObject(rv, build(rv))
        self._store[resource][key] = stored
        self._emit(kind, resource, namespace, stored)

    def _publish_static(self) -> None:
        names = [self.namespace, "default", "kube-system"]
        for ns in dict.fromkeys(names):
            uid = obj.object_uid(self.run_id, "namespaces", ns)
            self._put(
                "namespaces",
                "",
                ns,
                lambda rv, ns=ns, uid=uid: obj.namespace_object(
                    ns, uid=uid, created_wall_s=self._created_wall_s, resource_version=rv
                ),
            )
        for i, name in enumerate(self.node_names):
            view = NodeView(
                name=name,
                uid=obj.object_uid(self.run_id, "nodes", name),
                index=i,
                cpu_millicores=float(self.sim.node_cpu_cap[i]),
                memory_mib=float(self.sim.node_mem_cap[i]),
                created_wall_s=self._created_wall_s,
            )
            self._put("nodes", "", name, lambda rv, v=view: obj.node_object(v, resource_version=rv))

    @staticmethod
    def _read_desired(table: PodTable) -> np.ndarray:
        """Desired (spec) resources per pod, (4, N) aligned with ``table``."""
        return np.vstack(
            [
                table.spec_cpu_request_millicores,
                table.spec_cpu_limit_millicores,
                table.spec_memory_request_mib,
                table.spec_memory_limit_mib,
            ]
        )

    def _publish(self, o: Observation, integrate: bool) -> None:
        table = o.pods
        keys = (np.int64(self.epoch) << _EPOCH_SHIFT) | table.uid.astype(np.int64)
        desired = self._read_desired(table)
        # carry per-pod history (restarts, OOM times) by key
        n = keys.size
        prev = self._keys
        if prev.size:
            pos = np.minimum(np.searchsorted(prev, keys), prev.size - 1)
            found = prev[pos] == keys
        else:
            pos = np.zeros(n, dtype=np.int64)
            found = np.zeros(n, dtype=bool)
        prev_sim_restarts = np.where(found, self._sim_restarts[pos] if prev.size else 0, 0)
        new_ooms = np.maximum(table.restarts - prev_sim_restarts, 0)
        restarts = np.where(found, self._restarts[pos] if prev.size else 0, 0) + new_ooms
        last_oom = np.where(found, self._last_oom_s[pos] if prev.size else np.nan, np.nan)
        last_oom = np.where(new_ooms > 0, o.time_s, last_oom)

        if integrate:
            self.counters.step(
                pod_keys=keys,
                pod_service=table.service,
                pod_phase=table.phase,
                pod_cpu_usage_millicores=table.cpu_usage_millicores,
                pod_new_ooms=new_ooms.astype(np.float64),
                throttled_ratio=o.cpu_throttled_ratio,
                request_rate_rps=o.request_rate_rps,
                error_rate=o.error_rate,
                latency_q_ms=_service_quantiles_ms(o),
                latency_mean_ms=o.latency_mean_ms,
                endpoint_rps=o.endpoint_rps,
                endpoint_error_rate=o.endpoint_error_rate,
                endpoint_q_ms=_endpoint_quantiles_ms(o),
                endpoint_mean_ms=o.endpoint_latency_mean_ms,
                timeout_ms=self.timeout_ms,
                interval_s=self.config.interval_s,
                cfs_period_s=self.config.cfs_period_s,
                speed=self.speed,
            )

        fp = np.column_stack(
            [
                table.node,
                table.phase,
                table.start_s,
                table.ready_transition_s,
                table.deletion_s,
                restarts,
                table.cpu_request_millicores,
                table.cpu_limit_millicores,
                table.memory_request_mib,
                table.memory_limit_mib,
                desired.T,
                table.resize_status,
            ]
        ).astype(np.float64)
        if prev.size:
            same = found & _nan_equal_rows(fp, self._fp[pos])
        else:
            same = np.zeros(n, dtype=bool)
        removed = np.setdiff1d(prev, keys, assume_unique=True)

        self._keys, self._table, self._desired = keys, table, desired
        self._sim_restarts = table.restarts.copy()
        self._restarts, self._last_oom_s, self._fp = restarts, last_oom, fp
        self._new_ooms = new_ooms
        self._obs = o
        self._last_step_wall_s = time.time()
        self.steps += integrate

        for key in removed:
            name = self._pod_meta[int(key)][0]
            stored = self._store["pods"].pop((self.namespace, name), None)
            self._pod_meta.pop(int(key), None)
            if stored is not None:
                rv = self._bump()
                body = dict(stored.body)
                body["metadata"] = dict(body["metadata"], resourceVersion=str(rv))
                self._emit("DELETED", "pods", self.namespace, StoredObject(rv, body))
        self._pod_by_name = {}
        for i in range(n):
            key = int(keys[i])
            meta = self._pod_meta.get(key)
            if meta is None:
                meta = self._new_pod_meta(key, int(table.uid[i]), int(table.service[i]))
                self._pod_meta[key] = meta
            self._pod_by_name[meta[0]] = i
        for i in np.flatnonzero(~same):
            self._store_pod(int(i))
        self._publish_deployments()
        self._frame_cache = None
        self._version += 1
        if integrate:
            self._history.append(
                StepRecord(
                    wall_s=self._last_step_wall_s,
                    sim_time_s=float(o.time_s),
                    interval=int(o.interval),
                    epoch=self.epoch,
                    cpu_usage_millicores=o.cpu_usage_millicores.copy(),
                    replicas_desired=o.replicas_desired.copy(),
                    replicas_ready=o.replicas_ready.copy(),
                    request_rate_rps=o.request_rate_rps.copy(),
                    latency_mean_ms=o.latency_mean_ms.copy(),
                    latency_p99_ms=o.latency_p99_ms.copy(),
                    endpoint_rps=o.endpoint_rps.copy(),
                    endpoint_latency_p99_ms=o.endpoint_latency_p99_ms.copy(),
                    endpoint_slo_ms=o.endpoint_slo_ms.copy(),
                )
            )

    def _new_pod_meta(self, key: int, sim_uid: int, service: int) -> tuple[str, str, str]:
        svc = self.services[service]
        name = obj.pod_name(svc, self._hash[svc], sim_uid, self.epoch)
        uid = obj.object_uid(self.run_id, "pods", self.epoch, sim_uid)
        k = key & ((1 << _EPOCH_SHIFT) - 1)
        ip = f"10.{(244 + (self.epoch % 8))}.{(k // 250) % 256}.{k % 250 + 2}"
        return name, uid, ip

    def _pod_view(self, i: int) -> PodView:
        t = self._table
        assert t is not None
        name, uid, ip = self._pod_meta[int(self._keys[i])]
        node = int(t.node[i])

        def wall(x: float) -> float | None:
            return None if not np.isfinite(x) else self.wall_of(float(x))

        d = self._desired[:, i]
        return PodView(
            name=name,
            uid=uid,
            service=self.services[int(t.service[i])],
            node=self.node_names[node] if node >= 0 else None,
            phase=int(t.phase[i]),
            ready=bool(t.ready[i]),
            created_wall_s=self.wall_of(float(t.created_s[i])),
            start_wall_s=wall(t.start_s[i]),
            ready_transition_wall_s=wall(t.ready_transition_s[i]),
            deletion_wall_s=wall(t.deletion_s[i]),
            restarts=int(self._restarts[i]),
            last_oom_wall_s=wall(self._last_oom_s[i]),
            actual=Resources(
                float(t.cpu_request_millicores[i]),
                float(t.cpu_limit_millicores[i]),
                float(t.memory_request_mib[i]),
                float(t.memory_limit_mib[i]),
            ),
            desired=Resources(float(d[0]), float(d[1]), float(d[2]), float(d[3])),
            resize_status=int(t.resize_status[i]),
            pod_ip=ip,
            host_ip=f"10.0.0.{node + 10}" if node >= 0 else None,
            grace_s=int(round(self.config.termination_grace_s)),
            grace_wall_s=self.config.termination_grace_s / self.speed,
        )

    def _store_pod(self, i: int) -> None:
        view = self._pod_view(i)
        s = self._svc_index[view.service]
        message = (
            f"0/{len(self.node_names)} nodes are available: {len(self.node_names)} "
            "Insufficient cpu or memory. preemption: not eligible."
        )
        self._put(
            "pods",
            self.namespace,
            view.name,
            lambda rv: obj.pod_object(
                view,
                namespace=self.namespace,
                app=self.app_name,
                template_hash_=self._hash[view.service],
                deployment_uid=self._deploy_uid[s],
                resource_version=rv,
                changed_wall_s=self._last_step_wall_s,
                pending_message=message,
            ),
        )

    def _deployment_table(self) -> np.ndarray:
        """Per service, columns: generation, spec.replicas, template (cpu req, cpu lim, mem req,
        mem lim), status replicas, ready; (S, 8). Also the Deployments' fingerprint."""
        o, t = self._obs, self._table
        assert o is not None and t is not None
        n = self.app.n_services
        counted = t.phase != Phase.TERMINATING
        template = np.where(
            np.isnan(self._pending_template),
            np.vstack(
                [
                    o.cpu_request_millicores,
                    o.cpu_limit_millicores,
                    o.memory_request_mib,
                    o.memory_limit_mib,
                ]
            ),
            self._pending_template,
        )
        return np.column_stack(
            [
                self._generation,
                np.where(
                    np.isnan(self._pending_replicas), self.sim.desired, self._pending_replicas
                ),
                template.T,
                np.bincount(t.service[counted], minlength=n),
                np.asarray(o.replicas_ready),
            ]
        ).astype(np.float64)

    def _deployment_view(self, s: int, row: np.ndarray) -> DeploymentView:
        return DeploymentView(
            name=self.services[s],
            uid=self._deploy_uid[s],
            created_wall_s=self._created_wall_s,
            generation=int(row[0]),
            replicas=int(row[1]),
            template=Resources(float(row[2]), float(row[3]), float(row[4]), float(row[5])),
            status_replicas=int(row[6]),
            ready_replicas=int(row[7]),
            available_replicas=int(row[7]),
            updated_replicas=int(row[6]),
            min_replicas=int(self.app.min_replicas[s]),
            max_replicas=int(self.app.max_replicas[s]),
            changed_wall_s=float(self._deploy_changed_wall[s]),
        )

    def _publish_deployments(self, only: int | None = None) -> None:
        table = self._deployment_table()
        changed = ~(table == self._deploy_fp).all(axis=1)
        if only is not None:
            changed &= np.arange(changed.size) == only
        now = time.time()
        for s in np.flatnonzero(changed):
            self._deploy_fp[s] = table[s]
            self._deploy_changed_wall[s] = now
            view = self._deployment_view(int(s), table[s])
            self._put(
                "deployments",
                self.namespace,
                view.name,
                lambda rv, v=view: obj.deployment_object(
                    v, namespace=self.namespace, app=self.app_name, resource_version=rv
                ),
            )

    # ------------------------------------------------------------------ reads

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion (what a list returns)."""
        return self._rv

    def get(self, resource: str, namespace: str, name: str) -> StoredObject | None:
        """The stored object, or None (``namespace`` is "" for cluster-scoped resources)."""
        with self.lock:
            return self._store[resource].get((namespace, name))

    def list(self, resource: str, namespace: str | None) -> tuple[int, list[dict[str, Any]]]:
        """``(resourceVersion, bodies)`` of ``resource`` in ``namespace`` (None: all)."""
        with self.lock:
            items = [
                s.body
                for (ns, _), s in self._store[resource].items()
                if namespace is None or ns == namespace
            ]
            return self._rv, items

    def namespace_exists(self, namespace: str) -> bool:
        with self.lock:
            return ("", namespace) in self._store["namespaces"]

    def wait_events(self, after_rv: int, timeout_s: float) -> list[WatchEvent]:
        """Events newer than ``after_rv``, waiting up to ``timeout_s`` for the first one.

        Raises:
            ExpiredError: ``after_rv`` is older than the oldest event kept.
        """
        with self._cond:
            if self._events and after_rv < self._events[0].rv - 1:
                raise ExpiredError(
                    f"too old resource version: {after_rv} ({self._events[0].rv - 1})"
                )
            if after_rv >= self._rv and not self._stop.is_set():
                self._cond.wait(timeout_s)
            if not self._events or self._events[-1].rv <= after_rv:
                return []
            return [e for e in self._events if e.rv > after_rv]

    def history(self) -> list[StepRecord]:
        """Per-step records (most recent last)."""
        with self.lock:
            return list(self._history)

    def last_step_wall_s(self) -> float:
        return self._last_step_wall_s

    def pod_uid_of(self, name: str) -> int | None:
        """The simulator's uid of a pod by name (None when gone)."""
        with self.lock:
            i = self._pod_by_name.get(name)
            return None if i is None else int(self._table.uid[i])

    # ------------------------------------------------------------------ writes

    def service_of(self, namespace: str, name: str) -> int:
        """Index of the Deployment ``name`` in ``namespace``; raises 404."""
        s = self._svc_index.get(name)
        if namespace != self.namespace or s is None:
            raise ApiError.not_found("deployments", name, "apps")
        return s

    def check_replicas(self, s: int, replicas: int, field_: str = "spec.replicas") -> None:
        """422 unless ``replicas`` is inside the simulated app's [min, max] for service ``s``."""
        lo, hi = int(self.app.min_replicas[s]), int(self.app.max_replicas[s])
        if not lo <= replicas <= hi:
            raise ApiError.invalid(
                "Deployment",
                self.services[s],
                field_,
                f"Invalid value: {replicas}: must be between {lo} and {hi} (min_replicas and "
                f"max_replicas of {self.services[s]} in the simulated app)",
                "apps",
            )

    def check_resources(self, r: Resources, kind: str, name: str, prefix: str) -> None:
        """422 unless ``r`` is within what the simulator accepts (names the field)."""
        cfg = self.config
        hi_cpu = 2.0 * float(self.sim.node_cpu_cap.max())
        hi_mem = 2.0 * float(self.sim.node_mem_cap.max())
        group = "apps" if kind == "Deployment" else ""
        for path, value, lo, hi, unit in (
            ("requests.cpu", r.cpu_request_millicores, cfg.min_cpu_millicores, hi_cpu, "m"),
            ("limits.cpu", r.cpu_limit_millicores, cfg.min_cpu_millicores, hi_cpu, "m"),
            ("requests.memory", r.memory_request_mib, cfg.min_memory_mib, hi_mem, "Mi"),
            ("limits.memory", r.memory_limit_mib, cfg.min_memory_mib, hi_mem, "Mi"),
        ):
            if not (lo <= value <= hi):
                raise ApiError.invalid(
                    kind,
                    name,
                    f"{prefix}.{path}",
                    f"Invalid value: {value:g}{unit}: must be between {lo:g}{unit} and {hi:g}{unit} "
                    "in the twin (2 x the largest node)",
                    group,
                )
        for res, req, lim in (
            ("cpu", r.cpu_request_millicores, r.cpu_limit_millicores),
            ("memory", r.memory_request_mib, r.memory_limit_mib),
        ):
            if req > lim:
                raise ApiError.invalid(
                    kind,
                    name,
                    f"{prefix}.requests",
                    f"Invalid value: must be less than or equal to {res} limit",
                    group,
                )

    def update_deployment(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int | None = None,
        template: Resources | None = None,
        expect_rv: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Set ``spec.replicas`` and/or the template's resources; returns the new Deployment.

        Applied by the simulator at the start of the next interval (replicas through the
        ReplicaSet controller, resources by in-place resize of every pod).

        Raises:
            ApiError: 404 unknown Deployment, 409 stale ``expect_rv``, 422 out-of-range values.
        """
        with self.lock:
            s = self.service_of(namespace, name)
            stored = self._store["deployments"][(namespace, name)]
            if expect_rv is not None and expect_rv != str(stored.rv):
                raise ApiError.conflict("deployments", name, "apps")
            if replicas is not None:
                self.check_replicas(s, replicas)
            if template is not None:
                self.check_resources(
                    template, "Deployment", name, "spec.template.spec.containers[0].resources"
                )
            current = stored.body["spec"]
            new_replicas = current["replicas"] if replicas is None else int(replicas)
            view = self._deployment_view(s, self._deployment_table()[s])
            cur_t = view.template
            new_t = cur_t if template is None else template
            if new_replicas == current["replicas"] and new_t == cur_t:
                return stored.body
            if dry_run:
                v = DeploymentView(
                    **{**view.__dict__, "replicas": new_replicas, "template": new_t,
                       "generation": view.generation + 1}
                )  # fmt: skip
                return obj.deployment_object(
                    v, namespace=namespace, app=self.app_name, resource_version=stored.rv
                )
            if replicas is not None and new_replicas != current["replicas"]:
                self._pending_replicas[s] = new_replicas
            if template is not None and new_t != cur_t:
                self._pending_template[:, s] = [
                    new_t.cpu_request_millicores,
                    new_t.cpu_limit_millicores,
                    new_t.memory_request_mib,
                    new_t.memory_limit_mib,
                ]
            self._generation[s] += 1
            self._publish_deployments(only=s)
            self._frame_cache = None
            self._cond.notify_all()
            return self._store["deployments"][(namespace, name)].body

    def resize_pod(
        self,
        namespace: str,
        name: str,
        desired: Resources,
        *,
        expect_rv: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Request an in-place resize of one pod (the ``resize`` subresource); returns the Pod.

        The kubelet (simulator) admits it at the start of the next interval: the pod then shows
        ``PodResizeInProgress``, or ``PodResizePending`` with reason ``Deferred``/``Infeasible``.
        """
        with self.lock:
            stored = self._store["pods"].get((namespace, name))
            i = self._pod_by_name.get(name)
            if stored is None or i is None or namespace != self.namespace:
                raise ApiError.not_found("pods", name)
            if expect_rv is not None and expect_rv != str(stored.rv):
                raise ApiError.conflict("pods", name)
            t = self._table
            assert t is not None
            if t.phase[i] == Phase.TERMINATING:
                raise ApiError.invalid(
                    "Pod",
                    name,
                    "metadata.deletionTimestamp",
                    "the pod is terminating; it cannot be resized",
                )
            self.check_resources(desired, "Pod", name, "spec.containers[0].resources")
            old = Resources(*(float(x) for x in self._desired[:, i]))
            if old == desired:
                return stored.body
            if dry_run:
                view = self._pod_view(i)
                view = PodView(**{**view.__dict__, "desired": desired})
                s = self._svc_index[view.service]
                return obj.pod_object(
                    view,
                    namespace=namespace,
                    app=self.app_name,
                    template_hash_=self._hash[view.service],
                    deployment_uid=self._deploy_uid[s],
                    resource_version=stored.rv,
                    changed_wall_s=time.time(),
                )
            uid = int(t.uid[i])
            self.sim.resize_pods(
                np.array([uid]),
                cpu_request_millicores=desired.cpu_request_millicores,
                cpu_limit_millicores=desired.cpu_limit_millicores,
                memory_request_mib=desired.memory_request_mib,
                memory_limit_mib=desired.memory_limit_mib,
            )
            new_desired = self._desired.copy()
            new_desired[:, i] = [
                desired.cpu_request_millicores,
                desired.cpu_limit_millicores,
                desired.memory_request_mib,
                desired.memory_limit_mib,
            ]
            self._desired = new_desired
            fp = self._fp.copy()
            fp[i, 10:14] = new_desired[:, i]
            self._fp = fp
            self._store_pod(i)
            self._frame_cache = None
            self._cond.notify_all()
            return self._store["pods"][(namespace, name)].body

    # ------------------------------------------------------------------ metrics

    def _pod_series(self) -> PodSeries:
        t = self._table
        assert t is not None
        metas = [self._pod_meta[int(k)] for k in self._keys]
        nodes = [self.node_names[n] if n >= 0 else "" for n in t.node]
        c = self.counters
        cpu, periods, throttled, oom = c.carry_pods(self._keys)
        return PodSeries(
            keys=self._keys,
            names=[m[0] for m in metas],
            uids=[m[1] for m in metas],
            services=t.service,
            nodes=nodes,
            pod_ips=[m[2] if n >= 0 else "" for m, n in zip(metas, t.node, strict=True)],
            host_ips=[f"10.0.0.{n + 10}" if n >= 0 else "" for n in t.node],
            phase=t.phase,
            ready=t.ready,
            created_wall_s=self.wall_of_array(t.created_s),
            start_wall_s=self.wall_of_array(t.start_s),
            deletion_wall_s=self.wall_of_array(t.deletion_s),
            restarts=self._restarts,
            desired_cpu_request_millicores=self._desired[0],
            desired_cpu_limit_millicores=self._desired[1],
            desired_memory_request_mib=self._desired[2],
            desired_memory_limit_mib=self._desired[3],
            actual_cpu_limit_millicores=t.cpu_limit_millicores,
            actual_memory_limit_mib=t.memory_limit_mib,
            memory_working_set_mib=t.memory_working_set_mib,
            cpu_usage_millicores=t.cpu_usage_millicores,
            cpu_seconds=cpu,
            cfs_periods=periods,
            cfs_throttled_periods=throttled,
            oom_events=oom,
        )

    def metrics_frame(self) -> MetricsFrame:
        """Everything ``/metrics`` renders, consistent as of the last change."""
        with self.lock:
            if self._frame_cache is not None and self._frame_cache[0] == self._version:
                return self._frame_cache[1]
            o = self._obs
            assert o is not None
            dep = self._deployment_table()
            frame = MetricsFrame(
                namespace=self.namespace,
                app=self.app_name,
                scenario=self.scenario.name,
                services=self.services,
                endpoints=self.endpoints,
                endpoint_entry_service=self.endpoint_entry_service,
                node_names=self.node_names,
                node_cpu_millicores=float(self.sim.node_cpu_cap.max()),
                node_memory_mib=float(self.sim.node_mem_cap.max()),
                pods=self._pod_series(),
                spec_replicas=dep[:, 1],
                status_replicas=dep[:, 6],
                ready_replicas=dep[:, 7],
                available_replicas=dep[:, 7],
                generation=self._generation.copy(),
                counters=copy.copy(self.counters),
                backlog_requests=o.backlog_requests,
                sim_request_rate_rps=o.request_rate_rps,
                sim_error_rate=o.error_rate,
                sim_latency_q_ms=_service_quantiles_ms(o),
                sim_latency_mean_ms=o.latency_mean_ms,
                sim_throttled_ratio=o.cpu_throttled_ratio,
                sim_cpu_usage_millicores=o.cpu_usage_millicores,
                sim_endpoint_rps=o.endpoint_rps,
                sim_endpoint_q_ms=_endpoint_quantiles_ms(o),
                sim_endpoint_mean_ms=o.endpoint_latency_mean_ms,
                sim_time_s=float(o.time_s),
                interval=int(o.interval),
                speed=self.speed,
                loop_epoch=self.epoch,
                trace_finished=self.finished,
            )
            self._frame_cache = (self._version, frame)
            return frame

    def pod_metrics(self, namespace: str | None) -> list[dict[str, Any]]:
        """``metrics.k8s.io`` PodMetrics of pods with a running container (Ready or Starting)."""
        with self.lock:
            t = self._table
            assert t is not None
            if namespace is not None and namespace != self.namespace:
                return []
            out = []
            window = self.interval_wall_s
            for i in np.flatnonzero((t.phase == Phase.READY) | (t.phase == Phase.STARTING)):
                name = self._pod_meta[int(self._keys[i])][0]
                svc = self.services[int(t.service[i])]
                out.append(
                    obj.pod_metrics_object(
                        name=name,
                        namespace=self.namespace,
                        labels={"app": svc, "pod-template-hash": self._hash[svc]},
                        container=svc,
                        cpu_millicores=float(t.cpu_usage_millicores[i]),
                        memory_mib=float(t.memory_working_set_mib[i]),
                        timestamp_wall_s=self._last_step_wall_s,
                        window_s=window,
                    )
                )
            return out

    def node_metrics(self) -> list[dict[str, Any]]:
        """``metrics.k8s.io`` NodeMetrics: CPU used and working set of the pods on each node."""
        with self.lock:
            t, o = self._table, self._obs
            assert t is not None and o is not None
            serving = (t.phase == Phase.READY) | (t.phase == Phase.STARTING)
            on = serving & (t.node >= 0)
            mem = np.bincount(
                t.node[on], weights=t.memory_working_set_mib[on], minlength=len(self.node_names)
            )
            return [
                obj.node_metrics_object(
                    name=name,
                    labels={"kubernetes.io/hostname": name},
                    cpu_millicores=float(o.node_cpu_usage_millicores[j]),
                    memory_mib=float(mem[j]),
                    timestamp_wall_s=self._last_step_wall_s,
                    window_s=self.interval_wall_s,
                )
                for j, name in enumerate(self.node_names)
            ]


def _service_quantiles_ms(o: Observation) -> np.ndarray:
    """(3, S): p50, p95, p99 per service (ms)."""
    return np.vstack([o.latency_p50_ms, o.latency_p95_ms, o.latency_p99_ms])


def _endpoint_quantiles_ms(o: Observation) -> np.ndarray:
    """(3, E): p50, p95, p99 per endpoint (ms)."""
    return np.vstack(
        [o.endpoint_latency_p50_ms, o.endpoint_latency_p95_ms, o.endpoint_latency_p99_ms]
    )
