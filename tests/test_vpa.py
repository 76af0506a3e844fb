"""Tests for drpc.baselines.vpa.

Cases named after an upstream test are transcribed from kubernetes/autoscaler
vertical-pod-autoscaler (commit 55c37cd5): pkg/recommender/util/histogram_options_test.go,
histogram_test.go, decaying_histogram_test.go, logic/estimator_test.go, logic/recommender_test.go
and model/container_test.go (whose MockHistogram expectations are checked with a recording
subclass here). The rest are behaviour tests of the vectorised recommender.
"""

from __future__ import annotations

import numpy as np
import pytest

from drpc.baselines.vpa import (
    EPSILON,
    MIN_SAMPLE_WEIGHT,
    DecayingHistogramBank,
    HistogramBank,
    Recommendation,
    UpdaterConfig,
    VPAConfig,
    VPARecommender,
    cpu_amount_from_cores,
    cpu_histogram_options,
    exponential_histogram_options,
    get_confidence,
    linear_histogram_options,
    memory_amount_from_bytes,
    memory_histogram_options,
    needs_update,
    pod_min_resources,
    with_confidence_multiplier,
    with_margin,
    with_min_resource,
)

VALUE_EPSILON = 1e-15
WEIGHT_EPSILON = 1e-15
HOUR = 3600.0
DAY = 24 * HOUR
MB = 1024 * 1024  # container_test.go: mb = 1024 * kb


def linear_test_options():
    """histogram_test.go testHistogramOptions: linear, max 10, bucket 1, epsilon 1e-15."""
    return linear_histogram_options(10.0, 1.0, WEIGHT_EPSILON)


def p(h: HistogramBank, q: float) -> float:
    return float(h.percentile(q)[0])


# --------------------------------------------------------------------------------------------------
# histogram_options_test.go
# --------------------------------------------------------------------------------------------------


def test_linear_histogram_options():
    """TestLinearHistogramOptions."""
    o = linear_histogram_options(5.0, 0.3, 0.001)
    assert o.epsilon == 0.001
    assert o.num_buckets == 18
    assert o.get_bucket_start(0) == 0.0
    assert o.get_bucket_start(17) == 5.1
    assert int(o.find_bucket(-1.0)) == 0
    assert int(o.find_bucket(0.0)) == 0
    assert int(o.find_bucket(1.3)) == 4
    assert int(o.find_bucket(100.0)) == 17


def test_exponential_histogram_options():
    """TestExponentialHistogramOptions."""
    o = exponential_histogram_options(500.0, 40.0, 1.5, 0.001)
    assert o.epsilon == 0.001
    assert o.num_buckets == 6
    assert [float(o.get_bucket_start(b)) for b in range(6)] == [
        0.0,
        40.0,
        100.0,
        190.0,
        325.0,
        527.5,
    ]
    assert [int(o.find_bucket(v)) for v in (-1.0, 39.99, 40.0, 100.0, 900.0)] == [0, 0, 1, 2, 5]


def test_default_cpu_and_memory_bucketing():
    """aggregations_config.go: 0.01 core / 1e7 bytes first bucket, ratio 1.05, max 1e3 / 1e12."""
    cpu, mem = cpu_histogram_options(), memory_histogram_options()
    assert (cpu.num_buckets, mem.num_buckets) == (176, 176)
    assert cpu.get_bucket_start(1) == pytest.approx(0.01)
    assert mem.get_bucket_start(1) == pytest.approx(1e7)
    assert cpu.get_bucket_start(175) >= 1000.0 > cpu.get_bucket_start(174)
    assert mem.get_bucket_start(175) >= 1e12 > mem.get_bucket_start(174)
    assert cpu.epsilon == EPSILON == 0.0001


# --------------------------------------------------------------------------------------------------
# histogram_test.go
# --------------------------------------------------------------------------------------------------


def test_percentiles_empty_histogram():
    """TestPercentilesEmptyHistogram."""
    h = HistogramBank(linear_test_options(), 1)
    for q in (-0.5, 0.0, 0.5, 1.0, 1.5):
        assert p(h, q) == 0.0


def test_percentiles():
    """TestPercentiles: histogram { 1: 1, 2: 2, 3: 3, 4: 4 }."""
    h = HistogramBank(linear_test_options(), 1)
    for i in range(1, 5):
        h.add_sample(float(i), float(i))
    expected = {
        0.0: 2,
        0.1: 2,
        0.2: 3,
        0.3: 3,
        0.4: 4,
        0.5: 4,
        0.6: 4,
        0.7: 5,
        0.8: 5,
        0.9: 5,
        1.0: 5,
    }
    for q, value in expected.items():
        assert p(h, q) == pytest.approx(value, rel=VALUE_EPSILON)


