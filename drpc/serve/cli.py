"""``drpc serve``: run the decide endpoint (:mod:`drpc.serve.app`) on Ray Serve.

    export DRPC_SERVE_TOKEN=$(openssl rand -hex 32)
    drpc serve --checkpoint runs/students --port 8000
    drpc serve --config deploy/serve/serve_config.yaml      # a Serve config file instead

Starts a local Ray (or joins ``--address``), starts Serve's HTTP proxy on ``--host:--port``,
deploys the app and blocks until interrupted. With ``--config`` the app is deployed from the
config file exactly as ``serve deploy`` would (its ``http_options`` give host and port unless
the flags are given), so a later ``user_config`` change there reloads in place.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drpc serve", description="Serve POST /v1/decide (student or teacher checkpoint)."
    )
    p.add_argument(
        "--checkpoint",
        help="student checkpoint folder (drpc distill --out) or a teacher checkpoint "
        "(default: the bundled teacher)",
    )
    p.add_argument("--app", help="bundled app name or app YAML (if not found from the checkpoint)")
    p.add_argument("--config", help="a Ray Serve config YAML (deploy/serve/serve_config.yaml)")
    p.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    p.add_argument(
        "--token-env",
        default="DRPC_SERVE_TOKEN",
        help="environment variable holding the bearer token of /v1/decide",
    )
    p.add_argument(
        "--insecure-no-auth", action="store_true", help="serve without a token (loopback only)"
    )
    p.add_argument("--max-body-bytes", type=int, default=None, help="413 above this (8 MiB)")
    p.add_argument("--max-batch-size", type=int, default=None, help="snapshots per agent batch")
    p.add_argument("--batch-wait-timeout-s", type=float, default=None)
    p.add_argument(
        "--utilization-scale",
        type=float,
        default=None,
        help="operator's margin: learned CPU-utilisation set-points times this (0.9: 10%% more "
        "headroom; bench/teacher_vs_hpa.py --calibrate picks one per app on training windows)",
    )
    p.add_argument(
        "--placement",
        choices=("none", "label", "resource", "slot"),
        default=None,
        help="where NodeAgents run (see drpc.serve.app)",
    )
    p.add_argument("--address", default=None, help="Ray cluster address (default: start one)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a locally started Ray")
    p.add_argument("--name", default="drpc", help="Serve application name")
    p.add_argument("--check", action="store_true", help="deploy, answer /healthz, then exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = None
    if args.config:
        import yaml

        with open(args.config) as f:
            config = yaml.safe_load(f)
        http = config.get("http_options") or {}
        host = args.host or http.get("host", "127.0.0.1")
        port = args.port or int(http.get("port", 8000))
        app_args = (config.get("applications") or [{}])[0].get("args") or {}
        token_env = app_args.get("token_env", args.token_env)
        insecure = bool(app_args.get("insecure_no_auth", False))
    else:
        host, port = args.host or "127.0.0.1", args.port or 8000
        token_env, insecure = args.token_env, args.insecure_no_auth
    if not insecure and not os.environ.get(token_env):
        print(
            f"drpc serve: set the bearer token in ${token_env} (or pass --insecure-no-auth)",
            file=sys.stderr,
        )
        return 2

    import ray
    from ray import serve

    ray.init(
        address=args.address,
        num_cpus=args.num_cpus if args.address is None else None,
        include_dashboard=False,
    )
    serve.start(http_options={"host": host, "port": port})
    try:
        if config is not None:
            from ray.serve.context import _get_global_client
            from ray.serve.schema import ServeDeploySchema

            _get_global_client().deploy_apps(ServeDeploySchema(**config), _blocking=True)
        else:
            from drpc.serve.app import build_app

            app = build_app(
                {
                    "checkpoint": args.checkpoint,
                    "app": args.app,
                    "token_env": args.token_env,
                    "insecure_no_auth": args.insecure_no_auth,
                    "max_body_bytes": args.max_body_bytes,
                    "max_batch_size": args.max_batch_size,
                    "batch_wait_timeout_s": args.batch_wait_timeout_s,
                    "placement": args.placement,
                    "utilization_scale": args.utilization_scale,
                }
            )
            serve.run(app, name=args.name, route_prefix="/")
        url = f"http://{host}:{port}"
        print(f"drpc serve: POST {url}/v1/decide (GET /v1/policy, /healthz, /metrics, /docs)")
        if args.check:
            import urllib.request

            with urllib.request.urlopen(url + "/healthz", timeout=30) as r:
                print(r.read().decode())
            return 0
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        serve.shutdown()
        ray.shutdown()
