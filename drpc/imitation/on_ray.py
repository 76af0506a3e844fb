"""DRPC on Ray, as the design says: one env runner per node hosts that node's students; the
learner trains the teacher with TD3 and the students with the imitation loss.

    from drpc.imitation.on_ray import StudentConfig, drpc_config
    from drpc.train import TrainConfig

    config = drpc_config(TrainConfig(hidden=(64, 64)), StudentConfig(), num_nodes=2,
                         teacher="drpc/data/teacher")
    algo = config.build_algo()              # needs a Ray cluster with 2 labelled nodes
    algo.load_teacher("drpc/data/teacher")  # optional: start the teacher from trained weights
    for _ in range(10):
        result = algo.train()               # result["students"]["imitation_loss"], ...
    algo.save_to_path("runs/drpc")          # teacher + students (+ their Adam states)

The pieces, all on RLlib's own objects:

* :class:`DRPCModule`: the teacher (:class:`~drpc.teacher.module.PerServiceTD3Module`) plus a
  :class:`~drpc.imitation.students.StudentBank` submodule ``students`` (one small MLP per
  service). The students live in the same RLModule as the teacher, so the learner checkpoints
  them and weight syncs ship them to the env runners with the actor
  (:meth:`DRPC.push_weights`).
* :class:`DRPCLearner`: the TD3 learner plus an Adam optimizer ``"students"`` and
  :meth:`DRPCLearner.update_students`, the imitation (MSE) update. TD3 steps leave the
  students untouched (they get no gradient) and student steps leave the teacher untouched.
* :class:`DRPCEnvRunner`: RLlib's single-agent env runner (it samples TD3's transitions as
  usual) that also reads its Ray node's label and runs a DAgger rollout on its own copy of
  the simulated cluster, where its node's students decide for its node's services.
* :class:`DRPC` (a :class:`~drpc.algorithms.td3.TD3`): each ``train()`` iteration runs the
  usual TD3 steps and one student step (below). :class:`DRPCConfig` adds the
  :class:`StudentConfig` hyperparameters.

One student step (once per iteration, after the iteration's first TD3 step):

1. Every env runner simulates ``intervals_per_runner`` control intervals (15 s each) on its
   own :class:`~drpc.rllib_env.env.ClusterEnv` over the training scenarios. Each interval,
   with probability ``beta_i`` the teacher acts for every service; otherwise the runner's
   node's students act for that node's services (one batched call of
   :class:`~drpc.imitation.students.NodeStudents`) and the teacher for all others. The
   current teacher labels the local observations of the node's services with its actions.
   ``beta_0 = 1`` (behaviour cloning), then ``beta_i = beta x beta_decay^(i-1)`` (DAgger).
2. Each runner returns ``(local_obs (T, K, 17), teacher_action (T, K, 3), service_index
   (K,))`` for its node's K services; the driver appends them to that node's
   :class:`~drpc.imitation.dataset.ImitationDataset` (the DAgger aggregate).
3. The learner(s) run ``updates_per_iteration`` Adam steps on the students; each step draws
   ``batch_size`` intervals per node uniformly from the aggregate, so every trained student
   sees ``batch_size`` samples of its own service, and minimises the mean squared error
   between the students' and the teacher's raw actions in [-1, 1].
4. The new weights go to the env runners.

Pinning, one env runner per node: RLlib gives every env runner the same resource request, so
each Ray node offers exactly one custom resource ``drpc_node_slot`` and each env runner asks
for one (``custom_resources_per_env_runner={"drpc_node_slot": 1}``): no two runners fit on one
node. Which runner lands on which node is up to Ray, so each runner reads its node's label
``drpc.io/node`` (``ray.get_runtime_context().get_node_labels()``) and takes the services the
:class:`~drpc.imitation.nodes.NodeMap` assigns to that node name. Start each Kubernetes
node's Ray worker with its slot and its node name, and the head with no slot::

    ray start --head --num-cpus=1 --resources='{}'                       # head: learner
    ray start --address=HEAD:6379 --num-cpus=1 \\
        --resources='{"drpc_node_slot": 1}' --labels="drpc.io/node=node-0"
    ray start --address=HEAD:6379 --num-cpus=1 \\
        --resources='{"drpc_node_slot": 1}' --labels="drpc.io/node=node-1"

(:func:`start_local_node_cluster` does the same on one machine, for tests and demos.) The
label values must be the NodeMap's node names (``node-0``, ... by default). A runner on an
unlabelled node, on a node the map does not know, or two runners on one node, stop the
setup with an error; nodes of the map without a runner keep their students untrained (the
metric ``students/nodes_without_runner`` counts them).

Metrics per iteration (in ``result["students"]``, so in progress.csv and TensorBoard as
``students/...``): ``imitation_loss`` (mean MSE over this iteration's student updates),
``imitation_loss_collected`` (MSE of the students, before this update, on the states just
collected: DAgger's on-policy loss), ``beta``, ``samples`` (aggregated services x intervals),
and per node
``students/nodes/<node>/{env_runner, services, imitation_loss_collected, students_acted,
reward}``. ``result["students"]["runner_nodes"]`` maps each env runner index to its node.

Not saved in checkpoints: the DAgger aggregate (like TD3's replay buffer by default); a
restored algorithm continues with the checkpoint's students and collects anew.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE
from ray.rllib.core.rl_module.rl_module import DEFAULT_MODULE_ID, RLModuleSpec
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO
from ray.rllib.utils.typing import ModuleID
from typing_extensions import Self

from drpc.algorithms.td3 import TD3, TD3Config, TD3TorchLearner
from drpc.imitation.dataset import ImitationDataset
from drpc.imitation.local import N_LOCAL, LocalObservation
from drpc.imitation.nodes import NodeMap
from drpc.imitation.students import DEFAULT_HIDDEN, NodeStudents, StudentBank, StudentSet
from drpc.teacher.module import PerServiceTD3Module

__all__ = [
    "DRPC",
    "DRPCConfig",
    "DRPCEnvRunner",
    "DRPCLearner",
    "DRPCModule",
    "NODE_LABEL",
    "NODE_SLOT",
    "StudentConfig",
    "dagger_rollout",
    "drpc_config",
    "imitation_mse",
    "start_local_node_cluster",
]

logger = logging.getLogger(__name__)

NODE_SLOT = "drpc_node_slot"
"""The custom Ray resource each node offers once and each env runner takes once."""
NODE_LABEL = "drpc.io/node"
"""The Ray node label whose value is the node's name in the NodeMap."""
STUDENTS_OPTIMIZER = "students"
"""Name of the students' optimizer in the learner (beside TD3's "critic" and "actor")."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StudentConfig:
    """Every hyperparameter of the per-node student step (set via ``DRPCConfig.students``)."""

    scenarios: tuple[str, ...] | None = None
    """Training scenarios (``trace.split: train``) of the runners' student rollouts (None: the
    TD3 env's)."""
    node_map: Mapping[str, str] | None = None
    """Service -> node name (None: round robin over ``n_nodes`` nodes, ``node-0``, ...)."""
    n_nodes: int | None = None
    """Nodes of the default round-robin map (None: ``num_env_runners``)."""
    node_label: str = NODE_LABEL
    """The Ray node label whose value names the node (must be a node of the map)."""
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    """Student MLP widths (at most 5,000 parameters per student)."""
    layer_norm: bool = True
    """LayerNorm between the students' hidden layers."""
    lr: float = 3e-3
    """Adam learning rate of the students."""
    batch_size: int = 64
    """Intervals per node in one student gradient step (each student sees this many samples)."""
    updates_per_iteration: int = 50
    """Student gradient steps per training iteration."""
    intervals_per_runner: int = 60
    """Control intervals (15 s each) each env runner simulates and labels per iteration."""
    episode_intervals: int = 120
    """Intervals per student-rollout episode (120 x 15 s = 30 simulated minutes)."""
    beta: float = 0.5
    """DAgger: probability that the teacher acts in an interval at iteration 1 (iteration 0: 1)."""
    beta_decay: float = 0.5
    """DAgger: beta is multiplied by this per further iteration."""
    max_intervals_per_node: int = 50_000
    """Cap of each node's aggregate, in intervals (the oldest are dropped)."""
    seed: int = 0
    """Seed of the students' initialisation, the rollouts and the minibatch draws."""

    def __post_init__(self) -> None:
        if not 0 <= self.beta <= 1 or not 0 <= self.beta_decay <= 1:
            raise ValueError("StudentConfig: beta and beta_decay must be in [0, 1]")
        for name in (
            "batch_size",
            "updates_per_iteration",
            "intervals_per_runner",
            "episode_intervals",
            "max_intervals_per_node",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"StudentConfig.{name} must be >= 1")
        if self.n_nodes is not None and self.n_nodes < 1:
            raise ValueError("StudentConfig.n_nodes must be >= 1")

    def beta_at(self, iteration: int) -> float:
        """Probability that the teacher acts in an interval of ``iteration`` (0-based)."""
        return 1.0 if iteration == 0 else self.beta * self.beta_decay ** (iteration - 1)