def test_percentile_out_of_bounds():
    """TestPercentileOutOfBounds."""
    h = HistogramBank(linear_histogram_options(1.0, 0.1, WEIGHT_EPSILON), 1)
    h.add_sample(0.1, 0.1)
    h.add_sample(0.2, 0.2)
    assert p(h, -0.1) == pytest.approx(0.2, rel=VALUE_EPSILON)
    assert p(h, 1.1) == pytest.approx(0.3, rel=VALUE_EPSILON)
    # Fill the boundary buckets.
    h.add_sample(0.0, 0.1)
    h.add_sample(1.0, 0.2)
    assert p(h, -0.1) == pytest.approx(0.1, rel=VALUE_EPSILON)
    assert p(h, 1.1) == pytest.approx(1.0, rel=VALUE_EPSILON)


def test_empty_histogram():
    """TestEmptyHistogram."""
    h = HistogramBank(linear_histogram_options(1.0, 0.1, WEIGHT_EPSILON), 1)
    assert h.is_empty()[0]
    h.add_sample(0.1, WEIGHT_EPSILON * 2.5)  # Sample weight = epsilon * 2.5.
    assert not h.is_empty()[0]
    h.subtract_sample(0.1, WEIGHT_EPSILON)  # Sample weight = epsilon * 1.5.
    assert not h.is_empty()[0]
    h.subtract_sample(0.1, WEIGHT_EPSILON)  # Sample weight = epsilon * 0.5.
    assert h.is_empty()[0]


def test_non_empty_on_epsilon_addition():
    """TestNonEmptyOnEpsilonAddition."""
    h = HistogramBank(linear_histogram_options(1.0, 0.1, WEIGHT_EPSILON), 1)
    assert h.is_empty()[0]
    h.add_sample(9.9, WEIGHT_EPSILON * 3)
    assert not h.is_empty()[0]
    h.add_sample(0.1, WEIGHT_EPSILON * 0.3)
    assert not h.is_empty()[0]  # weight*3 sample should make the histogram non-empty
    h.add_sample(999.9, WEIGHT_EPSILON * 0.3)
    assert not h.is_empty()[0]


def test_negative_weight_rejected():
    """histogram.go panics on a negative sample weight."""
    h = HistogramBank(linear_test_options(), 1)
    with pytest.raises(ValueError):
        h.add_sample(1.0, -1.0)


# --------------------------------------------------------------------------------------------------
# decaying_histogram_test.go (startTime = time.Unix(1234567890, 0), half-life 1 h)
# --------------------------------------------------------------------------------------------------

START_TIME = 1234567890.0


def test_percentiles_empty_decaying_histogram():
    """TestPercentilesEmptyDecayingHistogram."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    for q in (-0.5, 0.0, 0.5, 1.0, 1.5):
        assert p(h, q) == 0.0


def test_simple_decay():
    """TestSimpleDecay: a sample 20 half-lives newer outweighs a 1000x heavier old one."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    h.add_sample(2, 1000, START_TIME)
    h.add_sample(1, 1, START_TIME + 20 * HOUR)
    assert p(h, 0.999) == pytest.approx(2, rel=VALUE_EPSILON)
    assert p(h, 1.0) == pytest.approx(3, rel=VALUE_EPSILON)


def test_longterm_decay():
    """TestLongtermDecay: renormalisation after more than 2^maxDecayExponent."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    h.add_sample(2, 1, START_TIME)
    h.add_sample(1, 1, START_TIME + 101 * HOUR)
    assert p(h, 1.0) == pytest.approx(2, rel=VALUE_EPSILON)


def test_decaying_histogram_percentiles():
    """TestDecayingHistogramPercentiles."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    t = START_TIME
    for i in range(1, 5):
        h.add_sample(float(i), float(i), t)
        t += HOUR
    expected = {0.00: 2, 0.02: 2, 0.03: 3, 0.10: 3, 0.11: 4, 0.34: 4, 0.35: 5, 1.00: 5}
    for q, value in expected.items():
        assert p(h, q) == pytest.approx(value, rel=VALUE_EPSILON)


