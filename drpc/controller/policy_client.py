"""The policy endpoint (``POST /v1/decide``) and the HPA fallback when it is unavailable.

:class:`PolicyClient` sends a :class:`~drpc.serve.schema.Snapshot` with a bearer token and
parses a :class:`~drpc.serve.schema.DecideResponse`. Connection errors, timeouts, 429 and 5xx
are retried with exponential back-off (``policy_backoff_s``, doubling); any other 4xx is not
(the request itself is wrong), and both end in :class:`PolicyUnavailableError`.

:func:`hpa_fallback_replicas` is the upstream HPA replica calculation of
:mod:`drpc.baselines.hpa` (CPU utilisation of requests, tolerance 0.1) on the snapshot's
aggregates: ``ready`` pods each using ``cpu_usage / ready`` of a ``cpu_request`` -- replicas
only; the limits are left as they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from pydantic import ValidationError

from drpc.baselines.hpa import HPAError, PodInfo, PodMetric, get_resource_replicas
from drpc.serve.schema import DecideResponse, Snapshot

__all__ = [
    "PolicyUnavailableError",
    "PolicyClient",
    "FallbackDecision",
    "hpa_fallback_replicas",
]

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses of the policy endpoint worth retrying."""


class PolicyUnavailableError(RuntimeError):
    """The policy endpoint gave no usable answer (after retries); the message says why."""


class PolicyClient:
    """``POST {url}/v1/decide`` with a bearer token, a timeout and retries.

    Args:
        url: base URL of the Serve app (``http://host:8000``).
        token: bearer token (None: no ``Authorization`` header).
        timeout_s: timeout of one attempt (s).
        retries: extra attempts after a retryable failure.
        backoff_s: sleep before the first retry (s), doubling per retry.
        sleep: the sleep function (tests pass a recorder).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url.rstrip("/") + "/v1/decide"
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Content-Type"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.attempts = 0
        """Attempts made by the last :meth:`decide` call."""

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def decide(self, snapshot: Snapshot) -> DecideResponse:
        """The policy's decisions for ``snapshot``.

        Raises:
            PolicyUnavailableError: after the retries, or at once on a non-retryable status or
                an invalid response body.
        """
        body = snapshot.model_dump_json()
        last = "no attempt"
        self.attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                resp = self.session.post(self.url, data=body, timeout=self.timeout_s)
            except requests.RequestException as err:
                last = f"{type(err).__name__}: {err}"
                log.warning("policy endpoint attempt %d failed: %s", attempt + 1, last)
                continue
            if resp.status_code in RETRYABLE_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                log.warning("policy endpoint attempt %d failed: %s", attempt + 1, last)
                continue
            if resp.status_code != 200:
                raise PolicyUnavailableError(f"HTTP {resp.status_code}: {resp.text[:300]}")
            try:
                return DecideResponse.model_validate_json(resp.content)
            except ValidationError as err:
                raise PolicyUnavailableError(f"invalid response: {err.errors()[0]}") from err
        raise PolicyUnavailableError(f"{self.retries + 1} attempts failed; last: {last}")


@dataclass(frozen=True)
class FallbackDecision:
    """The HPA fallback's answer for one service."""

    replicas: int
    """Recommended replicas (the current count when the HPA cannot decide)."""
    reason: str
    """How it was reached (utilisation, or the HPA error that kept the count)."""


def hpa_fallback_replicas(
    *,
    current_replicas: int,
    ready_replicas: int,
    cpu_usage_millicores: float,
    cpu_request_millicores: float | None,
    target_utilization_percent: int = 80,
    now_s: float = 0.0,
) -> FallbackDecision:
    """Upstream ``GetResourceReplicas`` on aggregate metrics (replicas only).

    Args:
        current_replicas: the Deployment's ``spec.replicas`` (pods).
        ready_replicas: ready pods (pods); 0 keeps the count (upstream: no metrics).
        cpu_usage_millicores: CPU used, summed over pods (millicores).
        cpu_request_millicores: CPU request per pod (millicores); None or 0 keeps the count.
        target_utilization_percent: target average utilisation (percent of the request).
        now_s: the time the pods are stamped with (only readiness windows use it).
    """
    if not cpu_request_millicores or cpu_request_millicores <= 0:
        return FallbackDecision(current_replicas, "hpa: missing cpu request; kept")
    if ready_replicas <= 0:
        return FallbackDecision(current_replicas, "hpa: no ready pods; kept")
    long_ago = now_s - 3600.0  # past the CPU initialisation period: every ready pod counts
    per_pod = int(round(cpu_usage_millicores / ready_replicas))
    pods = [
        PodInfo(
            name=f"pod-{i}",
            phase="Running",
            ready=True,
            start_time_s=long_ago,
            ready_transition_s=long_ago,
            request_millicores=int(round(cpu_request_millicores)),
        )
        for i in range(ready_replicas)
    ]
    metrics = {p.name: PodMetric(per_pod, now_s) for p in pods}
    try:
        calc = get_resource_replicas(
            current_replicas, target_utilization_percent, pods, metrics, now_s
        )
    except HPAError as err:
        return FallbackDecision(current_replicas, f"hpa: {err}; kept")
    return FallbackDecision(
        calc.replicas,
        f"hpa: cpu utilisation {calc.utilization}% of request vs target "
        f"{target_utilization_percent}%",
    )
