"""Pure functions from the simulation's state to Kubernetes JSON objects.

Nothing here touches the simulator or a lock: :mod:`drpc.twin.state` gathers plain values
(:class:`PodView`, :class:`DeploymentView`, :class:`NodeView`) and these functions shape them
like the API server would (field names, omitted zero values, canonical quantities, RFC 3339
timestamps in wall-clock time).

Mapping of the simulator's pod phases (:class:`drpc.sim.types.Phase`):

=============  ==========  =====================================================
simulator      phase       conditions / container state
=============  ==========  =====================================================
Pending        Pending     PodScheduled=False (Unschedulable); no container status
Starting       Running     Ready=False (ContainersNotReady); container running
Ready          Running     Ready=True; container running
Terminating    Running     ``metadata.deletionTimestamp`` set; Ready=False
Crashed        Running     Ready=False; waiting CrashLoopBackOff, lastState OOMKilled
=============  ==========  =====================================================

A pod whose desired resources (``spec``) differ from its actual ones
(``status.containerStatuses[0].resources``) carries the Kubernetes 1.35 resize conditions:
``PodResizePending`` (reason ``Infeasible`` or ``Deferred``) or ``PodResizeInProgress``.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from drpc.sim.types import Phase, ResizeStatus
from drpc.twin.quantity import (
    format_cpu,
    format_kibibytes,
    format_memory,
    format_nanocores,
)

__all__ = [
    "KUBERNETES_VERSION",
    "Resources",
    "PodView",
    "DeploymentView",
    "NodeView",
    "rfc3339",
    "template_hash",
    "pod_name",
    "object_uid",
    "container_image",
    "pod_object",
    "deployment_object",
    "scale_object",
    "node_object",
    "namespace_object",
    "pod_metrics_object",
    "node_metrics_object",
    "list_object",
    "table_object",
    "qos_class",
    "resources_json",
    "format_age",
]

KUBERNETES_VERSION = {"major": "1", "minor": "35", "gitVersion": "v1.35.0-drpc-twin"}
"""The API version the twin reports; the resize semantics are those of Kubernetes 1.35."""

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand alphanums
_SUFFIX_SPACE = len(_ALPHABET) ** 5
_TERMINATION_GRACE_S = 5  # ClusterConfig.termination_grace_s's default (simulated seconds)


@dataclass(frozen=True)
class Resources:
    """CPU (millicores) and memory (MiB) requests and limits of one container."""

    cpu_request_millicores: float
    cpu_limit_millicores: float
    memory_request_mib: float
    memory_limit_mib: float


@dataclass(frozen=True)
class PodView:
    """What a pod object shows; times are wall-clock seconds since the epoch."""

    name: str
    uid: str
    service: str
    node: str | None
    phase: int
    ready: bool
    created_wall_s: float
    start_wall_s: float | None
    ready_transition_wall_s: float | None
    deletion_wall_s: float | None
    restarts: int
    last_oom_wall_s: float | None
    actual: Resources
    desired: Resources
    resize_status: int
    pod_ip: str
    host_ip: str | None
    generation: int = 1
    grace_s: int = _TERMINATION_GRACE_S  # termination grace period (simulated seconds)
    grace_wall_s: float = _TERMINATION_GRACE_S  # the same in wall-clock seconds


@dataclass(frozen=True)
class DeploymentView:
    """What a Deployment object shows."""

    name: str
    uid: str
    created_wall_s: float
    generation: int
    replicas: int  # spec.replicas
    template: Resources
    status_replicas: int
    ready_replicas: int
    available_replicas: int
    updated_replicas: int
    min_replicas: int
    max_replicas: int
    changed_wall_s: float


@dataclass(frozen=True)
class NodeView:
    """What a Node object shows."""

    name: str
    uid: str
    index: int
    cpu_millicores: float
    memory_mib: float
    created_wall_s: float
    max_pods: int = 250


# ------------------------------------------------------------------------------ names


def rfc3339(wall_s: float | None) -> str | None:
    """``metav1.Time`` JSON: RFC 3339 in UTC, whole seconds (``2026-01-02T03:04:05Z``)."""
    if wall_s is None or not math.isfinite(wall_s):
        return None
    return datetime.fromtimestamp(math.floor(wall_s), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, r = divmod(value, len(_ALPHABET))
        chars.append(_ALPHABET[r])
    return "".join(chars)


def template_hash(namespace: str, deployment: str) -> str:
    """A stable ``pod-template-hash`` (10 characters) for a Deployment.

    The twin resizes pods in place when the template's resources change (no rollout), so the
    hash stays the same for the life of the Deployment.
    """
    digest = int.from_bytes(
        hashlib.sha256(f"{namespace}/{deployment}".encode()).digest()[:8], "big"
    )
    return _encode(digest, 10)


def pod_name(deployment: str, hash_: str, sim_uid: int, epoch: int = 0) -> str:
    """``<deployment>-<template hash>-<5-character suffix>``; the suffix is a bijection of the
    simulator's pod uid (and the loop epoch), so names are unique and stable."""
    key = (int(sim_uid) + int(epoch) * 1_000_003) % _SUFFIX_SPACE
    mixed = (key * 2_654_435_761 + 1_234_567) % _SUFFIX_SPACE  # multiplier coprime to 27^5
    return f"{deployment}-{hash_}-{_encode(mixed, 5)}"