def test_no_decay():
    """TestNoDecay: with a fixed time it behaves like a plain histogram."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    for i in range(1, 5):
        h.add_sample(float(i), float(i), START_TIME)
    expected = {
        0.0: 2,
        0.2: 3,
        0.1: 2,
        0.3: 3,
        0.4: 4,
        0.5: 4,
        0.6: 4,
        0.7: 5,
        0.8: 5,
        0.9: 5,
        1.0: 5,
    }
    for q, value in expected.items():
        assert p(h, q) == pytest.approx(value, rel=VALUE_EPSILON)


def test_decaying_reference_is_rounded_to_half_life():
    """decaying_histogram.go: the reference timestamp is an integer multiple of the half-life."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    h.add_sample(2, 1, START_TIME + 100 * HOUR)
    assert h.reference_timestamp_s[0] % HOUR == 0.0
    assert h.reference_timestamp_s[0] == 1234569600.0 + 100 * HOUR  # 1890 s past the hour: up


# --------------------------------------------------------------------------------------------------
# estimator_test.go and recommender_test.go
# --------------------------------------------------------------------------------------------------

ANY_TIME = 0.0  # time.Unix(0, 0)


def test_percentile_estimator():
    """TestPercentileEstimator: p20 of {1, 2, 3} cores and p50 of {1e9, 2e9, 3e9} bytes."""
    cpu = HistogramBank(cpu_histogram_options(), 1)
    for v in (1.0, 2.0, 3.0):
        cpu.add_sample(v, 1.0, ANY_TIME)
    mem = HistogramBank(memory_histogram_options(), 1)
    for v in (1e9, 2e9, 3e9):
        mem.add_sample(v, 1.0, ANY_TIME)
    cpu_estimate = int(cpu_amount_from_cores(cpu.percentile(0.2))[0]) / 1000.0
    mem_estimate = float(memory_amount_from_bytes(mem.percentile(0.5))[0])
    assert cpu_estimate == pytest.approx(1.0, rel=0.05)
    assert mem_estimate == pytest.approx(2e9, rel=0.05)


def _nine_samples_two_minutes_apart() -> VPARecommender:
    rec = VPARecommender(1)
    t = ANY_TIME
    for _ in range(9):
        rec.add_cpu_samples(t, [1000.0], [1000.0])
        t += 120.0
    return rec


def _confidence(rec: VPARecommender, interval_s: float) -> float:
    return float(
        get_confidence(
            rec.first_sample_start_s, rec.last_sample_start_s, rec.total_samples_count, interval_s
        )[0]
    )


def test_confidence_multiplier():
    """TestConfidenceMultiplier."""
    base_cpu = cpu_amount_from_cores(3.14)
    base_mem = memory_amount_from_bytes(3.14e9)
    empty = VPARecommender(1)
    conf = _confidence(empty, DAY)
    # Expect the maximum possible resource amount, then zero.
    assert int(with_confidence_multiplier(base_cpu, 1.0, 1.0, conf)) == 10**14
    assert int(with_confidence_multiplier(base_cpu, 1.0, -1.0, conf)) == 0

    rec = _nine_samples_two_minutes_apart()
    # Expected confidence = 9/(60*24) = 0.00625.
    assert _confidence(rec, DAY) == 0.00625
    # 3.14 * (1 + 0.1/0.00625)^2 = 907.46 cores; 3140000000 * 289 = 907460000000 bytes.
    conf = _confidence(rec, DAY)
    assert int(with_confidence_multiplier(base_cpu, 0.1, 2.0, conf)) / 1000.0 == 907.46
    assert float(with_confidence_multiplier(base_mem, 0.1, 2.0, conf)) == 9.0746e11


def test_confidence_multiplier_with_custom_interval():
    """TestConfidenceMultiplierWithCustomInterval (interval 18 min)."""
    rec = _nine_samples_two_minutes_apart()
    conf = _confidence(rec, 18 * 60.0)
    assert conf == 0.5  # 9/18
    # 3.14 * (1 + 0.1/0.5)^2 = 4.5216 -> 4521 millicores
    assert (
        int(with_confidence_multiplier(cpu_amount_from_cores(3.14), 0.1, 2.0, conf)) / 1000 == 4.521
    )
    assert float(with_confidence_multiplier(memory_amount_from_bytes(3.14e9), 0.1, 2.0, conf)) == (
        4.5216e9
    )


