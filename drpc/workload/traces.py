"""Request-rate traces: the :class:`Trace` container, CSV loading and the train/eval split.

A trace is a piecewise-constant request rate: ``rps[i]`` is the mean rate in requests per
second over the bin ``[t_s[i], t_s[i] + bin_s)``, with ``t_s[i] = start_s + i * bin_s``.
All times are in *trace seconds*: the time axis of the original trace, 0 at its first bin
(or whatever ``start_s`` a reader assigns).

The bundled traces live in ``drpc/data/traces/*.csv`` (see ``README.md`` and ``SOURCES.md``
there) and are read with :func:`load_trace`. Their train/evaluation split is
``drpc/data/traces/splits.yaml``; fit and tune only on :func:`train_part`.
"""

from __future__ import annotations

import importlib.resources
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from drpc.workload._csv import (
    TraceError,
    check_finite_nonneg,
    read_columns,
    read_header,
    trace_error,
)

__all__ = [
    "TRACE_ALIASES",
    "Trace",
    "TraceError",
    "bundled_traces",
    "eval_part",
    "eval_window",
    "load_splits",
    "load_trace",
    "resolve_trace_name",
    "train_part",
    "train_window",
    "write_trace",
]

_TRACE_PACKAGE = "drpc.data.traces"
_HEADER = ("timestamp", "rps")
# Relative tolerance on bin widths and bin-boundary arithmetic (floating-point slack only).
_REL_TOL = 1e-6

TRACE_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {
        "nasa": "nasa_http_1995_07_per_minute",
        "worldcup98": "worldcup98_1998_per_minute",
        "azure_code": "azure_llm_inference_2023_code_per_second",
        "azure_conv": "azure_llm_inference_2023_conv_per_second",
        "alibaba": "alibaba_microservices_2021_ms6d9c26b9_per_minute",
    }
)
"""Short names accepted wherever a bundled trace name is: alias -> file stem."""


