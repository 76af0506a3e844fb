"""``drpc tune``: a Tune sweep over TD3 hyperparameters and reward weights, pruned by ASHA.

    drpc tune --samples 8 --max-iterations 24 --out runs/tune      # 2 trials at a time on 2 CPUs
    tensorboard --logdir runs/tune                                  # every trial's curves
    cat runs/tune/results.csv                                       # one row per trial, best first

Each trial is one ``drpc train`` run (:func:`drpc.train.train`, TD3, samples in the trial's own
process: 1 CPU) with sampled settings. Different reward weights make training returns
incomparable, so trials are scored on what users care about instead: every
``validate_every`` iterations the current actor runs the *training-split* validation scenario
and reports

    score = SLO-violating interval fraction + failed-request fraction
            + cost_weight x core-hours / the HPA's core-hours        (lower is better)

(the score ``drpc train`` selects snapshots by), from the first multiple of ``validate_every``
after learning starts (before, every trial's actor is the same untrained one). ASHA stops the worse half of the trials at
each rung (``grace_period``, then x ``reduction_factor``). The sweep sizes itself to the
cluster it runs on: ``max_concurrent`` trials of ``cpus_per_trial`` CPUs (2 x 1 on a 2-core
laptop; on a ``ray up`` cluster, pass ``--address auto`` and more concurrency).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SweepConfig", "search_space", "run_sweep"]


@dataclass(frozen=True)
class SweepConfig:
    """Every setting of a sweep; the ``drpc tune`` flags map one to one onto these."""

    scenarios: tuple[str, ...] = ("train-trainticket-nasa",)
    """Training scenarios (training windows only)."""
    validation_scenario: str = "val-trainticket-nasa"
    """Training-split scenario the trials are scored on."""
    episode_intervals: int = 120
    """Control intervals per training episode."""
    num_samples: int = 8
    """Trials (configurations drawn from the search space)."""
    max_iterations: int = 24
    """Training iterations of a trial that ASHA never stops (``steps_per_iteration`` each)."""
    grace_period: int = 6
    """Iterations every trial gets before ASHA may stop it."""
    reduction_factor: int = 2
    """ASHA keeps 1 / this of the trials at each rung."""
    validate_every: int = 3
    """Iterations between scores (each a full run of the validation scenario)."""
    steps_per_iteration: int = 240
    """Env steps per training iteration."""
    cpus_per_trial: float = 1.0
    """CPUs Tune reserves per trial (TD3 samples and learns in the trial's process)."""
    max_concurrent: int = 2
    """Trials running at once."""
    cost_weight: float = 0.1
    """Weight of core-hours / the HPA's in the score."""
    seed: int = 0
    """Seed of the search (and of every trial's training)."""
    out: str = "runs/tune"
    """Folder for Tune's results (TensorBoard events, CSV, JSON) and results.csv."""
    address: str | None = None
    """Ray address to run on (None: start a local instance; 'auto': the running cluster)."""
    progress: bool = True
    """Tune's progress table."""

    def __post_init__(self) -> None:
        for name in ("num_samples", "max_iterations", "grace_period", "validate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"SweepConfig.{name} must be >= 1")
        if self.grace_period > self.max_iterations:
            raise ValueError("SweepConfig.grace_period must be <= max_iterations")
        if self.reduction_factor < 2:
            raise ValueError("SweepConfig.reduction_factor must be >= 2")


def search_space() -> dict[str, Any]:
    """TD3 hyperparameters and reward weights (names as :class:`~drpc.train.TrainConfig`
    fields, ``reward.*`` as :class:`~drpc.rllib_env.reward.RewardConfig` fields)."""
    from ray import tune

    return {
        "actor_lr": tune.loguniform(1e-4, 3e-3),
        "critic_lr": tune.loguniform(1e-4, 3e-3),
        "exploration_noise": tune.uniform(0.02, 0.2),
        "gamma": tune.choice([0.9, 0.95, 0.98]),
        "batch_size": tune.choice([64, 128]),
        "reward.slo_weight": tune.uniform(1.0, 8.0),
        "reward.violation_weight": tune.uniform(0.0, 4.0),
        "reward.cost_weight": tune.uniform(0.2, 1.0),
    }


def _train_config(params: dict[str, Any], sweep: SweepConfig, out: str):
    """The :class:`~drpc.train.TrainConfig` of one trial."""
    from drpc.train import TEACHER_ENV, TrainConfig

    reward = dict(TEACHER_ENV["reward"])
    reward.update({k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("reward.")})
    plain = {k: v for k, v in params.items() if not k.startswith("reward.")}
    return TrainConfig(
        scenarios=sweep.scenarios,
        out=out,
        overwrite=True,
        iterations=sweep.max_iterations,
        time_budget_s=None,
        seed=sweep.seed,
        steps_per_iteration=sweep.steps_per_iteration,
        episode_intervals=sweep.episode_intervals,
        env_config={"reward": reward},
        validation_scenario=None,  # the trial scores itself (below); nothing to select
        eval_scenarios=(),
        progress=False,
        **plain,
    )


def _trial(params: dict[str, Any]) -> None:
    """One Tune trial: train, and report the validation score every ``validate_every``."""
    import time

    from ray import tune

    from drpc.evaluate import run_policy
    from drpc.scenario import load_scenario
    from drpc.train import snapshot_policy, train

    sweep = SweepConfig(**params.pop("_sweep"))
    out = os.path.join(tune.get_context().get_trial_dir(), "train")
    cfg = _train_config(params, sweep, out)
    scenario = load_scenario(sweep.validation_scenario)
    hpa_core_h = run_policy(scenario, "hpa", progress=False).summary["cpu_core_hours"]
    best = {"score": float("inf")}

    due = set(_report_iterations(sweep, cfg.learning_starts))

    def on_iteration(algo, iteration, flat, train_s, _best) -> float:
        started = time.monotonic()
        if iteration not in due:
            return 0.0
        summary = run_policy(scenario, snapshot_policy(algo, cfg), progress=False).summary
        score = (
            summary["slo_violation_fraction"]
            + summary["failed_request_fraction"]
            + sweep.cost_weight * summary["cpu_core_hours"] / hpa_core_h
        )
        best["score"] = min(best["score"], score)
        tune.report(
            {
                "score": score,
                "best_score": best["score"],
                "slo_violation_fraction": summary["slo_violation_fraction"],
                "cpu_core_hours": summary["cpu_core_hours"],
                "training_iteration_drpc": iteration,
                "train_s": train_s,
                "episode_return_mean": flat.get("env_runners/episode_return_mean", float("nan")),
            }
        )
        return time.monotonic() - started  # validation time is not training time

    train(cfg, on_iteration=on_iteration)


def _report_iterations(sweep: SweepConfig, learning_starts: int) -> list[int]:
    """The iterations at which a trial is scored: every ``validate_every``, once learning has
    started (before it, every trial's actor is the same untrained network: its score says
    nothing about the trial), and the last."""
    its = [
        i
        for i in range(1, sweep.max_iterations + 1)
        if i % sweep.validate_every == 0 and i * sweep.steps_per_iteration >= learning_starts
    ]
    return sorted(set(its) | {sweep.max_iterations})


def run_sweep(sweep: SweepConfig, space: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the sweep; returns one row per trial (best score first) and writes
    ``out/results.csv`` and ``out/results.json``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from drpc.train import check_scenarios

    check_scenarios(_train_config({}, sweep, "unused"))  # training windows only, fail fast
    from drpc.scenario import load_scenario

    if load_scenario(sweep.validation_scenario).spec.trace.split != "train":
        raise ValueError(
            f"validation scenario {sweep.validation_scenario!r} is not on training windows"
        )
    out = Path(sweep.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if sweep.address:
            ray.init(address=sweep.address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    param_space = dict(space if space is not None else search_space())
    param_space["_sweep"] = dataclasses.asdict(sweep)
    # ASHA counts reports (one per score); translate the iteration settings into reports.
    learning_starts = _train_config({}, sweep, "").learning_starts
    fixed = (space or {}).get("learning_starts")
    if isinstance(fixed, int | float):  # a constant in the space (a sampled one: the default)
        learning_starts = fixed
    reports = _report_iterations(sweep, int(learning_starts))
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=len(reports),
        grace_period=max(1, sum(1 for i in reports if i <= sweep.grace_period)),
        reduction_factor=sweep.reduction_factor,
    )
    tuner = tune.Tuner(
        tune.with_resources(_trial, {"cpu": sweep.cpus_per_trial}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="score",
            mode="min",
            num_samples=sweep.num_samples,
            scheduler=scheduler,
            max_concurrent_trials=sweep.max_concurrent,
            search_alg=tune.search.BasicVariantGenerator(random_state=sweep.seed),
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str(out),
            verbose=1 if sweep.progress else 0,
        ),
    )
    grid = tuner.fit()
    rows = []
    for result in grid:
        if result.metrics is None or "score" not in result.metrics:
            rows.append({"trial": Path(result.path).name, "error": str(result.error)})
            continue
        history = result.metrics_dataframe
        row = {
            "trial": Path(result.path).name,
            "best_score": float(history["score"].min()),
            "last_score": float(result.metrics["score"]),
            "iterations": int(result.metrics["training_iteration_drpc"]),
            "stopped_early": int(result.metrics["training_iteration_drpc"]) < sweep.max_iterations,
            "slo_violation_fraction": float(result.metrics["slo_violation_fraction"]),
            "cpu_core_hours": float(result.metrics["cpu_core_hours"]),
            **{k: v for k, v in result.config.items() if k != "_sweep"},
            "path": result.path,
        }
        rows.append(row)
    rows.sort(key=lambda r: r.get("best_score", float("inf")))
    _write_table(rows, out)
    return rows


def _write_table(rows: list[dict[str, Any]], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The sweep's results as a text table, best first."""
    cols = (
        "best_score",
        "iterations",
        "actor_lr",
        "critic_lr",
        "exploration_noise",
        "gamma",
        "reward.slo_weight",
        "reward.cost_weight",
    )
    lines = ["  ".join(f"{c:>18}" for c in ("trial", *cols))]
    for row in rows:
        cells = [f"{row.get('trial', '')[-18:]:>18}"]
        for c in cols:
            v = row.get(c, "")
            cells.append(f"{v:>18.4g}" if isinstance(v, float) else f"{v!s:>18}")
        lines.append("  ".join(cells))
    return "\n".join(lines)
