"""Parsing of Kubernetes-style quantities into the units DRPC uses internally.

Fields named ``*_millicores`` take a number (millicores) or a CPU quantity string
(``"250m"``, ``"0.5"``, ``"2"``); fields named ``*_mib`` take a number (MiB) or a memory
quantity (``"512Mi"``, ``"1Gi"``, ``"500M"``, ``"1073741824"``); fields named ``*_s`` take a
number (seconds) or a duration (``"100ms"``, ``"30s"``, ``"5m"``, ``"1h"``). Anything else is a
:class:`UnitError` that says which units are accepted.
"""

from __future__ import annotations

import math
import re

__all__ = ["UnitError", "parse_cpu_millicores", "parse_memory_mib", "parse_duration_s"]


class UnitError(ValueError):
    """A value with a missing, unknown or wrong unit."""


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z]*)\s*$")

_MEMORY_FACTORS_BYTES = {
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}
_DURATION_FACTORS_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _split(value: object, what: str) -> tuple[float, str | None]:
    """Return (number, suffix); suffix is None when the value was already a bare number."""
    if isinstance(value, bool):
        raise UnitError(f"expected a {what}, got a boolean {value!r}")
    if isinstance(value, int | float):
        return float(value), None
    if not isinstance(value, str):
        raise UnitError(f"expected a {what}, got {type(value).__name__} {value!r}")
    match = _QUANTITY.match(value)
    if match is None:
        raise UnitError(f"cannot parse {value!r} as a {what}")
    return float(match.group(1)), match.group(2)


def _finite(number: float, text: object) -> float:
    if not math.isfinite(number):
        raise UnitError(f"value {text!r} is not finite")
    return number


def parse_cpu_millicores(value: object) -> float:
    """A CPU amount in millicores: a bare number is millicores; ``"250m"`` or ``"0.5"`` (cores)."""
    number, suffix = _split(value, "CPU quantity (e.g. 250 or '250m' or '0.5')")
    if suffix is None:
        return _finite(number, value)
    if suffix == "m":
        return _finite(number, value)
    if suffix == "":
        return _finite(number * 1000.0, value)
    raise UnitError(
        f"unknown CPU unit {suffix!r} in {value!r}: use millicores ('250m') or cores ('0.5')"
    )


def parse_memory_mib(value: object) -> float:
    """A memory amount in MiB: a bare number is MiB; strings use Kubernetes suffixes."""
    number, suffix = _split(value, "memory quantity (e.g. 512 or '512Mi' or '1Gi')")
    if suffix is None:
        return _finite(number, value)
    if suffix not in _MEMORY_FACTORS_BYTES:
        raise UnitError(
            f"unknown memory unit {suffix!r} in {value!r}: use one of "
            f"{', '.join(repr(k) for k in _MEMORY_FACTORS_BYTES if k)} or plain bytes"
        )
    return _finite(number * _MEMORY_FACTORS_BYTES[suffix] / 2.0**20, value)


def parse_duration_s(value: object) -> float:
    """A duration in seconds: a bare number is seconds; ``"100ms"``, ``"30s"``, ``"5m"``, ``"1h"``."""
    number, suffix = _split(value, "duration (e.g. 30 or '30s' or '100ms')")
    if suffix is None:
        return _finite(number, value)
    if suffix not in _DURATION_FACTORS_S:
        raise UnitError(
            f"unknown time unit {suffix!r} in {value!r}: use one of "
            f"{', '.join(repr(k) for k in _DURATION_FACTORS_S)}"
        )
    return _finite(number * _DURATION_FACTORS_S[suffix], value)
