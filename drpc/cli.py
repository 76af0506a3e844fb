"""The ``drpc`` command line.

drpc demo                       the main job on the embedded default scenario
drpc evaluate ...               run policies on a scenario, write Parquet/JSON/PNG
drpc apps | scenarios | traces | policies     what is bundled
drpc apps generate ...          an Alibaba-like random app as YAML
drpc forecast train|report      the GRU workload forecaster
drpc train ...                  train the teacher (TD3 on RLlib) and evaluate it
drpc twin ...                   the digital twin: a Kubernetes API + Prometheus metrics
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

DEFAULT_POLICIES = [
    "hpa",
    "hpa:target=60",
    "vpa",
    "threshold",
    "static",
    "oracle",
]

EPILOG_EVALUATE = """\
policies (repeat --policy to compare several in one run; parameters after a colon):
  hpa[:target=80,behavior=default|legacy,tolerance=0.1]   Kubernetes HPA (upstream rules)
  vpa[:update_interval_s=60]                               VPA recommender + in-place resize
  threshold[:up=0.8,down=0.3,step=1,cooldown_s=60,vertical=0]
  static[:replicas=-1]       -1 = as deployed, -2 = every service at its maximum
  oracle[:slo_margin=0.9,sigmas=3]   clairvoyant lower bound on cost

examples:
  drpc evaluate --scenario default --policy hpa:target=60 --policy oracle --out runs/x
  drpc evaluate --app trainticket --trace nasa --window 1036800:1123200 \\
      --time-compression 4 --peak-utilization 0.8 --slo-ms 500 --seed 7 \\
      --policy hpa --policy vpa --out runs/y
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drpc",
        description="DRPC: learned horizontal + vertical autoscaling for microservices. "
        "Simulate a cluster, evaluate autoscalers, train the teacher and distil per-node "
        "students, serve their decisions and apply them to Kubernetes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: train the teacher briefly, distil students, compare with baselines",
        description="Train the TD3 teacher on the training windows for --train-budget seconds "
        "(drpc train), distil the bundled longer-trained teacher into per-node students "
        "(drpc distill), then evaluate both teachers, the students and the HPA, VPA, "
        "threshold, static and oracle baselines on the embedded default scenario "
        "(TrainTicket-like app, NASA-HTTP launch-day trace, evaluation split); print the "
        "comparison table and write results and plots to --out.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--scenario", default="default", help="bundled name or YAML file")
    demo.add_argument(
        "--train-budget",
        type=float,
        default=150.0,
        help="seconds of teacher training (default: 150; 0 = skip training)",
    )
    demo.add_argument(
        "--distill-budget",
        type=int,
        default=60_000,
        help="teacher-labelled samples for distilling the bundled teacher into per-node "
        "students (default: 60000; 0 = skip)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")

    ev = sub.add_parser(
        "evaluate",
        help="run policies on a scenario",
        description="Run one or more policies on a scenario (a YAML file, a bundled name, or "
        "built from flags) and write the per-interval timeline (Parquet), summary.json and "
        "PNG plots to --out. Times are in trace seconds; the SLO is the end-to-end p99.",
        epilog=EPILOG_EVALUATE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = ev.add_argument_group("scenario (a file or these flags)")
    src.add_argument("--scenario", help="bundled scenario name or YAML file")
    src.add_argument("--app", help="bundled app name or app YAML file")
    src.add_argument(
        "--trace", help="bundled trace name (nasa, worldcup98, azure_code, ...) or CSV"
    )
    src.add_argument("--window", help="START:END in trace seconds")
    src.add_argument(
        "--time-compression", type=float, default=1.0, help="trace seconds per simulated second"
    )
    src.add_argument(
        "--peak-utilization", type=float, help="window peak = this x capacity at max replicas"
    )
    src.add_argument(
        "--peak-rps", type=float, help="window peak in requests/s (instead of --peak-utilization)"
    )
    src.add_argument("--slo-ms", type=float, help="end-to-end p99 SLO for every endpoint (ms)")
    src.add_argument("--nodes", type=int, help="number of nodes (default: fit max replicas)")
    src.add_argument("--interval-s", type=float, default=15.0, help="control interval (s)")
    ev.add_argument("--seed", type=int, help="seed (overrides the scenario's)")
    ev.add_argument(
        "--policy", action="append", help="policy spec; repeat to compare (default: all baselines)"
    )
    ev.add_argument("--out", help="output folder (must be empty unless --overwrite)")
    ev.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    ev.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.add_argument("--json", action="store_true", help="print the summaries as JSON")

    _add_train_parser(sub)
    _add_distill_parser(sub)
    _add_tune_parser(sub)

    apps = sub.add_parser("apps", help="list bundled apps, or generate a random one")
    apps_sub = apps.add_subparsers(dest="apps_command", metavar="SUBCOMMAND")
    gen = apps_sub.add_parser(
        "generate",
        help="write an Alibaba-like random app (10 to 10,000 services) as YAML",
        description="Generate an app with heavy-tailed fan-out and call depth 3-6, following "
        "the Alibaba 2021 microservice trace characterisation.",
    )
    gen.add_argument("--services", type=int, required=True, help="number of services")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="YAML file to write")

    sub.add_parser(
        "twin",
        help="serve a scenario's simulation as a Kubernetes API + Prometheus /metrics (docs/twin.md)",
        add_help=False,
    )
    sub.add_parser(
        "serve",
        help="serve per-node students (or a teacher) behind POST /v1/decide with Ray Serve",
        add_help=False,
    )
    sub.add_parser(
        "controller",
        help="scale a Kubernetes app: Prometheus metrics in, /v1/decide, safe API writes out",
        add_help=False,
    )
    sub.add_parser("scenarios", help="list bundled scenarios")
    sub.add_parser("traces", help="list bundled traces with their splits")
    sub.add_parser("policies", help="list policies and their parameters")
    fc = sub.add_parser(
        "forecast",
        help="train or report the GRU workload forecaster",
        description="Train the GRU forecaster on the training windows, or report its MAPE "
        "against last-value and seasonal-naive forecasts on the evaluation windows.",
    )
    fc.add_argument("args", nargs=argparse.REMAINDER, help="arguments for drpc.workload.forecast")
    return parser


