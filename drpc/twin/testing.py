"""Helpers to run the twin, a real Prometheus server and kubectl in tests (all on loopback).

Every helper is a context manager that stops what it started, with bounded waits, so a test
cannot leak a server or a process::

    with running_twin(load_cached_scenario("default"), speed=200) as twin:
        kubectl = Kubectl(twin.kubeconfig_path, cache_dir=tmp / "kube-cache")
        kubectl.run("get", "deployments")
        with prometheus_server([f"127.0.0.1:{twin.metrics_port}"], tmp / "prom") as prom_url:
            ...
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from drpc.scenario import Scenario, load_scenario
from drpc.twin.server import Twin
from drpc.twin.state import TwinOptions

__all__ = [
    "free_port",
    "wait_until",
    "load_cached_scenario",
    "running_twin",
    "find_binary",
    "Kubectl",
    "prometheus_server",
    "write_prometheus_config",
    "start_prometheus",
    "stop_process",
    "FaultInjector",
]

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout_s`` passes.

    Exceptions from the predicate count as "not yet"; the last one is chained on timeout.
    """
    deadline = time.monotonic() + timeout_s
    last_err: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - polled until the deadline
            last_err = err
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}") from last_err
        time.sleep(interval_s)


@functools.lru_cache(maxsize=4)
def load_cached_scenario(name: str) -> Scenario:
    """:func:`drpc.scenario.load_scenario`, built once per process (scenarios are immutable)."""
    return load_scenario(name)


@contextlib.contextmanager
def running_twin(
    scenario: Scenario,
    *,
    speed: float = 200.0,
    directory: str | Path | None = None,
    token: str | None = None,
    **options: Any,
) -> Iterator[Twin]:
    """A started :class:`Twin` on loopback with free ports and a kubeconfig in ``directory``
    (a temporary one by default); stopped on exit."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="drpc-twin-"))
        twin = Twin(
            scenario,
            host="127.0.0.1",
            port=0,
            metrics_port=0,
            token=token,
            kubeconfig_path=Path(directory) / "kubeconfig",
            options=TwinOptions(speed=speed, **options),
        )
        twin.start()
        stack.callback(twin.stop)
        yield twin


def find_binary(name: str, *candidates: str) -> str | None:
    """``name`` on PATH, else the first existing candidate path, else None."""
    found = shutil.which(name)
    if found:
        return found
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


class Kubectl:
    """Runs kubectl against a kubeconfig with a private discovery cache and a timeout."""

    def __init__(
        self,
        kubeconfig: str | Path,
        *,
        binary: str | None = None,
        cache_dir: str | Path | None = None,
        timeout_s: float = 30.0,
    ):
        self.binary = binary or find_binary("kubectl", "/usr/bin/kubectl", "/usr/local/bin/kubectl")
        if self.binary is None:
            raise FileNotFoundError("kubectl not found")
        self.kubeconfig = str(kubeconfig)
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.timeout_s = timeout_s

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``kubectl --kubeconfig K [--cache-dir C] ARGS`` (an argument list: no shell)."""
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, "--request-timeout", "20s"]
        if self.cache_dir is not None:
            cmd += ["--cache-dir", self.cache_dir]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = self.cache_dir or env.get("HOME", "/tmp")
        result = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=self.timeout_s, env=env
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def json(self, *args: str) -> Any:
        """``kubectl ARGS -o json`` decoded."""
        import json

        return json.loads(self.run(*args, "-o", "json").stdout)


def write_prometheus_config(
    directory: Path, targets: list[str], scrape_interval_s: float = 1.0
) -> Path:
    """``directory/prometheus.yml`` scraping ``targets`` (``host:port``) every
    ``scrape_interval_s``; returns its path."""
    interval = f"{int(round(scrape_interval_s * 1000))}ms"
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {"job_name": "drpc-twin", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def start_prometheus(
    binary: str, config_path: Path, directory: Path, port: int
) -> subprocess.Popen:
    """A Prometheus process on ``127.0.0.1:port`` with its storage in ``directory/data`` and
    its log appended to ``directory/prometheus.log``."""
    with open(directory / "prometheus.log", "ab") as log_file:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; waits for the exit."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


@contextlib.contextmanager
def prometheus_server(
    targets: list[str],
    directory: str | Path,
    *,
    binary: str | None = None,
    scrape_interval_s: float = 1.0,
    start_timeout_s: float = 30.0,
) -> Iterator[str]:
    """A real Prometheus scraping ``targets`` (``host:port``) every ``scrape_interval_s``,
    listening on a free loopback port with its storage in ``directory``; yields its URL and
    stops it (SIGTERM, then SIGKILL after 10 s) on exit."""
    binary = binary or find_binary("prometheus", "/usr/bin/prometheus", "/usr/local/bin/prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus not found")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = write_prometheus_config(directory, targets, scrape_interval_s)
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        proc = start_prometheus(binary, config_path, directory, port)
        url = f"http://127.0.0.1:{port}"
        try:
            ready = _wait_ready(proc, url, start_timeout_s)
            if ready:
                yield url
                return
            last_error = (directory / "prometheus.log").read_text(errors="replace")[-2000:]
        finally:
            stop_process(proc)
    raise RuntimeError(f"prometheus did not start: {last_error}")


def _wait_ready(proc: subprocess.Popen, url: str, timeout_s: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


class FaultInjector:
    """Wraps a ``kubernetes`` ApiClient's urllib3 pool: the next requests matching a rule get
    an injected status, optionally after forwarding the request to the twin (a write whose
    response was lost). ``writes`` lists every PATCH/PUT/POST that reached the twin,
    ``injected`` every injected answer; :meth:`restore` unwraps the pool."""

    def __init__(self, api_client: Any):
        self.pool = api_client.rest_client.pool_manager
        self.original = self.pool.request
        self.pool.request = self.request
        self.rules: list[list] = []
        self.writes: list[tuple[str, str]] = []
        self.injected: list[tuple[str, str, int]] = []

    def add(
        self, method: str, path_suffix: str, status: int, *, forward: bool = False, times: int = 1
    ) -> None:
        """Answer the next ``times`` ``method`` requests whose path ends with ``path_suffix``
        with ``status`` (after forwarding them when ``forward``)."""
        self.rules.append([method, path_suffix, status, forward, times])

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        import io
        import json
        import urllib.parse

        import urllib3

        path = urllib.parse.urlsplit(url).path
        for rule in self.rules:
            m, suffix, status, forward, times = rule
            if times > 0 and method == m and path.endswith(suffix):
                rule[4] -= 1
                if forward:
                    self.original(method, url, *args, **kwargs).drain_conn()
                    self.writes.append((method, path))
                self.injected.append((method, path, status))
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "code": status, "reason": "Injected", "message": "injected"})  # fmt: skip
                return urllib3.HTTPResponse(
                    body=io.BytesIO(body.encode()), status=status, reason="Injected",
                    headers={"Content-Type": "application/json"}, preload_content=False,
                )  # fmt: skip
        resp = self.original(method, url, *args, **kwargs)
        if method in ("PATCH", "PUT", "POST"):
            self.writes.append((method, path))
        return resp

    def restore(self) -> None:
        self.pool.request = self.original
