"""The Gymnasium env drpc/Cluster-v0, its action mapping and rewards, and the multi-agent view."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import drpc  # noqa: F401  (registers drpc/Cluster-v0)
from drpc.rllib_env import ActionMapping, ClusterEnv, RewardConfig, map_action
from drpc.rllib_env.reward import paper_reward

ENV_KW = {"scenarios": ["train-trainticket-nasa"], "episode_intervals": 12}


@pytest.fixture(scope="module")
def env():
    return ClusterEnv(**ENV_KW)


def test_registered_and_passes_gymnasium_checker():
    made = gym.make("drpc/Cluster-v0", **ENV_KW)
    check_env(made.unwrapped)
    assert made.observation_space.shape == (49, 18)
    assert made.action_space.shape == (49, 3)


def test_episode_truncates_and_is_seeded(env):
    def rollout(seed):
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(12):
            obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
            assert not term
            out.append(obs)
        assert trunc
        return np.array(out), info

    a, _ = rollout(5)
    b, _ = rollout(5)
    c, _ = rollout(6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert env.observation_space.contains(a[-1])


def test_zero_action_changes_nothing(env):
    env.reset(seed=1)
    obs0 = env.last_observation
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert info["actions_changed"] == 0
    assert np.array_equal(env.last_observation.replicas_desired, obs0.replicas_desired)


def test_action_mapping_deadband_steps_and_bounds(env):
    env.reset(seed=2)
    obs, app = env.last_observation, env.sim.app
    m = ActionMapping(cfs_quota_requests=0)  # the CPU floors have their own tests below
    n = app.n_services
    a = np.zeros((n, 3))
    a[0] = [0.05, -0.09, 0.0]  # inside the deadband
    a[1] = [1.0, 1.0, 1.0]  # strongest increase
    a[2] = [-1.0, -1.0, -1.0]  # strongest decrease
    act, changed = map_action(a, obs, app, m)
    assert not changed[0].any()
    cur = obs.replicas_desired
    assert act.replicas[1] == min(cur[1] + max(1, math.ceil(0.5 * cur[1])), app.max_replicas[1])
    assert (
        act.replicas[2] == max(cur[2] - max(1, math.ceil(0.5 * cur[2])), app.min_replicas[2])
        or not changed[2, 0]
    )
    assert act.cpu_limit_millicores[1] == pytest.approx(
        min(2 * obs.cpu_limit_millicores[1], 4 * app.cpu_limit_m0[1])
    )
    assert act.cpu_limit_millicores[2] == pytest.approx(
        max(obs.cpu_limit_millicores[2] / 2, 0.25 * app.cpu_limit_m0[2])
    )
    ratio = app.cpu_request_m0[1] / app.cpu_limit_m0[1]
    assert act.cpu_request_millicores[1] == pytest.approx(act.cpu_limit_millicores[1] * ratio)
    # Saturated actions never leave the bounds.
    act, _ = map_action(np.ones((n, 3)) * 5, obs, app, m)
    assert np.all(
        act.replicas[np.isfinite(act.replicas)] <= app.max_replicas[np.isfinite(act.replicas)]
    )
    # A memory cut never goes below 1.2 x the current working set per pod.
    act, changed = map_action(-np.ones((n, 3)), obs, app, m)
    ws_pod = obs.memory_working_set_mib / np.maximum(obs.replicas_ready, 1)
    got = np.where(changed[:, 2], act.memory_limit_mib, obs.memory_limit_mib)
    assert np.all(got >= np.minimum(1.2 * ws_pod, 4 * app.memory_limit_mib0) - 1e-6)
    with pytest.raises(ValueError, match="shape"):
        map_action(np.zeros((n, 2)), obs, app, m)


@pytest.mark.parametrize("mode", ["delta", "target"])
def test_memory_is_not_cut_blind_and_is_bumped_after_an_oom_kill(env, mode):
    """No ready pod (working set reads 0) or no reading yet: no memory cut, else a limit
    below what the pod needs to start keeps it crash-looping for good. An OOM kill: the VPA's
    bump, x1.2 and +100 MiB at least, capped at the range's top."""
    env.reset(seed=2)
    first = env.last_observation  # before any interval is measured: working sets read 0
    app, n = env.sim.app, env.sim.app.n_services
    down = np.full((n, 3), -1.0)
    m = ActionMapping(mode=mode)
    act, changed = map_action(down, first, app, m)
    assert not changed[:, 2].any()
    env.step(np.zeros((n, 3), dtype=np.float32))
    obs = env.last_observation
    limit = obs.memory_limit_mib.copy()
    ready = obs.replicas_ready.copy()
    ready[0] = 0  # service 0: its pods are starting or crash-looping
    oom = np.zeros(n)
    oom[1] = 2  # service 1: two OOM kills this interval
    blind = dataclasses.replace(
        obs,
        replicas_ready=ready,
        memory_working_set_mib=np.where(ready < 1, 0.0, obs.memory_working_set_mib),
        oom_kills=oom,
    )
    act, changed = map_action(down, blind, app, m)
    got = np.where(changed[:, 2], act.memory_limit_mib, limit)  # NaN: unchanged
    assert got[0] >= limit[0]
    want = min(max(1.2 * limit[1], limit[1] + 100.0), 4 * app.memory_limit_mib0[1])
    assert got[1] == pytest.approx(want)
    assert got[2] < limit[2]  # a measured, healthy service may be cut