EPILOG_TRAIN = """\
output (--out):
  checkpoint/          RLlib checkpoint (save_to_path; --resume, Algorithm.from_checkpoint)
                       + drpc_policy.json and policy.pt: the exported policy
  tensorboard/         metrics per iteration:  tensorboard --logdir OUT/tensorboard
  progress.csv         headline metrics per iteration
  eval/SCENARIO/       drpc evaluate's output for the teacher beside the HPA
  train_summary.json   stopping reason, steps, wall-clock, evaluation summaries

examples:
  drpc train --time-budget 600 --out runs/teacher
  drpc train --scenario train-trainticket-nasa --algorithm sac --iterations 20 --out runs/sac
  drpc train --resume runs/teacher/checkpoint --time-budget 300 --out runs/teacher2
  drpc evaluate --scenario default --policy runs/teacher --policy hpa
"""


def _add_tune_parser(sub) -> None:
    from drpc.tune import SweepConfig

    d = SweepConfig()
    tu = sub.add_parser(
        "tune",
        help="sweep TD3 hyperparameters and reward weights with Tune (ASHA)",
        description="Sweep TD3 hyperparameters (learning rates, exploration noise, gamma, batch "
        "size) and reward weights (SLO, violation, cost) with Ray Tune. Each trial is a drpc "
        "train run scored every few iterations on a training-split validation scenario "
        "(violations + failures + cost relative to the HPA; lower is better); ASHA stops the "
        "worse trials early. Results: OUT/results.csv (best first) and TensorBoard events "
        "under OUT/sweep.",
    )
    tu.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        help=f"training scenario (repeatable; default: {d.scenarios[0]})",
    )
    tu.add_argument("--validation-scenario", default=d.validation_scenario)
    tu.add_argument("--samples", type=int, default=d.num_samples, help="trials")
    tu.add_argument("--max-iterations", type=int, default=d.max_iterations)
    tu.add_argument("--grace-period", type=int, default=d.grace_period, help="ASHA, iterations")
    tu.add_argument("--reduction-factor", type=int, default=d.reduction_factor)
    tu.add_argument("--validate-every", type=int, default=d.validate_every)
    tu.add_argument("--steps-per-iteration", type=int, default=d.steps_per_iteration)
    tu.add_argument("--episode-intervals", type=int, default=d.episode_intervals)
    tu.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial)
    tu.add_argument("--max-concurrent", type=int, default=d.max_concurrent)
    tu.add_argument("--seed", type=int, default=d.seed)
    tu.add_argument("--address", help="Ray cluster address ('auto': the running cluster)")
    tu.add_argument("--out", default=d.out, help="results folder (default: %(default)s)")
    tu.add_argument("--no-progress", action="store_true")


