"""Kubernetes resource quantities (``500m``, ``1.5``, ``256Mi``, ``1e3``) to and from numbers.

Only what the twin needs: CPU in millicores and memory in MiB, parsed from the strings (or
JSON numbers) a client sends and formatted canonically the way the API server prints them
(``1000m`` is printed as ``1``, ``1024Mi`` as ``1Gi``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "QuantityError",
    "parse_quantity",
    "cpu_millicores",
    "memory_mib",
    "format_cpu",
    "format_memory",
    "format_nanocores",
    "format_kibibytes",
]

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<exp>[eE][+-]?[0-9]+)?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_MIB = 2.0**20  # bytes per MiB


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity."""


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity (string like ``"250m"`` or a JSON number) into its exact base-unit value.

    Raises:
        QuantityError: not a string or number, not quantity syntax, or not finite.
    """
    if isinstance(value, bool):
        raise QuantityError(f"expected a quantity, got {json_type(value)}")
    try:
        if isinstance(value, int | float):
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        elif isinstance(value, str):
            m = _QUANTITY.match(value.strip()) if len(value) <= 64 else None
            if m is None or (m["exp"] and m["suffix"]):
                raise QuantityError(
                    "quantities must match the regular expression "
                    f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}"
                )
            number = Decimal(m["num"] + (m["exp"] or "")) * _SUFFIX[m["suffix"] or ""]
        else:
            raise QuantityError(f"expected a quantity, got {json_type(value)}")
    except InvalidOperation:
        raise QuantityError(f"not a quantity: {value!r}") from None
    if not number.is_finite() or abs(number) > Decimal("1e30"):
        raise QuantityError(f"quantity out of range: {value!r}")
    return number


def cpu_millicores(value: object) -> float:
    """A CPU quantity in millicores (``"1.5"`` -> 1500, ``"250m"`` -> 250)."""
    return float(parse_quantity(value) * 1000)


def memory_mib(value: object) -> float:
    """A memory quantity in MiB (``"1Gi"`` -> 1024, ``"1000000"`` bytes -> 0.95)."""
    return float(parse_quantity(value) / _SUFFIX["Mi"])


def format_cpu(millicores: float) -> str:
    """Canonical CPU quantity: whole cores as ``"2"``, else millicores ``"250m"``."""
    m = int(round(float(millicores)))
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def format_memory(mib: float) -> str:
    """Canonical memory quantity: ``"1Gi"``, ``"512Mi"``, or bytes when not whole MiB."""
    b = int(round(float(mib) * _MIB))
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if b % size == 0 and b >= size:
            return f"{b // size}{suffix}"
    return str(b)


def format_nanocores(millicores: float) -> str:
    """CPU usage as metrics-server prints it: nanocores, ``"123456789n"``."""
    return f"{max(int(round(float(millicores) * 1e6)), 0)}n"


def format_kibibytes(mib: float) -> str:
    """Memory usage as metrics-server prints it: ``"123456Ki"``."""
    return f"{max(int(round(float(mib) * 1024.0)), 0)}Ki"


def json_type(value: object) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
