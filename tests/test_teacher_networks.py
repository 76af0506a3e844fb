"""The teacher's shared per-service networks run on any number of services."""

from __future__ import annotations

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
