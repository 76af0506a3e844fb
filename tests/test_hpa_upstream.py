"""Test cases transcribed from upstream Kubernetes HPA tests (numbers kept as upstream).

Sources (kubernetes master, v1.37 cycle, mirrored in omerap12/kubernetes):
``pkg/controller/podautoscaler/replica_calculator_test.go`` (a769d588...) and
``horizontal_test.go`` (060da168...). Every case id starts with the upstream test function.

Fixture translation (upstream -> here):

* replica_calculator_test.go builds pods with two containers, each with the listed CPU request,
  and metrics per container; a pod's request/usage here is the sum over its containers (or one
  container's value for the ContainerResource cases). Unset pod start times, Ready-condition
  transition times and metric timestamps are Go's zero time: ``ZERO`` here, far before ``NOW``.
  It uses ``defaultTestingCPUInitializationPeriod`` = 2 min and
  ``defaultTestingDelayOfInitialReadinessStatus`` = 10 s.
* horizontal_test.go splits each pod's request and metric level over two containers with integer
  halves (``level/2``), sets the Ready transition time to the pod's start time and stamps metrics
  with ``time.Now()``; its ``init()`` sets ``scaleUpLimitFactor = 8``, used here for the legacy path.
"""

from __future__ import annotations

import math

import pytest

from drpc.baselines.hpa import (
    HPABehavior,
    HPAController,
    HPAError,
    HPAScalingPolicy,
    HPAScalingRules,
    PodInfo,
    PodMetric,
    ScaleEvent,
    TimestampedRecommendation,
    Tolerances,
    calc_plain_metric_replicas,
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit,
    calculate_scale_up_limit_with_scaling_rules,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    default_behavior,
    generate_hpa_scale_down_rules,
    generate_hpa_scale_up_rules,
    get_replicas_change_per_period,
    get_resource_replicas,
    group_pods,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)

NOW = 1_000_000.0
ZERO = 0.0  # Go's zero time.Time: long before NOW
TIME_3_MINS_AGO = NOW - 180.0
TESTING_CPU_INIT_S = 120.0  # defaultTestingCPUInitializationPeriod
TESTING_READY_DELAY_S = 10.0  # defaultTestingDelayOfInitialReadinessStatus
TESTING_TOLERANCE = 0.1  # defaultTestingTolerance
TEST_SCALE_UP_LIMIT_FACTOR = 8.0  # horizontal_test.go init()
T, F = True, False
R, P, FAILED, SUCCEEDED = "Running", "Pending", "Failed", "Succeeded"


# --------------------------------------------------------------------------------------------------
# replica_calculator_test.go
# --------------------------------------------------------------------------------------------------


def levels(*per_pod: int) -> list[list[int]]:
    """makePodMetricLevels: both containers of pod i report per_pod[i]."""
    return [[v, v] for v in per_pod]


def calc_scenario(
    current: int,
    requests: list[int],
    lv: list[list[int]],
    *,
    readiness: list[bool] | None = None,
    start: list[float] | None = None,
    phase: list[str] | None = None,
    deleted: list[bool] | None = None,
    container: int | None = None,
    pod_names: list[str] | None = None,
    timestamp: float = ZERO,
) -> tuple[list[PodInfo], dict[str, PodMetric]]:
    """calcScenario -> (pods, metrics); requests are per container (millicores)."""
    n_pods = max(current, len(phase) if phase else 0)
    pods = []
    for i in range(n_pods):
        if i < len(requests):
            request = requests[i] if container is not None else 2 * requests[i]
        else:
            request = None
        pods.append(
            PodInfo(
                name=f"test-pod-{i}",
                phase=phase[i] if phase else R,
                ready=readiness[i] if readiness and i < len(readiness) else True,
                deletion_timestamp_s=NOW if deleted and deleted[i] else None,
                start_time_s=start[i] if start else ZERO,
                ready_transition_s=ZERO,
                request_millicores=request,
            )
        )
    metrics = {}
    for i, containers in enumerate(lv):
        name = pod_names[i] if pod_names and i < len(pod_names) else f"test-pod-{i}"
        if container is None:
            usage = sum(containers)
        elif container < len(containers):
            usage = containers[container]
        else:
            continue  # the container has no metric
        metrics[name] = PodMetric(usage, timestamp, 60.0)
    return pods, metrics