@pytest.mark.parametrize("mode", ["delta", "target"])
def test_memory_floor_follows_the_peak_working_set_of_the_window(env, mode):
    """With a WorkingSetPeak the floor is headroom x the largest per-pod working set of the
    last ``memory_peak_window`` intervals: a quiet minute does not size memory for the next
    burst; once the peak leaves the window, the cut goes through."""
    from drpc.rllib_env.actions import MappingState, WorkingSetPeak

    env.reset(seed=2)
    app, n = env.sim.app, env.sim.app.n_services
    env.step(np.zeros((n, 3), dtype=np.float32))
    obs = env.last_observation
    m = ActionMapping(mode=mode, memory_peak_window=3)
    pods = np.full(n, 2.0)
    limit = np.full(n, 1000.0)
    busy = dataclasses.replace(
        obs, replicas_ready=pods, memory_limit_mib=limit, memory_working_set_mib=pods * 600.0
    )
    quiet = dataclasses.replace(busy, memory_working_set_mib=pods * 300.0)
    peak = MappingState(memory_peak=WorkingSetPeak(m.memory_peak_window))
    down = np.full((n, 3), -1.0)
    lo = 0.5 * app.memory_limit_mib0
    got = [map_action(down, busy, app, m, peak)[0].memory_limit_mib]
    got += [map_action(down, quiet, app, m, peak)[0].memory_limit_mib for _ in "abc"]
    got = [np.where(np.isnan(g), limit, g) for g in got]  # NaN: unchanged
    for g in got[:3]:  # the busy interval is in the window: no cut below 1.2 x 600 MiB
        np.testing.assert_allclose(g, np.clip(np.maximum(720.0, lo), None, 1000.0))
    np.testing.assert_allclose(got[3], np.maximum(np.maximum(500.0, 360.0), lo))  # it left
    stateless = map_action(down, quiet, app, m)[0].memory_limit_mib  # no peak: this interval
    np.testing.assert_allclose(stateless, np.maximum(np.maximum(500.0, 360.0), lo))
    with pytest.raises(ValueError, match="memory_peak_window"):
        ActionMapping(memory_peak_window=0)


