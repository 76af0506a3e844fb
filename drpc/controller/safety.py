"""Safety rules between a recommendation and an action: one rule per function.

The policy endpoint is stateless; the state the rules need (recommendation history, last change
per service and knob) lives in :class:`SafetyState`. :func:`plan_service` applies the rules in
this order and returns the actions plus a note for each rule that changed or blocked something:

replicas: namespace allowlist -> bounds -> record recommendation -> scale-down stabilisation ->
no scale-down without ready pods -> step limit -> cooldown -> no-op.

cpu / memory limits: allowlist -> bounds -> (memory) not below the working set -> no change
without ready pods -> step ratio -> dead band -> cooldown -> no-op; the request follows the
limit with the decision's request/limit ratio (so the pod's QoS class is kept).

**Cooldowns hold decreases and reversals, not a continued increase** (as the HPA, whose
scale-up has no stabilisation window): after a change of a knob, the next change of the same
knob waits ``cooldown_<knob>_s`` unless both go up. A rising load is then followed every sync,
each step still bounded by ``max_replica_step`` / ``max_limit_step_ratio``; what the cooldown
prevents is flapping and a fast scale-in.

New pods: in-place resize changes running pods only, so pods the Deployment creates later start
with the template's limits; :func:`converge_new_pods` resizes them to the limits the controller
last applied (source ``converge``; no cooldown, the service's limit does not change). The
targets live in :class:`SafetyState`, so after a controller restart pods converge from the next
limit change on.

Dry run is not a rule here: the plan is the same, and :mod:`drpc.controller.apply` writes
nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from drpc.controller.config import ControllerConfig, ServiceBounds

__all__ = [
    "KNOBS",
    "Knob",
    "Source",
    "Proposal",
    "Observed",
    "Action",
    "SafetyState",
    "namespace_allowed",
    "clamp_to_bounds",
    "limit_replica_step",
    "limit_ratio_step",
    "within_dead_band",
    "in_cooldown",
    "continues_increase",
    "converge_new_pods",
    "stabilize_scale_down",
    "keep_cpu_capacity",
    "no_scale_down_without_ready_pods",
    "memory_limit_not_below_working_set",
    "request_keeping_ratio",
    "plan_service",
]

Knob = Literal["replicas", "cpu", "memory"]
Source = Literal["policy", "fallback", "hold", "converge"]
KNOBS: tuple[Knob, ...] = ("replicas", "cpu", "memory")


@dataclass(frozen=True)
class Proposal:
    """A recommendation for one service (from the policy or the HPA fallback); None = no opinion."""

    namespace: str
    service: str
    source: Source
    reason: str
    replicas: int | None = None
    cpu_limit_millicores: float | None = None
    cpu_request_millicores: float | None = None
    memory_limit_mib: float | None = None
    memory_request_mib: float | None = None


@dataclass(frozen=True)
class Observed:
    """One service's current state (the API's spec values, Prometheus's usage)."""

    replicas: int
    """``spec.replicas`` (pods)."""
    replicas_ready: int
    """Ready pods."""
    cpu_limit_millicores: float
    cpu_request_millicores: float
    memory_limit_mib: float
    memory_request_mib: float
    memory_working_set_mib: float = 0.0
    """Working set summed over pods (MiB)."""


@dataclass(frozen=True)
class Action:
    """One change of one knob of one service; ``action_id`` makes applying it idempotent."""

    namespace: str
    service: str
    knob: Knob
    old: float
    """Current value: replicas (pods), CPU limit (millicores) or memory limit (MiB)."""
    new: float
    """Target value in the same unit."""
    source: Source
    reason: str
    new_request: float | None = None
    """Target request for cpu/memory (millicores or MiB); None for replicas."""
    old_request: float | None = None
    action_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


