"""Rewards: a weighted cost of SLO violation, failures, allocation and churn, or the paper's.

``weighted`` (default)::

    r = -( w_slo   * sum_e share_e * min(max(p99_e / SLO_e - 1, 0), slo_excess_cap)
         + w_fail  * failed request fraction
         + w_cost  * CPU allocated / CPU allocated with every service at max replicas
         + w_churn * share of (service, knob) pairs changed this interval )

``paper`` (Bai et al., DRPC, eq. for R_qos and R_ult), reproduced as written::

    R_qos = 1 if p99 <= RT_max else exp(-((p99 - RT_max) / RT_max)^2)
    R_ult = mean over {CPU, memory} of (1 + mean over deployments of |utilisation - 0.75|)
    r     = R_qos / R_ult

with p99 / RT_max the worst endpoint's ratio to its SLO and utilisation = usage / limit of the
ready pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from drpc.sim.graph import CompiledApp
from drpc.sim.types import Observation

__all__ = ["RewardConfig", "compute_reward", "paper_reward", "weighted_reward"]


@dataclass(frozen=True)
class RewardConfig:
    """Which reward and its weights."""

    kind: Literal["weighted", "paper"] = "weighted"
    """'weighted' (SLO, failures, cost, churn) or 'paper' (R_qos / R_ult of the DRPC paper)."""
    slo_weight: float = 1.0
    """Weight of the traffic-weighted SLO excess."""
    failure_weight: float = 5.0
    """Weight of the failed request fraction."""
    cost_weight: float = 0.5
    """Weight of the allocated CPU as a fraction of the all-max allocation."""
    churn_weight: float = 0.05
    """Weight of the share of knobs changed this interval."""
    slo_excess_cap: float = 4.0
    """Cap on p99 / SLO - 1 per endpoint, so one bad interval does not dominate."""
    target_utilization: float = 0.75
    """The paper's utilisation target in R_ult."""

    def __post_init__(self) -> None:
        if self.kind not in ("weighted", "paper"):
            raise ValueError(f"reward kind must be 'weighted' or 'paper', got {self.kind!r}")
        for name in ("slo_weight", "failure_weight", "cost_weight", "churn_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def weighted_reward(
    obs: Observation, app: CompiledApp, changed: np.ndarray, cfg: RewardConfig
) -> tuple[float, dict[str, float]]:
    """The weighted reward and its terms (all costs, >= 0)."""
    rps = obs.endpoint_rps
    total = rps.sum()
    share = rps / total if total > 0 else np.zeros_like(rps)
    excess = np.clip(obs.endpoint_latency_p99_ms / app.slo_ms - 1.0, 0.0, cfg.slo_excess_cap)
    slo = float((share * excess).sum())
    failed = float((share * obs.endpoint_error_rate).sum())
    max_alloc = float((app.max_replicas * app.cpu_request_m0).sum())
    cost = obs.cpu_allocated_millicores / max_alloc
    churn = float(np.mean(changed)) if changed.size else 0.0
    terms = {"slo": slo, "failed": failed, "cost": cost, "churn": churn}
    r = -(
        cfg.slo_weight * slo
        + cfg.failure_weight * failed
        + cfg.cost_weight * cost
        + cfg.churn_weight * churn
    )
    return float(r), terms


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