@pytest.mark.parametrize("mode", ["delta", "target"])
def test_cpu_limit_is_not_cut_below_what_a_pod_uses(env, mode):
    """A busy pod keeps its CPU limit (no cut below 1.2 x its usage, nor while no pod is
    ready); an idle one may be cut; a low limit is not forced up."""
    env.reset(seed=2)
    obs, app = env.last_observation, env.sim.app
    m = ActionMapping(mode=mode, cfs_quota_requests=0)  # the quota floor: the next test
    n = app.n_services
    limit = obs.cpu_limit_millicores.copy()
    pods = np.maximum(obs.replicas_ready, 1)
    used = np.zeros(n)
    used[0] = 0.9 * limit[0] * pods[0]  # service 0: at 90% of its limit per pod
    used[1] = 0.5 * limit[1] * pods[1]  # service 1: at 50%
    ready = obs.replicas_ready.copy()
    ready[2] = 0  # service 2: no ready pod, usage unknown
    busy = dataclasses.replace(obs, cpu_usage_millicores=used, replicas_ready=ready)
    act, changed = map_action(np.full((n, 3), -1.0), busy, app, m)
    got = np.where(changed[:, 1], act.cpu_limit_millicores, limit)  # NaN: unchanged
    assert got[0] == pytest.approx(limit[0])  # 1.2 x 90% > 100%: kept, not raised
    assert got[1] == pytest.approx(max(0.6 * limit[1], limit[1] / 2, 0.25 * app.cpu_limit_m0[1]))
    assert got[2] == pytest.approx(limit[2])
    with pytest.raises(ValueError, match="cpu_headroom"):
        ActionMapping(cpu_headroom=0.5)


@pytest.mark.parametrize("mode", ["delta", "target"])
def test_cpu_limit_is_not_cut_below_the_cfs_quota_of_one_request(env, mode):
    """A limit whose 100 ms CFS quota is smaller than one mean request's CPU time makes every
    request wait out throttled periods: no cut below it (from CPU used / visits served), and
    no cut at all while no visit is served (the CPU per visit is unknown)."""
    env.reset(seed=2)
    obs, app = env.last_observation, env.sim.app
    m = ActionMapping(mode=mode)
    n = app.n_services
    limit = np.full(n, 1000.0)
    ready = np.full(n, 4.0)
    served = np.full(n, 10.0)  # visits per second, per service
    used = np.full(n, 40.0)  # 10 m per pod: far below 1.2 x any limit
    used[0] = 10.0 * 60.0  # service 0: 60 ms of CPU per visit -> quota floor 600m
    served[1] = 0.0  # service 1: nothing served, CPU per visit unknown
    quiet = dataclasses.replace(
        obs,
        cpu_limit_millicores=limit,
        cpu_usage_millicores=used,
        throughput_rps=served,
        replicas_ready=ready,
    )
    act, changed = map_action(np.full((n, 3), -1.0), quiet, app, m)
    got = np.where(changed[:, 1], act.cpu_limit_millicores, limit)
    assert got[0] == pytest.approx(600.0)  # wanted 500m (halved), the floor holds 600m
    assert got[1] == pytest.approx(1000.0)
    assert got[2] == pytest.approx(max(500.0, 0.25 * app.cpu_limit_m0[2], 40.0))  # 4 ms: cut
    off = map_action(
        np.full((n, 3), -1.0), quiet, app, ActionMapping(mode=mode, cfs_quota_requests=0)
    )
    assert off[0].cpu_limit_millicores[0] == pytest.approx(500.0)
    with pytest.raises(ValueError, match="cfs_quota_requests"):
        ActionMapping(cfs_quota_requests=-1)


def test_paper_reward_matches_the_formula(env):
    env.reset(seed=3)
    obs, app = env.last_observation, env.sim.app
    r, terms = paper_reward(obs, app, RewardConfig(kind="paper"))
    ratio = (obs.endpoint_latency_p99_ms / app.slo_ms)[obs.endpoint_rps > 0].max(initial=0)
    r_qos = 1.0 if ratio <= 1 else math.exp(-((ratio - 1) ** 2))
    ready = np.maximum(obs.replicas_ready, 1)
    u_cpu = obs.cpu_usage_millicores / (obs.cpu_limit_millicores * ready)
    u_mem = obs.memory_working_set_mib / (obs.memory_limit_mib * ready)
    r_ult = ((1 + np.abs(u_cpu - 0.75).mean()) + (1 + np.abs(u_mem - 0.75).mean())) / 2
    assert r == pytest.approx(r_qos / r_ult)
    assert r <= 1.0


