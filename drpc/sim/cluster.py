"""The simulated Kubernetes cluster: nodes, pods, scheduler, load, queues and latency.

One :meth:`ClusterSim.step` advances one control interval (default 15 s) in ``substeps``
internal steps. All work is vectorised over pods and services with numpy; the only Python
loops run over substeps, call-graph depth levels, scheduling rounds and Newton iterations.

Per interval, in order:

1. pods whose termination grace ended free their node's requests; crashed pods whose
   back-off ended restart;
2. the action: replica targets create Pending pods or delete pods in ReplicaSet order;
   resource targets update the template and request an in-place resize of running pods;
3. resizes are admitted per node (Infeasible above the node's allocatable, Deferred while
   the node lacks free room), and take effect ``resize_delay_s`` later;
4. the scheduler places Pending pods (requests must fit; LeastAllocated scoring);
5. per substep: each service's ready capacity (pods become Ready ``startup_s`` after
   starting), arrivals from the trace through the call graph, and a fluid backlog where
   arrivals exceed ``max_utilization`` of capacity; requests older than the timeout fail;
6. per pod, M/M/c queueing (Erlang-C) plus CFS throttling plus backlog delay gives each
   service's latency; latencies compose along each endpoint's call tree;
7. working-set memory from in-flight requests; pods above their memory limit are OOM-killed
   and restart after a back-off.
"""

from __future__ import annotations

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.queueing import QUANTILES, pod_latency
from drpc.sim.types import Action, ClusterConfig, Observation, Phase, PodTable, ResizeStatus

__all__ = ["ClusterSim", "QUANTILES"]

_INF = np.inf


class _Pods:
    """Structure of arrays over pod slots; slots are reused after a pod is freed."""

    FLOAT = (
        "created",
        "start",
        "ready_at",
        "ready_transition",
        "deletion",
        "free_at",
        "restart_at",
        "cpu_req",
        "cpu_lim",
        "mem_req",
        "mem_lim",
        "spec_cpu_req",
        "spec_cpu_lim",
        "spec_mem_req",
        "spec_mem_lim",
        "resize_at",
        "mem_factor",
        "cpu_usage",
        "cpu_demand",
        "mem_ws",
    )
    INT = ("uid", "svc", "node", "phase", "restarts", "resize")

    def __init__(self, capacity: int):
        self.capacity = 0
        for name in self.FLOAT:
            setattr(self, name, np.zeros(0))
        for name in self.INT:
            setattr(self, name, np.zeros(0, dtype=np.int64))
        self.grow(max(capacity, 16))

    def grow(self, capacity: int) -> None:
        extra = capacity - self.capacity
        if extra <= 0:
            return
        for name in self.FLOAT:
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra, np.nan)]))
        for name in self.INT:
            setattr(
                self, name, np.concatenate([getattr(self, name), np.zeros(extra, dtype=np.int64)])
            )
        self.node[self.capacity :] = -1
        self.capacity = capacity

    def allocate(self, n: int) -> np.ndarray:
        free = np.flatnonzero(self.phase == Phase.FREE)
        if free.size < n:
            self.grow(max(2 * self.capacity, self.capacity + n - free.size))
            free = np.flatnonzero(self.phase == Phase.FREE)
        return free[:n]


