"""RL environments over the simulated cluster: ``drpc/Cluster-v0`` (one agent, all services)
and a multi-agent view with one agent per deployment (:mod:`drpc.rllib_env.multi_agent`)."""

from drpc.rllib_env.actions import ActionMapping, map_action
from drpc.rllib_env.env import ClusterEnv, EnvConfig, make_env_config
from drpc.rllib_env.features import FEATURES, N_FEATURES
from drpc.rllib_env.reward import RewardConfig, compute_reward

__all__ = [
    "ActionMapping",
    "ClusterEnv",
    "EnvConfig",
    "FEATURES",
    "N_FEATURES",
    "RewardConfig",
    "compute_reward",
    "make_env_config",
    "map_action",
]