@dataclass
class SafetyState:
    """What the rules remember between syncs (per ``namespace/name``)."""

    recommendations: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    """Service -> ``(time_s, replicas)`` recommendations inside the stabilisation window."""
    last_change_s: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(service, knob)`` -> time of the last applied change (s)."""
    last_change_up: dict[tuple[str, str], bool] = field(default_factory=dict)
    """``(service, knob)`` -> whether that change was an increase."""
    limit_target: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    """``(service, "cpu"|"memory")`` -> the (limit, request) the controller last applied."""

    def record_recommendation(self, key: str, now_s: float, replicas: int, window_s: float) -> None:
        """Keep ``replicas`` and forget recommendations older than ``window_s``."""
        kept = [(t, r) for t, r in self.recommendations.get(key, []) if now_s - t < window_s]
        kept.append((now_s, replicas))
        self.recommendations[key] = kept

    def record_change(self, key: str, action: Action, now_s: float) -> None:
        """Remember an applied ``action`` of service ``key``: start its knob's cooldown (not for
        a ``converge`` action, which changes no service-level value) and, for cpu/memory, the
        limit and request new pods are resized to."""
        if action.knob in ("cpu", "memory"):
            request = action.new_request if action.new_request is not None else action.new
            self.limit_target[(key, action.knob)] = (float(action.new), float(request))
        if action.source == "converge":
            return
        self.last_change_s[(key, action.knob)] = now_s
        self.last_change_up[(key, action.knob)] = float(action.new) > float(action.old)


# ---------------------------------------------------------------------------------- the rules


def namespace_allowed(namespace: str, allowlist: Iterable[str]) -> bool:
    """Whether ``namespace`` is in the allowlist (an empty allowlist allows nothing)."""
    return namespace in set(allowlist)


def clamp_to_bounds(value: float, lo: float, hi: float) -> float:
    """``value`` clamped to ``[lo, hi]``."""
    return min(hi, max(lo, value))


def limit_replica_step(current: int, desired: int, max_step: int) -> int:
    """``desired`` moved at most ``max_step`` pods away from ``current``."""
    return current + max(-max_step, min(max_step, desired - current))


def limit_ratio_step(current: float, desired: float, max_ratio: float) -> float:
    """``desired`` kept within ``[current x (1 - r), current x (1 + r)]`` (r = ``max_ratio``)."""
    return clamp_to_bounds(
        desired, current * max(0.0, 1.0 - max_ratio), current * (1.0 + max_ratio)
    )


def converge_new_pods(
    namespace: str,
    service: str,
    pod_resources: Sequence[tuple[float, float, float, float]],
    targets: dict[str, tuple[float, float]],
    planned: Iterable[str],
) -> list[Action]:
    """Resize pods whose sized container differs from the limits the controller last applied.

    In-place resize changes running pods only: a pod the Deployment creates later (a scale-up,
    a restart) starts with the template's limits, while the snapshot's ``max`` over pods shows
    the resized value, so the policy would count capacity that is not there. One action per
    knob (``cpu``/``memory``) that has a target in ``targets`` (``knob -> (limit, request)``),
    no action planned this sync (``planned``) and a pod off it; its ``old`` is the smallest
    such pod's limit, ``new`` the target. No cooldown or step limit: the service's limit does
    not change."""
    column = {"cpu": (0, 1), "memory": (2, 3)}
    planned = set(planned)
    actions = []
    for knob, (limit, request) in targets.items():
        if knob in planned:
            continue
        li, ri = column[knob]
        behind = [
            r
            for r in pod_resources
            if round(r[li]) != round(limit) or round(r[ri]) != round(request)
        ]
        if behind:
            actions.append(
                Action(
                    namespace,
                    service,
                    knob,
                    min(r[li] for r in behind),
                    limit,  # type: ignore[arg-type]
                    "converge",
                    f"{len(behind)} pod(s) off the service's {knob} limit "
                    "(started from the template): resized",
                    new_request=request,
                    old_request=min(r[ri] for r in behind),
                )  # fmt: skip
            )
    return actions


def within_dead_band(current: float, desired: float, min_ratio: float) -> bool:
    """Whether ``|desired - current| < min_ratio x current`` (too small to be worth a change)."""
    return abs(desired - current) < min_ratio * abs(current)


def in_cooldown(last_change_s: float | None, now_s: float, cooldown_s: float) -> bool:
    """Whether a change at ``last_change_s`` (None: never) is less than ``cooldown_s`` ago."""
    return last_change_s is not None and now_s - last_change_s < cooldown_s


def continues_increase(last_was_up: bool | None, old: float, new: float) -> bool:
    """Whether ``old -> new`` is an increase right after an increase (no cooldown applies)."""
    return bool(last_was_up) and new > old


def stabilize_scale_down(
    recommendations: Sequence[tuple[float, int]], now_s: float, window_s: float, current: int
) -> int:
    """HPA's scale-down stabilisation (scale-up window 0): ``min(current, max(window))``.

    ``recommendations`` must include this sync's. A scale-up passes unchanged; a scale-down goes
    only to the highest recommendation of the last ``window_s`` seconds (boundary excluded).
    """
    in_window = [r for t, r in recommendations if now_s - t < window_s] or [recommendations[-1][1]]
    newest = recommendations[-1][1]
    if newest >= current:
        return newest
    return min(current, max(in_window))


def keep_cpu_capacity(
    current: int,
    desired: int,
    old_cpu_limit: float,
    cpu_limit_after: float,
    proposed_replicas: int,
    proposed_cpu_limit: float,
) -> int:
    """Replicas so that this sync never cuts CPU capacity (replicas x CPU limit) below what
    the recommendation intends, nor below what runs now if the recommendation keeps it.

    A policy may trade pods for bigger pods (3 x 200m -> 1 x 400m when it wants 600m of
    capacity). When the bigger limit is held back (step limit, cooldown) while the replica
    cut goes through, capacity would fall (1 x 300m) exactly when the load needs it. The
    floor is ``ceil(min(current capacity, intended capacity) / CPU limit after this sync)``;
    only scale-downs are raised to it.
    """
    if desired >= current or cpu_limit_after <= 0:
        return desired
    keep = min(current * old_cpu_limit, proposed_replicas * proposed_cpu_limit)
    floor = math.ceil(keep / cpu_limit_after - 1e-9)
    return max(desired, min(current, floor))


def no_scale_down_without_ready_pods(current: int, ready: int, desired: int) -> int:
    """With no ready pod (all starting or crashing) usage says nothing: never scale down."""
    return current if ready == 0 and desired < current else desired


def memory_limit_not_below_working_set(
    desired_mib: float, working_set_mib: float, ready: int, margin: float = 1.1
) -> float:
    """The memory limit never goes below ``margin`` x the per-pod working set (no OOM by us)."""
    if ready <= 0:
        return desired_mib
    return max(desired_mib, margin * working_set_mib / ready)


def request_keeping_ratio(
    decided_request: float | None,
    decided_limit: float,
    new_limit: float,
    old_request: float,
    old_limit: float,
) -> float:
    """The request for ``new_limit``: the decision's request/limit ratio (else the current one)."""
    if decided_request is not None and decided_limit > 0:
        ratio = decided_request / decided_limit
    else:
        ratio = old_request / old_limit if old_limit > 0 else 1.0
    return min(new_limit, max(1.0, round(new_limit * min(1.0, ratio))))


