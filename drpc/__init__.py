"""DRPC: distributed reinforcement-learning provisioning for containers.

A numpy simulated Kubernetes cluster (:mod:`drpc.sim`), real request traces and forecasts
(:mod:`drpc.workload`), exact baselines (:mod:`drpc.baselines`) and the evaluation harness
(:mod:`drpc.evaluate`); later: RL training on Ray (:mod:`drpc.rllib_env`), students
(:mod:`drpc.imitation`) and live serving (:mod:`drpc.serve`).
"""

__version__ = "0.1.0"


def _register_envs() -> None:
    """Register ``drpc/Cluster-v0`` with Gymnasium (the env module loads only when made)."""
    import gymnasium

    if "drpc/Cluster-v0" not in gymnasium.registry:
        gymnasium.register(id="drpc/Cluster-v0", entry_point="drpc.rllib_env.env:ClusterEnv")


_register_envs()
