"""Exported teacher checkpoints: round trip, the harness, and every way a checkpoint is refused.

Checkpoints are written without Ray: a fake algorithm whose module carries a small
:class:`~drpc.teacher.networks.PerServiceActor` goes through the real
:func:`~drpc.teacher.checkpoint.export_policy`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import drpc
from drpc.evaluate import run_policy
from drpc.policy import make_policy
from drpc.rllib_env.env import make_env_config
from drpc.rllib_env.features import FEATURES, N_FEATURES
from drpc.scenario import load_scenario
from drpc.teacher.checkpoint import (
    META_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    export_policy,
    find_checkpoint,
    load_actor,
    read_policy_meta,
)
from drpc.teacher.networks import PerServiceActor
from drpc.teacher.policy import TeacherPolicy, load_policy

HIDDEN = (16, 16)
ENV_CONFIG = {"scenarios": ["train-trainticket-nasa"], "episode_intervals": 60}


def _export(run: Path, actor: PerServiceActor) -> Path:
    """A run folder with ``checkpoint/`` exported by the real export_policy (no Ray)."""
    module = SimpleNamespace(actor=actor, model_config={"teacher_hidden": list(HIDDEN)})
    algo = SimpleNamespace(get_module=lambda: module)
    ckpt = run / "checkpoint"
    ckpt.mkdir(parents=True)
    export_policy(algo, ckpt, train_config=None, env_config=ENV_CONFIG, env_steps=10, wall_s=1.0)
    return ckpt


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_meta(ckpt: Path, **changes) -> Path:
    path = ckpt / META_FILE
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))
    return path


def _replace_weights(ckpt: Path, write) -> Path:
    """Overwrite policy.pt via ``write(path)`` and make the JSON checksum match it."""
    weights = ckpt / WEIGHTS_FILE
    write(weights)
    _edit_meta(ckpt, weights_sha256=_sha256(weights))
    return weights


def _refused(path, *parts: str) -> str:
    """The CheckpointError message of loading ``path``, checked to name every one of ``parts``."""
    with pytest.raises(CheckpointError) as info:
        load_policy(path)
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run folder, actor) of one export; tests that modify it work on a copy (``run``)."""
    torch.manual_seed(0)
    actor = PerServiceActor(N_FEATURES, 3, HIDDEN)
    run = tmp_path_factory.mktemp("export") / "run"
    _export(run, actor)
    return run, actor


@pytest.fixture
def run(exported, tmp_path) -> Path:
    """A private copy of the exported run folder, free to damage."""
    copy = tmp_path / "run"
    shutil.copytree(exported[0], copy)
    return copy


# -- round trip -----------------------------------------------------------------------------


def test_export_writes_metadata_and_weights(exported):
    run, actor = exported
    ckpt = run / "checkpoint"
    meta = json.loads((ckpt / META_FILE).read_text())
    assert meta["format_version"] == 1
    assert meta["drpc_version"] == drpc.__version__
    assert meta["features"] == list(FEATURES)
    assert meta["action_components"] == ["replicas", "cpu_limit", "memory_limit"]
    assert meta["network"] == {
        "class": "PerServiceActor",
        "n_features": N_FEATURES,
        "n_actions": 3,
        "hidden": list(HIDDEN),
        "layer_norm": True,
    }
    assert meta["trained_on"]["scenarios"] == ENV_CONFIG["scenarios"]
    assert meta["env_steps"] == 10 and meta["train_wall_s"] == 1.0
    assert meta["weights_sha256"] == _sha256(ckpt / WEIGHTS_FILE)
    assert not list(ckpt.glob("*.tmp"))


