"""Per-deployment student networks, grouped by cluster node and evaluated one node at a time.

Every service (Kubernetes Deployment) has its own small MLP: it sees only its local
observation (:data:`~drpc.imitation.local.LOCAL_FEATURES`, 17 numbers) and outputs the
teacher's 3 raw action components in [-1, 1] (tanh): replicas, CPU limit, memory limit, read
by the same :func:`~drpc.rllib_env.actions.map_action` as the teacher's::

    local (17) -> Linear -> LayerNorm -> ReLU -> Linear -> LayerNorm -> ReLU -> Linear -> tanh (3)

With the default widths (32, 32) a student has 1,859 parameters; every student must stay at
or below :data:`MAX_STUDENT_PARAMS` (5,000).

The students of many services are *stacked*: a :class:`StudentBank` keeps the weights of K
students as (K, in, out) tensors, so K independent networks run as one batched matmul per
layer (``torch.baddbmm``). That is how all students train together, and how a node decides:
:class:`NodeStudents` is the bank of one node's services; a node with 100 services decides in
one call of about 0.15-0.2 ms on one core (``bench/decision_time.py``).
:class:`StudentSet` is the whole app's students plus the :class:`~drpc.imitation.nodes.NodeMap`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from drpc.imitation.local import N_LOCAL
from drpc.imitation.nodes import NodeMap
from drpc.rllib_env.actions import N_ACTION_COMPONENTS

__all__ = [
    "DEFAULT_HIDDEN",
    "MAX_STUDENT_PARAMS",
    "NodeStudents",
    "StudentBank",
    "StudentSet",
    "student_param_count",
]

MAX_STUDENT_PARAMS = 5000
"""Upper bound on one student's parameters (DRPC's students are tiny: about 640 in the paper)."""
DEFAULT_HIDDEN = (32, 32)
"""Hidden widths of a student MLP."""


def student_param_count(
    n_inputs: int = N_LOCAL,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    n_actions: int = N_ACTION_COMPONENTS,
    layer_norm: bool = True,
) -> int:
    """Parameters of one student MLP of these sizes (weights, biases, LayerNorm scale/shift)."""
    sizes = [n_inputs, *hidden, n_actions]
    linear = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return linear + (2 * sum(hidden) if layer_norm else 0)


class StudentBank(nn.Module):
    """K independent student MLPs with stacked weights: ``(..., K, n_inputs) -> (..., K, 3)``.

    Row k of the input goes through student k only. Parameters: ``weight{i}`` (K, in, out),
    ``bias{i}`` (K, out) and, between layers, ``norm{i}_weight`` / ``norm{i}_bias`` (K, width).
    """

    def __init__(
        self,
        n_students: int,
        n_inputs: int = N_LOCAL,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        n_actions: int = N_ACTION_COMPONENTS,
        layer_norm: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        per = student_param_count(n_inputs, hidden, n_actions, layer_norm)
        if per > MAX_STUDENT_PARAMS:
            raise ValueError(
                f"a student of widths {list(hidden)} has {per} parameters, more than "
                f"{MAX_STUDENT_PARAMS}; choose smaller hidden widths"
            )
        if n_students < 1:
            raise ValueError(f"n_students must be >= 1, got {n_students}")
        self.n_students = int(n_students)
        self.n_inputs = int(n_inputs)
        self.hidden = tuple(int(h) for h in hidden)
        self.n_actions = int(n_actions)
        self.layer_norm = bool(layer_norm)
        sizes = [self.n_inputs, *self.hidden, self.n_actions]
        self.n_layers = len(sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            # nn.Linear's default initialisation, drawn independently per student
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.empty(self.n_students, fan_in, fan_out).uniform_(
                -bound, bound, generator=generator
            )
            b = torch.empty(self.n_students, fan_out).uniform_(-bound, bound, generator=generator)
            self.register_parameter(f"weight{i}", nn.Parameter(w))
            self.register_parameter(f"bias{i}", nn.Parameter(b))
            if self.layer_norm and i < self.n_layers - 1:
                self.register_parameter(
                    f"norm{i}_weight", nn.Parameter(torch.ones(self.n_students, fan_out))
                )
                self.register_parameter(
                    f"norm{i}_bias", nn.Parameter(torch.zeros(self.n_students, fan_out))
                )

    @property
    def params_per_student(self) -> int:
        """Parameters of one student."""
        return sum(p.numel() for p in self.parameters()) // self.n_students

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (K, n_inputs) or (B, K, n_inputs) -> raw actions in [-1, 1], (K, 3) or (B, K, 3).

        Runs as one batched matmul per layer over the K students: (K, B, in) @ (K, in, out).
        """
        single = x.dim() == 2
        h = x.unsqueeze(1) if single else x.transpose(0, 1)  # (K, B, in)
        for i in range(self.n_layers):
            h = torch.baddbmm(
                getattr(self, f"bias{i}").unsqueeze(1), h, getattr(self, f"weight{i}")
            )
            if i < self.n_layers - 1:
                if self.layer_norm:
                    h = F.layer_norm(h, (h.shape[-1],))
                    h = torch.addcmul(
                        getattr(self, f"norm{i}_bias").unsqueeze(1),
                        h,
                        getattr(self, f"norm{i}_weight").unsqueeze(1),
                    )
                h = torch.relu(h)
        h = torch.tanh(h)
        return h.squeeze(1) if single else h.transpose(0, 1)

    def config(self) -> dict:
        """The constructor's sizes (without ``n_students``), JSON-ready."""
        return {
            "n_inputs": self.n_inputs,
            "hidden": list(self.hidden),
            "n_actions": self.n_actions,
            "layer_norm": self.layer_norm,
        }

    def subset(self, index: Sequence[int] | np.ndarray) -> StudentBank:
        """A new bank holding copies of the students at ``index`` (in that order)."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        out = StudentBank(len(idx), **self.config())
        with torch.no_grad():
            for name, p in self.named_parameters():
                getattr(out, name).copy_(p.index_select(0, idx))
        out.train(self.training)
        return out

    def student(self, k: int) -> nn.Sequential:
        """Student ``k`` as a standalone ``nn.Sequential`` (Linear/LayerNorm/ReLU/.../Tanh),
        with a copy of its weights: the plain per-service network."""
        sizes = [self.n_inputs, *self.hidden, self.n_actions]
        layers: list[nn.Module] = []
        with torch.no_grad():
            for i in range(self.n_layers):
                lin = nn.Linear(sizes[i], sizes[i + 1])
                lin.weight.copy_(getattr(self, f"weight{i}")[k].T)
                lin.bias.copy_(getattr(self, f"bias{i}")[k])
                layers.append(lin)
                if i < self.n_layers - 1:
                    if self.layer_norm:
                        norm = nn.LayerNorm(sizes[i + 1])
                        norm.weight.copy_(getattr(self, f"norm{i}_weight")[k])
                        norm.bias.copy_(getattr(self, f"norm{i}_bias")[k])
                        layers.append(norm)
                    layers.append(nn.ReLU())
        layers.append(nn.Tanh())
        return nn.Sequential(*layers).eval()


class NodeStudents:
    """The students of one node's services, decided together in one batched call.

    Holds a frozen float32 numpy copy of their stacked weights (as a node's agent would: no
    autograd, no torch dispatch per call) and evaluates exactly the bank's function, layer by
    layer, as one batched matmul (K, 1, in) @ (K, in, out).
    """

    def __init__(self, node: str, services: Sequence[str], bank: StudentBank):
        if bank.n_students != len(services):
            raise ValueError(f"{node}: {len(services)} services but {bank.n_students} students")
        self.node = node
        self.services = tuple(services)
        self.n_actions = bank.n_actions
        self.layer_norm = bank.layer_norm
        self.n_layers = bank.n_layers

        def arr(name: str, unsqueeze: bool) -> np.ndarray:
            t = getattr(bank, name).detach().cpu().to(torch.float32).numpy().copy()
            return t[:, None, :] if unsqueeze else t

        self.weights = [arr(f"weight{i}", False) for i in range(self.n_layers)]  # (K, in, out)
        self.biases = [arr(f"bias{i}", True) for i in range(self.n_layers)]  # (K, 1, out)
        hidden = range(self.n_layers - 1) if self.layer_norm else ()
        self.norm_weights = [arr(f"norm{i}_weight", True) for i in hidden]
        self.norm_biases = [arr(f"norm{i}_bias", True) for i in hidden]

    def __len__(self) -> int:
        return len(self.services)

    def __call__(self, local: np.ndarray) -> np.ndarray:
        """Local observations (K, N_LOCAL) of this node's services, in ``services`` order ->
        raw actions (K, 3) float32 in [-1, 1]."""
        return self.batch(np.asarray(local, dtype=np.float32)[None])[0]

    def batch(self, x: np.ndarray) -> np.ndarray:
        """The same on a batch of snapshots: (B, K, N_LOCAL) -> (B, K, 3); one batched
        matmul per layer, (K, B, in) @ (K, in, out)."""
        h = np.ascontiguousarray(np.asarray(x).transpose(1, 0, 2))  # (K, B, in)
        for i in range(self.n_layers):
            h = h @ self.weights[i] + self.biases[i]
            if i < self.n_layers - 1:
                if self.layer_norm:  # nn.LayerNorm: biased variance, eps 1e-5
                    h = h - h.mean(axis=-1, keepdims=True)
                    h = h / np.sqrt((h * h).mean(axis=-1, keepdims=True) + 1e-5)
                    h = h * self.norm_weights[i] + self.norm_biases[i]
                np.maximum(h, 0.0, out=h)
        return np.tanh(h).transpose(1, 0, 2)


class StudentSet:
    """All students of one app: the bank (one student per service, app order) and the node map.

    ``act`` decides node by node, as the deployed students would; ``bank`` is what trains.
    Call :meth:`refresh` after changing the bank's weights so the node groups copy them again.
    """

    def __init__(self, services: Sequence[str], node_map: NodeMap, bank: StudentBank):
        self.services = tuple(services)
        node_map.check(self.services, "StudentSet node map")
        if bank.n_students != len(self.services):
            raise ValueError(f"{len(self.services)} services but {bank.n_students} students")
        self.node_map = node_map
        self.bank = bank
        self._index = node_map.indices(self.services)
        self._nodes: dict[str, NodeStudents] | None = None
        self.meta: dict = {}
        """The checkpoint metadata when loaded by :func:`~drpc.imitation.checkpoint.load_students`."""

    @classmethod
    def create(
        cls,
        services: Sequence[str],
        node_map: NodeMap,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        layer_norm: bool = True,
        seed: int = 0,
    ) -> StudentSet:
        """Freshly initialised students for ``services``."""
        gen = torch.Generator().manual_seed(seed)
        bank = StudentBank(len(services), hidden=hidden, layer_norm=layer_norm, generator=gen)
        return cls(services, node_map, bank)

    @property
    def node_index(self) -> dict[str, np.ndarray]:
        """Per node, the indices (app order) of its services."""
        return self._index

    def nodes(self) -> dict[str, NodeStudents]:
        """The per-node student groups (copies of the bank's current weights)."""
        if self._nodes is None:
            self._nodes = {
                n: NodeStudents(n, [self.services[i] for i in idx], self.bank.subset(idx))
                for n, idx in self._index.items()
            }
        return self._nodes

    def refresh(self) -> None:
        """Forget the per-node copies (after training the bank)."""
        self._nodes = None

    def act(self, local: np.ndarray) -> np.ndarray:
        """Local observations (S, N_LOCAL) in app order -> raw actions (S, 3), node by node."""
        out = np.empty((len(self.services), self.bank.n_actions), dtype=np.float32)
        for node, group in self.nodes().items():
            idx = self._index[node]
            out[idx] = group(local[idx])
        return out