@dataclass(frozen=True, eq=False)
class Trace:
    """A request rate that is constant within equal, contiguous bins.

    Instances are immutable (``rps`` is a read-only float64 copy) and compare by identity.
    """

    name: str
    """Identifier; for bundled traces the CSV file stem."""
    rps: np.ndarray
    """Mean request rate per bin in requests/s; 1-D float64, finite, >= 0, non-empty."""
    bin_s: float
    """Bin width in seconds (> 0)."""
    start_s: float = 0.0
    """Start of the first bin, in trace seconds."""
    source: str = ""
    """Provenance: the file it was read from or the generator that made it."""

    def __post_init__(self) -> None:
        rps = np.array(self.rps, dtype=np.float64, copy=True)
        if rps.ndim != 1 or rps.size == 0:
            raise ValueError(f"Trace {self.name!r}: rps must be a non-empty 1-D array")
        if not np.all(np.isfinite(rps)):
            bad = int(np.flatnonzero(~np.isfinite(rps))[0])
            raise ValueError(f"Trace {self.name!r}: rps[{bad}] = {rps[bad]} is not finite")
        if np.any(rps < 0):
            bad = int(np.flatnonzero(rps < 0)[0])
            raise ValueError(f"Trace {self.name!r}: rps[{bad}] = {rps[bad]} is negative")
        if not (math.isfinite(self.bin_s) and self.bin_s > 0):
            raise ValueError(f"Trace {self.name!r}: bin_s must be finite and > 0, got {self.bin_s}")
        if not math.isfinite(self.start_s):
            raise ValueError(f"Trace {self.name!r}: start_s must be finite, got {self.start_s}")
        rps.setflags(write=False)
        object.__setattr__(self, "rps", rps)
        object.__setattr__(self, "bin_s", float(self.bin_s))
        object.__setattr__(self, "start_s", float(self.start_s))

    def __repr__(self) -> str:
        return (
            f"Trace(name={self.name!r}, n_bins={self.n_bins}, bin_s={self.bin_s:g}, "
            f"start_s={self.start_s:g}, mean_rps={self.mean_rps:.4g}, peak_rps={self.peak_rps:.4g})"
        )

    def __len__(self) -> int:
        return self.n_bins

    # ----------------------------------------------------------------- properties
    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.rps.size)

    @property
    def t_s(self) -> np.ndarray:
        """Bin start times in trace seconds, shape ``[n_bins]``."""
        return self.start_s + self.bin_s * np.arange(self.n_bins, dtype=np.float64)

    @property
    def end_s(self) -> float:
        """End of the last bin in trace seconds (exclusive)."""
        return self.start_s + self.n_bins * self.bin_s

    @property
    def duration_s(self) -> float:
        """Covered time in seconds (``n_bins * bin_s``)."""
        return self.n_bins * self.bin_s

    @property
    def peak_rps(self) -> float:
        """Largest bin rate in requests/s."""
        return float(self.rps.max())

    @property
    def mean_rps(self) -> float:
        """Time-averaged rate in requests/s."""
        return float(self.rps.mean())

    # ----------------------------------------------------------------- transforms
    def _replace(self, **changes: object) -> Trace:
        fields = {
            "name": self.name,
            "rps": self.rps,
            "bin_s": self.bin_s,
            "start_s": self.start_s,
            "source": self.source,
        }
        fields.update(changes)
        return Trace(**fields)  # type: ignore[arg-type]

    def window(self, start_s: float, end_s: float | None = None) -> Trace:
        """Bins whose start time lies in ``[start_s, end_s)`` (trace seconds).

        ``end_s=None`` means the end of the trace. Raises ``ValueError`` when the window is
        outside the trace or holds no bin. The result keeps the trace's time axis
        (its ``start_s`` is the first kept bin's start).
        """
        end_s = self.end_s if end_s is None else float(end_s)
        tol = _REL_TOL * self.bin_s
        if not (math.isfinite(start_s) and math.isfinite(end_s)):
            raise ValueError(f"window [{start_s}, {end_s}) of {self.name!r} is not finite")
        if start_s < self.start_s - tol or end_s > self.end_s + tol:
            raise ValueError(
                f"window [{start_s:g}, {end_s:g}) s is outside trace {self.name!r} "
                f"[{self.start_s:g}, {self.end_s:g}) s"
            )
        i0 = max(0, math.ceil((start_s - self.start_s) / self.bin_s - _REL_TOL))
        i1 = min(self.n_bins, math.ceil((end_s - self.start_s) / self.bin_s - _REL_TOL))
        if i1 <= i0:
            raise ValueError(
                f"window [{start_s:g}, {end_s:g}) s of trace {self.name!r} holds no bin "
                f"(bin_s={self.bin_s:g})"
            )
        return self._replace(rps=self.rps[i0:i1], start_s=self.start_s + i0 * self.bin_s)

    def scaled(self, factor: float) -> Trace:
        """Every rate multiplied by ``factor`` (>= 0)."""
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"scale factor must be finite and >= 0, got {factor}")
        return self._replace(rps=self.rps * factor)

    def rescaled_to_peak(self, peak_rps: float) -> Trace:
        """Rates scaled so that the largest bin equals ``peak_rps`` (requests/s, > 0)."""
        if not (math.isfinite(peak_rps) and peak_rps > 0):
            raise ValueError(f"peak_rps must be finite and > 0, got {peak_rps}")
        if self.peak_rps <= 0:
            raise ValueError(f"trace {self.name!r} is all zeros; it cannot be rescaled to a peak")
        return self.scaled(peak_rps / self.peak_rps)

    def time_compressed(self, factor: float) -> Trace:
        """Same rates played ``factor`` times faster: ``bin_s`` and ``start_s`` divided by it.

        E.g. ``factor=4`` turns 60 s bins into 15 s bins. Rates (requests/s) are unchanged,
        so each bin carries ``factor`` times fewer requests. Splits (:func:`train_part`) are
        in original trace seconds: take them before compressing.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"compression factor must be finite and > 0, got {factor}")
        return self._replace(bin_s=self.bin_s / factor, start_s=self.start_s / factor)

    def resampled(self, bin_s: float) -> Trace:
        """Re-binned to ``bin_s`` seconds, preserving the mean rate.

        ``bin_s`` must be an integer multiple of the current bin (coarser: each new bin is the
        mean of ``m`` old bins, and a trailing partial group is dropped) or an integer
        fraction of it (finer: each value is repeated).
        """
        if not (math.isfinite(bin_s) and bin_s > 0):
            raise ValueError(f"bin_s must be finite and > 0, got {bin_s}")
        up = bin_s / self.bin_s
        down = self.bin_s / bin_s
        if abs(up - round(up)) <= _REL_TOL * up and round(up) >= 1:
            m = int(round(up))
            if m == 1:
                return self._replace()
            n = self.n_bins // m
            if n == 0:
                raise ValueError(
                    f"trace {self.name!r} ({self.n_bins} bins of {self.bin_s:g} s) is shorter "
                    f"than one {bin_s:g} s bin"
                )
            rps = self.rps[: n * m].reshape(n, m).mean(axis=1)
            return self._replace(rps=rps, bin_s=float(bin_s))
        if abs(down - round(down)) <= _REL_TOL * down and round(down) >= 1:
            m = int(round(down))
            return self._replace(rps=np.repeat(self.rps, m), bin_s=float(bin_s))
        raise ValueError(
            f"cannot resample trace {self.name!r} from {self.bin_s:g} s to {bin_s:g} s bins: "
            "the ratio must be an integer or the inverse of one"
        )

    def rebased(self, start_s: float = 0.0) -> Trace:
        """Same bins on a shifted time axis whose first bin starts at ``start_s``."""
        return self._replace(start_s=float(start_s))

    def rate_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Rate (requests/s) in effect at times ``t_s`` (trace seconds, same axis as ``t_s``).

        Vectorised; piecewise constant per bin (a bin boundary belongs to the later bin).
        Times at or after :attr:`end_s` get the last bin's rate; times before
        :attr:`start_s` raise ``ValueError``.
        """
        t = np.asarray(t_s, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError("rate_at: times must be finite")
        rel = (t - self.start_s) / self.bin_s
        if np.any(rel < -_REL_TOL):
            raise ValueError(
                f"rate_at: time {float(np.min(t)):g} s is before the start of trace "
                f"{self.name!r} ({self.start_s:g} s); use Trace.rebased() to shift it"
            )
        idx = np.clip(np.floor(rel + _REL_TOL).astype(np.int64), 0, self.n_bins - 1)
        return self.rps[idx]

    def train_part(self) -> Trace:
        """The training window of this bundled trace (see :func:`train_part`)."""
        return train_part(self)

    def eval_part(self) -> Trace:
        """The evaluation window of this bundled trace (see :func:`eval_part`)."""
        return eval_part(self)


# --------------------------------------------------------------------------- bundled data
def _resource(name: str) -> Path:
    """Path of a file shipped in the ``drpc.data.traces`` package data."""
    return Path(str(importlib.resources.files(_TRACE_PACKAGE).joinpath(name)))


def bundled_traces() -> dict[str, Path]:
    """Bundled trace files, ``{file stem: path}``, sorted by name."""
    root = importlib.resources.files(_TRACE_PACKAGE)
    out = {Path(e.name).stem: Path(str(e)) for e in root.iterdir() if e.name.endswith(".csv")}
    return dict(sorted(out.items()))


def resolve_trace_name(name: str) -> str:
    """File stem of a bundled trace given an alias (``nasa``, ...), a stem or a file name."""
    stem = Path(name).stem if name.endswith(".csv") else name
    stem = TRACE_ALIASES.get(stem, stem)
    known = bundled_traces()
    if stem not in known:
        raise KeyError(
            f"unknown bundled trace {name!r}; known: {sorted(known)} "
            f"and aliases {sorted(TRACE_ALIASES)}"
        )
    return stem


# --------------------------------------------------------------------------- CSV reading
def _validate_timestamps(path: Path, t: np.ndarray, field: str = "timestamp") -> float:
    """Check finite, strictly increasing, equally spaced timestamps; return the spacing."""
    if not np.all(np.isfinite(t)):
        raise trace_error(path, "not finite", int(np.flatnonzero(~np.isfinite(t))[0]) + 2, field)
    if t.size < 2:
        raise trace_error(path, "need at least 2 rows to infer the bin width", 2, field)
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise trace_error(
            path, f"timestamps must strictly increase ({t[i - 1]:g} then {t[i]:g})", i + 2, field
        )
    bin_s = float(dt[0])
    bad = np.abs(dt - bin_s) > _REL_TOL * bin_s + 1e-9
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0]) + 1
        raise trace_error(
            path,
            f"unequal bins: step {dt[i - 1]:g} s from {t[i - 1]:g} (first step {bin_s:g} s)",
            i + 2,
            field,
        )
    return bin_s


