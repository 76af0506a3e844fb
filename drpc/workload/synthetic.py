"""Seeded synthetic request-rate generators, each returning a :class:`~drpc.workload.traces.Trace`.

Every generator takes ``duration_s`` (seconds covered; the trace has
``floor(duration_s / bin_s)`` bins), ``bin_s`` (bin width in seconds) and ``seed``. The shape
is a deterministic rate ``lambda(t)`` in requests/s evaluated at bin midpoints (except
:func:`mmpp`, whose rate is random and integrated exactly over each bin). With
``poisson=True`` each bin's value is a Poisson request count with mean ``lambda * bin_s``,
divided by ``bin_s``; with ``poisson=False`` the noiseless rate is returned. The same
arguments and seed always give the same trace. Time 0 is the start of the trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from drpc.workload.traces import Trace

__all__ = ["diurnal", "flash_crowd", "mmpp", "mmpp_stationary_rps", "ramp", "step"]


def _midpoints(duration_s: float, bin_s: float) -> np.ndarray:
    if not (math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be finite and > 0, got {bin_s}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be finite and > 0, got {duration_s}")
    n = math.floor(duration_s / bin_s + 1e-9)
    if n < 1:
        raise ValueError(f"duration_s={duration_s:g} is shorter than one bin of {bin_s:g} s")
    return (np.arange(n) + 0.5) * bin_s


def _nonneg(**values: float) -> None:
    for key, v in values.items():
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{key} must be finite and >= 0, got {v}")


def _finish(
    name: str, rate_rps: np.ndarray, bin_s: float, poisson: bool, rng: np.random.Generator
) -> Trace:
    rate_rps = np.maximum(rate_rps, 0.0)
    if poisson:
        rate_rps = rng.poisson(rate_rps * bin_s) / bin_s
    return Trace(name=name, rps=rate_rps, bin_s=bin_s, source=f"drpc.workload.synthetic.{name}")


def diurnal(
    duration_s: float,
    bin_s: float,
    *,
    mean_rps: float,
    amplitude: float = 0.5,
    period_s: float = 86_400.0,
    peak_at_s: float = 14 * 3_600.0,
    poisson: bool = True,
    seed: int = 0,
) -> Trace:
    """Sinusoidal daily cycle ``mean_rps * (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s))``.

    Args:
        duration_s: length in seconds. bin_s: bin width in seconds.
        mean_rps: mean rate in requests/s. amplitude: relative swing in [0, 1].
        period_s: cycle length in seconds (1 day). peak_at_s: time of a maximum, seconds.
        poisson: add Poisson counting noise. seed: RNG seed.
    """
    _nonneg(mean_rps=mean_rps, period_s=period_s)
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude must be in [0, 1], got {amplitude}")
    if period_s <= 0:
        raise ValueError("period_s must be > 0")
    t = _midpoints(duration_s, bin_s)
    rate = mean_rps * (1 + amplitude * np.cos(2 * np.pi * (t - peak_at_s) / period_s))
    return _finish("diurnal", rate, bin_s, poisson, np.random.default_rng(seed))


def flash_crowd(
    duration_s: float,
    bin_s: float,
    *,
    base_rps: float,
    peak_rps: float,
    start_s: float,
    rise_s: float = 60.0,
    hold_s: float = 300.0,
    decay_s: float = 600.0,
    poisson: bool = True,
    seed: int = 0,
) -> Trace:
    """Base load with one flash crowd: linear rise, plateau at ``peak_rps``, exponential decay.

    Args:
        duration_s: length in seconds. bin_s: bin width in seconds.
        base_rps: rate before and long after the crowd, requests/s.
        peak_rps: plateau rate, requests/s (>= base_rps).
        start_s: when the rise begins, seconds. rise_s: rise duration, seconds (0 = jump).
        hold_s: plateau duration, seconds; the plateau is ``[start_s + rise_s,
            start_s + rise_s + hold_s)``.
        decay_s: time constant of the exponential return to ``base_rps``, seconds.
        poisson: add Poisson counting noise. seed: RNG seed.
    """
    _nonneg(base_rps=base_rps, peak_rps=peak_rps, rise_s=rise_s, hold_s=hold_s, decay_s=decay_s)
    if peak_rps < base_rps:
        raise ValueError(f"peak_rps ({peak_rps}) must be >= base_rps ({base_rps})")
    t = _midpoints(duration_s, bin_s)
    peak_start = start_s + rise_s
    peak_end = peak_start + hold_s
    extra = peak_rps - base_rps
    frac = np.zeros_like(t)
    if rise_s > 0:
        rising = (t >= start_s) & (t < peak_start)
        frac[rising] = (t[rising] - start_s) / rise_s
    frac[(t >= peak_start) & (t < peak_end)] = 1.0
    after = t >= peak_end
    frac[after] = np.exp(-(t[after] - peak_end) / decay_s) if decay_s > 0 else 0.0
    return _finish(
        "flash_crowd", base_rps + extra * frac, bin_s, poisson, np.random.default_rng(seed)
    )


def step(
    duration_s: float,
    bin_s: float,
    *,
    before_rps: float,
    after_rps: float,
    at_s: float,
    poisson: bool = True,
    seed: int = 0,
) -> Trace:
    """Rate ``before_rps`` until ``at_s`` seconds, then ``after_rps`` (requests/s)."""
    _nonneg(before_rps=before_rps, after_rps=after_rps)
    t = _midpoints(duration_s, bin_s)
    rate = np.where(t < at_s, before_rps, after_rps).astype(np.float64)
    return _finish("step", rate, bin_s, poisson, np.random.default_rng(seed))


def ramp(
    duration_s: float,
    bin_s: float,
    *,
    start_rps: float,
    end_rps: float,
    ramp_start_s: float = 0.0,
    ramp_end_s: float | None = None,
    poisson: bool = True,
    seed: int = 0,
) -> Trace:
    """Linear change from ``start_rps`` at ``ramp_start_s`` to ``end_rps`` at ``ramp_end_s``.

    Constant before and after the ramp; ``ramp_end_s=None`` means ``duration_s``. Rates in
    requests/s, times in seconds.
    """
    _nonneg(start_rps=start_rps, end_rps=end_rps)
    ramp_end_s = duration_s if ramp_end_s is None else ramp_end_s
    if ramp_end_s <= ramp_start_s:
        raise ValueError(f"ramp_end_s ({ramp_end_s}) must be > ramp_start_s ({ramp_start_s})")
    t = _midpoints(duration_s, bin_s)
    frac = np.clip((t - ramp_start_s) / (ramp_end_s - ramp_start_s), 0.0, 1.0)
    rate = start_rps + (end_rps - start_rps) * frac
    return _finish("ramp", rate, bin_s, poisson, np.random.default_rng(seed))


def _generator_matrix(rates_rps: Sequence[float], switch_rates_per_s: np.ndarray) -> np.ndarray:
    lam = np.asarray(rates_rps, dtype=np.float64)
    q = np.array(switch_rates_per_s, dtype=np.float64)
    s = lam.size
    if lam.ndim != 1 or s < 1:
        raise ValueError("rates_rps must be a non-empty 1-D sequence")
    if q.shape != (s, s):
        raise ValueError(f"switch_rates_per_s must have shape ({s}, {s}), got {q.shape}")
    if not (np.all(np.isfinite(lam)) and np.all(lam >= 0)):
        raise ValueError("rates_rps must be finite and >= 0")
    np.fill_diagonal(q, 0.0)
    if not (np.all(np.isfinite(q)) and np.all(q >= 0)):
        raise ValueError("switch_rates_per_s must be finite and >= 0 off the diagonal")
    if s > 1 and np.any(q.sum(axis=1) == 0):
        raise ValueError("every state needs a positive rate of leaving it")
    np.fill_diagonal(q, -q.sum(axis=1))
    return q


def _stationary(q: np.ndarray) -> np.ndarray:
    s = q.shape[0]
    a = np.vstack([q.T, np.ones(s)])
    b = np.zeros(s + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def mmpp_stationary_rps(rates_rps: Sequence[float], switch_rates_per_s: np.ndarray) -> float:
    """Long-run mean rate (requests/s) of :func:`mmpp` with these parameters."""
    q = _generator_matrix(rates_rps, switch_rates_per_s)
    return float(_stationary(q) @ np.asarray(rates_rps, dtype=np.float64))


def mmpp(
    duration_s: float,
    bin_s: float,
    *,
    rates_rps: Sequence[float] = (5.0, 50.0),
    switch_rates_per_s: np.ndarray | Sequence[Sequence[float]] = ((0.0, 1 / 300), (1 / 60, 0.0)),
    poisson: bool = True,
    seed: int = 0,
) -> Trace:
    """Markov-modulated Poisson process: bursty load switching between rate states.

    A continuous-time Markov chain over states ``i`` with request rate ``rates_rps[i]``
    (requests/s) jumps from ``i`` to ``j`` at rate ``switch_rates_per_s[i][j]`` (per second;
    the diagonal is ignored), so the mean sojourn in ``i`` is ``1 / sum_j q[i][j]`` seconds.
    The initial state is drawn from the stationary distribution, so the expected mean rate
    is :func:`mmpp_stationary_rps`. The state path is simulated exactly and the modulated rate
    integrated over each bin; requests are then Poisson (``poisson=True``) or the bin's mean
    modulated rate is returned. The default is an idle/burst pair: 5 rps for ~5 min, then
    50 rps for ~1 min.
    """
    q = _generator_matrix(rates_rps, np.asarray(switch_rates_per_s, dtype=np.float64))
    lam = np.asarray(rates_rps, dtype=np.float64)
    t_mid = _midpoints(duration_s, bin_s)
    end_s = t_mid.size * bin_s
    rng = np.random.default_rng(seed)
    leave = -np.diag(q)
    s = lam.size
    expected_jumps = end_s * float(leave.max()) if s > 1 else 0.0
    if expected_jumps > 5e6:
        raise ValueError(f"about {expected_jumps:.0f} state switches: switching rates too high")
    state = int(rng.choice(s, p=_stationary(q)))
    times, states = [0.0], [state]
    t = 0.0
    while s > 1:
        t += rng.exponential(1.0 / leave[state])
        if t >= end_s:
            break
        p = q[state].clip(min=0.0) / leave[state]
        state = int(rng.choice(s, p=p))
        times.append(t)
        states.append(state)
    # Cumulative intensity at jump times, then at bin edges by linear interpolation.
    jump_t = np.append(np.asarray(times), end_s)
    cum = np.concatenate([[0.0], np.cumsum(np.diff(jump_t) * lam[np.asarray(states)])])
    edges = np.arange(t_mid.size + 1) * bin_s
    per_bin = np.diff(np.interp(edges, jump_t, cum)) / bin_s
    if poisson:
        per_bin = rng.poisson(per_bin * bin_s) / bin_s
    return Trace(name="mmpp", rps=per_bin, bin_s=bin_s, source="drpc.workload.synthetic.mmpp")