def test_confidence_multiplier_no_history():
    """TestConfidenceMultiplierNoHistory."""
    conf = _confidence(VPARecommender(1), DAY)
    assert int(with_confidence_multiplier(cpu_amount_from_cores(3.14), 0.1, 2.0, conf)) == 10**14


def test_margin_estimator():
    """TestMarginEstimator: 10 % margin. Go folds 3.14*1.1 as an exact constant (3.454)."""
    assert int(with_margin(cpu_amount_from_cores(3.14), 0.1)) / 1000.0 == 3.454
    assert float(with_margin(memory_amount_from_bytes(3.14e9), 0.1)) == 3.454e9


def test_min_resources_estimator():
    """TestMinResourcesEstimator."""
    cpu = with_min_resource(cpu_amount_from_cores(3.14), cpu_amount_from_cores(0.2))
    assert int(cpu) / 1000.0 == 3.14
    mem = with_min_resource(memory_amount_from_bytes(4e8), memory_amount_from_bytes(2e7))
    assert float(mem) == 4e8


def test_min_resources_applied():
    """TestMinResourcesApplied: 25 millicores and 250 MiB for a one-container pod."""
    min_cpu, min_mem = pod_min_resources(25.0, 250.0, 1)
    assert int(with_min_resource(cpu_amount_from_cores(0.001), min_cpu)) == int(
        cpu_amount_from_cores(25.0 / 1000)
    )
    assert int(with_min_resource(memory_amount_from_bytes(1e6), min_mem)) == int(
        memory_amount_from_bytes(250.0 * 1024 * 1024)
    )


def test_min_resources_split_across_containers():
    """TestMinResourcesSplitAcrossContainers: the pod minimum is halved for two containers."""
    min_cpu, min_mem = pod_min_resources(25.0, 250.0, 2)
    assert int(with_min_resource(cpu_amount_from_cores(0.001), min_cpu)) == int(
        cpu_amount_from_cores((25.0 / 1000) / 2)
    )
    assert int(with_min_resource(memory_amount_from_bytes(1e6), min_mem)) == int(
        memory_amount_from_bytes((250.0 * 1024 * 1024) / 2)
    )


# --------------------------------------------------------------------------------------------------
# container_test.go (MockHistogram expectations -> recorded calls)
# --------------------------------------------------------------------------------------------------

TEST_TIMESTAMP = 1492536905.0  # "2017-04-18 17:35:05" UTC


class RecordingBank(DecayingHistogramBank):
    """A DecayingHistogramBank that records (method, value, weight, time) for row 0."""

    def __init__(self, base: DecayingHistogramBank) -> None:
        super().__init__(base.options, base.n, base.half_life_s)
        self.calls: list[tuple[str, float, float, float]] = []

    def _record(self, name, value, weight, time_s, mask) -> None:
        m = np.broadcast_to(np.ones(self.n, bool) if mask is None else np.asarray(mask), (self.n,))
        if m[0]:
            v = float(np.broadcast_to(value, (self.n,))[0])
            w = float(np.broadcast_to(weight, (self.n,))[0])
            t = float(np.broadcast_to(time_s, (self.n,))[0])
            self.calls.append((name, v, w, t))

    def add_sample(self, value, weight, time_s=0.0, mask=None) -> None:
        self._record("AddSample", value, weight, time_s, mask)
        super().add_sample(value, weight, time_s, mask)

    def subtract_sample(self, value, weight, time_s=0.0, mask=None) -> None:
        self._record("SubtractSample", value, weight, time_s, mask)
        super().subtract_sample(value, weight, time_s, mask)


def container_test(**config) -> VPARecommender:
    """newContainerTest: one container with recording CPU and memory histograms."""
    rec = VPARecommender(1, VPAConfig(**config))
    rec.cpu_histogram = RecordingBank(rec.cpu_histogram)
    rec.memory_histogram = RecordingBank(rec.memory_histogram)
    return rec


def mem_calls(rec: VPARecommender):
    return rec.memory_histogram.calls  # type: ignore[attr-defined]


