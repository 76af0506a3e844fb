"""Warm start for a set-point (``target`` mode) teacher: the best fixed set-point, then TD3.

In ``target`` mode any constant action is already a working autoscaler: a fixed CPU
utilisation target per pod (the HPA's rule) plus fixed CPU and memory limits. Which constant is
good depends on the app and its traffic (on/off bursts need a low target; steady traffic a high
one), and TD3 started from a random actor can spend its whole budget finding that out. So::

    best = search_setpoint(["train-sock-shop-azure-conv", ...], mapping)   # training windows only
    set_constant_output(actor, best.action)      # the actor now outputs best.action everywhere
    # ... TD3 then learns state-dependent departures from it

:func:`search_setpoint` runs every point of a grid over (utilisation target, CPU limit) on the
given scenarios and scores it as the teacher's validation does (violating-interval fraction +
failed fraction + ``cost_weight`` x core-hours / the HPA's core-hours, averaged over the
scenarios; lower is better). :func:`set_constant_output` makes the actor's last layer output
that action (its weights shrunk, its bias set), so the network still has gradients to learn from.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from drpc.rllib_env.actions import ActionMapping

__all__ = [
    "SetpointSearch",
    "constant_policy",
    "search_setpoint",
    "set_constant_output",
    "UTILIZATION_GRID",
    "CPU_LIMIT_GRID",
]

UTILIZATION_GRID = tuple(np.round(np.linspace(-1.0, 1.0, 9), 3))
"""Raw actions tried for the utilisation set-point (-1: the lowest target, +1: the highest)."""
CPU_LIMIT_GRID = tuple(np.round(np.linspace(-0.5, 1.0, 7), 3))
"""Raw actions tried for the CPU limit set-point (0: the geometric middle of its range)."""


class _Constant(nn.Module):
    """An actor that outputs the same raw action for every service."""

    def __init__(self, action: Sequence[float]):
        super().__init__()
        self.register_buffer("action", torch.tensor(list(action), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.action.expand(obs.shape[0], obs.shape[1], self.action.shape[0])


def constant_policy(action: Sequence[float], mapping: ActionMapping, forecast: bool = True):
    """A :class:`~drpc.teacher.policy.TeacherPolicy` that always takes raw ``action``."""
    from drpc.teacher.policy import TeacherPolicy

    name = "setpoint(" + ",".join(f"{a:+.2f}" for a in action) + ")"
    return TeacherPolicy.from_actor(_Constant(action), mapping, forecast, name=name)


@dataclass
class SetpointSearch:
    """The result of :func:`search_setpoint`."""

    action: tuple[float, float, float]
    """Best raw action (utilisation, CPU limit, memory limit), each in [-1, 1]."""
    score: float
    """Its mean score over the scenarios (lower is better)."""
    table: list[dict[str, Any]] = field(default_factory=list)
    """One row per grid point: action, score, and per scenario violations and core-hours."""

    def as_dict(self) -> dict[str, Any]:
        return {"action": list(self.action), "score": self.score, "grid": self.table}


def search_setpoint(
    scenarios: Sequence[str],
    mapping: ActionMapping,
    cost_weight: float = 0.1,
    utilization_grid: Sequence[float] = UTILIZATION_GRID,
    cpu_grid: Sequence[float] = CPU_LIMIT_GRID,
    memory_action: float = 0.0,
    forecast: bool = True,
) -> SetpointSearch:
    """The fixed set-point with the lowest mean score over ``scenarios`` (see module docstring).

    Callers pass training-split scenarios only (``drpc train`` checks that)."""
    from drpc.evaluate import run_policy
    from drpc.scenario import load_scenario

    if mapping.mode != "target":
        raise ValueError("search_setpoint needs an action mapping in 'target' mode")
    loaded = [load_scenario(name) for name in scenarios]
    hpa_core_h = [run_policy(sc, "hpa", progress=False).summary["cpu_core_hours"] for sc in loaded]
    table: list[dict[str, Any]] = []
    for u, c in itertools.product(utilization_grid, cpu_grid):
        action = (float(u), float(c), float(memory_action))
        row: dict[str, Any] = {"action": list(action), "scenarios": {}}
        scores = []
        for sc, hpa_h in zip(loaded, hpa_core_h, strict=True):
            s = run_policy(sc, constant_policy(action, mapping, forecast), progress=False).summary
            scores.append(
                s["slo_violation_fraction"]
                + s["failed_request_fraction"]
                + cost_weight * s["cpu_core_hours"] / max(hpa_h, 1e-9)
            )
            row["scenarios"][sc.name] = {
                "slo_violation_fraction": s["slo_violation_fraction"],
                "cpu_core_hours": s["cpu_core_hours"],
            }
        row["score"] = float(np.mean(scores))
        table.append(row)
    best = min(table, key=lambda r: r["score"])
    return SetpointSearch(tuple(best["action"]), best["score"], table)  # type: ignore[arg-type]


def set_constant_output(actor: nn.Module, action: Sequence[float], shrink: float = 0.01) -> None:
    """Make ``actor`` (a :class:`~drpc.teacher.networks.PerServiceActor`) output about
    ``action`` for every input: the last linear layer's weights are multiplied by ``shrink``
    and its bias set to atanh(action), so the output is nearly constant yet still trainable."""
    linear = [m for m in actor.head if isinstance(m, nn.Linear)][-1]
    target = torch.as_tensor(list(action), dtype=linear.bias.dtype)
    if target.shape != linear.bias.shape:
        raise ValueError(f"action has {target.numel()} components, the actor {linear.out_features}")
    with torch.no_grad():
        linear.weight.mul_(shrink)
        linear.bias.copy_(torch.atanh(target.clamp(-0.995, 0.995)))
