"""``drpc controller``: run the live controller (``main(argv)``).

Flags override the YAML config (``--config``). Examples::

    drpc controller --config controller.yaml
    drpc controller --prometheus-url http://127.0.0.1:9090 --policy-url http://127.0.0.1:8000 \\
        --kubeconfig twin.kubeconfig --namespace trainticket --dry-run --once

Exit status: 0 (stopped by SIGINT/SIGTERM, or ``--once`` done), 2 (bad configuration).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from drpc.controller.apply import KubeApplier, load_kube_clients
from drpc.controller.audit import AuditLog
from drpc.controller.config import ConfigError, ControllerConfig, load_config
from drpc.controller.loop import Controller
from drpc.controller.metrics import PrometheusSource
from drpc.controller.policy_client import PolicyClient

__all__ = ["build_parser", "main", "build_controller"]


def build_parser(prog: str = "drpc controller") -> argparse.ArgumentParser:
    """The ``drpc controller`` argument parser."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run the DRPC autoscaling controller: every sync period it reads the "
        "services' metrics from Prometheus (PromQL per field configurable; defaults for "
        "cAdvisor, kube-state-metrics and Istio), asks the policy endpoint (POST /v1/decide) "
        "for replicas and CPU/memory, passes them through the safety rules (min/max, step "
        "limits, cooldown, scale-down stabilisation, namespace allowlist) and applies them "
        "through the Deployment scale and Pod resize subresources, with one JSON audit line "
        "per action. Stale metrics: hold and report. Policy down: the HPA's rules decide "
        "replicas. --dry-run decides and logs without writing.",
    )
    p.add_argument("--config", metavar="YAML", help="controller config (ControllerConfig fields)")
    p.add_argument("--prometheus-url", help="Prometheus base URL")
    p.add_argument("--policy-url", help="policy endpoint base URL (POST /v1/decide)")
    p.add_argument("--token-env", help="environment variable with the policy bearer token")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--kubeconfig", help="kubeconfig path (default: the config's, else in-cluster)"
    )
    where.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    p.add_argument("--namespace", action="append", dest="namespaces", metavar="NS",
                   help="allowed namespace (repeatable; replaces the config's allowlist)")  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true", default=None, help="decide and log, apply nothing"
    )
    p.add_argument("--once", action="store_true", help="run one sync, print its report, exit")
    p.add_argument("--metrics-port", type=int, help="port of the controller's /metrics (-1: off)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p


def build_controller(config: ControllerConfig) -> Controller:
    """Wire the parts of a :class:`Controller` from ``config``."""
    audit = AuditLog(config.audit_log_path)
    apps, core = load_kube_clients(config.kubeconfig, config.k8s_timeout_s)
    applier = KubeApplier(apps, core, config, audit)
    token = os.environ.get(config.token_env) or None
    policy = PolicyClient(
        config.policy_url, token, timeout_s=config.policy_timeout_s,
        retries=config.policy_retries, backoff_s=config.policy_backoff_s,
    )  # fmt: skip
    return Controller(config, PrometheusSource(config), policy, applier, audit)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drpc controller`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(
            args.config,
            prometheus_url=args.prometheus_url,
            policy_url=args.policy_url,
            token_env=args.token_env,
            kubeconfig=args.kubeconfig,
            namespaces=args.namespaces,
            dry_run=args.dry_run,
            metrics_port=args.metrics_port,
        )
        if args.in_cluster:
            config.kubeconfig = None
        if not config.namespaces:
            raise ConfigError("the namespace allowlist is empty: give --namespace or namespaces:")
    except (ConfigError, OSError) as err:
        print(f"drpc controller: {err}", file=sys.stderr)
        return 2
    controller = build_controller(config)
    try:
        if args.once:
            report = controller.sync_once()
            print(json.dumps({
                "source": report.source, "hold_reason": report.hold_reason, "held": report.held,
                "actions": [{"service": a.service, "knob": a.knob, "old": a.old, "new": a.new,
                             "result": r} for a, r in report.actions],
                "duration_s": round(report.duration_s, 3),
            }, indent=1))  # fmt: skip
            return 0
        port = controller.serve_metrics()
        logging.getLogger(__name__).info("metrics on :%s; dry_run=%s", port, config.dry_run)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        controller.run(stop)
        return 0
    finally:
        controller.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
