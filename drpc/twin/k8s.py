"""The Kubernetes API subset of the twin: routing, validation and responses.

:class:`KubeApi` turns a parsed HTTP request (:class:`Request`) into a :class:`Response`; it
knows nothing about sockets (see :mod:`drpc.twin.http`). Every failure is a Kubernetes
``Status`` (:class:`~drpc.twin.errors.ApiError`); bad input gets a 4xx naming the field, never a
5xx. Request bodies are validated here, at the boundary, before anything reaches the
simulation:

* ``spec.replicas`` must be an integer inside the simulated app's ``[min_replicas,
  max_replicas]`` (the simulator clamps otherwise; the twin refuses instead of silently
  changing the value);
* container ``resources`` need ``cpu`` and ``memory`` requests and limits (quantities), requests
  at most limits, within ``[10m, 2 x node]`` CPU and ``[16Mi, 2 x node]`` memory;
* only ``spec.replicas`` and the container's ``resources`` may change on a Deployment, and
  only the container's ``resources`` through a pod's ``resize`` subresource; any other change
  is a 422 naming the first differing field;
* a ``metadata.resourceVersion`` in the body (a patch that sets it, or an update) is a
  precondition: a stale one gets 409 Conflict.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from drpc.twin import discovery
from drpc.twin import objects as obj
from drpc.twin.errors import ApiError, status_body
from drpc.twin.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from drpc.twin.quantity import QuantityError, cpu_millicores, json_type, memory_mib
from drpc.twin.selectors import (
    SelectorError,
    matches_fields,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from drpc.twin.state import ExpiredError, TwinState

__all__ = ["Request", "Response", "KubeApi", "PATCH_TYPES", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 3 * 1024 * 1024
"""Largest request body accepted (the API server's limit is 3 MiB)."""

PATCH_TYPES: dict[str, Callable[[Any, Any], Any]] = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": json_merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
}
_UNAUTHENTICATED = {"/healthz", "/livez", "/readyz", "/version", "/version/"}
_WATCH_TIMEOUT_S = 1800.0
_MISSING = object()


@dataclass
class Request:
    """An HTTP request as the API sees it."""

    method: str
    target: str  # path and query, as on the request line
    headers: Mapping[str, str]  # case-insensitive lookups (http.client.HTTPMessage)
    body: bytes = b""

    def header(self, name: str) -> str:
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


