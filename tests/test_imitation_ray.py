"""DRPC on a real multi-node Ray cluster: env runners pinned one per node host that node's
students; the learner trains the teacher (TD3) and the students (imitation loss).

One machine, three Ray nodes (``ray.cluster_utils.Cluster``): a head without a node slot and
two worker nodes with ``drpc_node_slot: 1`` and the labels ``drpc.io/node=node-0`` and
``node-1``. The teacher starts from the bundled teacher's weights and its actor stays frozen
(``actor_update_starts`` beyond the run; the critics do train), so the labels of a held-out
batch collected beforehand stay the teacher's throughout.

The cluster replaces the session's Ray instance (``ray_session`` in conftest) for this module
and restores it afterwards, with the same settings, if it was running.
About 60-90 s on 2 busy cores (starting three Ray nodes and two env runners is most of it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import start_session_ray

from drpc.imitation.local import LocalObservation
from drpc.imitation.on_ray import (
    DRPC,
    NODE_LABEL,
    NODE_SLOT,
    StudentConfig,
    drpc_config,
    imitation_mse,
    start_local_node_cluster,
)
from drpc.teacher.checkpoint import bundled_teacher

pytestmark = pytest.mark.slow

TEACHER = str(Path(bundled_teacher()["folder"]))
ITERATIONS = 4


@pytest.fixture(scope="module")
def cluster():
    import ray

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    restore = ray.is_initialized()  # the session fixture's instance: give it back after
    if restore:
        ray.shutdown()
    cluster = start_local_node_cluster(n_nodes=2, cpus_per_node=1, head_cpus=1)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if restore:  # as tests/conftest.py's ray_session starts it
            start_session_ray()
        torch.set_num_threads(threads)


def held_out_batch(n_intervals: int = 60, seed: int = 12345):
    """The bundled teacher drives a training episode; every service's local observation and
    the teacher's action, (T, S, 17) and (T, S, 3)."""
    from drpc.imitation.distill import DistillConfig, make_env
    from drpc.teacher.policy import load_policy

    teacher = load_policy(TEACHER)
    env = make_env(teacher, ["train-trainticket-nasa"], DistillConfig(episode_intervals=30), True)
    local_of = LocalObservation(env.app)
    obs, act = [], []
    x, _ = env.reset(seed=seed)
    for _ in range(n_intervals):
        label = teacher.actions(x)
        obs.append(local_of(x, env.last_observation))
        act.append(label)
        x, _, terminated, truncated, _ = env.step(label)
        if terminated or truncated:
            x, _ = env.reset()
    return np.stack(obs), np.stack(act), teacher


def runner_states(algo) -> list[dict]:
    """The students' and the actor's weights in each remote env runner's module."""

    def states(runner):
        module = runner.module
        return {
            name: {k: v.detach().cpu().clone() for k, v in part.state_dict().items()}
            for name, part in (("students", module.students), ("actor", module.actor))
        }

    return algo.env_runner_group.foreach_env_runner(states, local_env_runner=False)


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """Build DRPC on the cluster, train a few iterations, save, stop; what the tests check."""
    from drpc.train import TrainConfig, flatten_metrics

    obs, act, teacher = held_out_batch()
    train = TrainConfig(
        episode_intervals=30,
        rollout_fragment_length=8,  # x 2 runners = 16 env steps per TD3 step
        steps_per_iteration=16,
        learning_starts=16,
        batch_size=32,
        validation_scenario=None,
    )
    students = StudentConfig(
        intervals_per_runner=40, updates_per_iteration=40, episode_intervals=30, seed=1
    )
    config = drpc_config(train, students, num_nodes=2, teacher=TEACHER)
    # The actor stays the bundled teacher (fixed labels for the held-out loss); critics train.
    config.training(actor_update_starts=10**6)
    algo = config.build_algo()
    out: dict = {"held_obs": obs, "held_act": act, "results": [], "runs": []}
    try:
        assert isinstance(algo, DRPC)
        algo.load_teacher(TEACHER)
        out["node_index"] = {n: idx.tolist() for n, idx in algo.node_index.items()}
        out["losses"] = [imitation_mse(algo.get_students().bank, obs, act)]
        for _ in range(ITERATIONS):
            result = algo.train()
            out["results"].append(result)
            out["flat"] = flatten_metrics(result)
            out["runs"].append(algo.last_student_runs)
            out["losses"].append(imitation_mse(algo.get_students().bank, obs, act))
        learner_students = algo.get_students().bank.state_dict()
        out["learner_students"] = learner_students
        out["runner_modules"] = runner_states(algo)
        module = algo.learner_group._learner.module["default_policy"].unwrapped()
        out["actor_state"] = {k: v.detach().clone() for k, v in module.actor.state_dict().items()}
        out["bundled_actor"] = teacher.actor.state_dict()
        out["checkpoint"] = algo.save_to_path(str(tmp_path_factory.mktemp("drpc") / "ckpt"))
        out["node_map"] = algo.node_map
    finally:
        algo.stop()  # frees the node slots for the restored algorithm
    return out


