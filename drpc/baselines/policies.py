"""The baselines as policies on the simulator: HPA, VPA, threshold, static and the oracle.

Each adapter turns an :class:`~drpc.sim.types.Observation` into the inputs the pure functions
of :mod:`drpc.baselines.hpa`, :mod:`drpc.baselines.vpa` and :mod:`drpc.baselines.threshold`
expect (upstream-shaped pods and metrics), and their outputs into an
:class:`~drpc.sim.types.Action`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drpc.baselines.hpa import (
    DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
    HPAController,
    PodInfo,
    PodMetric,
    default_behavior,
)
from drpc.baselines.threshold import (
    ThresholdConfig,
    VerticalThresholdConfig,
    next_last_change_s,
    threshold_cpu_limits,
    threshold_replicas,
)
from drpc.baselines.vpa import MIB, VPAConfig, VPARecommender, needs_update
from drpc.policy import register_policy
from drpc.sim.cluster import ClusterSim
from drpc.sim.graph import CompiledApp
from drpc.sim.queueing import pod_latency
from drpc.sim.types import Action, ClusterConfig, Observation, Phase, PodTable

__all__ = [
    "HPAPolicy",
    "HPAParams",
    "VPAPolicy",
    "VPAParams",
    "ThresholdPolicy",
    "ThresholdParams",
    "StaticPolicy",
    "StaticParams",
    "OraclePolicy",
    "OracleParams",
    "pods_as_upstream",
    "steady_state_p99_ms",
]


# ------------------------------------------------------------------------------------ HPA


def pods_as_upstream(
    pods: PodTable, service: int, now_s: float
) -> tuple[list[PodInfo], dict[str, PodMetric]]:
    """The pods of one service as the HPA sees them: ``v1.Pod`` fields and metrics-server samples.

    Pending pods have no start time and no metrics; starting and crash-looping pods are
    ``Running`` and not Ready (crash-looping ones without metrics: their container is down);
    terminating pods carry a deletion timestamp.
    """
    idx = np.flatnonzero(pods.service == service)
    infos: list[PodInfo] = []
    metrics: dict[str, PodMetric] = {}
    for i in idx:
        phase = int(pods.phase[i])
        name = f"pod-{int(pods.uid[i])}"
        start = float(pods.start_s[i])
        transition = float(pods.ready_transition_s[i])
        if math.isnan(transition) and not math.isnan(start):
            transition = start  # Ready=False since the container started
        deletion = float(pods.deletion_s[i])
        infos.append(
            PodInfo(
                name=name,
                phase="Pending" if phase == Phase.PENDING else "Running",
                ready=phase == Phase.READY,
                deletion_timestamp_s=None if math.isnan(deletion) else deletion,
                start_time_s=None if math.isnan(start) else start,
                ready_transition_s=None if math.isnan(transition) else transition,
                request_millicores=int(pods.cpu_request_millicores[i]),
            )
        )
        if phase in (Phase.READY, Phase.STARTING):
            metrics[name] = PodMetric(
                usage_millicores=int(pods.cpu_usage_millicores[i]),
                timestamp_s=now_s,
                window_s=15.0,
            )
    return infos, metrics


@dataclass(frozen=True)
class HPAParams:
    """``hpa:target=60,behavior=default``."""

    target: int = 80
    """CPU averageUtilization target (% of request)."""
    behavior: str = "default"
    """'default' (autoscaling/v2 default behavior) or 'legacy' (no behavior field)."""
    tolerance: float = 0.1
    """Usage-ratio tolerance."""
    scale_down_window_s: int = int(DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S)
    """Scale-down stabilisation window (s): the controller's
    ``--horizontal-pod-autoscaler-downscale-stabilization`` (upstream default 300), which an
    HPA with ``behavior: {}`` uses, as if ``behavior.scaleDown.stabilizationWindowSeconds``
    were set to it (legacy path: the controller flag)."""

    def __post_init__(self) -> None:
        if not 1 <= self.target <= 1000:
            raise ValueError(f"target must be a percentage in [1, 1000], got {self.target}")
        if self.behavior not in ("default", "legacy"):
            raise ValueError(f"behavior must be 'default' or 'legacy', got {self.behavior!r}")
        if not 0 <= self.scale_down_window_s <= 3600:
            raise ValueError(
                "scale_down_window_s must be in [0, 3600] (upstream's limit), got "
                f"{self.scale_down_window_s}"
            )


class HPAPolicy:
    """One upstream HPA (CPU utilisation metric) per service, synced every interval."""

    name = "hpa"

    def __init__(self, params: HPAParams | None = None):
        self.params = params or HPAParams()

    def reset(self, sim: ClusterSim) -> None:
        app = sim.app
        window_s = float(self.params.scale_down_window_s)
        behavior = default_behavior(window_s) if self.params.behavior == "default" else None
        self.controllers = [
            HPAController(
                max_replicas=int(app.max_replicas[s]),
                min_replicas=max(1, int(app.min_replicas[s])),
                behavior=behavior,
                tolerance=self.params.tolerance,
                downscale_stabilization_window_s=window_s,
            )
            for s in range(app.n_services)
        ]

    def act(self, obs: Observation) -> Action:
        desired = obs.replicas_desired.astype(np.float64)
        pods = obs.pods
        for s, hpa in enumerate(self.controllers):
            infos, metrics = pods_as_upstream(pods, s, obs.time_s)
            desired[s] = hpa.sync(
                obs.time_s, int(obs.replicas_desired[s]), infos, metrics, self.params.target
            )
        return Action(replicas=desired)


# ------------------------------------------------------------------------------------ VPA


@dataclass(frozen=True)
class VPAParams:
    """``vpa:update_interval_s=60``."""

    update_interval_s: float = 60.0
    """Recommender and updater loop period (upstream: 1 min)."""
    min_samples: int = 5
    """Samples a service needs before the updater acts on it."""


class VPAPolicy:
    """The VPA recommender fed with per-pod usage, applied by in-place resize.

    Replicas stay as deployed. All pods of a service share one aggregate state, as upstream
    aggregates containers by (VPA, container name); the sample per interval is the mean per
    ready pod. Limits keep their ratio to requests (``controlledValues: RequestsAndLimits``).
    """

    name = "vpa"

    def __init__(self, params: VPAParams | None = None):
        self.params = params or VPAParams()

    def reset(self, sim: ClusterSim) -> None:
        n = sim.app.n_services
        self.rec = VPARecommender(n, VPAConfig())
        self.next_update_s = 0.0
        self.samples = np.zeros(n, dtype=np.int64)

    def act(self, obs: Observation) -> Action | None:
        now = obs.time_s
        ready = obs.replicas_ready
        has = ready > 0
        per_pod_cpu = np.where(has, obs.cpu_usage_millicores / np.maximum(ready, 1), 0.0)
        per_pod_mem = np.where(has, obs.memory_working_set_mib / np.maximum(ready, 1), 0.0)
        self.rec.add_cpu_samples(now, per_pod_cpu, obs.cpu_request_millicores, mask=has)
        self.rec.add_memory_samples(now, per_pod_mem * MIB, mask=has)
        oom = obs.oom_kills > 0
        if oom.any():
            self.rec.record_oom(now, oom, obs.memory_request_mib * MIB)
        self.samples += has
        if now < self.next_update_s:
            return None
        self.next_update_s = now + self.params.update_interval_s
        rec = self.rec.recommend(now)
        cpu_req = obs.cpu_request_millicores
        mem_req = obs.memory_request_mib
        update = needs_update(cpu_req, mem_req * MIB, rec)
        update &= self.samples >= self.params.min_samples
        if not update.any():
            return None
        new_cpu = rec.target_cpu_millicores.astype(np.float64)
        new_mem = rec.target_memory_bytes.astype(np.float64) / MIB
        cpu_ratio = obs.cpu_limit_millicores / cpu_req
        mem_ratio = obs.memory_limit_mib / mem_req
        nan = np.full(cpu_req.shape, np.nan)
        return Action(
            cpu_request_millicores=np.where(update, new_cpu, nan),
            cpu_limit_millicores=np.where(update, new_cpu * cpu_ratio, nan),
            memory_request_mib=np.where(update, new_mem, nan),
            memory_limit_mib=np.where(update, new_mem * mem_ratio, nan),
        )


# ------------------------------------------------------------------------------ threshold


@dataclass(frozen=True)
class ThresholdParams:
    """``threshold:up=0.8,down=0.3,step=1,cooldown_s=60,vertical=0``."""

    up: float = 0.8
    """Scale out when CPU usage / request of ready pods exceeds this."""
    down: float = 0.3
    """Scale in when it falls below this."""
    step: int = 1
    """Replicas added or removed per step."""
    cooldown_s: float = 60.0
    """Minimum time between two steps of one service (s)."""
    vertical: bool = False
    """Also step CPU limits on throttling ("KuScal"-style horizontal + vertical)."""


class ThresholdPolicy:
    """Step replicas (and optionally CPU limits) when utilisation crosses thresholds."""

    name = "threshold"

    def __init__(self, params: ThresholdParams | None = None):
        self.params = params or ThresholdParams()
        p = self.params
        self.h = ThresholdConfig(
            scale_up_utilization=p.up,
            scale_down_utilization=p.down,
            step_up=p.step,
            step_down=p.step,
            cooldown_s=p.cooldown_s,
        )
        self.v = VerticalThresholdConfig(cooldown_s=p.cooldown_s)

    def reset(self, sim: ClusterSim) -> None:
        n = sim.app.n_services
        self.app = sim.app
        self.max_limit = float(sim.config.node_cpu_millicores)
        self.last_h = np.full(n, np.nan)
        self.last_v = np.full(n, np.nan)

    def act(self, obs: Observation) -> Action:
        app = self.app
        ready = np.maximum(obs.replicas_ready, 1)
        util = obs.cpu_usage_millicores / (obs.cpu_request_millicores * ready)
        current = obs.replicas_desired
        new = threshold_replicas(
            current, util, self.h, self.last_h, obs.time_s, app.min_replicas, app.max_replicas
        )
        self.last_h = next_last_change_s(self.last_h, current, new, obs.time_s)
        action = Action(replicas=new.astype(np.float64))
        if self.params.vertical:
            lim = obs.cpu_limit_millicores
            util_lim = obs.cpu_usage_millicores / (lim * ready)
            new_lim = threshold_cpu_limits(
                lim,
                obs.cpu_throttled_ratio,
                util_lim,
                self.v,
                self.last_v,
                obs.time_s,
                np.minimum(app.cpu_limit_m0 / 4, lim),
                self.max_limit,
            ).astype(np.float64)
            self.last_v = next_last_change_s(self.last_v, lim, new_lim, obs.time_s)
            action.cpu_limit_millicores = np.where(new_lim != lim, new_lim, np.nan)
            action.cpu_request_millicores = np.where(
                new_lim != lim, np.minimum(obs.cpu_request_millicores, new_lim), np.nan
            )
        return action


# --------------------------------------------------------------------------------- static


@dataclass(frozen=True)
class StaticParams:
    """``static`` (as deployed) or ``static:replicas=4`` or ``static:replicas=-2`` (max)."""

    replicas: int = -1
    """Replicas per service: -1 the app's initial replicas, -2 each service's maximum."""


class StaticPolicy:
    """A fixed allocation: what most clusters run when nobody tunes them."""

    name = "static"

    def __init__(self, params: StaticParams | None = None):
        self.params = params or StaticParams()
        self.sent = False

    def reset(self, sim: ClusterSim) -> None:
        app = sim.app
        r = self.params.replicas
        if r == -1:
            self.replicas = app.replicas0.astype(np.float64)
        elif r == -2:
            self.replicas = app.max_replicas.astype(np.float64)
        else:
            self.replicas = np.full(app.n_services, float(r))
        self.sent = False

    def act(self, obs: Observation) -> Action | None:
        if self.sent:
            return None
        self.sent = True
        return Action(replicas=self.replicas)


# --------------------------------------------------------------------------------- oracle


def steady_state_p99_ms(
    app: CompiledApp,
    cfg: ClusterConfig,
    service_rps: np.ndarray,
    replicas: np.ndarray,
    cpu_limit_millicores: np.ndarray,
) -> np.ndarray:
    """End-to-end p99 (ms) per endpoint of the simulator's latency model at steady state.

    Uses the same per-pod model as :class:`~drpc.sim.cluster.ClusterSim` (M/M/c with CFS
    throttling, composition along the call trees), without backlog or lifecycle effects.
    Services at or above sustainable utilisation get the timeout.
    """
    reps = np.maximum(replicas, 1)
    lam_pod = service_rps / reps
    cores = cpu_limit_millicores / 1000.0
    mean_s, q_s, _, _ = pod_latency(
        lam_pod, app.cpu_s, cores, cfg.cfs_period_s, cfg.max_utilization
    )
    overloaded = lam_pod * app.cpu_s >= cfg.max_utilization * cores
    mean_s = np.where(overloaded, app.timeout_s, mean_s)
    q_s = np.where(overloaded[None, :], app.timeout_s, q_s)
    e2e = app.compose(mean_s, np.maximum(q_s - mean_s[None, :], 0.0))
    return e2e[-1] * 1000.0


@dataclass(frozen=True)
class OracleParams:
    """``oracle:slo_margin=0.9,sigmas=3``."""

    slo_margin: float = 0.9
    """Plan for p99 <= slo_margin x SLO."""
    sigmas: float = 3.0
    """Head-room for Poisson noise: plan for rate + sigmas x sqrt(rate / interval)."""


class OraclePolicy:
    """Clairvoyant: knows the future mean load and the simulator's latency model.

    For every interval it picks the cheapest allocation of a common per-pod utilisation
    target (searched on a grid from 0.98 down) whose steady-state end-to-end p99 meets
    ``slo_margin x SLO``, at the app's pod size; it scales up ahead of need by the pods'
    startup time, and down as soon as the need passes. It is a practical lower bound on the
    cost of meeting the SLO with horizontal scaling, not a proven optimum.
    """

    name = "oracle"
    UTILIZATION_GRID = np.round(np.arange(0.98, 0.049, -0.03), 3)

    def __init__(self, params: OracleParams | None = None):
        self.params = params or OracleParams()

    def reset(self, sim: ClusterSim) -> None:
        app, cfg = sim.app, sim.config
        p = self.params
        entry = sim.load_rps.max(axis=1)  # (T,) peak substep rate per interval
        entry = entry + p.sigmas * np.sqrt(entry / cfg.interval_s)
        need = self._plan(app, cfg, entry)
        lead = int(math.ceil((app.startup_s.max() * 1.1 + cfg.scheduling_delay_s) / cfg.interval_s))
        # desired at step t acts on interval t; pods need `lead` intervals to become Ready.
        padded = np.vstack([need, np.repeat(need[-1:], lead + 1, axis=0)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, lead + 2, axis=0)
        self.plan = windows.max(axis=-1)[: need.shape[0]]
        self.need, self.lead = need, lead
        self.t = 0

    def _plan(self, app: CompiledApp, cfg: ClusterConfig, entry_rps: np.ndarray) -> np.ndarray:
        slo = app.slo_ms * self.params.slo_margin
        lim = app.cpu_limit_m0
        cap_pod = lim / 1000.0 / app.cpu_s  # requests/s one pod serves at utilisation 1
        uniq, inverse = np.unique(np.round(entry_rps, 6), return_inverse=True)
        plans = np.empty((uniq.size, app.n_services), dtype=np.int64)
        grid = self.UTILIZATION_GRID  # descending: cheapest first
        for i, rate in enumerate(uniq):
            lam = rate * app.visits_per_request

            def replicas_at(u: float, lam=lam) -> np.ndarray:
                reps = np.clip(np.ceil(lam / (cap_pod * u)), app.min_replicas, app.max_replicas)
                return np.maximum(reps, 1).astype(np.int64)

            def feasible(j: int, lam=lam) -> bool:
                p99 = steady_state_p99_ms(app, cfg, lam, replicas_at(grid[j]), lim)
                return bool(np.all(p99 <= slo))

            # Binary search for the first (highest) utilisation that meets the SLO; latency
            # falls as utilisation falls, so feasibility is monotone along the grid.
            lo, hi = 0, grid.size - 1
            if not feasible(hi):
                plans[i] = app.max_replicas
                continue
            while lo < hi:
                mid = (lo + hi) // 2
                if feasible(mid):
                    hi = mid
                else:
                    lo = mid + 1
            plans[i] = replicas_at(grid[lo])
        return plans[inverse]

    def act(self, obs: Observation) -> Action:
        t = min(self.t, self.plan.shape[0] - 1)
        self.t += 1
        return Action(replicas=self.plan[t].astype(np.float64))


# ------------------------------------------------------------------------------- registry

register_policy("hpa", HPAParams, "Kubernetes HPA, CPU utilisation target (upstream semantics)")(
    HPAPolicy
)
register_policy("vpa", VPAParams, "Kubernetes VPA recommender + in-place resize")(VPAPolicy)
register_policy("threshold", ThresholdParams, "step replicas on CPU thresholds (KuScal style)")(
    ThresholdPolicy
)
register_policy("static", StaticParams, "fixed allocation")(StaticPolicy)
register_policy("oracle", OracleParams, "clairvoyant: future load + the simulator's model")(
    OraclePolicy
)