def test_weighted_reward_prefers_meeting_the_slo(env):
    cfg = RewardConfig()
    env.reset(seed=4)
    # Scale everything to its maximum: no violations, higher cost. Versus halving everything.
    n = env.sim.app.n_services
    up = [env.step(np.tile([1.0, 0.0, 0.0], (n, 1)))[1] for _ in range(4)]
    env.reset(seed=4)
    down = [env.step(np.tile([-1.0, -1.0, 0.0], (n, 1)))[1] for _ in range(4)]
    assert cfg.kind == "weighted"
    assert sum(up[-2:]) > sum(down[-2:])


def test_bad_env_config_is_refused():
    with pytest.raises(ValueError, match="unknown key"):
        ClusterEnv(scenarios=["default"], episode_intervals=5, colour="blue")
    with pytest.raises(ValueError, match="same number of services"):
        ClusterEnv(scenarios=["default", "online-boutique-alibaba"], episode_intervals=5)
    with pytest.raises(ValueError, match="fewer than"):
        ClusterEnv(scenarios=["sock-shop-azure-conv"], episode_intervals=500, forecast=False)


def test_load_perturbations_spikes_outages_and_jumps():
    from drpc.rllib_env.env import make_env_config, perturb_load

    quiet = np.full((240, 3), 5.0)  # one simulated hour at 5 rps, peak 100 rps
    rng = np.random.default_rng(0)
    jumps = make_env_config(jumps_per_hour=6.0, jump_level=(0.4, 0.5), jump_intervals=(2, 2))
    out = perturb_load(quiet, 15.0, jumps, rng, peak_rps=100.0)
    risen = out[:, 0] > 5.0
    assert risen.any() and not risen.all()
    assert np.all((out[risen] >= 40.0) & (out[risen] <= 50.0))  # to 40-50% of the peak
    assert np.array_equal(quiet, np.full((240, 3), 5.0))  # the input is not changed
    outages = make_env_config(outages_per_hour=6.0, outage_intervals=(3, 3))
    out = perturb_load(quiet, 15.0, outages, np.random.default_rng(0))
    assert (out == 0.0).any() and set(np.unique(out)) <= {0.0, 5.0}
    assert perturb_load(quiet, 15.0, make_env_config(), rng) is quiet  # nothing asked
    with pytest.raises(ValueError, match="jump_level"):
        make_env_config(jump_level=(0.6, 0.2))
    with pytest.raises(ValueError, match="jumps_per_hour"):
        make_env_config(jumps_per_hour=-1.0)


def test_multi_agent_view_one_agent_per_deployment():
    from drpc.rllib_env.multi_agent import LOCAL_FEATURES, ClusterMultiAgentEnv

    ma = ClusterMultiAgentEnv(**ENV_KW)
    obs, infos = ma.reset(seed=0)
    assert set(obs) == set(ma.possible_agents) and len(obs) == 49
    space = ma.observation_spaces["ts-travel-service"]
    assert space.shape == (len(LOCAL_FEATURES),) and space.contains(obs["ts-travel-service"])
    actions = {a: ma.action_spaces[a].sample() for a in ma.agents}
    obs, rew, term, trunc, info = ma.step(actions)
    # ts-travel-service is called by the gateway: its callers' load is positive.
    assert obs["ts-travel-service"][-1] > 0
    assert len(set(rew.values())) == 1  # a shared reward
    assert "__all__" in term and "__all__" in trunc
    with pytest.raises(KeyError, match="unknown agent"):
        ma.step({"nope": np.zeros(3)})


# -- target mode: actions are set-points ------------------------------------------------------


def target_obs(env, seed=3):
    env.reset(seed=seed)
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    return env.last_observation, env.sim.app


