"""bench/gpu_learner.sh: its shell parses, it refuses to run without a GPU, and its CPU dry
run (CPU_SMOKE=1, the same Python code path with the learner in the driver) trains the
teacher and prints per-iteration rows and a summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_learner.sh"


def run_script(timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable, "RAY_AUTH_MODE": "disabled", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_script_exits_2_without_cuda():
    proc = run_script(timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no CUDA GPU" in proc.stderr


@pytest.mark.slow
def test_cpu_smoke_trains_the_teacher():
    """About 30-60 s on 2 busy cores (its own Ray instance on 2 CPUs)."""
    proc = run_script(timeout=500, CPU_SMOKE="1", ITERATIONS="1", TIMEOUT_S="450")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"iteration"')]
    assert len(rows) == 1, out
    row = rows[0]
    assert row["env_steps"] == 64
    assert row["samples_trained"] > 0
    assert row["learner_update_timer_s"] > 0
    assert row["critic_loss"] is not None
    summary = json.loads(out[out.index("{\n") :])
    assert summary["cpu_smoke"] is True
    assert summary["services"] == 49
    assert summary["train_batch_size_per_learner"] == 64
    assert summary["updates_per_learner_call"] == 8
    assert summary["module"] == "PerServiceTD3Module"
    assert summary["learner_device"].startswith("cpu")
