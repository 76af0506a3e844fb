"""The teacher against the best HPA: train with `drpc train`, then compare on evaluation windows.

    python bench/teacher_vs_hpa.py --out bench/results/teacher_vs_hpa.json      # ~25 min, 2 cores
    python bench/teacher_vs_hpa.py --checkpoint drpc/data/teacher --out x.json   # evaluate only

1. Trains the teacher with :func:`drpc.train.train` (the same code as ``drpc train``; the
   settings are recorded in the JSON) for ``--time-budget`` seconds of training wall-clock;
   ``--set FIELD=VALUE`` changes a :class:`~drpc.train.TrainConfig` field (e.g.
   ``--set actor_lr=1e-4 --set 'env_config={"jumps_per_hour": 2}'``).
   Every ``--probe-every`` seconds of training it evaluates, on the default scenario, the
   actor that training would export if stopped then (the best snapshot so far on the
   training-split validation scenario; probe time is not training time) and records when it
   first beats the best HPA there; it also scores the current actor (the snapshot just
   validated), to study selection rules. Probes only report: nothing is selected on them.
2. Evaluates the final teacher, the HPA at CPU targets 50/60/70/80% and the oracle on the
   default scenario and on other bundled apps (``--scenario``; the same teacher, trained on
   TrainTicket only, runs unchanged on apps of other sizes; ``--scenario-checkpoint`` gives a
   scenario its own, e.g. per-app, teacher).
3. Per scenario: the best HPA is the one with the fewest SLO-violating intervals (ties: the
   fewest core-hours); the teacher *beats* it when its ``slo_violation_fraction`` is lower and
   its ``cpu_core_hours`` are not higher. Also the teacher's core-hours relative to the oracle.
4. ``--calibrate SCENARIO=VALIDATION`` (repeat): before evaluating SCENARIO, choose the
   teacher's ``utilization_scale`` (an operator's margin on the learned CPU-utilisation
   set-points, see ``ActionMapping.with_utilization_scale``) on the VALIDATION scenario, a
   training-split window: among ``--scales``, the one with the fewest violations at no more
   core-hours than the best HPA there (ties: the fewest core-hours; none: 1). The evaluation
   window only ever sees the chosen scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HPA_TARGETS = (50, 60, 70, 80)
SCENARIOS = (
    "default",
    "online-boutique-alibaba",
    "hotel-reservation-azure-code",
    "sock-shop-azure-conv",
)


def best_hpa(summaries: dict[str, dict[str, Any]], window_s: int | None = None) -> str:
    """Name of the HPA run with the fewest violations, then the fewest core-hours, among the
    HPAs with the upstream default scale-down window (or, with ``window_s``, that window)."""
    tag = f",scale_down_window_s={window_s}"
    hpas = [
        k
        for k in summaries
        if k.startswith("hpa") and ((tag in k) if window_s is not None else ("window" not in k))
    ]
    return min(
        hpas,
        key=lambda k: (summaries[k]["slo_violation_fraction"], summaries[k]["cpu_core_hours"]),
    )


def beats(teacher: dict[str, Any], hpa: dict[str, Any]) -> bool:
    return (
        teacher["slo_violation_fraction"] < hpa["slo_violation_fraction"]
        and teacher["cpu_core_hours"] <= hpa["cpu_core_hours"]
    )


def dominates(teacher: dict[str, Any], hpa: dict[str, Any]) -> bool:
    """No more violations and no more core-hours, and fewer of one (an HPA with no violations
    can only be matched on violations, so beaten on CPU)."""
    t_v, h_v = teacher["slo_violation_fraction"], hpa["slo_violation_fraction"]
    t_c, h_c = teacher["cpu_core_hours"], hpa["cpu_core_hours"]
    return t_v <= h_v and t_c <= h_c and (t_v < h_v or t_c < h_c)


def select_scale(table: dict[str, dict[str, Any]], scales: dict[str, float]) -> float:
    """The utilisation scale whose run (``scales``: run name -> scale) has the fewest
    violations at no more core-hours than the best HPA in ``table``; ties: fewest core-hours;
    1.0 when none qualifies."""
    budget = table[best_hpa(table)]["cpu_core_hours"]
    ok = [k for k in scales if table[k]["cpu_core_hours"] <= budget]
    if not ok:
        return 1.0
    pick = min(ok, key=lambda k: (table[k]["slo_violation_fraction"], table[k]["cpu_core_hours"]))
    return scales[pick]


def calibrate(
    validation: str, checkpoint: str, scales: list[float], progress: bool = False
) -> dict[str, Any]:
    """Run the HPAs and the teacher at every scale on ``validation``; pick the scale."""
    from drpc.evaluate import SUMMARY_KEYS, run_policy
    from drpc.policy import make_policy
    from drpc.scenario import load_scenario

    scenario = load_scenario(validation)
    runs = {
        spec: run_policy(scenario, spec, progress=progress).summary
        for spec in [f"hpa:target={t}" for t in HPA_TARGETS]
    }
    named = {f"teacher:utilization_scale={x:g}": x for x in scales}
    for name, x in named.items():
        policy = make_policy(f"{checkpoint}:utilization_scale={x:g}")
        runs[name] = run_policy(scenario, policy, progress=progress).summary
    table = {k: {m: v[m] for m in SUMMARY_KEYS} for k, v in runs.items()}
    return {"validation": validation, "policies": table, "scale": select_scale(table, named)}


def compare(scenario_name: str, teacher_policy: Any, progress: bool = False) -> dict[str, Any]:
    """Teacher, HPA at every target and the oracle on one scenario."""
    from drpc.evaluate import SUMMARY_KEYS, run_policy
    from drpc.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    specs = [f"hpa:target={t}" for t in HPA_TARGETS] + ["oracle"]
    window_s = teacher_window_s(teacher_policy, scenario.config.interval_s)
    if window_s is not None:
        specs += [f"hpa:target={t},scale_down_window_s={window_s}" for t in HPA_TARGETS]
    runs = {spec: run_policy(scenario, spec, progress=progress).summary for spec in specs}
    runs["teacher"] = run_policy(scenario, teacher_policy, progress=progress).summary
    table = {k: {m: v[m] for m in SUMMARY_KEYS} for k, v in runs.items()}
    hpa = best_hpa(table)
    row = {
        "app": scenario.app.app.name,
        "services": scenario.app.n_services,
        "intervals": scenario.n_intervals,
        "policies": table,
        "best_hpa": hpa,
        "teacher_beats_best_hpa": beats(table["teacher"], table[hpa]),
        "teacher_core_hours_vs_oracle": table["teacher"]["cpu_core_hours"]
        / table["oracle"]["cpu_core_hours"],
    }
    if window_s is not None:
        same = best_hpa(table, window_s)
        row["teacher_scale_down_window_s"] = window_s
        row["best_hpa_same_window"] = same
        row["teacher_beats_best_hpa_same_window"] = beats(table["teacher"], table[same])
        row["teacher_dominates_best_hpa_same_window"] = dominates(table["teacher"], table[same])
    return row


def teacher_window_s(policy: Any, interval_s: float) -> int | None:
    """The teacher's scale-down stabilisation window in seconds when it differs from the
    HPA's default 300 s (then the HPAs are also run with it, like for like), else None."""
    mapping = getattr(policy, "mapping", None)
    if mapping is None or getattr(mapping, "mode", None) != "target":
        return None
    from drpc.baselines.hpa import DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S

    window_s = int(round(mapping.scale_down_window * interval_s))
    return None if window_s == DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S else window_s


