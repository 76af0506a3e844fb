"""``drpc twin``: a scenario's simulation served as a Kubernetes cluster, and its CLI.

:class:`Twin` wires the pieces: a :class:`~drpc.twin.state.TwinState` (the simulation
thread), the HTTPS Kubernetes API (:mod:`drpc.twin.k8s` over :mod:`drpc.twin.http`) with a
fresh certificate (:mod:`drpc.twin.tls`) and bearer token, the plain-HTTP ``/metrics``
endpoint (:mod:`drpc.twin.metrics`), and a kubeconfig that kubectl and the ``kubernetes``
Python client use as is. :func:`main` is the command line (``python -m drpc.twin``).
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from drpc.scenario import Scenario, ScenarioError, load_scenario
from drpc.twin.http import ApiServer, MetricsServer
from drpc.twin.k8s import KubeApi
from drpc.twin.metrics import render
from drpc.twin.state import TwinOptions, TwinState
from drpc.twin.tls import make_certificates, server_context

__all__ = ["Twin", "build_parser", "main", "write_kubeconfig", "kubeconfig_dict"]

log = logging.getLogger("drpc.twin")

CONTEXT_NAME = "drpc-twin"


def kubeconfig_dict(server_url: str, ca_pem: bytes, token: str, namespace: str) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context (``drpc-twin``)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT_NAME, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write ``config`` to ``path`` atomically, readable by the owner only (it holds a token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.replace(tmp, path)


class Twin:
    """The digital twin: start it, point clients at :attr:`kubeconfig_path` / :attr:`metrics_url`.

    Args:
        scenario: the scenario to simulate.
        host: address to bind both servers to (loopback by default).
        port: HTTPS API port (0: any free port).
        metrics_port: ``/metrics`` port (0: any free port; None: no metrics server).
        token: bearer token clients must send (random when None).
        kubeconfig_path: where to write the kubeconfig (None: do not write one).
        options: speed, loop, namespace (see :class:`~drpc.twin.state.TwinOptions`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        host: str = "127.0.0.1",
        port: int = 6443,
        metrics_port: int | None = 9100,
        token: str | None = None,
        kubeconfig_path: str | Path | None = None,
        options: TwinOptions | None = None,
    ):
        if token is not None and (not token or any(c.isspace() for c in token)):
            raise ValueError("token must be non-empty and contain no whitespace")
        self.scenario = scenario
        self.host = host
        self.token = token or secrets.token_urlsafe(32)
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path is not None else None
        self.state = TwinState(scenario, options)
        self._port = port
        self._metrics_port = metrics_port
        self._api: ApiServer | None = None
        self._metrics: MetricsServer | None = None
        self.ca_pem = b""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Twin:
        """Bind the servers, write the kubeconfig and start the simulation."""
        certs = make_certificates([self.host])
        self.ca_pem = certs.ca_pem
        try:
            api = KubeApi(self.state, self.token, server_address="")
            self._api = ApiServer(self.host, self._port, api, server_context(certs))
            api.server_address = f"{self._url_host}:{self._api.port}"
            if self._metrics_port is not None:
                self._metrics = MetricsServer(
                    self.host, self._metrics_port, lambda: render(self.state.metrics_frame())
                )
            if self.kubeconfig_path is not None:
                write_kubeconfig(self.kubeconfig_path, self.kubeconfig())
        except BaseException:
            self._close_servers()
            raise
        self._api.start()
        if self._metrics is not None:
            self._metrics.start()
        self.state.start()
        return self

    def stop(self) -> None:
        """Stop the simulation and both servers (idempotent)."""
        self.state.stop()
        self._close_servers()

    def _close_servers(self) -> None:
        for server in (self._api, self._metrics):
            if server is not None:
                server.close()
        self._api = self._metrics = None

    def __enter__(self) -> Twin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def _url_host(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "::1" if host == "::" else host
        return f"[{host}]" if ":" in host else host

    @property
    def api_port(self) -> int:
        if self._api is None:
            raise RuntimeError("the twin is not running")
        return self._api.port

    @property
    def metrics_port(self) -> int | None:
        return None if self._metrics is None else self._metrics.port

    @property
    def api_url(self) -> str:
        """``https://host:port`` of the Kubernetes API."""
        return f"https://{self._url_host}:{self.api_port}"

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics``, or None without a metrics server."""
        port = self.metrics_port
        return None if port is None else f"http://{self._url_host}:{port}/metrics"

    @property
    def namespace(self) -> str:
        return self.state.namespace

    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig for this run (server URL, CA, token, default namespace)."""
        return kubeconfig_dict(self.api_url, self.ca_pem, self.token, self.namespace)


# ------------------------------------------------------------------------------ CLI


def build_parser(prog: str = "drpc twin") -> argparse.ArgumentParser:
    """The ``drpc twin`` / ``python -m drpc.twin`` argument parser."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a scenario's simulation in real time (or faster) as a Kubernetes API "
        "server (HTTPS, bearer token) and a Prometheus /metrics endpoint, so that kubectl, the "
        "kubernetes Python client, Prometheus and controllers can drive the simulated cluster.",
        epilog="example: python -m drpc.twin --scenario default --speed 60 --kubeconfig "
        "twin.kubeconfig && KUBECONFIG=twin.kubeconfig kubectl get deployments",
    )
    p.add_argument(
        "--scenario",
        default="default",
        help="bundled scenario name or YAML file (default: default)",
    )
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    p.add_argument(
        "--port", type=int, default=6443, help="HTTPS API port; 0 = any free port (default: 6443)"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9100,
        help="/metrics port; 0 = any free port, -1 = off (default: 9100)",
    )
    p.add_argument(
        "--kubeconfig",
        default="drpc-twin.kubeconfig",
        help="kubeconfig to write (default: ./drpc-twin.kubeconfig)",
    )
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="bearer token to accept (default: random)")
    tok.add_argument("--token-file", help="read the bearer token from this file")
    p.add_argument("--namespace", help="namespace of the app (default: the app's name)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (default: 1)"
    )
    p.add_argument(
        "--loop",
        action="store_true",
        help="start the scenario over when the trace ends (default: hold the last state)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "drpc twin") -> int:
    """Run the twin until SIGINT/SIGTERM; returns the exit status (0 on a clean shutdown).

    ``drpc twin ARGS`` in :mod:`drpc.cli` can call ``main(ARGS)``.
    """
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if not (args.speed > 0 and args.speed < float("inf")):
        print(f"drpc twin: --speed must be a number > 0, got {args.speed}", file=sys.stderr)
        return 2
    for flag, port in (("--port", args.port), ("--metrics-port", args.metrics_port)):
        if not -1 <= port <= 65535 or (flag == "--port" and port < 0):
            print(f"drpc twin: {flag} out of range: {port}", file=sys.stderr)
            return 2
    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            print(f"drpc twin: --token-file: {err}", file=sys.stderr)
            return 2
    try:
        scenario = load_scenario(args.scenario)
        if args.seed is not None:
            from dataclasses import replace

            scenario = replace(scenario, seed=args.seed)
        options = TwinOptions(namespace=args.namespace, speed=args.speed, loop=args.loop)
        twin = Twin(
            scenario,
            host=args.host,
            port=args.port,
            metrics_port=None if args.metrics_port < 0 else args.metrics_port,
            token=token,
            kubeconfig_path=args.kubeconfig,
            options=options,
        )
    except (ScenarioError, ValueError) as err:
        print(f"drpc twin: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            twin.start()
        except OSError as err:
            print(f"drpc twin: cannot start: {err}", file=sys.stderr)
            return 2
        cfg = scenario.config
        print(
            f"drpc twin: scenario {scenario.name!r} ({twin.state.app_name}, "
            f"{len(twin.state.services)} deployments in namespace {twin.namespace!r}, "
            f"{cfg.n_nodes} nodes, {scenario.n_intervals} x {cfg.interval_s:g} s intervals) "
            f"at {args.speed:g}x",
            flush=True,
        )
        print(f"drpc twin: API {twin.api_url}  metrics {twin.metrics_url or 'off'}", flush=True)
        print(f"drpc twin: export KUBECONFIG={Path(args.kubeconfig).resolve()}", flush=True)
        print("drpc twin: ready (Ctrl-C to stop)", flush=True)
        while not stop.wait(0.5):
            pass
        print("drpc twin: stopping", flush=True)
        return 0
    finally:
        twin.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