def _cmd_tune(args) -> int:
    from drpc.tune import SweepConfig, format_rows, run_sweep

    d = SweepConfig()
    sweep = SweepConfig(
        scenarios=tuple(args.scenarios or d.scenarios),
        validation_scenario=args.validation_scenario,
        num_samples=args.samples,
        max_iterations=args.max_iterations,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        validate_every=args.validate_every,
        steps_per_iteration=args.steps_per_iteration,
        episode_intervals=args.episode_intervals,
        cpus_per_trial=args.cpus_per_trial,
        max_concurrent=args.max_concurrent,
        seed=args.seed,
        out=args.out,
        address=args.address,
        progress=not args.no_progress,
    )
    rows = run_sweep(sweep)
    print(format_rows(rows))
    print(f"\nresults: {Path(sweep.out) / 'results.csv'}; tensorboard --logdir {sweep.out}")
    return 0


def _add_distill_parser(sub) -> None:
    from drpc.imitation.commands import add_distill_arguments

    ds = sub.add_parser(
        "distill",
        help="distil a teacher into per-node student networks and evaluate them",
        description="Distil a trained teacher (default: the bundled one) into per-deployment "
        "student networks grouped by cluster node, by DAgger (the students act, the teacher "
        "labels the states they visit) or behaviour cloning, on training windows only; save a "
        "student checkpoint, then evaluate the students beside the teacher and the HPA. "
        "`drpc evaluate --policy OUT` runs the students in the same harness.",
    )
    add_distill_arguments(ds)