def object_uid(run_id: str, *parts: object) -> str:
    """A UUID that is stable within one twin run and unique across runs."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, "drpc-twin/" + run_id + "/" + "/".join(map(str, parts)))
    )


def container_image(app: str, service: str) -> str:
    """The (fictitious) image of a service's container."""
    return f"drpc-twin.local/{app}/{service}:sim"


def qos_class(r: Resources) -> str:
    """Guaranteed when requests equal limits for CPU and memory, else Burstable."""
    guaranteed = (
        r.cpu_request_millicores == r.cpu_limit_millicores
        and r.memory_request_mib == r.memory_limit_mib
    )
    return "Guaranteed" if guaranteed else "Burstable"


def resources_json(r: Resources) -> dict[str, dict[str, str]]:
    """``ResourceRequirements`` JSON of a container."""
    return {
        "limits": {
            "cpu": format_cpu(r.cpu_limit_millicores),
            "memory": format_memory(r.memory_limit_mib),
        },
        "requests": {
            "cpu": format_cpu(r.cpu_request_millicores),
            "memory": format_memory(r.memory_request_mib),
        },
    }


def _resize_policy() -> list[dict[str, str]]:
    return [
        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
        {"resourceName": "memory", "restartPolicy": "NotRequired"},
    ]


def _container_spec(app: str, service: str, r: Resources) -> dict[str, Any]:
    return {
        "name": service,
        "image": container_image(app, service),
        "imagePullPolicy": "IfNotPresent",
        "resources": resources_json(r),
        "resizePolicy": _resize_policy(),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


# ------------------------------------------------------------------------------ pods


def _condition(kind: str, status: bool, wall_s: float | None, reason: str = "", message: str = ""):
    c: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(wall_s),
    }
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _resize_conditions(p: PodView, wall_s: float | None) -> list[dict[str, Any]]:
    d, a = p.desired, p.actual
    if p.resize_status == ResizeStatus.IN_PROGRESS:
        return [_condition("PodResizeInProgress", True, wall_s)]
    if p.resize_status == ResizeStatus.INFEASIBLE:
        return [
            _condition(
                "PodResizePending",
                True,
                wall_s,
                "Infeasible",
                f"Node didn't have enough capacity: requested cpu {format_cpu(d.cpu_request_millicores)}"
                f", memory {format_memory(d.memory_request_mib)} exceed the node's allocatable",
            )
        ]
    if p.resize_status == ResizeStatus.DEFERRED:
        if d.memory_limit_mib < a.memory_limit_mib:
            message = (
                "memory limit decrease below the container's current usage is deferred "
                "(best-effort check)"
            )
        else:
            message = "Node didn't have enough resource to admit the resize right now"
        return [_condition("PodResizePending", True, wall_s, "Deferred", message)]
    return []


