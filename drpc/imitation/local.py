"""A service's local observation: what a student on a node can see without the cluster view.

The same layout as the multi-agent env (:mod:`drpc.rllib_env.multi_agent`): the service's own
feature row (:data:`drpc.rllib_env.features.FEATURES`) without the ``global_*`` columns, plus
its callers' request rate in units of its own capacity at max replicas (clipped to [0, 10])::

    lo = LocalObservation(app)
    local = lo(features, obs)     # (S, N_LOCAL) float32, row i = service i's local view

It is defined here again, not imported, because importing the multi-agent env loads RLlib
(about 7 s); a test checks that both give the same numbers.
"""

from __future__ import annotations

import numpy as np

from drpc.rllib_env.features import FEATURES
from drpc.sim.graph import CompiledApp
from drpc.sim.types import Observation

__all__ = ["GLOBAL_COLUMNS", "LOCAL_COLUMNS", "LOCAL_FEATURES", "N_LOCAL", "LocalObservation"]

GLOBAL_COLUMNS = tuple(i for i, f in enumerate(FEATURES) if f.startswith("global_"))
"""Indices of the cluster-wide columns of a feature row (dropped from the local view)."""
LOCAL_COLUMNS = tuple(i for i in range(len(FEATURES)) if i not in GLOBAL_COLUMNS)
"""Indices of the feature-row columns a student sees."""
LOCAL_FEATURES = tuple(FEATURES[i] for i in LOCAL_COLUMNS) + ("callers_load_of_max_capacity",)
"""Names of the local observation's columns, in order."""
N_LOCAL = len(LOCAL_FEATURES)


def caller_matrix(app: CompiledApp) -> np.ndarray:
    """(S, S) 0/1 matrix: ``m[callee, caller] = 1`` if ``caller`` calls ``callee`` anywhere."""
    m = np.zeros((app.n_services, app.n_services))
    caller, callee = app.call_edges()
    m[callee, caller] = 1.0
    return m


class LocalObservation:
    """Feature rows + observation -> local observations, one row per service (see module doc)."""

    def __init__(self, app: CompiledApp, max_capacity_rps: np.ndarray | None = None):
        from drpc.rllib_env.features import static_context

        self.app = app
        self.callers = caller_matrix(app)
        self.max_capacity_rps = (
            static_context(app).max_capacity_rps if max_capacity_rps is None else max_capacity_rps
        )
        self._cols = np.asarray(LOCAL_COLUMNS)

    def __call__(self, features: np.ndarray, obs: Observation) -> np.ndarray:
        """``features`` (S, F) from the FeatureBuilder of ``obs`` -> (S, N_LOCAL) float32."""
        callers = (self.callers @ obs.request_rate_rps) / self.max_capacity_rps
        local = np.concatenate([features[:, self._cols], np.clip(callers, 0, 10)[:, None]], axis=1)
        return local.astype(np.float32)
