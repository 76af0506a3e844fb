"""Seeded generator of Alibaba-like random microservice apps.

:func:`generate_app` builds an :class:`~drpc.sim.app.App` with ``n_services`` services whose call
graphs follow the shape the Alibaba 2021 microservice trace shows (S. Luo et al., "Characterizing
Microservice Dependency and Performance: Alibaba Trace Analysis", SoCC'21): each endpoint's call
graph is tree-like with heavy-tailed fan-out and a small depth, a few stateful (database/cache-like)
services are shared by many call graphs with Zipf popularity, calls mix sequential and parallel, and
most calls happen once per caller visit with a heavy tail of repeated calls. The numeric parameters
are in :class:`GraphConfig`; they are assumptions in the spirit of the paper, not fitted to it.

Construction, for ``n`` services (``n >= 2``):

* ``n_shared = max(1, round(shared_fraction * n))`` stateful services (``db-*`` and ``cache-*``),
  the other ``n_stateless`` are stateless (``svc-*``).
* Endpoint count: ``n_endpoints = max(1, round(endpoints_per_sqrt_service * sqrt(n)))``, at most
  ``n_stateless // (min_depth - 1)`` so that every tree can reach ``min_depth`` (with the default
  1.0 x sqrt(n): 3 endpoints for 10 services, 10 for 100, 32 for 1,000, 100 for 10,000).
* The stateless services are split among the endpoints with heavy-tailed (Pareto) sizes: each
  endpoint gets its own tree of them, rooted at its entry service (call-graph sizes are heavy-tailed).
* Each endpoint draws a target depth ``D`` in ``[min_depth, max_depth]`` (``depth_weights``), raised
  to ``2 + ceil(log(m) / log(depth_fanout_base))`` for a tree of ``m`` services (bigger call graphs
  are deeper) and capped at ``max_depth``. The tree has ``D - 1`` stateless levels: a spine of one
  service per level pins the depth, and the deepest spine service calls at least one stateful
  service, so the endpoint's depth (services on its longest path, entry and stateful leaf included)
  is exactly ``D``. The other services are spread over levels ``2..D-1`` with geometrically growing
  level sizes (ratio ``m ** (1 / (D - 2))``) and pick a parent one level up with probability
  proportional to a Pareto(``fanout_pareto_shape``) attractiveness: a heavy-tailed fan-out (median
  about 2, maximum tens to a hundred). A tree with fewer than ``D - 1`` services gets the depth it
  allows (best effort for tiny apps): with the defaults every endpoint's depth is in
  ``[min_depth, max_depth]`` from 3 services on; an app of 2 services has depth 2.
* Each stateless service calls stateful services with probability ``shared_call_prob``, a
  Geometric(``shared_calls_geometric_p``) number of them, chosen by Zipf(``zipf_exponent``)
  popularity; a stateful service no call picked is attached to a random stateless service, so every
  service is reachable from at least one endpoint.
* Every edge is parallel with probability ``parallel_prob``; its multiplicity is 1, or with
  probability ``repeat_prob`` 1 + Zipf(``repeat_zipf_exponent``) capped at ``max_multiplicity``,
  then lowered so that no edge makes its callee visited more than ``max_visits_per_request`` times
  per request through that edge.

Per-service numbers are drawn from documented distributions: CPU seconds per request lognormal
(median 2 ms, sigma 1.0 stateless; 0.5 ms database-like and 0.1 ms cache-like, sigma 0.8), idle memory lognormal (median
150 MiB, sigma 0.6), memory per in-flight request lognormal (median 0.5 MiB, sigma 0.7), startup
lognormal (median 20 s stateless, 10 s stateful, sigma 0.8), CPU limit from {250m, 500m, 1, 2}
cores, CPU request a quarter, half or all of it, memory limit 1.5-3x the idle memory. Endpoint
weights are lognormal (sigma 1.0); each endpoint's SLO is ``slo_factor`` x its unloaded latency
(at least ``slo_floor_ms``). ``max_replicas`` is ``max_replicas_cap`` for the service with the
highest CPU load per core of limit under the endpoint mix and proportional to the load for the
others (at least ``max_replicas_floor``): at max replicas the hottest services saturate first and
the rest can be over-provisioned. Initial replicas 1, min_replicas 1.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``: the same
``(n_services, seed, config)`` gives the same app. Building 10,000 services takes under a second,
validation included (no recursion; per-level vectorised numpy).

Command line: ``python -m drpc.sim.generate --services 1000 --seed 3 --out app.yaml`` (YAML, or JSON
when the file ends in ``.json``: load_app parses JSON of 10,000 services in under a second, the same
in YAML in about 30 s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml

from drpc.sim.app import App, AppError, app_from_data

__all__ = ["GraphConfig", "generate_app", "main", "write_app"]


@dataclass(frozen=True)
class GraphConfig:
    """Knobs of :func:`generate_app`; the defaults give Alibaba-like apps."""

    endpoints_per_sqrt_service: float = 1.0
    """Endpoint count is max(1, round(this x sqrt(n_services))), capped so each tree can reach min_depth."""
    min_depth: int = 3
    """Smallest endpoint depth (services on the longest path from the entry, leaves included)."""
    max_depth: int = 6
    """Largest endpoint depth."""
    depth_weights: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15)
    """Relative probability of each depth min_depth..max_depth (shallow call graphs dominate)."""
    graph_size_pareto_shape: float = 1.5
    """Pareto shape of the share of stateless services each endpoint's tree gets (heavy-tailed sizes)."""
    depth_fanout_base: float = 16.0
    """A tree of m stateless services gets at least 1 + ceil(log(m) / log(this)) levels: bigger graphs are deeper."""
    fanout_pareto_shape: float = 1.2
    """Pareto shape of the attachment weights; smaller means heavier-tailed fan-out."""
    shared_fraction: float = 0.1
    """Fraction of services that are stateful and shared across endpoints (databases, caches)."""
    cache_fraction: float = 0.5
    """Fraction of the stateful services that are caches (cheaper per call) rather than databases."""
    zipf_exponent: float = 1.1
    """Zipf exponent of stateful-service popularity (a few hot ones are called by most endpoints)."""
    shared_call_prob: float = 0.5
    """Probability that a stateless service calls stateful services."""
    shared_calls_geometric_p: float = 0.6
    """The number of stateful callees of such a service is Geometric(p) (mean 1/p)."""
    parallel_prob: float = 0.35
    """Probability that a call is issued in parallel with its caller's other parallel calls."""
    repeat_prob: float = 0.1
    """Probability that a call's multiplicity exceeds 1."""
    repeat_zipf_exponent: float = 2.5
    """A repeated call has multiplicity 1 + Zipf(this), a heavy tail."""
    max_multiplicity: float = 10.0
    """Upper bound of a call's multiplicity."""
    max_visits_per_request: float = 20.0
    """Multiplicities are lowered so that no edge brings its callee above this many visits per request."""
    endpoint_weight_sigma: float = 1.0
    """Endpoint traffic shares are lognormal(0, sigma), normalised to sum to 100."""
    stateless_cpu_median_s: float = 0.002
    """Median CPU seconds per request of a stateless service (lognormal)."""
    stateless_cpu_sigma: float = 1.0
    """Lognormal sigma of the stateless CPU cost."""
    database_cpu_median_s: float = 0.0005
    """Median CPU seconds per call of a database-like stateful service (lognormal)."""
    cache_cpu_median_s: float = 0.0001
    """Median CPU seconds per call of a cache-like stateful service (lognormal)."""
    stateful_cpu_sigma: float = 0.8
    """Lognormal sigma of the stateful CPU cost."""
    cpu_min_s: float = 1e-5
    """Floor of any drawn CPU cost."""
    cpu_max_s: float = 0.2
    """Ceiling of any drawn CPU cost."""
    memory_base_median_mib: float = 150.0
    """Median idle working set per pod (MiB, lognormal)."""
    memory_base_sigma: float = 0.6
    """Lognormal sigma of the idle working set."""
    memory_inflight_median_mib: float = 0.5
    """Median extra working set per in-flight request (MiB, lognormal)."""
    memory_inflight_sigma: float = 0.7
    """Lognormal sigma of the per-request memory."""
    memory_limit_range: tuple[float, float] = (1.5, 3.0)
    """Memory limit is uniform in this range times the idle working set, rounded up to 64 MiB."""
    startup_median_s: float = 20.0
    """Median time to Ready of a stateless pod (s, lognormal)."""
    stateful_startup_median_s: float = 10.0
    """Median time to Ready of a stateful pod (s, lognormal)."""
    startup_sigma: float = 0.8
    """Lognormal sigma of the startup time."""
    startup_range_s: tuple[float, float] = (1.0, 180.0)
    """Clip range of the startup time (s)."""
    cpu_limit_choices_m: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0)
    """CPU limits (millicores) a service can have."""
    cpu_limit_probs: tuple[float, ...] = (0.2, 0.4, 0.3, 0.1)
    """Probability of each CPU limit."""
    cpu_request_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    """CPU request is one of these fractions of the limit (uniformly)."""
    max_replicas_floor: int = 3
    """Smallest max_replicas of a service."""
    max_replicas_cap: int = 20
    """max_replicas of the most loaded service (relative to its CPU limit)."""
    slo_factor: float = 5.0
    """An endpoint's slo_p99_ms is this times its unloaded latency."""
    slo_floor_ms: float = 10.0
    """Lower bound of an endpoint's slo_p99_ms."""
    request_timeout_s: float = 10.0
    """Client timeout written into the app."""

    def __post_init__(self) -> None:
        if not (2 <= self.min_depth <= self.max_depth and self.max_depth >= 3):
            raise ValueError(
                f"need 2 <= min_depth <= max_depth and max_depth >= 3, got {self.min_depth}, "
                f"{self.max_depth}"
            )
        if len(self.depth_weights) != self.max_depth - self.min_depth + 1:
            raise ValueError("depth_weights needs one weight per depth in [min_depth, max_depth]")
        if len(self.cpu_limit_choices_m) != len(self.cpu_limit_probs):
            raise ValueError("cpu_limit_choices_m and cpu_limit_probs differ in length")
        if not 0 < self.shared_fraction < 1:
            raise ValueError("shared_fraction must be in (0, 1)")
        if self.max_replicas_floor < 1 or self.max_replicas_cap < self.max_replicas_floor:
            raise ValueError("need 1 <= max_replicas_floor <= max_replicas_cap")


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(size))