# ---------------------------------------------------------------------------------- the plan


def plan_service(
    proposal: Proposal,
    observed: Observed,
    bounds: ServiceBounds,
    config: ControllerConfig,
    state: SafetyState,
    now_s: float,
) -> tuple[list[Action], list[str]]:
    """Turn one recommendation into safe actions.

    Returns:
        ``(actions, notes)``: at most one action per knob; a note per rule that changed or
        blocked a value (``"replicas: cooldown 12 s left"``).
    """
    key = f"{proposal.namespace}/{proposal.service}"
    notes: list[str] = []
    actions: list[Action] = []
    if not namespace_allowed(proposal.namespace, config.namespaces):
        return [], [f"refused: namespace {proposal.namespace!r} is not in the allowlist"]

    def cooling(knob: str, old: float, new: float) -> bool:
        if continues_increase(state.last_change_up.get((key, knob)), old, new):
            return False
        last = state.last_change_s.get((key, knob))
        if in_cooldown(last, now_s, config.cooldown_s(knob)):
            assert last is not None
            left = config.cooldown_s(knob) - (now_s - last)
            notes.append(f"{knob}: cooldown {left:.0f} s left")
            return True
        return False

    # --- limits
    for knob, limit, request, old_limit, old_request, lo, hi in (
        ("cpu", proposal.cpu_limit_millicores, proposal.cpu_request_millicores,
         observed.cpu_limit_millicores, observed.cpu_request_millicores,
         bounds.min_cpu_limit_millicores, bounds.max_cpu_limit_millicores),
        ("memory", proposal.memory_limit_mib, proposal.memory_request_mib,
         observed.memory_limit_mib, observed.memory_request_mib,
         bounds.min_memory_limit_mib, bounds.max_memory_limit_mib),
    ):  # fmt: skip
        if limit is None or not math.isfinite(limit):
            continue
        want = clamp_to_bounds(limit, lo, hi)
        if want != limit:
            notes.append(f"{knob}: {limit:g} clamped to bounds -> {want:g}")
        if knob == "memory":
            floor = memory_limit_not_below_working_set(
                want, observed.memory_working_set_mib, observed.replicas_ready
            )
            if floor != want:
                notes.append(f"memory: kept above the working set -> {floor:.0f}")
                want = min(hi, floor)
        if observed.replicas_ready == 0:
            notes.append(f"{knob}: no ready pods, no change")
            continue
        stepped = limit_ratio_step(old_limit, want, config.max_limit_step_ratio)
        if not math.isclose(stepped, want):
            notes.append(f"{knob}: step limited {want:g} -> {stepped:g}")
        stepped = float(round(clamp_to_bounds(stepped, lo, hi)))
        if within_dead_band(old_limit, stepped, config.min_limit_change_ratio):
            continue
        if cooling(knob, old_limit, stepped):
            continue
        new_request = request_keeping_ratio(request, limit, stepped, old_request, old_limit)
        actions.append(
            Action(
                proposal.namespace,
                proposal.service,
                knob,
                old_limit,
                stepped,  # type: ignore[arg-type]
                proposal.source,
                proposal.reason,
                new_request=new_request,
                old_request=old_request,
            )  # fmt: skip
        )

    cpu_after = next((a.new for a in actions if a.knob == "cpu"), observed.cpu_limit_millicores)
    # --- replicas
    if proposal.replicas is not None:
        current = observed.replicas
        want = int(clamp_to_bounds(proposal.replicas, bounds.min_replicas, bounds.max_replicas))
        if want != proposal.replicas:
            notes.append(f"replicas: {proposal.replicas} clamped to bounds -> {want}")
        if key not in state.recommendations:  # as the HPA: the first recommendation is now
            state.record_recommendation(key, now_s, current, config.scale_down_stabilization_s)
        state.record_recommendation(key, now_s, want, config.scale_down_stabilization_s)
        stable = stabilize_scale_down(
            state.recommendations[key], now_s, config.scale_down_stabilization_s, current
        )
        if stable != want:
            notes.append(f"replicas: scale-down stabilised {want} -> {stable}")
        guarded = no_scale_down_without_ready_pods(current, observed.replicas_ready, stable)
        if guarded != stable:
            notes.append("replicas: no ready pods, no scale-down")
        if proposal.cpu_limit_millicores is not None and math.isfinite(
            proposal.cpu_limit_millicores
        ):
            kept = keep_cpu_capacity(
                current,
                guarded,
                observed.cpu_limit_millicores,
                cpu_after,
                want,
                proposal.cpu_limit_millicores,
            )
            if kept != guarded:
                notes.append(f"replicas: CPU capacity kept, {guarded} -> {kept}")
            guarded = kept
        stepped = limit_replica_step(current, guarded, config.max_replica_step)
        if stepped != guarded:
            notes.append(f"replicas: step limited {guarded} -> {stepped}")
        # the current count may itself be out of bounds (set by hand): bounds win
        final = int(clamp_to_bounds(stepped, bounds.min_replicas, bounds.max_replicas))
        if final != current and not cooling("replicas", current, final):
            actions.append(
                Action(
                    proposal.namespace,
                    proposal.service,
                    "replicas",
                    current,
                    final,
                    proposal.source,
                    proposal.reason,
                )  # fmt: skip
            )

    return actions, notes
