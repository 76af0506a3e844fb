"""The exported policy of a training run: what evaluation and serving load, without Ray.

``drpc train`` saves the whole algorithm with RLlib's ``save_to_path`` into ``checkpoint/``
(for ``--resume`` and ``Algorithm.from_checkpoint``) and exports the policy next to it:

* ``drpc_policy.json``: what the network expects and does: the observation features in order,
  the action components, the action mapping, whether the GRU forecast is on, the network's
  shape, what it was trained on, and the SHA-256 of the weights file.
* ``policy.pt``: the actor's ``state_dict`` only (tensors; loaded with
  ``torch.load(weights_only=True)``, so a checkpoint cannot run code).

:func:`read_policy_meta` refuses a checkpoint built for another observation layout or action
space, and :func:`load_actor` one whose weights file is truncated or corrupt, each with a
message that says what differs or what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drpc.rllib_env.actions import ActionMapping
from drpc.rllib_env.features import FEATURES

__all__ = [
    "ACTION_COMPONENTS",
    "CheckpointError",
    "FORMAT_VERSION",
    "META_FILE",
    "WEIGHTS_FILE",
    "export_policy",
    "find_checkpoint",
    "load_actor",
    "load_run_config",
    "read_policy_meta",
]

META_FILE = "drpc_policy.json"
WEIGHTS_FILE = "policy.pt"
FORMAT_VERSION = 1
ACTION_COMPONENTS = ("replicas", "cpu_limit", "memory_limit")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and what to do."""


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder for ``path``: the folder itself or a training run's ``checkpoint/``."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint folder")
    if not p.is_dir():
        raise CheckpointError(f"{p}: a checkpoint is a folder (made by `drpc train`), not a file")
    if (p / META_FILE).is_file():
        return p
    if (p / "checkpoint" / META_FILE).is_file():
        return p / "checkpoint"
    raise CheckpointError(
        f"{p}: not a DRPC policy checkpoint: no {META_FILE} in it or in {p / 'checkpoint'} "
        "(checkpoints come from `drpc train`)"
    )


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _diff(name: str, ours: tuple[str, ...], theirs: list[str]) -> str | None:
    if tuple(theirs) == ours:
        return None
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            return f"{name} differ at position {i}: checkpoint has {b!r}, this DRPC has {a!r}"
    return f"{name}: checkpoint has {len(theirs)}, this DRPC has {len(ours)}"