def test_round_trip_weights_are_equal_and_both_folders_load(exported):
    run, actor = exported
    ckpt = run / "checkpoint"
    assert find_checkpoint(run) == ckpt
    assert find_checkpoint(ckpt) == ckpt

    loaded = load_actor(read_policy_meta(run))
    assert not loaded.training
    theirs, ours = loaded.state_dict(), actor.state_dict()
    assert theirs.keys() == ours.keys()
    for key in ours:
        assert torch.equal(theirs[key], ours[key]), key

    for folder in (run, ckpt, str(run), str(ckpt)):
        policy = load_policy(folder)
        assert isinstance(policy, TeacherPolicy)
        assert policy.meta["folder"] == str(ckpt)
        assert policy.checksum == _sha256(ckpt / WEIGHTS_FILE)
        assert policy.mapping == make_env_config(ENV_CONFIG).actions
    assert load_policy(run, name="mine").name == "mine"

    x = np.random.default_rng(0).standard_normal((7, N_FEATURES)).astype(np.float32)
    with torch.no_grad():
        want = actor(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_array_equal(load_policy(run).actions(x), want)


def test_make_policy_routes_a_folder_to_the_teacher(exported):
    run, _ = exported
    for folder in (run, run / "checkpoint"):
        policy = make_policy(str(folder))
        assert isinstance(policy, TeacherPolicy)
        assert policy.name == str(folder)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        make_policy(str(run / "nope"))


def test_utilization_scale_is_an_operator_margin_on_the_bundled_teacher():
    from drpc.policy import PolicyError
    from drpc.teacher.checkpoint import bundled_teacher

    folder = str(bundled_teacher()["folder"])
    base = make_policy(folder)
    lo, hi = base.mapping.target_utilization_range
    scaled = make_policy(f"{folder}:utilization_scale=0.7")
    assert scaled.name == f"{folder}:utilization_scale=0.7"
    assert scaled.mapping.target_utilization_range == pytest.approx((0.7 * lo, 0.7 * hi))
    assert make_policy(f"{folder}:utilization_scale=1").mapping == base.mapping
    for bad, says in (("0", "utilization_scale must be in"), ("2", "utilization_scale must be"),
                      ("x", "expects float"), ("0.5,foo=1", "unknown parameter 'foo'")):  # fmt: skip
        with pytest.raises(PolicyError, match=says):
            make_policy(f"{folder}:utilization_scale={bad}")
    # lower set-points, more pods: more CPU on the same load
    sc = _short("default", 60)
    cost = {x: run_policy(sc, make_policy(f"{folder}:utilization_scale={x}"), progress=False)
            .summary["cpu_core_hours"] for x in (1.0, 0.7)}  # fmt: skip
    assert cost[0.7] > cost[1.0], cost


def test_scale_down_window_replays_a_teacher_with_another_window():
    from drpc.policy import PolicyError
    from drpc.teacher.checkpoint import bundled_teacher

    folder = str(bundled_teacher()["folder"])
    base = make_policy(folder)
    longer = make_policy(f"{folder}:scale_down_window=40")
    assert longer.name == f"{folder}:scale_down_window=40"
    assert longer.mapping.scale_down_window == 40
    assert longer.mapping.target_utilization_range == base.mapping.target_utilization_range
    assert make_policy(f"{folder}:scale_down_window=0").mapping == base.mapping  # 0: its own
    both = make_policy(f"{folder}:utilization_scale=0.9,scale_down_window=30").mapping
    assert both.scale_down_window == 30 and both != base.mapping
    for bad, says in (("500", "scale_down_window must be in"), ("x", "expects int")):
        with pytest.raises(PolicyError, match=says):
            make_policy(f"{folder}:scale_down_window={bad}")


# -- in the harness -------------------------------------------------------------------------


def _short(name: str, n: int = 20):
    sc = load_scenario(name)
    return dataclasses.replace(sc, load_rps=sc.load_rps[:n])


def test_policy_runs_in_the_harness_on_apps_of_any_size(exported):
    run, _ = exported
    policy = load_policy(run)
    with pytest.raises(RuntimeError, match="reset"):
        policy.act(None)
    for name, services in (("default", 49), ("online-boutique-alibaba", 11)):
        scenario = _short(name)
        assert scenario.app.n_services == services
        result = run_policy(scenario, policy, progress=False)
        assert result.timeline.num_rows == scenario.n_intervals == 20
        assert result.summary["policy"] == str(run)
        again = run_policy(scenario, load_policy(run), progress=False)
        assert again.timeline.equals(result.timeline)  # deterministic: no exploration noise


# -- refused checkpoints --------------------------------------------------------------------


def test_renamed_feature_is_refused_with_its_position_and_name(run):
    ckpt = run / "checkpoint"
    features = list(FEATURES)
    features[3] = "bogus_feature"
    path = _edit_meta(ckpt, features=features)
    _refused(
        run,
        str(path),
        "observation",
        "position 3",
        "'bogus_feature'",
        repr(FEATURES[3]),
        "drpc train",
    )


def test_dropped_feature_is_refused(run):
    ckpt = run / "checkpoint"
    path = _edit_meta(ckpt, features=list(FEATURES[:-1]))
    _refused(run, str(path), "observation features", f"checkpoint has {N_FEATURES - 1}")
    path = _edit_meta(ckpt, features=list(FEATURES[1:]))
    _refused(run, str(path), "observation features", "position 0", repr(FEATURES[0]))


def test_other_action_components_are_refused(run):
    ckpt = run / "checkpoint"
    path = _edit_meta(ckpt, action_components=["replicas", "cpu_limit"])
    _refused(run, str(path), "action components", "checkpoint has 2, this DRPC has 3")
    path = _edit_meta(ckpt, action_components=["replicas", "memory_limit", "cpu_limit"])
    _refused(run, str(path), "action components", "position 1", "'memory_limit'")


def test_truncated_weights_fail_the_checksum(run):
    weights = run / "checkpoint" / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    _refused(run, str(weights), "checksum", "truncated")


def test_corrupt_weights_with_a_matching_checksum_are_refused_cleanly(run):
    weights = _replace_weights(
        run / "checkpoint", lambda p: p.write_bytes(b"definitely not a torch file" * 50)
    )
    _refused(run, str(weights), "corrupt weights file")


def test_weights_of_another_network_size_do_not_fit(run):
    other = PerServiceActor(N_FEATURES, 3, (32, 32))
    weights = _replace_weights(run / "checkpoint", lambda p: torch.save(other.state_dict(), p))
    _refused(
        run,
        str(weights),
        "weights do not fit the network",
        "size mismatch for encoder.0.weight",
        "torch.Size([32, 18])",
    )


def test_weights_missing_a_tensor_do_not_fit(exported, run):
    state = dict(exported[1].state_dict())
    del state["head.0.bias"]
    weights = _replace_weights(run / "checkpoint", lambda p: torch.save(state, p))
    _refused(run, str(weights), "weights do not fit the network", "Missing key", "head.0.bias")


def test_weights_that_are_not_a_state_dict_do_not_fit(run):
    weights = _replace_weights(run / "checkpoint", lambda p: torch.save([1, 2, 3], p))
    _refused(run, str(weights), "weights do not fit the network", "dict-like")


class _Bomb:
    """Unpickling calls ``print("x")``: harmless stand-in for code execution."""

    def __reduce__(self):
        return (print, ("x",))


def test_pickle_bomb_with_a_matching_checksum_is_refused(run, capsys):
    weights = _replace_weights(run / "checkpoint", lambda p: torch.save({"w": _Bomb()}, p))
    capsys.readouterr()
    _refused(run, str(weights), "corrupt weights file", "UnpicklingError")
    assert "x" not in capsys.readouterr().out  # nothing ran


def test_missing_weights_file(run):
    weights = run / "checkpoint" / WEIGHTS_FILE
    weights.unlink()
    _refused(run, str(weights), "missing weights file")


def test_unsupported_network_class(run):
    ckpt = run / "checkpoint"
    meta = json.loads((ckpt / META_FILE).read_text())
    path = _edit_meta(ckpt, network={**meta["network"], "class": "GraphActor"})
    _refused(run, str(path), "'GraphActor'", "not supported")


def test_missing_folder_file_or_metadata(tmp_path):
    _refused(tmp_path / "absent", str(tmp_path / "absent"), "no such checkpoint folder")
    file = tmp_path / "policy.pt"
    file.write_bytes(b"")
    _refused(file, str(file), "is a folder")
    empty = tmp_path / "empty"
    (empty / "checkpoint").mkdir(parents=True)
    _refused(empty, str(empty), "not a DRPC policy checkpoint", META_FILE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "unreadable policy metadata"),
        (b"\xff\xfe\x00garbage", "unreadable policy metadata"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"format_version": 2}), "format_version 2, this DRPC reads 1"),
        (json.dumps({}), "format_version None"),
        (json.dumps({"format_version": 1}), "missing field 'features'"),
    ],
)
def test_bad_metadata_file_names_the_file(run, text, expected):
    path = run / "checkpoint" / META_FILE
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    _refused(run, str(path), expected)


def test_bad_action_mapping(run):
    ckpt = run / "checkpoint"
    path = _edit_meta(ckpt, action_mapping={"no_such_knob": 1})
    _refused(run, str(path), "field 'action_mapping'", "no_such_knob")


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# -- guard: no unsafe unpickling anywhere ---------------------------------------------------


def _calls(text: str, opener: str):
    """The text of every ``opener ... )`` call in ``text``, parentheses balanced."""
    for m in re.finditer(re.escape(opener), text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        yield text.count("\n", 0, m.start()) + 1, text[m.start() : i]


def test_every_torch_load_uses_weights_only():
    root = Path(drpc.__file__).parent
    found, unsafe = 0, []
    for path in sorted(root.rglob("*.py")):
        for line, call in _calls(path.read_text(), "torch.load("):
            found += 1
            if not re.search(r"weights_only\s*=\s*True", call):
                unsafe.append(f"{path.relative_to(root.parent)}:{line}: {call}")
    assert found >= 2  # the checkpoint and the forecaster loaders
    assert not unsafe, "torch.load without weights_only=True:\n" + "\n".join(unsafe)