def test_aggregate_container_usage_samples():
    """TestAggregateContainerUsageSamples."""
    rec = container_test()
    interval = DAY
    step = interval / 2
    t = TEST_TIMESTAMP
    assert rec.add_cpu_samples(t, [3140], [2300])[0]
    assert rec.add_memory_samples(t, [5])[0]
    assert rec.add_cpu_samples(t + step, [6280], [2300])[0]
    assert rec.add_memory_samples(t + step, [10])[0]
    assert rec.add_cpu_samples(t + 2 * step, [1570], [2300])[0]
    assert rec.add_memory_samples(t + 2 * step, [2])[0]
    # Discard invalid samples: out of order, negative CPU, negative memory.
    assert not rec.add_cpu_samples(t + 2 * step, [1000], [2300])[0]
    assert not rec.add_cpu_samples(t + 4 * step, [-1000], [2300])[0]
    assert not rec.add_memory_samples(t + 4 * step, [-1000])[0]

    assert rec.cpu_histogram.calls == [  # type: ignore[attr-defined]
        ("AddSample", 3.14, MIN_SAMPLE_WEIGHT, t),
        ("AddSample", 6.28, MIN_SAMPLE_WEIGHT, t + step),
        ("AddSample", 1.57, MIN_SAMPLE_WEIGHT, t + 2 * step),
    ]
    window_end = t + interval
    assert mem_calls(rec) == [
        ("AddSample", 5.0, 1.0, window_end),
        ("SubtractSample", 5.0, 1.0, window_end),
        ("AddSample", 10.0, 1.0, window_end),
        ("AddSample", 2.0, 1.0, window_end + interval),
    ]
    assert rec.total_samples_count[0] == 3


def test_record_oom_increased_by_bump_up():
    """TestRecordOOMIncreasedByBumpUp: bump up factor is 20 %."""
    rec = container_test()
    assert rec.record_oom(TEST_TIMESTAMP, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 1200.0 * MB, 1.0, TEST_TIMESTAMP + DAY)]


def test_record_oom_dont_run_away():
    """TestRecordOOMDontRunAway: smaller OOMs do not change the OOM peak; a larger one does."""
    rec = container_test()
    window_end = TEST_TIMESTAMP + DAY
    assert rec.record_oom(TEST_TIMESTAMP, [True], [1000 * MB])[0]
    assert rec.record_oom(TEST_TIMESTAMP, [True], [999 * MB])[0]
    assert rec.record_oom(TEST_TIMESTAMP, [True], [999 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 1200.0 * MB, 1.0, window_end)]
    assert rec.record_oom(TEST_TIMESTAMP, [True], [2000 * MB])[0]
    assert mem_calls(rec)[1:] == [
        ("SubtractSample", 1200.0 * MB, 1.0, window_end),
        ("AddSample", 2400.0 * MB, 1.0, window_end),
    ]


def test_record_oom_increased_by_min():
    """TestRecordOOMIncreasedByMin: grows by at least 100 MiB."""
    rec = container_test()
    assert rec.record_oom(TEST_TIMESTAMP, [True], [1 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 101.0 * MB, 1.0, TEST_TIMESTAMP + DAY)]


def test_record_oom_maxed_with_known_sample():
    """TestRecordOOMMaxedWithKnownSample: the last known usage (above the request) is bumped."""
    rec = container_test()
    window_end = TEST_TIMESTAMP + DAY
    assert rec.add_memory_samples(TEST_TIMESTAMP, [3000 * MB])[0]
    assert rec.record_oom(TEST_TIMESTAMP, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [
        ("AddSample", 3000.0 * MB, 1.0, window_end),
        ("SubtractSample", 3000.0 * MB, 1.0, window_end),
        ("AddSample", 3600.0 * MB, 1.0, window_end),
    ]


def test_record_oom_discards_old_sample():
    """TestRecordOOMDiscardsOldSample: an OOM 30 h before the last sample is stale."""
    rec = container_test()
    assert rec.add_memory_samples(TEST_TIMESTAMP, [1000 * MB])[0]
    assert not rec.record_oom(TEST_TIMESTAMP - 30 * HOUR, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 1000.0 * MB, 1.0, TEST_TIMESTAMP + DAY)]


