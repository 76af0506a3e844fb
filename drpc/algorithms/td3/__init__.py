"""TD3 (Twin Delayed DDPG) for RLlib's new API stack: config, RLModule, learner, algorithm.

TD3 and DDPG are no longer shipped with RLlib (removed from ``rllib_contrib``); this is a
re-implementation on the ``RLModule``/``Learner``/``EnvRunner`` stack of Ray 2.60.
"""

from drpc.algorithms.td3.algorithm import TD3
from drpc.algorithms.td3.config import TD3Config
from drpc.algorithms.td3.learner import (
    TD3TorchLearner,
    clipped_double_q_target,
    target_policy_smoothing,
)
from drpc.algorithms.td3.rl_module import MLPActor, MLPCritic, TD3ModelConfig, TD3TorchRLModule

__all__ = [
    "MLPActor",
    "MLPCritic",
    "TD3",
    "TD3Config",
    "TD3ModelConfig",
    "TD3TorchLearner",
    "TD3TorchRLModule",
    "clipped_double_q_target",
    "target_policy_smoothing",
]