def _sig(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (keeps the YAML readable)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _ceil64(x: np.ndarray) -> np.ndarray:
    return np.ceil(x / 64.0) * 64.0


def generate_app(n_services: int, seed: int, config: GraphConfig | None = None) -> App:
    """A random Alibaba-like app with ``n_services`` services, deterministic in ``seed``.

    See the module docstring for the construction and the distributions. Raises ``ValueError``
    for ``n_services < 2``.
    """
    cfg = config or GraphConfig()
    n = int(n_services)
    if n < 2:
        raise ValueError(f"n_services must be at least 2, got {n_services!r}")
    rng = np.random.default_rng(seed)

    # ---------------------------------------------------------------- service roles
    n_shared = min(n - 1, max(1, round(cfg.shared_fraction * n)))
    n_stateless = n - n_shared
    per_tree_min = cfg.min_depth - 1
    n_ep = max(1, round(cfg.endpoints_per_sqrt_service * math.sqrt(n)))
    n_ep = max(1, min(n_ep, n_stateless // per_tree_min if n_stateless >= per_tree_min else 1))
    # Stateless indices 0..n_stateless-1, stateful n_stateless..n-1.
    n_cache = int(round(cfg.cache_fraction * n_shared))
    shared_is_cache = np.zeros(n_shared, dtype=bool)
    shared_is_cache[rng.permutation(n_shared)[:n_cache]] = True

    # ---------------------------------------------------------------- tree sizes (heavy-tailed)
    base = min(per_tree_min, n_stateless // n_ep)
    extra = n_stateless - base * n_ep
    shares = rng.pareto(cfg.graph_size_pareto_shape, n_ep) + 1.0
    sizes = base + rng.multinomial(extra, shares / shares.sum())
    order = rng.permutation(n_stateless)  # which stateless services go to which tree
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))

    depth_values = np.arange(cfg.min_depth, cfg.max_depth + 1)
    depth_p = np.asarray(cfg.depth_weights, dtype=float)
    depth_p = depth_p / depth_p.sum()

    level = np.zeros(n, dtype=np.int64)  # level of each stateless service in its tree (1 = entry)
    endpoint_of = np.full(n_stateless, -1, dtype=np.int64)
    entries = np.zeros(n_ep, dtype=np.int64)
    deepest = np.zeros(n_ep, dtype=np.int64)
    e_caller: list[np.ndarray] = []
    e_callee: list[np.ndarray] = []
    e_ep: list[np.ndarray] = []

    for e in range(n_ep):
        members = order[starts[e] : starts[e] + sizes[e]]
        m = len(members)
        target = int(rng.choice(depth_values, p=depth_p))
        wide = 2 + math.ceil(math.log(m) / math.log(cfg.depth_fanout_base)) if m > 1 else 0
        target = min(max(target, wide), cfg.max_depth)
        d_s = max(1, min(target - 1, m))  # stateless levels; +1 for the stateful leaf
        if d_s == 1 and m > 1:
            d_s = 2
        entries[e] = members[0]
        deepest[e] = members[d_s - 1]
        endpoint_of[members] = e
        # Level sizes grow geometrically (ratio ~ m ** (1 / (d_s - 1))) so the average fan-out stays
        # moderate; services 0..d_s-1 form a spine (one per level) that pins the depth. Every other
        # service at level l picks a parent at level l - 1 with probability proportional to a
        # Pareto attractiveness: the heavy-tailed fan-out.
        lv = np.empty(m, dtype=np.int64)
        lv[:d_s] = np.arange(1, d_s + 1)
        if m > d_s:
            ratio = m ** (1.0 / (d_s - 1))
            grow = ratio ** np.arange(1, d_s, dtype=float)  # levels 2..d_s
            counts = rng.multinomial(m - d_s, grow / grow.sum())
            lv[d_s:] = np.repeat(np.arange(2, d_s + 1), counts)
        attract = rng.pareto(cfg.fanout_pareto_shape, m) + 1.0
        level[members] = lv
        for lvl in range(2, d_s + 1):
            kids = np.nonzero(lv == lvl)[0]
            cand = np.nonzero(lv == lvl - 1)[0]
            w = attract[cand]
            par = cand[rng.choice(len(cand), size=len(kids), p=w / w.sum())]
            par[kids < d_s] = kids[kids < d_s] - 1  # the spine keeps its chain
            e_caller.append(members[par])
            e_callee.append(members[kids])
            e_ep.append(np.full(len(kids), e, dtype=np.int64))

    tree_caller = np.concatenate(e_caller) if e_caller else np.zeros(0, dtype=np.int64)
    tree_callee = np.concatenate(e_callee) if e_callee else np.zeros(0, dtype=np.int64)
    tree_ep = np.concatenate(e_ep) if e_ep else np.zeros(0, dtype=np.int64)

    # ---------------------------------------------------------------- calls to stateful services
    calls_shared = rng.random(n_stateless) < cfg.shared_call_prob
    k = np.where(calls_shared, rng.geometric(cfg.shared_calls_geometric_p, n_stateless), 0)
    k[deepest] = np.maximum(k[deepest], 1)  # pins each endpoint's depth
    k = np.minimum(k, n_shared)
    ranks = np.arange(1, n_shared + 1, dtype=float)
    zipf_p = ranks**-cfg.zipf_exponent
    zipf_p /= zipf_p.sum()
    popularity_order = rng.permutation(n_shared)  # which stateful service has which rank
    sh_caller = np.repeat(np.arange(n_stateless), k)
    sh_callee = n_stateless + popularity_order[rng.choice(n_shared, size=len(sh_caller), p=zipf_p)]
    # drop duplicate (caller, callee) pairs
    key = sh_caller * n + sh_callee
    _, first = np.unique(key, return_index=True)
    first.sort()
    sh_caller, sh_callee = sh_caller[first], sh_callee[first]
    # every stateful service reachable
    unused = np.setdiff1d(np.arange(n_stateless, n), sh_callee)
    if len(unused):
        sh_caller = np.concatenate([sh_caller, rng.integers(0, n_stateless, len(unused))])
        sh_callee = np.concatenate([sh_callee, unused])

    caller = np.concatenate([tree_caller, sh_caller])
    callee = np.concatenate([tree_callee, sh_callee])
    ep_of_edge = np.concatenate([tree_ep, endpoint_of[sh_caller]])
    n_edges = len(caller)
    parallel = rng.random(n_edges) < cfg.parallel_prob
    repeat = rng.random(n_edges) < cfg.repeat_prob
    mult = np.ones(n_edges)
    mult[repeat] = np.minimum(
        1.0 + rng.zipf(cfg.repeat_zipf_exponent, int(repeat.sum())), cfg.max_multiplicity
    )

    # ---------------------------------------------------------------- per-service numbers
    is_stateful = np.arange(n) >= n_stateless
    cpu = np.empty(n)
    cpu[:n_stateless] = _lognormal(
        rng, cfg.stateless_cpu_median_s, cfg.stateless_cpu_sigma, n_stateless
    )
    sh_median = np.where(shared_is_cache, cfg.cache_cpu_median_s, cfg.database_cpu_median_s)
    cpu[n_stateless:] = sh_median * np.exp(cfg.stateful_cpu_sigma * rng.standard_normal(n_shared))
    cpu = np.clip(cpu, cfg.cpu_min_s, cfg.cpu_max_s)
    mem_base = _lognormal(rng, cfg.memory_base_median_mib, cfg.memory_base_sigma, n)
    mem_inflight = _lognormal(rng, cfg.memory_inflight_median_mib, cfg.memory_inflight_sigma, n)
    lo, hi = cfg.memory_limit_range
    mem_limit = _ceil64(mem_base * rng.uniform(lo, hi, n))
    mem_request = np.minimum(_ceil64(mem_base * 1.1), mem_limit)
    startup_median = np.where(is_stateful, cfg.stateful_startup_median_s, cfg.startup_median_s)
    startup = np.clip(
        startup_median * np.exp(cfg.startup_sigma * rng.standard_normal(n)), *cfg.startup_range_s
    )
    lim_p = np.asarray(cfg.cpu_limit_probs, dtype=float)
    cpu_limit = np.asarray(cfg.cpu_limit_choices_m, dtype=float)[
        rng.choice(len(lim_p), size=n, p=lim_p / lim_p.sum())
    ]
    cpu_request = (
        cpu_limit
        * np.asarray(cfg.cpu_request_fractions)[rng.integers(0, len(cfg.cpu_request_fractions), n)]
    )
    weights = np.exp(cfg.endpoint_weight_sigma * rng.standard_normal(n_ep))
    weights = 100.0 * weights / weights.sum()

    # ---------------------------------------------------------------- visits, multiplicity caps
    # Stateless callees are visited from exactly one parent (a tree), stateful ones are leaves.
    # Process tree edges by the callee's level, then the stateful calls.
    visits_stateless = np.zeros(n_stateless)
    visits_stateless[entries] = 1.0
    cap = cfg.max_visits_per_request
    n_tree = len(tree_caller)
    tree_levels = level[tree_callee]
    for lvl in range(2, cfg.max_depth + 1):
        idx = np.nonzero(tree_levels == lvl)[0]
        if not len(idx):
            continue
        pv = visits_stateless[caller[idx]]
        mult[idx] = np.maximum(1.0, np.minimum(mult[idx], np.floor(cap / pv)))
        visits_stateless[callee[idx]] = pv * mult[idx]
    sh_idx = np.arange(n_tree, n_edges)
    pv = visits_stateless[caller[sh_idx]]
    mult[sh_idx] = np.maximum(1.0, np.minimum(mult[sh_idx], np.floor(cap / pv)))

    # CPU demand per entry request under the endpoint mix -> max_replicas
    share = weights / weights.sum()
    demand = np.zeros(n)
    np.add.at(demand, entries, share)
    np.add.at(demand, callee, share[ep_of_edge] * visits_stateless[caller] * mult)
    load = demand * cpu / (cpu_limit / 1000.0)  # cores-per-core of limit per entry req/s
    rel = load / load.max()
    max_replicas = np.clip(
        np.ceil(cfg.max_replicas_cap * rel), cfg.max_replicas_floor, cfg.max_replicas_cap
    ).astype(np.int64)

    # unloaded latency per endpoint: leaves first, then stateless levels bottom-up
    lat = cpu.copy()
    seq_sum = np.zeros(n)
    par_max = np.zeros(n)
    seq_edges = ~parallel
    for lvl in range(cfg.max_depth, 0, -1):
        # edges whose caller sits at this level (stateful callees are complete leaves)
        idx = np.nonzero(level[caller] == lvl)[0]
        idx = idx[~is_stateful[caller[idx]]]
        if len(idx):
            s = idx[seq_edges[idx]]
            p = idx[~seq_edges[idx]]
            np.add.at(seq_sum, caller[s], mult[s] * lat[callee[s]])
            np.maximum.at(par_max, caller[p], lat[callee[p]])
            nodes = np.unique(caller[idx])
            lat[nodes] = cpu[nodes] + seq_sum[nodes] + par_max[nodes]
    slo_ms = np.maximum(cfg.slo_factor * lat[entries] * 1000.0, cfg.slo_floor_ms)

    # ---------------------------------------------------------------- assemble
    width = len(str(n))
    names: list[str] = [f"svc-{i:0{width}d}" for i in range(n_stateless)]
    for j in range(n_shared):
        kind = "cache" if shared_is_cache[j] else "db"
        names.append(f"{kind}-{j:0{width}d}")

    services = [
        {
            "name": names[i],
            "cpu_seconds_per_request": _sig(cpu[i]),
            "memory_base_mib": _sig(mem_base[i]),
            "memory_per_inflight_mib": _sig(mem_inflight[i]),
            "startup_s": _sig(startup[i], 3),
            "min_replicas": 1,
            "max_replicas": int(max_replicas[i]),
            "replicas": 1,
            "cpu_request_millicores": float(cpu_request[i]),
            "cpu_limit_millicores": float(cpu_limit[i]),
            "memory_request_mib": float(mem_request[i]),
            "memory_limit_mib": float(mem_limit[i]),
        }
        for i in range(n)
    ]
    edge_order = np.lexsort((callee, caller, ep_of_edge))
    calls_by_ep: list[list[dict]] = [[] for _ in range(n_ep)]
    caller_l, callee_l, mult_l = caller.tolist(), callee.tolist(), mult.tolist()
    par_l, ep_l = parallel.tolist(), ep_of_edge.tolist()
    for i in edge_order.tolist():
        calls_by_ep[ep_l[i]].append(
            {
                "caller": names[caller_l[i]],
                "callee": names[callee_l[i]],
                "multiplicity": float(mult_l[i]),
                "mode": "parallel" if par_l[i] else "sequential",
            }
        )
    ep_width = len(str(n_ep))
    endpoints = [
        {
            "name": f"ep-{e:0{ep_width}d}",
            "entry": names[int(entries[e])],
            "weight": max(_sig(float(weights[e])), 1e-6),
            "slo_p99_ms": _sig(float(slo_ms[e]), 3),
            "calls": calls_by_ep[e],
        }
        for e in range(n_ep)
    ]
    data = {
        "name": f"alibaba-like-{n}-s{seed}",
        "description": (
            f"Random Alibaba-like app: {n} services ({n_shared} stateful), {n_ep} endpoints, "
            f"generated by drpc.sim.generate with seed {seed}."
        ),
        "provenance": (
            "generated by drpc.sim.generate.generate_app; call-graph shape after Luo et al., "
            "SoCC'21 (Alibaba 2021 microservice trace): tree-like call graphs of depth "
            f"{cfg.min_depth}-{cfg.max_depth}, heavy-tailed fan-out, Zipf-popular shared stateful "
            "services; every number is drawn from the assumed distributions of GraphConfig "
            "(documented in drpc/sim/generate.py and drpc/apps/README.md)"
        ),
        "request_timeout_s": cfg.request_timeout_s,
        "services": services,
        "endpoints": endpoints,
    }
    return app_from_data(data, f"<generate_app({n}, seed={seed})>")


def write_app(app: App, path: str | Path) -> Path:
    """Write ``app`` as JSON when ``path`` ends in ``.json``, else as YAML; returns the path.

    :func:`drpc.sim.app.load_app` reads both, but parses YAML with PyYAML's pure-Python loader
    (about 30 s for 10,000 services) and JSON in well under a second: use ``.json`` for big apps.
    """
    path = Path(path)
    data = app.model_dump(mode="json")
    with path.open("w", encoding="utf-8") as f:
        if path.suffix == ".json":
            json.dump(data, f, separators=(",", ":"))
        else:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            yaml.dump(data, f, Dumper=dumper, sort_keys=False, default_flow_style=None, width=120)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a generated app to a YAML file."""
    parser = argparse.ArgumentParser(
        prog="python -m drpc.sim.generate",
        description="Write a seeded random Alibaba-like microservice app (a DRPC app file).",
    )
    parser.add_argument("--services", type=int, required=True, help="number of services (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output file: YAML, or JSON if it ends in .json (much faster to load for big apps)",
    )
    for f in fields(GraphConfig):
        if f.type in ("float", "int"):
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=float if f.type == "float" else int,
                default=None,
                help=f"GraphConfig.{f.name} (default {f.default})",
            )
    args = parser.parse_args(argv)
    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(GraphConfig)
        if f.type in ("float", "int") and getattr(args, f.name) is not None
    }
    try:
        config = GraphConfig(**overrides)
        start = time.perf_counter()
        app = generate_app(args.services, args.seed, config)
        elapsed = time.perf_counter() - start
    except (ValueError, AppError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_app(app, args.out)
    n_calls = sum(len(ep.calls) for ep in app.endpoints)
    print(
        f"wrote {args.out}: {len(app.services)} services, {len(app.endpoints)} endpoints, "
        f"{n_calls} calls (generated in {elapsed:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
