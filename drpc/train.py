"""``drpc train``: train the central teacher with RLlib on the simulated cluster.

    from drpc.train import TrainConfig, train
    result = train(TrainConfig(time_budget_s=600, out="runs/teacher"))

What one run does, top to bottom:

1. Build the algorithm (TD3 with the per-service teacher module by default; RLlib's SAC or
   PPO on flattened observations as alternatives) on ``drpc/Cluster-v0`` over the training
   scenarios, or restore it from ``resume`` (an earlier run's ``checkpoint/``).
   TD3 only, unless ``demonstrator`` is None: warm-start the actor by behaviour cloning of a
   demonstrator on the training windows (:mod:`drpc.teacher.demonstrations`); the critics
   then learn alone for ``actor_update_starts`` updates before the actor moves.
2. Call ``algo.train()`` until ``iterations`` or ``env_steps`` or ``time_budget_s`` runs out,
   with a progress bar, and log every iteration's metrics as TensorBoard events
   (``out/tensorboard``) and a CSV row (``out/progress.csv``).
3. Save the algorithm with ``save_to_path`` into ``out/checkpoint`` and export the policy next
   to it (:mod:`drpc.teacher.checkpoint`: ``drpc_policy.json`` + ``policy.pt``).
4. Evaluate the policy with :func:`drpc.evaluate.evaluate` on the evaluation scenarios next
   to the HPA, and write ``out/eval/<scenario>/`` and ``out/train_summary.json``.

Ray: if Ray is not running, ``train`` starts a local instance sized to ``num_cpus``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drpc.scenario import load_scenario

__all__ = ["TrainConfig", "TrainResult", "train", "build_algorithm_config", "flatten_metrics"]

ALGORITHMS = ("td3", "sac", "ppo")
SELECTIONS = ("hpa_budget", "score")

TEACHER_ENV: dict[str, Any] = {
    "reward": {"slo_weight": 4.0, "failure_weight": 10.0, "violation_weight": 2.0},
    "spikes_per_hour": 2.0,
    "outages_per_hour": 0.5,
}
"""The env settings ``drpc train`` starts from (``TrainConfig.env_config`` overrides them,
nested dicts merged): SLO-heavy reward weights, and random load spikes and outages so the
teacher meets the flash crowds and thundering herds of the evaluation days."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; the CLI's flags map one to one onto these fields."""

    scenarios: tuple[str, ...] = ("train-trainticket-nasa",)
    """Training scenarios (train split); one is drawn per episode."""
    algorithm: str = "td3"
    """'td3' (the paper's teacher, per-service networks), 'sac' or 'ppo' (RLlib's, flat MLPs)."""
    out: str = "runs/teacher"
    """Output folder: checkpoint/, tensorboard/, progress.csv, eval/, train_summary.json."""
    overwrite: bool = False
    """Replace a non-empty ``out``."""
    iterations: int | None = None
    """Stop after this many ``algo.train()`` calls."""
    env_steps: int | None = None
    """Stop after this many env steps sampled (lifetime, including a resumed run's)."""
    time_budget_s: float | None = 600.0
    """Stop once this much wall-clock time has passed (checked after each iteration)."""
    seed: int = 0
    """Seed of the algorithm, the networks and the env runners' episode draws."""
    resume: str | None = None
    """An earlier run's ``checkpoint/`` folder to continue from (its config wins)."""
    num_cpus: int | None = None
    """CPUs of a Ray instance started by ``train`` (default: all)."""
    num_learners: int = 0
    """Remote learners (0: the learner runs in the driver)."""
    num_gpus_per_learner: float = 0.0
    """GPUs per learner (needs ``num_learners >= 1`` to place it on a GPU node)."""
    num_env_runners: int = 0
    """Remote env runners (0: sample in the driver; TD3 on 2 cores is fastest so)."""
    num_envs_per_env_runner: int = 1
    """Vectorised env copies per runner (each env step = this many transitions)."""
    episode_intervals: int = 120
    """Control intervals per training episode (120 x 15 s = 30 simulated minutes)."""
    action_mode: str = "target"
    """'target': actions are set-points (utilisation target, limits), a stable controller from
    the first step; 'delta': actions are changes (see :mod:`drpc.rllib_env.actions`)."""
    env_config: Mapping[str, Any] = field(default_factory=dict)
    """:class:`~drpc.rllib_env.env.EnvConfig` fields over :data:`TEACHER_ENV` (nested dicts
    such as ``reward`` and ``actions`` are merged key by key)."""
    hidden: tuple[int, ...] = (64, 64)
    """Teacher network widths (TD3) or MLP widths (SAC, PPO)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.95
    """Discount per 15 s interval (0.95: a horizon of about 5 simulated minutes)."""
    actor_lr: float = 1e-3
    """TD3 actor learning rate."""
    critic_lr: float = 1e-3
    """TD3 critic learning rate."""
    actor_anchor_weight: float = 0.0
    """TD3: trust region pulling the actor toward its target copy (``TD3Config``'s; 0: none)."""
    exploration_noise: float = 0.05
    """TD3 Gaussian exploration noise (fraction of the action range)."""
    learning_starts: int = 1000
    """Env steps of uniform random actions before the first update."""
    updates_per_env_step: float = 0.25
    """TD3 gradient steps per env step sampled."""
    per_service_critic: bool = True
    """TD3: one critic share per service, trained on its own share of the reward."""
    demonstrator: str | None = None
    """TD3 warm start. 'setpoint' (target mode): the actor starts as the best fixed set-point
    on the training scenarios (:mod:`drpc.teacher.setpoint`); a policy name such as 'oracle'
    (delta mode): behaviour cloning of its decisions. None: a freshly initialised actor."""
    demo_steps: int = 2000
    """Env steps of demonstrations (intervals, drawn like training episodes)."""
    bc_epochs: int = 10
    """Behaviour-cloning passes over the demonstrations."""
    actor_update_starts: int = 1000
    """With a warm-started actor: critic updates before the first actor update."""
    rollout_fragment_length: int = 8
    """Env steps sampled per training step (the learner then runs that many updates at once)."""
    steps_per_iteration: int = 240
    """Env steps per ``algo.train()`` call (one progress/TensorBoard row)."""
    validation_scenario: str | None = "val-trainticket-nasa"
    """Training-split scenario(s), comma-separated, on which snapshots of the actor are scored
    during training; the best one is exported (None: export the last). Validation time counts
    as training."""
    validate_every_s: float = 60.0
    """Seconds of training between validations (each takes a few seconds; the actor swings
    between snapshots, so the pick wants many; 60 and 120 measured alike, see the README)."""
    selection: str = "hpa_budget"
    """How the exported snapshot is picked on the validation scenario(s). 'hpa_budget': among
    the snapshots that use no more CPU than the HPA (``hpa``, 80% target) there, the fewest
    violating and failed intervals, then the least CPU -- the goal "fewer SLO violations at
    no more CPU than the HPA" on training data; if none fits the budget, the lowest score.
    'score': the lowest score."""
    population: int = 1
    """Independent trainings run at once (seeds ``seed`` .. ``seed + population - 1``, each
    with the whole time budget on its share of the CPUs); the member whose exported snapshot
    ranks best by ``selection`` on the validation scenario(s) is exported
    (:mod:`drpc.population`)."""
    validation_cost_weight: float = 0.1
    """Score = violation fraction + failed fraction + this x core-hours / the HPA's (lower is
    better): one point of violating intervals weighs as much as 10% of the HPA's CPU."""
    eval_scenarios: tuple[str, ...] = ("default",)
    """Scenarios (evaluation split) to run the trained policy on, beside the HPA."""
    eval_baselines: tuple[str, ...] = ("hpa",)
    """Baseline policies evaluated next to the teacher."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.action_mode not in ("target", "delta"):
            raise ValueError(f"action_mode: 'target' or 'delta', got {self.action_mode!r}")
        if self.demonstrator == "setpoint":
            if self.action_mode != "target":
                raise ValueError("demonstrator 'setpoint' needs action_mode='target'")
        elif self.demonstrator is not None and self.action_mode != "delta":
            raise ValueError(
                f"demonstrator {self.demonstrator!r} needs action_mode='delta' (demonstrations "
                "are deltas); in target mode use 'setpoint'"
            )
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection: choose one of {SELECTIONS}, got {self.selection!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: choose one of {ALGORITHMS}, got {self.algorithm!r}")
        if not self.scenarios:
            raise ValueError("scenarios: give at least one training scenario")
        if self.iterations is None and self.env_steps is None and self.time_budget_s is None:
            raise ValueError("give a stopping rule: iterations, env_steps or time_budget_s")
        for name in ("iterations", "env_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if self.num_gpus_per_learner > 0 and self.num_learners < 1:
            raise ValueError("num_gpus_per_learner > 0 needs num_learners >= 1")
        for name in ("num_learners", "num_env_runners"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.num_envs_per_env_runner < 1 or self.rollout_fragment_length < 1:
            raise ValueError("num_envs_per_env_runner and rollout_fragment_length must be >= 1")
        if self.population < 1:
            raise ValueError(f"population must be >= 1, got {self.population}")
        if self.population > 1 and (
            self.algorithm != "td3" or not self.validation_scenario or self.resume
        ):
            raise ValueError(
                "population > 1 compares the members on the validation scenario: it needs "
                "algorithm 'td3', a validation_scenario, and no resume"
            )


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    out: Path
    checkpoint: Path
    iterations: int
    env_steps: int
    wall_s: float
    evaluations: dict[str, list[dict[str, Any]]]
    """Per evaluation scenario: the summaries of the teacher and the baselines."""
    validation_best: dict[str, Any] | None = None
    """The exported snapshot's row of the validation history (None: no validation)."""


def env_config_for(cfg: TrainConfig) -> dict[str, Any]:
    """The env config of a run: its scenarios and episode length plus ``cfg.env_config``."""
    env_config: dict[str, Any] = {
        "scenarios": list(cfg.scenarios),
        "episode_intervals": cfg.episode_intervals,
    }
    user = dict(cfg.env_config)
    env_config["actions"] = {
        "mode": cfg.action_mode,
        # target mode: the HPA's scale-up bound (double per interval); delta: +-50% steps
        "replica_step_fraction": 1.0 if cfg.action_mode == "target" else 0.5,
        **dict(user.pop("actions", {})),
    }
    for key, value in TEACHER_ENV.items():
        if isinstance(value, dict):
            env_config[key] = {**value, **dict(user.pop(key, {}))}
        else:
            env_config[key] = user.pop(key, value)
    env_config.update(user)
    if cfg.algorithm != "td3":
        env_config["flatten"] = True
    return env_config


def build_algorithm_config(cfg: TrainConfig):
    """The RLlib ``AlgorithmConfig`` of a run (not built)."""
    from drpc.algorithms import make_algorithm_config

    env_config = env_config_for(cfg)
    common: dict[str, Any] = {
        "seed": cfg.seed,
        "gamma": cfg.gamma,
        "num_env_runners": cfg.num_env_runners,
        "num_envs_per_env_runner": cfg.num_envs_per_env_runner,
        "num_learners": cfg.num_learners,
        "num_gpus_per_learner": cfg.num_gpus_per_learner,
        "train_batch_size_per_learner": cfg.batch_size,
    }
    if cfg.algorithm == "td3":
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from drpc.teacher.module import PerServiceTD3Module

        warm = cfg.demonstrator is not None
        reward_kind = dict(cfg.env_config.get("reward", {})).get("kind", "weighted")
        per_service = cfg.per_service_critic and reward_kind == "weighted"
        config = make_algorithm_config(
            "td3",
            "drpc/Cluster-v0",
            num_cpus=cfg.num_cpus,
            env_config=env_config,
            random_warmup=not warm,
            component_rewards_key="service_rewards" if per_service else None,
            actor_update_starts=cfg.actor_update_starts if warm else 0,
            actor_lr=cfg.actor_lr,
            critic_lr=cfg.critic_lr,
            actor_anchor_weight=cfg.actor_anchor_weight,
            exploration_noise=cfg.exploration_noise,
            num_steps_sampled_before_learning_starts=cfg.learning_starts,
            updates_per_env_step=cfg.updates_per_env_step,
            rollout_fragment_length=cfg.rollout_fragment_length,
            min_sample_timesteps_per_iteration=cfg.steps_per_iteration,
            **common,
        )
        config.rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=PerServiceTD3Module,
                model_config={"teacher_hidden": list(cfg.hidden)},
            )
        )
        return config
    extra: dict[str, Any] = {"model_config": {"fcnet_hiddens": list(cfg.hidden)}}
    if cfg.algorithm == "sac":
        extra.update(
            num_steps_sampled_before_learning_starts=cfg.learning_starts,
            min_sample_timesteps_per_iteration=cfg.steps_per_iteration,
        )
    else:  # ppo
        extra.update(minibatch_size=cfg.batch_size, train_batch_size_per_learner=None)
        common["train_batch_size_per_learner"] = max(cfg.steps_per_iteration, cfg.batch_size)
    return make_algorithm_config(
        cfg.algorithm,
        "drpc/Cluster-v0",
        num_cpus=cfg.num_cpus,
        env_config=env_config,
        **{**common, **{k: v for k, v in extra.items() if v is not None}},
    )


