"""The Kubernetes API out: replicas through ``deployments/scale``, CPU and memory through the
``pods/resize`` subresource, with retries and idempotence.

* **Replicas.** Read the Deployment's ``scale``; if it already shows the target, nothing is
  written; if it shows neither the planned old value nor the target, someone else changed it
  and the action is ``superseded`` (the next sync plans again from what is there). Otherwise
  ``patch_namespaced_deployment_scale`` with the read ``resourceVersion`` as a precondition, so
  a concurrent write gets 409 instead of being overwritten.
* **CPU / memory.** For every pod of the Deployment that is not terminating and whose
  container's ``spec.resources`` differ from the target, ``patch_namespaced_pod_resize`` (the
  ``kubectl patch --subresource resize`` call; Kubernetes >= 1.33) with that pod's
  ``resourceVersion``. A 404 without the pod's name in its details, or a 405, means the cluster
  has no ``resize`` subresource: with ``resize_template_fallback`` the Deployment template is
  patched instead (a rollout on a real cluster; needs ``patch deployments`` in RBAC), otherwise
  the action ends ``unsupported``. A 422 (e.g. a QoS-class change) is an error, not a fallback.
  Pods created from the template later start with the template's values; the controller
  resizes them to the service's limits at its next sync
  (:func:`~drpc.controller.safety.converge_new_pods`).
* **Retries.** 409 Conflict, 429, 5xx and connection errors are retried up to ``k8s_retries``
  times with exponential back-off (``k8s_backoff_s`` doubling, capped at ``k8s_backoff_max_s``);
  every attempt re-reads the object first and writes only the remaining diff, so a write whose
  response was lost is seen as done and never sent twice.
* **Action IDs.** :meth:`KubeApplier.apply` remembers each action's result by ``action_id``;
  applying the same action again returns the first result without touching the API.
* **Dry run / allowlist.** With ``dry_run`` nothing is written (the result is ``dry_run``); a
  namespace outside the allowlist is ``refused`` before any request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drpc.controller.audit import AuditLog
from drpc.controller.config import ControllerConfig
from drpc.controller.safety import Action, namespace_allowed

__all__ = [
    "RETRYABLE_STATUS",
    "ServiceState",
    "ApplyOutcome",
    "KubeApplier",
    "load_kube_clients",
    "format_cpu",
    "format_memory",
    "cpu_millicores",
    "memory_mib",
]

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({0, 409, 429, 500, 502, 503, 504})
"""API statuses retried with back-off (0: the client's own connection/TLS failure)."""


def format_cpu(millicores: float) -> str:
    """A CPU quantity: ``"2"`` for whole cores, else ``"250m"``."""
    m = int(round(millicores))
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def format_memory(mib: float) -> str:
    """A memory quantity: ``"1Gi"`` for whole GiB, else ``"160Mi"``."""
    m = int(round(mib))
    return f"{m // 1024}Gi" if m % 1024 == 0 else f"{m}Mi"


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9,
           "T": 1e12, "m": 1e-3, "": 1.0}  # fmt: skip


def _quantity(value: Any) -> float:
    text = str(value).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIX[suffix]
    return float(text)


def cpu_millicores(value: Any) -> float:
    """A CPU quantity (``"1.5"``, ``"250m"``) in millicores."""
    return _quantity(value) * 1000.0


def memory_mib(value: Any) -> float:
    """A memory quantity (``"1Gi"``, ``"512Mi"``, bytes) in MiB."""
    return _quantity(value) / 2**20


def load_kube_clients(kubeconfig: str | None, timeout_s: float = 10.0) -> tuple[Any, Any]:
    """``(AppsV1Api, CoreV1Api)`` from a kubeconfig path, or in-cluster when None."""
    from kubernetes import client, config  # noqa: PLC0415

    if kubeconfig:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
    api = client.ApiClient(cfg)
    return client.AppsV1Api(api), client.CoreV1Api(api)


@dataclass
class ServiceState:
    """What the API says about one Deployment now."""

    namespace: str
    name: str
    replicas: int
    container: str
    """The container the controller sizes (named like the Deployment, else the first)."""
    cpu_limit_millicores: float
    cpu_request_millicores: float
    memory_limit_mib: float
    memory_request_mib: float
    selector: dict[str, str] = field(default_factory=dict)
    pod_resources: list[tuple[float, float, float, float]] = field(default_factory=list)
    """Each live pod's sized container: (cpu limit, cpu request, memory limit, memory request)."""


@dataclass
class ApplyOutcome:
    """The result of one action."""

    result: str
    """applied, unchanged, dry_run, refused, superseded, unsupported, failed, duplicate."""
    attempts: int = 0
    detail: str = ""
    writes: int = 0
    """Write requests that reached the API (0 for unchanged/dry_run)."""


def _container_of(name: str, containers: list[Any]) -> Any:
    return next((c for c in containers if c.name == name), containers[0])


