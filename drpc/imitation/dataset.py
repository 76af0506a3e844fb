"""Imitation data: the teacher's actions on the local observations of the states visited.

One *sample* is one service at one control interval: its local observation (17 numbers, named
by :data:`~drpc.imitation.local.LOCAL_FEATURES`), the teacher's raw action for it (3 numbers in
[-1, 1]), and where it came from. In memory (:class:`ImitationDataset`) the samples of one
interval stay together, ``(T, S, ...)`` arrays, since every interval labels every service; on
disk they are one row per sample (long format), Parquet written with pyarrow:

=====================  ========  =====================================================
column                 type      meaning
=====================  ========  =====================================================
step                   int64     the labelled interval's index in the dataset
iteration              int32     distillation iteration that collected it (-1: online)
scenario               string    scenario the interval was simulated on
interval               int32     the interval's index within its episode
actor                  string    who acted in that interval: teacher or students
service                string    the service (Deployment)
node                   string    the node whose students decide for it
obs_<feature>          float32   the local observation, one column per local feature
action_<component>     float32   the teacher's raw action: replicas, cpu_limit, memory_limit
=====================  ========  =====================================================

The schema's metadata (key ``drpc_imitation``) records the local features and the action
components; :func:`read_parquet` refuses a file of another layout. The files read as well with
``ray.data.read_parquet(path)`` (a file or a folder of them), e.g. for training on a cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drpc.imitation.local import LOCAL_FEATURES, N_LOCAL
from drpc.teacher.checkpoint import ACTION_COMPONENTS

__all__ = [
    "ACTION_COLUMNS",
    "DatasetError",
    "ImitationDataset",
    "OBS_COLUMNS",
    "read_parquet",
    "read_ray",
]

OBS_COLUMNS = tuple(f"obs_{f}" for f in LOCAL_FEATURES)
"""Parquet columns of the local observation."""
ACTION_COLUMNS = tuple(f"action_{a}" for a in ACTION_COMPONENTS)
"""Parquet columns of the teacher's action."""
_META_KEY = b"drpc_imitation"


class DatasetError(ValueError):
    """An imitation data file of another layout, or one that cannot be read."""