class ClusterSim:
    """A seeded, deterministic simulation of one app on a cluster, driven by a load series.

    Args:
        app: the compiled app.
        config: nodes and model constants.
        load_rps: entry request rate (req/s, all endpoints together) per interval and substep,
            shape (n_intervals, substeps).
        seed: seeds every random draw (arrival noise, startup jitter, placement ties).
    """

    def __init__(
        self, app: CompiledApp, config: ClusterConfig, load_rps: np.ndarray, seed: int = 0
    ):
        load = np.asarray(load_rps, dtype=np.float64)
        if load.ndim != 2 or load.shape[1] != config.substeps:
            raise ValueError(
                f"load_rps must have shape (n_intervals, {config.substeps}), got {load.shape}"
            )
        if not np.all(np.isfinite(load)) or np.any(load < 0):
            raise ValueError("load_rps must be finite and non-negative")
        self.app = app
        self.config = config
        self.load_rps = load
        self._rps_per_core = config.max_utilization / app.cpu_s
        self.seed = seed
        self.reset(seed)

    # ------------------------------------------------------------------ public API

    @property
    def n_intervals(self) -> int:
        return int(self.load_rps.shape[0])

    @property
    def done(self) -> bool:
        return self.interval >= self.n_intervals

    def reset(self, seed: int | None = None) -> Observation:
        """Start over at t = 0 with the app's initial replicas and resources, all pods Ready."""
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        self._version = getattr(self, "_version", 0) + 1
        app, cfg = self.app, self.config
        self.time_s = 0.0
        self.interval = 0
        self.next_uid = 0
        self.node_cpu_cap = np.full(cfg.n_nodes, cfg.node_cpu_millicores)
        self.node_mem_cap = np.full(cfg.n_nodes, cfg.node_memory_mib)
        self.desired = app.replicas0.copy()
        self.tmpl_cpu_req = app.cpu_request_m0.copy()
        self.tmpl_cpu_lim = app.cpu_limit_m0.copy()
        self.tmpl_mem_req = app.memory_request_mib0.copy()
        self.tmpl_mem_lim = app.memory_limit_mib0.copy()
        self.backlog = np.zeros(app.n_services)
        self._resize_dirty = False
        self._replicas_dirty = False
        self._n_terminating = 0
        self._n_crashed = 0
        self._any_restarts = False
        self.pods = _Pods(int(app.replicas0.sum() * 2))
        svc = np.repeat(np.arange(app.n_services), app.replicas0)
        slots = self._create_pods(svc, now_s=-3600.0)
        self._schedule(now_s=-3600.0)
        p = self.pods
        placed = slots[p.phase[slots] == Phase.STARTING]
        # Warm start: pods placed at reset are Ready since long before t = 0.
        p.phase[placed] = Phase.READY
        p.ready_at[placed] = -3600.0
        p.ready_transition[placed] = -3600.0
        self._last = self._observe_empty()
        return self._last

    def step(self, action: Action | None = None) -> Observation:
        """Apply ``action`` at the start of the next interval and simulate it."""
        if self.done:
            raise RuntimeError("simulation finished: call reset()")
        cfg = self.config
        self._version += 1
        t0 = self.time_s
        t1 = t0 + cfg.interval_s
        self._release_and_restart(t0)
        if action is not None:
            self._apply_action(action, t0)
        self._reconcile_replicas(t0)
        self._admit_resizes(t0)
        self._schedule(t0)
        obs = self._simulate_interval(t0, t1)
        self.time_s = t1
        self.interval += 1
        self._last = obs
        return obs

    @property
    def last_observation(self) -> Observation:
        return self._last

    def resize_pods(
        self,
        uids: np.ndarray,
        cpu_request_millicores: np.ndarray | None = None,
        cpu_limit_millicores: np.ndarray | None = None,
        memory_request_mib: np.ndarray | None = None,
        memory_limit_mib: np.ndarray | None = None,
    ) -> None:
        """Request an in-place resize of individual pods (the ``resize`` subresource).

        Unlike a vertical :class:`Action`, the Deployment template is unchanged, so new pods
        start with the old resources, as in Kubernetes. NaN or ``None`` keeps a value. The
        kubelet admits the resize at the start of the next interval (``InProgress``,
        ``Deferred`` or ``Infeasible``); unknown or terminated pods raise ``KeyError``.
        """
        p, cfg = self.pods, self.config
        uids = np.atleast_1d(np.asarray(uids, dtype=np.int64))
        live = np.flatnonzero(_live(p.phase))
        order = np.argsort(p.uid[live])
        pos = np.searchsorted(p.uid[live][order], uids)
        pos = np.minimum(pos, max(live.size - 1, 0))
        found = live.size > 0 and np.all(p.uid[live][order][pos] == uids)
        if not found:
            missing = uids if live.size == 0 else uids[p.uid[live][order][pos] != uids]
            raise KeyError(f"no live pod with uid {int(missing[0])}")
        idx = live[order][pos]
        hi_cpu, hi_mem = 2.0 * self.node_cpu_cap.max(), 2.0 * self.node_mem_cap.max()
        for value, spec, lo, hi in (
            (cpu_request_millicores, p.spec_cpu_req, cfg.min_cpu_millicores, hi_cpu),
            (cpu_limit_millicores, p.spec_cpu_lim, cfg.min_cpu_millicores, hi_cpu),
            (memory_request_mib, p.spec_mem_req, cfg.min_memory_mib, hi_mem),
            (memory_limit_mib, p.spec_mem_lim, cfg.min_memory_mib, hi_mem),
        ):
            if value is None:
                continue
            v = np.broadcast_to(np.asarray(value, dtype=np.float64), uids.shape)
            spec[idx] = np.where(np.isfinite(v), np.clip(v, lo, hi), spec[idx])
        p.spec_cpu_req[idx] = np.minimum(p.spec_cpu_req[idx], p.spec_cpu_lim[idx])
        p.spec_mem_req[idx] = np.minimum(p.spec_mem_req[idx], p.spec_mem_lim[idx])
        pend = idx[p.phase[idx] == Phase.PENDING]
        p.cpu_req[pend], p.cpu_lim[pend] = p.spec_cpu_req[pend], p.spec_cpu_lim[pend]
        p.mem_req[pend], p.mem_lim[pend] = p.spec_mem_req[pend], p.spec_mem_lim[pend]
        self._resize_dirty = True

    # ------------------------------------------------------------------ lifecycle

    def _create_pods(self, svc: np.ndarray, now_s: float) -> np.ndarray:
        p = self.pods
        slots = p.allocate(svc.size)
        n = slots.size
        p.uid[slots] = np.arange(self.next_uid, self.next_uid + n)
        self.next_uid += n
        p.svc[slots] = svc
        p.node[slots] = -1
        p.phase[slots] = Phase.PENDING
        p.restarts[slots] = 0
        p.resize[slots] = ResizeStatus.NONE
        for name in ("start", "ready_at", "ready_transition", "deletion", "restart_at"):
            getattr(p, name)[slots] = np.nan
        p.created[slots] = now_s
        p.free_at[slots] = _INF
        p.resize_at[slots] = _INF
        p.cpu_req[slots] = self.tmpl_cpu_req[svc]
        p.cpu_lim[slots] = self.tmpl_cpu_lim[svc]
        p.mem_req[slots] = self.tmpl_mem_req[svc]
        p.mem_lim[slots] = self.tmpl_mem_lim[svc]
        p.spec_cpu_req[slots] = p.cpu_req[slots]
        p.spec_cpu_lim[slots] = p.cpu_lim[slots]
        p.spec_mem_req[slots] = p.mem_req[slots]
        p.spec_mem_lim[slots] = p.mem_lim[slots]
        j = self.config.memory_jitter
        p.mem_factor[slots] = 1.0 + self.rng.uniform(-j, j, n)
        p.cpu_usage[slots] = 0.0
        p.cpu_demand[slots] = 0.0
        p.mem_ws[slots] = 0.0
        return slots

    def _release_and_restart(self, t0: float) -> None:
        p = self.pods
        if self._n_terminating:
            done = (p.phase == Phase.TERMINATING) & (p.free_at <= t0)
            p.phase[done] = Phase.FREE
            p.node[done] = -1
            self._n_terminating -= int(done.sum())
        if self._n_crashed:
            idx = np.flatnonzero((p.phase == Phase.CRASHED) & (p.restart_at <= t0))
            if idx.size:
                p.phase[idx] = Phase.STARTING
                p.start[idx] = p.restart_at[idx]
                p.ready_at[idx] = p.restart_at[idx] + self._startup_time(p.svc[idx])
                self._n_crashed -= idx.size
        if self._any_restarts:
            long_ready = (p.phase == Phase.READY) & (
                t0 - p.ready_transition >= self.config.backoff_reset_s
            )
            p.restarts[long_ready] = 0
            self._any_restarts = bool(p.restarts.any())

    def _startup_time(self, svc: np.ndarray) -> np.ndarray:
        j = self.config.startup_jitter
        return self.app.startup_s[svc] * (1.0 + self.rng.uniform(-j, j, svc.size))

    def _apply_action(self, action: Action, t0: float) -> None:
        app, cfg = self.app, self.config
        n = app.n_services
        for name in Action.FIELDS:
            value = getattr(action, name)
            if value is not None and np.shape(value) != (n,):
                raise ValueError(f"Action.{name}: expected shape ({n},), got {np.shape(value)}")
        if action.replicas is not None:
            r = np.asarray(action.replicas, dtype=np.float64)
            keep = ~np.isfinite(r) | (r < 0)
            target = np.where(keep, self.desired, np.rint(np.where(keep, 0, r)))
            desired = np.clip(target, app.min_replicas, app.max_replicas).astype(np.int64)
            self._replicas_dirty |= bool(np.any(desired != self.desired))
            self.desired = desired
        # Requests above a node's allocatable are accepted, as the API server does, and end up
        # Infeasible (resize) or Pending (new pods); only absurd values are clamped.
        node_cpu = 2.0 * self.node_cpu_cap.max()
        node_mem = 2.0 * self.node_mem_cap.max()
        changed = np.zeros(n, dtype=bool)
        for name, attr, lo, hi in (
            ("cpu_request_millicores", "tmpl_cpu_req", cfg.min_cpu_millicores, node_cpu),
            ("cpu_limit_millicores", "tmpl_cpu_lim", cfg.min_cpu_millicores, node_cpu),
            ("memory_request_mib", "tmpl_mem_req", cfg.min_memory_mib, node_mem),
            ("memory_limit_mib", "tmpl_mem_lim", cfg.min_memory_mib, node_mem),
        ):
            value = getattr(action, name)
            if value is None:
                continue
            v = np.asarray(value, dtype=np.float64)
            cur = getattr(self, attr)
            new = np.where(np.isfinite(v), np.clip(v, lo, hi), cur)
            changed |= new != cur
            setattr(self, attr, new)
        if changed.any():
            self._resize_dirty = True
            self.tmpl_cpu_req = np.minimum(self.tmpl_cpu_req, self.tmpl_cpu_lim)
            self.tmpl_mem_req = np.minimum(self.tmpl_mem_req, self.tmpl_mem_lim)
            p = self.pods
            live = _live(p.phase) & changed[p.svc]
            s = p.svc[live]
            p.spec_cpu_req[live] = self.tmpl_cpu_req[s]
            p.spec_cpu_lim[live] = self.tmpl_cpu_lim[s]
            p.spec_mem_req[live] = self.tmpl_mem_req[s]
            p.spec_mem_lim[live] = self.tmpl_mem_lim[s]
            # Pending pods have no node yet: they simply start with the new resources.
            pend = live & (p.phase == Phase.PENDING)
            p.cpu_req[pend] = p.spec_cpu_req[pend]
            p.cpu_lim[pend] = p.spec_cpu_lim[pend]
            p.mem_req[pend] = p.spec_mem_req[pend]
            p.mem_lim[pend] = p.spec_mem_lim[pend]

    def _reconcile_replicas(self, t0: float) -> None:
        """ReplicaSet controller: create or delete pods so live pods match the target."""
        if not self._replicas_dirty:
            return
        self._replicas_dirty = False
        p = self.pods
        n = self.app.n_services
        live = np.flatnonzero(_live(p.phase))
        count = np.bincount(p.svc[live], minlength=n)
        deficit = self.desired - count
        up = np.maximum(deficit, 0)
        if up.any():
            self._create_pods(np.repeat(np.arange(n), up), t0)
        down = np.maximum(-deficit, 0)
        if down.any():
            cand = live[down[p.svc[live]] > 0]
            # ReplicaSet deletion order: unscheduled, then Pending < Crashed < Starting < Ready,
            # then more recently Ready, then more restarts, then newer pods first.
            rank_phase = np.select(
                [
                    p.phase[cand] == Phase.PENDING,
                    p.phase[cand] == Phase.CRASHED,
                    p.phase[cand] == Phase.STARTING,
                ],
                [0, 1, 2],
                3,
            )
            order = np.lexsort(
                (
                    -p.created[cand],
                    -p.restarts[cand],
                    -np.nan_to_num(p.ready_transition[cand], nan=_INF),
                    rank_phase,
                    p.svc[cand],
                )
            )
            cand = cand[order]
            svc_sorted = p.svc[cand]
            first = np.searchsorted(svc_sorted, svc_sorted, side="left")
            rank_in_svc = np.arange(cand.size) - first
            victims = cand[rank_in_svc < down[svc_sorted]]
            self._delete_pods(victims, t0)

    def _delete_pods(self, idx: np.ndarray, t0: float) -> None:
        p = self.pods
        unscheduled = idx[p.node[idx] < 0]
        p.phase[unscheduled] = Phase.FREE
        sched = idx[p.node[idx] >= 0]
        p.phase[sched] = Phase.TERMINATING
        self._n_terminating += sched.size
        p.deletion[sched] = t0
        p.free_at[sched] = t0 + self.config.termination_grace_s
        p.resize[sched] = ResizeStatus.NONE
        p.resize_at[sched] = _INF

    def _node_free(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.pods
        held = np.flatnonzero((p.node >= 0) & (p.phase != Phase.FREE))
        nn = self.config.n_nodes
        cpu = np.bincount(p.node[held], weights=p.cpu_req[held], minlength=nn)
        mem = np.bincount(p.node[held], weights=p.mem_req[held], minlength=nn)
        return self.node_cpu_cap - cpu, self.node_mem_cap - mem

    def _admit_resizes(self, t0: float) -> None:
        """Kubelet resize admission for pods whose spec differs from what they have."""
        if not self._resize_dirty:
            return
        self._resize_dirty = False
        p = self.pods
        scheduled = (p.node >= 0) & (
            (p.phase == Phase.STARTING) | (p.phase == Phase.READY) | (p.phase == Phase.CRASHED)
        )
        want = scheduled & (
            (p.spec_cpu_req != p.cpu_req)
            | (p.spec_cpu_lim != p.cpu_lim)
            | (p.spec_mem_req != p.mem_req)
            | (p.spec_mem_lim != p.mem_lim)
        )
        want &= p.resize != ResizeStatus.IN_PROGRESS
        idx = np.flatnonzero(want)
        if idx.size == 0:
            return
        node = p.node[idx]
        infeasible = (p.spec_cpu_req[idx] > self.node_cpu_cap[node]) | (
            p.spec_mem_req[idx] > self.node_mem_cap[node]
        )
        p.resize[idx[infeasible]] = ResizeStatus.INFEASIBLE
        idx = idx[~infeasible]
        # Memory-limit decreases below the current working set are not actuated (1.35
        # best-effort check); they stay pending and are retried next interval.
        too_small = p.spec_mem_lim[idx] < p.mem_ws[idx]
        p.resize[idx[too_small]] = ResizeStatus.DEFERRED
        idx = idx[~too_small]
        self._resize_dirty = bool(too_small.any())
        if idx.size == 0:
            return
        d_cpu = p.spec_cpu_req[idx] - p.cpu_req[idx]
        d_mem = p.spec_mem_req[idx] - p.mem_req[idx]
        free_cpu, free_mem = self._node_free()
        shrink = (d_cpu <= 0) & (d_mem <= 0)
        # Shrinks first: they only free room.
        free_cpu -= np.bincount(p.node[idx[shrink]], weights=d_cpu[shrink], minlength=free_cpu.size)
        free_mem -= np.bincount(p.node[idx[shrink]], weights=d_mem[shrink], minlength=free_mem.size)
        grow = np.flatnonzero(~shrink)
        order = grow[np.argsort(p.node[idx[grow]], kind="stable")]
        nodes = p.node[idx[order]]
        cum_cpu = _group_cumsum(np.maximum(d_cpu[order], 0), nodes)
        cum_mem = _group_cumsum(np.maximum(d_mem[order], 0), nodes)
        fits = (cum_cpu <= free_cpu[nodes] + 1e-9) & (cum_mem <= free_mem[nodes] + 1e-9)
        admitted = np.concatenate([idx[shrink], idx[order[fits]]])
        deferred = idx[order[~fits]]
        p.resize[deferred] = ResizeStatus.DEFERRED
        self._resize_dirty = bool(deferred.size)
        p.resize[admitted] = ResizeStatus.IN_PROGRESS
        p.resize_at[admitted] = t0 + self.config.resize_delay_s
        # Allocated requests change on admission; limits when actuated.
        p.cpu_req[admitted] = p.spec_cpu_req[admitted]
        p.mem_req[admitted] = p.spec_mem_req[admitted]

    def _schedule(self, now_s: float) -> None:
        """kube-scheduler: place Pending pods in creation order on nodes their requests fit.

        Filter: requests fit the node's free allocatable. Score: LeastAllocated (mean free
        fraction of CPU and memory after placement), ties broken at random (seeded). Each
        round places at most one pod per node, then recomputes free room and scores.
        """
        p = self.pods
        pending = np.flatnonzero(p.phase == Phase.PENDING)
        if pending.size == 0:
            return
        pending = pending[np.argsort(p.created[pending], kind="stable")]
        free_cpu, free_mem = self._node_free()
        placed_nodes = np.full(pending.size, -1)
        active = np.arange(pending.size)
        cap_cpu, cap_mem = self.node_cpu_cap, self.node_mem_cap
        while active.size:
            # Each round places at most one pod per node, so only the first pods in the
            # queue can win: score those (bounds memory at nodes^2 entries).
            batch = max(64, cap_cpu.size)
            queue, active = active[:batch], active[batch:]
            pod = pending[queue]
            rc = p.cpu_req[pod][:, None]
            rm = p.mem_req[pod][:, None]
            fits = (rc <= free_cpu[None, :] + 1e-9) & (rm <= free_mem[None, :] + 1e-9)
            ok = fits.any(axis=1)
            queue, pod, fits, rc, rm = queue[ok], pod[ok], fits[ok], rc[ok], rm[ok]
            if queue.size == 0:
                continue  # none of these fits anywhere now; they stay Pending
            score = ((free_cpu - rc) / cap_cpu + (free_mem - rm) / cap_mem).astype(np.float32)
            score += self.rng.random(score.shape, dtype=np.float32) * np.float32(1e-5)
            score[~fits] = -np.inf
            choice = np.argmax(score, axis=1)
            _, first = np.unique(choice, return_index=True)  # first pod (in order) per node
            win = queue[first]
            nodes = choice[first]
            placed_nodes[win] = nodes
            np.subtract.at(free_cpu, nodes, p.cpu_req[pending[win]])
            np.subtract.at(free_mem, nodes, p.mem_req[pending[win]])
            active = np.concatenate([np.setdiff1d(queue, win, assume_unique=True), active])
        ok = placed_nodes >= 0
        idx = pending[ok]
        p.node[idx] = placed_nodes[ok]
        p.phase[idx] = Phase.STARTING
        start = now_s + self.config.scheduling_delay_s
        p.start[idx] = start
        p.ready_at[idx] = start + self._startup_time(p.svc[idx])

    # ------------------------------------------------------------------ one interval

    def _capacity_by_substep(self, t0: float):
        """Ready CPU (cores) and ready pod count per (substep, service)."""
        cfg = self.config
        p = self.pods
        n, k = self.app.n_services, cfg.substeps
        dt = cfg.interval_s / k
        tk = t0 + (np.arange(k) + 0.5) * dt
        serving = np.flatnonzero((p.phase == Phase.READY) | (p.phase == Phase.STARTING))
        ready_at = np.where(p.phase[serving] == Phase.READY, -_INF, p.ready_at[serving])
        switch = np.where(p.resize[serving] == ResizeStatus.IN_PROGRESS, p.resize_at[serving], _INF)
        lim0 = p.cpu_lim[serving] / 1000.0
        lim1 = p.spec_cpu_lim[serving] / 1000.0
        # Node CPU contention: limits may add up to more than a node has. When the pods on a
        # node demanded more CPU than it has in the last interval, the node is split in
        # proportion to demand: each pod gets demand x (node CPU / total demand), within its limit.
        node = p.node[serving]
        pod_demand = p.cpu_demand[serving]
        demand = np.bincount(node, weights=pod_demand, minlength=cfg.n_nodes)
        share = np.minimum(1.0, self.node_cpu_cap / np.maximum(demand, 1e-9))
        if np.any(share < 1.0):
            fair = np.where(share[node] < 1.0, pod_demand / 1000.0 * share[node], np.inf)
            fair = np.maximum(fair, 0.01)
            lim0 = np.minimum(lim0, fair)
            lim1 = np.minimum(lim1, fair)
        static = (ready_at <= tk[0]) & (switch > tk[-1])
        svc = p.svc[serving]
        cores = np.broadcast_to(
            np.bincount(svc[static], weights=lim0[static], minlength=n).astype(np.float64), (k, n)
        ).copy()
        count = np.broadcast_to(
            np.bincount(svc[static], minlength=n).astype(np.float64), (k, n)
        ).copy()
        dyn = np.flatnonzero(~static & (ready_at <= tk[-1]))
        if dyn.size:
            ready = ready_at[dyn][None, :] <= tk[:, None]  # (k, D)
            lim = np.where(switch[dyn][None, :] <= tk[:, None], lim1[dyn], lim0[dyn])
            flat = (np.arange(k)[:, None] * n + svc[dyn][None, :]).ravel()
            cores += np.bincount(flat, weights=(ready * lim).ravel(), minlength=k * n).reshape(k, n)
            count += np.bincount(
                flat, weights=ready.ravel().astype(np.float64), minlength=k * n
            ).reshape(k, n)
        return cores, count

    def _arrivals(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Endpoint rates (k, E) and service arrival rates (k, S) for interval ``i``."""
        app, cfg = self.app, self.config
        total = self.load_rps[min(i, self.n_intervals - 1)]  # (k,)
        ep = total[:, None] * app.endpoint_weight[None, :]
        if cfg.arrival_noise == "poisson":
            mean_count = ep.mean(axis=0) * cfg.interval_s
            factor = np.where(
                mean_count > 0,
                self.rng.poisson(mean_count) / np.maximum(mean_count, 1e-12),
                0.0,
            )
            ep = ep * factor[None, :]
        svc = (app.visits_t @ ep.T).T  # (k, S)
        return ep, svc

    def _simulate_interval(self, t0: float, t1: float) -> Observation:
        app, cfg = self.app, self.config
        dt = cfg.interval_s / cfg.substeps
        cores, count = self._capacity_by_substep(t0)
        ep_rate, lam = self._arrivals(self.interval)
        mu = cores * self._rps_per_core  # sustainable req/s
        arrived = lam.sum(axis=0) * dt

        served, failed, delay_mean, delay_q, sat_frac = _fluid_backlog(
            lam, mu, self.backlog, dt, app.timeout_s
        )
        # served/failed are counts over the interval; delay_* per service (s).
        n_ready = count.mean(axis=0)
        c_total = cores.mean(axis=0)
        has_pods = n_ready > 0
        n_safe = np.where(has_pods, n_ready, 1.0)
        c_pod = np.where(has_pods, c_total / n_safe, 1.0)
        lam_pod = served / cfg.interval_s / n_safe
        visit_s, soj_q, wait_s, thr = pod_latency(
            lam_pod, app.cpu_s, c_pod, cfg.cfs_period_s, cfg.max_utilization
        )
        thr = (1.0 - sat_frac) * thr + sat_frac
        mean_s = visit_s + delay_mean
        q_s = soj_q + delay_q
        timeout = app.timeout_s
        no_pods = ~has_pods
        mean_s = np.where(no_pods, timeout, np.minimum(mean_s, timeout))
        q_s = np.where(no_pods[None, :], timeout, np.minimum(q_s, timeout))
        excess = np.maximum(q_s - mean_s[None, :], 0.0)

        # Memory and OOM kills (ready pods; working set from in-flight requests).
        inflight_pod = np.minimum(
            lam_pod * visit_s + self.backlog / n_safe, cfg.max_inflight_per_pod
        )
        oom = self._memory_and_oom(inflight_pod, served, arrived, count[-1], t1)
        killed_inflight = oom * inflight_pod
        failed = failed + np.minimum(killed_inflight, served)
        served = np.maximum(served - killed_inflight, 0.0)

        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(arrived > 0, np.minimum(failed / arrived, 1.0), 0.0)

        # End to end, along each endpoint's call tree.
        e2e = app.compose(mean_s, excess)  # (1 + Q, E)
        log_ok = np.asarray(app.visits @ np.log1p(-np.minimum(err, 1.0 - 1e-12))).ravel()
        ep_err = 1.0 - np.exp(log_ok)
        # The client gives up at the timeout: failed requests count at it, nothing exceeds it.
        e2e = np.minimum(e2e, timeout)
        ep_q = np.where(ep_err[None, :] > (1.0 - QUANTILES)[:, None], timeout, e2e[1:])
        ep_mean = (1.0 - ep_err) * e2e[0] + ep_err * timeout

        self._advance_pods(t1)
        return self._observation(
            t1,
            lam=arrived / cfg.interval_s,
            served=served,
            err=err,
            mean_s=mean_s,
            q_s=q_s,
            wait_s=np.where(no_pods, 0.0, wait_s + delay_mean),
            thr=thr,
            oom=oom,
            ep_rate=ep_rate.mean(axis=0),
            ep_err=ep_err,
            ep_mean=ep_mean,
            ep_q=ep_q,
        )

    def _memory_and_oom(self, inflight_pod, served, arrived, ready_end, t1) -> np.ndarray:
        """Set per-pod working set and CPU usage; OOM-kill pods above their memory limit."""
        app, cfg, p = self.app, self.config, self.pods
        serving = np.flatnonzero((p.phase == Phase.READY) | (p.phase == Phase.STARTING))
        svc = p.svc[serving]
        ready = p.ready_at[serving] <= t1
        base = app.memory_base_mib[svc]
        ws = (
            np.where(ready, base + app.memory_per_inflight_mib[svc] * inflight_pod[svc], base)
            * p.mem_factor[serving]
        )
        p.mem_ws[serving] = ws
        per_pod = app.cpu_s / (cfg.interval_s * np.maximum(ready_end, 1.0))
        lim_cores = p.cpu_lim[serving] / 1000.0
        starting = cfg.startup_cpu_fraction * lim_cores
        p.cpu_usage[serving] = 1000.0 * np.where(
            ready, np.minimum((served * per_pod)[svc], lim_cores), starting
        )
        # What the pod would use without node contention: offered load up to its limit.
        p.cpu_demand[serving] = 1000.0 * np.where(
            ready, np.minimum((arrived * per_pod)[svc], lim_cores), starting
        )
        killed = serving[ws > p.mem_lim[serving]]
        if killed.size:
            p.phase[killed] = Phase.CRASHED
            self._n_crashed += killed.size
            self._any_restarts = True
            p.restarts[killed] += 1
            backoff = np.minimum(
                cfg.oom_backoff_initial_s * 2.0 ** (p.restarts[killed] - 1), cfg.oom_backoff_max_s
            )
            p.restart_at[killed] = t1 + backoff
            p.ready_transition[killed] = t1
            p.cpu_usage[killed] = 0.0
            p.cpu_demand[killed] = 0.0
            p.mem_ws[killed] = 0.0
        return np.bincount(p.svc[killed], minlength=app.n_services).astype(np.float64)

    def _advance_pods(self, t1: float) -> None:
        p = self.pods
        became = np.flatnonzero((p.phase == Phase.STARTING) & (p.ready_at <= t1))
        p.phase[became] = Phase.READY
        p.ready_transition[became] = p.ready_at[became]
        done = np.flatnonzero((p.resize == ResizeStatus.IN_PROGRESS) & (p.resize_at <= t1))
        p.cpu_lim[done] = p.spec_cpu_lim[done]
        p.mem_lim[done] = p.spec_mem_lim[done]
        p.resize[done] = ResizeStatus.NONE
        p.resize_at[done] = _INF

    # ------------------------------------------------------------------ observations

    def _pod_table(self) -> PodTable:
        p = self.pods
        live = np.flatnonzero(p.phase != Phase.FREE)
        live = live[np.argsort(p.uid[live], kind="stable")]
        return PodTable(
            uid=p.uid[live].copy(),
            service=p.svc[live].copy(),
            node=p.node[live].copy(),
            phase=p.phase[live].copy(),
            ready=p.phase[live] == Phase.READY,
            created_s=p.created[live].copy(),
            start_s=p.start[live].copy(),
            ready_transition_s=p.ready_transition[live].copy(),
            deletion_s=p.deletion[live].copy(),
            restarts=p.restarts[live].copy(),
            cpu_request_millicores=p.cpu_req[live].copy(),
            cpu_limit_millicores=p.cpu_lim[live].copy(),
            memory_request_mib=p.mem_req[live].copy(),
            memory_limit_mib=p.mem_lim[live].copy(),
            cpu_usage_millicores=p.cpu_usage[live].copy(),
            memory_working_set_mib=p.mem_ws[live].copy(),
            resize_status=p.resize[live].copy(),
            spec_cpu_request_millicores=p.spec_cpu_req[live].copy(),
            spec_cpu_limit_millicores=p.spec_cpu_lim[live].copy(),
            spec_memory_request_mib=p.spec_mem_req[live].copy(),
            spec_memory_limit_mib=p.spec_mem_lim[live].copy(),
        )

    def _node_usage(self) -> np.ndarray:
        p = self.pods
        on = np.flatnonzero(
            (p.node >= 0) & ((p.phase == Phase.READY) | (p.phase == Phase.STARTING))
        )
        return np.bincount(p.node[on], weights=p.cpu_usage[on], minlength=self.config.n_nodes)

    def _cluster_totals(self):
        p = self.pods
        held = np.flatnonzero((p.node >= 0) & (p.phase != Phase.FREE))
        nn = self.config.n_nodes
        node_cpu = np.bincount(p.node[held], weights=p.cpu_req[held], minlength=nn)
        node_mem = np.bincount(p.node[held], weights=p.mem_req[held], minlength=nn)
        return node_cpu, node_mem

    def _observation(
        self, t1, *, lam, served, err, mean_s, q_s, wait_s, thr, oom, ep_rate, ep_err, ep_mean, ep_q
    ) -> Observation:
        app, cfg, p = self.app, self.config, self.pods
        n = app.n_services
        on = p.phase == Phase.READY
        ready = np.bincount(p.svc[on], minlength=n)
        pending = np.bincount(p.svc[p.phase == Phase.PENDING], minlength=n)
        # Ready pods only, as the HPA counts CPU: a starting pod's warm-up burn (and its bare
        # working set) says nothing about the load per serving pod, and counting it makes a
        # utilisation rule scale out for the pods it just started.
        usage = np.bincount(p.svc[on], weights=p.cpu_usage[on], minlength=n)
        ws = np.bincount(p.svc[on], weights=p.mem_ws[on], minlength=n)
        node_cpu, node_mem = self._cluster_totals()
        ms = 1000.0
        return Observation(
            time_s=t1,
            interval=self.interval,
            request_rate_rps=lam,
            throughput_rps=served / cfg.interval_s,
            error_rate=err,
            latency_mean_ms=mean_s * ms,
            latency_p50_ms=q_s[0] * ms,
            latency_p95_ms=q_s[1] * ms,
            latency_p99_ms=q_s[2] * ms,
            queueing_delay_ms=wait_s * ms,
            cpu_usage_millicores=usage,
            cpu_throttled_ratio=np.where(ready > 0, thr, 0.0),
            memory_working_set_mib=ws,
            replicas_desired=self.desired.copy(),
            replicas_ready=ready,
            pods_pending=pending,
            cpu_request_millicores=self.tmpl_cpu_req.copy(),
            cpu_limit_millicores=self.tmpl_cpu_lim.copy(),
            memory_request_mib=self.tmpl_mem_req.copy(),
            memory_limit_mib=self.tmpl_mem_lim.copy(),
            oom_kills=oom,
            backlog_requests=self.backlog.copy(),
            endpoint_rps=ep_rate,
            endpoint_error_rate=ep_err,
            endpoint_latency_mean_ms=ep_mean * ms,
            endpoint_latency_p50_ms=ep_q[0] * ms,
            endpoint_latency_p95_ms=ep_q[1] * ms,
            endpoint_latency_p99_ms=ep_q[2] * ms,
            endpoint_slo_ms=app.slo_ms.copy(),
            cpu_allocated_millicores=float(node_cpu.sum()),
            memory_allocated_mib=float(node_mem.sum()),
            node_cpu_requested_millicores=node_cpu,
            node_cpu_usage_millicores=self._node_usage(),
            node_memory_requested_mib=node_mem,
            pod_snapshot=self._pod_snapshot_fn(),
        )

    def _pod_snapshot_fn(self):
        version = self._version

        def snapshot() -> PodTable:
            if self._version != version:
                raise RuntimeError(
                    "the pod table of an observation must be read before the next step()"
                )
            return self._pod_table()

        return snapshot

    def _observe_empty(self) -> Observation:
        n, e = self.app.n_services, self.app.n_endpoints
        z, ze = np.zeros(n), np.zeros(e)
        return self._observation(
            self.time_s,
            lam=z,
            served=z,
            err=z,
            mean_s=z,
            q_s=np.zeros((3, n)),
            wait_s=z,
            thr=z,
            oom=z,
            ep_rate=ze,
            ep_err=ze,
            ep_mean=ze,
            ep_q=np.zeros((3, e)),
        )


def _live(phase: np.ndarray) -> np.ndarray:
    """Pods a ReplicaSet counts: not Free and not Terminating."""
    return (phase != Phase.FREE) & (phase != Phase.TERMINATING)


def _group_cumsum(values: np.ndarray, groups_sorted: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each new group (groups must be sorted)."""
    if values.size == 0:
        return values
    c = np.cumsum(values)
    starts = np.r_[True, groups_sorted[1:] != groups_sorted[:-1]]
    offset = np.where(starts, c - values, 0.0)
    offset = np.maximum.accumulate(np.where(starts, offset, -_INF))
    return c - offset


def _fluid_backlog(lam, mu, backlog, dt, timeout_s):
    """Backlog of arrivals beyond sustainable capacity, per substep, for services that need it.

    Args:
        lam, mu: (k, S) arrival rate and sustainable service rate (req/s).
        backlog: (S,) requests queued at the start; updated in place.

    Returns:
        served (S,), failed (S,) counts over the interval; mean backlog delay (S,) and its
        quantiles (Q, S) over arrivals, in seconds; share of substeps with a backlog (S,).
    """
    k, n = lam.shape
    served = lam.sum(axis=0) * dt
    failed = np.zeros(n)
    delay_mean = np.zeros(n)
    delay_q = np.zeros((QUANTILES.size, n))
    sat = np.zeros(n)
    hot = np.flatnonzero((lam > mu).any(axis=0) | (backlog > 0))
    if hot.size == 0:
        return served, failed, delay_mean, delay_q, sat
    lam_h, mu_h = lam[:, hot], mu[:, hot]
    b = backlog[hot].copy()
    srv = np.zeros_like(b)
    drop = np.zeros_like(b)
    delays = np.zeros((k, hot.size))
    for i in range(k):
        b = b + lam_h[i] * dt
        out = np.minimum(b, mu_h[i] * dt)
        srv += out
        b = b - out
        limit = timeout_s * mu_h[i]  # requests that would wait longer than the timeout fail
        d = np.maximum(b - limit, 0.0)
        drop += d
        b = b - d
        with np.errstate(divide="ignore", invalid="ignore"):
            delays[i] = np.where(mu_h[i] > 0, b / mu_h[i], 0.0)
    backlog[hot] = b
    served[hot] = srv
    failed[hot] = drop
    w = lam_h * dt
    wsum = w.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delay_mean[hot] = np.where(wsum > 0, (w * delays).sum(axis=0) / wsum, 0.0)
        order = np.argsort(delays, axis=0)
        d_sorted = np.take_along_axis(delays, order, axis=0)
        cw = np.cumsum(np.take_along_axis(w, order, axis=0), axis=0) / np.maximum(wsum, 1e-12)
    for j, q in enumerate(QUANTILES):
        pos = np.minimum((cw < q).sum(axis=0), k - 1)
        delay_q[j, hot] = d_sorted[pos, np.arange(hot.size)]
    sat[hot] = (delays > 0).mean(axis=0)
    return served, failed, delay_mean, delay_q, sat
