"""The student checkpoint: what a node needs to run its students, checked before it runs.

A folder with two files:

* ``drpc_students.json``: ``format_version``, ``kind: students``, the app's name and its
  service names in order, the node map (service -> node), the local feature names in order,
  the action components and the action mapping (copied from the teacher's metadata, so the
  students' raw actions mean exactly what the teacher's meant), whether the GRU forecast is
  on, the teacher's weights checksum, the network sizes, how the students were distilled, and
  the SHA-256 of ``students.pt``.
* ``students.pt``: the stacked weights of all students (a :class:`StudentBank` ``state_dict``;
  tensors only, loaded with ``torch.load(weights_only=True)``).

:func:`load_students` refuses, with a :class:`StudentCheckpointError` naming the file and what
differs, a checkpoint for another app layout (service names or count), another node map,
another local feature layout or other action components, and a weights file that is
truncated, corrupt or of other sizes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drpc.imitation.local import LOCAL_FEATURES, N_LOCAL
from drpc.imitation.nodes import NodeMap, NodeMapError
from drpc.imitation.students import MAX_STUDENT_PARAMS, StudentBank, StudentSet
from drpc.teacher.checkpoint import (
    ACTION_COMPONENTS,
    CheckpointError,
    action_mapping_from,
    file_sha256,
)
from drpc.teacher.checkpoint import META_FILE as TEACHER_META_FILE

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "WEIGHTS_FILE",
    "StudentCheckpointError",
    "is_student_checkpoint",
    "load_students",
    "read_student_meta",
    "save_students",
]

META_FILE = "drpc_students.json"
WEIGHTS_FILE = "students.pt"
FORMAT_VERSION = 1
_REQUIRED = (
    "app",
    "services",
    "node_map",
    "local_features",
    "action_components",
    "action_mapping",
    "forecast",
    "network",
    "weights_sha256",
)


class StudentCheckpointError(CheckpointError):
    """A student checkpoint that cannot be used here; the message names the file and what
    differs."""


def _diff(name: str, ours: Sequence[str], theirs: Sequence[str]) -> str | None:
    ours, theirs = tuple(ours), tuple(theirs)
    if ours == theirs:
        return None
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            return f"{name} differ at position {i}: checkpoint has {b!r}, expected {a!r}"
    return f"{name}: checkpoint has {len(theirs)}, expected {len(ours)}"


def save_students(
    path: str | os.PathLike[str],
    students: StudentSet,
    teacher_meta: Mapping[str, Any],
    app_name: str,
    distillation: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``students`` as a checkpoint folder ``path`` (created; files replaced atomically).

    ``teacher_meta``: the teacher's checked metadata (its action mapping, forecast setting and
    checksum are copied); ``distillation``: how they were made (method, samples, config...).
    """
    import torch

    from drpc import __version__

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    tmp = weights.with_name(WEIGHTS_FILE + ".tmp")
    torch.save(
        {k: v.detach().cpu().contiguous() for k, v in students.bank.state_dict().items()}, tmp
    )
    os.replace(tmp, weights)
    mapping = teacher_meta.get("action_mapping")
    if mapping is None:
        mapping = dataclasses.asdict(teacher_meta["action_mapping_obj"])
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "students",
        "drpc_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "app": app_name,
        "services": list(students.services),
        "node_map": students.node_map.to_dict(),
        "local_features": list(LOCAL_FEATURES),
        "action_components": list(ACTION_COMPONENTS),
        "action_mapping": dict(mapping),
        "forecast": bool(teacher_meta.get("forecast", True)),
        "teacher": {
            "weights_sha256": teacher_meta.get("weights_sha256", ""),
            "folder": teacher_meta.get("folder"),
            "trained_on": teacher_meta.get("trained_on"),
        },
        "network": {
            "class": "StudentBank",
            "n_students": students.bank.n_students,
            "params_per_student": students.bank.params_per_student,
            **students.bank.config(),
        },
        "distillation": _jsonable(dict(distillation or {})),
        "weights_sha256": file_sha256(weights),
    }
    tmp_meta = folder / (META_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_meta, folder / META_FILE)
    return folder


def is_student_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a folder with a student checkpoint's metadata file (not checked)."""
    p = Path(path)
    return p.is_dir() and (p / META_FILE).is_file()


def _service_names(app: Any) -> tuple[str | None, list[str]]:
    """(app name or None, service names) of a CompiledApp, Scenario or list of names."""
    if hasattr(app, "app") and hasattr(app.app, "names"):  # a Scenario
        app = app.app
    if hasattr(app, "names") and hasattr(app, "n_services"):  # a CompiledApp
        return getattr(getattr(app, "app", None), "name", None), list(app.names)
    if hasattr(app, "service_names"):  # an App model
        return getattr(app, "name", None), list(app.service_names)
    if isinstance(app, str):
        raise TypeError("app: give a CompiledApp, a Scenario or a list of service names")
    return None, [str(s) for s in app]