def test_record_oom_in_new_window():
    """TestRecordOOMInNewWindow."""
    rec = container_test()
    assert rec.add_memory_samples(TEST_TIMESTAMP, [2000 * MB])[0]
    assert rec.record_oom(TEST_TIMESTAMP + 2 * DAY, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [
        ("AddSample", 2000.0 * MB, 1.0, TEST_TIMESTAMP + DAY),
        ("AddSample", 2400.0 * MB, 1.0, TEST_TIMESTAMP + 3 * DAY),
    ]


def test_record_oom_fresh_oom_near_window_boundary_is_not_discarded():
    """TestRecordOOMFreshOOMNearWindowBoundaryIsNotDiscarded (kubernetes/autoscaler#8548)."""
    rec = container_test()
    boundary = TEST_TIMESTAMP + DAY
    window_end = TEST_TIMESTAMP + 2 * DAY
    assert rec.add_memory_samples(TEST_TIMESTAMP, [100 * MB])[0]
    assert rec.add_memory_samples(boundary, [2000 * MB])[0]
    assert rec.record_oom(boundary - 1.0, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [
        ("AddSample", 100.0 * MB, 1.0, TEST_TIMESTAMP + DAY),
        ("AddSample", 2000.0 * MB, 1.0, window_end),
        ("SubtractSample", 2000.0 * MB, 1.0, window_end),
        ("AddSample", 2400.0 * MB, 1.0, window_end),
    ]


def test_memory_samples_with_custom_aggregation_interval():
    """TestMemorySamplesWithCustomAggregationInterval (1 h interval)."""
    rec = container_test(memory_aggregation_interval_s=HOUR)
    assert rec.add_memory_samples(TEST_TIMESTAMP, [5])[0]
    assert rec.add_memory_samples(TEST_TIMESTAMP + 2 * HOUR, [10])[0]
    assert mem_calls(rec) == [
        ("AddSample", 5.0, 1.0, TEST_TIMESTAMP + HOUR),
        ("AddSample", 10.0, 1.0, TEST_TIMESTAMP + 3 * HOUR),
    ]


def test_memory_peak_update_within_custom_interval():
    """TestMemoryPeakUpdateWithinCustomInterval."""
    rec = container_test(memory_aggregation_interval_s=HOUR)
    window_end = TEST_TIMESTAMP + HOUR
    assert rec.add_memory_samples(TEST_TIMESTAMP, [5])[0]
    assert rec.add_memory_samples(TEST_TIMESTAMP + 30 * 60, [10])[0]
    assert mem_calls(rec) == [
        ("AddSample", 5.0, 1.0, window_end),
        ("SubtractSample", 5.0, 1.0, window_end),
        ("AddSample", 10.0, 1.0, window_end),
    ]


def test_record_oom_discards_old_sample_with_custom_interval():
    """TestRecordOOMDiscardsOldSampleWithCustomInterval."""
    rec = container_test(memory_aggregation_interval_s=HOUR)
    assert rec.add_memory_samples(TEST_TIMESTAMP, [1000 * MB])[0]
    assert not rec.record_oom(TEST_TIMESTAMP - 2 * HOUR, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 1000.0 * MB, 1.0, TEST_TIMESTAMP + HOUR)]


def test_record_oom_in_new_window_with_custom_interval():
    """TestRecordOOMInNewWindowWithCustomInterval."""
    rec = container_test(memory_aggregation_interval_s=HOUR)
    assert rec.add_memory_samples(TEST_TIMESTAMP, [2000 * MB])[0]
    assert rec.record_oom(TEST_TIMESTAMP + 2 * HOUR, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [
        ("AddSample", 2000.0 * MB, 1.0, TEST_TIMESTAMP + HOUR),
        ("AddSample", 2400.0 * MB, 1.0, TEST_TIMESTAMP + 3 * HOUR),
    ]


def test_record_oom_discards_old_sample_with_custom_interval_count():
    """TestRecordOOMDiscardsOldSampleWithCustomIntervalCount (count 2)."""
    rec = container_test(memory_aggregation_interval_count=2)
    assert rec.add_memory_samples(TEST_TIMESTAMP, [1000 * MB])[0]
    assert not rec.record_oom(TEST_TIMESTAMP - 3 * DAY, [True], [1000 * MB])[0]
    assert mem_calls(rec) == [("AddSample", 1000.0 * MB, 1.0, TEST_TIMESTAMP + DAY)]


def test_memory_samples_with_custom_aggregation_interval_count():
    """TestMemorySamplesWithCustomAggregationIntervalCount (count 16)."""
    rec = container_test(memory_aggregation_interval_count=16)
    assert rec.add_memory_samples(TEST_TIMESTAMP, [5])[0]
    assert rec.add_memory_samples(TEST_TIMESTAMP + 2 * DAY, [10])[0]
    assert mem_calls(rec) == [
        ("AddSample", 5.0, 1.0, TEST_TIMESTAMP + DAY),
        ("AddSample", 10.0, 1.0, TEST_TIMESTAMP + 3 * DAY),
    ]


# --------------------------------------------------------------------------------------------------
# Behaviour of the vectorised recommender
# --------------------------------------------------------------------------------------------------

T0 = 1_700_000_000.0  # a Unix-like clock


def feed(rec: VPARecommender, minutes: int, cpu_fn, mem_fn, start: float = T0) -> float:
    """One CPU and one memory sample per minute; returns the time of the last sample."""
    t = start
    for i in range(minutes):
        t = start + 60.0 * i
        rec.add_cpu_samples(t, cpu_fn(i), 1000.0)
        rec.add_memory_samples(t, mem_fn(i))
    return t


def bucket_end(options, value: float) -> float:
    return float(options.get_bucket_start(int(options.find_bucket(value)) + 1))


def test_steady_load_target_is_p90_plus_margin():
    rec = VPARecommender(1)
    t = feed(rec, 2 * 1440, lambda i: [500.0], lambda i: [300.0 * MB])
    r = rec.recommend(t)
    cpu_p90 = bucket_end(rec.cpu_histogram.options, 0.5) * 1000  # millicores
    mem_p90 = bucket_end(rec.memory_histogram.options, 300.0 * MB)
    assert r.target_cpu_millicores[0] == int(cpu_p90) + int(int(cpu_p90) * 0.15)
    assert r.target_memory_bytes[0] == int(mem_p90) + int(int(mem_p90) * 0.15)
    assert 575 <= r.target_cpu_millicores[0] <= 575 * 1.05 + 1


def test_noisy_load_target_tracks_p90_and_bounds_order():
    rng = np.random.default_rng(7)
    usage = rng.uniform(200.0, 800.0, size=3 * 1440)
    rec = VPARecommender(1)
    t = feed(rec, len(usage), lambda i: [usage[i]], lambda i: [200.0 * MB])
    r = rec.recommend(t)
    p90 = float(np.quantile(usage, 0.9))
    assert p90 * 1.15 * 0.97 <= r.target_cpu_millicores[0] <= p90 * 1.15 * 1.08
    assert r.lower_bound_cpu_millicores[0] < r.target_cpu_millicores[0]
    assert r.target_cpu_millicores[0] < r.upper_bound_cpu_millicores[0]
    # ~3 days of history: upper bound = margin(p95) * (1 + 1/conf), conf ~ 3.
    conf = _confidence(rec, DAY)
    assert conf == pytest.approx((3 * 1440 - 1) / 1440, rel=1e-9)
    p95 = float(np.quantile(usage, 0.95)) * 1.15
    assert p95 * (1 + 1 / conf) * 0.95 <= r.upper_bound_cpu_millicores[0]
    assert r.upper_bound_cpu_millicores[0] <= p95 * (1 + 1 / conf) * 1.1


def test_oom_bumps_memory_recommendation():
    rec = VPARecommender(1)
    t = feed(rec, 60, lambda i: [100.0], lambda i: [300.0 * MB])
    before = rec.recommend(t).target_memory_bytes[0]
    # request 256 MiB < peak 300 MiB: max(300 MiB + 100 MiB, 300 MiB * 1.2) = 400 MiB
    assert rec.record_oom(t + 30.0, [True], [256.0 * MB])[0]
    assert rec.oom_peak_bytes[0] == 400 * MB
    after = rec.recommend(t + 30.0).target_memory_bytes[0]
    assert after > before
    expected = int(bucket_end(rec.memory_histogram.options, 400.0 * MB))
    assert after == expected + int(expected * 0.15)


def test_minimum_resources_and_no_history():
    rec = VPARecommender(2, VPAConfig(containers_per_pod=2))
    r = rec.recommend(T0)
    assert list(r.target_cpu_millicores) == [12, 12]  # 25 m split over 2 containers
    assert list(r.target_memory_bytes) == [125 * MB, 125 * MB]
    rec.add_cpu_samples(T0, [1.0, 1.0], [10.0, 10.0])
    rec.add_memory_samples(T0, [1e6, 1e6])
    r = rec.recommend(T0)
    assert list(r.lower_bound_cpu_millicores) == [12, 12]
    assert list(r.upper_bound_cpu_millicores) == [10**14, 10**14]  # no history: upper = +inf


def test_rows_are_independent():
    loads = [150.0, 700.0, 2500.0]
    vec = VPARecommender(3)
    t = feed(vec, 600, lambda i: loads, lambda i: [x * MB for x in loads])
    r_vec = vec.recommend(t)
    for k, load in enumerate(loads):
        single = VPARecommender(1)
        t1 = feed(single, 600, lambda i, x=load: [x], lambda i, x=load: [x * MB])
        r1 = single.recommend(t1)
        for name in Recommendation.__dataclass_fields__:
            assert getattr(r_vec, name)[k] == getattr(r1, name)[0], name


def test_mask_skips_rows():
    rec = VPARecommender(2)
    accepted = rec.add_cpu_samples(T0, [500.0, 500.0], [1000.0, 1000.0], mask=[True, False])
    assert list(accepted) == [True, False]
    assert list(rec.total_samples_count) == [1, 0]
    assert np.isnan(rec.last_cpu_sample_start_s[1])


def test_decay_follows_load_shift():
    rec = VPARecommender(1)
    t = feed(rec, 2 * 1440, lambda i: [1000.0], lambda i: [100.0 * MB])
    high = rec.recommend(t).target_cpu_millicores[0]
    t = feed(rec, 4 * 1440, lambda i: [200.0], lambda i: [100.0 * MB], start=t + 60.0)
    low = rec.recommend(t).target_cpu_millicores[0]
    assert high > 1000 and low < 260  # 2 old days weigh 2^-4 vs 4 new days


def test_legacy_cpu_weight_by_request():
    """VPA < 1.4: samples weighted by max(request cores, 0.1); a big request dominates."""
    legacy = VPARecommender(1, VPAConfig(cpu_sample_weight_by_request=True))
    current = VPARecommender(1)
    for rec in (legacy, current):
        rec.add_cpu_samples(T0, [100.0], [40000.0])
        for i in range(1, 6):
            rec.add_cpu_samples(T0 + 60.0 * i, [900.0], [100.0])
    assert legacy.recommend(T0 + 600).target_cpu_millicores[0] < 200
    assert current.recommend(T0 + 600).target_cpu_millicores[0] > 900


def test_expired_aggregate_is_reset():
    """isExpired: no CPU sample for 8 memory aggregation intervals -> aggregate dropped."""
    rec = VPARecommender(1)
    t = feed(rec, 120, lambda i: [800.0], lambda i: [500.0 * MB])
    assert rec.recommend(t + 7 * DAY).target_cpu_millicores[0] > 800
    r = rec.recommend(t + 8 * DAY)
    assert rec.total_samples_count[0] == 0
    assert r.target_cpu_millicores[0] == 25 and r.target_memory_bytes[0] == 250 * MB


def test_needs_update_outside_bounds():
    r = Recommendation(
        target_cpu_millicores=np.array([500, 500, 500, 500]),
        lower_bound_cpu_millicores=np.array([400, 400, 400, 400]),
        upper_bound_cpu_millicores=np.array([800, 800, 800, 800]),
        target_memory_bytes=np.array([100, 100, 100, 100]) * MB,
        lower_bound_memory_bytes=np.array([80, 80, 80, 80]) * MB,
        upper_bound_memory_bytes=np.array([200, 200, 200, 200]) * MB,
    )
    cpu = np.array([500.0, 300.0, 900.0, np.nan])
    mem = np.array([100.0, 100.0, 100.0, 100.0]) * MB
    assert list(needs_update(cpu, mem, r)) == [False, True, True, True]
    mem_low = np.array([50.0, 100.0, 100.0, 100.0]) * MB
    assert needs_update(cpu, mem_low, r)[0]
    # In range but 12 h old and 20 % off target: updated by the lifetime rule.
    cpu2 = np.array([600.0, 510.0, 600.0, 600.0])
    age = np.array([13 * HOUR, 13 * HOUR, 1 * HOUR, 13 * HOUR])
    got = needs_update(cpu2, mem, r, pod_age_s=age, config=UpdaterConfig())
    assert list(got) == [True, False, False, True]


# Not from upstream: details of Go's arithmetic that the upstream tests do not reach.
def test_margin_adds_truncated_margin_to_base():
    """estimator.go: base + ScaleResource(base, m); int(100 * 1.15) would give 114 in float."""
    assert int(with_margin(100, 0.15)) == 115


def test_reference_timestamp_rounds_halfway_up():
    """Go Time.Round: a time exactly half a half-life past a multiple rounds up."""
    h = DecayingHistogramBank(linear_test_options(), 1, HOUR)
    t = 1000 * HOUR + HOUR / 2
    h.add_sample(2, 1, t)
    assert h.reference_timestamp_s[0] == 1001 * HOUR
