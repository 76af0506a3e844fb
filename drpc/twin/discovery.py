"""API discovery: which groups, versions and resources the twin serves.

Two forms, both generated from :data:`RESOURCES`:

* legacy discovery: ``/api`` (``APIVersions``), ``/apis`` (``APIGroupList``), and one
  ``APIResourceList`` per group-version (``/api/v1``, ``/apis/apps/v1``, ...);
* aggregated discovery (``apidiscovery.k8s.io/v2``, what kubectl >= 1.30 asks for first with
  ``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``): the whole
  tree in two responses (``/api`` and ``/apis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Resource",
    "RESOURCES",
    "GROUP_VERSIONS",
    "AGGREGATED_CONTENT_TYPE",
    "wants_aggregated",
    "api_versions",
    "api_group_list",
    "api_group",
    "api_resource_list",
    "aggregated_discovery",
]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class Resource:
    """One served resource and its subresources (name -> (kind, group/version, verbs))."""

    group: str
    version: str
    name: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_READ = ("get", "list", "watch")
RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, _READ, ("ns",)),
    Resource("", "v1", "nodes", "node", "Node", False, _READ, ("no",)),
    Resource(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        True,
        _READ,
        ("po",),
        ("all",),
        {
            "resize": ("Pod", "v1", ("get", "patch", "update")),
            "status": ("Pod", "v1", ("get",)),
        },
    ),
    Resource(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        True,
        (*_READ, "patch", "update"),
        ("deploy",),
        ("all",),
        {
            "scale": ("Scale", "autoscaling/v1", ("get", "patch", "update")),
            "status": ("Deployment", "apps/v1", ("get",)),
        },
    ),
    Resource("metrics.k8s.io", "v1beta1", "pods", "", "PodMetrics", True, ("get", "list")),
    Resource("metrics.k8s.io", "v1beta1", "nodes", "", "NodeMetrics", False, ("get", "list")),
)
"""Everything the twin serves."""

GROUP_VERSIONS: dict[str, list[Resource]] = {}
for _r in RESOURCES:
    GROUP_VERSIONS.setdefault(_r.group_version, []).append(_r)

_GROUPS = ("apps", "metrics.k8s.io")


def wants_aggregated(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for ``apidiscovery.k8s.io/v2`` aggregated discovery
    (before any plain ``application/json`` alternative)."""
    for part in (accept or "").split(","):
        params = {}
        media, *rest = [p.strip() for p in part.split(";")]
        for p in rest:
            key, _, value = p.partition("=")
            params[key.strip()] = value.strip()
        if (
            params.get("g") == "apidiscovery.k8s.io"
            and params.get("v") == "v2"
            and params.get("as") == "APIGroupDiscoveryList"
            and media in ("application/json", "*/*")
        ):
            return True
        if media in ("application/json", "*/*") and not params:
            return False
    return False


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group(name: str) -> dict[str, Any]:
    """``GET /apis/<group>``."""
    versions = sorted({r.version for r in RESOURCES if r.group == name})
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list() -> dict[str, Any]:
    """``GET /apis``."""
    groups = [api_group(g) for g in _GROUPS]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group_version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``GET /apis/<group>/<version>``; None when not served."""
    resources = GROUP_VERSIONS.get(group_version)
    if resources is None:
        return None
    entries: list[dict[str, Any]] = []
    for r in resources:
        entry: dict[str, Any] = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        for sub, (kind, gv, verbs) in r.subresources.items():
            sub_entry: dict[str, Any] = {
                "name": f"{r.name}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": list(verbs),
            }
            if gv != r.group_version:
                group, _, version = gv.rpartition("/")
                sub_entry["group"], sub_entry["version"] = group, version
            entries.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


def _discovery_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.name,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular or r.kind.lower(),
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        subs = []
        for sub, (kind, gv, verbs) in r.subresources.items():
            group, _, version = gv.rpartition("/")
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": {"group": group, "version": version, "kind": kind},
                    "verbs": list(verbs),
                }
            )
        entry["subresources"] = subs
    return entry


def aggregated_discovery(legacy: bool) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (``legacy=True``, the core group) or ``/apis``."""
    groups = [""] if legacy else list(_GROUPS)
    items = []
    for g in groups:
        versions = []
        for resources in GROUP_VERSIONS.values():
            if resources[0].group != g:
                continue
            versions.append(
                {
                    "version": resources[0].version,
                    "resources": [_discovery_resource(r) for r in resources],
                    "freshness": "Current",
                }
            )
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
