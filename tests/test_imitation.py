"""Distributed students: sizes, batched node evaluation, data, BC/DAgger, checkpoints, trigger.

Everything runs on the real TrainTicket app of ``default`` with the bundled teacher, kept
small (a few hundred teacher-labelled samples per run) so the file stays well under a minute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from drpc.evaluate import run_policy
from drpc.imitation.checkpoint import (
    META_FILE,
    WEIGHTS_FILE,
    StudentCheckpointError,
    is_student_checkpoint,
    load_students,
    save_students,
)
from drpc.imitation.dataset import (
    ACTION_COLUMNS,
    OBS_COLUMNS,
    DatasetError,
    ImitationDataset,
    read_parquet,
    read_ray,
)
from drpc.imitation.distill import (
    DistillConfig,
    RetrainTrigger,
    distill,
    redistill_online,
    run_return,
)
from drpc.imitation.local import LOCAL_FEATURES, N_LOCAL, LocalObservation
from drpc.imitation.nodes import NodeMap, NodeMapError
from drpc.imitation.policy import StudentPolicy, load_student_policy
from drpc.imitation.students import (
    MAX_STUDENT_PARAMS,
    NodeStudents,
    StudentBank,
    StudentSet,
    student_param_count,
)
from drpc.scenario import load_scenario
from drpc.teacher.checkpoint import CheckpointError, bundled_teacher

TEACHER = str(Path(bundled_teacher()["folder"]))
TINY = dict(  # a few hundred labelled samples, no validation runs
    sample_budget=49 * 6,
    iterations=1,
    epochs=30,
    episode_intervals=30,
    validation_scenario=None,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("default")


@pytest.fixture(scope="module")
def students(scenario):
    return StudentSet.create(scenario.app.names, NodeMap.for_scenario(scenario), seed=3)


@pytest.fixture(scope="module")
def teacher_meta():
    return bundled_teacher()


def _short(scenario, n: int = 12):
    return dataclasses.replace(scenario, load_rps=scenario.load_rps[:n])


# ----------------------------------------------------------------------------- networks


def test_student_has_at_most_5000_parameters():
    bank = StudentBank(7)
    per = bank.params_per_student
    assert per == student_param_count() <= MAX_STUDENT_PARAMS
    assert sum(p.numel() for p in bank.student(4).parameters()) == per
    with pytest.raises(ValueError, match="5000"):
        StudentBank(2, hidden=(64, 64))


def test_node_batch_equals_per_service_networks():
    gen = torch.Generator().manual_seed(0)
    bank = StudentBank(100, generator=gen)
    with torch.no_grad():  # non-trivial LayerNorm parameters
        for name, p in bank.named_parameters():
            if name.startswith("norm"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    x = np.random.default_rng(0).normal(size=(100, N_LOCAL)).astype(np.float32)
    node = NodeStudents("node-0", [f"s{i}" for i in range(100)], bank)
    batched = node(x)
    with torch.no_grad():
        one_by_one = np.stack(
            [bank.student(i)(torch.from_numpy(x[i : i + 1]))[0].numpy() for i in range(100)]
        )
        stacked = bank(torch.from_numpy(x)).numpy()
        in_batch = bank(torch.from_numpy(np.stack([x, -x])))[0].numpy()
    assert batched.shape == (100, 3)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(stacked, one_by_one, atol=1e-5)
    np.testing.assert_allclose(in_batch, one_by_one, atol=1e-5)
    assert np.abs(batched).max() <= 1.0


def test_student_set_decides_node_by_node(students):
    x = np.random.default_rng(1).random((len(students.services), N_LOCAL), dtype=np.float32)
    with torch.no_grad():
        whole = students.bank(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(students.act(x), whole, atol=1e-5)
    assert set(students.nodes()) == set(students.node_map.nodes)


def test_local_observation_matches_multi_agent_env():
    from drpc.rllib_env.multi_agent import LOCAL_FEATURES as MA_LOCAL
    from drpc.rllib_env.multi_agent import ClusterMultiAgentEnv

    assert LOCAL_FEATURES == MA_LOCAL
    env = ClusterMultiAgentEnv(scenarios=["train-trainticket-nasa"], episode_intervals=5)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step({a: np.full(3, 0.3, np.float32) for a in env.agents})
    inner = env.env
    ours = LocalObservation(inner.app)(
        inner.features.features(inner.last_observation), inner.last_observation
    )
    np.testing.assert_allclose(ours, np.stack([obs[a] for a in env.agents]), atol=1e-6)


# ----------------------------------------------------------------------------- node map


def test_node_map_defaults_and_files(scenario, tmp_path):
    nm = NodeMap.for_scenario(scenario)
    names = scenario.app.names
    assert nm == NodeMap.for_scenario(scenario)  # deterministic
    assert nm.nodes == [f"node-{i}" for i in range(scenario.config.n_nodes)]
    assert nm.assignment[names[0]] == "node-0" and nm.assignment[names[1]] == "node-1"
    sizes = [len(nm.services_on(n)) for n in nm.nodes]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(names)

    sim = scenario.make_sim()
    sim.reset()
    placed = NodeMap.from_placement(sim)
    placed.check(names)
    assert set(placed.nodes) <= {f"node-{i}" for i in range(scenario.config.n_nodes)}

    (tmp_path / "m.json").write_text(json.dumps(nm.to_dict()))
    assert NodeMap.from_file(tmp_path / "m.json") == nm
    grouped = {"nodes": {n: nm.services_on(n) for n in nm.nodes}}
    (tmp_path / "m.yaml").write_text(json.dumps(grouped))  # JSON is YAML
    assert NodeMap.from_file(tmp_path / "m.yaml") == nm
    with pytest.raises(NodeMapError, match="no node for 1 service"):
        NodeMap(dict(list(nm.to_dict().items())[1:])).check(names)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(NodeMapError, match="bad.json"):
        NodeMap.from_file(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- data


def _dataset(students, t: int = 3, iteration: int = 0) -> ImitationDataset:
    rng = np.random.default_rng(iteration)
    s = len(students.services)
    return ImitationDataset(
        students.services,
        tuple(students.node_map.assignment[n] for n in students.services),
        rng.random((t, s, N_LOCAL), dtype=np.float32),
        rng.uniform(-1, 1, (t, s, 3)).astype(np.float32),
        np.full(t, iteration, np.int32),
        np.full(t, "train-trainticket-nasa", dtype=object),
        np.arange(t, dtype=np.int32),
        np.full(t, "teacher", dtype=object),
    )


def test_parquet_round_trip_and_ray_data(students, tmp_path, ray_session):
    a, b = _dataset(students, 3, 0), _dataset(students, 2, 1)
    a.write_parquet(tmp_path / "data" / "iteration-000.parquet")
    b.write_parquet(tmp_path / "data" / "iteration-001.parquet")
    back = read_parquet(tmp_path / "data" / "iteration-000.parquet")
    np.testing.assert_array_equal(back.obs, a.obs)
    np.testing.assert_array_equal(back.actions, a.actions)
    assert back.services == a.services and back.nodes == a.nodes
    both = read_parquet(tmp_path / "data")
    assert len(both) == len(a) + len(b) == 5 * len(students.services)
    np.testing.assert_array_equal(both.iteration, [0, 0, 0, 1, 1])

    rows = read_ray(tmp_path / "data", override_num_blocks=1).take_all()  # one read task
    assert len(rows) == len(both)
    row = rows[0]
    for col in ("step", "iteration", "scenario", "service", "node", *OBS_COLUMNS, *ACTION_COLUMNS):
        assert col in row
    assert row["service"] in students.services

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "data" / "iteration-000.parquet")
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "plain.parquet")
    with pytest.raises(DatasetError, match="plain.parquet: no drpc_imitation metadata"):
        read_parquet(tmp_path / "plain.parquet")


# ----------------------------------------------------------------------------- distill


def test_distill_refuses_evaluation_scenarios():
    with pytest.raises(ValueError, match="'default': trace.split is 'eval'"):
        distill(TEACHER, "default", DistillConfig(**TINY))


def test_behaviour_cloning_loss_falls(tmp_path):
    cfg = DistillConfig(method="bc", data_dir=str(tmp_path / "data"), **TINY)
    result = distill(TEACHER, cfg=cfg)
    (report,) = result.history
    assert report.new_samples == report.samples == len(result.dataset) == 49 * 6
    assert report.loss_after < 0.5 * report.loss_before
    assert set(result.dataset.actor) == {"teacher"}
    assert len(read_parquet(tmp_path / "data")) == len(result.dataset)


def test_cli_distills_a_checkpoint_and_evaluate_runs_it(tmp_path, capsys):
    from drpc.cli import main

    out = tmp_path / "students"
    args = ["distill", "--method", "bc", "--budget", "147", "--iterations", "1", "--epochs", "2"]
    args += ["--validation-scenario", "none", "--save-data", "--out", str(out), "--no-progress"]
    args += ["--eval-scenario", "val-trainticket-nasa", "--eval-baseline", "hpa:target=80"]
    assert main(args) == 0
    assert is_student_checkpoint(out) and (out / "data" / "all.parquet").is_file()
    report = json.loads((out / "distill_report.json").read_text())
    assert report["samples"] == 147 and report["history"][0]["student"] is None
    shown = capsys.readouterr().out
    assert "students:students" in shown and "teacher/this" in shown
    evaluated = json.loads((out / "eval" / "val-trainticket-nasa" / "report.json").read_text())
    names = [row["policy"] for row in evaluated["policies"]]
    assert names == ["students:students", "teacher", "hpa:target=80"]
    assert all(np.isfinite(row["return"]) for row in evaluated["policies"])
    # A non-empty --out is refused, with nothing changed.
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    # `drpc evaluate --policy STUDENTS` runs the student checkpoint in the same harness.
    ev = ["evaluate", "--scenario", "val-trainticket-nasa", "--policy", str(out), "--no-plots"]
    assert main([*ev, "--no-progress", "--out", str(tmp_path / "ev")]) == 0
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["policies"][0]["policy"] == str(out)


def test_dagger_aggregates_and_students_act():
    cfg = DistillConfig(
        method="dagger",
        beta=0.0,
        eval_intervals=8,
        **{**TINY, "iterations": 2, "validation_scenario": "val-trainticket-nasa", "epochs": 5},
    )
    result = distill(TEACHER, cfg=cfg)
    first, second = result.history
    assert (first.beta, second.beta) == (1.0, 0.0)
    assert second.samples == first.samples + second.new_samples > first.samples
    assert len(result.dataset) == second.samples
    assert set(result.dataset.actor[result.dataset.iteration == 1]) == {"students"}
    assert second.student.intervals == second.teacher.intervals == 8
    assert np.isfinite(second.student.episode_return) and second.student.imitation_loss >= 0
    assert "ret stud" in result.table()


# ----------------------------------------------------------------------------- checkpoint


def _save(path: Path, students, teacher_meta) -> Path:
    return save_students(path, students, teacher_meta, "trainticket", {"method": "test"})


def test_checkpoint_round_trip(students, teacher_meta, scenario, tmp_path):
    ckpt = _save(tmp_path / "s", students, teacher_meta)
    assert is_student_checkpoint(ckpt) and not is_student_checkpoint(TEACHER)
    assert not is_student_checkpoint(tmp_path / "nothing")
    meta = json.loads((ckpt / META_FILE).read_text())
    assert meta["teacher"]["weights_sha256"] == teacher_meta["weights_sha256"]
    assert meta["action_mapping"] == teacher_meta["action_mapping"]
    assert meta["local_features"] == list(LOCAL_FEATURES)
    assert meta["network"]["params_per_student"] <= MAX_STUDENT_PARAMS
    loaded = load_students(ckpt, app=scenario.app, node_map=students.node_map)
    assert loaded.services == students.services and loaded.node_map == students.node_map
    for k, v in students.bank.state_dict().items():
        torch.testing.assert_close(loaded.bank.state_dict()[k], v)
    x = np.random.default_rng(2).random((49, N_LOCAL), dtype=np.float32)
    np.testing.assert_allclose(loaded.act(x), students.act(x), atol=1e-6)
    assert loaded.meta["action_mapping_obj"].mode == "target"


def _refused(path, *parts: str, **kwargs) -> str:
    with pytest.raises(StudentCheckpointError) as info:
        load_students(path, **kwargs)
    assert isinstance(info.value, CheckpointError)
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def _edit(ckpt: Path, **changes) -> None:
    meta = json.loads((ckpt / META_FILE).read_text())
    meta.update(changes)
    (ckpt / META_FILE).write_text(json.dumps(meta))


def test_checkpoint_refusals(students, teacher_meta, scenario, tmp_path):
    ckpt = _save(tmp_path / "s", students, teacher_meta)
    meta_name = str(ckpt / META_FILE)
    names = list(scenario.app.names)
    # another app: fewer services, or other names
    _refused(ckpt, meta_name, "49 services", "48 services", app=names[:-1])
    _refused(
        ckpt, meta_name, "service names differ at position 0", "'other'", app=["other", *names[1:]]
    )
    # another node map
    other = NodeMap.round_robin(names, 3)
    _refused(ckpt, meta_name, "another node map", names[2], node_map=other)
    # a teacher folder, a missing folder
    _refused(TEACHER, "not a student checkpoint", "teacher checkpoint")
    _refused(tmp_path / "missing", "no such student checkpoint folder")

    def fresh(name: str) -> Path:
        return _save(tmp_path / name, students, teacher_meta)

    c = fresh("features")
    _edit(c, local_features=[*LOCAL_FEATURES[:-1], "callers_p99"])
    _refused(c, str(c / META_FILE), "local features differ at position 16", "'callers_p99'")
    c = fresh("features-count")
    _edit(c, local_features=list(LOCAL_FEATURES[:-1]))
    _refused(c, "local features: checkpoint has 16, expected 17")
    c = fresh("actions")
    _edit(c, action_components=["replicas", "cpu_limit"])
    _refused(c, str(c / META_FILE), "action components: checkpoint has 2, expected 3")
    c = fresh("version")
    _edit(c, format_version=99)
    _refused(c, str(c / META_FILE), "format_version 99", "reads 1")
    c = fresh("json")
    (c / META_FILE).write_text('{"format_version": 1,')
    _refused(c, str(c / META_FILE), "unreadable student metadata")
    c = fresh("truncated")
    data = (c / WEIGHTS_FILE).read_bytes()
    (c / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    _refused(c, str(c / WEIGHTS_FILE), "checksum does not match", "truncated")
    # truncated with a matching checksum (re-hashed): still a clean refusal
    _edit(c, weights_sha256=hashlib.sha256((c / WEIGHTS_FILE).read_bytes()).hexdigest())
    _refused(c, str(c / WEIGHTS_FILE), "corrupt weights file")
    c = fresh("shapes")
    torch.save({"weight0": torch.zeros(2, 2)}, c / WEIGHTS_FILE)
    _edit(c, weights_sha256=hashlib.sha256((c / WEIGHTS_FILE).read_bytes()).hexdigest())
    _refused(c, str(c / WEIGHTS_FILE), "weights do not fit the students")


# ----------------------------------------------------------------------------- trigger


def test_retrain_trigger_fires_only_when_behind():
    trig = RetrainTrigger(fraction=0.9, window=5)
    teacher = {"node-0": -1.0, "node-1": -1.0}
    for _ in range(4):  # not before the window is full
        assert trig.update({"node-0": -2.0, "node-1": -1.02}, teacher) == []
    assert trig.update({"node-0": -2.0, "node-1": -1.02}, teacher) == ["node-0"]
    s, t = trig.running("node-0")
    assert (s, t) == (-2.0, -1.0)
    for _ in range(20):  # within 10% of the teacher: never
        assert trig.update({"node-1": -1.05}, {"node-1": -1.0}) == []
    # positive rewards (the paper's): fires below 0.9 x the teacher's
    pos = RetrainTrigger(fraction=0.9, window=3, min_gap=0.0)
    assert [pos.update({"a": 0.85}, {"a": 1.0}) for _ in range(3)][-1] == ["a"]
    pos.reset()
    assert [pos.update({"a": 0.95}, {"a": 1.0}) for _ in range(3)][-1] == []


def test_online_redistill_retrains_the_fired_node_only(students, scenario):
    fresh = StudentSet.create(students.services, students.node_map, seed=5)  # untrained
    before = {k: v.clone() for k, v in fresh.bank.state_dict().items()}
    cfg = DistillConfig(online_window=4, online_epochs=2)
    node0 = fresh.node_index["node-0"]
    # a trigger that watches node-0 only and fires whenever its window is full
    trig = RetrainTrigger(fraction=1.0, window=3, min_gap=-1e9, keys=["node-0"])
    report = redistill_online(
        fresh, TEACHER, "val-trainticket-nasa", cfg, intervals=8, trigger=trig
    )
    assert report.intervals == 8 and report.events
    assert all(e.nodes == ["node-0"] for e in report.events)
    assert len(report.dataset) == sum(e.new_samples for e in report.events) > 0
    after = fresh.bank.state_dict()
    other = np.setdiff1d(np.arange(len(fresh.services)), node0)
    for k, v in after.items():
        torch.testing.assert_close(v[other], before[k][other], rtol=0, atol=0)
    assert any(not torch.equal(after[k][node0], before[k][node0]) for k in after)


# ----------------------------------------------------------------------------- policy


def test_run_return_equals_the_env_reward(scenario, teacher_meta, monkeypatch):
    """The return rebuilt from a harness run's tables is the sum of compute_reward."""
    import drpc.teacher.policy as teacher_policy
    from drpc.rllib_env.reward import RewardConfig, compute_reward

    short = _short(scenario, 20)
    result = run_policy(short, teacher_policy.load_policy(TEACHER), progress=False)
    changed = {}
    real_map = teacher_policy.map_action

    def spy(*args, **kwargs):
        action, changed["last"] = real_map(*args, **kwargs)
        return action, changed["last"]

    monkeypatch.setattr(teacher_policy, "map_action", spy)
    policy, sim = teacher_policy.load_policy(TEACHER), short.make_sim()
    obs, total = sim.reset(), 0.0
    policy.reset(sim)
    while not sim.done:
        obs = sim.step(policy.act(obs))
        reward_cfg = RewardConfig(**teacher_meta["reward"])
        total += compute_reward(obs, sim.app, changed["last"], reward_cfg)[0]
    assert run_return(result, short, teacher_meta["reward"]) == pytest.approx(total, rel=1e-9)


def test_student_policy_runs_in_the_harness(students, teacher_meta, scenario, tmp_path):
    policy = load_student_policy(_save(tmp_path / "s", students, teacher_meta), name="students")
    result = run_policy(_short(scenario), policy, progress=False)
    assert result.summary["intervals"] == 12 and result.policy == "students"
    assert set(policy.decision_s) == set(students.node_map.nodes)
    other = load_scenario("hotel-reservation-azure-code")
    with pytest.raises(StudentCheckpointError, match="distil students for this app"):
        policy.reset(other.make_sim())
    assert isinstance(policy, StudentPolicy)
