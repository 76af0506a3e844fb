"""RL algorithms for DRPC on RLlib's new API stack (Ray 2.60).

* :mod:`drpc.algorithms.td3`: TD3, the DRPC paper's teacher algorithm (not shipped by
  RLlib any more). Importing this package registers it with Tune as ``"TD3"``, so
  ``tune.Tuner("TD3", param_space=config)`` works.
* :func:`make_algorithm_config`: TD3, or RLlib's SAC or PPO as alternatives, sized to the
  CPUs of the machine.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from drpc.algorithms.td3 import (
    TD3,
    TD3Config,
    TD3ModelConfig,
    TD3TorchLearner,
    TD3TorchRLModule,
)

__all__ = [
    "ALGORITHMS",
    "AlgorithmName",
    "TD3",
    "TD3Config",
    "TD3ModelConfig",
    "TD3TorchLearner",
    "TD3TorchRLModule",
    "make_algorithm_config",
    "register",
]

AlgorithmName = Literal["td3", "sac", "ppo"]
ALGORITHMS: tuple[str, ...] = ("td3", "sac", "ppo")


def register() -> None:
    """Register the algorithms RLlib does not ship with Tune's registry (``"TD3"``).

    Idempotent. Called on import of :mod:`drpc.algorithms`; registration made before
    ``ray.init`` is flushed to the cluster when it starts.
    """
    from ray.tune.registry import register_trainable

    register_trainable("TD3", TD3)


def _config_class(name: str) -> type[AlgorithmConfig]:
    if name == "td3":
        return TD3Config
    if name == "sac":
        from ray.rllib.algorithms.sac import SACConfig

        return SACConfig
    if name == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig

        return PPOConfig
    raise ValueError(f"Unknown algorithm {name!r}; choose one of {ALGORITHMS}.")


def make_algorithm_config(
    name: AlgorithmName,
    env: Any,
    *,
    num_cpus: int | None = None,
    env_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> AlgorithmConfig:
    """A TD3, SAC or PPO config for ``env`` whose trial fits in ``num_cpus`` CPUs.

    Resources: the learner is local (``num_learners=0``) and evaluation runs in the
    algorithm's process. TD3 and SAC sample in the algorithm's process too
    (``num_env_runners=0``): their loop alternates one env step with one update, so a
    remote runner would only add a round trip per step. PPO samples on
    ``min(2, num_cpus - 1)`` remote env runners. A trial then needs 1 CPU (TD3, SAC) or
    ``1 + runners`` CPUs (PPO); RLlib's default PPO wants 3 and never starts on 2 cores.

    Args:
        name: ``"td3"``, ``"sac"`` or ``"ppo"``.
        env: A registered env name or an env class (as ``AlgorithmConfig.environment``).
        num_cpus: CPUs to fit in; default: ``os.cpu_count()``.
        env_config: Passed to the env constructor.
        **overrides: Any config attribute, e.g. ``gamma=0.95``,
            ``train_batch_size_per_learner=64``, ``num_env_runners=1``, and
            ``model_config={...}`` for the RLModule. Unknown names raise ``TypeError``.
    """
    cpus = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
    config = _config_class(name)()
    config.environment(env, env_config=env_config or {})
    on_policy = name == "ppo"
    config.env_runners(num_env_runners=max(0, min(2, cpus - 1)) if on_policy else 0)
    config.learners(num_learners=0)
    config.evaluation(evaluation_num_env_runners=0)

    model_config = overrides.pop("model_config", None)
    if model_config is not None:
        config.rl_module(model_config=model_config)
    unknown = sorted(key for key in overrides if not hasattr(config, key))
    if unknown:
        raise TypeError(f"{type(config).__name__} has no settings {unknown}.")
    config.update_from_dict(overrides)
    return config


register()