@dataclass
class ImitationDataset:
    """Teacher-labelled local observations, grouped by interval (every service at each)."""

    services: tuple[str, ...]
    """Service names, the order of axis 1."""
    nodes: tuple[str, ...]
    """Each service's node (same order)."""
    obs: np.ndarray
    """(T, S, N_LOCAL) float32 local observations."""
    actions: np.ndarray
    """(T, S, 3) float32 teacher actions in [-1, 1]."""
    iteration: np.ndarray
    """(T,) int32 distillation iteration that collected the interval."""
    scenario: np.ndarray
    """(T,) str scenario name."""
    interval: np.ndarray
    """(T,) int32 interval index within its episode."""
    actor: np.ndarray
    """(T,) str who acted in the interval: 'teacher' or 'students'."""

    @classmethod
    def empty(cls, services: Sequence[str], nodes: Sequence[str]) -> ImitationDataset:
        """No samples yet."""
        s = len(services)
        return cls(
            tuple(services),
            tuple(nodes),
            np.zeros((0, s, N_LOCAL), np.float32),
            np.zeros((0, s, len(ACTION_COMPONENTS)), np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, dtype=object),
            np.zeros(0, np.int32),
            np.zeros(0, dtype=object),
        )

    def __len__(self) -> int:
        """Labelled samples (intervals x services)."""
        return int(self.obs.shape[0] * self.obs.shape[1])

    @property
    def n_intervals(self) -> int:
        """Labelled intervals."""
        return int(self.obs.shape[0])

    def concat(self, other: ImitationDataset) -> ImitationDataset:
        """This data followed by ``other`` (the DAgger aggregation); same services required."""
        if other.services != self.services:
            raise DatasetError("concat: the datasets are for different services")
        return ImitationDataset(
            self.services,
            self.nodes,
            np.concatenate([self.obs, other.obs]),
            np.concatenate([self.actions, other.actions]),
            np.concatenate([self.iteration, other.iteration]),
            np.concatenate([self.scenario, other.scenario]),
            np.concatenate([self.interval, other.interval]),
            np.concatenate([self.actor, other.actor]),
        )

    def to_arrow(self) -> pa.Table:
        """The long-format table (one row per service and interval; see module docstring)."""
        t, s = self.obs.shape[:2]
        step = np.repeat(np.arange(t, dtype=np.int64), s)
        cols: dict[str, pa.Array] = {
            "step": pa.array(step),
            "iteration": pa.array(np.repeat(self.iteration.astype(np.int32), s)),
            "scenario": pa.array(np.repeat(self.scenario, s).astype(str), pa.string()),
            "interval": pa.array(np.repeat(self.interval.astype(np.int32), s)),
            "actor": pa.array(np.repeat(self.actor, s).astype(str), pa.string()),
            "service": pa.array(np.tile(np.asarray(self.services, dtype=str), t), pa.string()),
            "node": pa.array(np.tile(np.asarray(self.nodes, dtype=str), t), pa.string()),
        }
        flat_obs = self.obs.reshape(t * s, N_LOCAL)
        for j, name in enumerate(OBS_COLUMNS):
            cols[name] = pa.array(flat_obs[:, j].astype(np.float32))
        flat_act = self.actions.reshape(t * s, len(ACTION_COMPONENTS))
        for j, name in enumerate(ACTION_COLUMNS):
            cols[name] = pa.array(flat_act[:, j].astype(np.float32))
        table = pa.table(cols)
        meta = {
            "local_features": list(LOCAL_FEATURES),
            "action_components": list(ACTION_COMPONENTS),
            "services": list(self.services),
        }
        return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})

    def write_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the long-format table to ``path`` (a ``.parquet`` file; parents created)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        pq.write_table(self.to_arrow(), tmp)
        os.replace(tmp, p)
        return p

    @classmethod
    def from_arrow(cls, table: pa.Table, source: str = "<table>") -> ImitationDataset:
        """Back from the long format; every step must hold every service once."""
        missing = [
            c
            for c in ("step", "iteration", "scenario", "interval", "actor", "service", "node")
            + OBS_COLUMNS
            + ACTION_COLUMNS
            if c not in table.column_names
        ]
        if missing:
            raise DatasetError(
                f"{source}: not imitation data of this layout: missing column(s) {missing[:5]}"
            )
        if table.num_rows == 0:
            raise DatasetError(f"{source}: no samples")
        step = table["step"].to_numpy()
        service = np.asarray(table["service"].to_pylist(), dtype=object)
        node = np.asarray(table["node"].to_pylist(), dtype=object)
        order = np.lexsort((np.arange(step.size), step))  # by step, keeping service order
        step, service, node = step[order], service[order], node[order]
        _, first, counts = np.unique(step, return_index=True, return_counts=True)
        s = int(counts[0])
        if not (counts == s).all():
            raise DatasetError(f"{source}: steps hold different numbers of services")
        t = first.size
        services = tuple(service[:s])
        if not (service.reshape(t, s) == np.asarray(services, dtype=object)).all():
            raise DatasetError(f"{source}: steps list the services in different orders")

        def col(name: str) -> np.ndarray:
            return table[name].to_numpy(zero_copy_only=False)[order]

        obs = np.stack([col(c) for c in OBS_COLUMNS], axis=1).astype(np.float32)
        act = np.stack([col(c) for c in ACTION_COLUMNS], axis=1).astype(np.float32)
        return cls(
            services,
            tuple(node[:s]),
            obs.reshape(t, s, N_LOCAL),
            act.reshape(t, s, len(ACTION_COMPONENTS)),
            col("iteration")[first].astype(np.int32),
            np.asarray(col("scenario")[first], dtype=object),
            col("interval")[first].astype(np.int32),
            np.asarray(col("actor")[first], dtype=object),
        )


def _check_layout(schema: pa.Schema, source: str) -> None:
    raw = (schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise DatasetError(f"{source}: no {_META_KEY.decode()} metadata: not DRPC imitation data")
    meta = json.loads(raw)
    for key, ours in (("local_features", LOCAL_FEATURES), ("action_components", ACTION_COMPONENTS)):
        theirs = tuple(meta.get(key, ()))
        if theirs != ours:
            raise DatasetError(
                f"{source}: {key} differ: the file has {list(theirs)}, this DRPC uses {list(ours)}"
            )


def read_parquet(path: str | os.PathLike[str]) -> ImitationDataset:
    """An :class:`ImitationDataset` from a Parquet file, or a folder of them (concatenated in
    file-name order, steps renumbered)."""
    p = Path(path)
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise DatasetError(f"{p}: no .parquet files")
    out: ImitationDataset | None = None
    for f in files:
        try:
            table = pq.read_table(f)
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"{f}: unreadable Parquet ({err})") from None
        _check_layout(table.schema, str(f))
        part = ImitationDataset.from_arrow(table, str(f))
        out = part if out is None else out.concat(part)
    assert out is not None
    return out


def read_ray(path: str | os.PathLike[str] | Sequence[str], **kwargs: Any):
    """The same files as a ``ray.data.Dataset`` (rows as in the module docstring; needs Ray).
    ``kwargs`` go to ``ray.data.read_parquet`` (e.g. ``override_num_blocks``)."""
    import ray.data

    paths = [str(p) for p in path] if isinstance(path, list | tuple) else str(path)
    return ray.data.read_parquet(paths, **kwargs)
