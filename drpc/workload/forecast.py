"""GRU forecaster of the next ``horizon`` bins' request rate from the last ``window`` bins.

The model is scale-free: each input window is divided by its own mean (plus ``eps_rps``) and
passed through ``log1p``; the GRU reads that sequence and its first difference, and predicts
the targets in the same normalised space, as a correction to the last input. The prediction
is mapped back with the window's scale, so the model runs on any rescaled or time-compressed
trace. It is trained with an L1 loss in that space (a median forecast, the point forecast
that minimises absolute error, hence WAPE), each window weighted MASE-style by the inverse of
its input's mean absolute one-step change, so that smooth series count as much as noisy ones.

Training uses only the training windows of the bundled traces (``splits.yaml``), at each
trace's native bin and at the coarser bins in :attr:`ForecastConfig.extra_bin_s`, plus a few
seeded synthetic series (:func:`synthetic_training_series`). The last ``val_fraction`` of each
bundled training window is held out to pick the best epoch. Evaluation windows are only used
by :func:`evaluate_forecasters`, for reporting.

CLI::

    python -m drpc.workload.forecast train  --out drpc/data/gru_forecaster.pt
    python -m drpc.workload.forecast report --model drpc/data/gru_forecaster.pt \\
        --out drpc/data/forecast_report.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.resources
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn
from tqdm import tqdm

from drpc.workload.synthetic import diurnal, flash_crowd
from drpc.workload.traces import (
    Trace,
    bundled_traces,
    eval_window,
    load_splits,
    load_trace,
    train_part,
)

__all__ = [
    "ForecastConfig",
    "ForecasterFileError",
    "GRUForecaster",
    "NumpyGRUPredictor",
    "evaluate_forecasters",
    "last_value_forecast",
    "load_forecaster",
    "main",
    "seasonal_naive_forecast",
    "season_bins",
    "synthetic_training_series",
    "train_forecaster",
    "training_series",
]

_FILE_FORMAT = "drpc.workload.GRUForecaster"
_FILE_VERSION = 1
_SEASON_CANDIDATES_S = (86_400.0, 3_600.0, 60.0)
_SEASON_RULE = (
    "longest of 1 d, 1 h, 1 min that is a whole number (>= k) of bins and fits at least "
    "twice into the trace: 1 d for NASA and WorldCup, 1 h for Alibaba (11.8 h), 1 min for "
    "the Azure traces (< 1 h, no daily or hourly cycle observable)"
)


@dataclass(frozen=True)
class ForecastConfig:
    """Hyperparameters of :class:`GRUForecaster` and :func:`train_forecaster`."""

    window: int = 32
    """Input length W: number of past bins the model sees."""
    horizon: int = 4
    """Forecast length k: number of future bins predicted."""
    hidden_size: int = 32
    """GRU hidden units."""
    num_layers: int = 1
    """Stacked GRU layers."""
    eps_rps: float = 1e-6
    """Added to the input window's mean rate (requests/s) before normalising by it."""
    epochs: int = 25
    """Training passes; each draws fresh windows from every training series."""
    samples_per_series: int = 6000
    """Windows drawn per training series and epoch (all of them if the series has fewer)."""
    batch_size: int = 256
    """Windows per gradient step."""
    lr: float = 3e-3
    """Adam learning rate (cosine-decayed to 5% over the epochs)."""
    weight_decay: float = 1e-5
    """Adam L2 penalty."""
    grad_clip: float = 1.0
    """Max global gradient norm."""
    loss_floor: float = 0.02
    """Floor added to a window's mean |one-step change| (normalised), which divides its loss."""
    extra_bin_s: tuple[float, ...] = (15.0, 300.0)
    """Coarser bins (s) to also train on, where an integer multiple (>1) of a trace's bin."""
    min_series_bins: int = 100
    """Training series shorter than this (bins, before the validation split) are skipped."""
    synthetic_series: int = 8
    """Seeded synthetic 60 s series added to training (never used to select the epoch)."""
    synthetic_bins: int = 5000
    """Length of each synthetic series in bins."""
    val_fraction: float = 0.15
    """Tail of each training series held out to select the best epoch."""
    seed: int = 0
    """Seed of torch initialisation and window sampling."""
    num_threads: int = 2
    """torch intra-op threads used for training."""

    def __post_init__(self) -> None:
        for name in ("window", "horizon", "hidden_size", "num_layers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ForecastConfig.{name} must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("ForecastConfig.val_fraction must be in [0, 1)")
        if self.eps_rps <= 0:
            raise ValueError("ForecastConfig.eps_rps must be > 0")
        object.__setattr__(self, "extra_bin_s", tuple(float(b) for b in self.extra_bin_s))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecastConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ForecastConfig fields: {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class ForecasterFileError(ValueError):
    """A forecaster file that is missing, truncated, corrupt or of the wrong format."""


# --------------------------------------------------------------------------- model
def _normalise(history_rps: np.ndarray, eps_rps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(log1p(x / scale), scale)`` with ``scale = mean(x) + eps`` over the last axis."""
    scale = history_rps.mean(axis=-1, keepdims=True) + eps_rps
    return np.log1p(history_rps / scale), scale


class GRUForecaster(nn.Module):
    """GRU over the normalised window and its first difference, a linear head to ``horizon``
    outputs.

    The head's output is added to the last normalised input, so the untrained network starts
    near a last-value forecast and learns corrections.
    """

    def __init__(self, config: ForecastConfig | None = None) -> None:
        super().__init__()
        self.config = config or ForecastConfig()
        self.metadata: dict[str, Any] = {}
        """JSON-able training record (series, epochs, validation scores), saved with the model."""
        c = self.config
        self.gru = nn.GRU(2, c.hidden_size, num_layers=c.num_layers, batch_first=True)
        self.head = nn.Linear(c.hidden_size, c.horizon)

    def forward(self, x_norm: torch.Tensor) -> torch.Tensor:
        """Normalised windows ``[B, W]`` -> normalised forecasts ``[B, k]`` (log1p space)."""
        diff = torch.diff(x_norm, dim=1, prepend=x_norm[:, :1])
        out, _ = self.gru(torch.stack([x_norm, diff], dim=-1))
        return self.head(out[:, -1]) + x_norm[:, -1:]

    def _check_history(self, history_rps: np.ndarray) -> np.ndarray:
        x = np.asarray(history_rps, dtype=np.float64)
        if x.ndim < 1 or x.shape[-1] != self.config.window:
            raise ValueError(
                f"history must have shape [..., {self.config.window}] (the last window bins, "
                f"oldest first; pad a short history, e.g. np.pad(h, (n, 0), mode='edge')), "
                f"got {x.shape}"
            )
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError("history rates must be finite and >= 0")
        return x

    @torch.no_grad()
    def predict(self, history_rps: np.ndarray) -> np.ndarray:
        """Forecast rates (requests/s) of the next ``horizon`` bins.

        Args:
            history_rps: the last ``window`` bin rates, oldest first, shape ``[..., W]``.

        Returns:
            float64 array ``[..., k]``, ``>= 0``; entry ``h-1`` is the forecast ``h`` bins ahead.
        """
        x = self._check_history(history_rps)
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.config.window)
        x_norm, scale = _normalise(flat, self.config.eps_rps)
        was_training = self.training
        self.eval()
        z = self(torch.from_numpy(x_norm.astype(np.float32))).double().numpy()
        self.train(was_training)
        return (np.expm1(np.maximum(z, 0.0)) * scale).reshape(*lead, self.config.horizon)

    def numpy_predictor(self) -> NumpyGRUPredictor:
        """A torch-free, picklable copy of this model for per-step use (see its docs)."""
        return NumpyGRUPredictor(self)

    def save(self, path: str | Path) -> Path:
        """Write ``{format, version, config, state_dict, metadata}`` with ``torch.save``.

        The file holds only tensors and JSON-able values, so it loads with
        ``torch.load(..., weights_only=True)`` (see :func:`load_forecaster`).
        """
        path = Path(path)
        payload = {
            "format": _FILE_FORMAT,
            "version": _FILE_VERSION,
            "config": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "metadata": json.loads(json.dumps(self.metadata)),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path


class NumpyGRUPredictor:
    """Pure-numpy forward pass of a :class:`GRUForecaster` (no torch, no threads, picklable).

    Meant for one call per simulation step: ``predictor(history_rps)`` with ``[..., W]`` rates
    returns ``[..., k]`` forecasts, equal to :meth:`GRUForecaster.predict` up to float32
    rounding (about 1e-6 relative). It costs about 0.6 ms per call for W = 32 on one slow CPU
    core (``predict`` about 1 ms); for many histories at once, ``predict`` on a batch is
    cheaper per history.
    """

    def __init__(self, model: GRUForecaster) -> None:
        self.config = model.config
        sd = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
        h = self.config.hidden_size
        self._layers = []
        for i in range(self.config.num_layers):
            b_ih, b_hh = sd[f"gru.bias_ih_l{i}"], sd[f"gru.bias_hh_l{i}"]
            # r and z gates only ever use b_ih + b_hh; the n gate keeps b_hh inside r * (.)
            b_in = b_ih.copy()
            b_in[: 2 * h] += b_hh[: 2 * h]
            b_rec = np.zeros_like(b_hh)
            b_rec[2 * h :] = b_hh[2 * h :]
            self._layers.append(
                (
                    np.ascontiguousarray(sd[f"gru.weight_ih_l{i}"].T),
                    np.ascontiguousarray(sd[f"gru.weight_hh_l{i}"].T),
                    b_in,
                    b_rec,
                )
            )
        self._head_w = np.ascontiguousarray(sd["head.weight"].T)
        self._head_b = sd["head.bias"].copy()

    def __call__(self, history_rps: np.ndarray) -> np.ndarray:
        """Forecast rates (requests/s) ``[..., k]`` from the last ``W`` rates ``[..., W]``."""
        x = np.asarray(history_rps, dtype=np.float64)
        w = self.config.window
        if x.ndim < 1 or x.shape[-1] != w:
            raise ValueError(f"history must have shape [..., {w}], got {x.shape}")
        if not (np.isfinite(x).all() and x.min() >= 0):
            raise ValueError("history rates must be finite and >= 0")
        lead = x.shape[:-1]
        x_norm, scale = _normalise(x.reshape(-1, w), self.config.eps_rps)
        diff = np.diff(x_norm, axis=1, prepend=x_norm[:, :1])
        seq = np.stack([x_norm, diff], axis=-1)  # [B, W, 2]
        hid = self.config.hidden_size
        last = len(self._layers) - 1
        for layer, (w_ih_t, w_hh_t, b_in, b_rec) in enumerate(self._layers):
            h = np.zeros((seq.shape[0], hid))
            gi_all = seq @ w_ih_t + b_in  # [B, W, 3H]: input part of all steps at once
            outs = None if layer == last else np.empty((seq.shape[0], seq.shape[1], hid))
            for t in range(seq.shape[1]):
                gi = gi_all[:, t]
                gh = h @ w_hh_t + b_rec
                rz = expit(gi[:, : 2 * hid] + gh[:, : 2 * hid])
                n = np.tanh(gi[:, 2 * hid :] + rz[:, :hid] * gh[:, 2 * hid :])
                h = n + rz[:, hid:] * (h - n)
                if outs is not None:
                    outs[:, t] = h
            if outs is not None:
                seq = outs
        z = h @ self._head_w + self._head_b + x_norm[:, -1:]
        return (np.expm1(np.maximum(z, 0.0)) * scale).reshape(*lead, self.config.horizon)


def _bundled_model_path() -> Path:
    return Path(str(importlib.resources.files("drpc.data").joinpath("gru_forecaster.pt")))


def load_forecaster(path: str | Path | None = None) -> GRUForecaster:
    """Load a forecaster written by :meth:`GRUForecaster.save` (default: the bundled one).

    Always uses ``torch.load(..., weights_only=True)``: no arbitrary code is unpickled.
    A missing, truncated or corrupt file, or one with the wrong contents, raises
    :class:`ForecasterFileError`.
    """
    path = _bundled_model_path() if path is None else Path(path)
    if not path.is_file():
        raise ForecasterFileError(f"{path}: no such forecaster file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt archives
        raise ForecasterFileError(
            f"{path}: not a readable forecaster file (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise ForecasterFileError(f"{path}: not a {_FILE_FORMAT} file")
    if payload.get("version") != _FILE_VERSION:
        raise ForecasterFileError(
            f"{path}: file version {payload.get('version')!r}, expected {_FILE_VERSION}"
        )
    try:
        config = ForecastConfig.from_dict(dict(payload["config"]))
        model = GRUForecaster(config)
        model.load_state_dict(payload["state_dict"])
        model.metadata = dict(payload.get("metadata") or {})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ForecasterFileError(f"{path}: inconsistent forecaster contents: {exc}") from exc
    model.eval()
    return model


# --------------------------------------------------------------------------- baselines
def last_value_forecast(history_rps: np.ndarray, horizon: int) -> np.ndarray:
    """Persistence: every one of the next ``horizon`` bins equals the last observed bin.

    ``history_rps`` is ``[..., n]`` (n >= 1); returns ``[..., horizon]``.
    """
    x = np.asarray(history_rps, dtype=np.float64)
    return np.repeat(x[..., -1:], horizon, axis=-1)


def seasonal_naive_forecast(history_rps: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Bin ``t + h`` is forecast as bin ``t + h - season`` (needs ``horizon <= season``).

    ``history_rps`` is ``[..., n]`` with ``n >= season``; returns ``[..., horizon]``.
    """
    x = np.asarray(history_rps, dtype=np.float64)
    if not 1 <= horizon <= season <= x.shape[-1]:
        raise ValueError(
            f"need 1 <= horizon ({horizon}) <= season ({season}) <= history ({x.shape[-1]})"
        )
    n = x.shape[-1]
    return x[..., n - season : n - season + horizon]


def season_bins(duration_s: float, bin_s: float, horizon: int = 1) -> tuple[int, str]:
    """Season used by the seasonal-naive baseline, in bins, and why.

    The longest of 1 day, 1 hour, 1 minute that is a whole number (>= ``horizon``) of bins
    and fits at least twice into ``duration_s``. So the daily season applies to traces of
    at least 2 days (NASA, WorldCup), the hourly one to the 11.8 h Alibaba trace, and the
    1-minute one to the < 1 h Azure traces, where no daily or hourly cycle can be observed.
    Falls back to ``horizon`` bins if none fits.
    """
    for season_s in _SEASON_CANDIDATES_S:
        ratio = season_s / bin_s
        m = round(ratio)
        if abs(ratio - m) < 1e-9 and m >= horizon and duration_s >= 2 * season_s:
            return m, f"{season_s:g} s"
    return horizon, f"fallback: {horizon} bins (no 1 d / 1 h / 1 min season fits)"


# --------------------------------------------------------------------------- data
def training_series(
    traces: Sequence[Trace] | None = None, config: ForecastConfig | None = None
) -> list[Trace]:
    """The series a forecaster trains on, before the validation split.

    Each trace with a split in ``splits.yaml`` (looked up by ``name``) is first cut to its
    training window (:func:`~drpc.workload.traces.train_part`; bins straddling the split are
    dropped), so no evaluation-window bin is ever included; traces without a split (e.g.
    synthetic ones) are used whole. Each is used at its own bin and, re-binned from the
    training part, at every ``config.extra_bin_s`` that is an integer multiple (> 1) of it.
    Series shorter than ``config.min_series_bins`` are skipped. Default traces: all bundled.
    """
    config = config or ForecastConfig()
    if traces is None:
        traces = [load_trace(p) for p in bundled_traces().values()]
    splits = load_splits()
    out: list[Trace] = []
    for tr in traces:
        base = train_part(tr) if tr.name in splits else tr
        bins = [base.bin_s]
        for b in config.extra_bin_s:
            ratio = b / base.bin_s
            if ratio > 1.5 and abs(ratio - round(ratio)) < 1e-9:
                bins.append(b)
        for b in bins:
            series = base.resampled(b)
            if series.n_bins >= config.min_series_bins:
                out.append(series)
    if not out:
        raise ValueError("no training series long enough")
    return out


def synthetic_training_series(config: ForecastConfig | None = None) -> list[Trace]:
    """``config.synthetic_series`` seeded synthetic series used as extra training data.

    Each is a 60 s-bin sinusoidal cycle (mean 1 .. 3,000 rps, random amplitude, period
    0.5-24 h, log-uniform)
    with 0-5 flash crowds and 0-2 level shifts added, then Poisson counting noise. Names start
    with ``synthetic``.
    """
    config = config or ForecastConfig()
    rng = np.random.default_rng([config.seed, 1])
    bin_s, n = 60.0, config.synthetic_bins
    duration_s = n * bin_s
    t = (np.arange(n) + 0.5) * bin_s
    out = []
    for i in range(config.synthetic_series):
        mean = 10 ** rng.uniform(0.0, 3.5)
        rate = diurnal(
            duration_s,
            bin_s,
            mean_rps=mean,
            amplitude=rng.uniform(0.1, 0.9),
            period_s=10 ** rng.uniform(np.log10(1800.0), np.log10(86_400.0)),
            peak_at_s=rng.uniform(0.0, 86_400.0),
            poisson=False,
        ).rps.copy()
        for _ in range(rng.integers(0, 6)):
            rate += flash_crowd(
                duration_s,
                bin_s,
                base_rps=0.0,
                peak_rps=mean * 10 ** rng.uniform(-0.5, 1.0),
                start_s=rng.uniform(0.0, duration_s),
                rise_s=rng.uniform(0.0, 1800.0),
                hold_s=rng.uniform(0.0, 7200.0),
                decay_s=rng.uniform(60.0, 3600.0),
                poisson=False,
            ).rps
        for _ in range(rng.integers(0, 3)):
            rate *= np.where(t >= rng.uniform(0.0, duration_s), 10 ** rng.uniform(-0.5, 0.5), 1.0)
        rps = rng.poisson(rate * bin_s) / bin_s
        out.append(Trace(f"synthetic_{i}", rps, bin_s, source="forecast training augmentation"))
    return out


def _windows(rps: np.ndarray, window: int, horizon: int, first_target: int = 0) -> np.ndarray:
    """All ``[window + horizon]`` slices whose first target index is >= ``first_target``."""
    n = rps.size
    if n < window + horizon:
        return np.empty((0, window + horizon))
    view = np.lib.stride_tricks.sliding_window_view(rps, window + horizon)
    start = max(0, first_target - window)
    return view[start:]


def _to_batch(
    slices: np.ndarray, config: ForecastConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised inputs ``[B, W]``, targets ``[B, k]`` and per-window loss weights ``[B, 1]``."""
    x, y = slices[:, : config.window], slices[:, config.window :]
    x_norm, scale = _normalise(x, config.eps_rps)
    y_norm = np.log1p(y / scale)
    weight = 1.0 / (np.abs(np.diff(x_norm, axis=1)).mean(axis=1, keepdims=True) + config.loss_floor)
    weight /= weight.mean()
    return (
        torch.from_numpy(x_norm.astype(np.float32)),
        torch.from_numpy(y_norm.astype(np.float32)),
        torch.from_numpy(weight.astype(np.float32)),
    )


def _wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denom = float(np.abs(actual).sum())
    return float(np.abs(actual - forecast).sum() / denom) if denom > 0 else float("nan")


# --------------------------------------------------------------------------- training
def train_forecaster(
    traces: Sequence[Trace] | None = None,
    config: ForecastConfig | None = None,
    *,
    progress: bool = True,
) -> GRUForecaster:
    """Train a :class:`GRUForecaster` on the training windows of ``traces``.

    Args:
        traces: full traces (default: all bundled ones); see :func:`training_series` for how
            they are cut to their training windows and re-binned.
        config: hyperparameters (default :class:`ForecastConfig`).
        progress: show a tqdm bar over epochs.

    Returns:
        The model (eval mode) of the epoch with the lowest validation score: the mean over
        series of WAPE(GRU) / WAPE(last value) on the held-out tail of each training series.
        Training statistics are in ``model.metadata``.
    """
    config = config or ForecastConfig()
    series = training_series(traces, config) + synthetic_training_series(config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _fit(series, config, rng, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _fit(
    series: list[Trace], config: ForecastConfig, rng: np.random.Generator, progress: bool
) -> GRUForecaster:
    w, k = config.window, config.horizon
    fit_sets, val_sets = [], []
    for s in series:
        n_val = int(round(s.n_bins * config.val_fraction))
        n_fit = s.n_bins - n_val
        fit_sets.append(_windows(s.rps[:n_fit], w, k))
        if n_val >= k and not s.name.startswith("synthetic"):
            val_sets.append((f"{s.name}@{s.bin_s:g}s", _windows(s.rps, w, k, first_target=n_fit)))
    val_sets = [(name, v) for name, v in val_sets if len(v)]
    val_batches = [(name, v, _to_batch(v, config)) for name, v in val_sets]
    val_lv = [_wape(v[:, w:], last_value_forecast(v[:, :w], k)) for _, v, _ in val_batches]

    model = GRUForecaster(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=config.epochs, eta_min=0.05 * config.lr
    )
    best_score, best_state, history = math.inf, copy.deepcopy(model.state_dict()), []
    best_ratios: dict[str, float] = {}
    t0 = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train GRU", disable=not progress, file=sys.stderr)
    for epoch in bar:
        parts = []
        for sl in fit_sets:
            if len(sl) == 0:
                continue
            m = min(len(sl), config.samples_per_series)
            parts.append(sl[rng.choice(len(sl), size=m, replace=False)])
        data = np.concatenate(parts)
        data = data[rng.permutation(len(data))]
        model.train()
        total, count = 0.0, 0
        for i in range(0, len(data), config.batch_size):
            xb, yb, wb = _to_batch(data[i : i + config.batch_size], config)
            loss = ((model(xb) - yb).abs() * wb).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            total += loss.item() * len(xb)
            count += len(xb)
        sched.step()
        model.eval()
        ratios = {}
        with torch.no_grad():
            for (name, v, (xv, _, _)), lv in zip(val_batches, val_lv, strict=True):
                _, scale = _normalise(v[:, :w], config.eps_rps)
                z = model(xv).double().numpy()
                pred = np.expm1(np.maximum(z, 0.0)) * scale
                ratios[name] = _wape(v[:, w:], pred) / lv if lv > 0 else 1.0
        score = float(np.mean(list(ratios.values()))) if ratios else total / max(count, 1)
        history.append({"epoch": epoch + 1, "train_l1": total / max(count, 1), "val_score": score})
        if score < best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
            best_ratios = ratios
        bar.set_postfix(loss=f"{total / max(count, 1):.4f}", val=f"{score:.3f}")
    model.load_state_dict(best_state)
    model.eval()
    model.metadata = {
        "series": [f"{s.name}@{s.bin_s:g}s ({s.n_bins} bins)" for s in series],
        "best_epoch": int(np.argmin([h["val_score"] for h in history]) + 1),
        "best_val_wape_ratio_vs_last_value": best_score,
        "best_val_wape_ratio_per_series": best_ratios,
        "history": history,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    return model


# --------------------------------------------------------------------------- evaluation
def _metrics(actual: np.ndarray, forecast: np.ndarray, min_rps: float) -> dict[str, list[float]]:
    """Per-horizon MAPE (bins with actual > min_rps) and WAPE; arrays ``[n, k]``."""
    mape, wape = [], []
    for h in range(actual.shape[1]):
        a, f = actual[:, h], forecast[:, h]
        mask = a > min_rps
        mape.append(float(np.mean(np.abs(a[mask] - f[mask]) / a[mask])) if mask.any() else math.nan)
        wape.append(_wape(a, f))
    return {"mape": mape, "wape": wape}


def evaluate_forecasters(
    model: GRUForecaster,
    traces: Sequence[Trace] | None = None,
    *,
    bins_s: Sequence[float] | None = None,
    mape_min_frac: float = 0.1,
    progress: bool = False,
) -> dict[str, Any]:
    """Compare the GRU with last-value and seasonal-naive forecasts on evaluation windows.

    For each bundled trace (default: all) and each bin width (its native bin and every
    ``bins_s``, default ``model.config.extra_bin_s``, that is an integer multiple of it), the
    trace is re-binned, and every origin ``t`` whose targets ``t .. t+k-1`` are all evaluation-
    window bins is forecast from the ``W`` (GRU) or ``season`` (seasonal naive) bins before it.
    Those inputs may reach back into the training window: they are observations, not fitting.

    Metrics per horizon ``h = 1..k`` over the same origins for all methods:

    * WAPE = sum |actual - forecast| / sum actual.
    * MAPE = mean |actual - forecast| / actual over bins whose actual rate exceeds
      ``mape_min_frac`` times the evaluation window's mean rate (``mape_min_frac=0.1``): the
      Azure code trace is 73% zeros, where MAPE is undefined.

    Returns:
        ``{"definitions": ..., "results": {"<trace>@<bin>s": {...}}, "summary": ...}``.
    """
    k, w = model.config.horizon, model.config.window
    if traces is None:
        traces = [load_trace(p) for p in bundled_traces().values()]
    bins_s = model.config.extra_bin_s if bins_s is None else tuple(bins_s)
    results: dict[str, Any] = {}
    jobs = []
    for tr in traces:
        eval_start_s, _ = eval_window(tr.name)
        bins = [tr.bin_s] + [
            b
            for b in bins_s
            if b / tr.bin_s > 1.5 and abs(b / tr.bin_s - round(b / tr.bin_s)) < 1e-9
        ]
        jobs += [(tr, b, eval_start_s) for b in bins]
    for tr, b, eval_start_s in tqdm(jobs, desc="evaluate", disable=not progress, file=sys.stderr):
        series = tr.resampled(b)
        first = math.ceil((eval_start_s - series.start_s) / b - 1e-9)
        season, season_note = season_bins(tr.duration_s, b, k)
        lookback = max(w, season)
        slices = _windows(series.rps, lookback, k, first_target=max(first, lookback))
        if len(slices) == 0:
            continue
        history, actual = slices[:, :lookback], slices[:, lookback:]
        eval_rps = series.rps[first:]
        min_rps = mape_min_frac * float(eval_rps.mean())
        forecasts = {
            "gru": model.predict(history[:, -w:]),
            "last_value": last_value_forecast(history, k),
            "seasonal_naive": seasonal_naive_forecast(history, k, season),
        }
        entry: dict[str, Any] = {
            "bin_s": b,
            "eval_window_s": [float(eval_start_s), float(series.end_s)],
            "n_origins": int(len(slices)),
            "first_target_s": float(series.start_s + max(first, lookback) * b),
            "mape_min_rps": min_rps,
            "season_bins": season,
            "season": season_note,
        }
        for name, f in forecasts.items():
            m = _metrics(actual, f, min_rps)
            m["mape_mean"] = float(np.nanmean(m["mape"]))
            m["wape_mean"] = float(np.mean(m["wape"]))
            entry[name] = m
        results[f"{tr.name}@{b:g}s"] = entry
    wins = [r["gru"]["wape_mean"] < r["last_value"]["wape_mean"] for r in results.values()]
    wins_sn = [r["gru"]["wape_mean"] < r["seasonal_naive"]["wape_mean"] for r in results.values()]
    return {
        "definitions": {
            "wape": "sum|actual-forecast| / sum actual, per horizon h=1..k",
            "mape": (
                "mean |actual-forecast|/actual over bins with actual > mape_min_frac * "
                "mean rate of the evaluation window"
            ),
            "mape_min_frac": mape_min_frac,
            "origins": "all origins whose k targets are evaluation-window bins",
            "season_rule": _SEASON_RULE,
        },
        "results": results,
        "summary": {
            "gru_beats_last_value_wape": f"{sum(wins)}/{len(wins)}",
            "gru_beats_seasonal_naive_wape": f"{sum(wins_sn)}/{len(wins_sn)}",
        },
    }


# --------------------------------------------------------------------------- CLI
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drpc.workload.forecast",
        description=(
            "Train the GRU request-rate forecaster on the training windows of the bundled "
            "traces, or report its accuracy against last-value and seasonal-naive baselines "
            "on the evaluation windows."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train and save a forecaster")
    tr.add_argument(
        "--out", type=Path, default=_bundled_model_path(), help="model file to write (.pt)"
    )
    tr.add_argument("--epochs", type=int, default=None, help="override ForecastConfig.epochs")
    tr.add_argument("--seed", type=int, default=None, help="override ForecastConfig.seed")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    rp = sub.add_parser("report", help="evaluate a forecaster and write a JSON report")
    rp.add_argument("--model", type=Path, default=None, help="model file (default: bundled)")
    rp.add_argument(
        "--out",
        type=Path,
        default=Path(str(importlib.resources.files("drpc.data").joinpath("forecast_report.json"))),
        help="JSON report to write",
    )
    rp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``train`` or ``report`` (see ``--help``)."""
    args = _parse(argv)
    if args.command == "train":
        overrides = {
            k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None
        }
        config = ForecastConfig(**overrides)
        model = train_forecaster(config=config, progress=not args.no_progress)
        info = model.metadata
        info["command"] = "python -m drpc.workload.forecast " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        model.save(args.out)
        print(
            f"saved {args.out} ({args.out.stat().st_size} B); best epoch {info['best_epoch']}, "
            f"validation WAPE / last-value WAPE = {info['best_val_wape_ratio_vs_last_value']:.3f}"
        )
        return 0
    model = load_forecaster(args.model)
    report = evaluate_forecasters(model, progress=not args.no_progress)
    report["command"] = "python -m drpc.workload.forecast " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    report["model"] = str(args.model or "bundled drpc/data/gru_forecaster.pt")
    report["config"] = model.config.to_dict()
    report["training"] = {k: v for k, v in model.metadata.items() if k != "history"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, r in report["results"].items():
        print(
            f"{name:58s} WAPE gru {r['gru']['wape_mean']:.3f}  last {r['last_value']['wape_mean']:.3f}"
            f"  seasonal {r['seasonal_naive']['wape_mean']:.3f}"
        )
    print(
        f"wrote {args.out}; GRU beats last value on {report['summary']['gru_beats_last_value_wape']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
