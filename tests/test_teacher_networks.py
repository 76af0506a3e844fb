"""The teacher's shared per-service networks run on any number of services."""

from __future__ import annotations

import pytest
import torch

from drpc.teacher import PerServiceActor, PerServiceCritic


def test_actor_runs_on_any_app_size_and_is_permutation_equivariant():
    torch.manual_seed(0)
    actor = PerServiceActor(n_features=18)
    for services in (3, 49, 500):
        obs = torch.randn(4, services, 18)
        act = actor(obs)
        assert act.shape == (4, services, 3)
        assert act.abs().max() <= 1.0
        perm = torch.randperm(services)
        assert torch.allclose(actor(obs[:, perm]), act[:, perm], atol=1e-5)
    flat = torch.randn(2, 10 * 18)
    assert actor(flat).shape == (2, 30)


def test_critic_is_permutation_invariant_and_scalar():
    torch.manual_seed(1)
    critic = PerServiceCritic(n_features=18)
    obs, act = torch.randn(5, 7, 18), torch.rand(5, 7, 3) * 2 - 1
    q = critic(obs, act)
    assert q.shape == (5,)
    perm = torch.randperm(7)
    assert torch.allclose(critic(obs[:, perm], act[:, perm]), q, atol=1e-5)
    assert critic(obs.reshape(5, -1), act.reshape(5, -1)).shape == (5,)


def test_td3_module_with_per_service_networks_runs_on_the_env_spaces():
    import gymnasium as gym
    import numpy as np
    from ray.rllib.core.columns import Columns

    from drpc.teacher.module import PerServiceTD3Module

    obs_space = gym.spaces.Box(-10, 10, (49, 18), np.float32)
    act_space = gym.spaces.Box(-1, 1, (49, 3), np.float32)
    module = PerServiceTD3Module(
        observation_space=obs_space,
        action_space=act_space,
        model_config={"teacher_hidden": [32, 32]},
    )
    obs = torch.as_tensor(np.stack([obs_space.sample() for _ in range(4)]))
    out = module.forward_inference({Columns.OBS: obs})
    assert out[Columns.ACTIONS].shape == (4, 49, 3)
    q = module.critic1(obs, out[Columns.ACTIONS])
    assert q.shape == (4,)
    with pytest.raises(ValueError, match="services, features"):
        PerServiceTD3Module(
            observation_space=gym.spaces.Box(-1, 1, (18,), np.float32),
            action_space=act_space,
            model_config={},
        )
