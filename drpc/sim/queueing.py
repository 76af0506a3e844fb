"""Queueing formulas the simulator uses per pod, vectorised over services.

Each pod is an M/M/c queue: Poisson arrivals (the service's rate split evenly over its ready
pods), exponential service times with mean ``cpu_seconds_per_request`` at one core, and
``c = cpu_limit_cores`` servers (a pod with a 2-core limit serves two requests at full speed at
once; a 0.5-core pod serves one at full speed but only half of the time, which the continuous
Erlang-C formula below captures as 0.5 servers).

The continuous Erlang-B function, B(c, a) = a^c e^-a / Gamma(c+1, a), extends the
textbook recursion to real ``c`` and equals it for integer ``c`` (tests check both the integer
recursion and a discrete-event M/M/c simulation). Erlang-C follows as
C = B / (1 - rho (1 - B)).

CPU throttling (CFS, 100 ms period): a pod's CPU demand in one period is compound Poisson; the
throttled-period ratio is the chance it exceeds ``limit x period``, from a normal approximation
of the demand. :func:`pod_service_model` turns a pod's limit into servers and service time.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

__all__ = [
    "erlang_b",
    "erlang_c",
    "mmc_mean_wait_s",
    "mmc_sojourn_quantiles_s",
    "cfs_throttled_ratio",
    "pod_service_model",
    "pod_latency",
    "cfs_solo_time_s",
    "SojournTable",
    "QUANTILES",
]

_TINY = 1e-12

QUANTILES = np.array([0.5, 0.95, 0.99])
"""The latency quantiles the simulator reports: p50, p95, p99."""
_EXP_QUANTILES = -np.log1p(-QUANTILES)  # quantiles of Exp(1)


def erlang_b(servers: np.ndarray, offered_load: np.ndarray) -> np.ndarray:
    """Blocking probability of M/M/c/c for real ``servers`` c > 0 and offered load a = lambda/mu."""
    c = np.asarray(servers, dtype=np.float64)
    a = np.maximum(np.asarray(offered_load, dtype=np.float64), _TINY)
    log_num = c * np.log(a) - a - special.gammaln(c + 1.0)
    q = special.gammaincc(c + 1.0, a)  # regularised upper incomplete gamma Q(c+1, a)
    return np.clip(np.exp(log_num) / np.maximum(q, _TINY), 0.0, 1.0)


def erlang_c(servers: np.ndarray, offered_load: np.ndarray) -> np.ndarray:
    """Probability that an arrival waits in M/M/c (1 when the queue is unstable, a >= c)."""
    c = np.asarray(servers, dtype=np.float64)
    a = np.asarray(offered_load, dtype=np.float64)
    rho = a / np.maximum(c, _TINY)
    b = erlang_b(c, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        pw = b / (1.0 - rho * (1.0 - b))
    return np.where(rho < 1.0, np.clip(pw, 0.0, 1.0), 1.0)


def mmc_mean_wait_s(
    servers: np.ndarray,
    offered_load: np.ndarray,
    service_s: np.ndarray,
    wait_probability: np.ndarray | None = None,
) -> np.ndarray:
    """Mean time in queue (s) of M/M/c: C(c, a) * s / (c - a); inf when a >= c.

    ``wait_probability`` is C(c, a) if the caller already has it.
    """
    c = np.asarray(servers, dtype=np.float64)
    a = np.asarray(offered_load, dtype=np.float64)
    pw = erlang_c(c, a) if wait_probability is None else wait_probability
    with np.errstate(divide="ignore"):
        return np.where(a < c, pw * service_s / np.maximum(c - a, _TINY), np.inf)


def mmc_sojourn_quantiles_s(
    quantiles: np.ndarray,
    servers: np.ndarray,
    offered_load: np.ndarray,
    service_s: np.ndarray,
    newton_steps: int = 3,
    wait_probability: np.ndarray | None = None,
) -> np.ndarray:
    """Quantiles (s) of the response time (wait + service) of a stable M/M/c queue.

    With S ~ Exp(mu) and W = 0 w.p. 1 - C, else Exp(theta), theta = (c - a) mu, the tail in
    units x = mu t is  P(T > x) = (1 - C) e^-x + C (r e^-x - e^-rx) / (r - 1),  r = c - a.
    Newton's method starts from the dominant exponential of that tail, which is already
    exact far in the tail; Newton on the log of the tail then converges in a few steps.

    Args:
        quantiles: shape (Q,), e.g. [0.5, 0.95, 0.99].
        servers, offered_load, service_s: shape (N,); offered_load must be < servers.
        wait_probability: C(c, a), shape (N,), if the caller already has it.

    Returns:
        shape (Q, N).
    """
    q = np.asarray(quantiles, dtype=np.float64)[:, None]
    c = np.asarray(servers, dtype=np.float64)
    a = np.asarray(offered_load, dtype=np.float64)
    pw = (erlang_c(c, a) if wait_probability is None else wait_probability)[None, :]
    r = np.maximum(c - a, 1e-9)
    near = np.abs(r - 1.0) < 1e-3  # keep r away from 1, where the form is 0/0
    r = np.where(near, np.where(r < 1.0, 1.0 - 1e-3, 1.0 + 1e-3), r)[None, :]
    target = 1.0 - q
    k_wait = pw / (r - 1.0)  # coefficient of (r e^-x - e^-rx)
    coef_fast = 1.0 - pw + k_wait * r  # coefficient of e^-x
    # Dominant exponential: e^-rx when r < 1 (coefficient -k_wait), else e^-x.
    slow = r < 1.0
    coef = np.where(slow, -k_wait, coef_fast)
    rate = np.where(slow, r, 1.0)
    x = np.log(np.maximum(coef, 1e-300) / target) / rate
    x = np.maximum(x, 0.0)
    for _ in range(newton_steps):
        e1 = np.exp(-x)
        er = np.exp(-r * x)
        tail = coef_fast * e1 - k_wait * er
        dens = coef_fast * e1 - k_wait * r * er
        # Newton on log P(T > x), which is nearly linear in x for exponential tails.
        tail = np.maximum(tail, 1e-300)
        x = np.maximum(x + np.log(tail / target) * tail / np.maximum(dens, 1e-300), 0.0)
    return x * np.asarray(service_s, dtype=np.float64)[None, :]


class SojournTable:
    """Bilinear interpolation of M/M/c response-time quantiles on a precomputed grid.

    In units of the service time, the quantile x_q depends only on the wait probability
    C(c, a) and r = c - a (see :func:`mmc_sojourn_quantiles_s`). The grid holds log x_q over
    C in [0, 1] and log r in [log 1e-4, log 1e3], computed with the Newton solver; the
    simulator's hot path then costs a few gathers instead of exponentials. Accuracy against the
    solver: better than 0.5% (tests/test_queueing.py).
    """

    def __init__(self, quantiles: np.ndarray = QUANTILES, n_pw: int = 129, n_r: int = 257):
        self.quantiles = np.asarray(quantiles, dtype=np.float64)
        self.pw_grid = np.linspace(0.0, 1.0, n_pw)
        self.logr_lo, self.logr_hi = np.log(1e-4), np.log(1e3)
        self.logr_grid = np.linspace(self.logr_lo, self.logr_hi, n_r)
        pw, logr = np.meshgrid(self.pw_grid, self.logr_grid, indexing="ij")
        r = np.exp(logr).ravel()
        # Servers c and load a with c - a = r and a prescribed C: solve in normalised units by
        # passing the wait probability directly (the solver only uses C and r).
        c = np.maximum(r, 1.0) + 1.0
        x = mmc_sojourn_quantiles_s(
            self.quantiles, c, c - r, np.ones_like(r), newton_steps=8, wait_probability=pw.ravel()
        )
        log_x = np.log(np.maximum(x, 1e-12)).reshape(self.quantiles.size, n_pw, n_r)
        # Row (i, j) -> the Q values; neighbours in pw are n_r rows apart.
        self.table = np.ascontiguousarray(log_x.reshape(self.quantiles.size, -1).T)
        self._n_r = n_r
        self._scale_pw = (n_pw - 1) / 1.0
        self._scale_r = (n_r - 1) / (self.logr_hi - self.logr_lo)

    def __call__(self, wait_probability: np.ndarray, r: np.ndarray, service_s: np.ndarray):
        """Quantiles (s), shape (Q, N), for C(c, a), r = c - a and the service time (s)."""
        fp = np.clip(wait_probability, 0.0, 1.0) * self._scale_pw
        fr = (np.log(np.clip(r, 1e-4, 1e3)) - self.logr_lo) * self._scale_r
        i = np.minimum(fp.astype(np.int64), self.pw_grid.size - 2)
        j = np.minimum(fr.astype(np.int64), self._n_r - 2)
        u = (fp - i)[:, None]
        v = (fr - j)[:, None]
        k = i * self._n_r + j
        t = self.table
        lo = t[k] + (t[k + 1] - t[k]) * v  # along r at pw_i
        hi = t[k + self._n_r] + (t[k + self._n_r + 1] - t[k + self._n_r]) * v
        z = lo + (hi - lo) * u
        return (np.exp(z) * np.asarray(service_s)[:, None]).T


def cfs_throttled_ratio(
    arrival_rps: np.ndarray,
    service_s: np.ndarray,
    limit_cores: np.ndarray,
    period_s: float = 0.1,
) -> np.ndarray:
    """Share of CFS periods in which a pod's CPU demand exceeds its quota (limit x period).

    Demand in one period is compound Poisson (rate * period arrivals, each Exp(service_s) CPU
    seconds); mean lam*T*s, variance 2*lam*T*s^2; the tail uses a normal approximation.
    """
    lam_t = np.asarray(arrival_rps, dtype=np.float64) * period_s
    mean = lam_t * service_s
    sd = np.sqrt(np.maximum(2.0 * lam_t, _TINY)) * service_s
    quota = np.asarray(limit_cores, dtype=np.float64) * period_s
    z = (quota - mean) / sd
    return np.where(lam_t > 0, 0.5 * special.erfc(z / np.sqrt(2.0)), 0.0)


def cfs_solo_time_s(service_s: np.ndarray, limit_cores: np.ndarray, period_s: float = 0.1):
    """Wall time (s) of one request alone on a pod: it runs at full speed until the period's
    quota (limit x period) is spent, then waits for the next period. ``s <= quota`` takes ``s``;
    a 75 ms request under a 200m limit (20 ms quota per 100 ms) takes 3 x 100 + 15 = 315 ms."""
    s = np.asarray(service_s, dtype=np.float64)
    quota = np.asarray(limit_cores, dtype=np.float64) * period_s
    full = np.maximum(np.ceil(s / quota - 1e-9) - 1.0, 0.0)  # periods spent waiting
    return full * period_s + (s - full * quota)


def pod_service_model(
    arrival_rps: np.ndarray,
    service_s: np.ndarray,
    limit_cores: np.ndarray,
    period_s: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Servers, effective service time (s) and throttled-period ratio of one pod.

    A pod with a CPU limit of ``c >= 1`` cores runs ``c`` single-threaded requests at full
    speed: M/M/c with the service time unchanged (its CFS quota is only exhausted when ``c``
    requests run at once, which the queue already models). A pod with ``c < 1`` is one server
    whose speed falls from 1 (never throttled) to ``c`` (always throttled) with the throttled
    ratio ``r`` of its demand: ``s / (c + (1 - c)(1 - r))``, and is never faster than one
    request alone under the quota (:func:`cfs_solo_time_s`), which matters when one request
    needs more CPU than a period's quota.
    """
    c = np.asarray(limit_cores, dtype=np.float64)
    s = np.asarray(service_s, dtype=np.float64)
    thr = cfs_throttled_ratio(arrival_rps, s, c, period_s)
    servers = np.maximum(c, 1.0)
    small = c < 1.0
    loaded = s / np.where(small, c + (1.0 - c) * (1.0 - thr), 1.0)
    solo = np.where(small, cfs_solo_time_s(s, np.minimum(c, 1.0), period_s), s)
    svc_s = np.maximum(loaded, solo)
    # A request longer than the quota is throttled in every period it is busy.
    long_req = small & (s > c * period_s)
    busy = np.minimum(np.asarray(arrival_rps, dtype=np.float64) * svc_s, 1.0)
    thr = np.where(long_req, np.maximum(thr, busy), thr)
    return servers, svc_s, thr


