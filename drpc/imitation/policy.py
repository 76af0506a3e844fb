"""Distilled students as a :class:`~drpc.policy.Policy`: run in the same harness as the teacher.

    from drpc.imitation.policy import load_student_policy
    from drpc.evaluate import evaluate
    from drpc.scenario import load_scenario
    evaluate(load_scenario("default"), [load_student_policy("runs/students"), "hpa:target=80"])

Each interval is processed as :class:`~drpc.teacher.policy.TeacherPolicy` does it, except for
the network: the observation becomes feature rows through the same
:class:`~drpc.rllib_env.features.FeatureBuilder` (GRU forecast included), each service's row
becomes its local observation (:class:`~drpc.imitation.local.LocalObservation`), every node's
students decide for their services in one batched call (:class:`~drpc.imitation.students.
NodeStudents`), and :func:`~drpc.rllib_env.actions.map_action` with the checkpoint's action
mapping (the teacher's) and a :class:`~drpc.rllib_env.actions.MappingState` turns the
raw actions into bounded changes. ``decision_s`` keeps the last interval's per-node decision
times (seconds) of the networks alone.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from drpc.imitation.checkpoint import StudentCheckpointError, load_students
from drpc.imitation.local import LocalObservation
from drpc.imitation.students import StudentSet
from drpc.rllib_env.actions import (
    ActionMapping,
    MappingState,
    map_action,
)
from drpc.rllib_env.features import FeatureBuilder
from drpc.sim.cluster import ClusterSim
from drpc.sim.types import Action, Observation

__all__ = ["StudentPolicy", "load_student_policy"]


class StudentPolicy:
    """Deterministic actions of per-node students (no exploration noise)."""

    def __init__(
        self,
        students: StudentSet,
        mapping: ActionMapping | None = None,
        forecast: bool | None = None,
        name: str = "students",
    ):
        meta: dict[str, Any] = students.meta
        self.students = students
        self.mapping = mapping or meta["action_mapping_obj"]
        self.forecast = bool(meta.get("forecast", True) if forecast is None else forecast)
        self.name = name
        self.decision_s: dict[str, float] = {}
        self._features: FeatureBuilder | None = None
        self._fresh = True

    def reset(self, sim: ClusterSim) -> None:
        names = list(sim.app.names)
        if names != list(self.students.services):
            where = self.students.meta.get("folder", "these students")
            raise StudentCheckpointError(
                f"{where}: students for {len(self.students.services)} services "
                f"({self.students.services[:3]}...), the simulated app has {len(names)} "
                f"({names[:3]}...); distil students for this app"
            )
        self.sim_app = sim.app
        self._features = FeatureBuilder(sim.app, sim.config.interval_s, self.forecast)
        self._local = LocalObservation(sim.app, self._features.ctx.max_capacity_rps)
        self._mapping_state = MappingState.for_mapping(self.mapping)
        self._nodes = self.students.nodes()
        self._index = self.students.node_index
        self._fresh = True

    def actions(self, features: np.ndarray, obs: Observation) -> np.ndarray:
        """Raw actions (S, 3) in [-1, 1] for one (S, F) feature matrix, node by node."""
        local = self._local(features, obs)
        out = np.empty((local.shape[0], 3), dtype=np.float32)
        for node, group in self._nodes.items():
            idx = self._index[node]
            started = time.perf_counter()
            out[idx] = group(local[idx])
            self.decision_s[node] = time.perf_counter() - started
        return out

    def act(self, obs: Observation) -> Action | None:
        if self._features is None:
            raise RuntimeError("call reset(sim) before act()")
        if self._fresh:  # the history so far: flat at the first observed entry rate
            self._features.reset(float(obs.endpoint_rps.sum()))
            self._fresh = False
            x = self._features.features(obs)
        else:
            x = self._features(obs)
        action, _ = map_action(
            self.actions(x, obs),
            obs,
            self.sim_app,
            self.mapping,
            self._mapping_state,
        )
        return action


def load_student_policy(
    checkpoint: str | os.PathLike[str], name: str | None = None, app: Any = None
) -> StudentPolicy:
    """The students of ``checkpoint`` as a policy (checked against ``app`` if given; the app
    of the simulation is always checked at ``reset``)."""
    students = load_students(checkpoint, app=app)
    return StudentPolicy(students, name=name or str(checkpoint))