def pod_object(
    p: PodView,
    *,
    namespace: str,
    app: str,
    template_hash_: str,
    deployment_uid: str,
    resource_version: int,
    changed_wall_s: float,
    pending_message: str = "",
) -> dict[str, Any]:
    """A ``v1 Pod``: desired resources in ``spec``, actual ones in ``status``."""
    rs_name = f"{p.service}-{template_hash_}"
    meta: dict[str, Any] = {
        "name": p.name,
        "generateName": rs_name + "-",
        "namespace": namespace,
        "uid": p.uid,
        "resourceVersion": str(resource_version),
        "generation": p.generation,
        "creationTimestamp": rfc3339(p.created_wall_s),
        "labels": {"app": p.service, "pod-template-hash": template_hash_},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": rs_name,
                "uid": object_uid(deployment_uid, "replicaset"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if p.deletion_wall_s is not None:
        meta["deletionTimestamp"] = rfc3339(p.deletion_wall_s + p.grace_wall_s)
        meta["deletionGracePeriodSeconds"] = p.grace_s
    spec: dict[str, Any] = {
        "containers": [_container_spec(app, p.service, p.desired)],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": p.grace_s,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
        "priority": 0,
    }
    if p.node is not None:
        spec["nodeName"] = p.node
    status: dict[str, Any] = {"qosClass": qos_class(p.desired)}
    created = p.created_wall_s
    if p.phase == Phase.PENDING:
        status["phase"] = "Pending"
        status["conditions"] = [
            _condition(
                "PodScheduled",
                False,
                created,
                "Unschedulable",
                pending_message or "0/0 nodes are available: insufficient resources.",
            )
        ]
        return _pod(meta, spec, status)
    started = p.start_wall_s if p.start_wall_s is not None else created
    ready = p.phase == Phase.READY
    transition = p.ready_transition_wall_s if p.ready_transition_wall_s is not None else started
    not_ready = "" if ready else "ContainersNotReady"
    not_ready_msg = "" if ready else f"containers with unready status: [{p.service}]"
    status["phase"] = "Running"
    status["conditions"] = [
        _condition("PodReadyToStartContainers", True, started),
        _condition("Initialized", True, created),
        _condition("Ready", ready, transition, not_ready, not_ready_msg),
        _condition("ContainersReady", ready, transition, not_ready, not_ready_msg),
        _condition("PodScheduled", True, created),
        *_resize_conditions(p, changed_wall_s),
    ]
    status["hostIP"] = p.host_ip
    status["hostIPs"] = [{"ip": p.host_ip}]
    status["podIP"] = p.pod_ip
    status["podIPs"] = [{"ip": p.pod_ip}]
    status["startTime"] = rfc3339(started)
    container_id = "containerd://" + hashlib.sha256(f"{p.uid}/{p.restarts}".encode()).hexdigest()
    cs: dict[str, Any] = {
        "name": p.service,
        "image": container_image(app, p.service),
        "imageID": container_image(app, p.service) + "@sha256:" + "0" * 64,
        "containerID": container_id,
        "ready": ready,
        "started": p.phase in (Phase.READY, Phase.STARTING, Phase.TERMINATING),
        "restartCount": int(p.restarts),
        "allocatedResources": {
            "cpu": format_cpu(p.actual.cpu_request_millicores),
            "memory": format_memory(p.actual.memory_request_mib),
        },
        "resources": resources_json(p.actual),
    }
    if p.phase == Phase.CRASHED:
        cs["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container {p.service} in pod {p.name}",
            }
        }
    else:
        cs["state"] = {"running": {"startedAt": rfc3339(started)}}
    if p.restarts > 0 and p.last_oom_wall_s is not None:
        cs["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": rfc3339(started if started <= p.last_oom_wall_s else created),
                "finishedAt": rfc3339(p.last_oom_wall_s),
                "containerID": "containerd://"
                + hashlib.sha256(f"{p.uid}/{p.restarts - 1}".encode()).hexdigest(),
            }
        }
    else:
        cs["lastState"] = {}
    status["containerStatuses"] = [cs]
    status["observedGeneration"] = p.generation
    return _pod(meta, spec, status)


def _pod(meta: dict, spec: dict, status: dict) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}


# ------------------------------------------------------------------------------ deployments