RESOURCE_CASES = [
    # TestReplicaCalcResourceScale
    (
        "TestReplicaCalcResourceScale/scale up",
        dict(current=3, requests=[1000] * 3, lv=levels(300, 500, 700)),
        30,
        (5, 50, 2 * 500),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: container metric",
        dict(
            current=3, requests=[1000] * 3, lv=[[1000, 300], [1000, 500], [1000, 700]], container=1
        ),
        30,
        (5, 50, 500),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: unready pod scales less",
        dict(current=3, requests=[1000] * 3, lv=levels(300, 500, 700), readiness=[F, T, T]),
        30,
        (4, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: hot-CPU container scales less",
        dict(
            current=3,
            requests=[1000] * 3,
            lv=[[0, 300], [0, 500], [0, 700]],
            start=[NOW, TIME_3_MINS_AGO, TIME_3_MINS_AGO],
            container=1,
        ),
        30,
        (4, 60, 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: hot-CPU pod scales less",
        dict(
            current=3,
            requests=[1000] * 3,
            lv=levels(300, 500, 700),
            start=[NOW, TIME_3_MINS_AGO, TIME_3_MINS_AGO],
        ),
        30,
        (4, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceScale/no scale: unready pods ignored",
        dict(current=3, requests=[1000] * 3, lv=levels(400, 500, 700), readiness=[T, F, F]),
        30,
        (3, 40, 2 * 400),
    ),
    (
        "TestReplicaCalcResourceScale/no scale: hot-CPU pods ignored",
        dict(
            current=3,
            requests=[1000] * 3,
            lv=levels(400, 500, 700),
            readiness=[T, F, F],
            start=[TIME_3_MINS_AGO, NOW, NOW],
        ),
        30,
        (3, 40, 2 * 400),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: failed pods ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=levels(500, 700),
            readiness=[T, T, F, F],
            phase=[R, R, FAILED, FAILED],
        ),
        30,
        (4, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: failed pods ignored with missing container metric",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=[[1000, 500], [9000, 700], [1000], [9000]],
            readiness=[T, T, F, F],
            phase=[R, R, FAILED, FAILED],
            container=1,
        ),
        30,
        (4, 60, 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: container metrics with failed pods ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=[[1000, 500], [9000, 700]],
            readiness=[T, T, F, F],
            phase=[R, R, FAILED, FAILED],
            container=1,
        ),
        30,
        (4, 60, 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: succeeded pods ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=levels(500, 700),
            readiness=[T, T, F, F],
            phase=[R, R, SUCCEEDED, SUCCEEDED],
        ),
        30,
        (4, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: container metric with succeeded pods ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=[[1000, 500], [9000, 700]],
            readiness=[T, T, F, F],
            phase=[R, R, SUCCEEDED, SUCCEEDED],
            container=1,
        ),
        30,
        (4, 60, 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: pods being deleted are ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=levels(500, 700),
            readiness=[T, T, F, F],
            phase=[R, R, R, R],
            deleted=[F, F, T, T],
        ),
        30,
        (4, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale up: container metrics with pods being deleted ignored",
        dict(
            current=2,
            requests=[1000] * 4,
            lv=levels(500, 700),
            readiness=[T, T, F, F],
            phase=[R, R, R, R],
            deleted=[F, F, T, T],
            container=0,
        ),
        30,
        (4, 60, 600),
    ),
    (
        "TestReplicaCalcResourceScale/scale down",
        dict(current=5, requests=[1000] * 5, lv=levels(100, 300, 500, 250, 250)),
        50,
        (3, 28, 2 * 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            container=1,
        ),
        50,
        (3, 28, 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: exclude unready pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=levels(100, 300, 500, 250, 250),
            readiness=[T, T, T, F, F],
        ),
        50,
        (2, 30, 2 * 300),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric excludes unready pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            readiness=[T, T, T, F, F],
            container=1,
        ),
        50,
        (2, 30, 300),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: exclude unscheduled pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=levels(100),
            readiness=[T, F, F, F, F],
            phase=[R, P, P, P, P],
        ),
        50,
        (1, 10, 2 * 100),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric excludes unscheduled pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            readiness=[T, F, F, F, F],
            phase=[R, P, P, P, P],
            container=1,
        ),
        50,
        (1, 10, 100),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: ignore hot-CPU pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=levels(100, 300, 500, 250, 250),
            start=[TIME_3_MINS_AGO] * 3 + [NOW] * 2,
        ),
        50,
        (2, 30, 2 * 300),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric ignores hot-CPU pods",
        dict(
            current=5,
            requests=[1000] * 5,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 1000], [1000, 1000]],
            start=[TIME_3_MINS_AGO] * 3 + [NOW] * 2,
            container=1,
        ),
        50,
        (2, 30, 300),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: failed pods ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=levels(100, 300, 500, 250, 250),
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 5 + [FAILED] * 2,
        ),
        50,
        (3, 28, 2 * 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric with failed pods ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 5 + [FAILED] * 2,
            container=1,
        ),
        50,
        (3, 28, 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: succeeded pods ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=levels(100, 300, 500, 250, 250),
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 5 + [SUCCEEDED] * 2,
        ),
        50,
        (3, 28, 2 * 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: container metric with succeeded pods ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 5 + [SUCCEEDED] * 2,
            container=1,
        ),
        50,
        (3, 28, 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: pods being deleted are ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=levels(100, 300, 500, 250, 250),
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 7,
            deleted=[F] * 5 + [T] * 2,
        ),
        50,
        (3, 28, 2 * 280),
    ),
    (
        "TestReplicaCalcResourceScale/scale down: still-running pods being deleted are ignored",
        dict(
            current=5,
            requests=[1000] * 7,
            lv=[[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
            readiness=[T] * 5 + [F] * 2,
            phase=[R] * 7,
            deleted=[F] * 5 + [T] * 2,
            container=1,
        ),
        50,
        (3, 28, 280),
    ),
    # TestReplicaCalcResourceTolerance (requests 0.9, 1.0, 1.1 cores per container)
    (
        "TestReplicaCalcResourceTolerance/within default tolerance",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(1010, 1030, 1020)),
        100,
        (3, 102, 2 * 1020),
    ),
    (
        "TestReplicaCalcResourceTolerance/outside 0% tolerance",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(909, 1010, 1111)),
        100,
        (4, 101, 2 * 1010),
        Tolerances(0.0, 0.0),
    ),
    (
        "TestReplicaCalcResourceTolerance/within 200% scale-up tolerance",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(1890, 1910, 1900)),
        100,
        (3, 190, 2 * 1900),
        Tolerances(TESTING_TOLERANCE, 2.0),
    ),
    (
        "TestReplicaCalcResourceTolerance/outside 8% scale-up tolerance (superfluous scale-down tolerance)",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(1100, 1080, 1090)),
        100,
        (4, 109, 2 * 1090),
        Tolerances(2.0, 0.08),
    ),
    (
        "TestReplicaCalcResourceTolerance/within 36% scale-down tolerance",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(660, 640, 650)),
        100,
        (3, 65, 2 * 650),
        Tolerances(0.36, TESTING_TOLERANCE),
    ),
    (
        "TestReplicaCalcResourceTolerance/outside 34% scale-down tolerance",
        dict(current=3, requests=[900, 1000, 1100], lv=levels(660, 640, 650)),
        100,
        (2, 65, 2 * 650),
        Tolerances(0.34, TESTING_TOLERANCE),
    ),
    # TestReplicaCalcResourceMissingMetrics
    (
        "TestReplicaCalcResourceMissingMetrics/superfluous metrics counted",
        dict(current=4, requests=[1000] * 4, lv=levels(4000, 9500, 3000, 7000, 3200, 2000)),
        100,
        (24, 587, 2 * 5875),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/some pods missing metrics scales down",
        dict(current=4, requests=[1000] * 4, lv=levels(400, 95)),
        100,
        (3, 24, 495),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: metric equal to target",
        dict(current=2, requests=[1000] * 2, lv=levels(1000)),
        100,
        (2, 100, 2 * 1000),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: metric above target",
        dict(current=2, requests=[1000] * 2, lv=levels(1900)),
        100,
        (2, 190, 2 * 1900),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: metric below target",
        dict(current=2, requests=[1000] * 2, lv=levels(600)),
        100,
        (2, 60, 2 * 600),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: unready pod metric missing",
        dict(current=3, requests=[1000] * 3, lv=levels(100, 450), readiness=[F, T, T]),
        50,
        (3, 45, 2 * 450),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: hot-CPU pod metric missing",
        dict(
            current=3,
            requests=[1000] * 3,
            lv=levels(100, 450),
            start=[NOW, TIME_3_MINS_AGO, TIME_3_MINS_AGO],
        ),
        50,
        (3, 45, 2 * 450),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale up: unready pod metric missing",
        dict(current=3, requests=[1000] * 3, lv=levels(100, 2000), readiness=[F, T, T]),
        50,
        (4, 200, 2 * 2000),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale up: hot-CPU pod metric missing",
        dict(
            current=3,
            requests=[1000] * 3,
            lv=levels(100, 2000),
            readiness=[F, T, T],
            start=[NOW, TIME_3_MINS_AGO, TIME_3_MINS_AGO],
        ),
        50,
        (4, 200, 2 * 2000),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale down: unready pod metric missing",
        dict(current=4, requests=[1000] * 4, lv=levels(100, 100, 100), readiness=[F, T, T, T]),
        50,
        (3, 10, 2 * 100),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale down: target over 100",
        dict(
            current=4,
            requests=[1000, 1000, 2000, 2000],
            lv=levels(200, 100, 100),
            readiness=[F, T, T, T],
        ),
        300,
        (2, 6, 2 * 100),
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/rolling update with maxSurge: extra pod missing metric",
        dict(current=2, requests=[1000] * 3, lv=levels(100, 100), phase=[R, R, R]),
        50,
        (2, 10, 2 * 100),
    ),
]

