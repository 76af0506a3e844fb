"""An app compiled to arrays: per-service parameters, visit counts and the unrolled call trees.

Each endpoint's call graph is unrolled from its entry into a tree of *instances* (a service
called from two places appears twice). The simulator composes per-service latencies along
that tree bottom-up, one depth level at a time, with vectorised reductions; it never loops
over services.

Latency composition (documented approximation): a latency is carried as its mean ``M`` and the
excess of each quantile over the mean ``X_q = L_q - M``. Sequential calls add means and combine
excesses as the root of the sum of squares (exact for normal components, independent visits;
``m`` sequential calls to the same callee count ``m`` times the mean and ``sqrt(m)`` times the
excess). A parallel fan-out takes, per quantile, the largest ``M + X_q`` among its branches
(the max of the branches' quantiles, a lower bound on the quantile of the max), and parallel
multiplicity does not add latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from drpc.sim.app import App

__all__ = ["CompiledApp", "compile_app", "MAX_INSTANCES"]

MAX_INSTANCES = 2_000_000
QUANTILE_COUNT = 3  # p50, p95, p99: the columns compose() carries besides the mean


@dataclass(frozen=True)
class _Level:
    """Children at one depth and where their latencies go in their parents."""

    seq_child: np.ndarray
    seq_uparent: np.ndarray  # distinct parents of the sequential children
    seq_slot: np.ndarray  # for each sequential child, its parent's index in seq_uparent
    seq_mult: np.ndarray  # (n, 1) multiplicities, or None when all are 1
    seq_flat: np.ndarray  # bincount index of (child, column) into (parent slot, column)
    par_child_sorted: np.ndarray
    par_starts: np.ndarray
    par_parent: np.ndarray


@dataclass(frozen=True)
class CompiledApp:
    """Arrays derived once from an :class:`App`; shared by the simulator and the baselines."""

    app: App
    names: list[str]
    cpu_s: np.ndarray  # CPU seconds per request at one core, (S,)
    memory_base_mib: np.ndarray
    memory_per_inflight_mib: np.ndarray
    startup_s: np.ndarray
    min_replicas: np.ndarray
    max_replicas: np.ndarray
    replicas0: np.ndarray
    cpu_request_m0: np.ndarray
    cpu_limit_m0: np.ndarray
    memory_request_mib0: np.ndarray
    memory_limit_mib0: np.ndarray
    endpoint_names: list[str]
    endpoint_weight: np.ndarray  # normalised share of arrivals, (E,)
    slo_ms: np.ndarray  # (E,)
    visits: sparse.csr_matrix  # (E, S): expected visits of service s per request to endpoint e
    visits_t: sparse.csr_matrix  # (S, E): the transpose, kept for speed
    visits_per_request: np.ndarray  # (S,): visits per request of the endpoint mix
    inst_service: np.ndarray  # (N,)
    inst_endpoint: np.ndarray
    inst_depth: np.ndarray
    roots: np.ndarray  # (E,) instance index of each endpoint's entry
    levels: tuple[_Level, ...]  # deepest first
    timeout_s: float

    @property
    def n_services(self) -> int:
        return len(self.names)

    @property
    def n_endpoints(self) -> int:
        return len(self.endpoint_names)

    def capacity_rps(self, replicas: np.ndarray | None = None, cpu_limit_m=None) -> float:
        """Largest entry rate (req/s, endpoint mix) the app sustains at ``replicas`` (default max)."""
        reps = self.max_replicas if replicas is None else np.asarray(replicas)
        lim = self.cpu_limit_m0 if cpu_limit_m is None else np.asarray(cpu_limit_m)
        svc_capacity = reps * (lim / 1000.0) / self.cpu_s
        used = self.visits_per_request > 0
        return float(np.min(svc_capacity[used] / self.visits_per_request[used]))

    def call_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(caller, callee) service indices of every call in the unrolled trees (may repeat)."""
        parents, kids = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for lv in self.levels:
            parents.append(lv.seq_uparent[lv.seq_slot])
            kids.append(lv.seq_child)
            counts = np.diff(np.r_[lv.par_starts, lv.par_child_sorted.size]).astype(np.int64)
            parents.append(np.repeat(lv.par_parent, counts))
            kids.append(lv.par_child_sorted)
        return self.inst_service[np.concatenate(parents)], self.inst_service[np.concatenate(kids)]

    def service_index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown service {name!r} in app {self.app.name!r}") from None

    def compose(self, svc_mean_s: np.ndarray, svc_excess_s: np.ndarray) -> np.ndarray:
        """End-to-end latency per endpoint from per-visit service latencies.

        Args:
            svc_mean_s: (S,) mean latency of one visit.
            svc_excess_s: (Q, S) quantile minus mean of one visit.

        Returns:
            (1 + Q, E): row 0 the mean, then the quantiles, in seconds.
        """
        # Column 0: mean; columns 1..Q: squared excess of each quantile over the mean.
        # Instance-major layout so that gathers and scatters move contiguous rows.
        cols = 1 + QUANTILE_COUNT
        if svc_excess_s.shape[0] != QUANTILE_COUNT:
            raise ValueError(
                f"expected {QUANTILE_COUNT} quantile rows, got {svc_excess_s.shape[0]}"
            )
        own = np.empty((self.n_services, cols))
        own[:, 0] = svc_mean_s
        own[:, 1:] = np.square(svc_excess_s.T)
        st = own[self.inst_service]
        for lv in self.levels:
            if lv.seq_child.size:
                k = lv.seq_uparent.size
                contrib = st[lv.seq_child]
                if lv.seq_mult is not None:
                    contrib *= lv.seq_mult  # m x mean, m x excess^2
                st[lv.seq_uparent] += np.bincount(
                    lv.seq_flat, contrib.ravel(), minlength=k * cols
                ).reshape(k, cols)
            if lv.par_child_sorted.size:
                branch = st[lv.par_child_sorted]
                branch[:, 1:] = branch[:, :1] + np.sqrt(branch[:, 1:])  # quantiles per branch
                top = np.maximum.reduceat(branch, lv.par_starts, axis=0)  # per fan-out group
                top[:, 1:] = np.square(np.maximum(top[:, 1:] - top[:, :1], 0.0))
                st[lv.par_parent] += top
        out = st[self.roots].T.copy()
        out[1:] = out[0] + np.sqrt(out[1:])
        return out