def deployment_object(
    d: DeploymentView, *, namespace: str, app: str, resource_version: int
) -> dict[str, Any]:
    """An ``apps/v1 Deployment``; zero-valued status counts are omitted, as upstream."""
    status: dict[str, Any] = {"observedGeneration": d.generation}
    for key, value in (
        ("replicas", d.status_replicas),
        ("updatedReplicas", d.updated_replicas),
        ("readyReplicas", d.ready_replicas),
        ("availableReplicas", d.available_replicas),
        ("unavailableReplicas", max(d.status_replicas - d.available_replicas, 0)),
    ):
        if value:
            status[key] = int(value)
    max_unavailable = d.replicas - math.ceil(0.25 * d.replicas) if d.replicas else 0
    available = d.available_replicas >= max_unavailable
    changed = rfc3339(d.changed_wall_s)
    created = rfc3339(d.created_wall_s)
    status["conditions"] = [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "lastUpdateTime": changed,
            "lastTransitionTime": changed,
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
        },
        {
            "type": "Progressing",
            "status": "True",
            "lastUpdateTime": changed,
            "lastTransitionTime": created,
            "reason": "NewReplicaSetAvailable",
            "message": f'ReplicaSet "{d.name}-{template_hash(namespace, d.name)}" has '
            "successfully progressed.",
        },
    ]
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": d.name,
            "namespace": namespace,
            "uid": d.uid,
            "resourceVersion": str(resource_version),
            "generation": d.generation,
            "creationTimestamp": created,
            "labels": {"app": d.name},
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                "drpc.twin/min-replicas": str(d.min_replicas),
                "drpc.twin/max-replicas": str(d.max_replicas),
            },
        },
        "spec": {
            "replicas": int(d.replicas),
            "selector": {"matchLabels": {"app": d.name}},
            "template": {
                "metadata": {"labels": {"app": d.name}},
                "spec": {
                    "containers": [_container_spec(app, d.name, d.template)],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": _TERMINATION_GRACE_S,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": status,
    }


def scale_object(deployment: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1 Scale`` of a Deployment (it shares the Deployment's resourceVersion)."""
    meta = deployment["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {
            "replicas": int(deployment["status"].get("replicas", 0)),
            "selector": ",".join(
                f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()
            ),
        },
    }


# ------------------------------------------------------------------------------ nodes, namespaces


def node_object(n: NodeView, *, resource_version: int) -> dict[str, Any]:
    """A ``v1 Node``: capacity = allocatable = the simulated node's size."""
    resources = {
        "cpu": format_cpu(n.cpu_millicores),
        "memory": format_memory(n.memory_mib),
        "pods": str(n.max_pods),
        "ephemeral-storage": "100Gi",
    }
    created = rfc3339(n.created_wall_s)
    ready = {
        "type": "Ready",
        "status": "True",
        "lastHeartbeatTime": created,
        "lastTransitionTime": created,
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
    }
    pressure = [
        {
            "type": kind,
            "status": "False",
            "lastHeartbeatTime": created,
            "lastTransitionTime": created,
            "reason": reason,
            "message": message,
        }
        for kind, reason, message in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": n.name,
            "uid": n.uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/hostname": n.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "drpc-sim",
            },
        },
        "spec": {"podCIDR": f"10.244.{n.index}.0/24", "podCIDRs": [f"10.244.{n.index}.0/24"]},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [*pressure, ready],
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{n.index + 10}"},
                {"type": "Hostname", "address": n.name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": n.uid,
                "containerRuntimeVersion": "containerd://2.0.0",
                "kernelVersion": "6.1.0-drpc-sim",
                "kubeProxyVersion": KUBERNETES_VERSION["gitVersion"],
                "kubeletVersion": KUBERNETES_VERSION["gitVersion"],
                "machineID": n.uid.replace("-", ""),
                "operatingSystem": "linux",
                "osImage": "DRPC simulated node",
                "systemUUID": n.uid,
            },
        },
    }


def namespace_object(name: str, *, uid: str, created_wall_s: float, resource_version: int):
    """A ``v1 Namespace`` (Active)."""
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": rfc3339(created_wall_s),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


# ------------------------------------------------------------------------------ metrics.k8s.io


def _window(window_s: float) -> str:
    return f"{max(window_s, 0.001):.3f}s"


def pod_metrics_object(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    container: str,
    cpu_millicores: float,
    memory_mib: float,
    timestamp_wall_s: float,
    window_s: float,
) -> dict[str, Any]:
    """A ``metrics.k8s.io/v1beta1 PodMetrics`` (usage in nanocores and KiB, as metrics-server)."""
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": rfc3339(time.time()),
            "labels": dict(labels),
        },
        "timestamp": rfc3339(timestamp_wall_s),
        "window": _window(window_s),
        "containers": [
            {
                "name": container,
                "usage": {
                    "cpu": format_nanocores(cpu_millicores),
                    "memory": format_kibibytes(memory_mib),
                },
            }
        ],
    }


def node_metrics_object(
    *,
    name: str,
    labels: dict[str, str],
    cpu_millicores: float,
    memory_mib: float,
    timestamp_wall_s: float,
    window_s: float,
) -> dict[str, Any]:
    """A ``metrics.k8s.io/v1beta1 NodeMetrics``."""
    return {
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": name,
            "creationTimestamp": rfc3339(time.time()),
            "labels": dict(labels),
        },
        "timestamp": rfc3339(timestamp_wall_s),
        "window": _window(window_s),
        "usage": {"cpu": format_nanocores(cpu_millicores), "memory": format_kibibytes(memory_mib)},
    }