RESOURCE_ERROR_CASES = [
    (
        "TestReplicaCalcResourceMissingMetrics/disjoint pod and metric names",
        dict(current=1, requests=[1000], lv=levels(100), pod_names=["an-older-pod-name"]),
        100,
        "no metrics returned matched known pods",
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no metrics returned from metrics API",
        dict(current=4, requests=[1000] * 3, lv=levels()),
        100,
        "unable to get metrics for resource cpu: no metrics returned from resource metrics API",
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/missing CPU request on container",
        dict(current=1, requests=[], lv=levels(200)),
        100,
        "missing request for",
    ),
]


def _resource_replicas(fixture: dict, target: int, tolerances: Tolerances | None):
    fx = dict(fixture)
    current = fx.pop("current")
    pods, metrics = calc_scenario(current, **fx)
    return get_resource_replicas(
        current,
        target,
        pods,
        metrics,
        NOW,
        tolerances or Tolerances(TESTING_TOLERANCE, TESTING_TOLERANCE),
        TESTING_CPU_INIT_S,
        TESTING_READY_DELAY_S,
    )


@pytest.mark.parametrize("case", RESOURCE_CASES, ids=[c[0] for c in RESOURCE_CASES])
def test_get_resource_replicas(case):
    _, fixture, target, (replicas, utilization, raw), *rest = case
    result = _resource_replicas(fixture, target, rest[0] if rest else None)
    assert (result.replicas, result.utilization, result.raw_utilization) == (
        replicas,
        utilization,
        raw,
    )


@pytest.mark.parametrize("case", RESOURCE_ERROR_CASES, ids=[c[0] for c in RESOURCE_ERROR_CASES])
def test_get_resource_replicas_errors(case):
    _, fixture, target, message = case
    with pytest.raises(HPAError, match=message):
        _resource_replicas(fixture, target, None)