def pod_latency(
    arrival_rps: np.ndarray,
    service_s: np.ndarray,
    limit_cores: np.ndarray,
    period_s: float = 0.1,
    max_utilization: float = 0.98,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steady-state latency of one visit to a pod: mean (s), quantiles (Q, N) (s), mean wait (s)
    and throttled ratio, for a pod receiving ``arrival_rps`` (capped at ``max_utilization``)."""
    servers, svc_s, thr = pod_service_model(arrival_rps, service_s, limit_cores, period_s)
    a = np.minimum(arrival_rps * svc_s, max_utilization * servers)
    # M/M/1 (every pod with a limit of at most one core) has closed forms: C = rho and an
    # exponential response time with rate mu - lambda. Use them there, Erlang-C elsewhere.
    resp_s = svc_s / (1.0 - np.minimum(a, max_utilization))  # M/M/1 mean response time
    wait_s = a * resp_s
    q_s = _EXP_QUANTILES[:, None] * resp_s[None, :]
    multi = np.flatnonzero(servers != 1.0)
    if multi.size:
        c, am, sm = servers[multi], a[multi], svc_s[multi]
        pw = erlang_c(c, am)
        wait_s[multi] = mmc_mean_wait_s(c, am, sm, wait_probability=pw)
        q_s[:, multi] = sojourn_table()(pw, c - am, sm)
    return svc_s + wait_s, q_s, wait_s, thr


@functools.lru_cache(maxsize=1)
def sojourn_table() -> SojournTable:
    """The shared, read-only quantile table (built once per process, ~40 ms)."""
    return SojournTable()