# ----------------------------------------------------------------------------- module


class DRPCModule(PerServiceTD3Module):
    """The teacher (actor, twin critics, targets) plus ``students``: a StudentBank with one
    student per service (the observation's rows).

    ``model_config`` keys besides the teacher's: ``student_hidden``, ``student_layer_norm``,
    ``student_seed`` (filled in from :class:`StudentConfig` by :class:`DRPCConfig`). The
    students are part of the inference-only copy too: the env runners run them.
    """

    def setup(self) -> None:
        super().setup()
        cfg = self.model_config
        gen = torch.Generator().manual_seed(int(cfg.get("student_seed", 0)))
        self.students = StudentBank(
            int(self.observation_space.shape[0]),
            hidden=tuple(cfg.get("student_hidden", DEFAULT_HIDDEN)),
            layer_norm=bool(cfg.get("student_layer_norm", True)),
            generator=gen,
        )

    def teacher_actions(self, features: np.ndarray) -> np.ndarray:
        """The actor's raw actions (S, 3) in [-1, 1] for one (S, F) feature matrix."""
        with torch.no_grad():
            x = torch.as_tensor(features, dtype=torch.float32, device=self.action_scale.device)
            return self.actor(x.unsqueeze(0))[0].cpu().numpy()


def imitation_mse(bank: StudentBank, obs: np.ndarray, actions: np.ndarray) -> float:
    """MSE of ``bank``'s students against the teacher on (T, S, 17) local observations and
    (T, S, 3) teacher actions (every student on its own column)."""
    with torch.no_grad():
        pred = bank(torch.as_tensor(obs, dtype=torch.float32))
        return float(((pred - torch.as_tensor(actions, dtype=torch.float32)) ** 2).mean())


# ----------------------------------------------------------------------------- learner


class DRPCLearner(TD3TorchLearner):
    """TD3's learner plus the students' Adam optimizer and their imitation update.

    With several learners each one runs the same student steps on the same data and draws
    (same seed), so their students stay identical without an all-reduce; the step is tiny.
    """

    def configure_optimizers_for_module(
        self, module_id: ModuleID, config: DRPCConfig | None = None
    ) -> None:
        """TD3's "critic" and "actor" optimizers, plus "students" (Adam, ``students.lr``)."""
        super().configure_optimizers_for_module(module_id, config)
        module = self.module[module_id].unwrapped()
        if isinstance(module, DRPCModule):
            params = list(module.students.parameters())
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=STUDENTS_OPTIMIZER,
                optimizer=torch.optim.Adam(params),
                params=params,
                lr_or_lr_schedule=config.students_config.lr,
            )

    def update_students(
        self,
        data: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
        *,
        steps: int,
        batch_size: int,
        seed: int,
        module_id: ModuleID = DEFAULT_MODULE_ID,
    ) -> dict[str, float]:
        """``steps`` Adam steps of the imitation loss on the students.

        ``data``: per node, ``(local_obs (T, K, 17), teacher_action (T, K, 3), service_index
        (K,))``. Each step draws ``batch_size`` intervals per node with replacement and fills
        one (batch, S, 17) batch, each node's rows in its services' columns (nodes hold
        disjoint services). Loss: the mean squared error over the trained students (those
        with data), their 3 action components and the batch. Returns the mean and last loss.
        """
        module = self.module[module_id].unwrapped()
        bank: StudentBank = module.students
        device = next(bank.parameters()).device
        n = bank.n_students
        parts = [
            (
                torch.as_tensor(obs, dtype=torch.float32, device=device),
                torch.as_tensor(act, dtype=torch.float32, device=device),
                torch.as_tensor(np.asarray(idx, np.int64), device=device),
            )
            for obs, act, idx in data.values()
            if len(obs)
        ]
        if not parts:
            return {"imitation_loss": float("nan"), "imitation_loss_last": float("nan")}
        trained = torch.zeros(n, device=device)
        for _, _, idx in parts:
            trained[idx] = 1.0
        weight = (trained / trained.sum() / bank.n_actions)[None, :, None]  # mean over kept
        gen = torch.Generator().manual_seed(int(seed))
        optimizer = self.get_optimizer(module_id, STUDENTS_OPTIMIZER)
        bank.train()
        losses = torch.zeros(steps)
        for step in range(steps):
            obs = torch.zeros(batch_size, n, bank.n_inputs, device=device)
            act = torch.zeros(batch_size, n, bank.n_actions, device=device)
            for node_obs, node_act, idx in parts:
                rows = torch.randint(len(node_obs), (batch_size,), generator=gen).to(device)
                obs[:, idx] = node_obs[rows]
                act[:, idx] = node_act[rows]
            loss = (((bank(obs) - act) ** 2) * weight).sum() / batch_size
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[step] = loss.detach().cpu()
        bank.eval()
        # Env runners ignore weights whose sequence number is not newer than theirs.
        self._weights_seq_no += 1
        return {
            "imitation_loss": float(losses.mean()),
            "imitation_loss_last": float(losses[-1]),
        }

    def get_student_state(self, module_id: ModuleID = DEFAULT_MODULE_ID) -> dict[str, Any]:
        """The students' weights (a StudentBank ``state_dict`` on the CPU) and sizes."""
        bank = self.module[module_id].unwrapped().students
        state = {k: v.detach().cpu().clone() for k, v in bank.state_dict().items()}
        return {"state": state, "n_students": bank.n_students, "config": bank.config()}


# ----------------------------------------------------------------------------- env runner


def dagger_rollout(
    env: Any,
    x: np.ndarray,
    teacher: Any,
    students: NodeStudents,
    service_index: np.ndarray,
    n_intervals: int,
    beta: float,
    rng: np.random.Generator,
    local_of: LocalObservation,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``n_intervals`` steps of ``env`` (a ClusterEnv, at features ``x``); see the module
    docstring, step 1. ``teacher(x) -> (S, 3)``; ``students`` decide for the services at
    ``service_index`` only. Returns the features to continue from and the labelled data:
    ``local_obs`` (T, K, 17), ``teacher_action`` (T, K, 3) raw actions in [-1, 1],
    ``students_acted`` (T,), ``scenario`` and ``interval`` (T,), ``imitation_loss_collected``
    (the students' MSE against the labels, mean over the run) and ``reward`` (the node's
    services' share of the env reward, mean per interval; 0 without ``service_rewards``)."""
    k = len(service_index)
    obs = np.zeros((n_intervals, k, N_LOCAL), np.float32)
    labels = np.zeros((n_intervals, k, 3), np.float32)
    students_acted = np.zeros(n_intervals, bool)
    scenario = np.empty(n_intervals, dtype=object)
    interval = np.zeros(n_intervals, np.int32)
    node_reward = np.zeros(n_intervals)
    sq = 0.0
    for t in range(n_intervals):
        local = local_of(x, env.last_observation)[service_index]
        label = teacher(x)
        mine = students(local)  # this node's students, one batched call
        sq += float(((mine - label[service_index]) ** 2).mean())
        action = label.copy()
        students_acted[t] = not (beta >= 1.0 or rng.random() < beta)
        if students_acted[t]:
            action[service_index] = mine
        obs[t], labels[t] = local, label[service_index]
        scenario[t], interval[t] = env.scenario.name, env.t
        x, _, terminated, truncated, info = env.step(action)
        if "service_rewards" in info:
            node_reward[t] = float(np.asarray(info["service_rewards"])[service_index].sum())
        if terminated or truncated:
            x, _ = env.reset()
    return x, {
        "local_obs": obs,
        "teacher_action": labels,
        "students_acted": students_acted,
        "scenario": scenario,
        "interval": interval,
        "imitation_loss_collected": sq / max(n_intervals, 1),
        "reward": float(node_reward.mean()) if n_intervals else 0.0,
    }


class DRPCEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner (TD3 sampling as usual) that hosts one node's students.

    :meth:`node_info` says where it runs; :meth:`collect_students` runs the DAgger rollout of
    its node's students on its own simulated cluster (kept between calls).
    """

    def node_info(self, label: str = NODE_LABEL) -> dict[str, Any]:
        """This runner's env-runner index, Ray node id, node label value (None if absent)
        and process id."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "worker_index": int(self.worker_index),
            "ray_node_id": ctx.get_node_id(),
            "node": ctx.get_node_labels().get(label),
            "pid": os.getpid(),
        }

    def _student_env(self, cfg: StudentConfig) -> Any:
        from drpc.rllib_env.env import ClusterEnv, make_env_config

        state = getattr(self, "_drpc", None)
        if state is None:
            env_config = {k: v for k, v in dict(self.config.env_config).items()}
            if cfg.scenarios is not None:
                env_config["scenarios"] = list(cfg.scenarios)
            env_config.update(episode_intervals=cfg.episode_intervals, flatten=False)
            env = ClusterEnv(make_env_config(env_config))
            seed = cfg.seed + 1000 * int(self.worker_index)
            x, _ = env.reset(seed=seed)
            state = {
                "env": env,
                "x": x,
                "rng": np.random.default_rng(seed),
                "local_of": LocalObservation(env.app),
            }
            self._drpc = state
        return state

    def collect_students(
        self, node_services: Mapping[str, Sequence[int]], cfg: StudentConfig, beta: float
    ) -> dict[str, Any]:
        """One DAgger rollout of ``cfg.intervals_per_runner`` intervals for this runner's node.

        ``node_services``: node name -> indices (app order) of its services. Returns
        :func:`dagger_rollout`'s data plus ``node``, ``service_index`` (the services whose
        students this runner evaluated, nothing else), ``worker_index`` and ``ray_node_id``.
        """
        where = self.node_info(cfg.node_label)
        node = where["node"]
        if node is None or node not in node_services:
            raise RuntimeError(
                f"env runner {where['worker_index']}: its Ray node has label "
                f"{cfg.node_label}={node!r}, not one of the node map's {sorted(node_services)}; "
                f'start each node with --labels="{cfg.node_label}=<node name>"'
            )
        state = self._student_env(cfg)
        env = state["env"]
        module: DRPCModule = self.module
        if module.students.n_students != env.app.n_services:
            raise RuntimeError(
                f"{module.students.n_students} students but the rollout app has "
                f"{env.app.n_services} services"
            )
        idx = np.asarray(node_services[node], dtype=np.int64)
        names = [env.app.names[i] for i in idx]
        students = NodeStudents(node, names, module.students.subset(idx))
        state["x"], data = dagger_rollout(
            env,
            state["x"],
            module.teacher_actions,
            students,
            idx,
            cfg.intervals_per_runner,
            beta,
            state["rng"],
            state["local_of"],
        )
        return {**where, **data, "service_index": idx, "students_evaluated": len(students)}


# ----------------------------------------------------------------------------- config


class DRPCConfig(TD3Config):
    """:class:`~drpc.algorithms.td3.TD3Config` plus the students (:class:`StudentConfig`,
    set with :meth:`students`); env runners are :class:`DRPCEnvRunner` pinned one per node
    (``custom_resources_per_env_runner={"drpc_node_slot": 1}``), the module a
    :class:`DRPCModule` and the learner a :class:`DRPCLearner` by default.
    """

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class=algo_class or DRPC)
        self.students_config: StudentConfig = StudentConfig()
        """The student step's hyperparameters."""
        self.env_runner_cls = DRPCEnvRunner
        self.custom_resources_per_env_runner = {NODE_SLOT: 1}

    def students(self, config: StudentConfig | None = None, **fields: Any) -> Self:
        """Set the student hyperparameters: a whole :class:`StudentConfig` and/or fields."""
        base = config if config is not None else self.students_config
        self.students_config = dataclasses.replace(base, **fields) if fields else base
        return self

    def validate(self) -> None:
        super().validate()
        if self.in_evaluation:  # evaluation runs in the driver, without students
            return
        if self.num_env_runners < 1:
            self._value_error("DRPC needs remote env runners, one per node (num_env_runners >= 1).")
        if not (
            isinstance(self.env_runner_cls, type) and issubclass(self.env_runner_cls, DRPCEnvRunner)
        ):
            self._value_error("DRPC's env runners must be DRPCEnvRunner (or a subclass).")
        if self.custom_resources_per_env_runner.get(NODE_SLOT) != 1:
            self._value_error(
                f"DRPC pins env runners with custom_resources_per_env_runner={{{NODE_SLOT!r}: 1}}."
            )

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DRPCModule)

    def get_default_learner_class(self) -> type:
        return DRPCLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        s = self.students_config
        return super()._model_config_auto_includes | {
            "student_hidden": list(s.hidden),
            "student_layer_norm": s.layer_norm,
            "student_seed": s.seed,
        }


def drpc_config(
    train: Any = None,
    students: StudentConfig | None = None,
    *,
    num_nodes: int = 2,
    teacher: str | os.PathLike[str] | None = None,
) -> DRPCConfig:
    """A :class:`DRPCConfig` with the teacher side of ``drpc train``.

    ``train``: a :class:`~drpc.train.TrainConfig` (TD3 hyperparameters, env, network widths;
    default ``TrainConfig()``); ``num_nodes``: env runners, one per labelled Ray node;
    ``teacher``: a teacher checkpoint whose action mapping, reward, forecast setting and
    network widths the env and module then follow (load its weights with
    :meth:`DRPC.load_teacher` after ``build_algo()``).
    """
    from drpc.train import TrainConfig, build_algorithm_config

    train = train or TrainConfig()
    if teacher is not None:
        from drpc.teacher.checkpoint import read_policy_meta

        meta = read_policy_meta(teacher)
        env_config = dict(train.env_config)
        env_config.update(
            actions=dict(meta["action_mapping"]),
            reward=dict(meta["reward"]),
            forecast=bool(meta.get("forecast", True)),
        )
        train = dataclasses.replace(
            train,
            action_mode=meta["action_mapping"]["mode"],
            env_config=env_config,
            hidden=tuple(meta["network"]["hidden"]),
        )
    train = dataclasses.replace(train, algorithm="td3", num_env_runners=num_nodes)
    td3 = build_algorithm_config(train)
    config = DRPCConfig.from_dict(td3.to_dict())
    config.algo_class = DRPC
    config.env_runners(
        num_env_runners=num_nodes,
        env_runner_cls=DRPCEnvRunner,
        custom_resources_per_env_runner={NODE_SLOT: 1},
    )
    config.rl_module(
        rl_module_spec=RLModuleSpec(
            module_class=DRPCModule, model_config={"teacher_hidden": list(train.hidden)}
        )
    )
    config.learners(learner_class=DRPCLearner)
    if teacher is not None:  # a trained actor acts from the first step: no random warm-up
        config.training(random_warmup=False)
    return config.students(students or StudentConfig())


# ----------------------------------------------------------------------------- algorithm


class DRPC(TD3):
    """TD3 for the teacher plus, once per iteration, the per-node student step (module doc)."""

    config: DRPCConfig

    @classmethod
    def get_default_config(cls) -> DRPCConfig:
        return DRPCConfig()

    def setup(self, config: DRPCConfig) -> None:
        super().setup(config)
        from drpc.imitation.distill import check_training_scenarios
        from drpc.rllib_env.env import make_env_config

        s = self.config.students_config
        td3_scenarios = make_env_config(dict(self.config.env_config)).scenarios
        # training windows only, and one app for the TD3 env and the student rollouts
        app = check_training_scenarios([*(s.scenarios or ()), *td3_scenarios])[0].app
        self.services: tuple[str, ...] = tuple(app.names)
        """The app's services, in the order of the students (and the observation rows)."""
        self.node_map = (
            NodeMap.from_dict(s.node_map)
            if s.node_map is not None
            else NodeMap.round_robin(self.services, s.n_nodes or self.config.num_env_runners)
        )
        self.node_map.check(self.services, "StudentConfig.node_map")
        self.node_index = self.node_map.indices(self.services)
        """Per node, the indices of its services."""
        self.runner_nodes = self._locate_env_runners()
        """Per env runner index: ``node_info`` (its node, Ray node id, pid)."""
        self.student_data = {
            node: ImitationDataset.empty([self.services[i] for i in idx], [node] * len(idx))
            for node, idx in self.node_index.items()
        }
        """Per node, the DAgger aggregate of its services' labelled local observations."""
        self.last_student_runs: list[dict[str, Any]] = []
        """The last student step's per-runner summary (node, services, loss, ...)."""
        self._student_iteration = -1
        self.push_weights()  # the runners built their modules themselves: give them ours

    def _locate_env_runners(self) -> dict[int, dict[str, Any]]:
        label = self.config.students_config.node_label
        infos = self.env_runner_group.foreach_env_runner(
            lambda runner: runner.node_info(label), local_env_runner=False
        )
        by_node: dict[str, int] = {}
        for info in infos:
            node = info["node"]
            if node is None or node not in self.node_index:
                raise RuntimeError(
                    f"env runner {info['worker_index']} runs on Ray node {info['ray_node_id']} "
                    f"with label {label}={node!r}, not a node of the node map "
                    f"{self.node_map.nodes}; start each node with "
                    f'--resources=\'{{"{NODE_SLOT}": 1}}\' --labels="{label}=<node name>"'
                )
            if node in by_node:
                raise RuntimeError(
                    f"env runners {by_node[node]} and {info['worker_index']} both run on node "
                    f"{node!r}; give each Ray node one {NODE_SLOT} only"
                )
            by_node[node] = info["worker_index"]
        missing = [n for n in self.node_map.nodes if n not in by_node]
        if missing:
            logger.warning(
                "DRPC: no env runner on node(s) %s: their students do not train", missing
            )
        return {info["worker_index"]: info for info in infos}

    # -- the training loop --------------------------------------------------------------------

    def training_step(self) -> None:
        super().training_step()  # TD3: sample, store, update, sync
        if self._student_iteration != self.iteration:  # once per train() iteration
            self._student_iteration = self.iteration
            self.student_step()

    def student_step(self) -> dict[str, float]:
        """Collect on every runner, aggregate per node, update the students, sync them."""
        s = self.config.students_config
        beta = s.beta_at(self.iteration)
        node_services = {n: idx.tolist() for n, idx in self.node_index.items()}

        # 1. every runner: a DAgger rollout of its node's students, labelled by the teacher
        self.push_weights()  # the current teacher (TD3 just updated it) and students
        runs = self.env_runner_group.foreach_env_runner(
            lambda runner: runner.collect_students(node_services, s, beta),
            local_env_runner=False,
        )
        # 2. aggregate per node
        for run in runs:
            node, t = run["node"], len(run["local_obs"])
            new = ImitationDataset(
                self.student_data[node].services,
                self.student_data[node].nodes,
                run["local_obs"],
                run["teacher_action"],
                np.full(t, self.iteration, np.int32),
                run["scenario"],
                run["interval"],
                np.where(run["students_acted"], "students", "teacher").astype(object),
            )
            self.student_data[node] = _tail(
                self.student_data[node].concat(new), s.max_intervals_per_node
            )
        # 3. imitation updates on the learner(s)
        data = {
            node: (d.obs, d.actions, self.node_index[node])
            for node, d in self.student_data.items()
            if d.n_intervals
        }
        seed = s.seed + 7919 * self.iteration
        results = self.learner_group.foreach_learner(
            lambda learner: learner.update_students(
                data, steps=s.updates_per_iteration, batch_size=s.batch_size, seed=seed
            )
        )
        out = _first_result(results)
        # 4. new students (and the TD3 actor) to the runners
        self.push_weights()

        collected = sum(len(r["local_obs"]) * len(r["service_index"]) for r in runs)
        metrics = {
            "imitation_loss": out["imitation_loss"],
            "imitation_loss_last": out["imitation_loss_last"],
            "imitation_loss_collected": sum(
                r["imitation_loss_collected"] * len(r["local_obs"]) * len(r["service_index"])
                for r in runs
            )
            / max(collected, 1),
            "beta": beta,
            "samples": sum(len(d) for d in self.student_data.values()),
            "new_samples": collected,
            "nodes_without_runner": len(self.node_index) - len({r["node"] for r in runs}),
        }
        for key, value in metrics.items():
            self.metrics.log_value(("students", key), value, window=1)
        self.last_student_runs = []
        for run in runs:
            summary = {
                "node": run["node"],
                "env_runner": run["worker_index"],
                "ray_node_id": run["ray_node_id"],
                "service_index": run["service_index"],
                "students_evaluated": run["students_evaluated"],
                "imitation_loss_collected": run["imitation_loss_collected"],
                "students_acted": float(np.mean(run["students_acted"])),
                "reward": run["reward"],
            }
            self.last_student_runs.append(summary)
            for key in ("env_runner", "imitation_loss_collected", "students_acted", "reward"):
                self.metrics.log_value(
                    ("students", "nodes", run["node"], key), summary[key], window=1
                )
            self.metrics.log_value(
                ("students", "nodes", run["node"], "services"), len(run["service_index"]), window=1
            )
        return metrics

    def step(self) -> dict[str, Any]:
        result = super().step()
        # Strings do not go through the metrics logger: which runner ran on which node.
        result.setdefault("students", {})["runner_nodes"] = {
            str(r["env_runner"]): r["node"] for r in self.last_student_runs
        }
        return result

    # -- helpers ----------------------------------------------------------------------------

    def get_students(self) -> StudentSet:
        """A copy of the learner's current students, with the node map."""
        got = _first_result(
            self.learner_group.foreach_learner(lambda learner: learner.get_student_state())
        )
        bank = StudentBank(got["n_students"], **got["config"])
        bank.load_state_dict(got["state"])
        bank.eval()
        return StudentSet(self.services, self.node_map, bank)

    def load_teacher(self, checkpoint: str | os.PathLike[str]) -> None:
        """Put an exported teacher's actor weights (``drpc_policy.json`` + ``policy.pt``)
        into the actor and its target on every learner, then sync the env runners."""
        from drpc.teacher.checkpoint import load_actor, read_policy_meta

        state = {
            k: v.detach().cpu()
            for k, v in load_actor(read_policy_meta(checkpoint)).state_dict().items()
        }

        def load(learner: Any) -> None:
            module = learner.module[DEFAULT_MODULE_ID].unwrapped()
            module.actor.load_state_dict(state)
            module.actor_target.load_state_dict(state)
            learner._weights_seq_no += 1  # so that the env runners take the new weights

        _first_result(self.learner_group.foreach_learner(load))
        self.push_weights()

    def push_weights(self) -> None:
        """Give every env runner the learner's current module (inference-only: the actor and
        the students), and wait until they have it.

        RLlib's ``sync_weights`` is fire-and-forget and skips a runner whose previous sync
        is still in flight; a student rollout must not start on stale students.
        """
        import ray

        state = self.learner_group.get_state(
            components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
        )[COMPONENT_LEARNER]
        ref = ray.put({k: state[k] for k in (COMPONENT_RL_MODULE, WEIGHTS_SEQ_NO)})
        self.env_runner_group.foreach_env_runner(lambda runner: runner.set_state(ray.get(ref)))

    def restore_from_path(self, path: Any, *args: Any, **kwargs: Any) -> None:
        super().restore_from_path(path, *args, **kwargs)
        self.push_weights()  # RLlib's own sync may skip runners still busy with setup's


def _tail(data: ImitationDataset, n: int) -> ImitationDataset:
    """The last ``n`` intervals of ``data``."""
    if data.n_intervals <= n:
        return data
    cut = slice(data.n_intervals - n, None)
    return dataclasses.replace(
        data,
        obs=data.obs[cut],
        actions=data.actions[cut],
        iteration=data.iteration[cut],
        scenario=data.scenario[cut],
        interval=data.interval[cut],
        actor=data.actor[cut],
    )


def _first_result(results: Any) -> Any:
    """The first learner's return value from ``foreach_learner`` (raises its error)."""
    values = []
    for r in results:
        if not r.ok:
            raise r.get()
        values.append(r.get())
    if not values:
        raise RuntimeError("no learner answered")
    return values[0]


# ----------------------------------------------------------------------------- local cluster


def start_local_node_cluster(
    n_nodes: int = 2,
    cpus_per_node: int = 1,
    head_cpus: int = 1,
    label: str = NODE_LABEL,
    connect: bool = True,
) -> Any:
    """A multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head with
    ``head_cpus`` CPUs and no node slot, and ``n_nodes`` worker nodes, node ``i`` with
    ``cpus_per_node`` CPUs, one ``drpc_node_slot`` and the label ``drpc.io/node=node-i``, as
    the ``ray start`` lines of the module docstring. Connects the driver if ``connect``.
    Stop it with ``ray.shutdown(); cluster.shutdown()``. Set ``RAY_AUTH_MODE=disabled``
    before Ray starts for a throwaway cluster without token auth.
    """
    from ray.cluster_utils import Cluster

    from drpc.imitation.nodes import node_name

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": head_cpus, "include_dashboard": False},
    )
    for i in range(n_nodes):
        cluster.add_node(
            num_cpus=cpus_per_node, resources={NODE_SLOT: 1}, labels={label: node_name(i)}
        )
    if connect:
        import ray

        ray.init(address=cluster.address, log_to_driver=False)
    return cluster