def action_mapping_from(fields: Mapping[str, Any]) -> ActionMapping:
    """The :class:`ActionMapping` recorded in a checkpoint's JSON (lists back to tuples)."""
    return ActionMapping(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def read_policy_meta(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """``drpc_policy.json`` of ``checkpoint``, checked against this DRPC's features and actions."""
    folder = find_checkpoint(checkpoint)
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable policy metadata ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r}, this DRPC reads {FORMAT_VERSION}; "
            "re-export with this version's `drpc train`"
        )
    for key in ("features", "action_components", "action_mapping", "network", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing field {key!r}")
    problems = [
        d
        for d in (
            _diff("observation features", FEATURES, meta["features"]),
            _diff("action components", ACTION_COMPONENTS, meta["action_components"]),
        )
        if d
    ]
    if problems:
        raise CheckpointError(
            f"{path}: this checkpoint was trained for another observation layout or action "
            f"space: {'; '.join(problems)}. Retrain with `drpc train`."
        )
    try:
        meta["action_mapping_obj"] = action_mapping_from(meta["action_mapping"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: field 'action_mapping': {err}") from None
    meta["folder"] = str(folder)
    return meta


def load_actor(meta: Mapping[str, Any]):
    """The actor network of a checked ``meta`` (from :func:`read_policy_meta`), in eval mode."""
    import torch

    from drpc.teacher.networks import PerServiceActor

    folder = Path(meta["folder"])
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    if file_sha256(weights) != meta["weights_sha256"]:
        raise CheckpointError(
            f"{weights}: checksum does not match {META_FILE} (truncated or modified); "
            "copy the checkpoint again or retrain"
        )
    net_cfg = meta["network"]
    if net_cfg.get("class") != "PerServiceActor":
        raise CheckpointError(
            f"{folder / META_FILE}: network class {net_cfg.get('class')!r} is not supported "
            "(this DRPC loads 'PerServiceActor')"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling error means a bad file
        raise CheckpointError(f"{weights}: corrupt weights file ({type(err).__name__})") from None
    actor = PerServiceActor(
        int(net_cfg["n_features"]),
        int(net_cfg["n_actions"]),
        tuple(int(h) for h in net_cfg["hidden"]),
        layer_norm=bool(net_cfg.get("layer_norm", True)),
    )
    try:
        actor.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        # torch's first line is a bare header ("Error(s) in loading state_dict for ..."):
        # report the first line that says what differs.
        lines = [s.strip() for s in str(err).splitlines() if s.strip()]
        first = next(
            (s for s in lines if not s.startswith("Error(s) in loading")),
            lines[0] if lines else type(err).__name__,
        )
        raise CheckpointError(f"{weights}: weights do not fit the network: {first}") from None
    actor.eval()
    return actor


def export_policy(
    algo: Any,
    checkpoint: Path,
    train_config: Any,
    env_config: Mapping[str, Any],
    env_steps: int,
    wall_s: float,
    actor_state: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``policy.pt`` and ``drpc_policy.json`` for ``algo``'s module into ``checkpoint``.

    ``actor_state``: export these actor weights (e.g. the best validated snapshot) instead of
    the module's current ones; ``selection`` records how they were picked."""
    import torch

    from drpc.__init__ import __version__
    from drpc.rllib_env.env import make_env_config
    from drpc.scenario import load_scenario
    from drpc.teacher.module import DEFAULT_HIDDEN
    from drpc.teacher.networks import PerServiceActor

    module = algo.get_module()
    actor = getattr(module, "actor", None)
    if not isinstance(actor, PerServiceActor):
        raise CheckpointError(
            f"export: the module's actor is {type(actor).__name__}, not a PerServiceActor; "
            "only the TD3 teacher exports a serving policy"
        )
    env_cfg = make_env_config(env_config)
    weights = checkpoint / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    state = actor_state if actor_state is not None else actor.state_dict()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, weights)
    apps = sorted({load_scenario(s).app.app.name for s in env_cfg.scenarios})
    hidden = [int(h) for h in module.model_config.get("teacher_hidden", DEFAULT_HIDDEN)]
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "teacher",
        "drpc_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "algorithm": getattr(train_config, "algorithm", "td3"),
        "features": list(FEATURES),
        "action_components": list(ACTION_COMPONENTS),
        "action_mapping": dataclasses.asdict(env_cfg.actions),
        "forecast": env_cfg.forecast,
        "reward": dataclasses.asdict(env_cfg.reward),
        "network": {
            "class": "PerServiceActor",
            "n_features": actor.n_features,
            "n_actions": actor.n_actions,
            "hidden": hidden,
            "layer_norm": any(isinstance(m, torch.nn.LayerNorm) for m in actor.modules()),
        },
        "trained_on": {"scenarios": list(env_cfg.scenarios), "apps": apps},
        "env_steps": int(env_steps),
        "train_wall_s": round(float(wall_s), 1),
        "weights_sha256": file_sha256(weights),
        "selection": dict(selection) if selection else {"snapshot": "last"},
    }
    if dataclasses.is_dataclass(train_config):
        meta["train_config"] = dataclasses.asdict(train_config)
    tmp = checkpoint / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, checkpoint / META_FILE)
    return checkpoint


def bundled_teacher() -> dict[str, Any] | None:
    """The checked metadata of the teacher shipped in ``drpc/data/teacher`` (None if absent).

    It was made by ``drpc train`` (the command is in the README and its ``train_config``)."""
    import importlib.resources

    folder = Path(str(importlib.resources.files("drpc.data").joinpath("teacher")))
    if not (folder / META_FILE).is_file():
        return None
    return read_policy_meta(folder)


def load_run_config(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked metadata of a checkpoint to resume from (it must hold the algorithm too)."""
    meta = read_policy_meta(checkpoint)
    folder = Path(meta["folder"])
    if not (folder / "algorithm_state.pkl").exists() and not any(folder.glob("algorithm_state*")):
        raise CheckpointError(
            f"{folder}: no RLlib algorithm state to resume from (was it saved by `drpc train`?)"
        )
    return meta
