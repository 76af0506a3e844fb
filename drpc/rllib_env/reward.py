"""Rewards: a weighted cost of SLO violation, failures, allocation and churn, or the paper's.

``weighted`` (default)::

    r = -( w_slo   * sum_e share_e * min(max(p99_e / (h * SLO_e) - 1, 0), slo_excess_cap)
         + w_viol  * sum_e share_e * [p99_e > h * SLO_e]
         + w_fail  * failed request fraction
         + w_cost  * CPU allocated / CPU allocated with every service at max replicas
         + w_churn * share of (service, knob) pairs changed this interval )

with h = ``slo_headroom`` (1 by default).

``paper`` (Bai et al., DRPC, eq. for R_qos and R_ult), reproduced as written::

    R_qos = 1 if p99 <= RT_max else exp(-((p99 - RT_max) / RT_max)^2)
    R_ult = mean over {CPU, memory} of (1 + mean over deployments of |utilisation - 0.75|)
    r     = R_qos / R_ult

with p99 / RT_max the worst endpoint's ratio to its SLO and utilisation = usage / limit of the
ready pods.

``service_rewards`` splits the weighted reward into one share per service; the shares sum to
the reward, so a critic per service can learn which service's knobs cost what (credit assignment
over dozens of services from one number is what makes a single-Q teacher slow to train):

- SLO and failure terms: each endpoint's term is split over the services on its call tree
  in proportion to their latency contribution, visits_e,i x p99_i / sum_j visits_e,j x p99_j;
- cost: in proportion to each service's allocated CPU (requests x scheduled pods);
- churn: each service's own changed knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.types import Observation

__all__ = [
    "RewardConfig",
    "compute_reward",
    "paper_reward",
    "service_rewards",
    "weighted_reward",
]


@dataclass(frozen=True)
class RewardConfig:
    """Which reward and its weights."""

    kind: Literal["weighted", "paper"] = "weighted"
    """'weighted' (SLO, failures, cost, churn) or 'paper' (R_qos / R_ult of the DRPC paper)."""
    slo_weight: float = 1.0
    """Weight of the traffic-weighted SLO excess."""
    violation_weight: float = 0.0
    """Weight of the traffic share of endpoints over the SLO at all (an indicator: a small
    violation costs as much as a large one, as in the SLO-violation fraction users count)."""
    failure_weight: float = 5.0
    """Weight of the failed request fraction."""
    cost_weight: float = 0.5
    """Weight of the allocated CPU as a fraction of the all-max allocation."""
    churn_weight: float = 0.05
    """Weight of the share of knobs changed this interval."""
    slo_headroom: float = 1.0
    """The SLO term counts p99 above this fraction of the SLO (e.g. 0.8: keep 20% headroom)."""
    slo_excess_cap: float = 4.0
    """Cap on p99 / SLO - 1 per endpoint, so one bad interval does not dominate."""
    target_utilization: float = 0.75
    """The paper's utilisation target in R_ult."""

    def __post_init__(self) -> None:
        if self.kind not in ("weighted", "paper"):
            raise ValueError(f"reward kind must be 'weighted' or 'paper', got {self.kind!r}")
        if not 0 < self.slo_headroom <= 1:
            raise ValueError(f"slo_headroom must be in (0, 1], got {self.slo_headroom}")
        for name in (
            "slo_weight",
            "violation_weight",
            "failure_weight",
            "cost_weight",
            "churn_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def _slo_excess(obs: Observation, app: CompiledApp, cfg: RewardConfig) -> np.ndarray:
    """Per endpoint: min(max(p99 / (headroom x SLO) - 1, 0), cap)."""
    ratio = obs.endpoint_latency_p99_ms / (cfg.slo_headroom * app.slo_ms)
    return np.clip(ratio - 1.0, 0.0, cfg.slo_excess_cap)


def weighted_reward(
    obs: Observation, app: CompiledApp, changed: np.ndarray, cfg: RewardConfig
) -> tuple[float, dict[str, float]]:
    """The weighted reward and its terms (all costs, >= 0)."""
    rps = obs.endpoint_rps
    total = rps.sum()
    share = rps / total if total > 0 else np.zeros_like(rps)
    excess = _slo_excess(obs, app, cfg)
    slo = float((share * excess).sum())
    violated = float((share * (excess > 0)).sum())
    failed = float((share * obs.endpoint_error_rate).sum())
    max_alloc = float((app.max_replicas * app.cpu_request_m0).sum())
    cost = obs.cpu_allocated_millicores / max_alloc
    churn = float(np.mean(changed)) if changed.size else 0.0
    terms = {"slo": slo, "violated": violated, "failed": failed, "cost": cost, "churn": churn}
    r = -(
        cfg.slo_weight * slo
        + cfg.violation_weight * violated
        + cfg.failure_weight * failed
        + cfg.cost_weight * cost
        + cfg.churn_weight * churn
    )
    return float(r), terms


def _latency_blame(obs: Observation, app: CompiledApp) -> np.ndarray:
    """(E, S): each service's share of each endpoint's latency (rows sum to 1 or 0)."""
    contrib = app.visits.multiply(np.maximum(obs.latency_p99_ms, 0.0)[None, :]).toarray()
    total = contrib.sum(axis=1, keepdims=True)
    return np.divide(contrib, total, out=np.zeros_like(contrib), where=total > 0)


def service_rewards(
    obs: Observation, app: CompiledApp, changed: np.ndarray, cfg: RewardConfig
) -> np.ndarray:
    """Per-service shares (S,) of :func:`weighted_reward`; they sum to it."""
    n = app.n_services
    rps = obs.endpoint_rps
    total = rps.sum()
    share = rps / total if total > 0 else np.zeros_like(rps)
    excess = _slo_excess(obs, app, cfg)
    blame = _latency_blame(obs, app)
    per_endpoint = share * (
        cfg.slo_weight * excess
        + cfg.violation_weight * (excess > 0)
        + cfg.failure_weight * obs.endpoint_error_rate
    )
    qos = per_endpoint @ blame  # (S,), sums to the SLO + failure terms
    max_alloc = float((app.max_replicas * app.cpu_request_m0).sum())
    scheduled = np.maximum(obs.replicas_desired - obs.pods_pending, obs.replicas_ready)
    alloc = obs.cpu_request_millicores * np.maximum(scheduled, 0)
    alloc_share = alloc / alloc.sum() if alloc.sum() > 0 else np.full(n, 1.0 / n)
    cost = cfg.cost_weight * (obs.cpu_allocated_millicores / max_alloc) * alloc_share
    churn = cfg.churn_weight * (changed.mean(axis=1) / n if changed.size else np.zeros(n))
    return (-(qos + cost + churn)).astype(np.float32)


def paper_reward(
    obs: Observation, app: CompiledApp, cfg: RewardConfig
) -> tuple[float, dict[str, float]]:
    """R_qos / R_ult of the DRPC paper (maximum 1)."""
    active = obs.endpoint_rps > 0
    ratio = np.where(active, obs.endpoint_latency_p99_ms / app.slo_ms, 0.0)
    worst = float(ratio.max(initial=0.0))
    r_qos = 1.0 if worst <= 1.0 else float(np.exp(-((worst - 1.0) ** 2)))
    ready = np.maximum(obs.replicas_ready, 1)
    u_cpu = obs.cpu_usage_millicores / (obs.cpu_limit_millicores * ready)
    u_mem = obs.memory_working_set_mib / (obs.memory_limit_mib * ready)
    t = cfg.target_utilization
    r_ult = 0.5 * ((1 + np.mean(np.abs(u_cpu - t))) + (1 + np.mean(np.abs(u_mem - t))))
    return r_qos / float(r_ult), {
        "r_qos": r_qos,
        "r_ult": float(r_ult),
        "worst_p99_over_slo": worst,
    }


def compute_reward(
    obs: Observation, app: CompiledApp, changed: np.ndarray, cfg: RewardConfig
) -> tuple[float, dict[str, float]]:
    """The configured reward and its terms."""
    if cfg.kind == "paper":
        return paper_reward(obs, app, cfg)
    return weighted_reward(obs, app, changed, cfg)
