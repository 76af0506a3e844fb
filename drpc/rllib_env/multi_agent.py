"""The multi-agent view: one agent per deployment over the same simulation (RLlib MultiAgentEnv).

Agent ``<service name>`` sees only local information: its own feature row without the two
cluster-wide columns, plus its callers' request rate (in units of its own capacity at max
replicas); its forecast is in its row. It acts on its own replicas, CPU and memory (3 numbers in
[-1, 1], mapped as in :mod:`drpc.rllib_env.actions`). All agents share the cluster's reward,
since they serve one SLO together. This is the view the per-node students of DRPC use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from drpc.rllib_env.actions import N_ACTION_COMPONENTS
from drpc.rllib_env.env import ClusterEnv, EnvConfig
from drpc.rllib_env.features import FEATURES

__all__ = ["ClusterMultiAgentEnv", "LOCAL_FEATURES", "caller_matrix"]

_GLOBAL = [i for i, f in enumerate(FEATURES) if f.startswith("global_")]
_LOCAL = [i for i in range(len(FEATURES)) if i not in _GLOBAL]
LOCAL_FEATURES = tuple(FEATURES[i] for i in _LOCAL) + ("callers_load_of_max_capacity",)


def caller_matrix(app) -> np.ndarray:
    """(S, S) 0/1 matrix: ``m[callee, caller] = 1`` if ``caller`` calls ``callee`` anywhere."""
    m = np.zeros((app.n_services, app.n_services))
    caller, callee = app.call_edges()
    m[callee, caller] = 1.0
    return m


class ClusterMultiAgentEnv(MultiAgentEnv):
    """One agent per deployment; wraps :class:`~drpc.rllib_env.env.ClusterEnv`."""

    def __init__(self, config: Mapping[str, Any] | EnvConfig | None = None, **kwargs):
        super().__init__()
        self.env = ClusterEnv(config, **kwargs)
        app = self.env.app
        self.agents = self.possible_agents = list(app.names)
        self._callers = caller_matrix(app)
        obs_space = gym.spaces.Box(-10.0, 10.0, (len(LOCAL_FEATURES),), np.float32)
        act_space = gym.spaces.Box(-1.0, 1.0, (N_ACTION_COMPONENTS,), np.float32)
        self.observation_spaces = {a: obs_space for a in self.agents}
        self.action_spaces = {a: act_space for a in self.agents}

    def _local(self, features: np.ndarray) -> dict[str, np.ndarray]:
        obs = self.env.last_observation
        cap = self.env.features.ctx.max_capacity_rps
        callers = (self._callers @ obs.request_rate_rps) / cap
        local = np.concatenate([features[:, _LOCAL], np.clip(callers, 0, 10)[:, None]], axis=1)
        local = local.astype(np.float32)
        return {name: local[i] for i, name in enumerate(self.agents)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        features, info = self.env.reset(seed=seed, options=options)
        return self._local(features), {a: dict(info) for a in self.agents}

    def step(self, action_dict: dict[str, np.ndarray]):
        n = len(self.agents)
        action = np.zeros((n, N_ACTION_COMPONENTS), dtype=np.float32)  # absent agent: no change
        for i, name in enumerate(self.agents):
            if name in action_dict:
                action[i] = action_dict[name]
        unknown = set(action_dict) - set(self.agents)
        if unknown:
            raise KeyError(f"unknown agent(s) {sorted(unknown)}")
        features, reward, terminated, truncated, info = self.env.step(action)
        obs = self._local(features)
        rewards = {a: reward for a in self.agents}
        terms = {a: terminated for a in self.agents} | {"__all__": terminated}
        truncs = {a: truncated for a in self.agents} | {"__all__": truncated}
        return obs, rewards, terms, truncs, {a: dict(info) for a in self.agents}
