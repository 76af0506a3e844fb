"""Shared fixtures: one local Ray instance for every test that needs Ray.

Ray costs 5-13 s to start on 2 cores, so it starts once per session: 2 CPUs, no dashboard,
token auth off on purpose (a throwaway cluster on loopback, nothing else can reach it).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before Ray starts; see docstring

import pytest


def start_session_ray() -> None:
    """Start the session's Ray instance (also used by the tests that replace it for a while
    with a multi-node cluster and then give it back)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Tune's trainable registry lives in the cluster: a restarted Ray needs "TD3" again.
    from drpc.algorithms import register

    register()


@pytest.fixture(scope="session")
def ray_session():
    import ray
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the local learner's small nets: 1 thread is fastest here
    started = not ray.is_initialized()
    if started:
        start_session_ray()
    yield ray
    if started:
        ray.shutdown()
    torch.set_num_threads(threads)
