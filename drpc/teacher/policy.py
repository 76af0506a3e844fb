"""A trained teacher as a :class:`~drpc.policy.Policy`: runs in the same harness as the baselines.

    from drpc.teacher.policy import load_policy
    policy = load_policy("runs/teacher")            # a run folder or its checkpoint/
    drpc evaluate --policy runs/teacher --policy hpa

Each interval: the observation becomes feature rows through the same
:class:`~drpc.rllib_env.features.FeatureBuilder` the env uses (GRU forecast included), the actor
gives one (replicas, CPU, memory) action per service, and :func:`~drpc.rllib_env.actions.map_action`
turns them into bounded changes with the checkpoint's own action mapping. The shared network
runs on apps of any size.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from drpc.rllib_env.actions import MappingState, map_action
from drpc.rllib_env.features import FeatureBuilder
from drpc.sim.cluster import ClusterSim
from drpc.sim.types import Action, Observation
from drpc.teacher.checkpoint import load_actor, read_policy_meta

__all__ = ["TeacherPolicy", "load_policy"]


class TeacherPolicy:
    """Deterministic actions of an exported teacher (no exploration noise)."""

    def __init__(self, meta: dict[str, Any], actor: Any, name: str = "teacher"):
        self.meta = meta
        self.actor = actor
        self.mapping = meta["action_mapping_obj"]
        self.name = name
        self._features: FeatureBuilder | None = None
        self._fresh = True

    @classmethod
    def from_actor(
        cls, actor: Any, mapping: Any, forecast: bool = True, name: str = "teacher"
    ) -> TeacherPolicy:
        """A policy around a live actor network (e.g. mid-training), no checkpoint needed."""
        meta = {"action_mapping_obj": mapping, "forecast": forecast, "weights_sha256": ""}
        return cls(meta, actor, name=name)

    @property
    def checksum(self) -> str:
        """SHA-256 of the weights file."""
        return str(self.meta["weights_sha256"])

    def reset(self, sim: ClusterSim) -> None:
        self.sim_app = sim.app
        self._features = FeatureBuilder(sim.app, sim.config.interval_s, self.meta["forecast"])
        self._mapping_state = MappingState.for_mapping(self.mapping)
        self._fresh = True

    def actions(self, features: np.ndarray) -> np.ndarray:
        """Raw actions in [-1, 1] for one (S, F) feature matrix."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor(features, dtype=torch.float32).unsqueeze(0)
            return self.actor(x)[0].numpy()

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
            self.actions(x), obs, self.sim_app, self.mapping, self._mapping_state
        )
        return action


def load_policy(checkpoint: str | os.PathLike[str], name: str | None = None) -> TeacherPolicy:
    """The policy exported in ``checkpoint`` (a ``drpc train`` run folder or its checkpoint/).

    Raises :class:`~drpc.teacher.checkpoint.CheckpointError` for a checkpoint of another
    observation layout or action space, or a corrupt one.
    """
    meta = read_policy_meta(checkpoint)
    return TeacherPolicy(meta, load_actor(meta), name=name or str(checkpoint))
