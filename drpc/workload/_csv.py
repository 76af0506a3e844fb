"""Validated CSV column reading shared by the trace and external-format readers (private).

Line numbers in errors are 1-based lines of the file: the header is line 1 and data row ``i``
(0-based) is line ``i + 2``. Quoted fields with embedded newlines are not supported.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


class TraceError(ValueError):
    """Malformed trace input. The message names the file, the line and the field."""


def trace_error(
    path: str | Path, msg: str, line: int | None = None, field: str | None = None
) -> TraceError:
    """A :class:`TraceError` reading ``"<file>, line <n>, column '<field>': <msg>"``."""
    parts = [str(path)]
    if line is not None:
        parts.append(f"line {line}")
    if field is not None:
        parts.append(f"column '{field}'")
    return TraceError(f"{', '.join(parts)}: {msg}")


def read_header(path: Path) -> list[str]:
    """The header fields of a CSV file, stripped of whitespace and a UTF-8 BOM."""
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except OSError as exc:
        raise trace_error(path, f"cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise trace_error(path, f"is not UTF-8 text: {exc}", 1) from exc
    if not first.strip():
        raise trace_error(path, "is empty (no header)", 1)
    return [c.strip() for c in next(csv.reader([first]))]


def find_columns(path: Path, header: Sequence[str], wanted: Sequence[Sequence[str]]) -> list[str]:
    """Match wanted columns case-insensitively; each entry lists accepted spellings.

    Returns the header's spelling of each; a missing one raises :class:`TraceError` (line 1).
    """
    lower = {h.lower(): h for h in header}
    found = []
    for names in wanted:
        match = next((lower[n.lower()] for n in names if n.lower() in lower), None)
        if match is None:
            raise trace_error(
                path, f"missing column '{names[0]}' (header: {','.join(header)!r})", 1
            )
        found.append(match)
    return found


def _scan(path: Path, header: Sequence[str], numeric: Collection[str]) -> TraceError:
    """Exact row-by-row scan of a CSV whose fast parse failed: its first bad cell."""
    idx = [(i, h) for i, h in enumerate(header) if h in numeric]
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if len(row) != len(header):
                text = ",".join(row)
                text = text if len(text) < 80 else text[:77] + "..."
                return trace_error(
                    path, f"expected {len(header)} fields, got {len(row)}: {text!r}", line
                )
            for i, field in idx:
                try:
                    float(row[i])
                except ValueError:
                    return trace_error(path, f"{row[i]!r} is not a number", line, field)
    return trace_error(path, "could not be parsed as CSV")


def read_columns(
    path: Path,
    header: Sequence[str],
    columns: Sequence[str],
    numeric: Collection[str],
) -> dict[str, np.ndarray]:
    """Read ``columns`` of a CSV with a known ``header`` (pyarrow, fast).

    ``numeric`` columns come back as float64 (an empty cell or ``NaN`` is an error, ``inf``
    is returned for the caller to reject); the others as numpy object arrays of ``str``.
    Any unparsable cell or ragged row raises :class:`TraceError` with its line and column.
    """
    types = {c: (pa.float64() if c in numeric else pa.string()) for c in columns}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=list(columns), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        raise _scan(path, header, numeric) from None
    if table.num_rows == 0:
        raise trace_error(path, "has a header but no data rows", 2)
    out: dict[str, np.ndarray] = {}
    for c in columns:
        col = table.column(c)
        if c in numeric:
            if col.null_count:
                bad = int(np.flatnonzero(np.asarray(col.is_null()))[0])
                raise trace_error(path, "missing value or NaN", bad + 2, c)
            out[c] = col.to_numpy().astype(np.float64, copy=False)
        else:
            values = np.asarray(col.to_pylist(), dtype=object)
            empty = np.flatnonzero(values == "")
            if empty.size:
                raise trace_error(path, "empty value", int(empty[0]) + 2, c)
            out[c] = values
    return out


def check_finite_nonneg(path: Path, values: np.ndarray, field: str, rows: np.ndarray) -> None:
    """Raise on the first non-finite or negative value; ``rows`` maps to 0-based data rows."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise trace_error(path, f"{values[i]} is not finite", int(rows[i]) + 2, field)
    neg = values < 0
    if np.any(neg):
        i = int(np.flatnonzero(neg)[0])
        raise trace_error(path, f"negative value {values[i]:g}", int(rows[i]) + 2, field)
