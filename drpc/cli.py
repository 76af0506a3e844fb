"""The ``drpc`` command line.

drpc demo                       the main job on the embedded default scenario
drpc evaluate ...               run policies on a scenario, write Parquet/JSON/PNG
drpc apps | scenarios | traces | policies     what is bundled
drpc apps generate ...          an Alibaba-like random app as YAML
drpc forecast train|report      the GRU workload forecaster
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
        "Simulate a cluster, evaluate autoscalers, and (later) train and serve RL policies.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: evaluate every baseline on the default scenario",
        description="Evaluate the HPA, VPA, threshold, static and oracle baselines on the "
        "embedded default scenario (TrainTicket-like app, NASA-HTTP launch-day trace), print "
        "the comparison table and write results and plots to --out.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--scenario", default="default", help="bundled name or YAML file")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["twin"]:  # its own parser: every flag after `twin` belongs to it
        from drpc.twin.server import main as twin_main

        return int(twin_main(argv[1:], prog="drpc twin") or 0)
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
        return _evaluate(
            scenario=args.scenario,
            policies=DEFAULT_POLICIES,
            out=args.out,
            overwrite=True,
            progress=not args.no_progress,
        )
    if args.command == "evaluate":
        return _cmd_evaluate(args)
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
    built = [make_policy(p) for p in policies]  # fail fast on a bad spec
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