@dataclass
class Response:
    """A response: a JSON/text body, or a stream of chunks (watch)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None


def _json(status: int, body: Any, content_type: str = "application/json") -> Response:
    return Response(status, json.dumps(body, separators=(",", ":")).encode(), content_type)


def _error(err: ApiError) -> Response:
    return _json(err.code, err.body())


@dataclass
class _Route:
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class KubeApi:
    """Routes and handlers of the twin's Kubernetes API.

    Args:
        state: the running twin.
        token: the bearer token every request (except ``/version`` and health checks) needs.
        server_address: ``host:port`` clients reach the API at (for ``GET /api``).
    """

    def __init__(self, state: TwinState, token: str, server_address: str):
        self.state = state
        self._token = token.encode()
        self.server_address = server_address

    # ------------------------------------------------------------------ entry point

    def handle(self, req: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return self._handle(req)
        except ApiError as err:
            return _error(err)
        except Exception as err:  # a bug: answer 500 but keep serving
            import logging

            logging.getLogger("drpc.twin").exception(
                "internal error on %s %s", req.method, req.target
            )
            return _json(
                500, status_body(500, "InternalError", f"internal error: {type(err).__name__}")
            )

    def _authorized(self, req: Request) -> bool:
        import hmac

        auth = req.header("Authorization")
        scheme, _, token = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._token
        )

    def _handle(self, req: Request) -> Response:
        url = urlsplit(req.target)
        path = unquote(url.path) or "/"
        try:
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        except ValueError:
            raise ApiError.bad_request("malformed query string") from None
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path.rstrip("/") == "/version":
            self._only(req, "GET")
            return _json(200, {**obj.KUBERNETES_VERSION, "platform": "linux/amd64", "goVersion": "go1.24",
                               "compiler": "gc", "gitCommit": "drpc-twin", "gitTreeState": "clean",
                               "buildDate": "2026-01-01T00:00:00Z"})  # fmt: skip
        if not self._authorized(req):
            raise ApiError.unauthorized()
        segments = [s for s in path.split("/") if s]
        discovery_response = self._discovery(req, segments)
        if discovery_response is not None:
            return discovery_response
        route = self._route(segments)
        return self._dispatch(req, route, query)

    @staticmethod
    def _only(req: Request, *methods: str) -> None:
        if req.method not in methods:
            raise ApiError.method_not_allowed(
                f"the server does not allow this method on the requested resource ({req.method})"
            )

    # ------------------------------------------------------------------ discovery

    def _discovery(self, req: Request, seg: list[str]) -> Response | None:
        accept = req.header("Accept")
        if seg == ["api"]:
            self._only(req, "GET")
            if discovery.wants_aggregated(accept):
                return _json(
                    200,
                    discovery.aggregated_discovery(legacy=True),
                    discovery.AGGREGATED_CONTENT_TYPE,
                )
            return _json(200, discovery.api_versions(self.server_address))
        if seg == ["apis"]:
            self._only(req, "GET")
            if discovery.wants_aggregated(accept):
                return _json(
                    200,
                    discovery.aggregated_discovery(legacy=False),
                    discovery.AGGREGATED_CONTENT_TYPE,
                )
            return _json(200, discovery.api_group_list())
        if len(seg) == 2 and seg[0] == "api":
            self._only(req, "GET")
            found = discovery.api_resource_list(seg[1])
            if found is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(200, found)
        if len(seg) == 2 and seg[0] == "apis":
            self._only(req, "GET")
            if any(r.group == seg[1] for r in discovery.RESOURCES):
                return _json(200, discovery.api_group(seg[1]))
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(seg) == 3 and seg[0] == "apis":
            self._only(req, "GET")
            found = discovery.api_resource_list(f"{seg[1]}/{seg[2]}")
            if found is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(200, found)
        return None

    @staticmethod
    def _route(seg: list[str]) -> _Route:
        not_found = ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(seg) >= 2 and seg[0] == "api":
            group, version, rest = "", seg[1], seg[2:]
        elif len(seg) >= 3 and seg[0] == "apis":
            group, version, rest = seg[1], seg[2], seg[3:]
        else:
            raise not_found
        if (group, version) not in {(r.group, r.version) for r in discovery.RESOURCES}:
            raise not_found
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return _Route(group, version, resource, namespace, name, sub)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, req: Request, r: _Route, query: dict[str, str]) -> Response:
        spec = next(
            (
                x
                for x in discovery.RESOURCES
                if x.group_version == r.group_version and x.name == r.resource
            ),
            None,
        )
        if spec is None or (r.namespace is not None and not spec.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if r.subresource is not None and r.subresource not in spec.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if r.name is not None and spec.namespaced and r.namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        allowed = spec.subresources[r.subresource][2] if r.subresource else spec.verbs
        verb = {
            "GET": "get"
            if r.name
            else ("watch" if query.get("watch") in ("true", "1") else "list"),
            "PATCH": "patch",
            "PUT": "update",
            "POST": "create",
            "DELETE": "delete" if r.name else "deletecollection",
        }.get(req.method)
        if verb is None or verb not in allowed:
            what = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
            raise ApiError.method_not_allowed(
                f"the twin does not support {req.method} on {what} (allowed: {', '.join(allowed)}); "
                "its objects are the simulated app's services and pods"
            )
        if r.group == "metrics.k8s.io":
            return self._metrics(req, r, query)
        if verb == "watch":
            return self._watch(req, r, query)
        if verb == "list":
            return self._list(req, r, query)
        if verb == "get":
            return self._get(req, r, query)
        return self._write(req, r, query, verb)

    # ------------------------------------------------------------------ reads

    def _stored(self, r: _Route) -> dict[str, Any]:
        ns = r.namespace or ""
        stored = self.state.get(r.resource, ns, r.name or "")
        if stored is None:
            raise ApiError.not_found(r.resource, r.name or "", r.group)
        return stored.body

    def _get(self, req: Request, r: _Route, query: dict[str, str]) -> Response:
        body = self._stored(r)
        if r.subresource == "scale":
            return _json(200, obj.scale_object(body))
        if _wants_table(req) and obj.supports_table(r.resource) and r.subresource is None:
            return _json(
                200,
                obj.table_object(r.resource, [body], int(body["metadata"]["resourceVersion"]),
                                 time.time(), query.get("includeObject", "Metadata")),
            )  # fmt: skip
        return _json(200, body)

    def _selected(self, r: _Route, query: dict[str, str]) -> tuple[int, list[dict]]:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"), r.resource)
        except SelectorError as err:
            raise ApiError.bad_request(str(err)) from None
        rv, items = self.state.list(r.resource, r.namespace)
        chosen = [
            o
            for o in items
            if matches_labels(labels, o["metadata"].get("labels"))
            and matches_fields(fields, o, r.resource)
        ]
        chosen.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return rv, chosen

    def _list(self, req: Request, r: _Route, query: dict[str, str]) -> Response:
        rv, items = self._selected(r, query)
        if _wants_table(req) and obj.supports_table(r.resource):
            return _json(
                200,
                obj.table_object(
                    r.resource, items, rv, time.time(), query.get("includeObject", "Metadata")
                ),
            )
        spec = next(
            x
            for x in discovery.RESOURCES
            if x.group_version == r.group_version and x.name == r.resource
        )
        return _json(200, obj.list_object(spec.kind + "List", r.group_version, items, rv))

    def _watch(self, req: Request, r: _Route, query: dict[str, str]) -> Response:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"), r.resource)
        except SelectorError as err:
            raise ApiError.bad_request(str(err)) from None
        since = query.get("resourceVersion", "")
        if since not in ("", "0") and not since.isdigit():
            raise ApiError.bad_request(
                f"resourceVersion: invalid value {since!r}: must be an integer"
            )
        try:
            timeout_s = float(query.get("timeoutSeconds") or _WATCH_TIMEOUT_S)
        except ValueError:
            raise ApiError.bad_request("timeoutSeconds: must be a number of seconds") from None
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise ApiError.bad_request("timeoutSeconds: must be a non-negative number of seconds")
        table = _wants_table(req) and obj.supports_table(r.resource)
        include = query.get("includeObject", "Metadata")
        state = self.state

        def wanted(body: dict) -> bool:
            meta = body["metadata"]
            if r.namespace is not None and meta.get("namespace") != r.namespace:
                return False
            return matches_labels(labels, meta.get("labels")) and matches_fields(
                fields, body, r.resource
            )

        def line(kind: str, body: dict) -> bytes:
            if table:
                body = obj.table_object(
                    r.resource,
                    [body],
                    int(body["metadata"]["resourceVersion"]),
                    time.time(),
                    include,
                )
            return (
                json.dumps({"type": kind, "object": body}, separators=(",", ":")).encode() + b"\n"
            )

        def stream() -> Iterator[bytes]:
            deadline = time.monotonic() + timeout_s
            if since in ("", "0"):
                last, items = state.list(r.resource, r.namespace)
                for body in sorted(items, key=lambda o: o["metadata"]["name"]):
                    if wanted(body):
                        yield line("ADDED", body)
            else:
                last = int(since)
            while not state.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    events = state.wait_events(last, min(left, 1.0))
                except ExpiredError as err:
                    status = status_body(410, "Expired", str(err))
                    yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                    return
                for e in events:
                    last = e.rv
                    if e.resource == r.resource and wanted(e.body):
                        yield line(e.type, e.body)

        return Response(200, content_type="application/json", stream=stream())

    # ------------------------------------------------------------------ metrics.k8s.io

    def _metrics(self, req: Request, r: _Route, query: dict[str, str]) -> Response:
        try:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"), r.resource)
        except SelectorError as err:
            raise ApiError.bad_request(str(err)) from None
        if r.resource == "pods":
            items = self.state.pod_metrics(r.namespace)
            kind = "PodMetricsList"
        else:
            items = self.state.node_metrics()
            kind = "NodeMetricsList"
        if r.name is not None:
            for item in items:
                if item["metadata"]["name"] == r.name:
                    return _json(200, item)
            raise ApiError.not_found(f"{r.resource[:-1]}metrics", r.name, "metrics.k8s.io")
        items = [
            i
            for i in items
            if matches_labels(labels, i["metadata"].get("labels"))
            and matches_fields(fields, i, r.resource)
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return _json(
            200, obj.list_object(kind, "metrics.k8s.io/v1beta1", items, self.state.resource_version)
        )

    # ------------------------------------------------------------------ writes

    def _write(self, req: Request, r: _Route, query: dict[str, str], verb: str) -> Response:
        dry_run = "dryRun" in query and query["dryRun"] != ""
        if dry_run and query["dryRun"] != "All":
            raise ApiError.bad_request(
                f"dryRun: unsupported value {query['dryRun']!r} (supported: All)"
            )
        document = self._decode_body(req, verb)
        state = self.state
        with state.lock:  # read, apply and write atomically with respect to the simulation
            current = self._stored(r)
            if r.subresource == "scale":
                base = obj.scale_object(current)
            else:
                base = current
            if verb == "patch":
                new = self._apply_patch(req, base, document)
            else:
                new = document
            if not isinstance(new, dict):
                raise ApiError.bad_request(
                    f"the patched object must be a JSON object, got {json_type(new)}"
                )
            expect = _check_identity(new, base, r, verb)
            if r.resource == "deployments" and r.subresource == "scale":
                replicas = _replicas(new, "spec.replicas", r.name or "", "Scale", "autoscaling")
                body = state.update_deployment(
                    r.namespace or "",
                    r.name or "",
                    replicas=replicas,
                    expect_rv=expect,
                    dry_run=dry_run,
                )
                return _json(200, obj.scale_object(body))
            if r.resource == "deployments":
                replicas = _replicas(new, "spec.replicas", r.name or "", "Deployment", "apps")
                containers = _containers(
                    new, "spec.template.spec.containers", r.name or "", "Deployment", "apps"
                )
                template = _resources(
                    containers, "spec.template.spec.containers", r.name or "", "Deployment", "apps"
                )
                _only_allowed_changes(base, new, _deployment_mutable, r.name or "", "Deployment", "apps",
                                      "only spec.replicas and spec.template.spec.containers[*].resources")  # fmt: skip
                body = state.update_deployment(
                    r.namespace or "", r.name or "", replicas=replicas, template=template,
                    expect_rv=expect, dry_run=dry_run,
                )  # fmt: skip
                return _json(200, body)
            if r.resource == "pods" and r.subresource == "resize":
                containers = _containers(new, "spec.containers", r.name or "", "Pod", "")
                desired = _resources(containers, "spec.containers", r.name or "", "Pod", "")
                _only_allowed_changes(base, new, _pod_mutable, r.name or "", "Pod", "",
                                      "only cpu and memory resources are mutable")  # fmt: skip
                old = _resources(
                    _containers(base, "spec.containers", "", "Pod", ""),
                    "spec.containers",
                    "",
                    "Pod",
                    "",
                )
                if obj.qos_class(old) != obj.qos_class(desired):
                    raise ApiError.invalid(
                        "Pod", r.name or "", "spec",
                        f"Invalid value: \"{obj.qos_class(desired)}\": Pod QOS Class may not change as a result of resizing",
                    )  # fmt: skip
                body = state.resize_pod(
                    r.namespace or "", r.name or "", desired, expect_rv=expect, dry_run=dry_run
                )
                return _json(200, body)
        raise ApiError.method_not_allowed(f"the twin does not support {req.method} on {r.resource}")

    @staticmethod
    def _decode_body(req: Request, verb: str) -> Any:
        ctype = req.header("Content-Type").split(";")[0].strip().lower()
        if verb == "patch":
            if ctype not in PATCH_TYPES:
                raise ApiError.unsupported_media_type(ctype, list(PATCH_TYPES))
        elif ctype not in ("application/json", ""):
            raise ApiError.unsupported_media_type(ctype, ["application/json"])
        if not req.body.strip():
            raise ApiError.bad_request("the request body is empty")
        try:
            return json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            what = "patch" if verb == "patch" else "the request body"
            raise ApiError.bad_request(f"error decoding {what}: {err}") from None

    @staticmethod
    def _apply_patch(req: Request, base: dict, patch: Any) -> Any:
        ctype = req.header("Content-Type").split(";")[0].strip().lower()
        try:
            return PATCH_TYPES[ctype](base, patch)
        except PatchError as err:
            name = base.get("metadata", {}).get("name", "")
            raise ApiError(
                422, "Invalid", f'{base.get("kind", "object")} "{name}" is invalid: patch: {err}'
            ) from None
        except RecursionError:
            raise ApiError.bad_request("the patch is nested too deeply") from None


# ------------------------------------------------------------------------------ validation


def _wants_table(req: Request) -> bool:
    accept = req.header("Accept")
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def _at(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _check_identity(new: dict, base: dict, r: _Route, verb: str) -> str | None:
    """Name/namespace must match the URL; returns the resourceVersion precondition (if any)."""
    meta = new.get("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError.bad_request(f"metadata: expected an object, got {json_type(meta)}")
    name = meta.get("name", r.name if verb == "update" else _MISSING)
    if verb == "update" and "name" not in meta:
        name = r.name
    if name is not _MISSING and name != r.name:
        raise ApiError.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({r.name})"
        )
    ns = meta.get("namespace")
    if ns is not None and ns != (r.namespace or ""):
        raise ApiError.bad_request(
            f"the namespace of the provided object ({ns}) does not match the namespace sent on the request ({r.namespace})"
        )
    kind = new.get("kind")
    if kind is not None and kind != base.get("kind"):
        raise ApiError.bad_request(f"kind: expected {base.get('kind')!r}, got {kind!r}")
    rv = meta.get("resourceVersion")
    if rv is None or rv == "":
        return None
    if not isinstance(rv, str):
        raise ApiError.bad_request(
            f"metadata.resourceVersion: expected a string, got {json_type(rv)}"
        )
    return rv


def _replicas(doc: dict, path: str, name: str, kind: str, group: str) -> int:
    value = _at(doc, path)
    if value is _MISSING or value is None:
        raise ApiError.invalid(kind, name, path, "Required value: must be an integer >= 0", group)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError.invalid(
            kind,
            name,
            path,
            f"Invalid value: {json.dumps(value)}: must be an integer >= 0 (got {json_type(value)})",
            group,
        )
    if isinstance(value, float) and not value.is_integer():
        raise ApiError.invalid(
            kind, name, path, f"Invalid value: {value}: must be an integer >= 0", group
        )
    if value < 0 or value > 2**31 - 1:
        raise ApiError.invalid(
            kind, name, path, f"Invalid value: {int(value)}: must be an integer >= 0", group
        )
    return int(value)


def _containers(doc: dict, path: str, name: str, kind: str, group: str) -> dict:
    containers = _at(doc, path)
    if not isinstance(containers, list):
        raise ApiError.invalid(
            kind, name, path, "Required value: a list with the service's container", group
        )
    if len(containers) != 1 or not isinstance(containers[0], dict):
        raise ApiError.invalid(
            kind,
            name,
            path,
            f"Invalid value: the twin's {kind}s have exactly one container (got {len(containers)})",
            group,
        )
    return containers[0]


def _resources(container: dict, path: str, name: str, kind: str, group: str) -> obj.Resources:
    base = f"{path}[0].resources"
    resources = container.get("resources")
    if not isinstance(resources, dict):
        raise ApiError.invalid(
            kind, name, base, "Required value: cpu and memory requests and limits", group
        )
    values: dict[str, float] = {}
    for section in ("requests", "limits"):
        sec = resources.get(section)
        where = f"{base}.{section}"
        if not isinstance(sec, dict):
            raise ApiError.invalid(kind, name, where, "Required value: cpu and memory", group)
        for res in sec:
            if res not in ("cpu", "memory"):
                raise ApiError.invalid(
                    kind,
                    name,
                    f"{where}[{res}]",
                    "Unsupported value: the twin simulates cpu and memory only",
                    group,
                )
        for res, parse in (("cpu", cpu_millicores), ("memory", memory_mib)):
            if res not in sec:
                raise ApiError.invalid(kind, name, f"{where}.{res}", "Required value", group)
            try:
                v = parse(sec[res])
            except QuantityError as err:
                raise ApiError.invalid(
                    kind,
                    name,
                    f"{where}.{res}",
                    f"Invalid value: {json.dumps(sec[res])}: {err}",
                    group,
                ) from None
            if v <= 0:
                raise ApiError.invalid(
                    kind,
                    name,
                    f"{where}.{res}",
                    f"Invalid value: {json.dumps(sec[res])}: must be greater than 0",
                    group,
                )
            values[f"{section}.{res}"] = v
    extra = set(resources) - {"requests", "limits", "claims"}
    if extra:
        raise ApiError.invalid(kind, name, f"{base}.{sorted(extra)[0]}", "Unsupported field", group)
    return obj.Resources(
        cpu_request_millicores=values["requests.cpu"],
        cpu_limit_millicores=values["limits.cpu"],
        memory_request_mib=values["requests.memory"],
        memory_limit_mib=values["limits.memory"],
    )


def _strip(doc: Any, paths: list[tuple[str, ...]]) -> Any:
    """A copy of ``doc`` without the given paths (``"*"`` matches every list element)."""
    if not paths:
        return doc
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            subs = [p[1:] for p in paths if p and p[0] == k]
            if any(len(s) == 0 for s in subs):
                continue
            out[k] = _strip(v, subs)
        return out
    if isinstance(doc, list):
        subs = [p[1:] for p in paths if p and p[0] == "*"]
        if any(len(s) == 0 for s in subs):
            return []
        return [_strip(v, subs) for v in doc]
    return doc


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(
                a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else k
            )
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    same = a is b or (type(a) is type(b) and a == b) or (
        isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool)
        and not isinstance(b, bool) and a == b
    )  # fmt: skip
    return None if same else path


_deployment_mutable: list[tuple[str, ...]] = [
    ("status",),
    ("metadata", "resourceVersion"),
    ("metadata", "generation"),
    ("metadata", "creationTimestamp"),
    ("metadata", "uid"),
    ("metadata", "managedFields"),
    ("metadata", "selfLink"),
    ("metadata", "namespace"),
    ("metadata", "name"),
    ("kind",),
    ("apiVersion",),
    ("spec", "replicas"),
    ("spec", "template", "spec", "containers", "*", "resources"),
]
_pod_mutable: list[tuple[str, ...]] = [
    ("status",),
    ("metadata",),
    ("kind",),
    ("apiVersion",),
    ("spec", "containers", "*", "resources"),
]


def _only_allowed_changes(
    base: dict,
    new: dict,
    mutable: list[tuple[str, ...]],
    name: str,
    kind: str,
    group: str,
    what: str,
) -> None:
    diff = _first_difference(_strip(base, mutable), _strip(new, mutable), "")
    if diff is not None:
        raise ApiError.invalid(
            kind,
            name,
            diff,
            f"Forbidden: the twin cannot change this field ({what} can change)",
            group,
        )
