"""Kubernetes HorizontalPodAutoscaler (HPA), ported as pure functions plus a small controller.

Upstream source (read, not recalled)
------------------------------------
``kubernetes/kubernetes`` ``pkg/controller/podautoscaler`` on the master branch during the v1.37
development cycle, as mirrored in ``omerap12/kubernetes``:

* ``replica_calculator.go`` and ``horizontal.go`` at commit
  ``a769d5884497dc246960b38f3e5aae2cc30dd062`` (contains the ``HPAGeneration`` and
  ``HPAScaleToZero`` gates; ``groupPods`` uses ``podutil.IsPodTerminal``);
* ``horizontal_test.go`` at ``060da1681551ba64d82dad3c8d4246ab81760d4d`` and
  ``replica_calculator_test.go`` at ``a769d588...`` (the tests in ``tests/test_hpa_upstream.py``);
* ``metrics/utilization.go`` (``GetResourceUtilizationRatio`` / ``GetMetricUsageRatio``) and
  ``pkg/apis/autoscaling/v2/defaults.go`` (default behavior) from the same tree;
* controller defaults from ``pkg/controller/podautoscaler/config/v1alpha1/defaults.go``
  (sync 15 s, tolerance 0.1, CPU initialization period 5 min, initial readiness delay 30 s,
  downscale stabilization window 5 min).

Tolerance is **per direction** in this version: ``Tolerances{scaleDown, scaleUp}`` with
``isWithin(r) = 1 - scaleDown <= r <= 1 + scaleUp`` (KEP-4951; the per-HPA values come from
``behavior.scaleUp.tolerance`` / ``behavior.scaleDown.tolerance`` when the
``HPAConfigurableTolerance`` feature gate is on, otherwise both equal the controller-wide 0.1).
Older releases used ``|1 - r| <= tolerance``, which is the same test with equal tolerances.

Conventions: times are float seconds on one clock (``now_s``); CPU is in millicores (integers, like
``Quantity.MilliValue()``); replica counts are ints. Go's ``Before``/``After`` are strict, so every
time-window boundary here is strict exactly where upstream's is. Go's integer division truncates
toward zero, see :func:`_go_div`.

What is ported
--------------
* replica_calculator.go: ``groupPods``, ``removeMetricsForPods``, request summing (pod level),
  ``GetResourceReplicas`` (resource utilization target), ``calcPlainMetricReplicas`` (average value
  target of a Pods/raw resource metric), ``GetResourceUtilizationRatio``, ``GetMetricUsageRatio``.
* horizontal.go: ``stabilizeRecommendation`` and ``convertDesiredReplicasWithRules`` (the legacy path
  without ``behavior``: scale-up limit ``max(2 * current, 4)``), ``stabilizeRecommendationWithBehaviors``,
  ``convertDesiredReplicasWithBehaviorRate``, ``getReplicasChangePerPeriod``,
  ``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
  ``storeScaleEvent`` / ``markScaleEventsOutdated`` / ``getLongestPolicyPeriod``,
  ``maybeInitScaleDownStabilizationWindow``, ``tolerancesForHpa`` and the reconcile order of
  ``reconcileAutoscaler`` for one CPU resource metric (:class:`HPAController`).

Not ported: Object/External metrics, container-resource metrics (a pod here has one request),
multiple metrics, status conditions/events, the HPAScaleToZero alpha gate (off by default: a target
at 0 replicas disables scaling, as upstream with the gate off).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "CPU",
    "DEFAULT_CPU_INITIALIZATION_PERIOD_S",
    "DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S",
    "DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S",
    "DEFAULT_SYNC_PERIOD_S",
    "DEFAULT_TOLERANCE",
    "HPABehavior",
    "HPAController",
    "HPAError",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "MetricsUnavailableError",
    "MissingRequestError",
    "NoMatchingMetricsError",
    "NoPodsError",
    "NoReadyPodMetricsError",
    "NormalizationResult",
    "PodGroups",
    "PodInfo",
    "PodMetric",
    "ReplicaCalculation",
    "ScaleEvent",
    "StabilizationResult",
    "Tolerances",
    "TimestampedRecommendation",
    "calc_plain_metric_replicas",
    "calculate_pod_requests",
    "calculate_scale_down_limit_with_behaviors",
    "calculate_scale_up_limit",
    "calculate_scale_up_limit_with_scaling_rules",
    "convert_desired_replicas_with_behavior_rate",
    "convert_desired_replicas_with_rules",
    "default_behavior",
    "default_scale_down_rules",
    "default_scale_up_rules",
    "generate_hpa_scale_down_rules",
    "generate_hpa_scale_up_rules",
    "get_longest_policy_period",
    "get_metric_usage_ratio",
    "get_replicas_change_per_period",
    "get_resource_replicas",
    "get_resource_utilization_ratio",
    "group_pods",
    "is_pod_terminal",
    "mark_scale_events_outdated",
    "maybe_init_scale_down_stabilization_window",
    "normalize_desired_replicas",
    "normalize_desired_replicas_with_behaviors",
    "record_initial_recommendation",
    "remove_metrics_for_pods",
    "stabilize_recommendation",
    "stabilize_recommendation_with_behaviors",
    "store_scale_event",
    "tolerances_for_hpa",
]

# --------------------------------------------------------------------------------------------------
# Controller defaults (config/v1alpha1/defaults.go) and legacy limits (horizontal.go)
# --------------------------------------------------------------------------------------------------

DEFAULT_SYNC_PERIOD_S = 15.0
"""``--horizontal-pod-autoscaler-sync-period`` (s); the caller calls :meth:`HPAController.sync`."""
DEFAULT_TOLERANCE = 0.1
"""``--horizontal-pod-autoscaler-tolerance`` (fraction of the usage ratio)."""
DEFAULT_CPU_INITIALIZATION_PERIOD_S = 300.0
"""``--horizontal-pod-autoscaler-cpu-initialization-period`` (s)."""
DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S = 30.0
"""``--horizontal-pod-autoscaler-initial-readiness-delay`` (s)."""
DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S = 300.0
"""``--horizontal-pod-autoscaler-downscale-stabilization`` (s)."""
SCALE_UP_LIMIT_FACTOR = 2.0
"""horizontal.go ``scaleUpLimitFactor`` (legacy path without behavior)."""
SCALE_UP_LIMIT_MINIMUM = 4.0
"""horizontal.go ``scaleUpLimitMinimum`` (legacy path without behavior)."""

CPU = "cpu"
"""Resource name of CPU; ``group_pods`` applies the readiness rules only to this resource."""

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

# --------------------------------------------------------------------------------------------------
# Errors (upstream returns fmt.Errorf; the messages are upstream's)
# --------------------------------------------------------------------------------------------------


class HPAError(RuntimeError):
    """A replica count cannot be computed; upstream would leave the scale unchanged."""


class MetricsUnavailableError(HPAError):
    """The metrics API returned no pod metrics at all (metrics client error in upstream)."""


class NoPodsError(HPAError):
    """The selector matched no pods."""


class NoReadyPodMetricsError(HPAError):
    """No metrics remain after dropping ignored and unready pods."""


class MissingRequestError(HPAError):
    """A pod lacks a CPU request, so utilization is undefined."""


class NoMatchingMetricsError(HPAError):
    """No metric belongs to a pod with a known request (sum of requests is zero)."""


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    """The fields of a ``v1.Pod`` that the HPA reads.

    Attributes:
        name: pod name; the key of the metrics mapping.
        phase: ``status.phase``.
        ready: status of the ``Ready`` condition (True/False).
        deletion_timestamp_s: ``metadata.deletionTimestamp`` (s) or None when not being deleted.
        start_time_s: ``status.startTime`` (s) or None when unset (a CPU pod without a start time
            counts as unready, as upstream).
        ready_transition_s: ``lastTransitionTime`` of the Ready condition (s); **None means the pod
            has no Ready condition at all**, which upstream treats as unready for CPU.
        request_millicores: sum of the CPU requests of the pod's containers (millicores), or None
            when a container has no request (upstream: "missing request for cpu ...").
    """

    name: str
    phase: PodPhase = "Running"
    ready: bool = True
    deletion_timestamp_s: float | None = None
    start_time_s: float | None = None
    ready_transition_s: float | None = None
    request_millicores: int | None = None


@dataclass(frozen=True)
class PodMetric:
    """One pod's sample from the resource metrics API (``metricsclient.PodMetric``).

    Attributes:
        usage_millicores: CPU usage (millicores), or the raw value of a Pods metric (milli-units).
        timestamp_s: end of the sampling window (s).
        window_s: length of the sampling window (s).
    """

    usage_millicores: int
    timestamp_s: float
    window_s: float = 60.0


@dataclass(frozen=True)
class Tolerances:
    """Usage-ratio tolerances (replica_calculator.go ``Tolerances``), as fractions."""

    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def is_within(self, usage_ratio: float) -> bool:
        """True when ``1 - scale_down <= usage_ratio <= 1 + scale_up`` (no scaling)."""
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class HPAScalingPolicy:
    """``autoscaling/v2.HPAScalingPolicy``: at most ``value`` pods (or percent) per ``period_s``."""

    type: PolicyType
    value: int
    period_s: int


@dataclass(frozen=True)
class HPAScalingRules:
    """``autoscaling/v2.HPAScalingRules``; a field left as None is "unset" (defaulted later).

    Attributes:
        stabilization_window_s: stabilization window (s). None for scale-down means "use the
            controller's downscale stabilization window" (``maybeInitScaleDownStabilizationWindow``).
        select_policy: "Max", "Min" or "Disabled".
        policies: scaling policies, applied in order.
        tolerance: per-direction usage-ratio tolerance (KEP-4951), or None for the controller's.
    """

    stabilization_window_s: int | None = None
    select_policy: SelectPolicy | None = None
    policies: tuple[HPAScalingPolicy, ...] | None = None
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.policies is not None and not isinstance(self.policies, tuple):
            object.__setattr__(self, "policies", tuple(self.policies))


@dataclass(frozen=True)
class HPABehavior:
    """``autoscaling/v2.HorizontalPodAutoscalerBehavior``."""

    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


@dataclass(frozen=True)
class TimestampedRecommendation:
    """An unstabilized recommendation (replicas) and when it was made (s)."""

    recommendation: int
    timestamp_s: float


@dataclass(frozen=True)
class ScaleEvent:
    """A performed rescale: ``replica_change`` (absolute value, >= 0) at ``timestamp_s``."""

    replica_change: int
    timestamp_s: float
    outdated: bool = False


# --------------------------------------------------------------------------------------------------
# Default behavior (pkg/apis/autoscaling/v2/defaults.go)
# --------------------------------------------------------------------------------------------------


def default_scale_up_rules() -> HPAScalingRules:
    """``defaultHPAScaleUpRules``: window 0 s, Max of 4 pods / 15 s and 100 % / 15 s."""
    return HPAScalingRules(
        stabilization_window_s=0,
        select_policy="Max",
        policies=(HPAScalingPolicy("Pods", 4, 15), HPAScalingPolicy("Percent", 100, 15)),
    )


def default_scale_down_rules() -> HPAScalingRules:
    """``defaultHPAScaleDownRules``: window unset (controller's 300 s), Max of 100 % / 15 s."""
    return HPAScalingRules(
        stabilization_window_s=None,
        select_policy="Max",
        policies=(HPAScalingPolicy("Percent", 100, 15),),
    )


def _copy_hpa_scaling_rules(src: HPAScalingRules | None, dst: HPAScalingRules) -> HPAScalingRules:
    """``copyHPAScalingRules``: every field set in ``src`` overrides ``dst``."""
    if src is None:
        return dst
    if src.select_policy is not None:
        dst = replace(dst, select_policy=src.select_policy)
    if src.stabilization_window_s is not None:
        dst = replace(dst, stabilization_window_s=src.stabilization_window_s)
    if src.policies is not None:
        dst = replace(dst, policies=src.policies)
    if src.tolerance is not None:
        dst = replace(dst, tolerance=src.tolerance)
    return dst


def generate_hpa_scale_up_rules(rules: HPAScalingRules | None) -> HPAScalingRules:
    """``GenerateHPAScaleUpRules``: fill the unset fields with the scale-up defaults."""
    return _copy_hpa_scaling_rules(rules, default_scale_up_rules())


def generate_hpa_scale_down_rules(rules: HPAScalingRules | None) -> HPAScalingRules:
    """``GenerateHPAScaleDownRules``: fill the unset fields (except the window) with defaults."""
    return _copy_hpa_scaling_rules(rules, default_scale_down_rules())


def maybe_init_scale_down_stabilization_window(
    behavior: HPABehavior, downscale_stabilization_window_s: float
) -> HPABehavior:
    """``maybeInitScaleDownStabilizationWindow``: an unset scale-down window takes the controller's."""
    down = behavior.scale_down
    if down is not None and down.stabilization_window_s is None:
        window = int(downscale_stabilization_window_s)
        return replace(behavior, scale_down=replace(down, stabilization_window_s=window))
    return behavior


def default_behavior(
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> HPABehavior:
    """The behavior an HPA gets from ``behavior: {}``: both directions defaulted, windows filled."""
    behavior = HPABehavior(generate_hpa_scale_up_rules(None), generate_hpa_scale_down_rules(None))
    return maybe_init_scale_down_stabilization_window(behavior, downscale_stabilization_window_s)


def tolerances_for_hpa(
    behavior: HPABehavior | None,
    default_tolerance: float = DEFAULT_TOLERANCE,
    configurable_tolerance_enabled: bool = True,
) -> Tolerances:
    """``tolerancesForHpa``: per-direction tolerances from the behavior when the gate is on."""
    tolerances = Tolerances(default_tolerance, default_tolerance)
    if behavior is None or not configurable_tolerance_enabled:
        return tolerances
    if behavior.scale_down is not None and behavior.scale_down.tolerance is not None:
        tolerances = replace(tolerances, scale_down=behavior.scale_down.tolerance)
    if behavior.scale_up is not None and behavior.scale_up.tolerance is not None:
        tolerances = replace(tolerances, scale_up=behavior.scale_up.tolerance)
    return tolerances


# --------------------------------------------------------------------------------------------------
# replica_calculator.go
# --------------------------------------------------------------------------------------------------


def _go_div(a: int, b: int) -> int:
    """Go integer division: truncates toward zero (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@dataclass(frozen=True)
class PodGroups:
    """Result of ``groupPods``."""

    ready_pod_count: int
    unready_pods: frozenset[str]
    missing_pods: frozenset[str]
    ignored_pods: frozenset[str]


def is_pod_terminal(pod: PodInfo) -> bool:
    """``podutil.IsPodTerminal``: phase Failed or Succeeded."""
    return pod.phase in ("Failed", "Succeeded")


def group_pods(
    pods: Sequence[PodInfo],
    metrics: Mapping[str, PodMetric],
    resource: str,
    now_s: float,
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    delay_of_initial_readiness_status_s: float = DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S,
) -> PodGroups:
    """``groupPods``: split pods into ready (counted), unready, missing-metric and ignored sets.

    * deleting or terminal (Failed/Succeeded) pods are ignored;
    * Pending pods are unready;
    * pods without a metric are missing;
    * for CPU only: a pod without a Ready condition or start time is unready; within the CPU
      initialization period after start it is unready when not Ready or when its metric window
      began before the last readiness transition; after that period it is unready only when not
      Ready and it has never been ready (its last transition is within the initial readiness delay
      after start).

    Args:
        now_s: current time (s); upstream uses ``time.Now()``.
        cpu_initialization_period_s, delay_of_initial_readiness_status_s: controller flags (s).
    """
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deletion_timestamp_s is not None or is_pod_terminal(pod):
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            missing.add(pod.name)
            continue
        if resource == CPU and _is_cpu_sample_unready(
            pod, metric, now_s, cpu_initialization_period_s, delay_of_initial_readiness_status_s
        ):
            unready.add(pod.name)
            continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def _is_cpu_sample_unready(
    pod: PodInfo,
    metric: PodMetric,
    now_s: float,
    cpu_initialization_period_s: float,
    delay_of_initial_readiness_status_s: float,
) -> bool:
    """The CPU branch of ``groupPods`` (Go ``After``/``Before`` are strict)."""
    if pod.ready_transition_s is None or pod.start_time_s is None:
        return True
    if pod.start_time_s + cpu_initialization_period_s > now_s:
        # Pod still within its initialization period: ignore the sample if the pod is unready
        # or one full metric window has not been collected since the last readiness transition.
        return (not pod.ready) or metric.timestamp_s < pod.ready_transition_s + metric.window_s
    # Ignore the metric if the pod is unready and has never been ready.
    return (not pod.ready) and (
        pod.start_time_s + delay_of_initial_readiness_status_s > pod.ready_transition_s
    )


def remove_metrics_for_pods(
    metrics: Mapping[str, PodMetric], pods: Iterable[str]
) -> dict[str, PodMetric]:
    """``removeMetricsForPods``: a copy of ``metrics`` without the given pods."""
    drop = set(pods)
    return {name: m for name, m in metrics.items() if name not in drop}


def calculate_pod_requests(pods: Sequence[PodInfo], resource: str = CPU) -> dict[str, int]:
    """``calculateRequests`` for whole pods: request per pod (millicores), over *all* listed pods.

    Raises:
        MissingRequestError: a pod has no request (upstream: "missing request for ...").
    """
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request_millicores is None:
            raise MissingRequestError(f"missing request for {resource} in Pod {pod.name}")
        requests[pod.name] = int(pod.request_millicores)
    return requests


def get_resource_utilization_ratio(
    metrics: Mapping[str, PodMetric], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``.

    Returns:
        (usage ratio = utilization / target, utilization in integer percent truncated,
        raw average usage per counted pod in millicores truncated).

    Raises:
        NoMatchingMetricsError: no metric belongs to a pod with a request.
    """
    metrics_total = 0
    requests_total = 0
    num_entries = 0
    for pod_name, metric in metrics.items():
        request = requests.get(pod_name)
        if request is None:
            continue  # missing requests are checked elsewhere: an extraneous metric
        metrics_total += int(metric.usage_millicores)
        requests_total += request
        num_entries += 1
    if requests_total == 0:
        raise NoMatchingMetricsError("no metrics returned matched known pods")
    current_utilization = _go_div(metrics_total * 100, requests_total)
    raw_average = _go_div(metrics_total, num_entries)
    return current_utilization / target_utilization, current_utilization, raw_average


def get_metric_usage_ratio(
    metrics: Mapping[str, PodMetric], target_usage: int
) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (average / target, average per pod truncated), in milli-units."""
    total = sum(int(m.usage_millicores) for m in metrics.values())
    current_usage = _go_div(total, len(metrics))
    return current_usage / target_usage, current_usage


@dataclass(frozen=True)
class ReplicaCalculation:
    """Result of :func:`get_resource_replicas` / :func:`calc_plain_metric_replicas`.

    Attributes:
        replicas: proposed replica count (not yet stabilized, rate-limited or clamped).
        utilization: CPU utilization in integer percent of request (resource target), or the
            average metric value per pod in milli-units (plain metric).
        raw_utilization: average CPU usage per counted pod (millicores); equals ``utilization``
            for a plain metric.
    """

    replicas: int
    utilization: int
    raw_utilization: int


def _rebalanced_replicas(
    current_replicas: int,
    usage_ratio: float,
    new_usage_ratio: float,
    metric_count: int,
    tolerances: Tolerances,
) -> int:
    """The common tail of ``GetResourceReplicas``/``calcPlainMetricReplicas`` after rebalancing.

    No change when the recomputed ratio is within tolerance or flips the scale direction, or when
    the count of pods considered would flip it; otherwise ``ceil(new_ratio * metric_count)``.
    """
    if (
        tolerances.is_within(new_usage_ratio)
        or (usage_ratio < 1.0 and new_usage_ratio > 1.0)
        or (usage_ratio > 1.0 and new_usage_ratio < 1.0)
    ):
        return current_replicas
    new_replicas = math.ceil(new_usage_ratio * metric_count)
    if (new_usage_ratio < 1.0 and new_replicas > current_replicas) or (
        new_usage_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas
    return new_replicas


def get_resource_replicas(
    current_replicas: int,
    target_utilization: int,
    pods: Sequence[PodInfo],
    metrics: Mapping[str, PodMetric],
    now_s: float,
    tolerances: Tolerances = Tolerances(),
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    delay_of_initial_readiness_status_s: float = DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S,
) -> ReplicaCalculation:
    """``GetResourceReplicas`` for CPU with a target average utilization (integer percent).

    ``desired = ceil(ratio * ready pods)`` when no pod is missing a metric and no scale-up has
    unready pods; otherwise missing pods count as ``max(100, target)`` % of their request on a
    scale-down and 0 % on a scale-up, unready pods as 0 % on a scale-up, and the ratio is recomputed
    over all of them (see :func:`_rebalanced_replicas`).

    Args:
        current_replicas: ``scale.spec.replicas``.
        target_utilization: target average utilization (percent of request).
        pods: pods matched by the target's selector.
        metrics: pod name -> CPU usage sample; a pod without a key has no metric.
        now_s: current time (s).

    Raises:
        HPAError: see the subclasses; upstream then leaves the scale unchanged.
    """
    if not metrics:
        raise MetricsUnavailableError(
            "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
        )
    if not pods:
        raise NoPodsError("no pods returned by selector while calculating replica count")
    groups = group_pods(
        pods, metrics, CPU, now_s, cpu_initialization_period_s, delay_of_initial_readiness_status_s
    )
    metrics = remove_metrics_for_pods(metrics, groups.ignored_pods | groups.unready_pods)
    if not metrics:
        raise NoReadyPodMetricsError(
            "did not receive metrics for targeted pods (pods might be unready)"
        )
    requests = calculate_pod_requests(pods, CPU)
    usage_ratio, utilization, raw_utilization = get_resource_utilization_ratio(
        metrics, requests, target_utilization
    )

    scale_up_with_unready = len(groups.unready_pods) > 0 and usage_ratio > 1.0
    if not scale_up_with_unready and not groups.missing_pods:
        if tolerances.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, utilization, raw_utilization)
        replicas = math.ceil(usage_ratio * groups.ready_pod_count)
        return ReplicaCalculation(replicas, utilization, raw_utilization)

    metrics = dict(metrics)
    if groups.missing_pods:
        if usage_ratio < 1.0:
            # Scale-down: missing pods use 100 % of their request (or the target when above 100 %).
            fallback_utilization = max(100, target_utilization)
            for name in groups.missing_pods:
                value = _go_div(requests[name] * fallback_utilization, 100)
                metrics[name] = PodMetric(value, now_s)
        elif usage_ratio > 1.0:
            # Scale-up: missing pods use 0 % of their request.
            for name in groups.missing_pods:
                metrics[name] = PodMetric(0, now_s)
    if scale_up_with_unready:
        for name in groups.unready_pods:
            metrics[name] = PodMetric(0, now_s)

    new_usage_ratio, _, _ = get_resource_utilization_ratio(metrics, requests, target_utilization)
    replicas = _rebalanced_replicas(
        current_replicas, usage_ratio, new_usage_ratio, len(metrics), tolerances
    )
    return ReplicaCalculation(replicas, utilization, raw_utilization)


def calc_plain_metric_replicas(
    metrics: Mapping[str, PodMetric],
    current_replicas: int,
    target_usage: int,
    pods: Sequence[PodInfo],
    now_s: float,
    tolerances: Tolerances = Tolerances(),
    resource: str = "",
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    delay_of_initial_readiness_status_s: float = DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S,
) -> ReplicaCalculation:
    """``calcPlainMetricReplicas``: target average value per pod (milli-units) of a Pods metric.

    ``resource`` is "" for a Pods metric (no CPU readiness rules) or "cpu" for a raw CPU target
    (``GetRawResourceReplicas``). Missing pods count as exactly the target on a scale-down.
    """
    if not pods:
        raise NoPodsError("no pods returned by selector while calculating replica count")
    groups = group_pods(
        pods,
        metrics,
        resource,
        now_s,
        cpu_initialization_period_s,
        delay_of_initial_readiness_status_s,
    )
    metrics = remove_metrics_for_pods(metrics, groups.ignored_pods | groups.unready_pods)
    if not metrics:
        raise NoReadyPodMetricsError(
            "did not receive metrics for targeted pods (pods might be unready)"
        )
    usage_ratio, usage = get_metric_usage_ratio(metrics, target_usage)

    scale_up_with_unready = len(groups.unready_pods) > 0 and usage_ratio > 1.0
    if not scale_up_with_unready and not groups.missing_pods:
        if tolerances.is_within(usage_ratio):
            return ReplicaCalculation(current_replicas, usage, usage)
        return ReplicaCalculation(math.ceil(usage_ratio * groups.ready_pod_count), usage, usage)

    metrics = dict(metrics)
    if groups.missing_pods:
        if usage_ratio < 1.0:
            for name in groups.missing_pods:
                metrics[name] = PodMetric(target_usage, now_s)
        elif usage_ratio > 1.0:
            for name in groups.missing_pods:
                metrics[name] = PodMetric(0, now_s)
    if scale_up_with_unready:
        for name in groups.unready_pods:
            metrics[name] = PodMetric(0, now_s)

    new_usage_ratio, _ = get_metric_usage_ratio(metrics, target_usage)
    replicas = _rebalanced_replicas(
        current_replicas, usage_ratio, new_usage_ratio, len(metrics), tolerances
    )
    return ReplicaCalculation(replicas, usage, usage)


# --------------------------------------------------------------------------------------------------
# horizontal.go: stabilization
# --------------------------------------------------------------------------------------------------


def record_initial_recommendation(
    recommendations: list[TimestampedRecommendation] | None, current_replicas: int, now_s: float
) -> list[TimestampedRecommendation]:
    """``recordInitialRecommendation``: an HPA seen for the first time remembers its current size."""
    if recommendations is None:
        return [TimestampedRecommendation(current_replicas, now_s)]
    return recommendations


def stabilize_recommendation(
    recommendations: Sequence[TimestampedRecommendation],
    prenormalized_desired_replicas: int,
    now_s: float,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> tuple[int, list[TimestampedRecommendation]]:
    """``stabilizeRecommendation`` (legacy path): max over the downscale window.

    Records older than ``now - window`` (strictly) are out of the window; the last of them is
    replaced by the new recommendation, otherwise it is appended.

    Returns:
        (stabilized replicas, new recommendation list).
    """
    max_recommendation = prenormalized_desired_replicas
    old_index: int | None = None
    cutoff = now_s - downscale_stabilization_window_s
    for i, rec in enumerate(recommendations):
        if rec.timestamp_s < cutoff:
            old_index = i
        elif rec.recommendation > max_recommendation:
            max_recommendation = rec.recommendation
    return max_recommendation, _record_recommendation(
        recommendations, old_index, TimestampedRecommendation(prenormalized_desired_replicas, now_s)
    )


def _record_recommendation(
    recommendations: Sequence[TimestampedRecommendation],
    old_index: int | None,
    new: TimestampedRecommendation,
) -> list[TimestampedRecommendation]:
    """Reuse the slot of an out-of-window record, or append (how horizontal.go drops old ones)."""
    updated = list(recommendations)
    if old_index is not None:
        updated[old_index] = new
    else:
        updated.append(new)
    return updated


@dataclass(frozen=True)
class StabilizationResult:
    """Result of :func:`stabilize_recommendation_with_behaviors`."""

    recommendation: int
    reason: str
    message: str
    recommendations: list[TimestampedRecommendation]


def stabilize_recommendation_with_behaviors(
    recommendations: Sequence[TimestampedRecommendation],
    desired_replicas: int,
    current_replicas: int,
    scale_up_rules: HPAScalingRules,
    scale_down_rules: HPAScalingRules,
    now_s: float,
) -> StabilizationResult:
    """``stabilizeRecommendationWithBehaviors``.

    The up-limit is the min over recommendations strictly newer than ``now - up window``, the
    down-limit the max over those strictly newer than ``now - down window`` (both include the new
    one); the result is ``current`` clamped to ``[up-limit, down-limit]``. A record older (strictly)
    than both cutoffs is replaced by the new recommendation, else the new one is appended.
    """
    up_window = _window_s(scale_up_rules)
    down_window = _window_s(scale_down_rules)
    up_cutoff = now_s - up_window
    down_cutoff = now_s - down_window
    up_recommendation = desired_replicas
    down_recommendation = desired_replicas
    old_index: int | None = None
    for i, rec in enumerate(recommendations):
        if rec.timestamp_s > up_cutoff:
            up_recommendation = min(rec.recommendation, up_recommendation)
        if rec.timestamp_s > down_cutoff:
            down_recommendation = max(rec.recommendation, down_recommendation)
        if rec.timestamp_s < up_cutoff and rec.timestamp_s < down_cutoff:
            old_index = i

    recommendation = current_replicas
    if recommendation < up_recommendation:
        recommendation = up_recommendation
    if recommendation > down_recommendation:
        recommendation = down_recommendation

    new_list = _record_recommendation(
        recommendations, old_index, TimestampedRecommendation(desired_replicas, now_s)
    )
    if desired_replicas >= current_replicas:
        reason = "ScaleUpStabilized"
        message = (
            "recent recommendations were lower than current one, "
            "applying the lowest recent recommendation"
        )
    else:
        reason = "ScaleDownStabilized"
        message = (
            "recent recommendations were higher than current one, "
            "applying the highest recent recommendation"
        )
    return StabilizationResult(recommendation, reason, message, new_list)


def _window_s(rules: HPAScalingRules) -> int:
    """The stabilization window of fully-initialized rules (s)."""
    if rules.stabilization_window_s is None:
        raise ValueError(
            "stabilization_window_s is unset; call maybe_init_scale_down_stabilization_window"
        )
    return rules.stabilization_window_s


# --------------------------------------------------------------------------------------------------
# horizontal.go: rate limits
# --------------------------------------------------------------------------------------------------


def get_replicas_change_per_period(
    period_s: float, scale_events: Sequence[ScaleEvent], now_s: float
) -> int:
    """``getReplicasChangePerPeriod``: replicas changed by events strictly newer than ``now - period``."""
    cutoff = now_s - period_s
    return sum(e.replica_change for e in scale_events if e.timestamp_s > cutoff)


def _policy_period_start_replicas(
    current_replicas: int,
    policy: HPAScalingPolicy,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    now_s: float,
) -> int:
    """Replicas at the start of the policy's period: current - added + deleted within it."""
    added = get_replicas_change_per_period(policy.period_s, scale_up_events, now_s)
    deleted = get_replicas_change_per_period(policy.period_s, scale_down_events, now_s)
    return current_replicas - added + deleted


def _rules_policies(rules: HPAScalingRules) -> tuple[HPAScalingPolicy, ...]:
    return rules.policies if rules.policies is not None else ()


_MAX_INT32 = 2**31 - 1
_MIN_INT32 = -(2**31)


def calculate_scale_up_limit_with_scaling_rules(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    scaling_rules: HPAScalingRules,
    now_s: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the scale-up rules allow now.

    Per policy, Pods: ``period_start + value``; Percent: ``ceil(period_start * (1 + value/100))``.
    "Max" takes the largest proposal, "Min" the smallest, "Disabled" returns ``current``.
    """
    if scaling_rules.select_policy == "Disabled":
        return current_replicas
    if scaling_rules.select_policy == "Min":
        result, select = _MAX_INT32, min
    else:
        result, select = _MIN_INT32, max
    proposed = 0
    for policy in _rules_policies(scaling_rules):
        start = _policy_period_start_replicas(
            current_replicas, policy, scale_up_events, scale_down_events, now_s
        )
        if policy.type == "Pods":
            proposed = start + policy.value
        elif policy.type == "Percent":
            # Rounded up: otherwise a small percentage might never add a replica.
            proposed = math.ceil(start * (1 + policy.value / 100))
        result = select(result, proposed)
    return result


def calculate_scale_down_limit_with_behaviors(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    scaling_rules: HPAScalingRules,
    now_s: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the scale-down rules allow now.

    Per policy, Pods: ``period_start - value``; Percent: ``int(period_start * (1 - value/100))``
    (truncated toward zero). "Max" (largest change) takes the smallest proposal, "Min" the largest,
    "Disabled" returns ``current``.
    """
    if scaling_rules.select_policy == "Disabled":
        return current_replicas
    if scaling_rules.select_policy == "Min":
        result, select = _MIN_INT32, max
    else:
        result, select = _MAX_INT32, min
    proposed = 0
    for policy in _rules_policies(scaling_rules):
        start = _policy_period_start_replicas(
            current_replicas, policy, scale_up_events, scale_down_events, now_s
        )
        if policy.type == "Pods":
            proposed = start - policy.value
        elif policy.type == "Percent":
            proposed = int(start * (1 - policy.value / 100))
        result = select(result, proposed)
    return result


def convert_desired_replicas_with_behavior_rate(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    scale_up_rules: HPAScalingRules,
    scale_down_rules: HPAScalingRules,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    now_s: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: apply the rate limits and ``[min, max]``.

    A scale-up limit below ``current`` (after many recent scale-ups) is raised to ``current``, and a
    scale-down limit above ``current`` is lowered to it, so the rules never reverse the direction.

    Returns:
        (replicas, reason, message) where reason is upstream's ScalingLimited reason
        ("DesiredWithinRange", "ScaleUpLimit", "TooManyReplicas", "ScaleDownLimit",
        "TooFewReplicas").
    """
    if desired_replicas > current_replicas:
        scale_up_limit = calculate_scale_up_limit_with_scaling_rules(
            current_replicas, scale_up_events, scale_down_events, scale_up_rules, now_s
        )
        if scale_up_limit < current_replicas:
            # No further scale-up until the scale-up events age out.
            scale_up_limit = current_replicas
        maximum_allowed = max_replicas
        if maximum_allowed > scale_up_limit:
            maximum_allowed = scale_up_limit
            reason = "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        else:
            reason = "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        if desired_replicas > maximum_allowed:
            return maximum_allowed, reason, message
    elif desired_replicas < current_replicas:
        scale_down_limit = calculate_scale_down_limit_with_behaviors(
            current_replicas, scale_up_events, scale_down_events, scale_down_rules, now_s
        )
        if scale_down_limit > current_replicas:
            # No further scale-down until the scale-down events age out.
            scale_down_limit = current_replicas
        minimum_allowed = min_replicas
        if minimum_allowed < scale_down_limit:
            minimum_allowed = scale_down_limit
            reason = "ScaleDownLimit"
            message = "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            reason = "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
        if desired_replicas < minimum_allowed:
            return minimum_allowed, reason, message
    return (
        desired_replicas,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )


def calculate_scale_up_limit(
    current_replicas: int,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> int:
    """``calculateScaleUpLimit`` (legacy path): ``int(max(factor * current, minimum))``."""
    return int(max(scale_up_limit_factor * current_replicas, scale_up_limit_minimum))


def convert_desired_replicas_with_rules(
    current_replicas: int,
    desired_replicas: int,
    hpa_min_replicas: int,
    hpa_max_replicas: int,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithRules`` (legacy path): clamp to ``[min, min(max, up-limit)]``."""
    minimum_allowed = hpa_min_replicas
    scale_up_limit = calculate_scale_up_limit(
        current_replicas, scale_up_limit_factor, scale_up_limit_minimum
    )
    if hpa_max_replicas > scale_up_limit:
        maximum_allowed = scale_up_limit
        condition = "ScaleUpLimit"
        message = "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum_allowed = hpa_max_replicas
        condition = "TooManyReplicas"
        message = "the desired replica count is more than the maximum replica count"
    if desired_replicas < minimum_allowed:
        return (
            minimum_allowed,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired_replicas > maximum_allowed:
        return maximum_allowed, condition, message
    return (
        desired_replicas,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )


# --------------------------------------------------------------------------------------------------
# horizontal.go: normalization (stabilize, then rate-limit and clamp)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalizationResult:
    """Result of the two ``normalizeDesiredReplicas*`` functions.

    Attributes:
        replicas: the replica count the HPA would write to the scale subresource.
        stabilized_recommendation: the recommendation after stabilization, before rate limits.
        able_to_scale_reason: AbleToScale reason ("ReadyForNewScale", "ScaleUpStabilized",
            "ScaleDownStabilized").
        scaling_limited_reason: ScalingLimited reason (see
            :func:`convert_desired_replicas_with_behavior_rate`).
        recommendations: the new recommendation history.
    """

    replicas: int
    stabilized_recommendation: int
    able_to_scale_reason: str
    scaling_limited_reason: str
    recommendations: list[TimestampedRecommendation]


def normalize_desired_replicas(
    recommendations: Sequence[TimestampedRecommendation],
    current_replicas: int,
    prenormalized_desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    now_s: float,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> NormalizationResult:
    """``normalizeDesiredReplicas`` (HPA without ``behavior``)."""
    stabilized, new_recs = stabilize_recommendation(
        recommendations, prenormalized_desired_replicas, now_s, downscale_stabilization_window_s
    )
    able = (
        "ScaleDownStabilized"
        if stabilized != prenormalized_desired_replicas
        else "ReadyForNewScale"
    )
    replicas, limited, _ = convert_desired_replicas_with_rules(
        current_replicas,
        stabilized,
        min_replicas,
        max_replicas,
        scale_up_limit_factor,
        scale_up_limit_minimum,
    )
    return NormalizationResult(replicas, stabilized, able, limited, new_recs)


def normalize_desired_replicas_with_behaviors(
    recommendations: Sequence[TimestampedRecommendation],
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    behavior: HPABehavior,
    current_replicas: int,
    prenormalized_desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    now_s: float,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> NormalizationResult:
    """``normalizeDesiredReplicasWithBehaviors``: stabilize, then rate-limit and clamp.

    ``behavior`` is defaulted first (``SetDefaults_HorizontalPodAutoscalerBehavior`` and
    ``maybeInitScaleDownStabilizationWindow``), so a partially set behavior is accepted.
    """
    behavior = _defaulted_behavior(behavior, downscale_stabilization_window_s)
    assert behavior.scale_up is not None and behavior.scale_down is not None
    stab = stabilize_recommendation_with_behaviors(
        recommendations,
        prenormalized_desired_replicas,
        current_replicas,
        behavior.scale_up,
        behavior.scale_down,
        now_s,
    )
    able = (
        stab.reason if stab.recommendation != prenormalized_desired_replicas else "ReadyForNewScale"
    )
    replicas, limited, _ = convert_desired_replicas_with_behavior_rate(
        current_replicas,
        stab.recommendation,
        min_replicas,
        max_replicas,
        behavior.scale_up,
        behavior.scale_down,
        scale_up_events,
        scale_down_events,
        now_s,
    )
    return NormalizationResult(replicas, stab.recommendation, able, limited, stab.recommendations)


def _defaulted_behavior(
    behavior: HPABehavior, downscale_stabilization_window_s: float
) -> HPABehavior:
    """``SetDefaults_HorizontalPodAutoscalerBehavior`` then ``maybeInitScaleDownStabilizationWindow``."""
    filled = HPABehavior(
        generate_hpa_scale_up_rules(behavior.scale_up),
        generate_hpa_scale_down_rules(behavior.scale_down),
    )
    return maybe_init_scale_down_stabilization_window(filled, downscale_stabilization_window_s)


# --------------------------------------------------------------------------------------------------
# horizontal.go: scale-event history
# --------------------------------------------------------------------------------------------------


def get_longest_policy_period(scaling_rules: HPAScalingRules) -> int:
    """``getLongestPolicyPeriod`` (s)."""
    longest = 0
    for policy in _rules_policies(scaling_rules):
        longest = max(longest, policy.period_s)
    return longest


def mark_scale_events_outdated(
    scale_events: Sequence[ScaleEvent], longest_policy_period_s: float, now_s: float
) -> list[ScaleEvent]:
    """``markScaleEventsOutdated``: events strictly older than the longest period become reusable."""
    cutoff = now_s - longest_policy_period_s
    return [replace(e, outdated=True) if e.timestamp_s < cutoff else e for e in scale_events]


def _store_one_direction(
    events: Sequence[ScaleEvent], rules: HPAScalingRules, replica_change: int, now_s: float
) -> list[ScaleEvent]:
    marked = mark_scale_events_outdated(events, get_longest_policy_period(rules), now_s)
    old_index: int | None = None
    for i, event in enumerate(marked):
        if event.outdated:
            old_index = i
    new_event = ScaleEvent(replica_change, now_s, False)
    if old_index is not None:
        marked[old_index] = new_event
    else:
        marked.append(new_event)
    return marked


def store_scale_event(
    behavior: HPABehavior | None,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    prev_replicas: int,
    new_replicas: int,
    now_s: float,
) -> tuple[list[ScaleEvent], list[ScaleEvent]]:
    """``storeScaleEvent``: record a rescale, reusing the slot of the last outdated event.

    Without a behavior nothing is stored (the legacy path does not use events). ``behavior`` must
    have the direction's rules set (defaulted), as upstream stores events after defaulting.

    Returns:
        (new scale-up events, new scale-down events).
    """
    ups, downs = list(scale_up_events), list(scale_down_events)
    if behavior is None:
        return ups, downs
    if new_replicas > prev_replicas:
        rules = behavior.scale_up if behavior.scale_up is not None else HPAScalingRules()
        ups = _store_one_direction(ups, rules, new_replicas - prev_replicas, now_s)
    else:
        rules = behavior.scale_down if behavior.scale_down is not None else HPAScalingRules()
        downs = _store_one_direction(downs, rules, prev_replicas - new_replicas, now_s)
    return ups, downs


# --------------------------------------------------------------------------------------------------
# The controller: per-HPA state + reconcileAutoscaler's order for one CPU utilization metric
# --------------------------------------------------------------------------------------------------


@dataclass
class HPAController:
    """One HorizontalPodAutoscaler with a single CPU ``Utilization`` resource metric.

    Holds what ``HorizontalController`` keeps per HPA key (recommendations, scale-up and scale-down
    events) and calls the pure functions in ``reconcileAutoscaler``'s order. The caller calls
    :meth:`sync` every sync period (15 s upstream) and applies the returned replica count.

    Attributes:
        max_replicas: ``spec.maxReplicas``.
        min_replicas: ``spec.minReplicas`` (default 1).
        behavior: ``spec.behavior``; None selects the legacy path (``normalizeDesiredReplicas``,
            scale-up limit ``max(2 * current, 4)``). Unset fields are defaulted at construction.
        tolerance, cpu_initialization_period_s, delay_of_initial_readiness_status_s,
        downscale_stabilization_window_s: controller flags (fraction, s, s, s).
        configurable_tolerance_enabled: the ``HPAConfigurableTolerance`` feature gate.
        scale_up_limit_factor, scale_up_limit_minimum: legacy scale-up cap (horizontal.go vars).
        recommendations: unstabilized recommendation history; None until the first sync
            (``recordInitialRecommendation`` then stores the current size).
        scale_up_events, scale_down_events: performed rescales (only kept with a behavior).
        last_error: the error of the last sync's metric computation, or None.
        last_utilization_percent: utilization computed in the last sync (percent), if any.
    """

    max_replicas: int
    min_replicas: int = 1
    behavior: HPABehavior | None = None
    tolerance: float = DEFAULT_TOLERANCE
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S
    delay_of_initial_readiness_status_s: float = DEFAULT_DELAY_OF_INITIAL_READINESS_STATUS_S
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S
    configurable_tolerance_enabled: bool = True
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM
    recommendations: list[TimestampedRecommendation] | None = None
    scale_up_events: list[ScaleEvent] = field(default_factory=list)
    scale_down_events: list[ScaleEvent] = field(default_factory=list)
    last_error: HPAError | None = None
    last_utilization_percent: int | None = None

    def __post_init__(self) -> None:
        if self.behavior is not None:
            self.behavior = _defaulted_behavior(
                self.behavior, self.downscale_stabilization_window_s
            )

    def sync(
        self,
        now_s: float,
        current_replicas: int,
        pods: Sequence[PodInfo],
        metrics: Mapping[str, PodMetric],
        target_utilization_percent: int,
    ) -> int:
        """One ``reconcileAutoscaler`` pass; returns the desired replica count.

        Order: record the initial recommendation; a target at 0 replicas disables scaling (returns
        0); above max -> max and below min -> min without metrics; otherwise compute the CPU
        proposal, normalize it (behavior or legacy) and, when it differs from ``current``, store the
        scale event. A metric error (see :class:`HPAError`) leaves the replicas unchanged and is
        kept in :attr:`last_error`.

        Args:
            now_s: current time (s).
            current_replicas: ``scale.spec.replicas`` of the target.
            pods: pods selected by the target (including terminating and failed ones).
            metrics: pod name -> CPU usage sample (``metrics.k8s.io``).
            target_utilization_percent: ``averageUtilization`` of the CPU metric (percent).
        """
        self.recommendations = record_initial_recommendation(
            self.recommendations, current_replicas, now_s
        )
        self.last_error = None
        min_replicas = self.min_replicas

        if current_replicas == 0:
            # HPAScaleToZero gate off: a workload scaled to zero disables the HPA.
            return 0
        if current_replicas > self.max_replicas:
            desired = self.max_replicas
        elif current_replicas < min_replicas:
            desired = min_replicas
        else:
            tolerances = tolerances_for_hpa(
                self.behavior, self.tolerance, self.configurable_tolerance_enabled
            )
            try:
                calc = get_resource_replicas(
                    current_replicas,
                    target_utilization_percent,
                    pods,
                    metrics,
                    now_s,
                    tolerances,
                    self.cpu_initialization_period_s,
                    self.delay_of_initial_readiness_status_s,
                )
            except HPAError as err:
                self.last_error = err
                return current_replicas
            self.last_utilization_percent = calc.utilization
            desired = max(0, calc.replicas)  # computeReplicasForMetrics starts from 0
            desired = self._normalize(current_replicas, desired, min_replicas, now_s)

        if desired != current_replicas:
            self.scale_up_events, self.scale_down_events = store_scale_event(
                self.behavior,
                self.scale_up_events,
                self.scale_down_events,
                current_replicas,
                desired,
                now_s,
            )
        return desired

    def _normalize(self, current: int, desired: int, min_replicas: int, now_s: float) -> int:
        assert self.recommendations is not None
        if self.behavior is None:
            result = normalize_desired_replicas(
                self.recommendations,
                current,
                desired,
                min_replicas,
                self.max_replicas,
                now_s,
                self.downscale_stabilization_window_s,
                self.scale_up_limit_factor,
                self.scale_up_limit_minimum,
            )
        else:
            result = normalize_desired_replicas_with_behaviors(
                self.recommendations,
                self.scale_up_events,
                self.scale_down_events,
                self.behavior,
                current,
                desired,
                min_replicas,
                self.max_replicas,
                now_s,
                self.downscale_stabilization_window_s,
            )
        self.recommendations = result.recommendations
        return result.replicas