def read_student_meta(
    path: str | os.PathLike[str],
    app: Any = None,
    node_map: NodeMap | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``drpc_students.json`` of ``path``, checked against this DRPC's local features and
    actions and, if given, ``app`` (its service names in order) and ``node_map``."""
    folder = Path(path)
    if not folder.exists():
        raise StudentCheckpointError(f"{folder}: no such student checkpoint folder")
    if not folder.is_dir():
        raise StudentCheckpointError(f"{folder}: a student checkpoint is a folder, not a file")
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        hint = (
            f"; it holds {TEACHER_META_FILE}: a teacher checkpoint (load it with "
            "drpc.teacher.policy.load_policy)"
            if (folder / TEACHER_META_FILE).is_file()
            else " (student checkpoints come from drpc.imitation.distill)"
        )
        raise StudentCheckpointError(f"{folder}: not a student checkpoint: no {META_FILE}{hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StudentCheckpointError(f"{meta_path}: unreadable student metadata ({err})") from None
    if not isinstance(meta, dict):
        raise StudentCheckpointError(f"{meta_path}: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StudentCheckpointError(
            f"{meta_path}: format_version {version!r}, this DRPC reads {FORMAT_VERSION}; "
            "distil the students again with this version"
        )
    if meta.get("kind") != "students":
        raise StudentCheckpointError(f"{meta_path}: kind {meta.get('kind')!r}, expected 'students'")
    for key in _REQUIRED:
        if key not in meta:
            raise StudentCheckpointError(f"{meta_path}: missing field {key!r}")
    problems = [
        d
        for d in (
            _diff("local features", LOCAL_FEATURES, meta["local_features"]),
            _diff("action components", ACTION_COMPONENTS, meta["action_components"]),
        )
        if d
    ]
    if problems:
        raise StudentCheckpointError(
            f"{meta_path}: these students were distilled for another observation layout or "
            f"action space: {'; '.join(problems)}. Distil them again with this DRPC."
        )
    services = meta["services"]
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise StudentCheckpointError(f"{meta_path}: field 'services' must be a list of names")
    try:
        stored_map = NodeMap.from_dict(meta["node_map"])
        stored_map.check(services, "field 'node_map'")
    except NodeMapError as err:
        raise StudentCheckpointError(f"{meta_path}: {err}") from None
    if app is not None:
        app_name, names = _service_names(app)
        label = f"app {app_name!r}" if app_name else "the given app"
        if len(names) != len(services):
            raise StudentCheckpointError(
                f"{meta_path}: students for app {meta['app']!r} with {len(services)} services; "
                f"{label} has {len(names)} services. Distil students for this app."
            )
        d = _diff("service names", names, services)
        if d:
            raise StudentCheckpointError(
                f"{meta_path}: students for app {meta['app']!r}, another service layout than "
                f"{label}: {d}. Distil students for this app."
            )
    if node_map is not None:
        want = node_map if isinstance(node_map, NodeMap) else NodeMap.from_dict(node_map)
        if want != stored_map:
            moved = [
                f"{s}: checkpoint {stored_map.assignment.get(s)!r}, expected "
                f"{want.assignment.get(s)!r}"
                for s in dict.fromkeys([*services, *want.services])
                if stored_map.assignment.get(s) != want.assignment.get(s)
            ]
            raise StudentCheckpointError(
                f"{meta_path}: another node map: {len(moved)} service(s) on other nodes "
                f"({'; '.join(moved[:3])}). Re-group the students or distil with this map."
            )
    try:
        meta["action_mapping_obj"] = action_mapping_from(meta["action_mapping"])
    except (TypeError, ValueError, AttributeError) as err:
        raise StudentCheckpointError(f"{meta_path}: field 'action_mapping': {err}") from None
    net = meta["network"]
    if not isinstance(net, dict) or net.get("class") != "StudentBank":
        raise StudentCheckpointError(
            f"{meta_path}: network class {net.get('class') if isinstance(net, dict) else net!r} "
            "is not supported (this DRPC loads 'StudentBank')"
        )
    if net.get("n_inputs") != N_LOCAL or net.get("n_actions") != len(ACTION_COMPONENTS):
        raise StudentCheckpointError(
            f"{meta_path}: network sizes n_inputs={net.get('n_inputs')}, "
            f"n_actions={net.get('n_actions')}; this DRPC's students take {N_LOCAL} inputs and "
            f"give {len(ACTION_COMPONENTS)} actions"
        )
    meta["node_map_obj"] = stored_map
    meta["folder"] = str(folder)
    return meta


def load_students(
    path: str | os.PathLike[str],
    app: Any = None,
    node_map: NodeMap | Mapping[str, str] | None = None,
) -> StudentSet:
    """The students of checkpoint ``path`` (checked as in :func:`read_student_meta`), in eval
    mode, with the checked metadata as ``.meta``."""
    import torch

    meta = read_student_meta(path, app, node_map)
    folder = Path(meta["folder"])
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise StudentCheckpointError(f"{weights}: missing weights file")
    if file_sha256(weights) != meta["weights_sha256"]:
        raise StudentCheckpointError(
            f"{weights}: checksum does not match {META_FILE} (truncated or modified); "
            "copy the checkpoint again or distil again"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling error means a bad file
        raise StudentCheckpointError(
            f"{weights}: corrupt weights file ({type(err).__name__})"
        ) from None
    net = meta["network"]
    try:
        bank = StudentBank(
            len(meta["services"]),
            int(net["n_inputs"]),
            tuple(int(h) for h in net["hidden"]),
            int(net["n_actions"]),
            layer_norm=bool(net.get("layer_norm", True)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise StudentCheckpointError(
            f"{folder / META_FILE}: field 'network': {err} (at most {MAX_STUDENT_PARAMS} "
            "parameters per student)"
        ) from None
    if not isinstance(state, dict):
        raise StudentCheckpointError(f"{weights}: expected a state_dict of tensors")
    try:
        bank.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        lines = [s.strip() for s in str(err).splitlines() if s.strip()]
        first = next(
            (s for s in lines if not s.startswith("Error(s) in loading")),
            lines[0] if lines else type(err).__name__,
        )
        raise StudentCheckpointError(
            f"{weights}: weights do not fit the students: {first}"
        ) from None
    bank.eval()
    students = StudentSet(meta["services"], meta["node_map_obj"], bank)
    students.meta = meta
    return students


def _jsonable(obj: Any) -> Any:
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj
