"""Distil the central teacher into per-deployment students: behaviour cloning and DAgger.

    from drpc.imitation.distill import DistillConfig, distill
    result = distill("drpc/data/teacher", cfg=DistillConfig(method="dagger", sample_budget=100_000))
    result.save("runs/students")           # drpc_students.json + students.pt

One run, top to bottom (the same loop for both methods, so they differ only in who acts):

1. Build the env (:class:`~drpc.rllib_env.env.ClusterEnv`) over the *training* scenarios with
   the teacher's own action mapping, reward and forecast setting, random episode starts, load
   scales, spikes and outages (as the teacher trained), and fresh students for the app's
   services, grouped by a :class:`~drpc.imitation.nodes.NodeMap`.
2. For each of ``iterations`` iterations, collect ``sample_budget / iterations`` labelled
   samples (one sample = one service at one interval; each interval labels every service):
   in every interval the teacher labels the state with its action, and either the teacher
   or the students act. The teacher acts with probability ``beta_i``:

   - ``bc`` (behaviour cloning): ``beta_i = 1``; all data come from the teacher's own states;
   - ``dagger``: ``beta_0 = 1`` (iteration 0 is behaviour cloning), then
     ``beta_i = beta x beta_decay^(i-1)``: the students drive, so they visit the states their
     own mistakes lead to, and the teacher says what it would have done there.

   The new samples join all earlier ones (aggregation) and the students are fitted to the
   teacher's actions by mean squared error over the whole aggregate (``epochs`` passes).
3. After each iteration, run students and teacher on the validation scenario (training
   split, fixed start, no perturbation) and report the return (sum of the env reward), the
   imitation loss on the students' own states, the SLO-violation fraction and the core-hours.

So BC and DAgger spend the same number of teacher labels and the same gradient work; only
the state distribution of the labels differs.

Online re-distillation (:func:`redistill_online`): students run the cluster while a shadow
cluster under the same load runs the teacher; a :class:`RetrainTrigger` follows every node's
running reward against the teacher's, and when a node falls behind, the teacher labels the
states the students just visited, those join the data, and that node's students retrain.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drpc.imitation.dataset import ImitationDataset
from drpc.imitation.local import LocalObservation
from drpc.imitation.nodes import NodeMap
from drpc.imitation.students import DEFAULT_HIDDEN, StudentSet
from drpc.scenario import load_scenario
from drpc.teacher.policy import TeacherPolicy, load_policy

__all__ = [
    "DistillConfig",
    "DistillResult",
    "EvalStats",
    "IterationReport",
    "OnlineReport",
    "RetrainEvent",
    "RetrainTrigger",
    "check_training_scenarios",
    "collect",
    "distill",
    "evaluate_students",
    "fit",
    "imitation_loss",
    "make_env",
    "redistill_online",
    "run_return",
]


@dataclass(frozen=True)
class DistillConfig:
    """Every setting of a distillation run."""

    method: str = "dagger"
    """'bc' (the teacher acts in every interval) or 'dagger' (the students act, see beta)."""
    scenarios: tuple[str, ...] = ("train-trainticket-nasa",)
    """Training scenarios (``trace.split: train`` only); one is drawn per episode."""
    validation_scenario: str | None = "val-trainticket-nasa"
    """Training-split scenario for the per-iteration report (None: no validation runs)."""
    sample_budget: int = 100_000
    """Teacher-labelled samples (services x intervals) in total, split evenly over iterations
    (each iteration rounded up to whole intervals)."""
    iterations: int = 4
    """Collect-and-fit iterations (DAgger iterations; BC aggregates teacher data the same way)."""
    beta: float = 0.5
    """DAgger: probability that the teacher acts in an interval at iteration 1."""
    beta_decay: float = 0.5
    """DAgger: beta is multiplied by this per further iteration (iteration 0 uses beta = 1)."""
    episode_intervals: int = 120
    """Intervals per training episode (15 s each: 30 simulated minutes)."""
    load_scale: tuple[float, float] = (0.8, 1.2)
    """Per-episode multiplier of the training load, drawn uniformly."""
    spikes_per_hour: float = 2.0
    """Random load spikes per simulated hour in training episodes (as the teacher trained)."""
    outages_per_hour: float = 0.5
    """Random traffic outages per simulated hour in training episodes."""
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    """Student MLP widths (at most 5,000 parameters per student)."""
    layer_norm: bool = True
    """LayerNorm between the students' hidden layers."""
    lr: float = 3e-3
    """Adam learning rate of the students."""
    batch_size: int = 64
    """Intervals per gradient step (each student sees one sample per interval)."""
    epochs: int = 10
    """Passes over the aggregated data per fit."""
    warm_start: bool = True
    """Each fit continues from the previous students (False: re-initialise them)."""
    eval_intervals: int = 480
    """Intervals of each validation run (480 x 15 s = 2 simulated hours)."""
    seed: int = 0
    """Seed of the students' initialisation, the episode draws and the beta coin flips."""
    data_dir: str | None = None
    """If set, each iteration's new samples are written to ``data_dir/iteration-NNN.parquet``."""
    trigger_fraction: float = 0.9
    """Online: a node retrains when its running reward is below this fraction of the
    teacher's (see :class:`RetrainTrigger` for negative rewards)."""
    trigger_window: int = 10
    """Online: intervals in the running mean of the rewards."""
    trigger_min_gap: float = 1e-3
    """Online: absolute reward gap below which a node never fires (rewards near zero)."""
    online_window: int = 40
    """Online: the last this many intervals the students ran are labelled when a node fires."""
    online_epochs: int = 5
    """Online: passes over the aggregated data when a node retrains."""
    progress: bool = False
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.method not in ("bc", "dagger"):
            raise ValueError(f"method: 'bc' or 'dagger', got {self.method!r}")
        if not self.scenarios:
            raise ValueError("scenarios: give at least one training scenario")
        if self.iterations < 1 or self.sample_budget < 1:
            raise ValueError("iterations and sample_budget must be >= 1")
        if not 0 <= self.beta <= 1 or not 0 <= self.beta_decay <= 1:
            raise ValueError("beta and beta_decay must be in [0, 1]")
        if not 0 < self.trigger_fraction <= 1:
            raise ValueError(f"trigger_fraction must be in (0, 1], got {self.trigger_fraction}")
        for name in ("episode_intervals", "batch_size", "epochs", "eval_intervals"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def beta_at(self, iteration: int) -> float:
        """Probability that the teacher acts in an interval of ``iteration``."""
        if self.method == "bc" or iteration == 0:
            return 1.0
        return self.beta * self.beta_decay ** (iteration - 1)


@dataclass
class EvalStats:
    """One validation run (students or teacher acting)."""

    episode_return: float
    """Sum of the env reward over the run (higher is better; rewards are negative costs)."""
    imitation_loss: float
    """MSE between the students' and the teacher's raw actions on the visited states (0 for
    the teacher's own run)."""
    slo_violation_fraction: float
    """Share of intervals with some endpoint over its p99 SLO."""
    cpu_core_hours: float
    """Allocated CPU (requests of scheduled pods) integrated over the run."""
    intervals: int


@dataclass
class IterationReport:
    """What one iteration collected, how well the students fit, and how they ran."""

    iteration: int
    beta: float
    """Probability that the teacher acted in an interval."""
    new_samples: int
    """Teacher-labelled samples collected in this iteration."""
    samples: int
    """Aggregated samples the students were fitted to."""
    loss_before: float
    """Imitation MSE on the aggregate before the fit."""
    loss_after: float
    """Imitation MSE on the aggregate after the fit."""
    student: EvalStats | None
    """Students on the validation scenario (None: no validation scenario)."""
    teacher: EvalStats | None
    """The teacher on the same validation run."""
    collect_reward: float
    """Mean env reward per interval while collecting (whoever acted)."""
    wall_s: float
    """Seconds since the start of the run."""


@dataclass
class DistillResult:
    """The students, all data, and the per-iteration reports of :func:`distill`."""

    students: StudentSet
    dataset: ImitationDataset
    history: list[IterationReport]
    config: DistillConfig
    teacher: TeacherPolicy
    app_name: str
    wall_s: float

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the student checkpoint (:mod:`drpc.imitation.checkpoint`) to ``path``."""
        from drpc.imitation.checkpoint import save_students

        last = self.history[-1] if self.history else None
        info = {
            "method": self.config.method,
            "samples": len(self.dataset),
            "iterations": len(self.history),
            "wall_s": round(self.wall_s, 1),
            "config": dataclasses.asdict(self.config),
            "validation": (
                {
                    "scenario": self.config.validation_scenario,
                    "student": dataclasses.asdict(last.student),
                    "teacher": dataclasses.asdict(last.teacher),
                }
                if last and last.student and last.teacher
                else None
            ),
        }
        return save_students(path, self.students, self.teacher.meta, self.app_name, info)

    def table(self) -> str:
        """The per-iteration report as a fixed-width table."""
        head = (
            f"{'it':>3} {'beta':>5} {'samples':>8} {'loss0':>7} {'loss':>7} {'val loss':>8} "
            f"{'ret stud':>9} {'ret teach':>9} {'slo stud':>8} {'slo teach':>9} {'wall s':>7}"
        )
        rows = [head, "-" * len(head)]
        for r in self.history:
            s, t = r.student, r.teacher
            rows.append(
                f"{r.iteration:>3} {r.beta:>5.2f} {r.samples:>8d} {r.loss_before:>7.4f} "
                f"{r.loss_after:>7.4f} "
                + (
                    f"{s.imitation_loss:>8.4f} {s.episode_return:>9.2f} {t.episode_return:>9.2f} "
                    f"{s.slo_violation_fraction:>8.3f} {t.slo_violation_fraction:>9.3f} "
                    if s and t
                    else f"{'-':>8} {'-':>9} {'-':>9} {'-':>8} {'-':>9} "
                )
                + f"{r.wall_s:>7.1f}"
            )
        return "\n".join(rows)


# ----------------------------------------------------------------------------- setup


def check_training_scenarios(names: Sequence[str]) -> list[Any]:
    """Load ``names``; each must use training windows only (``trace.split: train``) and all
    the same app (the students are per service). Returns the scenarios."""
    scenarios = []
    for name in names:
        sc = load_scenario(name)
        if sc.spec.trace.split != "train":
            raise ValueError(
                f"scenario {name!r}: trace.split is {sc.spec.trace.split!r}; distil only on "
                "training windows (a scenario with `split: train`, e.g. train-trainticket-nasa)"
            )
        if scenarios and sc.app.names != scenarios[0].app.names:
            raise ValueError(
                f"scenario {name!r}: app {sc.app.app.name!r} has other services than "
                f"{scenarios[0].name!r}'s; students are per service, use one app per run"
            )
        scenarios.append(sc)
    return scenarios


def _teacher(teacher: str | os.PathLike[str] | TeacherPolicy) -> TeacherPolicy:
    return teacher if isinstance(teacher, TeacherPolicy) else load_policy(teacher)


def make_env(teacher: TeacherPolicy, scenarios: Sequence[str], cfg: DistillConfig, train: bool):
    """A :class:`~drpc.rllib_env.env.ClusterEnv` with the teacher's action mapping, reward and
    forecast. ``train``: random starts, load scales, spikes and outages (the config's); else a
    fixed run from interval 0 at the scenario's own load, ``cfg.eval_intervals`` long."""
    from drpc.rllib_env.env import ClusterEnv
    from drpc.train import TEACHER_ENV

    reward = teacher.meta.get("reward") or TEACHER_ENV["reward"]
    common = {
        "scenarios": tuple(scenarios),
        "forecast": bool(teacher.meta.get("forecast", True)),
        "reward": dict(reward),
        "actions": dataclasses.asdict(teacher.mapping),
        "service_rewards": True,
    }
    if train:
        return ClusterEnv(
            common,
            episode_intervals=cfg.episode_intervals,
            load_scale=tuple(cfg.load_scale),
            spikes_per_hour=cfg.spikes_per_hour,
            outages_per_hour=cfg.outages_per_hour,
        )
    n = min(cfg.eval_intervals, min(load_scenario(s).n_intervals for s in scenarios) - 1)
    return ClusterEnv(common, episode_intervals=n, random_start=False, load_scale=(1.0, 1.0))


# ----------------------------------------------------------------------------- data


def collect(
    env: Any,
    teacher: TeacherPolicy,
    students: StudentSet,
    n_intervals: int,
    beta: float,
    rng: np.random.Generator,
    iteration: int,
    seed: int,
    progress: bool = False,
) -> tuple[ImitationDataset, float]:
    """Run ``n_intervals`` intervals in ``env``; the teacher labels every state, and acts with
    probability ``beta`` per interval (else the students act). Returns the labelled data and
    the mean reward per interval."""
    from tqdm.auto import tqdm

    local_of = LocalObservation(env.app)
    s = env.app.n_services
    obs_buf = np.zeros((n_intervals, s, students.bank.n_inputs), np.float32)
    act_buf = np.zeros((n_intervals, s, students.bank.n_actions), np.float32)
    scen, interval, actor = [], np.zeros(n_intervals, np.int32), []
    rewards = np.zeros(n_intervals)
    x, _ = env.reset(seed=seed)
    for t in tqdm(range(n_intervals), desc=f"collect {iteration}", disable=not progress):
        local = local_of(x, env.last_observation)
        label = teacher.actions(x)
        teacher_acts = beta >= 1.0 or rng.random() < beta
        action = label if teacher_acts else students.act(local)
        obs_buf[t], act_buf[t] = local, label
        scen.append(env.scenario.name)
        interval[t] = env.t
        actor.append("teacher" if teacher_acts else "students")
        x, rewards[t], terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            x, _ = env.reset()
    data = ImitationDataset(
        students.services,
        tuple(students.node_map.assignment[n] for n in students.services),
        obs_buf,
        act_buf,
        np.full(n_intervals, iteration, np.int32),
        np.asarray(scen, dtype=object),
        interval,
        np.asarray(actor, dtype=object),
    )
    return data, float(rewards.mean()) if n_intervals else 0.0


# ----------------------------------------------------------------------------- fit


def imitation_loss(students: StudentSet, data: ImitationDataset, batch: int = 1024) -> float:
    """Mean squared error of the students' raw actions against the teacher's on ``data``."""
    if data.n_intervals == 0:
        return float("nan")
    bank = students.bank
    total = 0.0
    with torch.no_grad():
        for i in range(0, data.n_intervals, batch):
            pred = bank(torch.from_numpy(data.obs[i : i + batch]))
            total += float(((pred - torch.from_numpy(data.actions[i : i + batch])) ** 2).sum())
    return total / data.actions.size


def fit(
    students: StudentSet,
    data: ImitationDataset,
    cfg: DistillConfig,
    epochs: int | None = None,
    services: np.ndarray | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Fit the students to the teacher's actions in ``data`` by MSE (Adam, fresh per fit).

    ``services``: a 0/1 mask (S,) of the students to train; the others get zero gradients,
    which leaves them exactly unchanged under a fresh Adam. Returns the imitation loss on
    ``data`` before and after.
    """
    bank = students.bank
    loss_before = imitation_loss(students, data)
    obs = torch.from_numpy(data.obs)
    act = torch.from_numpy(data.actions)
    mask = (
        torch.ones(len(students.services))
        if services is None
        else torch.as_tensor(services, dtype=torch.float32)
    )
    weight = (mask / mask.sum().clamp(min=1.0))[None, :, None] / act.shape[-1]  # mean over kept
    opt = torch.optim.Adam(bank.parameters(), lr=cfg.lr)
    n = data.n_intervals
    bank.train()
    for _ in range(cfg.epochs if epochs is None else epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            pred = bank(obs[idx])
            loss = (((pred - act[idx]) ** 2) * weight).sum() / len(idx)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
    bank.eval()
    students.refresh()
    return loss_before, imitation_loss(students, data)


# ----------------------------------------------------------------------------- evaluate


def evaluate_students(
    env: Any, teacher: TeacherPolicy, students: StudentSet | None, seed: int = 0
) -> EvalStats:
    """One validation run in ``env`` (see :func:`make_env` with ``train=False``): the students
    act (the teacher only labels), or the teacher acts when ``students`` is None."""
    local_of = LocalObservation(env.app) if students is not None else None
    x, _ = env.reset(seed=seed)
    ret, sq, n, violated, cores = 0.0, 0.0, 0, 0, 0.0
    done = False
    while not done:
        label = teacher.actions(x)
        if students is None:
            action = label
        else:
            action = students.act(local_of(x, env.last_observation))
            sq += float(((action - label) ** 2).mean())
        x, r, terminated, truncated, info = env.step(action)
        ret += r
        n += 1
        violated += bool(info["slo_violated"])
        cores += float(info["cpu_allocated_cores"])
        done = terminated or truncated
    hours = env.scenario.config.interval_s / 3600.0
    return EvalStats(
        episode_return=ret,
        imitation_loss=sq / n if students is not None else 0.0,
        slo_violation_fraction=violated / n,
        cpu_core_hours=cores * hours,
        intervals=n,
    )


def run_return(result: Any, scenario: Any, reward: Mapping[str, Any] | Any) -> float:
    """The env's weighted reward summed over a harness run (a
    :class:`~drpc.evaluate.RunResult` of :func:`~drpc.evaluate.run_policy` on ``scenario``),
    so any policy (the HPA too) gets a return comparable to the teacher's. ``reward``: a
    :class:`~drpc.rllib_env.reward.RewardConfig` or its fields (e.g. the teacher meta's).

    Rebuilt from the run's tables: endpoint rates, p99s and errors, allocated CPU, and which
    knobs changed (a service's replica target, CPU limit or memory limit differing from the
    interval before), exactly the inputs of :func:`~drpc.rllib_env.reward.weighted_reward`.
    """
    from types import SimpleNamespace

    from drpc.rllib_env.reward import RewardConfig, weighted_reward

    cfg = reward if isinstance(reward, RewardConfig) else RewardConfig(**dict(reward))
    if cfg.kind != "weighted":
        raise ValueError("run_return: only the weighted reward can be rebuilt from a run")
    app = scenario.app
    n, e, s = result.timeline.num_rows, app.n_endpoints, app.n_services
    ep = {k: result.endpoints[k].to_numpy().reshape(n, e) for k in ("rps", "error_rate")}
    p99 = result.endpoints["latency_p99_ms"].to_numpy().reshape(n, e)
    cpu = result.timeline["cpu_allocated_cores"].to_numpy() * 1000.0
    changed = []
    for col, first in (
        ("replicas_desired", app.replicas0),
        ("cpu_limit_millicores", app.cpu_limit_m0),
        ("memory_limit_mib", app.memory_limit_mib0),
    ):
        v = result.services[col].to_numpy().reshape(n, s)
        prev = np.vstack([np.asarray(first, dtype=np.float64)[None, :], v[:-1]])
        tol = 0.0 if col == "replicas_desired" else 0.5
        changed.append(np.abs(v - prev) > tol)
    changed_all = np.stack(changed, axis=2)  # (n, S, 3)
    total = 0.0
    for t in range(n):
        obs = SimpleNamespace(
            endpoint_rps=ep["rps"][t],
            endpoint_error_rate=ep["error_rate"][t],
            endpoint_latency_p99_ms=p99[t],
            cpu_allocated_millicores=cpu[t],
        )
        total += weighted_reward(obs, app, changed_all[t], cfg)[0]
    return float(total)


# ----------------------------------------------------------------------------- distill


def distill(
    teacher_checkpoint: str | os.PathLike[str] | TeacherPolicy,
    scenarios: str | Sequence[str] | None = None,
    cfg: DistillConfig | None = None,
    *,
    node_map: NodeMap | Mapping[str, str] | None = None,
) -> DistillResult:
    """Distil the teacher into per-service students (see the module docstring).

    ``scenarios`` (training split only) override ``cfg.scenarios``; ``node_map`` defaults to
    round robin over the first scenario's nodes (:meth:`NodeMap.for_scenario`).
    """
    cfg = cfg or DistillConfig()
    if scenarios is not None:
        names = (scenarios,) if isinstance(scenarios, str) else tuple(scenarios)
        cfg = dataclasses.replace(cfg, scenarios=names)
    loaded = check_training_scenarios(cfg.scenarios)
    if cfg.validation_scenario is not None:
        check_training_scenarios([cfg.validation_scenario, *cfg.scenarios])
    teacher = _teacher(teacher_checkpoint)
    app = loaded[0].app
    nodes = (
        NodeMap.for_scenario(loaded[0])
        if node_map is None
        else node_map
        if isinstance(node_map, NodeMap)
        else NodeMap.from_dict(node_map)
    )
    students = StudentSet.create(app.names, nodes, cfg.hidden, cfg.layer_norm, seed=cfg.seed)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    env = make_env(teacher, cfg.scenarios, cfg, train=True)
    val_env = (
        make_env(teacher, [cfg.validation_scenario], cfg, train=False)
        if cfg.validation_scenario
        else None
    )
    teacher_val = evaluate_students(val_env, teacher, None, cfg.seed) if val_env else None

    per_iteration = math.ceil(cfg.sample_budget / app.n_services / cfg.iterations)
    data = ImitationDataset.empty(app.names, [nodes.assignment[s] for s in app.names])
    history: list[IterationReport] = []
    for it in range(cfg.iterations):
        # 1. collect: the teacher labels every state; it acts with probability beta
        beta = cfg.beta_at(it)
        seed = cfg.seed + 1000 * it
        new, collect_reward = collect(
            env, teacher, students, per_iteration, beta, rng, it, seed, cfg.progress
        )
        if cfg.data_dir:
            new.write_parquet(Path(cfg.data_dir) / f"iteration-{it:03d}.parquet")
        # 2. aggregate and fit
        data = data.concat(new)
        if not cfg.warm_start and it > 0:
            fresh = StudentSet.create(app.names, nodes, cfg.hidden, cfg.layer_norm, cfg.seed + it)
            students.bank.load_state_dict(fresh.bank.state_dict())
        loss_before, loss_after = fit(students, data, cfg, generator=gen)
        # 3. validate: students drive, the teacher labels
        student_val = evaluate_students(val_env, teacher, students, cfg.seed) if val_env else None
        history.append(
            IterationReport(
                iteration=it,
                beta=beta,
                new_samples=len(new),
                samples=len(data),
                loss_before=loss_before,
                loss_after=loss_after,
                student=student_val,
                teacher=teacher_val,
                collect_reward=collect_reward,
                wall_s=time.perf_counter() - started,
            )
        )
    return DistillResult(
        students=students,
        dataset=data,
        history=history,
        config=cfg,
        teacher=teacher,
        app_name=app.app.name,
        wall_s=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------- online


class RetrainTrigger:
    """Fires for a student group (a node, or a service) whose running reward falls behind the
    teacher's.

    Each key keeps the mean of its last ``window`` rewards and of the teacher's rewards for the
    same intervals. It fires once ``window`` rewards are in and::

        student_mean < teacher_mean - (1 - fraction) x |teacher_mean| - min_gap

    which for positive rewards (the paper's, at most 1) is ``student < fraction x teacher``,
    and for negative ones (the weighted reward's costs) lets the students be at most
    ``1 - fraction`` worse in relative terms. ``min_gap`` (absolute) keeps rewards near zero
    from firing on noise.
    """

    def __init__(
        self,
        fraction: float = 0.9,
        window: int = 10,
        min_gap: float = 1e-3,
        keys: Sequence[str] | None = None,
    ):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.fraction = float(fraction)
        self.window = int(window)
        self.min_gap = float(min_gap)
        self.keys = None if keys is None else set(keys)
        """Watch only these keys (None: every key given to :meth:`update`)."""
        self._student: dict[str, deque[float]] = {}
        self._teacher: dict[str, deque[float]] = {}

    def running(self, key: str) -> tuple[float, float]:
        """(student, teacher) running mean rewards of ``key`` (nan before any)."""
        s, t = self._student.get(key), self._teacher.get(key)
        if not s:
            return float("nan"), float("nan")
        return float(np.mean(s)), float(np.mean(t))

    def threshold(self, teacher_mean: float) -> float:
        """The running reward below which a key fires, given the teacher's."""
        return teacher_mean - (1.0 - self.fraction) * abs(teacher_mean) - self.min_gap

    def update(
        self, rewards: Mapping[str, float], teacher_rewards: Mapping[str, float]
    ) -> list[str]:
        """Add one interval's rewards per key (students' and the teacher's); return the keys
        that fire now (sorted)."""
        fired = []
        for key, r in rewards.items():
            if self.keys is not None and key not in self.keys:
                continue
            s = self._student.setdefault(key, deque(maxlen=self.window))
            t = self._teacher.setdefault(key, deque(maxlen=self.window))
            s.append(float(r))
            t.append(float(teacher_rewards[key]))
            if len(s) >= self.window:
                student_mean, teacher_mean = self.running(key)
                if student_mean < self.threshold(teacher_mean):
                    fired.append(key)
        return sorted(fired)

    def reset(self, keys: Sequence[str] | None = None) -> None:
        """Forget the history of ``keys`` (all if None), e.g. after they retrained."""
        for key in list(self._student) if keys is None else keys:
            self._student.pop(key, None)
            self._teacher.pop(key, None)


@dataclass
class RetrainEvent:
    """One retraining of some nodes' students during :func:`redistill_online`."""

    interval: int
    nodes: list[str]
    new_samples: int
    loss_before: float
    loss_after: float
    running: dict[str, tuple[float, float]]
    """Per fired node: (students', teacher's) running reward when it fired."""


@dataclass
class OnlineReport:
    """What :func:`redistill_online` did."""

    events: list[RetrainEvent]
    dataset: ImitationDataset
    student_return: float
    teacher_return: float
    intervals: int
    node_returns: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per node: (students', teacher's) summed share of the reward."""


def redistill_online(
    students: StudentSet,
    teacher: str | os.PathLike[str] | TeacherPolicy,
    scenario: str,
    cfg: DistillConfig | None = None,
    *,
    intervals: int = 240,
    trigger: RetrainTrigger | None = None,
    dataset: ImitationDataset | None = None,
    seed: int = 0,
) -> OnlineReport:
    """Run the students on ``scenario`` (training split) for ``intervals``; re-distil the
    students of every node whose running reward the trigger finds behind the teacher's.

    The teacher runs a shadow cluster under the same load and seed, so each node's reward
    (the sum of its services' shares, ``info["service_rewards"]``) has a teacher reference at
    every interval. The teacher also labels every state the students visit; when nodes fire,
    the last ``cfg.online_window`` labelled intervals join ``dataset`` (aggregation, as in
    DAgger) and only the fired nodes' students retrain (``cfg.online_epochs`` passes).
    """
    cfg = cfg or DistillConfig()
    check_training_scenarios([scenario])
    teacher = _teacher(teacher)
    trigger = trigger or RetrainTrigger(
        cfg.trigger_fraction, cfg.trigger_window, cfg.trigger_min_gap
    )
    run_cfg = dataclasses.replace(cfg, eval_intervals=intervals)
    env = make_env(teacher, [scenario], run_cfg, train=False)
    shadow = make_env(teacher, [scenario], run_cfg, train=False)
    if env.app.names != list(students.services):
        raise ValueError(f"scenario {scenario!r}: its app's services are not the students'")
    local_of = LocalObservation(env.app)
    index = students.node_index
    data = dataset or ImitationDataset.empty(
        students.services, [students.node_map.assignment[s] for s in students.services]
    )
    nodes_of = tuple(students.node_map.assignment[s] for s in students.services)
    recent: deque[tuple[np.ndarray, np.ndarray, int]] = deque(maxlen=cfg.online_window)
    gen = torch.Generator().manual_seed(seed)
    x, _ = env.reset(seed=seed)
    xt, _ = shadow.reset(seed=seed)
    events: list[RetrainEvent] = []
    ret_s = ret_t = 0.0
    node_ret = {n: [0.0, 0.0] for n in index}
    t = 0
    done = False
    while not done:
        local = local_of(x, env.last_observation)
        recent.append((local, teacher.actions(x), env.t))
        x, r, term, trunc, info = env.step(students.act(local))
        xt, rt, _, _, info_t = shadow.step(teacher.actions(xt))
        ret_s, ret_t = ret_s + r, ret_t + rt
        share_s, share_t = info["service_rewards"], info_t["service_rewards"]
        per_s = {n: float(share_s[idx].sum()) for n, idx in index.items()}
        per_t = {n: float(share_t[idx].sum()) for n, idx in index.items()}
        for n in index:
            node_ret[n][0] += per_s[n]
            node_ret[n][1] += per_t[n]
        fired = trigger.update(per_s, per_t)
        t += 1
        done = term or trunc
        if fired:
            running = {n: trigger.running(n) for n in fired}
            k = len(recent)
            new = ImitationDataset(
                students.services,
                nodes_of,
                np.stack([o for o, _, _ in recent]),
                np.stack([a for _, a, _ in recent]),
                np.full(k, -1, np.int32),
                np.full(k, scenario, dtype=object),
                np.asarray([i for _, _, i in recent], np.int32),
                np.full(k, "students", dtype=object),
            )
            recent.clear()
            data = data.concat(new)
            mask = np.zeros(len(students.services))
            for n in fired:
                mask[index[n]] = 1.0
            before, after = fit(students, data, cfg, cfg.online_epochs, mask, gen)
            events.append(RetrainEvent(t, fired, len(new), before, after, running))
            trigger.reset(fired)
    return OnlineReport(
        events=events,
        dataset=data,
        student_return=ret_s,
        teacher_return=ret_t,
        intervals=t,
        node_returns={n: (v[0], v[1]) for n, v in node_ret.items()},
    )
