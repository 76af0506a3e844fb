"""The central teacher: networks shared across services, trained by RL on the simulated cluster."""

from drpc.teacher.networks import PerServiceActor, PerServiceCritic, pooled_context

__all__ = ["PerServiceActor", "PerServiceCritic", "pooled_context"]
