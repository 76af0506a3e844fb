"""The Ray Serve application: ``POST /v1/decide`` answered by per-node student agents.

Deployments::

    HTTP -> DecideIngress (FastAPI)            one or more replicas, anywhere
              | features + local rows, computed once per snapshot
              +-- NodeAgent-node-0 (students)  one deployment per node of the checkpoint's
              +-- NodeAgent-node-1 (students)  NodeMap, each serving that node's students,
              ...                              batching several snapshots per forward pass

Routes of the ingress: ``POST /v1/decide`` (:class:`~drpc.serve.schema.Snapshot` in,
:class:`~drpc.serve.schema.DecideResponse` out; bearer token required), ``GET /v1/policy``,
``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /openapi.json`` and ``/docs``
(FastAPI's). Only ``/v1/decide`` needs the token: the others expose no data beyond what is
loaded (checksum, service count, node names) and are meant for probes and scrapers; put them
behind the cluster's network policy if that is too much.

Build it with :func:`build_app` (``serve run drpc.serve.app:build_app checkpoint=...``, a Serve
config file such as ``deploy/serve/serve_config.yaml``, or ``drpc serve``). Arguments
(:class:`ServeArgs`): the checkpoint, the app (if not bundled / not stored next to it), the
token (``token``, or the environment variable named by ``token_env``, default
``DRPC_SERVE_TOKEN``, read in the ingress replica), the body limit, batching, and where the
agents run (``placement``):

* ``none`` (default): no constraint, everything may share one Ray node;
* ``label``: agent of node ``X`` needs Ray node label ``<label_key>=X`` (default key
  ``drpc.io/node``), e.g. a KubeRay worker started with ``rayStartParams.labels:
  "drpc.io/node=node-0"`` (see ``deploy/serve/rayservice.yaml``);
* ``resource``: agent of node ``X`` needs ``resource_amount`` of the custom resource
  ``drpc_node_X`` (start that Ray node with ``--resources='{"drpc_node_X": 1}'``);
* ``slot``: every agent needs 1 ``drpc_node_slot`` (one agent per Ray node that has one slot;
  which agent lands on which node is not fixed).

Hot reload: the ingress's Serve ``user_config`` ``{"checkpoint": path, "app": ..., "version":
...}``. On a change, :meth:`DecideIngress.reconfigure` loads and checks the new checkpoint off
the event loop, has every agent load it too (agents keep the last few versions, keyed by
checksum), then swaps one reference. A request uses the policy it started with to the end, so
nothing in flight is dropped or mixed. A checkpoint that fails to load (or has other nodes) is
refused: the old one keeps serving, ``drpc_serve_reloads_total{result="refused"}`` counts it
and ``/healthz`` reports the error. With a Serve config file (``serve deploy``, KubeRay), a
``user_config`` change is applied in place; ``serve.run`` from Python restarts replicas instead.
"""

import asyncio
import hmac
import json
import logging
import math
import os
import time
from collections import OrderedDict
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from drpc.serve.core import (
    TEACHER_NODE,
    NodeModel,
    ServedPolicy,
    SnapshotError,
    checkpoint_checksum,
    load_node_model,
)
from drpc.serve.schema import DecideResponse, Decision, PolicyInfo, Snapshot

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DecideIngress",
    "NodeAgent",
    "NoopIngress",
    "ServeArgs",
    "agent_name",
    "build_app",
    "build_noop_app",
    "policy_nodes",
]

