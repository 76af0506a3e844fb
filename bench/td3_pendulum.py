"""TD3 on Gymnasium Pendulum-v1: env steps and wall-clock until the policy is good.

    python bench/td3_pendulum.py --out runs/td3_pendulum.json

Trains :class:`drpc.algorithms.TD3` (RLlib new API stack, local learner, sampling in the
driver) and evaluates the deterministic policy (``forward_inference``) on
``--eval-episodes`` episodes every ``--eval-every`` env steps, until the mean evaluation
return reaches ``--target`` (default -250) or ``--max-env-steps`` runs out. Prints one line
per evaluation and writes JSON: whether and when the target was reached (env steps,
seconds), the return curve, and every hyperparameter. Defaults are TD3Config's (the DRPC
paper's: 400-300 networks with LayerNorm, lr 3e-4, batch 256, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ENV = "Pendulum-v1"


def build_config(
    *,
    seed: int = 0,
    hiddens: tuple[int, ...] = (400, 300),
    layer_norm: bool = True,
    learning_starts: int = 1000,
    rollout_fragment_length: int = 1,
    eval_every: int = 1000,
    eval_episodes: int = 10,
    **training: Any,
):
    """The TD3 config of this benchmark: TD3Config defaults unless given here."""
    from drpc.algorithms import TD3Config

    config = (
        TD3Config()
        .environment(ENV)
        .env_runners(num_env_runners=0, rollout_fragment_length=rollout_fragment_length)
        .learners(num_learners=0)
        .training(num_steps_sampled_before_learning_starts=learning_starts, **training)
        .rl_module(
            model_config={
                "actor_hiddens": list(hiddens),
                "critic_hiddens": list(hiddens),
                "layer_norm": layer_norm,
            }
        )
        .reporting(min_sample_timesteps_per_iteration=eval_every)
        .evaluation(
            evaluation_interval=1,
            evaluation_duration=eval_episodes,
            evaluation_duration_unit="episodes",
            evaluation_num_env_runners=0,
            # Report the mean of exactly this evaluation's episodes (no smoothing window).
            evaluation_config=TD3Config.overrides(
                explore=False, metrics_num_episodes_for_smoothing=eval_episodes
            ),
        )
        .debugging(seed=seed)
    )
    return config


def hyperparameters(config) -> dict[str, Any]:
    """The settings that decide the result, as plain JSON values."""
    keys = (
        "gamma",
        "actor_lr",
        "critic_lr",
        "tau",
        "policy_noise",
        "noise_clip",
        "policy_frequency",
        "exploration_noise",
        "num_steps_sampled_before_learning_starts",
        "updates_per_env_step",
        "train_batch_size_per_learner",
        "n_step",
        "seed",
        "num_env_runners",
        "num_learners",
        "normalize_actions",
    )
    out = {key: getattr(config, key) for key in keys}
    out["replay_buffer_config"] = dict(config.replay_buffer_config)
    out["rollout_fragment_length"] = config.get_rollout_fragment_length()
    model = config.model_config
    out["model_config"] = {
        key: model[key] for key in ("actor_hiddens", "critic_hiddens", "layer_norm") if key in model
    }
    return out


def train_until(
    config,
    *,
    target: float = -250.0,
    max_env_steps: int = 30_000,
    log=print,
) -> dict[str, Any]:
    """Train ``config``'s algorithm until the evaluation mean reaches ``target`` or the
    budget ends; needs a running Ray. Returns the JSON-able result."""
    algo = config.build_algo()
    curve: list[dict[str, float]] = []
    reached: dict[str, float] | None = None
    start = time.perf_counter()
    try:
        env_steps = 0
        while env_steps < max_env_steps:
            result = algo.train()
            env_steps = int(result["num_env_steps_sampled_lifetime"])
            evaluation = result["evaluation"]["env_runners"]
            point = {
                "env_steps": env_steps,
                "seconds": round(time.perf_counter() - start, 2),
                "eval_return_mean": float(evaluation["episode_return_mean"]),
                "eval_episodes": int(evaluation["num_episodes"]),
                "train_return_mean": float(result["env_runners"].get("episode_return_mean", "nan")),
            }
            curve.append(point)
            log(
                f"env_steps={point['env_steps']:>6}  t={point['seconds']:>7.1f}s  "
                f"eval={point['eval_return_mean']:>8.1f} ({point['eval_episodes']} ep)  "
                f"train={point['train_return_mean']:>8.1f}"
            )
            if point["eval_return_mean"] >= target:
                reached = point
                break
        learner = result["learners"]["__all_modules__"]
        # Transitions through a gradient step per second of learner time (module steps:
        # RLlib's env-step count repeats the whole batch once per minibatch).
        throughput = learner.get("num_module_steps_trained_lifetime_throughput", {})
    finally:
        algo.stop()
        shutil.rmtree(algo.logdir, ignore_errors=True)  # Ray's per-run dir in ~/ray_results
    return {
        "env": ENV,
        "target_eval_return": target,
        "max_env_steps": max_env_steps,
        "reached": reached is not None,
        "env_steps_to_target": reached["env_steps"] if reached else None,
        "seconds_to_target": reached["seconds"] if reached else None,
        "final_eval_return_mean": curve[-1]["eval_return_mean"] if curve else None,
        "best_eval_return_mean": max(p["eval_return_mean"] for p in curve) if curve else None,
        "total_env_steps": curve[-1]["env_steps"] if curve else 0,
        "total_seconds": round(time.perf_counter() - start, 2),
        "learner_samples_per_s": (
            throughput.get("throughput_since_last_restore")
            if isinstance(throughput, dict)
            else throughput
        ),
        "curve": curve,
        "hyperparameters": hyperparameters(config),
    }


def init_ray(num_cpus: int = 2) -> None:
    """A local Ray without dashboard or token auth (a deliberate choice for benchmarks)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--target", type=float, default=-250.0)
    parser.add_argument("--max-env-steps", type=int, default=30_000)
    parser.add_argument("--eval-every", type=int, default=1000, help="env steps")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hiddens", default="400,300", help="actor and critic widths")
    parser.add_argument("--no-layer-norm", action="store_true")
    parser.add_argument("--learning-starts", type=int, default=1000, help="env steps")
    parser.add_argument("--rollout-fragment-length", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="intra-op threads of the driver's learner (more is slower on small nets)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.torch_threads)
    init_ray(args.num_cpus)
    config = build_config(
        seed=args.seed,
        hiddens=tuple(int(h) for h in args.hiddens.split(",")),
        layer_norm=not args.no_layer_norm,
        learning_starts=args.learning_starts,
        rollout_fragment_length=args.rollout_fragment_length,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        train_batch_size_per_learner=args.batch_size,
    )
    result = train_until(config, target=args.target, max_env_steps=args.max_env_steps)
    result["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": args.torch_threads,
    }
    summary = {k: v for k, v in result.items() if k not in ("curve", "hyperparameters")}
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["reached"] else 1


if __name__ == "__main__":
    sys.exit(main())
