"""Microservice applications as data: the schema of an app file and its loader.

An app file (YAML or JSON) lists services, the endpoints users call (each with its share of
the traffic, its p99 latency SLO and its call graph) and where the numbers come from.
See ``drpc/apps/README.md`` for the field reference and the bundled apps.

Validation happens here, at the boundary: :func:`load_app` raises :class:`AppError` naming
the file and the field (``services[3].cpu_limit_millicores``) for a missing or unknown field,
a wrong unit, a negative or NaN value, an unknown service or a cyclic call graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from drpc.units import UnitError, parse_cpu_millicores, parse_duration_s, parse_memory_mib

__all__ = [
    "App",
    "AppError",
    "Call",
    "Endpoint",
    "Service",
    "bundled_apps",
    "load_app",
    "load_data_file",
    "format_validation_error",
]


class AppError(ValueError):
    """An app file that cannot be used; the message names the file and the field."""


def _unit(parser):
    def convert(value: Any) -> Any:
        try:
            return parser(value)
        except UnitError as err:
            raise ValueError(str(err)) from None

    return BeforeValidator(convert)


Millicores = Annotated[float, _unit(parse_cpu_millicores), Field(gt=0)]
MiB = Annotated[float, _unit(parse_memory_mib), Field(gt=0)]
Seconds = Annotated[float, _unit(parse_duration_s), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Service(_Strict):
    """One Deployment: per-request cost, memory model, lifecycle and initial resources."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    cpu_seconds_per_request: float = Field(
        gt=0, description="CPU time one request costs on one core (s)"
    )
    memory_base_mib: float = Field(gt=0, description="working set of an idle pod (MiB)")
    memory_per_inflight_mib: float = Field(
        ge=0, description="extra working set per in-flight request (MiB)"
    )
    startup_s: Seconds = Field(description="time from container start to Ready (s)")
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    replicas: int = Field(ge=0, description="initial replica count")
    cpu_request_millicores: Millicores
    cpu_limit_millicores: Millicores
    memory_request_mib: MiB
    memory_limit_mib: MiB

    @model_validator(mode="after")
    def _consistent(self) -> Service:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"replicas {self.replicas} outside [min_replicas, max_replicas] = "
                f"[{self.min_replicas}, {self.max_replicas}]"
            )
        if self.cpu_request_millicores > self.cpu_limit_millicores:
            raise ValueError("cpu_request_millicores exceeds cpu_limit_millicores")
        if self.memory_request_mib > self.memory_limit_mib:
            raise ValueError("memory_request_mib exceeds memory_limit_mib")
        return self


class Call(_Strict):
    """An edge of an endpoint's call graph: ``caller`` calls ``callee`` per request it serves."""

    caller: str
    callee: str
    multiplicity: float = Field(default=1.0, gt=0, le=100, description="calls per caller visit")
    mode: Literal["sequential", "parallel"] = "sequential"


class Endpoint(_Strict):
    """An entry point users call, its share of the trace's arrivals and its latency SLO."""

    name: str = Field(min_length=1)
    entry: str = Field(description="service that receives the request")
    weight: float = Field(gt=0, description="share of arrivals (normalised over endpoints)")
    slo_p99_ms: float = Field(gt=0, description="end-to-end p99 latency objective (ms)")
    calls: tuple[Call, ...] = ()


class App(_Strict):
    """A microservice application: services, endpoints, and the provenance of its numbers."""

    name: str = Field(min_length=1)
    description: str = ""
    provenance: str = Field(min_length=1, description="where the numbers come from")
    request_timeout_s: Seconds = Field(default=10.0, description="client timeout per request (s)")
    services: tuple[Service, ...] = Field(min_length=1)
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph(self) -> App:
        names = [s.name for s in self.services]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise _FieldError(("services", i, "name"), f"duplicate service name {name!r}")
            seen.add(name)
        for e, ep in enumerate(self.endpoints):
            if ep.entry not in seen:
                raise _FieldError(("endpoints", e, "entry"), f"unknown service {ep.entry!r}")
            for c, call in enumerate(ep.calls):
                for attr in ("caller", "callee"):
                    target = getattr(call, attr)
                    if target not in seen:
                        raise _FieldError(
                            ("endpoints", e, "calls", c, attr), f"unknown service {target!r}"
                        )
            _check_acyclic_and_reachable(ep, e)
        if len({ep.name for ep in self.endpoints}) != len(self.endpoints):
            raise _FieldError(("endpoints",), "duplicate endpoint names")
        return self

    @property
    def service_names(self) -> list[str]:
        return [s.name for s in self.services]