def test_computed_tolerance_alg_implementation():
    """TestReplicaCalcComputedToleranceAlgImplementation (same arithmetic as upstream)."""
    start_pods = 10
    total_used = start_pods * 150
    total_requested = 2 * total_used
    requested_to_used = float(total_requested // total_used)
    per_pod_requested = total_requested // start_pods
    target = abs(1 / (requested_to_used * (1 - TESTING_TOLERANCE))) + 0.01
    final_cpu_percent_target = int(target * 100)
    resources_used_ratio = total_used / (total_requested * target)
    final_pods = math.ceil(resources_used_ratio * start_pods)
    jitter = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0]
    fixture = dict(
        current=start_pods,
        requests=[per_pod_requested + j for j in jitter],
        lv=levels(*([total_used // 10] * 10)),
    )
    expected_util = (total_used * 100) // total_requested
    expected_raw = 2 * total_used // 10

    result = _resource_replicas(fixture, final_cpu_percent_target, None)
    assert (result.replicas, result.utilization, result.raw_utilization) == (
        final_pods,
        expected_util,
        expected_raw,
    )
    # "unscaling": no change within a very close margin to the tolerance
    target = abs(1 / (requested_to_used * (1 - TESTING_TOLERANCE))) + 0.004
    result = _resource_replicas(fixture, int(target * 100), None)
    assert (result.replicas, result.utilization, result.raw_utilization) == (
        start_pods,
        expected_util,
        expected_raw,
    )


# TestGroupPods: (name, pods, metrics, resource, ready, unready, missing, ignored)
GROUP_PODS_CASES = [
    ("void", [], {}, "cpu", 0, set(), set(), set()),
    (
        "count in a ready pod - memory",
        [PodInfo("bentham", R)],
        {"bentham": PodMetric(1, NOW, 60)},
        "memory",
        1,
        set(),
        set(),
        set(),
    ),
    (
        "unready a pod without ready condition - CPU",
        [PodInfo("lucretius", R, start_time_s=NOW)],
        {"lucretius": PodMetric(1, ZERO, 0)},
        "cpu",
        0,
        {"lucretius"},
        set(),
        set(),
    ),
    (
        "count in a ready pod with fresh metrics during initialization period - CPU",
        [PodInfo("bentham", R, True, start_time_s=NOW - 60, ready_transition_s=NOW - 30)],
        {"bentham": PodMetric(1, NOW, 30)},
        "cpu",
        1,
        set(),
        set(),
        set(),
    ),
    (
        "unready a ready pod without fresh metrics during initialization period - CPU",
        [PodInfo("bentham", R, True, start_time_s=NOW - 60, ready_transition_s=NOW - 30)],
        {"bentham": PodMetric(1, NOW, 60)},
        "cpu",
        0,
        {"bentham"},
        set(),
        set(),
    ),
    (
        "unready an unready pod during initialization period - CPU",
        [PodInfo("lucretius", R, False, start_time_s=NOW - 600, ready_transition_s=NOW - 594)],
        {"lucretius": PodMetric(1, ZERO, 0)},
        "cpu",
        0,
        {"lucretius"},
        set(),
        set(),
    ),
    (
        "count in a ready pod without fresh metrics after initialization period - CPU",
        [PodInfo("bentham", R, True, start_time_s=NOW - 180, ready_transition_s=NOW - 180)],
        {"bentham": PodMetric(1, NOW - 120, 60)},
        "cpu",
        1,
        set(),
        set(),
        set(),
    ),
    (
        "count in an unready pod that was ready after initialization period - CPU",
        [PodInfo("lucretius", R, False, start_time_s=NOW - 600, ready_transition_s=NOW - 540)],
        {"lucretius": PodMetric(1, ZERO, 0)},
        "cpu",
        1,
        set(),
        set(),
        set(),
    ),
    (
        "unready pod that has never been ready after initialization period - CPU",
        [PodInfo("lucretius", R, False, start_time_s=NOW - 600, ready_transition_s=NOW - 590)],
        {"lucretius": PodMetric(1, ZERO, 0)},
        "cpu",
        1,
        set(),
        set(),
        set(),
    ),
    (
        "a missing pod",
        [PodInfo("epicurus", R, start_time_s=NOW - 180)],
        {},
        "cpu",
        0,
        set(),
        {"epicurus"},
        set(),
    ),
    (
        "several pods",
        [
            PodInfo("lucretius", R, start_time_s=NOW),
            PodInfo("niccolo", R, True, start_time_s=NOW - 180, ready_transition_s=NOW - 180),
            PodInfo("epicurus", R, start_time_s=NOW - 180),
        ],
        {"lucretius": PodMetric(1, ZERO, 0), "niccolo": PodMetric(1, ZERO, 0)},
        "cpu",
        1,
        {"lucretius"},
        {"epicurus"},
        set(),
    ),
    (
        "pending pods are unreadied",
        [PodInfo("unscheduled", P)],
        {},
        "cpu",
        0,
        {"unscheduled"},
        set(),
        set(),
    ),
    (
        "ignore pods with deletion timestamps",
        [PodInfo("deleted", P, deletion_timestamp_s=1.0)],
        {"deleted": PodMetric(1, ZERO, 0)},
        "cpu",
        0,
        set(),
        set(),
        {"deleted"},
    ),
    (
        "ignore pods in a failed state",
        [PodInfo("failed", FAILED)],
        {"failed": PodMetric(1, ZERO, 0)},
        "cpu",
        0,
        set(),
        set(),
        {"failed"},
    ),
    (
        "ignore pods in a succeeded state",
        [PodInfo("succeeded", SUCCEEDED)],
        {"succeeded": PodMetric(1, ZERO, 0)},
        "cpu",
        0,
        set(),
        set(),
        {"succeeded"},
    ),
]


@pytest.mark.parametrize(
    "case", GROUP_PODS_CASES, ids=[f"TestGroupPods/{c[0]}" for c in GROUP_PODS_CASES]
)
def test_group_pods(case):
    _, pods, metrics, resource, ready, unready, missing, ignored = case
    groups = group_pods(pods, metrics, resource, NOW, TESTING_CPU_INIT_S, TESTING_READY_DELAY_S)
    assert groups.ready_pod_count == ready
    assert groups.unready_pods == unready
    assert groups.missing_pods == missing
    assert groups.ignored_pods == ignored


# TestReplicaCalcPodMetric (GetMetricReplicas -> calcPlainMetricReplicas with resource "")
# fmt: off
POD_METRIC_CASES = [
    ("scale up", dict(current=3, lv=[20000, 10000, 30000]), 15000, (4, 20000), None),
    (
        "scale up: unready hot-CPU pod scales less",
        dict(
            current=3,
            lv=[50000, 10000, 30000],
            readiness=[T, T, F],
            start=[TIME_3_MINS_AGO, TIME_3_MINS_AGO, NOW],
        ),
        15000,
        (6, 30000),
        None,
    ),
    (
        "scale up: unready hot-CPU pods avoid scale-down",
        dict(
            current=3,
            lv=[50000, 15000, 30000],
            readiness=[F, T, F],
            start=[NOW, TIME_3_MINS_AGO, NOW],
        ),
        15000,
        (7, 31666),
        None,
    ),
    ("scale down", dict(current=5, lv=[12000] * 5), 20000, (3, 12000), None),
    ("within default tolerance", dict(current=3, lv=[20000, 21000, 21000]), 20000, (3, 20666), None),
    (
        "outside configurable 1% tolerance",
        dict(current=3, lv=[20000, 21000, 21000]),
        20000,
        (4, 20666),
        Tolerances(TESTING_TOLERANCE, 0.01),
    ),
    ("no change: missing metrics", dict(current=5, lv=[20000, 19000, 21000]), 20000, (5, 20000), None),
    (
        "rolling update with maxSurge: extra pod missing metric",
        dict(current=2, lv=[10000, 10000], phase=[R, R, R]),
        17000,
        (2, 10000),
        None,
    ),
]
# fmt: on


@pytest.mark.parametrize(
    "case", POD_METRIC_CASES, ids=[f"TestReplicaCalcPodMetric/{c[0]}" for c in POD_METRIC_CASES]
)
def test_calc_plain_metric_replicas(case):
    _, fx, target, (replicas, usage), tolerances = case
    fx = dict(fx)
    current = fx.pop("current")
    per_pod = fx.pop("lv")
    pods, _ = calc_scenario(current, [], [], **fx)
    metrics = {f"test-pod-{i}": PodMetric(v, ZERO, 60) for i, v in enumerate(per_pod)}
    result = calc_plain_metric_replicas(
        metrics,
        current,
        target,
        pods,
        NOW,
        tolerances or Tolerances(TESTING_TOLERANCE, TESTING_TOLERANCE),
        "",
        TESTING_CPU_INIT_S,
        TESTING_READY_DELAY_S,
    )
    assert (result.replicas, result.utilization) == (replicas, usage)


# --------------------------------------------------------------------------------------------------
# horizontal_test.go: pure functions
# --------------------------------------------------------------------------------------------------


def generate_scaling_rules(pods, pods_period, percent, percent_period, stabilization_window):
    """generateScalingRules: Max policy; a Pods and/or a Percent policy when non-zero."""
    policies = []
    if pods != 0:
        policies.append(HPAScalingPolicy("Pods", pods, pods_period))
    if percent != 0:
        policies.append(HPAScalingPolicy("Percent", percent, percent_period))
    return HPAScalingRules(stabilization_window, "Max", tuple(policies))


def generate_events_uniform_distribution(raw_events, period_seconds):
    """generateEventsUniformDistribution: event i at the middle of segment i (Duration truncates)."""
    segment = period_seconds / len(raw_events)
    events = []
    for idx, change in enumerate(raw_events):
        boundary = int(period_seconds - segment * (idx + 1) + segment / 2)
        events.append(ScaleEvent(change, NOW - boundary))
    return events


# fmt: off
CONVERT_CASES = [
    # (current, desired, min, max, expected, condition, annotation)
    (5, 7, 3, 8, 7, "DesiredWithinRange", "prenormalized desired replicas within range"),
    (3, 1, 2, 8, 2, "TooFewReplicas", "prenormalized desired replicas < minReplicas"),
    (1, 0, 0, 10, 0, "DesiredWithinRange", "prenormalized desired zeroed replicas within range"),
    (20, 1000, 1, 10, 10, "TooManyReplicas", "maxReplicas is the limit because maxReplicas < scaleUpLimit"),
    (
        3,
        1000,
        1,
        2000,
        calculate_scale_up_limit(3, TEST_SCALE_UP_LIMIT_FACTOR),
        "ScaleUpLimit",
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    "case",
    CONVERT_CASES,
    ids=[f"TestConvertDesiredReplicasWithRules/{c[-1]}" for c in CONVERT_CASES],
)
def test_convert_desired_replicas_with_rules(case):
    current, desired, lo, hi, expected, condition, _ = case
    replicas, reason, _ = convert_desired_replicas_with_rules(
        current, desired, lo, hi, TEST_SCALE_UP_LIMIT_FACTOR
    )
    assert (replicas, reason) == (expected, condition)


def test_calculate_scale_up_limit_with_scaling_rules():
    """TestCalculateScaleUpLimitWithScalingRules: Min of 1+2 pods and ceil(1*1.5)."""
    rules = HPAScalingRules(
        300, "Min", (HPAScalingPolicy("Pods", 2, 60), HPAScalingPolicy("Percent", 50, 60))
    )
    assert calculate_scale_up_limit_with_scaling_rules(1, [], [], rules, NOW) == 2


def test_calculate_scale_down_limit_with_behaviors():
    """TestCalculateScaleDownLimitWithBehaviors: Min change of 5-2 and int(5*0.5)."""
    rules = HPAScalingRules(
        300, "Min", (HPAScalingPolicy("Pods", 2, 60), HPAScalingPolicy("Percent", 50, 60))
    )
    assert calculate_scale_down_limit_with_behaviors(5, [], [], rules, NOW) == 3


# TestNormalizeDesiredReplicas (legacy stabilizeRecommendation, window 5 min)
# fmt: off
LEGACY_STABILIZE_CASES = [
    ("empty log", [], 5, 5, 1),
    ("stabilize", [(4, -120), (5, -60)], 3, 5, 3),
    ("no stabilize", [(1, -120), (2, -60)], 3, 3, 3),
    ("no stabilize - old recommendations", [(10, -600), (9, -540)], 3, 3, 2),
    ("stabilize - old recommendations", [(10, -600), (4, -60), (5, -120), (9, -540)], 3, 5, 4),
]
# fmt: on


@pytest.mark.parametrize(
    "case",
    LEGACY_STABILIZE_CASES,
    ids=[f"TestNormalizeDesiredReplicas/{c[0]}" for c in LEGACY_STABILIZE_CASES],
)
def test_stabilize_recommendation(case):
    _, recs, desired, expected, log_length = case
    history = [TimestampedRecommendation(r, NOW + dt) for r, dt in recs]
    stabilized, new_history = stabilize_recommendation(history, desired, NOW, 300)
    assert stabilized == expected
    assert len(new_history) == log_length


# fmt: off
SCALING_WITH_RULES_CASES = [
    # name, up events, down events, min, max, up rules, down rules, current, desired, expected, cond
    ("prenormalized desired replicas within range", [], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", [], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    (
        "prenormalized desired replicas within range when minReplicas is 0",
        [], [], 0, 10, None, None, 1, 0, 0, "DesiredWithinRange",
    ),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        [], [], 1, 10, None, None, 20, 1000, 10, "TooManyReplicas",
    ),
    (
        "desired replica count is more than the maximum replica count",
        [], [], 100, 150, None, None, 100, 1000, 150, "TooManyReplicas",
    ),
    (
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        [], [], 1, 2000, generate_scaling_rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit",
    ),
    ("scaleUp with default behavior", [], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    (
        "scaleUp with pods policy larger than percent policy",
        [], [], 1, 1000, generate_scaling_rules(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy larger than pods policy",
        [], [], 1, 1000, generate_scaling_rules(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        [], [], 1, 1000, generate_scaling_rules(100, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        [], [], 1, 1000, generate_scaling_rules(10000, 60, 0, 0, 0), None, 10, 50, 50,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with pod policy limitation",
        [], [], 1, 1000, generate_scaling_rules(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy limitation",
        [], [], 1, 1000, generate_scaling_rules(0, 0, 200, 60, 0), None, 10, 50, 30, "ScaleUpLimit",
    ),
    (
        "scaleDown with percent policy larger than pod policy",
        [], [], 1, 1000, None, generate_scaling_rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit",
    ),
    (
        "scaleDown with pod policy larger than percent policy",
        [], [], 1, 1000, None, generate_scaling_rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy",
        [], [], 1, 1000, None, generate_scaling_rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy",
        [], [], 5, 1000, None, generate_scaling_rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation",
        [], [], 1, 1000, None, generate_scaling_rules(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation",
        [], [], 1, 1000, None, generate_scaling_rules(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        generate_events_uniform_distribution([1, 5, 9], 120), [], 1, 200,
        generate_scaling_rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        generate_events_uniform_distribution([1, 5, 9], 120), [], 1, 200,
        generate_scaling_rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas",
    ),
    (
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
        generate_events_uniform_distribution([1, 5, 9], 120), [], 1, 1000,
        generate_scaling_rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit",
    ),
    (
        "scaleUp with pod policy and previous scale up events",
        generate_events_uniform_distribution([1, 5, 9], 120), [], 1, 1000,
        generate_scaling_rules(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up events",
        generate_events_uniform_distribution([1, 5, 9], 120), [], 1, 1000,
        generate_scaling_rules(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up and down events",
        generate_events_uniform_distribution([4], 120), generate_events_uniform_distribution([2], 120),
        1, 1000, generate_scaling_rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit",
    ),
    (
        "scaleDown with default policy and previous events",
        [], generate_events_uniform_distribution([1, 5, 9], 120), 1, 1000, None, None, 10, 5, 5,
        "DesiredWithinRange",
    ),
    (
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        [], generate_events_uniform_distribution([1, 5, 9], 120), 1, 1000, None,
        generate_scaling_rules(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        [], generate_events_uniform_distribution([1, 5, 9], 120), 5, 1000, None,
        generate_scaling_rules(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        [], generate_events_uniform_distribution([1, 5, 9], 120), 5, 1000, None,
        generate_scaling_rules(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation and previous events",
        [], generate_events_uniform_distribution([1, 5, 9], 120), 1, 1000, None,
        generate_scaling_rules(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation and previous events",
        [], generate_events_uniform_distribution([2, 4, 6], 120), 1, 1000, None,
        generate_scaling_rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy and previous scale up and down events",
        generate_events_uniform_distribution([2], 120), generate_events_uniform_distribution([4], 120),
        1, 1000, None, generate_scaling_rules(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit",
    ),
    (
        "scaleDown with previous events preventing further scale down",
        [], generate_events_uniform_distribution([10, 10, 10], 120), 1, 1000, None,
        generate_scaling_rules(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit",
    ),
    (
        "scaleDown with with previous events still allowing more scale down",
        [], generate_events_uniform_distribution([10, 10, 10], 120), 1, 1000, None,
        generate_scaling_rules(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for up",
        generate_events_uniform_distribution([8, 12, 9, 11], 120), [], 1, 1000,
        generate_scaling_rules(1000, 60, 0, 0, 0), None, 100, 200, 200, "DesiredWithinRange",
    ),
    (
        "check that events were not marked 'outdated' for two different policies in the behavior for up",
        generate_events_uniform_distribution([8, 12, 9, 11], 120), [], 1, 1000,
        generate_scaling_rules(1000, 120, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange",
    ),
    (
        "check that events were marked 'outdated' for two different policies in the behavior for up",
        generate_events_uniform_distribution([8, 12, 9, 11], 120), [], 1, 1000,
        generate_scaling_rules(1000, 30, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for down",
        [], generate_events_uniform_distribution([8, 12, 9, 11], 120), 1, 1000, None,
        generate_scaling_rules(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange",
    ),
    (
        "check that events were not marked 'outdated' for two different policies in the behavior for down",
        [], generate_events_uniform_distribution([8, 12, 9, 11], 120), 1, 1000, None,
        generate_scaling_rules(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange",
    ),
    (
        "check that events were marked 'outdated' for two different policies in the behavior for down",
        [], generate_events_uniform_distribution([8, 12, 9, 11], 120), 1, 1000, None,
        generate_scaling_rules(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    "case",
    SCALING_WITH_RULES_CASES,
    ids=[f"TestScalingWithRules/{c[0]}" for c in SCALING_WITH_RULES_CASES],
)
def test_convert_desired_replicas_with_behavior_rate(case):
    _, ups, downs, lo, hi, up_rules, down_rules, current, desired, expected, condition = case
    replicas, reason, _ = convert_desired_replicas_with_behavior_rate(
        current,
        desired,
        lo,
        hi,
        generate_hpa_scale_up_rules(up_rules),
        generate_hpa_scale_down_rules(down_rules),
        ups,
        downs,
        NOW,
    )
    assert (replicas, reason) == (expected, condition)


# TestStoreScaleEvents: (name, change, prev events (change, age_s), new (change, outdated),
# rules, expected replicas change over 60 s)
# fmt: off
STORE_EVENTS_CASES = [
    ("empty entries with default behavior", 5, [], [], None, 0),
    (
        "empty entries with two-policy-behavior",
        5, [], [(5, F)], generate_scaling_rules(10, 60, 100, 60, 0), 0,
    ),
    ("one outdated entry to be kept untouched without behavior", 5, [(7, 61)], [(7, F)], None, 0),
    (
        "one outdated entry to be replaced with behavior",
        5, [(7, 61)], [(5, F)], generate_scaling_rules(10, 60, 100, 60, 0), 0,
    ),
    (
        "one actual entry to be not touched with behavior",
        5, [(7, 58)], [(7, F), (5, F)], generate_scaling_rules(10, 60, 100, 60, 0), 7,
    ),
    (
        "two entries, one of them to be replaced",
        5, [(7, 61), (6, 59)], [(5, F), (6, F)], generate_scaling_rules(10, 60, 0, 0, 0), 6,
    ),
    (
        "replace one entry, use policies with different periods",
        5,
        [(8, 29), (6, 59), (7, 61), (9, 61)],
        [(8, F), (6, F), (7, T), (5, F)],
        generate_scaling_rules(10, 60, 100, 30, 0),
        14,
    ),
    (
        "two entries, both actual",
        5,
        [(7, 58), (6, 59)],
        [(7, F), (6, F), (5, F)],
        generate_scaling_rules(10, 120, 100, 30, 0),
        13,
    ),
]
# fmt: on


@pytest.mark.parametrize(
    "case", STORE_EVENTS_CASES, ids=[f"TestStoreScaleEvents/{c[0]}" for c in STORE_EVENTS_CASES]
)
def test_store_scale_events(case):
    _, change, prev, expected_new, rules, expected_change = case
    prev_events = [ScaleEvent(c, NOW - age) for c, age in prev]
    # testing scale up
    assert get_replicas_change_per_period(60, prev_events, NOW) == expected_change
    behavior_up = HPABehavior(scale_up=rules) if rules is not None else None
    ups, _ = store_scale_event(behavior_up, prev_events, [], 10, 10 + change, NOW)
    assert [(e.replica_change, e.outdated) for e in ups] == expected_new
    # testing scale down
    behavior_down = HPABehavior(scale_down=rules) if rules is not None else None
    _, downs = store_scale_event(behavior_down, [], prev_events, 10, 10 - change, NOW)
    assert [(e.replica_change, e.outdated) for e in downs] == expected_new


# TestNormalizeDesiredReplicasWithBehavior:
# (name, recs (replicas, age_s), current, desired, expected, expected recs or None, up w, down w)
# fmt: off
NORMALIZE_WITH_BEHAVIOR_CASES = [
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", [(4, 120), (5, 60)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", [(4, 120), (5, 60)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", [(1, 120), (2, 60)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", [(4, 120), (5, 60)], 1, 3, 3, [4, 5, 3], 0, 300),
    (
        "no scale down stabilization, reuse recommendation element",
        [(10, 600), (9, 540)], 100, 3, 3, [10, 3], 0, 0,
    ),
    (
        "no scale up stabilization, reuse recommendation element",
        [(10, 600), (9, 540)], 1, 100, 100, [10, 100], 0, 0,
    ),
    (
        "scale down stabilization, reuse one of obsolete recommendation element",
        [(10, 600), (4, 60), (5, 120), (9, 540)], 100, 3, 5, [10, 4, 5, 3], 0, 180,
    ),
    (
        "scale up stabilization, reuse one of obsolete recommendation element",
        [(10, 6000), (6, 60), (5, 120), (9, 180)], 1, 100, 5, [100, 6, 5, 9], 300, 0,
    ),
    (
        "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        [(2, 6000), (3, 180)], 2, 1, 2, None, 300, 300,
    ),
    (
        "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        [(2, 6000), (1, 180)], 2, 3, 2, None, 300, 300,
    ),
]
# fmt: on


@pytest.mark.parametrize(
    "case",
    NORMALIZE_WITH_BEHAVIOR_CASES,
    ids=[f"TestNormalizeDesiredReplicasWithBehavior/{c[0]}" for c in NORMALIZE_WITH_BEHAVIOR_CASES],
)
def test_stabilize_recommendation_with_behaviors(case):
    _, recs, current, desired, expected, expected_recs, up_window, down_window = case
    history = [TimestampedRecommendation(r, NOW - age) for r, age in recs]
    result = stabilize_recommendation_with_behaviors(
        history,
        desired,
        current,
        HPAScalingRules(stabilization_window_s=up_window),
        HPAScalingRules(stabilization_window_s=down_window),
        NOW,
    )
    assert result.recommendation == expected
    if expected_recs is not None:
        assert [r.recommendation for r in result.recommendations] == expected_recs


# Not from upstream: the Disabled select policy has no unit test in horizontal_test.go.
def test_select_policy_disabled_freezes_direction():
    disabled = HPAScalingRules(0, "Disabled", (HPAScalingPolicy("Pods", 100, 15),))
    replicas, reason, _ = convert_desired_replicas_with_behavior_rate(
        5, 50, 1, 100, disabled, generate_hpa_scale_down_rules(None), [], [], NOW
    )
    assert (replicas, reason) == (5, "ScaleUpLimit")
    down_disabled = HPAScalingRules(300, "Disabled", (HPAScalingPolicy("Percent", 100, 15),))
    replicas, reason, _ = convert_desired_replicas_with_behavior_rate(
        5, 1, 1, 100, generate_hpa_scale_up_rules(None), down_disabled, [], [], NOW
    )
    assert (replicas, reason) == (5, "ScaleDownLimit")


def test_default_behavior_matches_defaults_go():
    """pkg/apis/autoscaling/v2/defaults.go with the 5 min downscale window filled in."""
    behavior = default_behavior()
    assert behavior.scale_up == HPAScalingRules(
        0, "Max", (HPAScalingPolicy("Pods", 4, 15), HPAScalingPolicy("Percent", 100, 15))
    )
    assert behavior.scale_down == HPAScalingRules(
        300, "Max", (HPAScalingPolicy("Percent", 100, 15),)
    )


# --------------------------------------------------------------------------------------------------
# horizontal_test.go: reconcileAutoscaler scenarios through HPAController.sync
# --------------------------------------------------------------------------------------------------


def horizontal_scenario(
    levels_per_pod: list[int],
    requests: list[int] | None,
    status_replicas: int,
    *,
    readiness: list[bool] | None = None,
    start: list[float] | None = None,
    phase: list[str] | None = None,
    deleted: list[bool] | None = None,
) -> tuple[list[PodInfo], dict[str, PodMetric]]:
    """newFakeHorizontalClient: requests and levels split over two containers in integer halves."""
    n_pods = len(requests) if requests is not None else status_replicas
    pods = []
    for i in range(n_pods):
        request = requests[i] if requests is not None else 1000
        start_s = start[i] if start else ZERO
        pods.append(
            PodInfo(
                name=f"test-pod-{i}",
                phase=phase[i] if phase else R,
                ready=readiness[i] if readiness else True,
                deletion_timestamp_s=NOW if deleted and deleted[i] else None,
                start_time_s=start_s,
                ready_transition_s=start_s,
                request_millicores=2 * (request // 2),
            )
        )
    metrics = {
        f"test-pod-{i}": PodMetric(2 * (level // 2), NOW, 60.0)
        for i, level in enumerate(levels_per_pod)
    }
    return pods, metrics


def controller(min_r, max_r, behavior=None, recommendations=None, **kw) -> HPAController:
    return HPAController(
        max_replicas=max_r,
        min_replicas=min_r,
        behavior=behavior,
        tolerance=TESTING_TOLERANCE,
        cpu_initialization_period_s=TESTING_CPU_INIT_S,
        delay_of_initial_readiness_status_s=TESTING_READY_DELAY_S,
        scale_up_limit_factor=TEST_SCALE_UP_LIMIT_FACTOR,
        recommendations=recommendations,
        **kw,
    )


HOT, COOL = NOW, NOW - 180.0  # hotCPUCreationTime, coolCPUCreationTime

# (id, min, max, spec, status, cpu target, levels, requests, extra, recommendations, behavior,
#  expected desired replicas)
# fmt: off
CONTROLLER_CASES = [
    ("TestScaleUpCPU/scale up", 2, 6, 3, 3, 30, [300, 500, 700], [1000] * 3, {}, None, None, 5),
    (
        "TestScaleUpCPU/scale up with unready pods results in less scale",
        2, 6, 3, 3, 30, [300, 500, 700], [1000] * 3, dict(readiness=[F, T, T]), None, None, 4,
    ),
    (
        "TestScaleUpCPU/scale up with hot cpu pods results in less scale",
        2, 6, 3, 3, 30, [300, 500, 700], [1000] * 3, dict(start=[HOT, COOL, COOL]), None, None, 4,
    ),
    (
        "TestScaleUpCPU/scale up ignores failed pods",
        2, 6, 2, 2, 30, [500, 700], [1000] * 4,
        dict(readiness=[T, T, F, F], phase=[R, R, FAILED, FAILED]), None, None, 4,
    ),
    (
        "TestScaleUpCPU/scale up ignores deletion pods",
        2, 6, 2, 2, 30, [500, 700], [1000] * 4,
        dict(readiness=[T, T, F, F], phase=[R] * 4, deleted=[F, F, T, T]), None, None, 4,
    ),
    ("TestScaleUpCPU/scale up deployment", 2, 6, 3, 3, 30, [300, 500, 700], [1000] * 3, {}, None, None, 5),
    ("TestScaleUpCPU/scale up replicaset", 2, 6, 3, 3, 30, [300, 500, 700], [1000] * 3, {}, None, None, 5),
    (
        "TestScaleUpCPU/no scale up when all unready pods bring utilization within target",
        2, 6, 3, 3, 30, [400, 500, 700], [1000] * 3, dict(readiness=[T, F, F]), None, None, 3,
    ),
    (
        "TestScaleUpUnreadyOrHotCpuNoScale/unready pods excluded from scaling",
        2, 6, 3, 3, 30, [400, 500, 700], [1000] * 3, dict(readiness=[T, F, F]), None, None, 3,
    ),
    (
        "TestScaleUpUnreadyOrHotCpuNoScale/hot CPU pods excluded from scaling",
        2, 6, 3, 3, 30, [400, 500, 700], [1000] * 3,
        dict(readiness=[T, F, F], start=[COOL, HOT, HOT]), None, None, 3,
    ),
    ("TestScaleDownCPU/scale down", 2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 5, {}, [], None, 3),
    (
        "TestScaleDownCPU/scale down includes unready pods",
        2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 5,
        dict(readiness=[T, T, T, F, F]), [], None, 2,
    ),
    (
        "TestScaleDownCPU/scale down ignores hot cpu pods",
        2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 5,
        dict(start=[COOL, COOL, COOL, HOT, HOT]), [], None, 2,
    ),
    (
        "TestScaleDownCPU/scale down ignores failed pods",
        2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 7,
        dict(readiness=[T] * 5 + [F] * 2, phase=[R] * 5 + [FAILED] * 2), [], None, 3,
    ),
    (
        "TestScaleDownCPU/scale down ignores deletion pods",
        2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 7,
        dict(readiness=[T] * 5 + [F] * 2, phase=[R] * 7, deleted=[F] * 5 + [T] * 2), [], None, 3,
    ),
    (
        "TestScaleDownStabilizeInitialSize",
        2, 6, 5, 5, 50, [100, 300, 500, 250, 250], [1000] * 5, {}, None, None, 5,
    ),
    (
        "TestScaleTimingBehavior/stabilize downscale",
        1, 5, 4, 4, 100, [50, 50, 50], [100] * 3, {},
        [TimestampedRecommendation(10, NOW - 600), TimestampedRecommendation(4, NOW - 60)], None, 4,
    ),
    (
        "TestReplicaLimits/scale down clamped to min replicas",
        2, 5, 3, 3, 90, [10, 95, 10], [900, 1000, 1100], {}, [], None, 2,
    ),
    (
        "TestReplicaLimits/scale down to zero when min replicas is zero",
        0, 5, 3, 3, 90, [0, 0, 0], [900, 1000, 1100], {}, [], None, 0,
    ),
    (
        "TestReplicaLimits/scale down clamped to min when desired is zero",
        2, 5, 3, 3, 90, [0, 0, 0], [900, 1000, 1100], {}, [], None, 2,
    ),
    ("TestReplicaLimits/no scaling when spec replicas is zero", 3, 5, 0, 0, 90, [], [], {}, None, None, 0),
    ("TestReplicaLimits/scale up to min when below min replicas", 3, 5, 2, 2, 90, [], [], {}, None, None, 3),
    ("TestReplicaLimits/scale down to max when above max replicas", 3, 5, 10, 10, 90, [], [], {}, None, None, 5),
    (
        "TestReplicaLimits/scale up clamped to max replicas",
        2, 5, 3, 3, 90, [8000, 9500, 1000], [900, 1000, 1100], {}, None, None, 5,
    ),
    (
        "TestScaleRCImmediately/scale up to min when below min replicas",
        2, 6, 1, 1, 0, [0, 0, 0, 0], [1000] * 4, {}, None, None, 2,
    ),
    (
        "TestScaleRCImmediately/scale down to max when above max replicas",
        2, 5, 6, 6, 50, [8000, 9500, 1000], [900, 1000, 1100], {}, None, None, 5,
    ),
    (
        "TestCPUScalingEdgeCases/missing reports from some pods",
        1, 5, 4, 4, 50, [200], [200], {}, [], None, 2,
    ),
    (
        "TestCPUScalingEdgeCases/more replicas than spec no scale",
        1, 8, 4, 5, 50, [500] * 5, [1000] * 5, {}, None, None, 4,
    ),
    (
        "TestMetricsEdgeCases/superfluous metrics reported",
        2, 6, 4, 4, 100, [4000, 9500, 3000, 7000, 3200, 2000], [1000] * 4, {}, None, None, 6,
    ),
    (
        "TestMetricsEdgeCases/missing metrics from some pods",
        2, 6, 4, 4, 100, [400, 95], [1000] * 4, {}, [], None, 3,
    ),
    ("TestMetricsEdgeCases/empty metrics from all pods", 2, 6, 4, 4, 100, [], [1000] * 4, {}, None, None, 4),
    ("TestMetricsEdgeCases/empty CPU requests", 1, 5, 1, 1, 100, [200], [], {}, None, None, 1),
    (
        "TestUpscaleCap/capped by scale up rules",
        1, 100, 3, 3, 10, [100, 200, 300], [100] * 3, {}, None,
        HPABehavior(scale_up=generate_scaling_rules(0, 0, 700, 60, 0)), 24,
    ),
    (
        "TestUpscaleCap/capped by max replicas when scale up limit exceeds max",
        1, 20, 3, 3, 10, [100, 200, 300], [100] * 3, {}, None,
        HPABehavior(scale_up=generate_scaling_rules(0, 0, 700, 60, 0)), 20,
    ),
    (
        "TestTolerance/CPU resource metric within tolerance",
        1, 5, 3, 3, 100, [1010, 1030, 1020], [900, 1000, 1100], {}, None, None, 3,
    ),
    (
        "TestConfigurableTolerance/Scaling up because of a 1% configurable tolerance",
        1, 5, 3, 3, 100, [1010, 1030, 1020], [900, 1000, 1100], {}, None,
        HPABehavior(scale_up=HPAScalingRules(tolerance=0.01)), 4,
    ),
    (
        "TestConfigurableTolerance/No scale-down because of a 90% configurable tolerance",
        1, 5, 3, 3, 100, [300, 300, 300], [1000] * 3, {}, None,
        HPABehavior(scale_down=HPAScalingRules(tolerance=0.9)), 3,
    ),
    (
        "TestConfigurableTolerance/No scaling because of the large default tolerance",
        1, 5, 3, 3, 100, [1010, 1030, 1020], [900, 1000, 1100], {}, None, None, 3,
    ),
    ("TestEventCreated", 1, 5, 1, 1, 50, [200], [200], {}, None, None, 2),
    ("TestEventNotCreated", 1, 5, 2, 2, 50, [200, 200], [400, 400], {}, None, None, 2),
]
# fmt: on


@pytest.mark.parametrize("case", CONTROLLER_CASES, ids=[c[0] for c in CONTROLLER_CASES])
def test_controller_sync(case):
    (_, lo, hi, spec, status, target, lv, requests, extra, recs, behavior, expected) = case
    pods, metrics = horizontal_scenario(lv, requests, status, **extra)
    hpa = controller(lo, hi, behavior, list(recs) if recs is not None else None)
    assert hpa.sync(NOW, spec, pods, metrics, target) == expected


def test_controller_configurable_tolerance_gate_disabled():
    """TestConfigurableTolerance/No scaling because the configurable tolerance is ignored as the
    feature gate is disabled."""
    pods, metrics = horizontal_scenario([1010, 1030, 1020], [900, 1000, 1100], 3)
    hpa = controller(
        1,
        5,
        HPABehavior(scale_up=HPAScalingRules(tolerance=0.01)),
        configurable_tolerance_enabled=False,
    )
    assert hpa.sync(NOW, 3, pods, metrics, 100) == 3


def test_controller_reports_utilization_of_ready_pods():
    """TestScaleUpUnreadyOrHotCpuNoScale: the reported CPU utilization counts only ready pods."""
    pods, metrics = horizontal_scenario([400, 500, 700], [1000] * 3, 3, readiness=[T, F, F])
    hpa = controller(2, 6)
    assert hpa.sync(NOW, 3, pods, metrics, 30) == 3
    assert hpa.last_utilization_percent == 40


def test_controller_errors_leave_replicas_unchanged():
    """TestMetricsEdgeCases/empty metrics from all pods: the error is kept, no rescale."""
    pods, _ = horizontal_scenario([], [1000] * 4, 4)
    hpa = controller(2, 6)
    assert hpa.sync(NOW, 4, pods, {}, 100) == 4
    assert isinstance(hpa.last_error, HPAError)


def test_computed_tolerance_alg_implementation_controller():
    """TestComputedToleranceAlgImplementation (horizontal_test.go): requests split in halves."""
    start_pods = 10
    total_used = start_pods * 150
    total_requested = 2 * total_used
    requested_to_used = float(total_requested // total_used)
    per_pod = total_requested // start_pods
    target = abs(1 / (requested_to_used * (1 - TESTING_TOLERANCE))) + 0.01
    final_target = int(target * 100)
    final_pods = math.ceil(total_used / (total_requested * target) * start_pods)
    jitter = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0]
    requests = [per_pod + j for j in jitter]
    pods, metrics = horizontal_scenario([total_used // 10] * 10, requests, 10)
    assert controller(0, 1000, recommendations=[]).sync(NOW, 10, pods, metrics, final_target) == (
        final_pods
    )
    target = abs(1 / (requested_to_used * (1 - TESTING_TOLERANCE))) + 0.004
    assert controller(0, 1000, recommendations=[]).sync(
        NOW, 10, pods, metrics, int(target * 100)
    ) == (start_pods)


# Not from upstream: a multi-sync check that sync() records scale events and that the default
# behavior's 5 min scale-down stabilization holds the size.
def test_controller_default_behavior_over_time():
    hpa = controller(1, 10, behavior=HPABehavior())
    pods, metrics = horizontal_scenario([900] * 2, [1000] * 2, 2)
    assert hpa.sync(NOW, 2, pods, metrics, 50) == 4
    assert [e.replica_change for e in hpa.scale_up_events] == [2]
    low_pods, low_metrics = horizontal_scenario([100] * 4, [1000] * 4, 4)
    # Within 300 s of the recommendation of 4, scale-down is stabilized at 4.
    assert hpa.sync(NOW + 15, 4, low_pods, low_metrics, 50) == 4
    # After the window, the lowest recent recommendation (1) wins.
    assert hpa.sync(NOW + 316, 4, low_pods, low_metrics, 50) == 1
    assert [e.replica_change for e in hpa.scale_down_events] == [3]


# Not from upstream: Go's Before/After are strict and upstream's tests never sit exactly on a
# boundary (time.Now() moves on between fixture and call). These pin the strict boundaries.
def test_period_and_outdated_boundaries_are_strict():
    at_boundary = [ScaleEvent(3, NOW - 60)]
    assert get_replicas_change_per_period(60, at_boundary, NOW) == 0
    assert get_replicas_change_per_period(60, [ScaleEvent(3, NOW - 59.999)], NOW) == 3
    rules = generate_scaling_rules(10, 60, 0, 0, 0)
    ups, _ = store_scale_event(HPABehavior(scale_up=rules), at_boundary, [], 10, 12, NOW)
    assert [(e.replica_change, e.outdated) for e in ups] == [(3, False), (2, False)]
    ups, _ = store_scale_event(
        HPABehavior(scale_up=rules), [ScaleEvent(3, NOW - 60.001)], [], 10, 12, NOW
    )
    assert [(e.replica_change, e.outdated) for e in ups] == [(2, False)]
