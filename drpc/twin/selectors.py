"""Label and field selectors (``?labelSelector=app=x,tier!=db`` and ``?fieldSelector=...``).

Label selectors support the full set-based grammar of ``k8s.io/apimachinery/pkg/labels``:
``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``,
joined by commas. Field selectors support ``=``, ``==`` and ``!=`` on the fields each kind
allows (:data:`FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SelectorError",
    "LabelRequirement",
    "FieldRequirement",
    "parse_label_selector",
    "parse_field_selector",
    "matches_labels",
    "matches_fields",
    "FIELDS",
]

_KEY = re.compile(
    r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,252}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_MAX_LEN = 4096


class SelectorError(ValueError):
    """A selector string that does not parse."""


@dataclass(frozen=True)
class LabelRequirement:
    """One requirement: ``key`` ``op`` ``values`` with op in exists, !, =, !=, in, notin."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        # "!=" and "notin" also match objects without the key, as upstream.
        return not has or labels[self.key] not in self.values


@dataclass(frozen=True)
class FieldRequirement:
    """``field`` ``op`` ``value`` with op ``=`` or ``!=``."""

    field: str
    op: str
    value: str


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append(text[start:])
    return parts


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


_SET = re.compile(r"^\s*(?P<key>\S+?)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")


def parse_label_selector(text: str | None) -> list[LabelRequirement]:
    """Parse a label selector; an empty or missing selector matches everything."""
    if text is None or not text.strip():
        return []
    if len(text) > _MAX_LEN:
        raise SelectorError("label selector too long")
    reqs: list[LabelRequirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"empty requirement in selector {text!r}")
        m = _SET.match(part)
        if m:
            values = tuple(_check_value(v.strip(), text) for v in m["values"].split(","))
            reqs.append(LabelRequirement(_check_key(m["key"], text), m["op"], values))
            continue
        for op, canonical in (("!=", "!="), ("==", "="), ("=", "=")):
            if op in part:
                key, _, value = part.partition(op)
                reqs.append(
                    LabelRequirement(
                        _check_key(key.strip(), text),
                        canonical,
                        (_check_value(value.strip(), text),),
                    )
                )
                break
        else:
            if part.startswith("!"):
                reqs.append(LabelRequirement(_check_key(part[1:].strip(), text), "!"))
            else:
                reqs.append(LabelRequirement(_check_key(part, text), "exists"))
    return reqs


def matches_labels(reqs: list[LabelRequirement], labels: Mapping[str, str] | None) -> bool:
    """True when ``labels`` satisfy every requirement."""
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def _metadata(obj: Mapping[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "pods": {
        "metadata.name": lambda o: _metadata(o, "name"),
        "metadata.namespace": lambda o: _metadata(o, "namespace"),
        "spec.nodeName": lambda o: str((o.get("spec") or {}).get("nodeName") or ""),
        "status.phase": lambda o: str((o.get("status") or {}).get("phase") or ""),
    },
    "deployments": {
        "metadata.name": lambda o: _metadata(o, "name"),
        "metadata.namespace": lambda o: _metadata(o, "namespace"),
    },
    "nodes": {"metadata.name": lambda o: _metadata(o, "name")},
    "namespaces": {
        "metadata.name": lambda o: _metadata(o, "name"),
        "status.phase": lambda o: str((o.get("status") or {}).get("phase") or ""),
    },
}
"""Field selectors each resource supports, and how to read the field from an object."""


def parse_field_selector(text: str | None, resource: str) -> list[FieldRequirement]:
    """Parse a field selector for ``resource`` (a key of :data:`FIELDS`)."""
    if text is None or not text.strip():
        return []
    if len(text) > _MAX_LEN:
        raise SelectorError("field selector too long")
    allowed = FIELDS.get(resource, {"metadata.name": lambda o: _metadata(o, "name")})
    reqs = []
    for raw in text.split(","):
        part = raw.strip()
        for op, canonical in (("!=", "!="), ("==", "="), ("=", "=")):
            if op in part:
                field, _, value = part.partition(op)
                field = field.strip()
                if field not in allowed:
                    raise SelectorError(
                        f'field label not supported: "{field}" (supported for {resource}: '
                        + ", ".join(sorted(allowed))
                        + ")"
                    )
                reqs.append(FieldRequirement(field, canonical, value.strip()))
                break
        else:
            raise SelectorError(
                f"invalid field selector requirement {part!r}: expected field=value"
            )
    return reqs


def matches_fields(reqs: list[FieldRequirement], obj: Mapping[str, Any], resource: str) -> bool:
    """True when ``obj`` satisfies every field requirement."""
    getters = FIELDS.get(resource, {})
    for r in reqs:
        value = getters[r.field](obj) if r.field in getters else ""
        if (value == r.value) != (r.op == "="):
            return False
    return True
