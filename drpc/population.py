"""Population training: several independent teacher trainings at once, the best one exported.

A 14-minute TD3 run on 2 cores beats the HPA on ``default`` in about half of the seeds, and
its exported snapshot's verdict on the validation day (training data) mostly tells which
half: a snapshot that beat the HPA there beat it on ``default`` in 9 of 11 runs measured, one
that did not in 3 of 13 (the README's *Training wall-clock*). So ``drpc train --population
N`` trains ``N`` seeds (``seed``, ``seed + 1``, ...) concurrently, as Ray tasks that share the machine's CPUs, each
with the full time budget on its own clock, and exports the member snapshot that ranks best
by the run's ``selection`` rule on the validation scenario(s). Wall-clock stays the budget;
each member gets ``1/N`` of the CPUs, so fewer env steps.

Layout of ``out``: ``member-<i>/`` (each member's whole ``drpc train`` output),
``checkpoint/`` (a copy of the chosen member's), ``population.json`` (every member's best
validated snapshot and which one was chosen), ``eval/`` and ``train_summary.json`` (as for
one run, plus ``population``).

Members run on the machine (or Ray cluster) that ``ray.init`` connects to; the copy of the
chosen checkpoint needs their output folders on a filesystem this process sees (one machine,
or a shared one).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from drpc.train import (
    TrainConfig,
    TrainResult,
    _init_ray,
    _prepare_out,
    evaluate_checkpoint,
    snapshot_rank,
    train,
)


def member_configs(cfg: TrainConfig, out: Path) -> list[TrainConfig]:
    """One config per member: seeds ``cfg.seed + i``, outputs ``out/member-<i>``, no
    evaluation (only the chosen member is evaluated) and no progress bars."""
    return [
        dataclasses.replace(
            cfg,
            population=1,
            seed=cfg.seed + i,
            out=str(out / f"member-{i}"),
            overwrite=True,
            eval_scenarios=(),
            progress=False,
        )
        for i in range(cfg.population)
    ]


def _train_member(cfg: TrainConfig) -> dict[str, Any]:
    """Run one member (in a Ray worker) and say what it produced."""
    import torch

    torch.set_num_threads(1)
    result = train(cfg)
    return {
        "seed": cfg.seed,
        "out": str(result.out),
        "checkpoint": str(result.checkpoint),
        "iterations": result.iterations,
        "env_steps": result.env_steps,
        "train_wall_s": round(result.wall_s, 1),
        "validation_best": result.validation_best,
    }


def choose_member(cfg: TrainConfig, members: list[dict[str, Any]]) -> int:
    """Index of the member whose exported snapshot ranks best by ``cfg.selection`` (the rule
    that picks snapshots within one run); ties go to the lower seed."""
    return min(
        range(len(members)),
        key=lambda i: (
            snapshot_rank(cfg.selection, members[i]["validation_best"]),
            members[i]["seed"],
        ),
    )


def train_population(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.population`` members concurrently and export the best (module docstring)."""
    import ray
    from tqdm.auto import tqdm

    if cfg.population < 2:
        raise ValueError(f"train_population needs population >= 2, got {cfg.population}")
    out = _prepare_out(cfg)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    _init_ray(cfg.num_cpus)
    cpus = float(ray.available_resources().get("CPU", 1.0))
    task = ray.remote(num_cpus=cpus / cfg.population)(_train_member)
    started = time.monotonic()
    pending = [task.remote(c) for c in member_configs(cfg, out)]
    refs = list(pending)
    # the bar follows the members' shared wall-clock budget (or just counts finished members)
    total = cfg.time_budget_s if cfg.time_budget_s and not cfg.iterations else None
    bar = tqdm(total=total, desc=f"train x{cfg.population}", unit="s" if total else "member",
               disable=not cfg.progress, dynamic_ncols=True)  # fmt: skip
    try:
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            if total:
                bar.n = min(time.monotonic() - started, total)
            else:
                bar.n = cfg.population - len(pending)
            bar.refresh()
        members = ray.get(refs)
    finally:
        bar.close()
    wall_s = time.monotonic() - started
    chosen = choose_member(cfg, members)
    checkpoint = out / "checkpoint"
    shutil.copytree(members[chosen]["checkpoint"], checkpoint)
    population = {"chosen": chosen, "wall_s": round(wall_s, 1), "members": members}
    (out / "population.json").write_text(json.dumps(population, indent=2))
    best = members[chosen]
    if cfg.progress:
        print(f"population: exported member {chosen} (seed {best['seed']}) of {len(members)}")
    evaluations = evaluate_checkpoint(checkpoint, cfg, out)
    summary = {
        "checkpoint": str(checkpoint),
        "stopped_by": "population",
        "iterations": best["iterations"],
        "env_steps": best["env_steps"],
        "train_wall_s": round(wall_s, 1),
        "validation": json.loads((Path(best["out"]) / "train_summary.json").read_text())[
            "validation"
        ],
        "population": population,
        "evaluations": evaluations,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(
        out,
        checkpoint,
        best["iterations"],
        best["env_steps"],
        wall_s,
        evaluations,
        best["validation_best"],
    )