def test_env_runners_are_pinned_one_per_labelled_node(cluster, run):
    import ray

    labels = {n["NodeID"]: n.get("Labels", {}) for n in ray.nodes() if n["Alive"]}
    driver_node = ray.get_runtime_context().get_node_id()
    for runs in run["runs"]:
        assert len(runs) == 2
        node_ids = [r["ray_node_id"] for r in runs]
        assert len(set(node_ids)) == 2  # two Ray nodes ...
        assert driver_node not in node_ids  # ... neither of them the head (no slot there)
        assert {r["node"] for r in runs} == {"node-0", "node-1"}
        for r in runs:
            # the node whose services the runner ran is its Ray node's label
            assert labels[r["ray_node_id"]][NODE_LABEL] == r["node"]
    # a runner stays on its node from iteration to iteration
    first = {r["env_runner"]: r["ray_node_id"] for r in run["runs"][0]}
    assert all(first[r["env_runner"]] == r["ray_node_id"] for rs in run["runs"] for r in rs)
    resources = ray.cluster_resources()
    assert resources.get(NODE_SLOT) == 2


def test_each_runner_evaluates_only_its_nodes_students(run):
    node_index = run["node_index"]
    # round robin over the two nodes: node-0 the even services, node-1 the odd ones
    assert node_index["node-0"] == list(range(0, 49, 2))
    assert node_index["node-1"] == list(range(1, 49, 2))
    for runs in run["runs"]:
        for r in runs:
            assert r["service_index"].tolist() == node_index[r["node"]]
            assert r["students_evaluated"] == len(node_index[r["node"]])
    # DAgger: iteration 0 is behaviour cloning, later the students act in some intervals
    acted = [np.mean([r["students_acted"] for r in runs]) for runs in run["runs"]]
    assert acted[0] == 0.0 and max(acted[1:]) > 0.0


def test_metrics_name_the_nodes_and_the_loss(run):
    result = run["results"][-1]
    students = result["students"]
    assert np.isfinite(students["imitation_loss"])
    assert students["beta"] == pytest.approx(0.5 * 0.5 ** (ITERATIONS - 2))
    assert students["samples"] == ITERATIONS * 40 * 49
    assert students["nodes_without_runner"] == 0
    assert sorted(students["runner_nodes"].values()) == ["node-0", "node-1"]
    assert students["nodes"]["node-0"]["services"] == 25
    assert students["nodes"]["node-1"]["services"] == 24
    flat = run["flat"]  # what `drpc train`'s progress.csv / TensorBoard logging keeps
    for key in (
        "students/imitation_loss",
        "students/imitation_loss_collected",
        "students/nodes/node-0/imitation_loss_collected",
        "students/nodes/node-1/env_runner",
    ):
        assert key in flat
    # the teacher side ran TD3 (critics) and kept the bundled actor (frozen in this test)
    assert np.isfinite(result["learners"]["default_policy"]["critic_loss"])
    for k, v in run["bundled_actor"].items():
        torch.testing.assert_close(run["actor_state"][k], v)


def test_imitation_loss_falls_on_a_held_out_batch(run):
    losses = run["losses"]
    print("held-out imitation MSE per iteration:", [round(x, 5) for x in losses])
    assert losses[1] < 0.5 * losses[0]  # behaviour cloning from the first iteration
    assert losses[-1] < 0.2 * losses[0]
    assert max(losses[1:]) < losses[0]


def test_runners_get_the_learners_students_and_the_teacher(run):
    assert len(run["runner_modules"]) == 2
    for runner in run["runner_modules"]:
        for k, v in run["learner_students"].items():
            torch.testing.assert_close(runner["students"][k], v)
        for k, v in run["bundled_actor"].items():
            torch.testing.assert_close(runner["actor"][k], v)


def test_checkpoint_round_trip_keeps_the_students(cluster, run):
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.core.rl_module.rl_module import RLModule

    expected = run["learner_students"]
    module = RLModule.from_checkpoint(
        Path(run["checkpoint"]) / "learner_group" / "learner" / "rl_module" / "default_policy"
    )
    for k, v in expected.items():
        torch.testing.assert_close(module.students.state_dict()[k], v)

    restored = Algorithm.from_checkpoint(run["checkpoint"])
    try:
        assert isinstance(restored, DRPC)
        assert restored.node_map == run["node_map"]
        assert restored.config.students_config.intervals_per_runner == 40
        got = restored.get_students().bank.state_dict()
        for k, v in expected.items():
            torch.testing.assert_close(got[k], v)
        on_runners = runner_states(restored)
        assert len(on_runners) == 2
        for runner in on_runners:
            for k, v in expected.items():
                torch.testing.assert_close(runner["students"][k], v)
    finally:
        restored.stop()