def _unroll(app: App, index: dict[str, int]):
    service, parent, mult, parallel, endpoint, depth, visits = [], [], [], [], [], [], []
    roots = []
    for e, ep in enumerate(app.endpoints):
        children: dict[str, list] = {}
        for call in ep.calls:
            children.setdefault(call.caller, []).append(call)
        frontier = [len(service)]
        roots.append(len(service))
        service.append(index[ep.entry])
        parent.append(-1)
        mult.append(1.0)
        parallel.append(False)
        endpoint.append(e)
        depth.append(0)
        visits.append(1.0)
        names = {len(service) - 1: ep.entry}
        while frontier:
            nxt = []
            for i in frontier:
                for call in children.get(names[i], ()):
                    j = len(service)
                    if j >= MAX_INSTANCES:
                        raise ValueError(
                            f"endpoint {ep.name!r}: call graph unrolls to more than "
                            f"{MAX_INSTANCES} call instances"
                        )
                    names[j] = call.callee
                    service.append(index[call.callee])
                    parent.append(i)
                    mult.append(call.multiplicity)
                    parallel.append(call.mode == "parallel")
                    endpoint.append(e)
                    depth.append(depth[i] + 1)
                    visits.append(visits[i] * call.multiplicity)
                    nxt.append(j)
            frontier = nxt
    as_arr = np.asarray
    return (
        as_arr(service, dtype=np.int64),
        as_arr(parent, dtype=np.int64),
        as_arr(mult, dtype=np.float64),
        as_arr(parallel, dtype=bool),
        as_arr(endpoint, dtype=np.int64),
        as_arr(depth, dtype=np.int64),
        as_arr(visits, dtype=np.float64),
        as_arr(roots, dtype=np.int64),
    )


def _levels(parent, mult, parallel, depth) -> tuple[_Level, ...]:
    levels = []
    for d in range(int(depth.max(initial=0)), 0, -1):
        at = np.flatnonzero(depth == d)
        seq = at[~parallel[at]]
        par = at[parallel[at]]
        par = par[np.argsort(parent[par], kind="stable")]
        if par.size:
            p = parent[par]
            starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
            par_parent = p[starts]
        else:
            starts = np.zeros(0, dtype=np.int64)
            par_parent = np.zeros(0, dtype=np.int64)
        uparent, slot = np.unique(parent[seq], return_inverse=True)
        m = mult[seq]
        cols = 1 + QUANTILE_COUNT
        levels.append(
            _Level(
                seq_child=seq,
                seq_uparent=uparent,
                seq_slot=slot,
                seq_flat=(slot[:, None] * cols + np.arange(cols)[None, :]).ravel(),
                seq_mult=None if np.all(m == 1.0) else m[:, None],
                par_child_sorted=par,
                par_starts=starts,
                par_parent=par_parent,
            )
        )
    return tuple(levels)


def compile_app(app: App) -> CompiledApp:
    """Turn a validated app into the arrays the simulator works on."""
    names = [s.name for s in app.services]
    index = {n: i for i, n in enumerate(names)}

    def col(attr, dtype=np.float64):
        return np.array([getattr(s, attr) for s in app.services], dtype=dtype)

    service, parent, mult, parallel, endpoint, depth, visits, roots = _unroll(app, index)
    n_e, n_s = len(app.endpoints), len(names)
    vis = sparse.csr_matrix((visits, (endpoint, service)), shape=(n_e, n_s))
    vis.sum_duplicates()
    weight = np.array([ep.weight for ep in app.endpoints], dtype=np.float64)
    weight = weight / weight.sum()
    return CompiledApp(
        app=app,
        names=names,
        cpu_s=col("cpu_seconds_per_request"),
        memory_base_mib=col("memory_base_mib"),
        memory_per_inflight_mib=col("memory_per_inflight_mib"),
        startup_s=col("startup_s"),
        min_replicas=col("min_replicas", np.int64),
        max_replicas=col("max_replicas", np.int64),
        replicas0=col("replicas", np.int64),
        cpu_request_m0=col("cpu_request_millicores"),
        cpu_limit_m0=col("cpu_limit_millicores"),
        memory_request_mib0=col("memory_request_mib"),
        memory_limit_mib0=col("memory_limit_mib"),
        endpoint_names=[ep.name for ep in app.endpoints],
        endpoint_weight=weight,
        slo_ms=np.array([ep.slo_p99_ms for ep in app.endpoints], dtype=np.float64),
        visits=vis,
        visits_t=vis.T.tocsr(),
        visits_per_request=np.asarray(vis.T @ weight).ravel(),
        inst_service=service,
        inst_endpoint=endpoint,
        inst_depth=depth,
        roots=roots,
        levels=_levels(parent, mult, parallel, depth),
        timeout_s=float(app.request_timeout_s),
    )
