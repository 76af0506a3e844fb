"""Training the teacher: per-service rewards, demonstrations, TD3 extensions, `drpc train`.

The last tests run real (tiny) trainings on the session's local Ray.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import drpc  # noqa: F401  (registers drpc/Cluster-v0)
from drpc.cli import main as cli_main
from drpc.rllib_env.actions import ActionMapping, _cpu_bounds, map_action
from drpc.rllib_env.reward import RewardConfig, service_rewards, weighted_reward
from drpc.scenario import load_scenario
from drpc.sim.types import Action
from drpc.teacher.demonstrations import (
    behaviour_clone,
    collect_demonstrations,
    env_action_for,
)
from drpc.teacher.networks import PerServiceActor, PerServiceCritic
from drpc.train import TrainConfig, check_scenarios, train

SMALL_ENV = {"scenarios": ["train-trainticket-nasa"], "episode_intervals": 20}


def stepped_env(steps: int = 10, seed: int = 0, scale: float = 0.5):
    env = gym.make("drpc/Cluster-v0", **SMALL_ENV).unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        a = rng.uniform(-scale, scale, env.action_space.shape).astype(np.float32)
        out.append(env.step(a))
    return env, out


# -- per-service rewards ------------------------------------------------------------------


def test_service_rewards_sum_to_the_weighted_reward_in_the_env():
    env, steps = stepped_env(15, scale=0.8)
    for _, reward, _, _, info in steps:
        shares = info["service_rewards"]
        assert shares.shape == (env.app.n_services,)
        assert np.all(shares <= 0)
        assert shares.sum() == pytest.approx(reward, rel=1e-4, abs=1e-6)


def test_service_rewards_blame_the_slow_service_of_a_violated_endpoint():
    env, _ = stepped_env(3)
    obs = env.last_observation
    app = env.sim.app
    cfg = RewardConfig(cost_weight=0.0, churn_weight=0.0, failure_weight=0.0)
    slow = int(np.argmax(np.asarray(app.visits.sum(axis=0)).ravel()))  # on many paths
    hot = obs.__class__(
        **{
            **{k: getattr(obs, k) for k in obs.__dataclass_fields__},
            "latency_p99_ms": np.where(np.arange(app.n_services) == slow, 1e5, 1.0),
            "endpoint_latency_p99_ms": app.slo_ms * 3.0,
        }
    )
    shares = service_rewards(hot, app, np.zeros((app.n_services, 3), bool), cfg)
    total, _ = weighted_reward(hot, app, np.zeros((app.n_services, 3), bool), cfg)
    assert shares.sum() == pytest.approx(total, rel=1e-5)
    # every endpoint that calls the slow service blames it for (nearly) all its excess
    on_path = np.asarray(app.visits[:, slow].todense()).ravel() > 0
    share = hot.endpoint_rps / hot.endpoint_rps.sum()
    expected = -(share * 2.0)[on_path].sum()  # excess = 3x SLO - 1 = 2 on each endpoint
    assert shares[slow] == pytest.approx(expected, rel=0.01)


def test_flat_env_for_sac_and_ppo_passes_the_checker():
    env = gym.make("drpc/Cluster-v0", flatten=True, **SMALL_ENV)
    check_env(env.unwrapped)
    n = env.unwrapped.app.n_services
    assert env.observation_space.shape == (n * 18,)
    assert env.action_space.shape == (n * 3,)


# -- demonstrations -------------------------------------------------------------------------


def test_env_action_for_inverts_map_action_for_reachable_targets():
    env, _ = stepped_env(2)
    obs, app = env.last_observation, env.sim.app
    mapping = ActionMapping()
    rng = np.random.default_rng(1)
    current = obs.replicas_desired.astype(float)
    step = np.maximum(1, np.floor(mapping.replica_step_fraction * current))
    want = np.clip(
        current + rng.integers(-1, 2, current.shape) * step, app.min_replicas, app.max_replicas
    )
    cpu = obs.cpu_limit_millicores * rng.uniform(0.6, 1.6, current.shape)
    # reachable: within the range, and no cut below what a pod uses (the mapping's floor)
    cpu_floor, cpu_hi = _cpu_bounds(obs, app, mapping)
    cpu = np.clip(cpu, cpu_floor, cpu_hi)
    a = env_action_for(Action(replicas=want, cpu_limit_millicores=cpu), obs, app, mapping)
    assert a.shape == (app.n_services, 3) and np.all(np.abs(a) <= 1)
    assert np.all(a[:, 2] == 0)  # memory left alone
    sim_action, changed = map_action(a, obs, app, mapping)
    got = np.where(changed[:, 0], sim_action.replicas, current)
    np.testing.assert_array_equal(got, want)
    got_cpu = np.where(changed[:, 1], sim_action.cpu_limit_millicores, obs.cpu_limit_millicores)
    np.testing.assert_allclose(got_cpu, cpu, rtol=1e-6)
    assert not np.any(env_action_for(None, obs, app, mapping))


def test_behaviour_cloning_fits_the_oracles_demonstrations():
    demos = collect_demonstrations(SMALL_ENV, "oracle", steps=40, seed=0)
    assert demos.features.shape[0] == 40 and demos.actions.shape[2] == 3
    assert np.any(demos.actions[:, :, 0] != 0)  # the oracle scales
    torch.manual_seed(0)
    actor = PerServiceActor(18, 3, (16, 16))
    losses = behaviour_clone(actor, demos, epochs=8, batch_size=8)
    assert losses[-1] < 0.5 * losses[0]


# -- the per-service critic ---------------------------------------------------------------


def test_critic_q_is_the_mean_of_the_per_service_shares():
    critic = PerServiceCritic(18, 3, (16, 16))
    obs, act = torch.randn(4, 7, 18), torch.rand(4, 7, 3)
    per = critic.per_service(obs, act)
    assert per.shape == (4, 7)
    torch.testing.assert_close(critic(obs, act), per.mean(dim=1))


# -- train: validation, a tiny real run, resume, evaluate --------------------------------------


def test_train_refuses_evaluation_windows_and_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="train only on training windows"):
        check_scenarios(TrainConfig(scenarios=("default",)))
    with pytest.raises(ValueError, match="select snapshots on training windows"):
        check_scenarios(TrainConfig(validation_scenario="default"))
    with pytest.raises(ValueError, match="'default'.*select snapshots on training windows"):
        check_scenarios(TrainConfig(validation_scenario="val-trainticket-nasa, default"))
    with pytest.raises(ValueError, match="too few for episodes of 120.*--episode-intervals 60"):
        check_scenarios(TrainConfig(scenarios=("train-sock-shop-azure-conv",)))
    with pytest.raises(ValueError, match="in target mode use 'setpoint'"):
        TrainConfig(demonstrator="oracle")
    with pytest.raises(ValueError, match="'setpoint' needs action_mode='target'"):
        TrainConfig(demonstrator="setpoint", action_mode="delta")
    with pytest.raises(ValueError, match="algorithm"):
        TrainConfig(algorithm="ddpg")
    with pytest.raises(ValueError, match="stopping rule"):
        TrainConfig(time_budget_s=None)
    with pytest.raises(ValueError, match="num_learners"):
        TrainConfig(num_gpus_per_learner=1)
    with pytest.raises(ValueError, match="selection: choose one of"):
        TrainConfig(selection="best")
    out = tmp_path / "out"
    assert cli_main(["train", "--scenario", "default", "--out", str(out)]) == 2
    assert not out.exists()  # nothing written for a refused run
    assert cli_main(["train", "--resume", str(tmp_path), "--out", str(out)]) == 2
    assert not out.exists()
    assert cli_main(["train", "--hidden", "a,b", "--out", str(out)]) == 2


def test_selection_picks_the_fewest_violations_within_the_hpas_cpu():
    """'hpa_budget': snapshots within the HPA's validation CPU first, fewest violating and
    failed intervals, then least CPU; over the budget they rank by score after them.
    'score': the lowest score, whatever the CPU."""
    from types import SimpleNamespace

    from drpc.train import _Validator

    def row(name, violating, cpu_vs_hpa, score):
        return dict(name=name, violating_or_failed_fraction=violating, cpu_vs_hpa=cpu_vs_hpa,
                    score=score)  # fmt: skip

    rows = [
        row("cheap, violates", 0.0125, 0.57, 0.070),  # the lowest score
        row("within budget", 0.0056, 0.69, 0.074),
        row("within budget, dearer", 0.0056, 0.90, 0.095),
        row("no violations, over budget", 0.0, 1.30, 0.130),
    ]

    def pick(selection):
        v = SimpleNamespace(cfg=TrainConfig(selection=selection))
        return min(rows, key=lambda r: _Validator.rank(v, r))["name"]

    assert pick("hpa_budget") == "within budget"
    assert pick("score") == "cheap, violates"
    over = [r for r in rows if r["cpu_vs_hpa"] > 1] + [row("over, worse", 0.1, 1.1, 0.2)]
    v = SimpleNamespace(cfg=TrainConfig())
    assert min(over, key=lambda r: _Validator.rank(v, r))["name"] == "no violations, over budget"


def test_train_warns_when_the_exported_snapshot_does_not_beat_the_hpa_on_validation():
    from drpc.cli import validation_verdict

    row = dict(violating_or_failed_fraction=0.0014, cpu_vs_hpa=0.86,
               hpa_violating_or_failed_fraction=0.0028, beats_hpa=True)  # fmt: skip
    assert validation_verdict(row).startswith("validation day: the exported snapshot beats")
    assert "0.0014 violating or failed intervals at 0.86x" in validation_verdict(row)
    warning = validation_verdict({**row, "cpu_vs_hpa": 1.05, "beats_hpa": False})
    assert warning.startswith("WARNING: the exported snapshot does not beat the HPA")
    assert "1.05x the HPA's CPU" in warning and "--seed" in warning


TINY = dict(
    iterations=2,
    steps_per_iteration=24,
    episode_intervals=20,
    hidden=(16, 16),
    batch_size=16,
    learning_starts=16,
    progress=False,
)


def summary_validation(out):
    return json.loads((out / "train_summary.json").read_text())["validation"]


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    scenario = load_scenario("default")
    short = tmp_path_factory.mktemp("scen") / "short.yaml"
    spec = scenario.spec.model_dump(mode="json", exclude_none=True)
    spec["name"] = "default-short"
    spec["trace"]["window_s"] = [1036800, 1036800 + 40 * 60]  # 40 trace minutes
    import yaml

    short.write_text(yaml.safe_dump(spec))
    result = train(TrainConfig(out=str(out), eval_scenarios=(str(short),), **TINY))
    return result, short


def test_train_writes_checkpoint_logs_and_evaluation(trained):
    result, _ = trained
    out = result.out
    assert result.iterations == 2 and result.env_steps >= 48
    assert (out / "checkpoint" / "rllib_checkpoint.json").is_file()
    meta = json.loads((out / "checkpoint" / "drpc_policy.json").read_text())
    assert meta["network"]["hidden"] == [16, 16]
    assert meta["trained_on"]["scenarios"] == ["train-trainticket-nasa"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    rows = (out / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 iterations
    assert meta["action_mapping"]["mode"] == "target"
    # the exported actor is the best validated snapshot (here: the final, forced validation)
    assert meta["selection"]["best"]["iteration"] == 2
    best = summary_validation(out)["best"]
    assert best["score"] > 0
    # the verdict on the validation day is the criterion against the HPA's numbers
    assert best["hpa_violating_or_failed_fraction"] >= 0
    assert best["beats_hpa"] == (
        best["violating_or_failed_fraction"] < best["hpa_violating_or_failed_fraction"]
        and best["cpu_vs_hpa"] <= 1.0
    )
    assert result.validation_best == best
    summary = json.loads((out / "train_summary.json").read_text())
    runs = summary["evaluations"]["default-short"]
    assert [r["policy"] for r in runs] == ["teacher", "hpa"]
    assert runs[0]["intervals"] == runs[1]["intervals"] > 0
    assert (out / "eval" / "default-short" / "summary.json").is_file()


def test_evaluate_cli_runs_the_checkpoint_beside_the_hpa(trained, tmp_path, capsys):
    result, short = trained
    out = tmp_path / "eval"
    code = cli_main(
        [
            "evaluate",
            "--scenario",
            str(short),
            "--policy",
            str(result.out),
            "--policy",
            "hpa",
            "--out",
            str(out),
            "--no-plots",
            "--no-progress",
        ]
    )
    assert code == 0
    summaries = json.loads((out / "summary.json").read_text())
    names = [s["policy"] for s in summaries["policies"]] if "policies" in summaries else None
    assert names is None or names[1] == "hpa"
    assert str(result.out) in capsys.readouterr().out


def test_population_trains_members_at_once_and_exports_the_best_validated(
    ray_session, tmp_path, trained
):
    from drpc.population import choose_member, train_population

    _, short = trained
    out = tmp_path / "pop"
    cfg = TrainConfig(out=str(out), population=2, seed=3, eval_scenarios=(str(short),), **TINY)
    result = train_population(cfg)
    population = json.loads((out / "population.json").read_text())
    members = population["members"]
    assert [m["seed"] for m in members] == [3, 4]
    for i, m in enumerate(members):  # each member is a whole drpc train run of its own
        assert (out / f"member-{i}" / "checkpoint" / "drpc_policy.json").is_file()
        assert m["validation_best"]["hpa_violating_or_failed_fraction"] >= 0
    chosen = population["chosen"]
    assert chosen == choose_member(cfg, members)
    # the exported checkpoint is the chosen member's, byte for byte
    mine = out / f"member-{chosen}" / "checkpoint" / "policy.pt"
    assert (out / "checkpoint" / "policy.pt").read_bytes() == mine.read_bytes()
    assert result.validation_best == members[chosen]["validation_best"]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["population"]["chosen"] == chosen
    assert [r["policy"] for r in summary["evaluations"]["default-short"]] == ["teacher", "hpa"]


def test_population_ranks_members_by_the_selection_rule():
    from drpc.population import choose_member

    def member(seed, violating, cpu_vs_hpa):
        return {"seed": seed, "validation_best": {"violating_or_failed_fraction": violating,
                "cpu_vs_hpa": cpu_vs_hpa, "score": violating + 0.1 * cpu_vs_hpa}}  # fmt: skip

    members = [member(0, 0.0, 1.2), member(1, 0.004, 0.8), member(2, 0.002, 0.9)]
    assert choose_member(TrainConfig(population=3), members) == 2  # within the HPA's CPU
    assert choose_member(TrainConfig(population=3, selection="score"), members) == 1  # cheapest
    assert choose_member(TrainConfig(population=3), [members[0], member(5, 0.0, 1.2)]) == 0
    with pytest.raises(ValueError, match="population > 1 compares the members"):
        TrainConfig(population=2, validation_scenario=None)
    with pytest.raises(ValueError, match="population must be >= 1"):
        TrainConfig(population=0)


def test_resume_continues_the_step_count(trained, tmp_path):
    result, short = trained
    out = tmp_path / "resumed"
    resumed = train(
        TrainConfig(
            out=str(out),
            resume=str(result.checkpoint),
            eval_scenarios=(str(short),),
            eval_baselines=(),
            validation_scenario=None,
            **{**TINY, "iterations": 1},
        )
    )
    assert resumed.env_steps > result.env_steps  # lifetime steps carry over
    assert (out / "checkpoint" / "drpc_policy.json").is_file()


def test_delta_mode_run_warm_started_from_the_oracle(ray_session, tmp_path):
    out = tmp_path / "warm"
    result = train(
        TrainConfig(
            out=str(out),
            action_mode="delta",
            demonstrator="oracle",
            demo_steps=40,
            bc_epochs=2,
            actor_update_starts=4,
            eval_scenarios=(),
            validation_scenario=None,
            **{**TINY, "iterations": 1},
        )
    )
    warm = json.loads((out / "warm_start.json").read_text())
    assert warm["demonstrator"] == "oracle" and len(warm["bc_loss_per_epoch"]) == 2
    meta = json.loads((result.checkpoint / "drpc_policy.json").read_text())
    assert meta["action_mapping"]["mode"] == "delta"
    with pytest.raises(ValueError, match="delta"):
        TrainConfig(demonstrator="oracle")  # target mode has no demonstrations
