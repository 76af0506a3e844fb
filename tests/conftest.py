"""Shared fixtures: one local Ray instance for every test that needs Ray.

Ray costs 5-13 s to start on 2 cores, so it starts once per session: 2 CPUs, no dashboard,
token auth off on purpose (a throwaway cluster on loopback, nothing else can reach it).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # before Ray starts; see docstring

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the local learner's small nets: 1 thread is fastest here
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
    torch.set_num_threads(threads)
