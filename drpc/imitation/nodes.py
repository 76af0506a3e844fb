"""Which cluster node's student group decides for which service: the :class:`NodeMap`.

DRPC runs one group of students per worker node; each group decides for the services
assigned to its node in one batched call. A Kubernetes Deployment may have pods on several
nodes, so the assignment is a choice, made once and stored in the student checkpoint:

* :meth:`NodeMap.round_robin` (the default, :meth:`NodeMap.for_scenario`): service ``i`` of the
  app (in the app's service order) goes to node ``node-{i mod n_nodes}``, with ``n_nodes`` the
  scenario's cluster size. Deterministic, independent of load and seeds, balanced (node sizes
  differ by at most one service).
* :meth:`NodeMap.from_placement`: each service goes to the node that holds most of its
  scheduled pods in a simulator (ties: the lower node index; a service without a scheduled
  pod falls back to round robin). Follows kube-scheduler's LeastAllocated placement of the
  moment it is taken.
* :meth:`NodeMap.from_file` / :meth:`NodeMap.from_dict`: any mapping, e.g. from a real cluster
  (``{"service": "node", ...}`` as JSON or YAML).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NodeMap", "NodeMapError", "node_name"]


class NodeMapError(ValueError):
    """A node map that does not fit the app (missing or unknown services) or cannot be read."""


def node_name(i: int) -> str:
    """The name of simulated node ``i`` (``node-0``, ``node-1``, ...)."""
    return f"node-{i}"


class NodeMap:
    """Service name -> node name, for every service of an app, in the app's service order."""

    def __init__(self, assignment: Mapping[str, str]):
        if not assignment:
            raise NodeMapError("a node map needs at least one service")
        bad = [k for k, v in assignment.items() if not isinstance(v, str) or not v]
        if bad:
            raise NodeMapError(f"node map: services {bad[:5]} have no node name (a string)")
        self.assignment: dict[str, str] = {str(k): v for k, v in assignment.items()}

    # ---------------------------------------------------------------- constructors

    @classmethod
    def round_robin(cls, services: Sequence[str], n_nodes: int) -> NodeMap:
        """Service ``i`` -> ``node-{i mod n_nodes}``."""
        if n_nodes < 1:
            raise NodeMapError(f"n_nodes must be >= 1, got {n_nodes}")
        return cls({s: node_name(i % n_nodes) for i, s in enumerate(services)})

    @classmethod
    def for_scenario(cls, scenario: Any, n_nodes: int | None = None) -> NodeMap:
        """The default map of a :class:`~drpc.scenario.Scenario`: round robin over its nodes
        (``n_nodes`` overrides the scenario's cluster size)."""
        return cls.round_robin(scenario.app.names, n_nodes or scenario.config.n_nodes)

    @classmethod
    def from_placement(cls, sim: Any) -> NodeMap:
        """Each service on the node holding most of its scheduled pods in ``sim`` (a
        :class:`~drpc.sim.cluster.ClusterSim` after ``reset()``)."""
        app, pods = sim.app, sim.pods
        n_nodes = sim.config.n_nodes
        from drpc.sim.types import Phase

        live = np.flatnonzero(
            (pods.node >= 0) & (pods.svc >= 0) & np.isin(pods.phase, (Phase.STARTING, Phase.READY))
        )
        counts = np.zeros((app.n_services, n_nodes), dtype=np.int64)
        np.add.at(counts, (pods.svc[live], pods.node[live]), 1)
        out = {}
        for i, s in enumerate(app.names):
            node = int(np.argmax(counts[i])) if counts[i].any() else i % n_nodes
            out[s] = node_name(node)
        return cls(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeMap:
        """From ``{"service": "node"}`` or ``{"nodes": {"node": ["service", ...]}}``."""
        if not isinstance(data, Mapping):
            raise NodeMapError(f"node map: expected a mapping, got {type(data).__name__}")
        if set(data) == {"nodes"} and isinstance(data["nodes"], Mapping):
            out: dict[str, str] = {}
            for node, services in data["nodes"].items():
                for s in services:
                    if s in out:
                        raise NodeMapError(f"node map: service {s!r} is on two nodes")
                    out[s] = str(node)
            return cls(out)
        return cls({str(k): v for k, v in data.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> NodeMap:
        """From a JSON or YAML file holding either form :meth:`from_dict` reads."""
        p = Path(path)
        try:
            text = p.read_text()
            if p.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise NodeMapError(f"{p}: unreadable node map ({err})") from None
        try:
            return cls.from_dict(data)
        except NodeMapError as err:
            raise NodeMapError(f"{p}: {err}") from None

    # ---------------------------------------------------------------- queries

    @property
    def services(self) -> list[str]:
        """Service names in map order."""
        return list(self.assignment)

    @property
    def nodes(self) -> list[str]:
        """Node names, sorted naturally (``node-2`` before ``node-10``)."""
        return sorted(set(self.assignment.values()), key=_natural)

    def services_on(self, node: str, order: Sequence[str] | None = None) -> list[str]:
        """The services on ``node``, in ``order`` (default: map order)."""
        return [s for s in (order or self.services) if self.assignment[s] == node]

    def indices(self, order: Sequence[str]) -> dict[str, np.ndarray]:
        """Per node, the indices into ``order`` (e.g. the app's service names) of its services."""
        self.check(order)
        node_of = [self.assignment[s] for s in order]
        return {n: np.array([i for i, m in enumerate(node_of) if m == n]) for n in self.nodes}

    def check(self, services: Sequence[str], where: str = "node map") -> None:
        """Raise :class:`NodeMapError` unless the map covers exactly ``services``."""
        missing = [s for s in services if s not in self.assignment]
        extra = [s for s in self.assignment if s not in set(services)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no node for {len(missing)} service(s) {missing[:5]}")
            if extra:
                parts.append(f"{len(extra)} unknown service(s) {extra[:5]}")
            raise NodeMapError(f"{where}: {'; '.join(parts)}")

    def to_dict(self) -> dict[str, str]:
        """``{"service": "node"}``, JSON-ready."""
        return dict(self.assignment)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeMap) and self.assignment == other.assignment

    def __len__(self) -> int:
        return len(self.assignment)

    def __repr__(self) -> str:
        sizes = {n: len(self.services_on(n)) for n in self.nodes}
        return f"NodeMap({len(self)} services on {len(sizes)} nodes: {sizes})"


def _natural(name: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
