"""The teacher's networks: one set of weights shared by every service, with cluster context.

Observations are (batch, S, F) per-service feature rows (:mod:`drpc.rllib_env.features`) and
actions (batch, S, 3). Each service row is encoded by the same MLP; the cluster context is the
mean and the max of all encodings (permutation invariant), concatenated back onto each row.
So a teacher trained on one app runs, unchanged, on apps with any number of services:

    actor:   a_i = tanh(head([enc(x_i), mean_j enc(x_j), max_j enc(x_j)]))         (B, S, 3)
    critic:  Q_i = head([enc([x_i, a_i]), mean_j enc(.), max_j enc(.)]),  Q = mean_i Q_i (B,)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "PerServiceActor", "PerServiceCritic", "pooled_context"]


def mlp(
    sizes: Sequence[int], layer_norm: bool = True, out_act: nn.Module | None = None
) -> nn.Sequential:
    """Linear layers of ``sizes``, with LayerNorm + ReLU between them (as the paper's TD3)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            if layer_norm:
                layers.append(nn.LayerNorm(sizes[i + 1]))
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


def pooled_context(h: torch.Tensor) -> torch.Tensor:
    """Per-row encodings (B, S, H) -> rows with the cluster's mean and max appended (B, S, 3H)."""
    mean = h.mean(dim=1, keepdim=True).expand_as(h)
    top = h.max(dim=1, keepdim=True).values.expand_as(h)
    return torch.cat([h, mean, top], dim=-1)


class PerServiceActor(nn.Module):
    """Deterministic policy: per-service actions in [-1, 1] from shared weights."""

    def __init__(
        self,
        n_features: int,
        n_actions: int = 3,
        hidden: Sequence[int] = (128, 128),
        layer_norm: bool = True,
    ):
        super().__init__()
        h = hidden[0]
        self.encoder = mlp([n_features, h, h], layer_norm)
        self.head = mlp([3 * h, *hidden[1:], n_actions], layer_norm, out_act=nn.Tanh())
        self.n_features = n_features
        self.n_actions = n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, S, F) or flattened (B, S*F) -> actions (B, S, A) or (B, S*A), same layout."""
        flat = obs.dim() == 2
        x = obs.view(obs.shape[0], -1, self.n_features) if flat else obs
        a = self.head(pooled_context(self.encoder(x)))
        return a.reshape(obs.shape[0], -1) if flat else a


class PerServiceCritic(nn.Module):
    """Q(s, a): encodes each service's (features, action), pools over services, one value."""

    def __init__(
        self,
        n_features: int,
        n_actions: int = 3,
        hidden: Sequence[int] = (128, 128),
        layer_norm: bool = True,
    ):
        super().__init__()
        h = hidden[0]
        self.encoder = mlp([n_features + n_actions, h, h], layer_norm)
        self.head = mlp([3 * h, *hidden[1:], 1], layer_norm)
        self.n_features = n_features
        self.n_actions = n_actions

    def per_service(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Each service's share Q_i (B, S); their mean is Q. Trained on per-service rewards
        (:func:`drpc.rllib_env.reward.service_rewards`), Q_i is service i's own return."""
        b = obs.shape[0]
        x = obs.reshape(b, -1, self.n_features)
        a = action.reshape(b, x.shape[1], self.n_actions)
        ctx = pooled_context(self.encoder(torch.cat([x, a], dim=-1)))
        return self.head(ctx).squeeze(-1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (B, S, F) or (B, S*F), action (B, S, A) or (B, S*A) -> Q (B,)."""
        return self.per_service(obs, action).mean(dim=1)
