"""The policy interface and the registry that turns ``--policy NAME:k=v,...`` into a policy.

A policy sees one :class:`~drpc.sim.types.Observation` per control interval and returns an
:class:`~drpc.sim.types.Action` (absolute targets; ``None`` for no change). The simulator
enforces the safety limits (min/max replicas, resource bounds) on whatever a policy returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from drpc.sim.cluster import ClusterSim
from drpc.sim.types import Action, Observation

__all__ = [
    "Policy",
    "PolicyError",
    "register_policy",
    "make_policy",
    "policy_names",
    "parse_params",
]


class PolicyError(ValueError):
    """A policy spec that names an unknown policy or a bad parameter."""


@runtime_checkable
class Policy(Protocol):
    """Anything that maps observations to actions."""

    name: str

    def reset(self, sim: ClusterSim) -> None:
        """Called once before a run with the simulator (its app, config and, for the
        clairvoyant oracle only, its future load)."""

    def act(self, obs: Observation) -> Action | None:
        """The action to apply at the start of the next interval."""


_REGISTRY: dict[str, tuple[Callable[..., Policy], type | None, str]] = {}


def register_policy(name: str, params: type | None = None, help: str = ""):
    """Decorator: register ``factory(params_instance) -> Policy`` under ``name``.

    ``params`` is a dataclass whose fields (with defaults) are the parameters accepted after
    the colon in ``NAME:field=value,...``.
    """

    def wrap(factory: Callable[..., Policy]):
        _REGISTRY[name] = (factory, params, help)
        return factory

    return wrap


def policy_names() -> dict[str, str]:
    """Registered policy names and their one-line help."""
    _load_builtin()
    return {k: v[2] for k, v in sorted(_REGISTRY.items())}


def parse_params(spec: str, params_cls: type | None, policy: str) -> Any:
    """Parse ``k=v,k=v`` into an instance of the ``params_cls`` dataclass (typed by its fields)."""
    if params_cls is None:
        if spec:
            raise PolicyError(f"policy {policy!r} takes no parameters, got {spec!r}")
        return None
    known = {f.name: f for f in fields(params_cls)}
    values: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise PolicyError(f"policy {policy!r}: expected KEY=VALUE, got {item!r}")
        if key not in known:
            raise PolicyError(
                f"policy {policy!r}: unknown parameter {key!r} (known: {', '.join(known)})"
            )
        values[key] = _convert(raw.strip(), known[key], policy)
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as err:
        raise PolicyError(f"policy {policy!r}: {err}") from None


def _convert(raw: str, field, policy: str) -> Any:
    default = field.default
    kind = type(default) if default is not None and not callable(default) else str
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise PolicyError(
            f"policy {policy!r}: parameter {field.name!r} expects {kind.__name__}, got {raw!r}"
        ) from None


def make_policy(spec: str) -> Policy:
    """Build a policy from ``NAME``, ``NAME:key=value,key=value`` or a checkpoint folder: a
    ``drpc train`` run or its ``checkpoint/`` (:mod:`drpc.teacher.policy`), or a ``drpc distill``
    student checkpoint (:mod:`drpc.imitation.policy`), optionally ``FOLDER:utilization_scale=X``
    (:class:`CheckpointParams`)."""
    _load_builtin()
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in _REGISTRY and _looks_like_path(spec):
        return _checkpoint_policy(spec)
    if name not in _REGISTRY:
        raise PolicyError(f"unknown policy {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    factory, params_cls, _ = _REGISTRY[name]
    params = parse_params(rest, params_cls, name)
    policy = factory(params) if params_cls is not None else factory()
    policy.name = spec if rest else name
    return policy


@dataclass
class CheckpointParams:
    """Parameters of a checkpoint policy spec (``FOLDER:key=value``)."""

    utilization_scale: float = 1.0
    """Every learned CPU-utilisation set-point times this (0.9: 10% more headroom)."""
    scale_down_window: int = 0
    """Target mode: the scale-down stabilisation window in intervals (0: the checkpoint's own;
    e.g. 40 replays an older teacher with today's 10-minute window)."""


def _checkpoint_policy(spec: str) -> Policy:
    """A teacher or student checkpoint folder, with optional ``:utilization_scale=X`` and
    ``:scale_down_window=N``."""
    from drpc.imitation.checkpoint import is_student_checkpoint

    path, rest = spec, ""
    if not Path(spec).exists() and ":" in spec:
        path, _, rest = spec.rpartition(":")
    params = parse_params(rest, CheckpointParams, path)
    if is_student_checkpoint(path):
        from drpc.imitation.policy import load_student_policy

        policy: Any = load_student_policy(path)
    else:
        from drpc.teacher.policy import load_policy

        policy = load_policy(path)
    mapping = policy.mapping
    try:
        if params.utilization_scale != 1.0:
            mapping = mapping.with_utilization_scale(params.utilization_scale)
        if params.scale_down_window:
            mapping = mapping.with_scale_down_window(params.scale_down_window)
    except ValueError as err:
        raise PolicyError(f"policy {spec!r}: {err}") from None
    if mapping is not policy.mapping:  # an operator knob was given
        policy.mapping, policy.name = mapping, spec
    return policy


def _looks_like_path(spec: str) -> bool:
    """A checkpoint folder rather than a registered name: has a path separator or exists."""
    return "/" in spec or os.sep in spec or Path(spec).exists()


def _load_builtin() -> None:
    # Importing registers the built-in policies; later modules register more.
    import drpc.baselines  # noqa: F401