log = logging.getLogger("ray.serve")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (bytes): 20,000 services take about 6 MB."""
DECIDE_PATH = "/v1/decide"
AGENT_VERSIONS_KEPT = 3


class ServeArgs(BaseModel):
    """The arguments of :func:`build_app` (a Serve config's ``args``)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(
        default=None,
        description="student (or teacher) checkpoint folder; default the bundled teacher",
    )
    app: str | None = Field(default=None, description="bundled app name or app YAML path")
    version: str | None = Field(default=None, description="label for /v1/policy")
    token: str | None = Field(default=None, description="bearer token (prefer token_env)")
    token_env: str = "DRPC_SERVE_TOKEN"
    insecure_no_auth: bool = Field(
        default=False, description="serve /v1/decide without a token (loopback experiments only)"
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    max_batch_size: int = Field(default=16, ge=1)
    batch_wait_timeout_s: float = Field(default=0.0, ge=0)
    placement: Literal["none", "label", "resource", "slot"] = "none"
    label_key: str = "drpc.io/node"
    resource_amount: float = Field(default=0.01, gt=0)
    ingress_replicas: int = Field(default=1, ge=1)
    ingress_num_cpus: float = Field(default=0.5, ge=0)
    agent_num_cpus: float = Field(default=0.25, ge=0)
    agent_transport: Literal["grpc", "object_ref"] = Field(
        default="grpc",
        description="ingress -> NodeAgent calls: Serve's direct gRPC between replicas, or Ray "
        "actor calls with results through the object store",
    )
    noop_services: int = Field(default=100, ge=1, description="no-op app: decisions returned")
    utilization_scale: float = Field(
        default=1.0,
        gt=0,
        description="learned CPU-utilisation set-points times this (0.9: 10% more headroom)",
    )
    replica_event_loop: Literal["main", "separate"] = Field(
        default="main",
        description="where a replica runs its user code and its handles' router: on the "
        "replica's main event loop (Ray Serve's throughput-optimised setting; one thread hop "
        "less per call in and per call out) or on separate threads (Ray's default)",
    )


def agent_name(node: str) -> str:
    """The Serve deployment name of ``node``'s agent."""
    return f"NodeAgent-{node}"


def _default_checkpoint() -> str:
    from drpc.teacher.checkpoint import bundled_teacher

    meta = bundled_teacher()
    if meta is None:
        raise ValueError("no checkpoint given and no bundled teacher in this installation")
    return str(meta["folder"])


def policy_nodes(checkpoint: str) -> list[str]:
    """The node names of a checkpoint (its NodeMap; a teacher has one, ``all``)."""
    from drpc.imitation.checkpoint import read_student_meta
    from drpc.serve.core import checkpoint_kind

    if checkpoint_kind(checkpoint) == "students":
        return list(read_student_meta(checkpoint)["node_map_obj"].nodes)
    return [TEACHER_NODE]


def _replica_env(args: ServeArgs) -> dict[str, Any]:
    """``runtime_env`` of every replica: with ``replica_event_loop="main"``, Ray Serve's
    switches that run user code and the router of outgoing handle calls on the replica's
    main event loop (both are read when the replica's process starts)."""
    if args.replica_event_loop == "separate":
        return {}
    flags = ("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP")
    return {"runtime_env": {"env_vars": dict.fromkeys(flags, "0")}}


def _agent_actor_options(args: ServeArgs, node: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": args.agent_num_cpus, **_replica_env(args)}
    if args.placement == "label":
        opts["label_selector"] = {args.label_key: node}
    elif args.placement == "resource":
        opts["resources"] = {f"drpc_node_{node}": args.resource_amount}
    elif args.placement == "slot":
        opts["resources"] = {"drpc_node_slot": 1}
    return opts


# ----------------------------------------------------------------------------- metrics


class _Metrics:
    """Prometheus metrics of one ingress replica (its own registry)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "drpc_serve_decisions",
            "Successful POST /v1/decide requests",
            registry=self.registry,
        )
        self.service_decisions = Counter(
            "drpc_serve_service_decisions",
            "Per-service decisions returned",
            registry=self.registry,
        )
        self.errors = Counter(
            "drpc_serve_errors",
            "Error responses by HTTP status code",
            ["code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "drpc_serve_decide_latency_seconds",
            "Time inside the ingress per successful decide (parsing excluded)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.policy = Gauge(
            "drpc_serve_policy_info",
            "The loaded policy (value 1)",
            ["kind", "version", "checksum", "app", "services"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "drpc_serve_reloads",
            "Checkpoint reloads by result",
            ["result"],
            registry=self.registry,
        )

    def set_policy(self, info: PolicyInfo) -> None:
        self.policy.clear()
        self.policy.labels(
            info.kind, info.version, info.checksum, info.app, str(info.services)
        ).set(1)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


# ----------------------------------------------------------------------------- HTTP guard


class _Guard:
    """Pure ASGI middleware for ``POST /v1/decide``: bearer token first (401), then the body
    size (413, from Content-Length or while reading) before anything parses it."""

    def __init__(self, app: Any, state: Any):
        self.app = app
        self.state = state  # .token (str | None), .max_body_bytes, .metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(DECIDE_PATH):
            await self.app(scope, receive, send)
            return
        state = self.state
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        token = getattr(state, "token", None)
        if token is not None:
            given = headers.get("authorization", b"")
            scheme, _, value = given.partition(b" ")
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(
                value.strip(), token.encode("utf-8")
            )
            if not ok:
                await self._reject(
                    send, 401, "missing or wrong bearer token", {"www-authenticate": "Bearer"}
                )
                return
        limit = int(state.max_body_bytes)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reject(send, 400, "invalid Content-Length header")
                return
            if size > limit:
                await self._reject(send, 413, f"request body of {size} bytes exceeds {limit}")
                return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > limit:
                await self._reject(send, 413, f"request body exceeds {limit} bytes")
                return
            chunks.append(body)
            more = message.get("more_body", False)
        payload = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, code: int, msg: str, extra: dict | None = None) -> None:
        metrics = getattr(self.state, "metrics", None)
        if metrics is not None:
            metrics.errors.labels(str(code)).inc()
        body = json.dumps({"detail": msg}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _json_safe(value: Any) -> Any:
    """Error inputs made JSON-safe (NaN/inf as strings; big containers elided)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list | tuple):
        text = repr(value)
        return text if len(text) <= 200 else text[:200] + "..."
    return str(value)


def _make_api(title: str) -> FastAPI:
    """A FastAPI app with the guard and error handlers that never answer 5xx for bad input."""
    from drpc import __version__

    api = FastAPI(
        title=title,
        version=__version__,
        description="DRPC autoscaling decisions: a cluster snapshot in, per-service "
        "recommendations out (drpc.serve.schema).",
    )
    api.state.token = None
    api.state.max_body_bytes = DEFAULT_MAX_BODY_BYTES
    api.state.metrics = None
    api.add_middleware(_Guard, state=api.state)

    def count(code: int) -> None:
        if api.state.metrics is not None:
            api.state.metrics.errors.labels(str(code)).inc()

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        count(422)
        detail = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
                **({"input": _json_safe(e["input"])} if "input" in e else {}),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        count(exc.status_code)
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
        )

    return api


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token"},
    413: {"description": "request body too large"},
    422: {"description": "invalid snapshot (the message names the field or services)"},
}