class _FieldError(ValueError):
    """Raised inside model validators to point at a nested field."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def _check_acyclic_and_reachable(ep: Endpoint, e: int) -> None:
    children: dict[str, list[str]] = {}
    for call in ep.calls:
        children.setdefault(call.caller, []).append(call.callee)
    state: dict[str, int] = {}  # 1 = on stack, 2 = done

    stack: list[tuple[str, int]] = [(ep.entry, 0)]
    while stack:
        node, idx = stack.pop()
        if idx == 0:
            state[node] = 1
        kids = children.get(node, [])
        if idx < len(kids):
            stack.append((node, idx + 1))
            kid = kids[idx]
            if state.get(kid) == 1:
                raise _FieldError(
                    ("endpoints", e, "calls"), f"call graph has a cycle through {kid!r}"
                )
            if kid not in state:
                stack.append((kid, 0))
        else:
            state[node] = 2
    for c, call in enumerate(ep.calls):
        if call.caller not in state:
            raise _FieldError(
                ("endpoints", e, "calls", c, "caller"),
                f"{call.caller!r} is not reachable from the entry {ep.entry!r}",
            )


def format_validation_error(source: str, err: ValidationError | _FieldError) -> str:
    """One line per problem: ``file: field.path: message``."""
    if isinstance(err, _FieldError):
        return f"{source}: {_loc(err.loc)}: {err.message}"
    lines = []
    for item in err.errors():
        msg = item["msg"]
        if item["type"] == "missing":
            msg = "required field is missing"
        elif item["type"] == "extra_forbidden":
            msg = "unknown field"
        elif item.get("ctx", {}).get("error") is not None and isinstance(
            item["ctx"]["error"], _FieldError
        ):
            fe = item["ctx"]["error"]
            lines.append(f"{source}: {_loc(tuple(item['loc']) + fe.loc)}: {fe.message}")
            continue
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{source}: {_loc(item['loc']) or '(top level)'}: {msg}")
    return "\n".join(lines)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_data_file(path: Path, error_cls: type[ValueError]) -> Any:
    """Read a YAML or JSON file into Python data, or raise ``error_cls`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise error_cls(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~30x faster
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        detail = str(err).replace('"<unicode string>"', "the file")
        raise error_cls(f"{path}: not valid {kind}: {detail}") from None


def bundled_files(folder: str) -> dict[str, Path]:
    """``{stem: path}`` of the YAML files shipped in the package folder ``drpc/<folder>/``."""
    root = resources.files("drpc") / folder
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml")}


def resolve_data_file(
    name_or_path: str | Path, bundled: dict[str, Path], kind: str, error_cls: type[ValueError]
) -> Path:
    """A bundled file by name, or an existing path; otherwise ``error_cls`` listing the names."""
    if isinstance(name_or_path, str) and name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise error_cls(
            f"{name_or_path}: no such {kind} file, and not a bundled {kind} "
            f"(bundled: {', '.join(sorted(bundled))})"
        )
    return path


def bundled_apps() -> dict[str, Path]:
    """Names and paths of the apps shipped with DRPC (``drpc/apps/*.yaml``)."""
    return bundled_files("apps")


def app_from_data(data: Mapping[str, Any], source: str = "<data>") -> App:
    """Validate already-parsed data as an app; errors name ``source`` and the field."""
    if not isinstance(data, Mapping):
        raise AppError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return App.model_validate(data)
    except ValidationError as err:
        raise AppError(format_validation_error(source, err)) from None
    except _FieldError as err:
        raise AppError(format_validation_error(source, err)) from None


def load_app(name_or_path: str | Path) -> App:
    """Load a bundled app by name (``trainticket``) or an app file by path."""
    path = resolve_data_file(name_or_path, bundled_apps(), "app", AppError)
    return app_from_data(load_data_file(path, AppError), str(path))
