"""Kubernetes Vertical Pod Autoscaler recommender (and the updater's eviction rule), vectorised.

Upstream source (read, not recalled)
------------------------------------
``kubernetes/autoscaler`` ``vertical-pod-autoscaler`` at commit
``55c37cd5eb550756c5ccc5a89e9068d77797e575`` (after tag ``vertical-pod-autoscaler-1.7.1``; the
files ported here differ from 1.7.1 only in ``RecordOOM``'s staleness reference, kubernetes/autoscaler
#8548, which this port follows):

* ``pkg/recommender/util/histogram.go``, ``decaying_histogram.go``, ``histogram_options.go``;
* ``pkg/recommender/model/aggregations_config.go`` (bucketing, half-lives, OOM bump, epsilon),
  ``aggregate_container_state.go`` (CPU sample weight, first/last sample, sample count, expiry),
  ``container.go`` (memory peak per aggregation interval, OOM handling), ``types.go``
  (``ResourceAmount`` int64 conversions: millicores and bytes, truncating, capped at 1e14);
* ``pkg/recommender/logic/estimator.go`` and ``recommender.go`` (percentiles, safety margin,
  confidence multipliers, per-pod minimum split across containers);
* ``pkg/recommender/config/config.go`` defaults and ``pkg/updater/priority`` (eviction rule).

Checked values: CPU histogram = exponential buckets, first 0.01 core, ratio 1.05, max 1000 cores;
memory = first 1e7 bytes, ratio 1.05, max 1e12 bytes (176 buckets each); bucket epsilon = 0.0001
(``0.001 * minSampleWeight``); min sample weight 0.1; half-life 24 h (CPU and memory); memory
aggregation interval 24 h, 8 intervals; OOM bump ``max(used + 100 MiB, used * 1.2)``; targets
p90 / lower p50 / upper p95 (CPU and memory); safety margin 15 %; pod minimum 25 millicores and
250 MiB (the flag is ``pod-recommendation-min-memory-mb`` but the code multiplies by 1024*1024),
split equally between the containers of a pod; confidence interval 24 h.

CPU sample weight: since VPA 1.4 (commit ca812b36, Feb 2025) every CPU sample has the constant
weight ``minSampleWeight`` = 0.1. Older releases weighted samples by ``max(request cores, 0.1)``;
that behaviour is available with ``VPAConfig(cpu_sample_weight_by_request=True)``.

Layout: each of the N rows is one ``AggregateContainerState`` fed by one ``ContainerState`` (one
container of one pod template). Times are float seconds (``now_s``); Go's zero time is represented
as NaN for "never" and as 0.0 for the decaying histograms' initial reference timestamp, so float
times should be on a Unix-like clock (multiples of the half-life since 0.0 are then the same
instants as Go's multiples since year 1). CPU is in millicores, memory in bytes; recommendations
are integer ``ResourceAmount`` values as upstream.

Not ported: checkpoints, VPA objects/selectors and aggregation across pods with the same labels,
``controlledResources``/container policies (min/max allowed, capping post-processor), the
CPU-integer post-processor, ``Merge`` of histograms, quality metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DecayingHistogramBank",
    "HistogramBank",
    "HistogramOptions",
    "MAX_RESOURCE_AMOUNT",
    "MIN_SAMPLE_WEIGHT",
    "EPSILON",
    "Recommendation",
    "UpdaterConfig",
    "VPAConfig",
    "VPARecommender",
    "cpu_amount_from_cores",
    "cpu_histogram_options",
    "exponential_histogram_options",
    "get_confidence",
    "linear_histogram_options",
    "memory_amount_from_bytes",
    "memory_histogram_options",
    "needs_update",
    "pod_min_resources",
    "resource_amount_from_float",
    "scale_resource",
    "with_confidence_multiplier",
    "with_margin",
    "with_min_resource",
]

MIN_SAMPLE_WEIGHT = 0.1
"""aggregations_config.go ``minSampleWeight``: weight of every CPU sample (before decay)."""
EPSILON = 0.001 * MIN_SAMPLE_WEIGHT
"""aggregations_config.go ``epsilon``: a bucket lighter than this counts as empty."""
MAX_RESOURCE_AMOUNT = 10**14
"""types.go ``MaxResourceAmount`` (millicores or bytes)."""
MAX_DECAY_EXPONENT = 100
"""decaying_histogram.go ``maxDecayExponent``: renormalise beyond 2**100."""
MIB = 1024 * 1024

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

# --------------------------------------------------------------------------------------------------
# types.go: ResourceAmount conversions (int64 millicores / bytes)
# --------------------------------------------------------------------------------------------------


def resource_amount_from_float(amount: ArrayLike) -> IntArray:
    """``resourceAmountFromFloat``: truncate toward zero, clamp to ``[0, 1e14]``.

    NaN (0 * inf in a confidence multiplier; Go's conversion is platform-defined) maps to 0.
    """
    a = np.asarray(amount, dtype=np.float64)
    a = np.where(np.isnan(a), 0.0, a)
    a = np.clip(a, 0.0, float(MAX_RESOURCE_AMOUNT))
    return np.trunc(a).astype(np.int64)


def cpu_amount_from_cores(cores: ArrayLike) -> IntArray:
    """``CPUAmountFromCores``: cores -> millicores (int64, truncated)."""
    return resource_amount_from_float(np.asarray(cores, dtype=np.float64) * 1000.0)


def memory_amount_from_bytes(nbytes: ArrayLike) -> IntArray:
    """``MemoryAmountFromBytes``: bytes -> int64 bytes (truncated)."""
    return resource_amount_from_float(nbytes)


def scale_resource(amount: ArrayLike, factor: ArrayLike) -> IntArray:
    """``ScaleResource``: ``resourceAmountFromFloat(float(amount) * factor)``."""
    with np.errstate(invalid="ignore", over="ignore"):
        product = np.asarray(amount, dtype=np.float64) * np.asarray(factor, dtype=np.float64)
    return resource_amount_from_float(product)


# --------------------------------------------------------------------------------------------------
# histogram_options.go
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HistogramOptions:
    """A bucketing scheme (``HistogramOptions``): linear or exponential.

    Attributes:
        kind: "linear" or "exponential".
        num_buckets: number of buckets.
        bucket_size: linear bucket size, or the first bucket's size (exponential).
        ratio: growth ratio of exponential buckets (unused for linear).
        epsilon: minimum weight of a non-empty bucket.
        bucket_starts: start of every bucket (value units), precomputed with upstream's formula.
    """

    kind: str
    num_buckets: int
    bucket_size: float
    ratio: float
    epsilon: float
    bucket_starts: FloatArray

    def find_bucket(self, value: ArrayLike) -> IntArray:
        """``FindBucket``: bucket index per value, clamped to the first/last bucket."""
        v = np.asarray(value, dtype=np.float64)
        if self.kind == "linear":
            with np.errstate(invalid="ignore"):
                raw = np.trunc(v / self.bucket_size)
        else:
            # bucket(value) = floor(log(value/first*(ratio-1)+1) / log(ratio)), value >= first.
            arg = np.where(v < self.bucket_size, 1.0, v * (self.ratio - 1) / self.bucket_size + 1)
            raw = np.trunc(np.log(arg) / math.log(self.ratio))
            raw = np.where(v < self.bucket_size, 0.0, raw)
        raw = np.clip(raw, 0.0, float(self.num_buckets - 1))
        return raw.astype(np.int64)

    def get_bucket_start(self, bucket: ArrayLike) -> FloatArray:
        """``GetBucketStart`` (value units)."""
        return self.bucket_starts[np.asarray(bucket, dtype=np.int64)]


def linear_histogram_options(
    max_value: float, bucket_size: float, epsilon: float
) -> HistogramOptions:
    """``NewLinearHistogramOptions``: buckets of ``bucket_size`` from 0, last start >= max."""
    if max_value <= 0.0 or bucket_size <= 0.0 or epsilon <= 0.0:
        raise ValueError("maxValue and bucketSize must both be positive")
    n = int(math.ceil(max_value / bucket_size)) + 1
    starts = np.array([float(b) * bucket_size for b in range(n)])
    return HistogramOptions("linear", n, bucket_size, 1.0, epsilon, starts)


def exponential_histogram_options(
    max_value: float, first_bucket_size: float, ratio: float, epsilon: float
) -> HistogramOptions:
    """``NewExponentialHistogramOptions``: bucket n starts at ``first * (ratio**n - 1)/(ratio - 1)``."""
    if max_value <= 0.0 or first_bucket_size <= 0.0 or ratio <= 1.0 or epsilon <= 0.0:
        raise ValueError("maxValue, firstBucketSize and epsilon must be > 0.0, ratio must be > 1.0")
    n = int(math.ceil(math.log(max_value * (ratio - 1) / first_bucket_size + 1) / math.log(ratio)))
    n += 1
    starts = [0.0] + [
        first_bucket_size * (math.pow(ratio, float(b)) - 1) / (ratio - 1) for b in range(1, n)
    ]
    return HistogramOptions("exponential", n, first_bucket_size, ratio, epsilon, np.array(starts))


def cpu_histogram_options(bucket_size_growth: float = 0.05) -> HistogramOptions:
    """CPU usage in cores: first bucket 0.01 core, growth 5 %, max 1000 cores."""
    return exponential_histogram_options(1000.0, 0.01, 1.0 + bucket_size_growth, EPSILON)


def memory_histogram_options(bucket_size_growth: float = 0.05) -> HistogramOptions:
    """Memory peaks in bytes: first bucket 1e7 bytes (10 MB), growth 5 %, max 1e12 bytes."""
    return exponential_histogram_options(1e12, 1e7, 1.0 + bucket_size_growth, EPSILON)


# --------------------------------------------------------------------------------------------------
# histogram.go / decaying_histogram.go, one histogram per row
# --------------------------------------------------------------------------------------------------


def _rows_and_values(
    n: int, mask: ArrayLike | None, *arrays: ArrayLike
) -> tuple[IntArray, list[FloatArray]]:
    """The selected row indices and each argument broadcast to (n,) then restricted to them."""
    sel = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    rows = np.nonzero(np.broadcast_to(sel, (n,)))[0]
    out = [np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))[rows] for a in arrays]
    return rows, out


class HistogramBank:
    """N independent ``histogram`` values sharing one :class:`HistogramOptions`.

    Each row keeps its bucket weights, total weight and ``minBucket``/``maxBucket`` exactly as
    upstream (a bucket lighter than epsilon does not move them; ``Percentile`` walks from
    ``minBucket`` and returns the end of the bucket where the cumulative weight reaches the
    threshold, or the start of the last bucket).
    """

    def __init__(self, options: HistogramOptions, n: int) -> None:
        self.options = options
        self.n = n
        nb = options.num_buckets
        self.bucket_weight = np.zeros((n, nb))
        self.total_weight = np.zeros(n)
        self.min_bucket = np.full(n, nb - 1, dtype=np.int64)
        self.max_bucket = np.zeros(n, dtype=np.int64)

    def reset(self, rows: IntArray) -> None:
        """Empty the given rows (a new ``NewHistogram``)."""
        self.bucket_weight[rows] = 0.0
        self.total_weight[rows] = 0.0
        self.min_bucket[rows] = self.options.num_buckets - 1
        self.max_bucket[rows] = 0

    def add_sample(
        self,
        value: ArrayLike,
        weight: ArrayLike,
        time_s: ArrayLike = 0.0,
        mask: ArrayLike | None = None,
    ) -> None:
        """``AddSample`` on the masked rows (``time_s`` is ignored by a plain histogram)."""
        rows, (v, w) = _rows_and_values(self.n, mask, value, weight)
        self._add_weight(rows, v, w)

    def _add_weight(self, rows: IntArray, value: FloatArray, weight: FloatArray) -> None:
        if np.any(weight < 0.0):
            raise ValueError("sample weight must be non-negative")
        if rows.size == 0:
            return
        bucket = self.options.find_bucket(value)
        self.bucket_weight[rows, bucket] += weight
        self.total_weight[rows] += weight
        heavy = self.bucket_weight[rows, bucket] >= self.options.epsilon
        lower = heavy & (bucket < self.min_bucket[rows])
        self.min_bucket[rows[lower]] = bucket[lower]
        higher = heavy & (bucket > self.max_bucket[rows])
        self.max_bucket[rows[higher]] = bucket[higher]

    def subtract_sample(
        self,
        value: ArrayLike,
        weight: ArrayLike,
        time_s: ArrayLike = 0.0,
        mask: ArrayLike | None = None,
    ) -> None:
        """``SubtractSample`` on the masked rows; weights below epsilon become 0."""
        rows, (v, w) = _rows_and_values(self.n, mask, value, weight)
        self._subtract_weight(rows, v, w)

    def _subtract_weight(self, rows: IntArray, value: FloatArray, weight: FloatArray) -> None:
        if np.any(weight < 0.0):
            raise ValueError("sample weight must be non-negative")
        if rows.size == 0:
            return
        eps = self.options.epsilon
        bucket = self.options.find_bucket(value)
        total = self.total_weight[rows] - weight
        self.total_weight[rows] = np.where(total < eps, 0.0, total)
        bw = self.bucket_weight[rows, bucket] - weight
        self.bucket_weight[rows, bucket] = np.where(bw < eps, 0.0, bw)
        self._update_min_and_max_bucket(rows)

    def _update_min_and_max_bucket(self, rows: IntArray) -> None:
        """``updateMinAndMaxBucket``: move min up / max down past buckets lighter than epsilon."""
        if rows.size == 0:
            return
        nb = self.options.num_buckets
        idx = np.arange(nb)
        heavy = self.bucket_weight[rows] >= self.options.epsilon
        mins = self.min_bucket[rows]
        maxs = self.max_bucket[rows]
        from_min = heavy & (idx[None, :] >= mins[:, None])
        self.min_bucket[rows] = np.where(from_min.any(1), from_min.argmax(1), nb - 1)
        to_max = heavy & (idx[None, :] <= maxs[:, None])
        last = nb - 1 - to_max[:, ::-1].argmax(1)
        self.max_bucket[rows] = np.where(to_max.any(1), last, 0)

    def _scale(self, rows: IntArray, factor: FloatArray) -> None:
        """``scale``: multiply the weights in ``[minBucket, maxBucket]`` and the total."""
        if rows.size == 0:
            return
        if np.any(factor < 0.0):
            raise ValueError("scale factor must be non-negative")
        idx = np.arange(self.options.num_buckets)
        in_range = (idx[None, :] >= self.min_bucket[rows, None]) & (
            idx[None, :] <= self.max_bucket[rows, None]
        )
        w = self.bucket_weight[rows]
        self.bucket_weight[rows] = np.where(in_range, w * factor[:, None], w)
        self.total_weight[rows] *= factor
        self._update_min_and_max_bucket(rows)

    def is_empty(self) -> BoolArray:
        """``IsEmpty`` per row: the weight of ``minBucket`` is below epsilon."""
        rows = np.arange(self.n)
        return self.bucket_weight[rows, self.min_bucket] < self.options.epsilon

    def percentile(self, percentile: float) -> FloatArray:
        """``Percentile`` per row (value units); 0.0 for an empty histogram."""
        nb = self.options.num_buckets
        idx = np.arange(nb)
        mins, maxs = self.min_bucket, self.max_bucket
        walk = (idx[None, :] >= mins[:, None]) & (idx[None, :] < maxs[:, None])
        partial = np.cumsum(np.where(walk, self.bucket_weight, 0.0), axis=1)
        threshold = percentile * self.total_weight
        reached = walk & (partial >= threshold[:, None])
        # Without a break, Go's loop ends at maxBucket (or stays at minBucket if min >= max).
        bucket = np.where(reached.any(1), reached.argmax(1), np.maximum(mins, maxs))
        end = self.options.bucket_starts[np.minimum(bucket + 1, nb - 1)]
        value = np.where(bucket < nb - 1, end, self.options.bucket_starts[bucket])
        return np.where(self.is_empty(), 0.0, value)


class DecayingHistogramBank(HistogramBank):
    """N ``decayingHistogram`` values: weights multiplied by ``2**((t - reference) / half_life)``.

    The reference timestamp starts at 0.0 (Go's zero time) and is moved to ``t`` rounded to a
    multiple of the half-life whenever ``t`` is more than 100 half-lives after it; the stored
    weights are then rescaled by ``2**round((old - new) / half_life)``.
    """

    def __init__(self, options: HistogramOptions, n: int, half_life_s: float) -> None:
        super().__init__(options, n)
        self.half_life_s = float(half_life_s)
        self.reference_timestamp_s = np.zeros(n)

    def reset(self, rows: IntArray) -> None:
        super().reset(rows)
        self.reference_timestamp_s[rows] = 0.0

    def add_sample(
        self,
        value: ArrayLike,
        weight: ArrayLike,
        time_s: ArrayLike = 0.0,
        mask: ArrayLike | None = None,
    ) -> None:
        """``AddSample`` with the weight multiplied by the row's decay factor at ``time_s``."""
        rows, (v, w, t) = _rows_and_values(self.n, mask, value, weight, time_s)
        if rows.size == 0:
            return
        self._add_weight(rows, v, w * self._decay_factor(rows, t))

    def subtract_sample(
        self,
        value: ArrayLike,
        weight: ArrayLike,
        time_s: ArrayLike = 0.0,
        mask: ArrayLike | None = None,
    ) -> None:
        """``SubtractSample`` with the weight multiplied by the decay factor at ``time_s``."""
        rows, (v, w, t) = _rows_and_values(self.n, mask, value, weight, time_s)
        if rows.size == 0:
            return
        self._subtract_weight(rows, v, w * self._decay_factor(rows, t))

    def _decay_factor(self, rows: IntArray, time_s: FloatArray) -> FloatArray:
        """``decayFactor``: renormalise rows whose exponent would exceed 100, then 2**(dt/h)."""
        limit = self.reference_timestamp_s[rows] + self.half_life_s * MAX_DECAY_EXPONENT
        late = time_s > limit
        if np.any(late):
            self._shift_reference_timestamp(rows[late], time_s[late])
        return np.exp2((time_s - self.reference_timestamp_s[rows]) / self.half_life_s)

    def _shift_reference_timestamp(self, rows: IntArray, new_reference_s: FloatArray) -> None:
        """``shiftReferenceTimestamp``: Go ``Time.Round`` (halfway rounds up), then rescale."""
        h = self.half_life_s
        remainder = np.mod(new_reference_s, h)
        rounded = np.where(
            remainder + remainder < h, new_reference_s - remainder, new_reference_s + h - remainder
        )
        exponent = np.floor((self.reference_timestamp_s[rows] - rounded) / h + 0.5)
        exponent = np.clip(exponent, -100_000, 100_000).astype(np.int64)
        self._scale(rows, np.ldexp(1.0, exponent))
        self.reference_timestamp_s[rows] = rounded


# --------------------------------------------------------------------------------------------------
# estimator.go / recommender.go as pure functions
# --------------------------------------------------------------------------------------------------


def get_confidence(
    first_sample_start_s: ArrayLike,
    last_sample_start_s: ArrayLike,
    total_samples_count: ArrayLike,
    confidence_interval_s: float,
) -> FloatArray:
    """``getConfidence``: ``min(lifespan / interval, samples / interval-in-minutes)``.

    For one sample per minute over N intervals (days by default) this equals N. Rows without
    samples (NaN times) have lifespan 0.
    """
    first = np.asarray(first_sample_start_s, dtype=np.float64)
    last = np.asarray(last_sample_start_s, dtype=np.float64)
    lifespan = np.where(np.isnan(first) | np.isnan(last), 0.0, last - first)
    lifespan_in_intervals = lifespan / confidence_interval_s
    samples_amount = np.asarray(total_samples_count, dtype=np.float64) / (
        confidence_interval_s / 60.0
    )
    return np.minimum(lifespan_in_intervals, samples_amount)


def with_margin(amount: ArrayLike, margin_fraction: float) -> IntArray:
    """``cpuMarginEstimator``/``memoryMarginEstimator``: ``base + ScaleResource(base, margin)``."""
    base = np.asarray(amount, dtype=np.int64)
    return base + scale_resource(base, margin_fraction)


def with_confidence_multiplier(
    amount: ArrayLike, multiplier: float, exponent: float, confidence: ArrayLike
) -> IntArray:
    """``*ConfidenceMultiplier``: ``ScaleResource(base, (1 + multiplier/confidence)**exponent)``.

    No history (confidence 0) gives an infinite factor for a positive exponent (capped at 1e14) and
    0 for a negative one.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        factor = np.power(1.0 + multiplier / conf, exponent)
    return scale_resource(amount, factor)


def with_min_resource(amount: ArrayLike, min_resource: ArrayLike) -> IntArray:
    """``*MinResourceEstimator``: ``ResourceAmountMax(base, min)``."""
    return np.maximum(np.asarray(amount, dtype=np.int64), np.asarray(min_resource, dtype=np.int64))


def pod_min_resources(
    pod_min_cpu_millicores: float, pod_min_memory_mb: float, containers_per_pod: int
) -> tuple[int, int]:
    """Per-container minimum of ``GetRecommendedPodResources``: the pod minimum split equally.

    Returns:
        (millicores, bytes); memory uses MiB (``minMemoryMb * 1024 * 1024``) as upstream.
    """
    fraction = 1.0 / float(containers_per_pod)
    min_cpu = scale_resource(cpu_amount_from_cores(pod_min_cpu_millicores * 0.001), fraction)
    min_memory = scale_resource(memory_amount_from_bytes(pod_min_memory_mb * MIB), fraction)
    return int(min_cpu), int(min_memory)


# --------------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VPAConfig:
    """Recommender flags and aggregation settings (upstream defaults).

    Percentiles are fractions in [0, 1]; durations in seconds; memory in bytes unless named MiB.
    """

    target_cpu_percentile: float = 0.9
    lower_bound_cpu_percentile: float = 0.5
    upper_bound_cpu_percentile: float = 0.95
    target_memory_percentile: float = 0.9
    lower_bound_memory_percentile: float = 0.5
    upper_bound_memory_percentile: float = 0.95
    safety_margin_fraction: float = 0.15
    pod_min_cpu_millicores: float = 25.0
    pod_min_memory_mb: float = 250.0
    """MiB: upstream multiplies ``pod-recommendation-min-memory-mb`` by 1024*1024."""
    containers_per_pod: int = 1
    """Containers the pod minimum is split between (``1 / len(containerNameToAggregateStateMap)``)."""
    confidence_interval_cpu_s: float = 24 * 3600.0
    confidence_interval_memory_s: float = 24 * 3600.0
    cpu_histogram_decay_half_life_s: float = 24 * 3600.0
    memory_histogram_decay_half_life_s: float = 24 * 3600.0
    memory_aggregation_interval_s: float = 24 * 3600.0
    memory_aggregation_interval_count: int = 8
    histogram_bucket_size_growth: float = 0.05
    oom_bump_up_ratio: float = 1.2
    oom_min_bump_up_bytes: float = 100.0 * MIB
    cpu_sample_weight_by_request: bool = False
    """True: weight CPU samples by ``max(request cores, 0.1)`` as VPA before 1.4."""

    @property
    def memory_aggregation_window_s(self) -> float:
        """``GetMemoryAggregationWindowLength``: interval * count (s)."""
        return self.memory_aggregation_interval_s * self.memory_aggregation_interval_count


@dataclass(frozen=True)
class Recommendation:
    """Per-row recommendation: integer millicores and bytes (``ResourceAmount``)."""

    target_cpu_millicores: IntArray
    lower_bound_cpu_millicores: IntArray
    upper_bound_cpu_millicores: IntArray
    target_memory_bytes: IntArray
    lower_bound_memory_bytes: IntArray
    upper_bound_memory_bytes: IntArray


@dataclass(frozen=True)
class UpdaterConfig:
    """Updater flags used by :func:`needs_update`."""

    min_change_priority: float = 0.1
    """``--pod-update-threshold``."""
    pod_lifetime_update_threshold_s: float = 12 * 3600.0
    """``--in-recommendation-bounds-eviction-lifetime-threshold``."""


# --------------------------------------------------------------------------------------------------
# The recommender
# --------------------------------------------------------------------------------------------------


class VPARecommender:
    """The VPA recommender model for N containers (one aggregate state per row).

    Feed samples in time order with :meth:`add_cpu_samples`, :meth:`add_memory_samples` and
    :meth:`record_oom` (upstream's recommender loop runs every minute); :meth:`recommend` returns
    the target and bounds.
    """

    def __init__(self, n_containers: int, config: VPAConfig | None = None) -> None:
        self.n = int(n_containers)
        self.config = config if config is not None else VPAConfig()
        cfg = self.config
        self.cpu_histogram = DecayingHistogramBank(
            cpu_histogram_options(cfg.histogram_bucket_size_growth),
            self.n,
            cfg.cpu_histogram_decay_half_life_s,
        )
        self.memory_histogram = DecayingHistogramBank(
            memory_histogram_options(cfg.histogram_bucket_size_growth),
            self.n,
            cfg.memory_histogram_decay_half_life_s,
        )
        nan = np.full(self.n, np.nan)
        # AggregateContainerState
        self.first_sample_start_s = nan.copy()
        self.last_sample_start_s = nan.copy()
        self.total_samples_count = np.zeros(self.n, dtype=np.int64)
        self.creation_time_s = nan.copy()
        # ContainerState
        self.last_cpu_sample_start_s = nan.copy()
        self.memory_peak_bytes = np.zeros(self.n, dtype=np.int64)
        self.oom_peak_bytes = np.zeros(self.n, dtype=np.int64)
        self.window_end_s = nan.copy()
        self.last_memory_sample_start_s = nan.copy()

    # -- samples ---------------------------------------------------------------------------------

    def add_cpu_samples(
        self,
        now_s: float,
        usage_millicores: ArrayLike,
        request_millicores: ArrayLike,
        mask: ArrayLike | None = None,
    ) -> BoolArray:
        """``ContainerState.addCPUSample`` + ``AggregateContainerState.addCPUSample`` per row.

        A sample is discarded when its usage is negative or ``now_s`` is not after the row's last
        CPU sample. Weight: 0.1 (or ``max(request cores, 0.1)`` with the legacy option).

        Args:
            now_s: measurement start (s).
            usage_millicores: average CPU usage over the interval (millicores), shape (N,).
            request_millicores: current CPU request (millicores), shape (N,).
            mask: rows that have a sample (default all).

        Returns:
            Mask of accepted samples.
        """
        self._note_creation(now_s)
        usage = np.broadcast_to(np.asarray(usage_millicores, dtype=np.float64), (self.n,))
        request = np.broadcast_to(np.asarray(request_millicores, dtype=np.float64), (self.n,))
        sel = self._mask(mask)
        last = self.last_cpu_sample_start_s
        fresh = np.isnan(last) | (now_s > np.where(np.isnan(last), -np.inf, last))
        accepted = sel & (usage >= 0) & fresh
        rows = np.nonzero(accepted)[0]
        if rows.size == 0:
            return accepted
        amount = resource_amount_from_float(usage[rows])
        cores = amount / 1000.0
        if self.config.cpu_sample_weight_by_request:
            request_cores = resource_amount_from_float(request[rows]) / 1000.0
            weight = np.maximum(request_cores, MIN_SAMPLE_WEIGHT)
        else:
            weight = np.full(rows.size, MIN_SAMPLE_WEIGHT)
        self.cpu_histogram.add_sample(
            _scatter(self.n, rows, cores), _scatter(self.n, rows, weight), now_s, accepted
        )
        first = self.first_sample_start_s[rows]
        last_agg = self.last_sample_start_s[rows]
        self.last_sample_start_s[rows] = np.where(
            np.isnan(last_agg) | (now_s > last_agg), now_s, last_agg
        )
        self.first_sample_start_s[rows] = np.where(np.isnan(first) | (now_s < first), now_s, first)
        self.total_samples_count[rows] += 1
        self.last_cpu_sample_start_s[rows] = now_s
        return accepted

    def add_memory_samples(
        self, now_s: float, working_set_bytes: ArrayLike, mask: ArrayLike | None = None
    ) -> BoolArray:
        """``ContainerState.addMemorySample`` per row: one peak per aggregation interval.

        A sample earlier than the row's last memory sample, or negative, is discarded. Within the
        current interval a higher usage replaces the interval's peak in the histogram (subtract the
        old, add the new, both timestamped at the interval end); a sample past the interval end
        starts a new interval and adds its peak.

        Returns:
            Mask of accepted samples.
        """
        self._note_creation(now_s)
        usage = np.broadcast_to(np.asarray(working_set_bytes, dtype=np.float64), (self.n,))
        sel = self._mask(mask)
        outdated = now_s < self.last_memory_sample_start_s  # NaN (never) compares False
        accepted = sel & (usage >= 0) & ~outdated
        rows = np.nonzero(accepted)[0]
        if rows.size:
            self._add_memory_peak(rows, now_s, resource_amount_from_float(usage[rows]), False)
        return accepted

    def record_oom(self, now_s: float, mask: ArrayLike, memory_bytes: ArrayLike) -> BoolArray:
        """``ContainerState.RecordOOM``: an artificial memory sample after an OOM kill.

        The sample is ``max(used + oom_min_bump_up, used * oom_bump_up_ratio)`` with
        ``used = max(memory request, current interval's usage peak)``. An OOM more than one
        aggregation interval before the last memory sample is discarded.

        Args:
            now_s: time of the OOM kill (s).
            mask: rows whose container was OOM-killed.
            memory_bytes: the container's memory request at the OOM (bytes), shape (N,).

        Returns:
            Mask of recorded OOMs.
        """
        self._note_creation(now_s)
        cfg = self.config
        request = np.broadcast_to(np.asarray(memory_bytes, dtype=np.float64), (self.n,))
        sel = self._mask(mask)
        last = self.last_memory_sample_start_s
        stale = ~np.isnan(last) & (now_s < last - cfg.memory_aggregation_interval_s)
        accepted = sel & ~stale
        rows = np.nonzero(accepted)[0]
        if rows.size == 0:
            return accepted
        used = np.maximum(resource_amount_from_float(request[rows]), self.memory_peak_bytes[rows])
        bumped_min = used + int(memory_amount_from_bytes(cfg.oom_min_bump_up_bytes))
        bumped_ratio = scale_resource(used, cfg.oom_bump_up_ratio)
        needed = np.maximum(bumped_min, bumped_ratio)
        self._add_memory_peak(rows, now_s, needed, True)
        return accepted

    def _add_memory_peak(self, rows: IntArray, ts: float, usage: IntArray, is_oom: bool) -> None:
        """The shared body of ``addMemorySample`` for valid samples on ``rows``."""
        interval = self.config.memory_aggregation_interval_s
        self.last_memory_sample_start_s[rows] = ts
        first = np.isnan(self.window_end_s[rows])
        self.window_end_s[rows[first]] = ts
        window_end = self.window_end_s[rows]
        in_window = ts < window_end
        old_max = np.maximum(self.memory_peak_bytes[rows], self.oom_peak_bytes[rows])

        replace_peak = in_window & (old_max != 0) & (usage > old_max)
        if np.any(replace_peak):
            r = rows[replace_peak]
            self.memory_histogram.subtract_sample(
                _scatter(self.n, r, old_max[replace_peak].astype(np.float64)),
                1.0,
                _scatter(self.n, r, window_end[replace_peak]),
                _row_mask(self.n, r),
            )

        new_interval = ~in_window
        if np.any(new_interval):
            r = rows[new_interval]
            # Duration.Truncate rounds toward zero; ts >= WindowEnd here.
            shift = np.floor((ts - window_end[new_interval]) / interval) * interval + interval
            self.window_end_s[r] = window_end[new_interval] + shift
            self.memory_peak_bytes[r] = 0
            self.oom_peak_bytes[r] = 0

        add = replace_peak | new_interval
        if np.any(add):
            r = rows[add]
            self.memory_histogram.add_sample(
                _scatter(self.n, r, usage[add].astype(np.float64)),
                1.0,
                _scatter(self.n, r, self.window_end_s[r]),
                _row_mask(self.n, r),
            )
            if is_oom:
                self.oom_peak_bytes[r] = usage[add]
            else:
                self.memory_peak_bytes[r] = usage[add]

    # -- recommendation --------------------------------------------------------------------------

    def garbage_collect_expired(self, now_s: float) -> BoolArray:
        """``isExpired`` + aggregate deletion: reset rows whose last CPU sample (or creation,
        without samples) is at least one memory aggregation window (8 days) old.

        Returns:
            Mask of reset rows.
        """
        window = self.config.memory_aggregation_window_s
        empty = self.total_samples_count == 0
        since = np.where(empty, self.creation_time_s, self.last_sample_start_s)
        expired = ~np.isnan(since) & (now_s - since >= window)
        rows = np.nonzero(expired)[0]
        if rows.size:
            self.cpu_histogram.reset(rows)
            self.memory_histogram.reset(rows)
            self.first_sample_start_s[rows] = np.nan
            self.last_sample_start_s[rows] = np.nan
            self.total_samples_count[rows] = 0
            self.creation_time_s[rows] = now_s
        return expired

    def recommend(self, now_s: float) -> Recommendation:
        """Garbage-collect expired rows, then the ``podResourceRecommender`` estimators.

        target = max(margin(p90), min); lower = max(confidence(margin(p50), 0.001, -2), min);
        upper = max(confidence(margin(p95), 1, +1), min), for CPU and memory alike.
        """
        self.garbage_collect_expired(now_s)
        cfg = self.config
        min_cpu, min_memory = pod_min_resources(
            cfg.pod_min_cpu_millicores, cfg.pod_min_memory_mb, cfg.containers_per_pod
        )
        cpu_conf = get_confidence(
            self.first_sample_start_s,
            self.last_sample_start_s,
            self.total_samples_count,
            cfg.confidence_interval_cpu_s,
        )
        mem_conf = get_confidence(
            self.first_sample_start_s,
            self.last_sample_start_s,
            self.total_samples_count,
            cfg.confidence_interval_memory_s,
        )

        def cpu(p: float) -> IntArray:
            return with_margin(
                cpu_amount_from_cores(self.cpu_histogram.percentile(p)), cfg.safety_margin_fraction
            )

        def mem(p: float) -> IntArray:
            return with_margin(
                memory_amount_from_bytes(self.memory_histogram.percentile(p)),
                cfg.safety_margin_fraction,
            )

        return Recommendation(
            target_cpu_millicores=with_min_resource(cpu(cfg.target_cpu_percentile), min_cpu),
            lower_bound_cpu_millicores=with_min_resource(
                with_confidence_multiplier(
                    cpu(cfg.lower_bound_cpu_percentile), 0.001, -2.0, cpu_conf
                ),
                min_cpu,
            ),
            upper_bound_cpu_millicores=with_min_resource(
                with_confidence_multiplier(cpu(cfg.upper_bound_cpu_percentile), 1.0, 1.0, cpu_conf),
                min_cpu,
            ),
            target_memory_bytes=with_min_resource(mem(cfg.target_memory_percentile), min_memory),
            lower_bound_memory_bytes=with_min_resource(
                with_confidence_multiplier(
                    mem(cfg.lower_bound_memory_percentile), 0.001, -2.0, mem_conf
                ),
                min_memory,
            ),
            upper_bound_memory_bytes=with_min_resource(
                with_confidence_multiplier(
                    mem(cfg.upper_bound_memory_percentile), 1.0, 1.0, mem_conf
                ),
                min_memory,
            ),
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _mask(self, mask: ArrayLike | None) -> BoolArray:
        if mask is None:
            return np.ones(self.n, dtype=bool)
        return np.broadcast_to(np.asarray(mask, dtype=bool), (self.n,)).copy()

    def _note_creation(self, now_s: float) -> None:
        """``CreationTime`` of an aggregate: the first time the row is touched."""
        self.creation_time_s = np.where(np.isnan(self.creation_time_s), now_s, self.creation_time_s)


def _scatter(n: int, rows: IntArray, values: ArrayLike) -> FloatArray:
    out = np.zeros(n)
    out[rows] = values
    return out


def _row_mask(n: int, rows: IntArray) -> BoolArray:
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


# --------------------------------------------------------------------------------------------------
# Updater (pkg/updater/priority)
# --------------------------------------------------------------------------------------------------


def needs_update(
    current_cpu_millicores: ArrayLike,
    current_memory_bytes: ArrayLike,
    recommendation: Recommendation,
    pod_age_s: ArrayLike | None = None,
    config: UpdaterConfig | None = None,
) -> BoolArray:
    """The updater's per-container rule: update when a request is outside [lower, upper].

    ``GetUpdatePriority`` marks a pod ``OutsideRecommendedRange`` when a request is below the lower
    bound or above the upper bound (a missing request, NaN here, counts as outside). When
    ``pod_age_s`` is given, ``UpdatePriorityCalculator.AddPod``'s second rule also applies: a pod
    that has lived at least 12 h is updated when ``sum(|request - target| / max(request, 1))`` over
    CPU and memory (in milli-units, as ``MilliValue``) is at least 0.1. Quick-OOM eviction and
    eviction admission (PDB, min replicas) are not modelled.
    """
    cfg = config if config is not None else UpdaterConfig()
    cpu = np.asarray(current_cpu_millicores, dtype=np.float64)
    mem = np.asarray(current_memory_bytes, dtype=np.float64)
    rec = recommendation
    with np.errstate(invalid="ignore"):
        outside_cpu = (
            np.isnan(cpu)
            | (cpu < rec.lower_bound_cpu_millicores)
            | (cpu > rec.upper_bound_cpu_millicores)
        )
        outside_mem = (
            np.isnan(mem)
            | (mem < rec.lower_bound_memory_bytes)
            | (mem > rec.upper_bound_memory_bytes)
        )
    outside = outside_cpu | outside_mem
    if pod_age_s is None:
        return outside
    age = np.asarray(pod_age_s, dtype=np.float64)
    cpu_req = np.where(np.isnan(cpu), 0.0, cpu)
    mem_req_milli = np.where(np.isnan(mem), 0.0, mem) * 1000.0
    diff = np.abs(cpu_req - rec.target_cpu_millicores) / np.maximum(cpu_req, 1.0)
    diff = diff + np.abs(mem_req_milli - rec.target_memory_bytes * 1000.0) / np.maximum(
        mem_req_milli, 1.0
    )
    long_lived = age >= cfg.pod_lifetime_update_threshold_s
    return outside | (long_lived & (diff >= cfg.min_change_priority))