def train_overrides(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` items as TrainConfig keyword arguments (VALUE parsed as JSON if it can
    be; lists become tuples); an unknown field is an error that lists the known ones."""
    import dataclasses

    from drpc.train import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in known:
            raise SystemExit(
                f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(known)}"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def git_commit() -> str | None:
    """The checkout's commit (with "+dirty" if it has uncommitted changes), or None."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def probe_default(policy: Any) -> dict[str, float]:
    from drpc.evaluate import run_policy
    from drpc.scenario import load_scenario

    s = run_policy(load_scenario("default"), policy, progress=False).summary
    return {k: s[k] for k in ("slo_violation_fraction", "cpu_core_hours")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="bench/results/teacher_vs_hpa.json")
    parser.add_argument("--time-budget", type=float, default=840.0, help="training seconds")
    parser.add_argument(
        "--probe-every",
        type=float,
        default=60.0,
        help="training seconds (as drpc train's validate_every_s, to probe each snapshot)",
    )
    parser.add_argument(
        "--label",
        default="",
        help="a name for the code or setup the run measures, recorded in the result; "
        "teacher_reliability.py groups runs by it and their settings",
    )
    parser.add_argument(
        "--keep-snapshots",
        action="store_true",
        help="save each probed current actor's weights under TRAIN_OUT/snapshots/ (to study "
        "collapses: load them into the run's checkpoint policy)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", action="append", help="evaluation scenarios")
    parser.add_argument("--checkpoint", help="evaluate this checkpoint instead of training")
    parser.add_argument("--train-out", help="keep the training run here (default: temporary)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainConfig field for the training run, e.g. actor_lr=3e-4 "
        "(VALUE is read as JSON, else as a string); repeat",
    )
    parser.add_argument(
        "--scenario-checkpoint",
        action="append",
        default=[],
        metavar="SCENARIO=DIR",
        help="evaluate SCENARIO with this (e.g. per-app) teacher instead; repeat",
    )
    parser.add_argument(
        "--calibrate",
        action="append",
        default=[],
        metavar="SCENARIO=VALIDATION",
        help="choose the teacher's utilization_scale for SCENARIO on VALIDATION; repeat",
    )
    parser.add_argument(
        "--scales",
        default="1,0.9,0.8,0.7,0.6,0.5",
        help="utilization scales --calibrate tries (comma-separated)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import torch

    from drpc.evaluate import run_policy
    from drpc.policy import make_policy
    from drpc.teacher.policy import load_policy
    from drpc.train import TrainConfig, snapshot_policy, train

    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "commit": git_commit(),
        "label": args.label,
    }
    hpa_default = None
    if args.checkpoint:
        policy = load_policy(args.checkpoint, name="teacher")
        result["checkpoint"] = args.checkpoint
    else:
        from drpc.scenario import load_scenario

        default = load_scenario("default")
        specs = [f"hpa:target={t}" for t in HPA_TARGETS]
        hpas = {spec: run_policy(default, spec, progress=False).summary for spec in specs}
        hpa_default = hpas[best_hpa(hpas)]
        cfg = TrainConfig(
            out=args.train_out or tempfile.mkdtemp(prefix="drpc-bench-"),
            overwrite=True,
            time_budget_s=args.time_budget,
            seed=args.seed,
            eval_scenarios=("default",),
            eval_baselines=(),
            progress=False,
            **train_overrides(args.set),
        )
        curve: list[dict[str, Any]] = []
        last = {"probe_at": 0.0}

        def on_iteration(algo: Any, iteration: int, flat: dict, train_s: float, best_state):
            if train_s - last["probe_at"] < args.probe_every:
                return 0.0
            started = time.monotonic()
            last["probe_at"] = train_s
            # the current actor (the snapshot just validated), to study selection rules
            now = snapshot_policy(algo, cfg)
            current = probe_default(now)
            # what `drpc train` would export if stopped now: the best validated snapshot,
            # often the current one (then its probe is the same, not run twice)
            probe = current
            weights = now.actor.state_dict()
            if best_state is not None and not all(
                torch.equal(best_state[k], weights[k]) for k in weights
            ):
                exported = snapshot_policy(algo, cfg)
                exported.actor.load_state_dict(best_state)
                probe = probe_default(exported)
            if args.keep_snapshots:
                folder = Path(cfg.out) / "snapshots"
                folder.mkdir(exist_ok=True)
                torch.save(weights, folder / f"actor_{train_s:07.1f}s.pt")
            row = {
                "train_s": round(train_s, 1),
                "env_steps": int(flat.get("num_env_steps_sampled_lifetime", 0)),
                **probe,
                "beats_best_hpa": beats(probe, hpa_default),
                "current": {**current, "beats_best_hpa": beats(current, hpa_default)},
            }
            curve.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            return time.monotonic() - started

        # with --set population=N the members train in Ray workers: no probes
        run = train(cfg, on_iteration=None if cfg.population > 1 else on_iteration)
        summary = json.loads((run.out / "train_summary.json").read_text())
        first = next((r for r in curve if r["beats_best_hpa"]), None)
        result["training"] = {
            "command": f"drpc train --time-budget {args.time_budget:g} --seed {args.seed}"
            + "".join(
                f" --{n.replace('_', '-')} {shlex.quote(v)}"
                for n, _, v in (i.partition("=") for i in args.set)
            ),
            "config": json.loads((run.out / "train_config.json").read_text()),
            "train_wall_s": round(run.wall_s, 1),
            "env_steps": run.env_steps,
            "probe_curve": curve,
            "first_beats_best_hpa_train_s": first["train_s"] if first else None,
            "best_hpa_default": hpa_default,
            # the snapshots scored on the validation day, and which one was exported
            "validation": summary.get("validation"),
            # with --set population=N: every member's best validated snapshot, and the choice
            "population": summary.get("population"),
        }
        policy = load_policy(run.checkpoint, name="teacher")
    per_scenario = dict(item.split("=", 1) for item in args.scenario_checkpoint)
    to_calibrate = dict(item.split("=", 1) for item in args.calibrate)
    scales = [float(x) for x in args.scales.split(",")]
    result["scenarios"] = {}
    for name in args.scenario or SCENARIOS:
        checkpoint = per_scenario.get(name, args.checkpoint or str(run.checkpoint))
        calibration = None
        if name in to_calibrate:
            calibration = calibrate(to_calibrate[name], checkpoint, scales)
        scale = calibration["scale"] if calibration else 1.0
        teacher = policy
        if name in per_scenario or scale != 1.0:
            teacher = make_policy(f"{checkpoint}:utilization_scale={scale:g}")
            teacher.name = "teacher"
        row = compare(name, teacher)
        row["teacher_checkpoint"] = per_scenario.get(name, "the trained (or --checkpoint) teacher")
        row["utilization_scale"] = scale
        row["calibration"] = calibration
        result["scenarios"][name] = row
        t, h = row["policies"]["teacher"], row["policies"][row["best_hpa"]]
        print(
            f"{name:<30} teacher viol {t['slo_violation_fraction']:.4f} core-h "
            f"{t['cpu_core_hours']:.2f} | best {row['best_hpa']} viol "
            f"{h['slo_violation_fraction']:.4f} core-h {h['cpu_core_hours']:.2f} | "
            f"beats: {row['teacher_beats_best_hpa']} | vs oracle "
            f"{row['teacher_core_hours_vs_oracle']:.2f}x | scale {row['utilization_scale']:g}",
            file=sys.stderr,
        )
        if "best_hpa_same_window" in row:
            h = row["policies"][row["best_hpa_same_window"]]
            print(
                f"{'':<30} same window: best {row['best_hpa_same_window']} viol "
                f"{h['slo_violation_fraction']:.4f} core-h {h['cpu_core_hours']:.2f} | beats: "
                f"{row['teacher_beats_best_hpa_same_window']} | dominates: "
                f"{row['teacher_dominates_best_hpa_same_window']}",
                file=sys.stderr,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