def _resources_of(container: Any) -> tuple[float, float, float, float]:
    res = container.resources
    limits, requests = (res.limits or {}) if res else {}, (res.requests or {}) if res else {}
    cpu_l = cpu_millicores(limits["cpu"]) if "cpu" in limits else 0.0
    mem_l = memory_mib(limits["memory"]) if "memory" in limits else 0.0
    cpu_r = cpu_millicores(requests["cpu"]) if "cpu" in requests else cpu_l
    mem_r = memory_mib(requests["memory"]) if "memory" in requests else mem_l
    return cpu_l, cpu_r, mem_l, mem_r


class _Retry(Exception):
    """An attempt failed in a retryable way."""


class KubeApplier:
    """Applies :class:`~drpc.controller.safety.Action`s through the official ``kubernetes`` client.

    Args:
        apps: ``kubernetes.client.AppsV1Api``.
        core: ``kubernetes.client.CoreV1Api``.
        config: retries, back-off, dry run, allowlist, template fallback.
        audit: where each action's line goes.
        sleep: the back-off sleep (tests may record it).
    """

    def __init__(
        self,
        apps: Any,
        core: Any,
        config: ControllerConfig,
        audit: AuditLog,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.apps, self.core, self.config, self.audit, self.sleep = apps, core, config, audit, sleep
        self.done: OrderedDict[str, ApplyOutcome] = OrderedDict()
        """action_id -> outcome of every finished action (most recent 10,000)."""
        self.backoffs: list[float] = []
        """Every back-off slept (s), for metrics and tests."""

    # ------------------------------------------------------------------ reading

    def list_deployments(self, namespace: str) -> list[str]:
        """Deployment names in ``namespace`` (refused outside the allowlist)."""
        if not namespace_allowed(namespace, self.config.namespaces):
            raise PermissionError(f"namespace {namespace!r} is not in the allowlist")
        items = self.apps.list_namespaced_deployment(
            namespace, _request_timeout=self.config.k8s_timeout_s
        ).items
        return sorted(d.metadata.name for d in items)

    def observe(self, namespace: str, name: str) -> ServiceState:
        """The Deployment's replicas and the sized container's resources (its pods' max limit)."""
        dep = self.apps.read_namespaced_deployment(
            name, namespace, _request_timeout=self.config.k8s_timeout_s
        )
        container = _container_of(name, dep.spec.template.spec.containers)
        cpu_l, cpu_r, mem_l, mem_r = _resources_of(container)
        selector = dict(dep.spec.selector.match_labels or {})
        pods = self._pods(namespace, selector)
        per_pod = [_resources_of(_container_of(container.name, p.spec.containers)) for p in pods]
        if per_pod:  # what runs now: the largest limit over the live pods (as the PromQL's max)
            cpu_l, cpu_r, mem_l, mem_r = max(per_pod, key=lambda r: (r[0], r[2]))
        return ServiceState(namespace, name, int(dep.spec.replicas or 0), container.name,
                            cpu_l, cpu_r, mem_l, mem_r, selector, per_pod)  # fmt: skip

    def _pods(self, namespace: str, selector: dict[str, str]) -> list[Any]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=label_selector, _request_timeout=self.config.k8s_timeout_s
        ).items
        return [p for p in pods if p.metadata.deletion_timestamp is None
                and p.status.phase not in ("Succeeded", "Failed")]  # fmt: skip

    # ------------------------------------------------------------------ writing

    def apply(self, action: Action) -> ApplyOutcome:
        """Apply ``action`` once (idempotent by ``action_id``) and write its audit line."""
        if action.action_id in self.done:
            return ApplyOutcome("duplicate", detail=f"already {self.done[action.action_id].result}")
        if not namespace_allowed(action.namespace, self.config.namespaces):
            outcome = ApplyOutcome("refused", detail="namespace not in the allowlist")
        elif self.config.dry_run:
            outcome = ApplyOutcome("dry_run")
        else:
            outcome = self._with_retries(action)
        self.done[action.action_id] = outcome
        while len(self.done) > 10_000:
            self.done.popitem(last=False)
        self.audit.record(
            action_id=action.action_id,
            namespace=action.namespace,
            service=action.service,
            knob=action.knob,
            old=action.old,
            new=action.new,
            old_request=action.old_request,
            new_request=action.new_request,
            reason=action.reason,
            source=action.source,
            dry_run=self.config.dry_run,
            result=outcome.result,
            attempts=outcome.attempts,
            detail=outcome.detail,
        )
        return outcome

    def _with_retries(self, action: Action) -> ApplyOutcome:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        outcome = ApplyOutcome("failed")
        last = ""
        for attempt in range(self.config.k8s_retries + 1):
            if attempt:
                delay = min(
                    self.config.k8s_backoff_max_s, self.config.k8s_backoff_s * 2 ** (attempt - 1)
                )
                self.backoffs.append(delay)
                self.sleep(delay)
            outcome.attempts = attempt + 1
            try:
                if action.knob == "replicas":
                    result, detail = self._scale(action, outcome)
                else:
                    result, detail = self._resize(action, outcome)
                outcome.result, outcome.detail = result, detail
                return outcome
            except ApiException as err:
                last = f"HTTP {err.status} {err.reason}"
                if err.status not in RETRYABLE_STATUS:
                    outcome.result, outcome.detail = "failed", f"{last}: {_message(err)}"
                    return outcome
                log.warning("%s/%s %s attempt %d: %s", action.namespace, action.service,
                            action.knob, attempt + 1, last)  # fmt: skip
            except (OSError, _Retry) as err:  # urllib3 errors are OSErrors
                last = f"{type(err).__name__}: {err}"
        outcome.result, outcome.detail = (
            "failed",
            f"gave up after {outcome.attempts} attempts: {last}",
        )
        return outcome

    def _scale(self, action: Action, outcome: ApplyOutcome) -> tuple[str, str]:
        timeout = self.config.k8s_timeout_s
        scale = self.apps.read_namespaced_deployment_scale(
            action.service, action.namespace, _request_timeout=timeout
        )
        observed = int(scale.spec.replicas or 0)
        target = int(action.new)
        if observed == target:
            return (
                ("applied", "seen applied after a retry") if outcome.writes else ("unchanged", "")
            )
        if observed != int(action.old):
            return "superseded", f"replicas are {observed}, planned from {int(action.old)}"
        body = {
            "metadata": {"resourceVersion": scale.metadata.resource_version},
            "spec": {"replicas": target},
        }
        outcome.writes += 1
        self.apps.patch_namespaced_deployment_scale(
            action.service, action.namespace, body, _request_timeout=timeout
        )
        return "applied", ""

    def _resize(self, action: Action, outcome: ApplyOutcome) -> tuple[str, str]:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        timeout = self.config.k8s_timeout_s
        dep = self.apps.read_namespaced_deployment(
            action.service, action.namespace, _request_timeout=timeout
        )
        cname = _container_of(action.service, dep.spec.template.spec.containers).name
        resource = action.knob  # "cpu" or "memory"
        fmt = format_cpu if resource == "cpu" else format_memory
        want = {"limits": {resource: fmt(action.new)},
                "requests": {resource: fmt(action.new_request or action.new)}}  # fmt: skip
        pods = self._pods(action.namespace, dict(dep.spec.selector.match_labels or {}))
        todo = [p for p in pods if not self._pod_has(p, cname, resource, action)]
        if not todo:
            return (
                ("applied", "seen applied after a retry") if outcome.writes else ("unchanged", "")
            )
        failed: list[str] = []
        for pod in todo:
            body = {
                "metadata": {"resourceVersion": pod.metadata.resource_version},
                "spec": {"containers": [{"name": cname, "resources": want}]},
            }
            try:
                outcome.writes += 1
                self.core.patch_namespaced_pod_resize(
                    pod.metadata.name, action.namespace, body, _request_timeout=timeout
                )
            except ApiException as err:
                if _resize_unsupported(err, pod.metadata.name):
                    return self._template_fallback(action, cname, want, outcome)
                if err.status == 404:
                    continue  # the pod is gone: nothing to resize
                if err.status in RETRYABLE_STATUS:
                    failed.append(f"{pod.metadata.name}: HTTP {err.status}")
                    continue
                raise
        if failed:  # retry the remaining pods after a back-off (the applied ones are skipped)
            raise _Retry("; ".join(failed))
        return "applied", f"{len(todo)} pod(s) resized"

    @staticmethod
    def _pod_has(pod: Any, cname: str, resource: str, action: Action) -> bool:
        cpu_l, cpu_r, mem_l, mem_r = _resources_of(_container_of(cname, pod.spec.containers))
        limit, request = (cpu_l, cpu_r) if resource == "cpu" else (mem_l, mem_r)
        return round(limit) == round(action.new) and round(request) == round(
            action.new_request or action.new
        )

    def _template_fallback(
        self, action: Action, cname: str, want: dict[str, Any], outcome: ApplyOutcome
    ) -> tuple[str, str]:
        if not self.config.resize_template_fallback:
            return "unsupported", "no pods/resize subresource and resize_template_fallback is off"
        body = {
            "spec": {"template": {"spec": {"containers": [{"name": cname, "resources": want}]}}}
        }
        outcome.writes += 1
        self.apps.patch_namespaced_deployment(
            action.service, action.namespace, body, _request_timeout=self.config.k8s_timeout_s
        )
        return "applied", "template patched (no resize subresource)"


def _message(err: Any) -> str:
    import json  # noqa: PLC0415

    try:
        return str(json.loads(err.body).get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(err.body)[:300]


def _resize_unsupported(err: Any, pod: str) -> bool:
    """404 that does not name the pod (no such subresource) or 405: resize is not served."""
    import json  # noqa: PLC0415

    if err.status == 405:
        return True
    if err.status != 404:
        return False
    try:
        details = json.loads(err.body).get("details") or {}
    except (TypeError, ValueError, AttributeError):
        details = {}
    return details.get("name") != pod