def test_target_mode_replicas_follow_the_utilisation_set_point(env):
    from drpc.rllib_env.actions import MappingState, ScaleDownStabilizer

    obs, app = target_obs(env)
    m = ActionMapping(mode="target", replica_step_fraction=1.0, scale_down_window=1)
    n = app.n_services
    lo, hi = m.target_utilization_range
    for a0, util in ((-1.0, lo), (1.0, hi), (0.0, (lo + hi) / 2)):
        a = np.zeros((n, 3))
        a[:, 0] = a0
        action, changed = map_action(a, obs, app, m)
        want = np.ceil(obs.cpu_usage_millicores / (util * obs.cpu_limit_millicores) - 1e-9)
        want = np.clip(want, app.min_replicas, app.max_replicas)
        cur = obs.replicas_desired
        step = np.maximum(1, np.floor(cur))
        expect = np.clip(want, cur - step, cur + step)
        expect = np.where(np.abs(want - cur) > m.tolerance * np.maximum(cur, 1), expect, cur)
        got = np.where(changed[:, 0], action.replicas, cur)
        np.testing.assert_array_equal(got, expect)
    # the stabiliser holds a scale-down at the largest count wanted in its window
    stab = MappingState(stabilizer=ScaleDownStabilizer(3))
    up, down = np.zeros((n, 3)), np.zeros((n, 3))
    up[:, 0], down[:, 0] = -1.0, 1.0  # lowest target = most replicas; then the highest
    high, _ = map_action(up, obs, app, m, stab)
    low, _ = map_action(down, obs, app, m, stab)
    hi_reps = np.where(np.isnan(high.replicas), obs.replicas_desired, high.replicas)
    lo_reps = np.where(np.isnan(low.replicas), obs.replicas_desired, low.replicas)
    assert np.all(lo_reps >= np.minimum(hi_reps, obs.replicas_desired))


def test_default_scale_down_window_outlasts_the_training_outages():
    """The target mapping's stabiliser holds replicas through the longest outage of the
    training episodes, so the returning traffic meets the pods it left (the HPA's 5 minutes
    let them go at minute 5); a longer quiet spell does let them go."""
    from drpc.rllib_env.actions import ScaleDownStabilizer
    from drpc.rllib_env.env import EnvConfig

    window = ActionMapping().scale_down_window
    longest_outage = EnvConfig().outage_intervals[1]
    assert window > longest_outage
    stab = ScaleDownStabilizer(window)
    busy, idle = np.array([12.0]), np.array([1.0])
    current = busy
    for _ in range(5):
        current = stab(busy, current)
    held = [float(stab(idle, current)[0]) for _ in range(longest_outage)]
    assert held == [12.0] * longest_outage
    for _ in range(window):
        current = stab(idle, current)
    assert current[0] == 1.0


def test_target_mode_limits_move_toward_set_points_within_bounds(env):
    obs, app = target_obs(env, seed=4)
    m = ActionMapping(mode="target")
    n = app.n_services
    a = np.zeros((n, 3))
    a[:, 1], a[:, 2] = 1.0, -1.0  # highest CPU limit, lowest memory limit
    action, changed = map_action(a, obs, app, m)
    cpu = np.where(changed[:, 1], action.cpu_limit_millicores, obs.cpu_limit_millicores)
    mem = np.where(changed[:, 2], action.memory_limit_mib, obs.memory_limit_mib)
    f = m.resource_step_factor
    assert np.all(cpu <= np.minimum(obs.cpu_limit_millicores * f, app.cpu_limit_m0 * 4.0) + 1e-6)
    assert np.all(cpu >= obs.cpu_limit_millicores - 1e-6)  # only up
    ws_pod = obs.memory_working_set_mib / np.maximum(obs.replicas_ready, 1)
    assert np.all(mem >= np.minimum(m.memory_headroom * ws_pod, app.memory_limit_mib0 * 4) - 1e-6)
    assert np.all(mem >= obs.memory_limit_mib / f - 1e-6)  # at most one step down
    # a set-point within tolerance of the current value changes nothing
    same = np.zeros((n, 3))
    same[:, 1] = 0.0  # CPU set-point = the initial limit (geometric middle of 0.25..4)
    fresh = ClusterEnv(**ENV_KW)
    fresh.reset(seed=5)
    _, changed = map_action(same, fresh.last_observation, fresh.sim.app, m)
    assert not changed[:, 1].any()


def test_target_mode_is_refused_with_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        ActionMapping(mode="absolute")
    with pytest.raises(ValueError, match="target_utilization_range"):
        ActionMapping(target_utilization_range=(0.5, 0.4))