# ------------------------------------------------------------------------------ metrics


def flatten_metrics(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested RLlib results -> ``{"a/b/c": float}`` for every finite number in them."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


# Columns of progress.csv (when RLlib reports them) and the progress bar.
_HEADLINE = {
    "env_steps": "num_env_steps_sampled_lifetime",
    "episode_return_mean": "env_runners/episode_return_mean",
    "critic_loss": "learners/default_policy/critic_loss",
    "actor_loss": "learners/default_policy/actor_loss",
}


class _MetricsLog:
    """TensorBoard events (tensorboardX) and a CSV of the headline metrics per iteration."""

    def __init__(self, out: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"), flush_secs=10)
        self.csv_path = out / "progress.csv"
        self._csv = self.csv_path.open("a", newline="")
        self._rows = csv.writer(self._csv)
        if self.csv_path.stat().st_size == 0:
            self._rows.writerow(["iteration", "wall_s", *_HEADLINE])

    def log(self, iteration: int, wall_s: float, flat: dict[str, float]) -> None:
        step = int(flat.get(_HEADLINE["env_steps"], iteration))
        for key, value in flat.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.add_scalar("drpc/wall_s", wall_s, global_step=step)
        self._rows.writerow(
            [iteration, round(wall_s, 2), *(flat.get(k, "") for k in _HEADLINE.values())]
        )
        self._csv.flush()

    def close(self) -> None:
        self.writer.close()
        self._csv.close()


# ------------------------------------------------------------------------------- train


def check_scenarios(cfg: TrainConfig) -> None:
    """Training scenarios must load and use only training windows (``trace.split: train``);
    evaluation scenarios must load."""
    for name in cfg.scenarios:
        scenario = load_scenario(name)
        split = scenario.spec.trace.split
        if split != "train":
            raise ValueError(
                f"training scenario {name!r}: trace.split is {split!r}; train only on training "
                "windows (a scenario with `split: train`, e.g. train-trainticket-nasa)"
            )
        if scenario.n_intervals < cfg.episode_intervals + 1:
            raise ValueError(
                f"training scenario {name!r} has {scenario.n_intervals} intervals, too few for "
                f"episodes of {cfg.episode_intervals}; pass --episode-intervals "
                f"{scenario.n_intervals // 2} or less"
            )
    for name in validation_scenarios(cfg):
        split = load_scenario(name).spec.trace.split
        if split != "train":
            raise ValueError(
                f"validation scenario {name!r}: trace.split is {split!r}; "
                "select snapshots on training windows only (split: train)"
            )
    for name in cfg.eval_scenarios:
        load_scenario(name)


def _prepare_out(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise FileExistsError(
                f"{out}: output folder is not empty (pass --overwrite, or another --out)"
            )
        if cfg.resume and Path(cfg.resume).resolve().is_relative_to(out.resolve()):
            raise ValueError(f"--resume {cfg.resume} lies inside --out {out}; use another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _init_ray(num_cpus: int | None) -> None:
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local instance
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def _stop_reason(cfg: TrainConfig, iteration: int, env_steps: int, elapsed_s: float) -> str:
    if cfg.iterations is not None and iteration >= cfg.iterations:
        return "iterations"
    if cfg.env_steps is not None and env_steps >= cfg.env_steps:
        return "env_steps"
    if cfg.time_budget_s is not None and elapsed_s >= cfg.time_budget_s:
        return "time_budget_s"
    return ""


def train(
    cfg: TrainConfig, *, on_iteration: Callable[[int, dict[str, float]], None] | None = None
) -> TrainResult:
    """Run one training (see the module docstring) and return where everything went.

    ``on_iteration(algo, iteration, metrics, train_s, best_state)``, if given, runs after every
    iteration (``best_state``: the best validated actor weights so far, or None) and returns
    the seconds it spent (e.g. evaluating a snapshot); they are left out of the training clock
    that ``time_budget_s`` and ``train_wall_s`` count.
    """
    import torch
    from tqdm.auto import tqdm

    from drpc.teacher.checkpoint import export_policy, load_run_config

    check_scenarios(cfg)  # fail fast, before Ray starts
    if cfg.population > 1:  # several runs at once, the best exported
        if on_iteration is not None:
            raise ValueError("on_iteration needs population=1 (members train in Ray workers)")
        from drpc.population import train_population

        return train_population(cfg)
    if cfg.resume:
        load_run_config(cfg.resume)  # refuses a folder that is not a DRPC checkpoint
    out = _prepare_out(cfg)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    torch.set_num_threads(1)  # the teacher's small nets: one thread is fastest on 2 cores
    _init_ray(cfg.num_cpus)

    from ray.rllib.algorithms.algorithm import Algorithm

    if cfg.resume:
        algo = Algorithm.from_checkpoint(str(Path(cfg.resume).resolve()))
    started = time.monotonic()
    if not cfg.resume:
        algo = build_algorithm_config(cfg).build_algo()
        if cfg.algorithm == "td3" and cfg.demonstrator == "setpoint":
            warm_start_setpoint(algo, cfg, out)
        elif cfg.algorithm == "td3" and cfg.demonstrator is not None:
            warm_start_actor(algo, cfg, out)

    validator = _Validator(cfg) if cfg.validation_scenario and cfg.algorithm == "td3" else None
    if validator is not None and cfg.demonstrator is not None and not cfg.resume:
        validator(algo, 0, 0, 0.0, force=True)  # the warm start itself is a candidate
    log = _MetricsLog(out)
    iteration, env_steps, reason = 0, 0, ""
    # The bar follows the stopping rule: iterations, env steps, or seconds of the budget.
    unit = "it" if cfg.iterations else ("step" if cfg.env_steps else "s")
    total = cfg.iterations or cfg.env_steps or cfg.time_budget_s
    bar = tqdm(total=total, desc="train", unit=unit, disable=not cfg.progress, dynamic_ncols=True)
    shown = 0.0
    try:
        while not reason:
            result = algo.train()
            iteration += 1
            flat = flatten_metrics(result)
            new_steps = int(flat.get(_HEADLINE["env_steps"], env_steps)) - env_steps
            env_steps += new_steps
            elapsed = time.monotonic() - started
            log.log(iteration, elapsed, flat)
            done = {"it": iteration, "step": env_steps, "s": elapsed}[unit]
            bar.update(min(done, total) - shown)
            shown = min(done, total)
            bar.set_postfix(
                steps=env_steps,
                ret=f"{flat.get(_HEADLINE['episode_return_mean'], float('nan')):.2f}",
                s=int(elapsed),
            )
            if validator is not None:
                validator(algo, iteration, env_steps, elapsed)
            if on_iteration is not None:
                best_state = validator.best["state"] if validator and validator.best else None
                started += on_iteration(algo, iteration, flat, elapsed, best_state)
            reason = _stop_reason(cfg, iteration, env_steps, elapsed)
        wall_s = time.monotonic() - started
        checkpoint = out / "checkpoint"
        algo.save_to_path(str(checkpoint.resolve()))
        if validator is not None:
            validator(algo, iteration, env_steps, wall_s, force=True)  # the last one too
        best = validator.best if validator is not None else None
        export_policy(
            algo,
            checkpoint,
            cfg,
            env_config_for(cfg),
            env_steps,
            wall_s,
            actor_state=best["state"] if best else None,
            selection={"best": best["row"], "history": validator.history} if best else None,
        )
    finally:
        bar.close()
        log.close()
        algo.stop()

    evaluations = evaluate_checkpoint(checkpoint, cfg, out)
    summary = {
        "checkpoint": str(checkpoint),
        "stopped_by": reason,
        "iterations": iteration,
        "env_steps": env_steps,
        "train_wall_s": round(wall_s, 1),
        "validation": {"best": best["row"], "history": validator.history} if best else None,
        "evaluations": evaluations,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(
        out, checkpoint, iteration, env_steps, wall_s, evaluations, best["row"] if best else None
    )


def validation_scenarios(cfg: TrainConfig) -> list[str]:
    """The validation scenario names (``validation_scenario`` is one or a comma-separated list)."""
    if not cfg.validation_scenario:
        return []
    return [name.strip() for name in cfg.validation_scenario.split(",") if name.strip()]


def snapshot_rank(selection: str, row: dict[str, Any]) -> tuple[int, float, float]:
    """Sort key of a validated snapshot's row (lower is better) under ``selection`` (see
    :attr:`TrainConfig.selection`); the same rule ranks the members of a population."""
    if selection == "hpa_budget" and row["cpu_vs_hpa"] <= 1.0:
        return (0, row["violating_or_failed_fraction"], row["cpu_vs_hpa"])
    return (1, row["score"], 0.0)


class _Validator:
    """Scores actor snapshots on the validation scenario(s) and keeps the best one's weights;
    with several, the score and the metrics are means over them."""

    def __init__(self, cfg: TrainConfig):
        from drpc.evaluate import run_policy

        self.cfg = cfg
        self.scenarios = [load_scenario(name) for name in validation_scenarios(cfg)]
        hpa = [run_policy(sc, "hpa", progress=False).summary for sc in self.scenarios]
        self.hpa_core_hours = [s["cpu_core_hours"] for s in hpa]
        # the HPA's violating + failed fraction (mean over the scenarios): what a snapshot
        # must get under, at no more CPU, to beat the HPA on the validation day
        self.hpa_bad = _bad_fraction(hpa)
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.last_s = 0.0

    def rank(self, row: dict[str, Any]) -> tuple[int, float, float]:
        """Sort key of a validated snapshot (lower is better), per ``cfg.selection``."""
        return snapshot_rank(self.cfg.selection, row)

    def __call__(
        self, algo: Any, iteration: int, env_steps: int, train_s: float, force: bool = False
    ) -> None:
        from drpc.evaluate import run_policy

        if not force and train_s - self.last_s < self.cfg.validate_every_s:
            return
        self.last_s = train_s
        policy = snapshot_policy(algo, self.cfg, name="snapshot")
        summaries = [run_policy(sc, policy, progress=False).summary for sc in self.scenarios]
        bad = _bad_fraction(summaries)
        cpu_vs_hpa = float(
            np.mean(
                [
                    s["cpu_core_hours"] / h
                    for s, h in zip(summaries, self.hpa_core_hours, strict=True)
                ]
            )
        )
        row = {
            "iteration": iteration,
            "env_steps": env_steps,
            "train_s": round(train_s, 1),
            # violating + failed fraction + this x core-hours / the HPA's (means over scenarios)
            "score": bad + self.cfg.validation_cost_weight * cpu_vs_hpa,
            **{
                k: float(np.mean([s[k] for s in summaries]))
                for k in ("slo_violation_fraction", "cpu_core_hours")
            },
            "violating_or_failed_fraction": bad,
            "cpu_vs_hpa": cpu_vs_hpa,
            "hpa_violating_or_failed_fraction": self.hpa_bad,
            # the criterion on training data: fewer bad intervals at no more CPU
            "beats_hpa": bool(bad < self.hpa_bad and cpu_vs_hpa <= 1.0),
        }
        self.history.append(row)
        if self.best is None or self.rank(row) < self.rank(self.best["row"]):
            state = {k: v.detach().clone() for k, v in policy.actor.state_dict().items()}
            self.best = {"row": row, "state": state}


def _bad_fraction(summaries: list[dict[str, Any]]) -> float:
    """SLO-violating plus failed-request fraction, the mean over ``summaries``."""
    return float(
        np.mean([s["slo_violation_fraction"] + s["failed_request_fraction"] for s in summaries])
    )


def snapshot_policy(algo: Any, cfg: TrainConfig, name: str = "teacher") -> Any:
    """The algorithm's current actor as a :class:`~drpc.teacher.policy.TeacherPolicy` (a copy)."""
    from drpc.rllib_env.env import make_env_config
    from drpc.teacher.policy import TeacherPolicy

    env_cfg = make_env_config(env_config_for(cfg))
    actor = copy.deepcopy(algo.get_module().actor).eval()
    return TeacherPolicy.from_actor(actor, env_cfg.actions, env_cfg.forecast, name=name)


def _load_actor_everywhere(algo: Any, state: dict[str, Any]) -> None:
    """Put actor weights ``state`` into the actor and its target on every learner, then sync
    the env runners."""
    from ray.rllib.core.rl_module.rl_module import DEFAULT_MODULE_ID

    def load(learner: Any) -> None:
        module = learner.module[DEFAULT_MODULE_ID].unwrapped()
        module.actor.load_state_dict(state)
        module.actor_target.load_state_dict(state)

    algo.learner_group.foreach_learner(load)
    algo.env_runner_group.sync_weights(
        from_worker_or_learner_group=algo.learner_group, inference_only=True
    )


def warm_start_setpoint(algo: Any, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Start the actor at the best fixed set-point on the training scenarios; the search's
    grid and choice go to ``out/warm_start.json``."""
    from drpc.rllib_env.env import make_env_config
    from drpc.teacher.setpoint import search_setpoint, set_constant_output

    env_cfg = make_env_config(env_config_for(cfg))
    found = search_setpoint(
        cfg.scenarios, env_cfg.actions, cfg.validation_cost_weight, forecast=env_cfg.forecast
    )
    actor = copy.deepcopy(algo.get_module().actor)
    set_constant_output(actor, found.action)
    _load_actor_everywhere(algo, {k: v.detach().cpu() for k, v in actor.state_dict().items()})
    result = {"demonstrator": "setpoint", **found.as_dict()}
    (out / "warm_start.json").write_text(json.dumps(result, indent=2))
    if cfg.progress:
        print(f"warm start: set-point {found.action} (training score {found.score:.4f})")
    return result


def warm_start_actor(algo: Any, cfg: TrainConfig, out: Path) -> list[float]:
    """Behaviour-clone ``cfg.demonstrator`` into the actor (and its target) on every learner
    and env runner; returns the loss per epoch (also in ``out/warm_start.json``)."""
    from drpc.teacher.demonstrations import behaviour_clone, collect_demonstrations

    demos = collect_demonstrations(
        env_config_for(cfg), cfg.demonstrator, cfg.demo_steps, seed=cfg.seed, progress=cfg.progress
    )
    actor = copy.deepcopy(algo.get_module().actor)
    losses = behaviour_clone(actor, demos, epochs=cfg.bc_epochs, seed=cfg.seed)
    _load_actor_everywhere(algo, {k: v.detach().cpu() for k, v in actor.state_dict().items()})
    (out / "warm_start.json").write_text(
        json.dumps(
            {
                "demonstrator": cfg.demonstrator,
                "steps": len(demos),
                "demonstrator_mean_reward": demos.mean_reward,
                "bc_loss_per_epoch": losses,
            },
            indent=2,
        )
    )
    return losses


def evaluate_checkpoint(
    checkpoint: Path, cfg: TrainConfig, out: Path
) -> dict[str, list[dict[str, Any]]]:
    """Run the exported policy and ``cfg.eval_baselines`` on each evaluation scenario."""
    from drpc.evaluate import evaluate, format_table
    from drpc.teacher.policy import load_policy

    results: dict[str, list[dict[str, Any]]] = {}
    for name in cfg.eval_scenarios:
        scenario = load_scenario(name)
        policies: list[Any] = [load_policy(checkpoint, name="teacher"), *cfg.eval_baselines]
        runs = evaluate(scenario, policies, out / "eval" / scenario.name, progress=cfg.progress)
        results[scenario.name] = [r.summary for r in runs]
        if cfg.progress:
            print(f"\n{scenario.name}:\n{format_table(runs)}")
    return results