# ----------------------------------------------------------------------------- NodeAgent


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.25})
class NodeAgent:
    """One cluster node's students: raw actions for its services' rows, batched over snapshots.

    ``decide((checksum, checkpoint_path, rows (K, in)))`` -> raw actions (K, 3). Requests are
    grouped by ``@serve.batch``; rows of the same checkpoint version go through the network in
    one call ``(B, K, in)``. A version not held yet is loaded from ``checkpoint_path`` (and
    must have that checksum), so an agent that restarted after a reload still answers.
    """

    def __init__(
        self,
        node: str,
        checkpoint: str,
        max_batch_size: int = 16,
        batch_wait_timeout_s: float = 0.0,
    ):
        import torch

        torch.set_num_threads(1)
        self.node = node
        self._models: OrderedDict[str, NodeModel] = OrderedDict()
        self._keep(load_node_model(checkpoint, node))
        self.decide.set_max_batch_size(int(max_batch_size))
        self.decide.set_batch_wait_timeout_s(float(batch_wait_timeout_s))
        self.batches = 0
        self.batched_rows = 0

    def _keep(self, model: NodeModel) -> NodeModel:
        self._models[model.checksum] = model
        self._models.move_to_end(model.checksum)
        while len(self._models) > AGENT_VERSIONS_KEPT:
            self._models.popitem(last=False)
        return model

    def _model(self, checksum: str, path: str) -> NodeModel:
        model = self._models.get(checksum)
        if model is None:
            model = load_node_model(path, self.node)
            if model.checksum != checksum:
                raise RuntimeError(
                    f"{self.node}: {path} now holds weights {model.checksum[:12]}, "
                    f"the request wants {checksum[:12]}"
                )
            self._keep(model)
        return model

    async def load(self, path: str) -> str:
        """Load and check ``path`` for this node (off the event loop); its checksum."""
        model = await asyncio.to_thread(load_node_model, path, self.node)
        self._keep(model)
        return model.checksum

    def stats(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "versions": list(self._models),
            "batches": self.batches,
            "rows": self.batched_rows,
        }

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def decide(self, requests: list[tuple[str, str, np.ndarray]]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, (checksum, _, _) in enumerate(requests):
            groups.setdefault(checksum, []).append(i)
        for checksum, idx in groups.items():
            model = self._model(checksum, requests[idx[0]][1])
            actions = model(np.stack([requests[i][2] for i in idx]))
            for j, i in enumerate(idx):
                out[i] = actions[j]
        self.batches += 1
        self.batched_rows += len(requests)
        return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- ingress

api = _make_api("DRPC decide")


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.5})
@serve.ingress(api)
class DecideIngress:
    """Snapshots in, decisions out; fans each snapshot's node rows out to the NodeAgents."""

    def __init__(self, agents: dict[str, Any], args: dict[str, Any]):
        import torch

        torch.set_num_threads(1)
        self.args = ServeArgs(**args)
        by_reference = self.args.agent_transport == "object_ref"
        self.agents = {n: h.options(_by_reference=by_reference) for n, h in agents.items()}
        self.metrics = _Metrics()
        token = os.environ.get(self.args.token_env) or self.args.token
        if not token and not self.args.insecure_no_auth:
            raise ValueError(
                f"no bearer token: set the environment variable {self.args.token_env} (or the "
                "'token' argument); insecure_no_auth=true serves without one"
            )
        api.state.token = token or None
        api.state.max_body_bytes = self.args.max_body_bytes
        api.state.metrics = self.metrics
        self.policy = ServedPolicy.load(
            self.args.checkpoint or _default_checkpoint(),
            self.args.app,
            self.args.version,
            self.args.utilization_scale,
        )
        self._check_nodes(self.policy)
        self.metrics.set_policy(self.policy.info())
        self.reload_error: str | None = None
        self._reload_lock = asyncio.Lock()

    def _check_nodes(self, policy: ServedPolicy) -> None:
        if set(policy.nodes) != set(self.agents):
            raise ValueError(
                f"{policy.path}: its nodes {sorted(policy.nodes)} differ from the deployed "
                f"agents {sorted(self.agents)}; deploy the app again for another node map"
            )

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Hot reload (Serve ``user_config``: ``checkpoint``, optional ``app``, ``version``,
        ``utilization_scale``)."""
        path = (user_config or {}).get("checkpoint")
        if not path:
            return
        async with self._reload_lock:
            app = user_config.get("app", self.args.app)
            version = user_config.get("version")
            scale = user_config.get("utilization_scale", self.args.utilization_scale)
            current = self.policy
            same_scale = scale == current.utilization_scale
            if (
                str(path) == current.path
                and checkpoint_checksum(path) == current.checksum
                and same_scale
            ):
                return  # what is loaded (e.g. the first call, right after __init__)
            try:
                new = await asyncio.to_thread(ServedPolicy.load, path, app, version, float(scale))
                if new.checksum == current.checksum and new.path == current.path and same_scale:
                    return
                self._check_nodes(new)
                got = await asyncio.gather(*(self.agents[n].load.remote(path) for n in new.nodes))
                if any(c != new.checksum for c in got):
                    raise ValueError(f"{path}: changed while the agents loaded it")
            except Exception as err:  # noqa: BLE001 - refuse, keep serving the old policy
                self.reload_error = f"{type(err).__name__}: {err}"
                self.metrics.reloads.labels("refused").inc()
                log.error(
                    "drpc serve: checkpoint %s refused, keeping %s: %s", path, current.path, err
                )
                return
            self.policy = new  # requests in flight keep their reference to the old one
            self.reload_error = None
            self.metrics.reloads.labels("ok").inc()
            self.metrics.set_policy(new.info())
            log.info("drpc serve: now serving %s (%s)", path, new.checksum[:12])

    @api.post(
        DECIDE_PATH,
        response_model=DecideResponse,
        responses=_ERROR_RESPONSES,
        summary="Decide replicas and limits for every service of a snapshot",
    )
    async def decide(self, snapshot: Snapshot) -> Response:
        started = time.perf_counter()
        policy = self.policy
        try:
            obs, rows = policy.rows(snapshot)
        except SnapshotError as err:
            self.metrics.errors.labels("422").inc()
            return JSONResponse(status_code=422, content={"detail": err.errors})
        nodes = list(rows)
        try:
            actions = await asyncio.gather(
                *(
                    self.agents[n].decide.remote((policy.checksum, policy.path, rows[n]))
                    for n in nodes
                )
            )
        except Exception as err:  # noqa: BLE001 - an agent is down: a server fault, said so
            self.metrics.errors.labels("503").inc()
            log.error("drpc serve: agent call failed: %s", err)
            return JSONResponse(status_code=503, content={"detail": f"node agent failed: {err}"})
        decisions, count = policy.decisions_json(obs, dict(zip(nodes, actions, strict=True)))
        elapsed = time.perf_counter() - started
        # DecideResponse, serialised by hand (one pydantic object per service costs ~8 ms at
        # 1,000 services); the tests check it against the schema
        body = (
            f'{{"policy":{policy.info_json},"decisions":{decisions},'
            f'"decision_ms":{round(elapsed * 1000.0, 3)!r}}}'
        )
        self.metrics.decisions.inc()
        self.metrics.service_decisions.inc(count)
        self.metrics.latency.observe(elapsed)
        return Response(body, media_type="application/json")

    @api.get("/v1/policy", response_model=PolicyInfo, summary="The loaded policy")
    async def policy_info(self) -> PolicyInfo:
        return self.policy.info()

    @api.get("/healthz", summary="Liveness: the policy is loaded")
    async def healthz(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "checksum": self.policy.checksum,
            "nodes": list(self.policy.nodes),
            "last_reload_error": self.reload_error,
        }

    @api.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_text(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


# ----------------------------------------------------------------------------- no-op


noop_api = _make_api("DRPC decide (no-op baseline)")


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.5})
@serve.ingress(noop_api)
class NoopIngress:
    """The benchmark's baseline: the same ingress shape (guard, Snapshot parsing, JSON
    response of the same size) but a fixed answer and no work."""

    def __init__(self, args: dict[str, Any]):
        self.args = ServeArgs(**args)
        noop_api.state.token = os.environ.get(self.args.token_env) or self.args.token
        noop_api.state.max_body_bytes = self.args.max_body_bytes
        n = self.args.noop_services
        info = PolicyInfo(
            kind="noop", version="noop", checksum="0" * 64, app="noop", services=n, nodes=["node-0"]
        )
        decisions = [
            Decision(
                service=f"svc-{i:05d}",
                node="node-0",
                replicas=2,
                cpu_limit_millicores=1000.0,
                memory_limit_mib=1024.0,
                cpu_request_millicores=500.0,
                memory_request_mib=512.0,
            )
            for i in range(n)
        ]
        self.body = DecideResponse(
            policy=info, decisions=decisions, decision_ms=0.0
        ).model_dump_json()

    @noop_api.post(DECIDE_PATH, response_model=DecideResponse, responses=_ERROR_RESPONSES)
    async def decide(self, snapshot: Snapshot) -> Response:
        return Response(self.body, media_type="application/json")


# ----------------------------------------------------------------------------- builders


def build_app(args: dict[str, Any] | None = None) -> Any:
    """The Serve application (``serve run drpc.serve.app:build_app checkpoint=/ckpt``)."""
    parsed = ServeArgs(**{k: v for k, v in (args or {}).items() if v is not None})
    checkpoint = parsed.checkpoint or _default_checkpoint()
    parsed = parsed.model_copy(update={"checkpoint": checkpoint})
    agents = {
        node: NodeAgent.options(
            name=agent_name(node), ray_actor_options=_agent_actor_options(parsed, node)
        ).bind(node, checkpoint, parsed.max_batch_size, parsed.batch_wait_timeout_s)
        for node in policy_nodes(checkpoint)
    }
    ingress = DecideIngress.options(
        num_replicas=parsed.ingress_replicas,
        ray_actor_options={"num_cpus": parsed.ingress_num_cpus, **_replica_env(parsed)},
        user_config={
            "checkpoint": checkpoint,
            "app": parsed.app,
            "version": parsed.version,
            "utilization_scale": parsed.utilization_scale,
        },
    )
    return ingress.bind(agents, parsed.model_dump())


def build_noop_app(args: dict[str, Any] | None = None) -> Any:
    """The no-op baseline application (benchmarks)."""
    parsed = ServeArgs(**{k: v for k, v in (args or {}).items() if v is not None})
    return NoopIngress.options(
        ray_actor_options={"num_cpus": parsed.ingress_num_cpus, **_replica_env(parsed)}
    ).bind(parsed.model_dump())