def load_trace(path_or_name: str | Path) -> Trace:
    """Read a ``timestamp,rps`` CSV (or a bundled trace by alias / file stem).

    The header must be exactly ``timestamp,rps``; ``timestamp`` is the bin start in seconds
    (strictly increasing, equal steps), ``rps`` the mean rate in requests/s (finite, >= 0).
    Every check runs before a :class:`Trace` is built and raises :class:`TraceError` naming
    the file, line (1-based, header = line 1) and column. The trace's ``start_s`` is the first
    timestamp and its ``name`` the file stem.
    """
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = bundled_traces()[resolve_trace_name(str(path_or_name))]
    header = read_header(path)
    if tuple(header) != _HEADER:
        missing = [c for c in _HEADER if c not in header]
        what = f"missing column '{missing[0]}'" if missing else "unexpected header"
        raise trace_error(
            path,
            f"{what}: the header must be exactly 'timestamp,rps', got {','.join(header)!r}",
            1,
            missing[0] if missing else None,
        )
    cols = read_columns(path, header, _HEADER, numeric=_HEADER)
    t, rps = cols["timestamp"], cols["rps"]
    bin_s = _validate_timestamps(path, t)
    check_finite_nonneg(path, rps, "rps", np.arange(rps.size))
    return Trace(name=path.stem, rps=rps, bin_s=bin_s, start_s=float(t[0]), source=str(path))


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` as a ``timestamp,rps`` CSV readable by :func:`load_trace`."""
    path = Path(path)
    data = np.column_stack([trace.t_s, trace.rps])
    np.savetxt(path, data, delimiter=",", header="timestamp,rps", comments="", fmt="%.10g")
    return path


# --------------------------------------------------------------------------- splits
def load_splits() -> dict[str, float]:
    """``{file stem: train_end_s}`` from the bundled ``splits.yaml`` (validated)."""
    path = _resource("splits.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TraceError(f"{path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("traces"), dict):
        raise TraceError(f"{path}: expected a mapping with a 'traces' mapping")
    out: dict[str, float] = {}
    for stem, entry in data["traces"].items():
        value = entry.get("train_end_s") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise TraceError(f"{path}: traces.{stem}.train_end_s must be a number > 0")
        out[str(stem)] = float(value)
    return out


def train_window(name: str) -> tuple[float, float]:
    """``(start_s, end_s)`` of the training window of a bundled trace, half-open."""
    stem = resolve_trace_name(name)
    splits = load_splits()
    if stem not in splits:
        raise KeyError(f"no split for trace {stem!r} in splits.yaml")
    return (0.0, splits[stem])


def eval_window(name: str) -> tuple[float, float]:
    """``(start_s, end_s)`` of the evaluation window of a bundled trace, half-open.

    It runs from the training window's end to the end of the trace.
    """
    stem = resolve_trace_name(name)
    _, train_end_s = train_window(stem)
    return (train_end_s, load_trace(stem).end_s)


def train_part(trace: Trace) -> Trace:
    """The bins of a bundled ``trace`` (found by ``trace.name``) that lie wholly inside its
    training window (a bin that straddles the split is dropped).

    Works on windowed, rescaled or resampled copies (same time axis), not on time-compressed
    ones. Raises ``KeyError`` for a trace without a split.
    """
    start_s, end_s = train_window(trace.name)
    # Keep only bins that end by the split, so a coarse bin never straddles it.
    n_full = math.floor((min(end_s, trace.end_s) - trace.start_s) / trace.bin_s + _REL_TOL)
    return trace.window(max(start_s, trace.start_s), trace.start_s + n_full * trace.bin_s)


def eval_part(trace: Trace) -> Trace:
    """The bins of a bundled ``trace`` inside its evaluation window (see :func:`train_part`)."""
    _, train_end_s = train_window(trace.name)
    return trace.window(max(train_end_s, trace.start_s), trace.end_s)