# ------------------------------------------------------------------------------ lists and tables


def list_object(kind: str, api_version: str, items: Sequence[dict], resource_version: int):
    """A ``<Kind>List`` with ``metadata.resourceVersion``."""
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": str(resource_version)},
        "items": list(items),
    }


def format_age(seconds: float) -> str:
    """kubectl's ``HumanDuration`` (``5s``, ``3m12s``, ``2d4h``)."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def _age(obj: dict, now_s: float) -> str:
    created = _parse_time(obj["metadata"].get("creationTimestamp"))
    return "<unknown>" if created is None else format_age(now_s - created)


def _pod_status_text(pod: dict) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in pod["status"].get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting")
        if waiting:
            return waiting.get("reason", "Waiting")
    return pod["status"].get("phase", "Unknown")


def _col(name: str, kind: str, description: str, priority: int = 0, fmt: str = "") -> dict:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_TABLE_COLUMNS = {
    "pods": [
        _col("Name", "string", "Name of the pod", fmt="name"),
        _col("Ready", "string", "Ready containers / containers"),
        _col("Status", "string", "Pod status as kubectl shows it"),
        _col("Restarts", "string", "Container restarts"),
        _col("Age", "string", "Time since creation"),
        _col("IP", "string", "Pod IP", priority=1),
        _col("Node", "string", "Node the pod runs on", priority=1),
        _col("Nominated Node", "string", "Nominated node", priority=1),
        _col("Readiness Gates", "string", "Readiness gates", priority=1),
    ],
    "deployments": [
        _col("Name", "string", "Name of the deployment", fmt="name"),
        _col("Ready", "string", "Ready replicas / desired replicas"),
        _col("Up-to-date", "integer", "Updated replicas"),
        _col("Available", "integer", "Available replicas"),
        _col("Age", "string", "Time since creation"),
        _col("Containers", "string", "Container names", priority=1),
        _col("Images", "string", "Container images", priority=1),
        _col("Selector", "string", "Label selector", priority=1),
    ],
    "nodes": [
        _col("Name", "string", "Name of the node", fmt="name"),
        _col("Status", "string", "Ready condition"),
        _col("Roles", "string", "Node roles"),
        _col("Age", "string", "Time since creation"),
        _col("Version", "string", "Kubelet version"),
        _col("Internal-IP", "string", "Internal IP", priority=1),
    ],
    "namespaces": [
        _col("Name", "string", "Name of the namespace", fmt="name"),
        _col("Status", "string", "Phase"),
        _col("Age", "string", "Time since creation"),
    ],
}


def _cells(resource: str, obj: dict, now_s: float) -> list[Any]:
    meta, status = obj["metadata"], obj.get("status", {})
    if resource == "pods":
        statuses = status.get("containerStatuses", [])
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
        return [
            meta["name"],
            f"{ready}/{len(obj['spec']['containers'])}",
            _pod_status_text(obj),
            str(restarts),
            _age(obj, now_s),
            status.get("podIP", "<none>"),
            obj["spec"].get("nodeName", "<none>"),
            "<none>",
            "<none>",
        ]
    if resource == "deployments":
        spec = obj["spec"]
        containers = spec["template"]["spec"]["containers"]
        return [
            meta["name"],
            f"{status.get('readyReplicas', 0)}/{spec['replicas']}",
            int(status.get("updatedReplicas", 0)),
            int(status.get("availableReplicas", 0)),
            _age(obj, now_s),
            ",".join(c["name"] for c in containers),
            ",".join(c["image"] for c in containers),
            ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items()),
        ]
    if resource == "nodes":
        return [
            meta["name"],
            "Ready",
            "<none>",
            _age(obj, now_s),
            status["nodeInfo"]["kubeletVersion"],
            status["addresses"][0]["address"],
        ]
    return [meta["name"], status.get("phase", "Active"), _age(obj, now_s)]


def supports_table(resource: str) -> bool:
    """Whether :func:`table_object` has columns for ``resource``."""
    return resource in _TABLE_COLUMNS


def table_object(
    resource: str,
    objects: Iterable[dict],
    resource_version: int,
    now_s: float,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1 Table`` (what ``kubectl get`` prints) of pods, deployments, nodes or
    namespaces; rows carry ``PartialObjectMetadata`` (``includeObject=Metadata``, the default),
    the full object (``Object``) or nothing (``None``)."""
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": _cells(resource, obj, now_s)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": _TABLE_COLUMNS[resource],
        "rows": rows,
    }
