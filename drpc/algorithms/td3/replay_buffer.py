"""A uniform replay buffer of single-agent transitions in preallocated numpy arrays.

RLlib's ``EpisodeReplayBuffer`` returns one episode object per sampled transition and
builds the train batch through the learner connector pipeline: about 0.2 ms per transition
in Python, i.e. tens of ms per batch of 256, several times a TD3 update. This buffer keeps
``(s, a, r, s', terminated)`` rows in ring-buffer arrays (as CleanRL's ``ReplayBuffer``)
and samples a batch with one fancy-indexing call per column.

It stores the observations as the episodes hold them (the env's observations). Configs
whose env-to-module or learner connectors change observations, multi-agent configs, and
``n_step > 1`` use one of RLlib's episode buffers instead (see ``TD3Config``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tree
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.spaces.space_utils import batch as stack_items

__all__ = ["COMPONENT_REWARDS", "TRANSITION_BUFFER", "TransitionReplayBuffer"]

COMPONENT_REWARDS = "component_rewards"
"""Batch column of per-component rewards (B, K), read from the env's infos (see
``TD3Config.component_rewards_key``)."""

TRANSITION_BUFFER = "TransitionReplayBuffer"
"""The ``replay_buffer_config["type"]`` that selects this buffer."""


class TransitionReplayBuffer:
    """Ring buffer of ``capacity`` transitions; the oldest is overwritten when full."""

    def __init__(
        self, capacity: int, seed: int | None = None, component_rewards_key: str | None = None
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1: {capacity}")
        self.capacity = int(capacity)
        """Maximum number of transitions (env steps) held."""
        self._rng = np.random.default_rng(seed)
        self._storage: dict[str, Any] | None = None  # column -> (nested) arrays
        self._next = 0  # slot the next transition goes to
        self._size = 0
        self._num_added = 0
        self.component_rewards_key = component_rewards_key
        """Info key whose per-step array is stored as the ``component_rewards`` column."""

    def __len__(self) -> int:
        return self._size

    @property
    def num_added(self) -> int:
        """Transitions added over the buffer's lifetime (including overwritten ones)."""
        return self._num_added

    # -- adding -------------------------------------------------------------------------

    def add_episodes(self, episodes: Sequence[SingleAgentEpisode]) -> int:
        """Add every step of these episode chunks; returns the number of transitions.

        A chunk of ``T`` steps has ``T + 1`` observations; step ``i`` is
        ``(o[i], a[i], r[i], o[i+1])``, and only the chunk's last step can be terminal.
        Truncated (time-limit) steps are not terminal: their target bootstraps.
        """
        added = 0
        for episode in episodes:
            if not isinstance(episode, SingleAgentEpisode):
                raise TypeError(
                    f"{TRANSITION_BUFFER} takes single-agent episodes, got "
                    f"{type(episode).__name__}; use replay_buffer_config="
                    "{'type': 'MultiAgentEpisodeReplayBuffer'} for multi-agent."
                )
            steps = len(episode)
            if steps == 0:
                continue
            observations = _as_arrays(episode.get_observations())
            terminateds = np.zeros(steps, dtype=bool)
            terminateds[-1] = episode.is_terminated
            extras = {}
            if self.component_rewards_key is not None:
                extras[COMPONENT_REWARDS] = self._component_rewards(episode, steps)
            self.add(
                obs=tree.map_structure(lambda o: o[:-1], observations),
                actions=_as_arrays(episode.get_actions()),
                rewards=np.asarray(episode.get_rewards(), dtype=np.float32),
                next_obs=tree.map_structure(lambda o: o[1:], observations),
                terminateds=terminateds,
                **extras,
            )
            added += steps
        return added

    def _component_rewards(self, episode: SingleAgentEpisode, steps: int) -> np.ndarray:
        infos = episode.get_infos()  # one per observation: infos[i + 1] follows step i
        key = self.component_rewards_key
        try:
            rows = [np.asarray(infos[i + 1][key], dtype=np.float32) for i in range(steps)]
        except (KeyError, TypeError, IndexError):
            raise KeyError(
                f"component_rewards_key={key!r}: the env's step infos must all carry it"
            ) from None
        return np.stack(rows)

    def add(
        self,
        *,
        obs: Any,
        actions: Any,
        rewards: np.ndarray,
        next_obs: Any,
        terminateds: np.ndarray,
        **extras: np.ndarray,
    ) -> None:
        """Add a batch of transitions (leading axis = transition), overwriting the oldest.

        ``extras`` are further columns (e.g. ``component_rewards``); every call must give
        the same ones."""
        rows = {
            Columns.OBS: obs,
            Columns.ACTIONS: actions,
            Columns.REWARDS: np.asarray(rewards, dtype=np.float32),
            Columns.NEXT_OBS: next_obs,
            Columns.TERMINATEDS: np.asarray(terminateds, dtype=bool),
            **extras,
        }
        n = len(rows[Columns.REWARDS])
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` rows survive anyway
            rows = tree.map_structure(lambda a: a[-self.capacity :], rows)
            n = self.capacity
        if self._storage is None:
            self._storage = tree.map_structure(
                lambda a: np.zeros((self.capacity, *np.shape(a)[1:]), dtype=np.asarray(a).dtype),
                rows,
            )
        slots = (self._next + np.arange(n)) % self.capacity

        def write(store: np.ndarray, values: Any) -> None:
            store[slots] = values

        tree.map_structure(write, self._storage, rows)
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)
        self._num_added += n

    # -- sampling -----------------------------------------------------------------------

    def sample(self, batch_size: int) -> dict[str, Any]:
        """``batch_size`` transitions drawn uniformly with replacement, as numpy columns
        ``obs, actions, rewards, new_obs, terminateds`` (RLlib's ``Columns`` names)."""
        if self._size == 0 or self._storage is None:
            raise ValueError("Cannot sample from an empty replay buffer.")
        index = self._rng.integers(0, self._size, size=batch_size)
        return tree.map_structure(lambda store: store[index], self._storage)

    # -- checkpointing ------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The filled part of the buffer and its write position (for checkpoints)."""
        storage = (
            None
            if self._storage is None
            else tree.map_structure(lambda a: a[: self._size].copy(), self._storage)
        )
        return {
            "capacity": self.capacity,
            "next": self._next,
            "size": self._size,
            "num_added": self._num_added,
            "storage": storage,
            "rng": self._rng.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s output (into a buffer of the same capacity)."""
        if state["capacity"] != self.capacity:
            raise ValueError(f"capacity {state['capacity']} != {self.capacity}")
        self._storage = None
        self._size = self._next = 0
        if state["storage"] is not None:
            size = state["size"]
            self._storage = tree.map_structure(
                lambda a: np.zeros((self.capacity, *a.shape[1:]), dtype=a.dtype),
                state["storage"],
            )

            def write(store: np.ndarray, values: np.ndarray) -> None:
                store[:size] = values

            tree.map_structure(write, self._storage, state["storage"])
            self._size = size
            self._next = state["next"]
        self._num_added = state["num_added"]
        self._rng.bit_generator.state = state["rng"]

    def get_metrics(self) -> dict[str, Any]:
        """Size and lifetime additions, for the algorithm's metrics."""
        return {"num_transitions": self._size, "num_transitions_added": self._num_added}


def _as_arrays(items: Any) -> Any:
    """A list of (nested) per-step items, or already-batched arrays, as batched arrays."""
    if isinstance(items, list):
        items = stack_items(items)
    return tree.map_structure(np.asarray, items)
