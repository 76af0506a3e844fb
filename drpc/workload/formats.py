"""Readers for public trace layouts, each returning :class:`~drpc.workload.traces.Trace` objects.

Every reader validates the whole input (header, numbers, signs) before it aggregates, and
raises :class:`~drpc.workload.traces.TraceError` naming the file, the line (1-based, header =
line 1) and the column of the first problem.

Layouts (checked against the dataset descriptions, not against full downloads):

* Alibaba ``cluster-trace-microservices-v2021``, table ``MSRTQps`` (``MS_MCR_RT_Table``):
  long format ``timestamp,msname,msinstanceid,metric,value`` (the README spells the fourth
  column ``metrics``; both are accepted). ``timestamp`` is in ms from the trace start
  (0 .. 43,200,000), sampled every 60 s. ``metric`` names a call rate (``*_MCR``, calls per
  second per container) or a response time (``*_RT``, ms), for example ``providerRPC_MCR``,
  ``consumerRPC_MCR``, ``HTTP_MCR``, ``providerMQ_MCR``, ``consumerMQ_MCR``. Source:
  github.com/alibaba/clusterdata, ``cluster-trace-microservices-v2021/README.md``.
* Alibaba ``cluster-trace-microservices-v2022``, table ``MSRTMCR``: wide format
  ``timestamp,msname,msinstanceid,nodeid,providerRPC_RT,providerRPC_MCR,consumerRPC_RT,
  consumerRPC_MCR,...,HTTP_MCR,HTTP_RT`` (the README shows the names in lower case; columns
  are matched case-insensitively). ``timestamp`` is in ms, sampled every 60 s. The README
  states that MCR values are max-min **normalised** to [0, 1], so the resulting rates are
  relative: rescale them (``Trace.rescaled_to_peak``) before use. Source:
  ``cluster-trace-microservices-v2022/README.md`` in the same repository.
* Azure Functions 2019, ``invocations_per_function_md.anon.dNN.csv`` (one file per day):
  ``HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440``, the numbers being invocations of the
  function in each minute of the day. Source: github.com/Azure/AzurePublicDataset,
  ``AzureFunctionsDataset2019.md``.

Other columns (for example a leading unnamed index column) are ignored by the Alibaba readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from drpc.workload._csv import (
    TraceError,
    check_finite_nonneg,
    find_columns,
    read_columns,
    read_header,
    trace_error,
)
from drpc.workload.traces import Trace

__all__ = [
    "AGGREGATE_NAME",
    "read_alibaba_v2021_mcr",
    "read_alibaba_v2022_mcr",
    "read_azure_functions_2019",
]

AGGREGATE_NAME = "all"
"""Key of the single trace returned when a reader is asked to aggregate everything."""

_AZURE_ID_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
_AZURE_MINUTES = 1440


def _check_mcr_metric(metric: str) -> None:
    if not metric.lower().endswith("_mcr"):
        raise ValueError(
            f"metric {metric!r} is not a call rate: pick an '*_MCR' metric such as "
            "'providerRPC_MCR' (response times '*_RT' are not request rates)"
        )


def _bin_by_service(
    path: Path,
    t_ms: np.ndarray,
    names: np.ndarray,
    values: np.ndarray,
    *,
    bin_s: float,
    msnames: Iterable[str] | None,
    aggregate: bool,
    source: str,
) -> dict[str, Trace]:
    """Sum ``values`` over instances per (msname, bin), averaged over the bin's sample times.

    The time axis is shared by all services: from the earliest to the latest sample of the
    file, on a grid of ``bin_s`` aligned to trace time 0. A bin's rate is the sum of the
    values that fall into it divided by the number of distinct sample timestamps the file
    has in that bin; a service with no row at a sample time contributes 0 there. Bins with no
    sample at all in the file get rate 0.
    """
    if not (np.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be finite and > 0, got {bin_s}")
    bin_ms = bin_s * 1000.0
    first_bin = int(np.floor(t_ms.min() / bin_ms))
    bins = np.floor(t_ms / bin_ms).astype(np.int64) - first_bin
    n_bins = int(bins.max()) + 1
    _, uniq_idx = np.unique(t_ms, return_index=True)
    samples_per_bin = np.bincount(bins[uniq_idx], minlength=n_bins).astype(np.float64)
    denom = np.maximum(samples_per_bin, 1.0)

    all_names, inverse = np.unique(names.astype(str), return_inverse=True)
    if msnames is not None:
        wanted = list(dict.fromkeys(msnames))
        present = set(all_names.tolist())
        unknown = [m for m in wanted if m not in present]
        if unknown:
            raise TraceError(f"{path}: msname {unknown[0]!r} not found (for the chosen metric)")
        keep = np.isin(all_names, wanted)
    else:
        keep = np.ones(all_names.size, dtype=bool)

    sums = np.zeros((all_names.size, n_bins))
    np.add.at(sums, (inverse, bins), values)
    rates = sums / denom
    start_s = first_bin * bin_s
    if aggregate:
        total = rates[keep].sum(axis=0)
        return {AGGREGATE_NAME: Trace(AGGREGATE_NAME, total, bin_s, start_s, source)}
    return {
        str(name): Trace(str(name), rates[i], bin_s, start_s, source)
        for i, name in enumerate(all_names)
        if keep[i]
    }


def read_alibaba_v2021_mcr(
    path: str | Path,
    metric: str = "providerRPC_MCR",
    *,
    msnames: Iterable[str] | None = None,
    bin_s: float = 60.0,
    aggregate: bool = False,
) -> dict[str, Trace]:
    """Per-microservice call rates from an Alibaba v2021 ``MSRTQps`` (MS_MCR_RT) CSV.

    Args:
        path: CSV in the long layout ``timestamp,msname,msinstanceid,metric,value``
            (``timestamp`` in ms; see the module docstring).
        metric: the ``*_MCR`` metric to read (calls/s per container), e.g. ``providerRPC_MCR``
            (calls received) or ``consumerRPC_MCR`` (calls made). Matched case-insensitively.
        msnames: keep only these microservices (default: all that have ``metric`` rows).
        bin_s: output bin width in seconds (the trace samples every 60 s).
        aggregate: return one trace, the sum over the selected services, under ``"all"``.

    Returns:
        ``{msname: Trace}``: rate in requests/s summed over the service's instances; all
        traces share one time axis (``start_s`` = first sample's bin, in trace seconds).
    """
    _check_mcr_metric(metric)
    path = Path(path)
    header = read_header(path)
    c_t, c_ms, c_inst, c_metric, c_value = find_columns(
        path,
        header,
        [("timestamp",), ("msname",), ("msinstanceid",), ("metric", "metrics"), ("value",)],
    )
    cols = read_columns(path, header, [c_t, c_ms, c_inst, c_metric, c_value], {c_t, c_value})
    t_ms = cols[c_t]
    check_finite_nonneg(path, t_ms, c_t, np.arange(t_ms.size))
    lowered = np.char.lower(cols[c_metric].astype(str))
    rows = np.flatnonzero(lowered == metric.lower())
    if rows.size == 0:
        raise trace_error(path, f"no row has metric {metric!r}", field=c_metric)
    values = cols[c_value][rows]
    check_finite_nonneg(path, values, c_value, rows)
    return _bin_by_service(
        path,
        t_ms[rows],
        cols[c_ms][rows],
        values,
        bin_s=bin_s,
        msnames=msnames,
        aggregate=aggregate,
        source=f"{path} (alibaba v2021 MSRTQps, {metric})",
    )


def read_alibaba_v2022_mcr(
    path: str | Path,
    metric: str = "providerRPC_MCR",
    *,
    msnames: Iterable[str] | None = None,
    bin_s: float = 60.0,
    aggregate: bool = False,
) -> dict[str, Trace]:
    """Per-microservice call rates from an Alibaba v2022 ``MSRTMCR`` CSV (wide layout).

    Args:
        path: CSV with columns ``timestamp,msname,msinstanceid,...`` and one column per
            metric (``providerRPC_MCR``, ``HTTP_MCR``, ...; matched case-insensitively).
        metric: the ``*_MCR`` column to read. Values are max-min normalised in the public
            trace, so the result is a relative rate: rescale it before driving a load.
        msnames, bin_s, aggregate: as in :func:`read_alibaba_v2021_mcr`.

    Returns:
        ``{msname: Trace}`` summed over instances, on one shared time axis.
    """
    _check_mcr_metric(metric)
    path = Path(path)
    header = read_header(path)
    c_t, c_ms, c_inst, c_value = find_columns(
        path, header, [("timestamp",), ("msname",), ("msinstanceid",), (metric,)]
    )
    cols = read_columns(path, header, [c_t, c_ms, c_inst, c_value], {c_t, c_value})
    rows = np.arange(cols[c_t].size)
    check_finite_nonneg(path, cols[c_t], c_t, rows)
    check_finite_nonneg(path, cols[c_value], c_value, rows)
    return _bin_by_service(
        path,
        cols[c_t],
        cols[c_ms],
        cols[c_value],
        bin_s=bin_s,
        msnames=msnames,
        aggregate=aggregate,
        source=f"{path} (alibaba v2022 MSRTMCR, {c_value}, normalised)",
    )


def read_azure_functions_2019(
    paths: str | Path | Sequence[str | Path],
    *,
    group_by: Literal["function", "app", "owner", "all"] = "function",
    triggers: Iterable[str] | None = None,
) -> dict[str, Trace]:
    """Invocation rates from Azure Functions 2019 ``invocations_per_function_md.anon.dNN.csv``.

    Args:
        paths: one day file, or several given in day order; they are concatenated
            (1,440 one-minute bins per file, ``start_s`` = 0 at minute 1 of the first file).
            A key missing from a day gets zeros for that day.
        group_by: one trace per ``HashFunction`` (``"function"``), per ``HashApp``,
            per ``HashOwner``, or a single sum under ``"all"``. Rows with the same key are
            summed.
        triggers: keep only rows whose ``Trigger`` is in this set (e.g. ``{"http"}``).

    Returns:
        ``{key: Trace}`` with 60 s bins; rps = invocations per minute / 60.
    """
    if group_by not in ("function", "app", "owner", "all"):
        raise ValueError(f"group_by must be function|app|owner|all, got {group_by!r}")
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("no Azure Functions file given")
    key_col = {"function": "HashFunction", "app": "HashApp", "owner": "HashOwner"}.get(group_by)
    minute_cols = [str(m) for m in range(1, _AZURE_MINUTES + 1)]
    expected = [*_AZURE_ID_COLUMNS, *minute_cols]
    wanted = None if triggers is None else set(triggers)

    days: list[dict[str, np.ndarray]] = []
    for path in path_list:  # validate every file before aggregating any
        header = read_header(path)
        for i, name in enumerate(expected):
            if i >= len(header) or header[i] != name:
                got = header[i] if i < len(header) else "<end of header>"
                raise trace_error(
                    path, f"expected column '{name}' at position {i + 1}, got {got!r}", 1, name
                )
        if len(header) != len(expected):
            raise trace_error(path, f"{len(header) - len(expected)} unexpected extra columns", 1)
        cols = read_columns(path, header, expected, set(minute_cols))
        counts = np.column_stack([cols[c] for c in minute_cols])
        bad = ~np.isfinite(counts) | (counts < 0)
        if np.any(bad):
            r, c = (int(x) for x in np.argwhere(bad)[0])
            what = "is not finite" if not np.isfinite(counts[r, c]) else "is negative"
            raise trace_error(path, f"count {counts[r, c]} {what}", r + 2, minute_cols[c])
        keep = np.ones(counts.shape[0], dtype=bool)
        if wanted is not None:
            keep = np.isin(cols["Trigger"].astype(str), list(wanted))
        keys = (
            np.full(counts.shape[0], AGGREGATE_NAME, dtype=object)
            if key_col is None
            else cols[key_col]
        )
        names, inverse = np.unique(keys[keep].astype(str), return_inverse=True)
        sums = np.zeros((names.size, _AZURE_MINUTES))
        np.add.at(sums, inverse, counts[keep])
        days.append({str(n): sums[i] for i, n in enumerate(names)})

    all_keys = sorted(set().union(*days))
    if not all_keys:
        raise TraceError(f"{path_list[0]}: no row matches triggers {sorted(wanted or [])}")
    zeros = np.zeros(_AZURE_MINUTES)
    source = f"{', '.join(map(str, path_list))} (azure functions 2019, by {group_by})"
    return {
        k: Trace(k, np.concatenate([d.get(k, zeros) for d in days]) / 60.0, 60.0, 0.0, source)
        for k in all_keys
    }