def _add_train_parser(sub) -> None:
    from drpc.train import TrainConfig

    d = TrainConfig()
    tr = sub.add_parser(
        "train",
        help="train the teacher with RLlib and evaluate it",
        description="Train the central teacher (TD3 on RLlib's new API stack, per-service "
        "shared networks) on training windows of the bundled traces, save an RLlib checkpoint "
        "and an exported policy, and evaluate it beside the HPA on evaluation scenarios. "
        "Stops at the first of --iterations, --env-steps, --time-budget.",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        help=f"training scenario (train split); repeat for several (default: {d.scenarios[0]})",
    )
    tr.add_argument("--algorithm", choices=("td3", "sac", "ppo"), default=d.algorithm)
    tr.add_argument("--out", default=d.out, help=f"output folder (default: {d.out})")
    tr.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    stop = tr.add_argument_group("stopping (the first reached wins)")
    stop.add_argument("--iterations", type=int, help="algo.train() calls")
    stop.add_argument("--env-steps", type=int, help="env steps sampled (lifetime)")
    stop.add_argument(
        "--time-budget",
        type=float,
        default=d.time_budget_s,
        help=f"wall-clock seconds (default: {d.time_budget_s:g}; 0 = none)",
    )
    tr.add_argument("--seed", type=int, default=d.seed)
    tr.add_argument("--resume", help="continue from an earlier run's checkpoint/ folder")
    res = tr.add_argument_group("resources")
    res.add_argument("--num-cpus", type=int, help="CPUs of a Ray instance started here")
    res.add_argument("--num-learners", type=int, default=d.num_learners)
    res.add_argument("--num-gpus-per-learner", type=float, default=d.num_gpus_per_learner)
    res.add_argument("--num-env-runners", type=int, default=d.num_env_runners)
    res.add_argument("--num-envs-per-env-runner", type=int, default=d.num_envs_per_env_runner)
    hp = tr.add_argument_group("hyperparameters")
    hp.add_argument(
        "--episode-intervals",
        type=int,
        default=d.episode_intervals,
        help=f"control intervals per episode (default: {d.episode_intervals})",
    )
    hp.add_argument(
        "--hidden",
        default=",".join(map(str, d.hidden)),
        help="network widths, comma-separated (default: %(default)s)",
    )
    hp.add_argument(
        "--action-mode",
        choices=("target", "delta"),
        default=d.action_mode,
        help="actions as set-points (default) or as changes",
    )
    hp.add_argument(
        "--demonstrator",
        help="warm start: 'setpoint' (target mode: the best fixed set-point on the training "
        "scenarios) or a policy to clone (delta mode), e.g. oracle",
    )
    hp.add_argument("--batch-size", type=int, default=d.batch_size)
    hp.add_argument("--gamma", type=float, default=d.gamma)
    hp.add_argument("--actor-lr", type=float, default=d.actor_lr)
    hp.add_argument("--critic-lr", type=float, default=d.critic_lr)
    hp.add_argument(
        "--actor-anchor-weight",
        type=float,
        default=d.actor_anchor_weight,
        help="TD3: pull of the actor toward its slowly moving target copy (0: plain TD3)",
    )
    hp.add_argument("--exploration-noise", type=float, default=d.exploration_noise)
    hp.add_argument("--learning-starts", type=int, default=d.learning_starts)
    hp.add_argument("--updates-per-env-step", type=float, default=d.updates_per_env_step)
    hp.add_argument(
        "--env-config",
        help='JSON object of more env settings, e.g. \'{"reward": {"kind": "paper"}}\'',
    )
    hp.add_argument(
        "--validation-scenario",
        default=d.validation_scenario,
        help="training-split scenario that scores snapshots; the best is exported "
        f"(default: {d.validation_scenario}; 'none' = export the last)",
    )
    hp.add_argument(
        "--selection",
        choices=("hpa_budget", "score"),
        default=d.selection,
        help="how the exported snapshot is picked on the validation scenario: 'hpa_budget' "
        "(default): the fewest SLO-violating intervals among snapshots that use no more CPU "
        "than the HPA there; 'score': the lowest violations + 0.1 x CPU/HPA's",
    )
    hp.add_argument(
        "--population",
        type=int,
        default=d.population,
        help="train this many seeds at once (--seed, --seed+1, ...; each with the whole time "
        "budget on its share of the CPUs) and export the member whose snapshot ranks best on "
        "the validation scenario (default: 1)",
    )
    ev = tr.add_argument_group("evaluation after training")
    ev.add_argument(
        "--eval-scenario",
        action="append",
        dest="eval_scenarios",
        help=f"evaluation scenario; repeat for several (default: {d.eval_scenarios[0]})",
    )
    ev.add_argument(
        "--eval-baseline",
        action="append",
        dest="eval_baselines",
        help="baseline policy to run beside the teacher; repeat (default: hpa)",
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")


def _cmd_train(args) -> int:
    from drpc.train import TrainConfig, train

    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise ValueError(
            f"--hidden: expected comma-separated integers, got {args.hidden!r}"
        ) from None
    env_config = {}
    if args.env_config:
        try:
            env_config = json.loads(args.env_config)
        except json.JSONDecodeError as err:
            raise ValueError(f"--env-config: not JSON ({err})") from None
        if not isinstance(env_config, dict):
            raise ValueError("--env-config: expected a JSON object")
    d = TrainConfig()
    cfg = TrainConfig(
        scenarios=tuple(args.scenarios or d.scenarios),
        algorithm=args.algorithm,
        out=args.out,
        overwrite=args.overwrite,
        iterations=args.iterations,
        env_steps=args.env_steps,
        time_budget_s=args.time_budget or None,
        seed=args.seed,
        resume=args.resume,
        num_cpus=args.num_cpus,
        num_learners=args.num_learners,
        num_gpus_per_learner=args.num_gpus_per_learner,
        num_env_runners=args.num_env_runners,
        num_envs_per_env_runner=args.num_envs_per_env_runner,
        episode_intervals=args.episode_intervals,
        env_config=env_config,
        action_mode=args.action_mode,
        demonstrator=args.demonstrator,
        hidden=hidden,
        batch_size=args.batch_size,
        gamma=args.gamma,
        actor_lr=args.actor_lr,
        critic_lr=args.critic_lr,
        actor_anchor_weight=args.actor_anchor_weight,
        exploration_noise=args.exploration_noise,
        learning_starts=args.learning_starts,
        updates_per_env_step=args.updates_per_env_step,
        validation_scenario=(
            None if str(args.validation_scenario).lower() == "none" else args.validation_scenario
        ),
        selection=args.selection,
        population=args.population,
        eval_scenarios=tuple(args.eval_scenarios or d.eval_scenarios),
        eval_baselines=tuple(args.eval_baselines or d.eval_baselines),
        progress=not args.no_progress,
    )
    result = train(cfg)
    print(
        f"\ntrained {result.iterations} iterations, {result.env_steps} env steps in "
        f"{result.wall_s:.0f} s\ncheckpoint: {result.checkpoint}\n"
        f"summary: {result.out / 'train_summary.json'}",
        file=sys.stderr,
    )
    if result.validation_best is not None:
        print(validation_verdict(result.validation_best), file=sys.stderr)
    return 0


def validation_verdict(row: dict) -> str:
    """One line on whether the exported snapshot beat the HPA on the validation day (a row of
    the validation history); a warning when it did not."""
    day = (
        f"{row['violating_or_failed_fraction']:.4f} violating or failed intervals at "
        f"{row['cpu_vs_hpa']:.2f}x the HPA's CPU (the HPA: "
        f"{row['hpa_violating_or_failed_fraction']:.4f} at 1.00x)"
    )
    if row["beats_hpa"]:
        return f"validation day: the exported snapshot beats the HPA: {day}"
    return (
        f"WARNING: the exported snapshot does not beat the HPA on the validation day: {day}. "
        "Evaluate it before serving it, or train again (another --seed, --population 3, or "
        "a longer --time-budget)."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["twin"]:  # its own parser: every flag after `twin` belongs to it
        from drpc.twin.server import main as twin_main

        return int(twin_main(argv[1:], prog="drpc twin") or 0)
    if argv[:1] == ["serve"]:  # its own parser too
        from drpc.serve.cli import main as serve_main

        return int(serve_main(argv[1:]) or 0)
    if argv[:1] == ["controller"]:  # its own parser too
        from drpc.controller.cli import main as controller_main

        return int(controller_main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _dispatch(args, parser)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"drpc {args.command}: error: {msg}", file=sys.stderr)
        return 2


def _dispatch(args, parser) -> int:
    if args.command == "demo":
        return _cmd_demo(args)
    if args.command == "tune":
        return _cmd_tune(args)
    if args.command == "distill":
        from drpc.imitation.commands import run_distill

        run_distill(args)
        return 0
    if args.command == "evaluate":
        return _cmd_evaluate(args)
    if args.command == "train":
        return _cmd_train(args)
    if args.command == "apps":
        return _cmd_apps(args)
    if args.command == "scenarios":
        from drpc.scenario import bundled_scenarios, load_scenario

        for name in bundled_scenarios():
            sc = load_scenario(name)
            print(
                f"{name:<24} {sc.app.app.name:<18} {sc.n_intervals:>6} intervals  {sc.spec.description}"
            )
        return 0
    if args.command == "traces":
        from drpc.workload.traces import bundled_traces, load_trace, train_window

        for name in bundled_traces():
            tr = load_trace(name)
            lo, hi = train_window(name)
            print(
                f"{name:<52} bin {tr.bin_s:>4g} s  {tr.duration_s / 86400:>6.2f} d  "
                f"mean {tr.mean_rps:>8.2f} rps  peak {tr.peak_rps:>8.1f}  train t < {hi:g}"
            )
        return 0
    if args.command == "policies":
        from dataclasses import fields

        from drpc.policy import _REGISTRY, policy_names

        for name, help_text in policy_names().items():
            print(f"{name:<10} {help_text}")
            params = _REGISTRY[name][1]
            for f in fields(params) if params else ():
                print(f"    {f.name}={f.default!r}")
        return 0
    if args.command == "forecast":
        from drpc.workload.forecast import main as forecast_main

        return int(forecast_main(args.args) or 0)
    parser.error(f"unknown command {args.command}")
    return 2


def _cmd_demo(args) -> int:
    """Train briefly, then the fresh teacher, the bundled teacher and the baselines."""
    from drpc.teacher.checkpoint import bundled_teacher

    policies: list = []
    out = Path(args.out)
    if args.train_budget > 0:
        from drpc.teacher.policy import load_policy
        from drpc.train import TrainConfig, train

        run = train(
            TrainConfig(
                out=str(out.parent / (out.name + "-teacher")),
                overwrite=True,
                time_budget_s=args.train_budget,
                eval_scenarios=(),
                progress=not args.no_progress,
            )
        )
        policies.append(load_policy(run.checkpoint, name=f"teacher ({run.wall_s / 60:.1f} min)"))
    shipped = bundled_teacher()
    if shipped is not None:
        from drpc.teacher.policy import load_policy

        minutes = float(shipped.get("train_wall_s", 0)) / 60
        policies.append(
            load_policy(shipped["folder"], name=f"teacher ({minutes:.0f} min, bundled)")
        )
        if args.distill_budget > 0:
            policies.append(_demo_students(shipped["folder"], out, args))
    return _evaluate(
        scenario=args.scenario,
        policies=[*policies, *DEFAULT_POLICIES],
        out=args.out,
        overwrite=True,
        progress=not args.no_progress,
    )


def _demo_students(teacher: str, out: Path, args) -> object:
    """Distil the bundled teacher into per-node students (DAgger, ``drpc distill``)."""
    import torch

    from drpc.imitation.distill import DistillConfig, distill
    from drpc.imitation.policy import load_student_policy

    torch.set_num_threads(1)
    cfg = DistillConfig(
        sample_budget=args.distill_budget,
        iterations=3,
        validation_scenario=None,
        progress=not args.no_progress,
    )
    result = distill(teacher, cfg.scenarios, cfg)
    folder = result.save(out.parent / (out.name + "-students"))
    nodes = len(result.students.nodes())
    name = f"students ({nodes} nodes, {result.wall_s:.0f} s)"
    return load_student_policy(folder, name=name)


def _cmd_apps(args) -> int:
    from drpc.sim.app import bundled_apps, load_app
    from drpc.sim.graph import compile_app

    if args.apps_command == "generate":
        from drpc.sim.generate import main as generate_main

        return int(
            generate_main(
                ["--services", str(args.services), "--seed", str(args.seed), "--out", args.out]
            )
            or 0
        )
    for name in bundled_apps():
        app = compile_app(load_app(name))
        print(
            f"{name:<20} {app.n_services:>4} services  {app.n_endpoints:>3} endpoints  "
            f"capacity at max replicas {app.capacity_rps():>8.1f} req/s"
        )
    return 0


def _cmd_evaluate(args) -> int:
    from drpc.scenario import load_scenario, scenario_from_flags

    if args.scenario:
        flags = [
            f
            for f in ("app", "trace", "window", "peak_utilization", "peak_rps", "slo_ms", "nodes")
            if getattr(args, f) is not None
        ]
        if flags:
            raise ValueError(f"--scenario cannot be combined with --{flags[0].replace('_', '-')}")
        scenario = load_scenario(args.scenario)
    else:
        if not args.app or not args.trace:
            raise ValueError("give --scenario FILE, or at least --app and --trace")
        scenario = scenario_from_flags(
            app=args.app,
            trace=args.trace,
            window=args.window,
            peak_utilization=args.peak_utilization,
            peak_rps=args.peak_rps,
            time_compression=args.time_compression,
            slo_ms=args.slo_ms,
            seed=args.seed or 0,
            n_nodes=args.nodes,
            interval_s=args.interval_s,
        )
    if args.seed is not None and args.scenario:
        from dataclasses import replace

        scenario = replace(scenario, seed=args.seed)
    return _evaluate(
        scenario=scenario,
        policies=args.policy or DEFAULT_POLICIES,
        out=args.out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        plots=not args.no_plots,
        as_json=args.json,
    )


def _evaluate(scenario, policies, out, overwrite, progress, plots=True, as_json=False) -> int:
    from drpc.evaluate import evaluate, format_table
    from drpc.policy import make_policy
    from drpc.scenario import load_scenario

    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    built = [p if hasattr(p, "act") else make_policy(p) for p in policies]  # fail fast
    print(
        f"scenario {scenario.name}: app {scenario.app.app.name} ({scenario.app.n_services} services), "
        f"{scenario.n_intervals} intervals of {scenario.config.interval_s:g} s, "
        f"peak {scenario.load_rps.max():.1f} req/s, {scenario.config.n_nodes} nodes, seed {scenario.seed}",
        file=sys.stderr,
    )
    results = evaluate(scenario, built, out, progress=progress, overwrite=overwrite, plots=plots)
    if as_json:
        print(json.dumps([r.summary for r in results], indent=2))
    else:
        print(format_table(results))
    if out:
        print(
            f"\nresults: {Path(out) / 'summary.json'}; plot: {Path(out) / 'comparison.png'}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
