"""The three PATCH formats of the Kubernetes API, as pure functions on decoded JSON.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``): objects merge recursively,
  ``null`` deletes a key, anything else replaces. One deliberate leniency: lists of named
  containers (``containers``, ``initContainers``) merge by ``name`` as in a strategic merge
  patch, so ``kubectl patch --type=merge -p '{"spec":{"containers":[{"name":"x",
  "resources":{...}}]}}'`` changes only the resources instead of dropping the image.
* Strategic merge patch (``application/strategic-merge-patch+json``, the default of kubectl
  and of the Python client for dict bodies): like the merge patch, plus lists with a known
  merge key merge element-wise (``containers`` by ``name``, ``conditions`` by ``type``, ...),
  and the ``$patch: replace|delete`` directive; ``$setElementOrder/...`` and ``$retainKeys``
  are accepted and ignored.
* JSON patch (RFC 6902, ``application/json-patch+json``): ``add``, ``remove``, ``replace``,
  ``move``, ``copy`` and ``test`` with JSON pointers (RFC 6901).

Every function returns a new document and never mutates its inputs; errors raise
:class:`PatchError` with a message that names the offending path.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "PatchError",
    "MERGE_KEYS",
    "json_merge_patch",
    "strategic_merge_patch",
    "json_patch",
]

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "resizePolicy": "resourceName",
    "conditions": "type",
    "ownerReferences": "uid",
}
"""Lists that a strategic merge patch merges element-wise, and the key of their elements."""

_LENIENT_MERGE_KEYS = {"containers": "name", "initContainers": "name"}
_MAX_OPS = 10_000


class PatchError(ValueError):
    """A patch that cannot be applied; the message names the path."""


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch (with container lists merged by name, see module doc)."""
    return _merge(target, patch, _LENIENT_MERGE_KEYS, strategic=False, path="")


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (the subset described in the module docstring)."""
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, got {_kind(patch)}")
    return _merge(target, patch, MERGE_KEYS, strategic=True, path="")


def _merge(target: Any, patch: Any, keys: dict[str, str], strategic: bool, path: str) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if strategic:
        directive = patch.get("$patch")
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        if directive is not None:
            raise PatchError(f"{path or '/'}: unknown $patch directive {directive!r}")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and (
            key in ("$patch", "$retainKeys")
            or key.startswith("$setElementOrder/")
            or key.startswith("$deleteFromPrimitiveList/")
        ):
            continue
        sub = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in keys and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, keys[key], keys, strategic, sub)
        else:
            merged = _merge(result.get(key), value, keys, strategic, sub)
            if merged is None and strategic and isinstance(value, dict):
                result.pop(key, None)  # {"$patch": "delete"}
            else:
                result[key] = merged
    return result


def _merge_list(
    current: list, patch: list, key: str, keys: dict[str, str], strategic: bool, path: str
) -> list:
    """Merge ``patch`` into ``current`` element-wise by ``key`` (elements must be objects)."""
    if strategic and any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [
            {k: copy.deepcopy(v) for k, v in e.items() if k != "$patch"}
            for e in patch
            if not (isinstance(e, dict) and e.get("$patch") == "replace" and len(e) == 1)
        ]
    result = copy.deepcopy(current)
    for i, element in enumerate(patch):
        if not isinstance(element, dict) or key not in element:
            raise PatchError(f"{path}[{i}]: list elements must be objects with a {key!r} field")
        ident = element[key]
        pos = next(
            (j for j, e in enumerate(result) if isinstance(e, dict) and e.get(key) == ident),
            None,
        )
        if strategic and element.get("$patch") == "delete":
            if pos is not None:
                result.pop(pos)
            continue
        if pos is None:
            result.append(_merge({}, element, keys, strategic, f"{path}[{i}]"))
        else:
            result[pos] = _merge(result[pos], element, keys, strategic, f"{path}[{i}]")
    return result


# ------------------------------------------------------------------------------ JSON patch


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) to a copy of ``target``."""
    if not isinstance(operations, list):
        raise PatchError(
            f"a JSON patch must be a JSON array of operations, got {_kind(operations)}"
        )
    if len(operations) > _MAX_OPS:
        raise PatchError(f"a JSON patch may hold at most {_MAX_OPS} operations")
    doc = copy.deepcopy(target)
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise PatchError(f"operation {i}: must be an object, got {_kind(op)}")
        name = op.get("op")
        path = op.get("path")
        if not isinstance(name, str) or not isinstance(path, str):
            raise PatchError(f"operation {i}: 'op' and 'path' must be strings")
        where = f"operation {i} ({name} {path})"
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where}: missing 'value'")
        if name == "add":
            doc = _add(doc, _pointer(path, where), copy.deepcopy(op["value"]), where)
        elif name == "remove":
            doc, _ = _remove(doc, _pointer(path, where), where)
        elif name == "replace":
            doc, _ = _remove(doc, _pointer(path, where), where)
            doc = _add(doc, _pointer(path, where), copy.deepcopy(op["value"]), where)
        elif name in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{where}: 'from' must be a string")
            value = _get(doc, _pointer(source, where), where)
            if name == "move":
                if path.startswith(source + "/"):
                    raise PatchError(f"{where}: cannot move a value into one of its children")
                doc, value = _remove(doc, _pointer(source, where), where)
            doc = _add(doc, _pointer(path, where), copy.deepcopy(value), where)
        elif name == "test":
            if _get(doc, _pointer(path, where), where) != op["value"]:
                raise PatchError(f"{where}: test failed")
        else:
            raise PatchError(f"operation {i}: unknown op {name!r}")
    return doc


def _pointer(path: str, where: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"{where}: a JSON pointer must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list, token: str, where: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{where}: {token!r} is not a list index")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"{where}: index {i} out of range")
    return i


def _parent(doc: Any, tokens: list[str], where: str) -> Any:
    return _get(doc, tokens[:-1], where)


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: path not found")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, where, allow_end=False)]
        else:
            raise PatchError(f"{where}: path not found")
    return node


def _add(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, where, allow_end=True), value)
    else:
        raise PatchError(f"{where}: parent is not an object or a list")
    return doc


def _remove(doc: Any, tokens: list[str], where: str) -> tuple[Any, Any]:
    if not tokens:
        return None, doc
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, where, allow_end=False))
    raise PatchError(f"{where}: path not found")


def _kind(value: Any) -> str:
    from drpc.twin.quantity import json_type

    return json_type(value)
