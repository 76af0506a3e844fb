"""Workloads for DRPC: request-rate traces, external trace readers, synthetic generators and a
GRU request-rate forecaster.

The forecaster names (``GRUForecaster``, ``load_forecaster``, ...) are imported lazily, so
``import drpc.workload`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drpc.workload.formats import (
    read_alibaba_v2021_mcr,
    read_alibaba_v2022_mcr,
    read_azure_functions_2019,
)
from drpc.workload.synthetic import diurnal, flash_crowd, mmpp, mmpp_stationary_rps, ramp, step
from drpc.workload.traces import (
    TRACE_ALIASES,
    Trace,
    TraceError,
    bundled_traces,
    eval_part,
    eval_window,
    load_splits,
    load_trace,
    resolve_trace_name,
    train_part,
    train_window,
    write_trace,
)

if TYPE_CHECKING:
    from drpc.workload.forecast import (
        ForecastConfig,
        ForecasterFileError,
        GRUForecaster,
        NumpyGRUPredictor,
        evaluate_forecasters,
        last_value_forecast,
        load_forecaster,
        season_bins,
        seasonal_naive_forecast,
        train_forecaster,
        training_series,
    )

_LAZY_FORECAST = (
    "ForecastConfig",
    "ForecasterFileError",
    "GRUForecaster",
    "NumpyGRUPredictor",
    "evaluate_forecasters",
    "last_value_forecast",
    "load_forecaster",
    "season_bins",
    "seasonal_naive_forecast",
    "train_forecaster",
    "training_series",
)

__all__ = [
    "TRACE_ALIASES",
    "Trace",
    "TraceError",
    "bundled_traces",
    "diurnal",
    "eval_part",
    "eval_window",
    "flash_crowd",
    "load_splits",
    "load_trace",
    "mmpp",
    "mmpp_stationary_rps",
    "ramp",
    "read_alibaba_v2021_mcr",
    "read_alibaba_v2022_mcr",
    "read_azure_functions_2019",
    "resolve_trace_name",
    "step",
    "train_part",
    "train_window",
    "write_trace",
    # forecast (lazy)
    "ForecastConfig",
    "ForecasterFileError",
    "GRUForecaster",
    "NumpyGRUPredictor",
    "evaluate_forecasters",
    "last_value_forecast",
    "load_forecaster",
    "season_bins",
    "seasonal_naive_forecast",
    "train_forecaster",
    "training_series",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_FORECAST:
        return getattr(importlib.import_module("drpc.workload.forecast"), name)
    raise AttributeError(f"module 'drpc.workload' has no attribute {name!r}")
