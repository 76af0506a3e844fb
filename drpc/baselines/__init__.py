"""Baseline autoscalers: exact Kubernetes HPA and VPA ports, a threshold rule, a static
allocation and a clairvoyant oracle. Importing this package registers them as policies
(``hpa``, ``vpa``, ``threshold``, ``static``, ``oracle``)."""

from drpc.baselines.policies import (
    HPAParams,
    HPAPolicy,
    OracleParams,
    OraclePolicy,
    StaticParams,
    StaticPolicy,
    ThresholdParams,
    ThresholdPolicy,
    VPAParams,
    VPAPolicy,
    steady_state_p99_ms,
)

__all__ = [
    "HPAParams",
    "HPAPolicy",
    "OracleParams",
    "OraclePolicy",
    "StaticParams",
    "StaticPolicy",
    "ThresholdParams",
    "ThresholdPolicy",
    "VPAParams",
    "VPAPolicy",
    "steady_state_p99_ms",
]
