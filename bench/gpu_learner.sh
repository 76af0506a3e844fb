#!/usr/bin/env bash
# The DRPC teacher (TD3 with the per-service teacher module) on drpc/Cluster-v0 with one GPU
# learner (num_learners=1, num_gpus_per_learner=1): a few training iterations, then the
# learner's throughput in samples/s. The algorithm comes from drpc.train.build_algorithm_config,
# so it is what `drpc train` trains (from a random actor: no demonstrator warm start, and no
# checkpoint or evaluation afterwards).
#
#   bench/gpu_learner.sh                 # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python ITERATIONS=3 BATCH_SIZE=2048 bench/gpu_learner.sh
#   CPU_SMOKE=1 bench/gpu_learner.sh     # a CPU dry run of the same code path, for CI
#                                        # machines without a GPU
#
# Settings (environment variables):
#   ITERATIONS  algo.train() calls (default 5; 1 with CPU_SMOKE=1)
#   BATCH_SIZE  transitions per gradient step (default 1024; 64 with CPU_SMOKE=1)
#   TIMEOUT_S   wall-clock bound on the Python part, in seconds (default 280)
#   PYTHON      interpreter with the project installed
#   CPU_SMOKE   1: a CPU dry run of the same code path, for CI machines without a GPU: no CUDA
#               check, the learner in the driver (num_learners=0, num_gpus_per_learner=0),
#               Ray on 2 CPUs, 64 env steps per iteration, updates from env step 32.
#
# Needs a CUDA GPU (unless CPU_SMOKE=1) and the project's dependencies (ray[rllib]==2.60.0, a
# CUDA build of torch, gymnasium). Prints one JSON line per iteration and a JSON summary;
# exits 2 if torch sees no CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
CPU_SMOKE="${CPU_SMOKE:-0}"
if [[ "${CPU_SMOKE}" == 1 ]]; then
  ITERATIONS="${ITERATIONS:-1}"
  BATCH_SIZE="${BATCH_SIZE:-64}"
else
  ITERATIONS="${ITERATIONS:-5}"
  BATCH_SIZE="${BATCH_SIZE:-1024}"
fi
TIMEOUT_S="${TIMEOUT_S:-280}"
export RAY_AUTH_MODE=disabled  # throwaway local cluster: no token auth
export ITERATIONS BATCH_SIZE CPU_SMOKE

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi

timeout "${TIMEOUT_S}" "${PYTHON}" - <<'EOF'
import json
import os
import shutil
import sys
import time

import torch

smoke = os.environ["CPU_SMOKE"] == "1"
if not smoke and not torch.cuda.is_available():
    print(
        f"no CUDA GPU visible to torch {torch.__version__} (CPU_SMOKE=1 for a CPU dry run)",
        file=sys.stderr,
    )
    sys.exit(2)

import ray

from drpc.train import TrainConfig, build_algorithm_config

iterations = int(os.environ["ITERATIONS"])
batch_size = int(os.environ["BATCH_SIZE"])
out = f"/tmp/drpc-gpu-learner-{os.getpid()}"  # unused by the builder; TrainConfig needs one
cfg = TrainConfig(
    num_learners=0 if smoke else 1,
    num_gpus_per_learner=0 if smoke else 1,
    iterations=iterations,
    time_budget_s=None,
    steps_per_iteration=64 if smoke else 512,
    batch_size=batch_size,
    hidden=(64, 64),
    episode_intervals=120,
    # Updates start within the first iteration.
    learning_starts=32 if smoke else 256,
    updates_per_env_step=1.0,
    out=out,
    demonstrator=None,
    progress=False,
)
torch.set_num_threads(1)  # as `drpc train`: the driver samples; one thread is fastest
ray.init(num_cpus=2 if smoke else None, include_dashboard=False, log_to_driver=False)
config = build_algorithm_config(cfg)
algo = config.build_algo()
# One learner-side gradient call (learner_group.update) runs this many TD3 updates.
updates_per_call = int(config.get_rollout_fragment_length() * config.updates_per_env_step)
per_call = updates_per_call * config.total_train_batch_size


def learner_info(learner):
    from ray.rllib.core.rl_module.rl_module import DEFAULT_MODULE_ID

    module = learner.module[DEFAULT_MODULE_ID].unwrapped()
    device = next(module.parameters()).device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": f"{device} ({name})", "services": int(module.observation_space.shape[0])}


rows = []
try:
    (call,) = algo.learner_group.foreach_learner(learner_info)  # the one learner
    if not call.ok:
        raise call.get()
    info = call.get()
    for i in range(iterations):
        start = time.perf_counter()
        result = algo.train()
        seconds = time.perf_counter() - start
        learners = result.get("learners", {})
        learner = learners.get("__all_modules__", {})
        # Module steps = transitions through a gradient step. (RLlib's env-step count
        # counts the whole batch once per minibatch, K times too many here.)
        trained = float(learner.get("num_module_steps_trained", 0))
        ray_throughput = learner.get("num_module_steps_trained_lifetime_throughput", {})
        if isinstance(ray_throughput, dict):
            ray_throughput = ray_throughput.get("throughput_since_last_reduce")
        # Mean seconds per `learner_group.update` call (one call = one fragment's updates).
        update_s = result["timers"].get("learner_update_timer")
        critic_loss = learners.get("default_policy", {}).get("critic_loss")
        row = {
            "iteration": i + 1,
            "env_steps": int(result["num_env_steps_sampled_lifetime"]),
            "iteration_s": round(seconds, 2),
            "samples_trained": trained,
            "learner_samples_per_s": ray_throughput,
            "samples_per_wall_s": round(trained / seconds, 1),
            "learner_update_timer_s": update_s,
            "samples_per_update_call_s": round(per_call / update_s, 1) if update_s else None,
            "critic_loss": None if critic_loss is None else float(critic_loss),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
finally:
    algo.stop()
    shutil.rmtree(algo.logdir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    ray.shutdown()

trained_rows = [r for r in rows if r["learner_samples_per_s"]]
summary = {
    "device": device,
    "learner_device": info["device"],
    "cpu_smoke": smoke,
    "iterations": iterations,
    "env": "drpc/Cluster-v0",
    "scenarios": list(cfg.scenarios),
    "module": "PerServiceTD3Module",
    "hidden": list(cfg.hidden),
    "services": info["services"],
    "train_batch_size_per_learner": config.train_batch_size_per_learner,
    "updates_per_learner_call": updates_per_call,
    "env_steps_last": rows[-1]["env_steps"],
    "learner_samples_per_s_last": trained_rows[-1]["learner_samples_per_s"] if trained_rows else None,
    "samples_per_wall_s_last": rows[-1]["samples_per_wall_s"],
    "samples_per_update_call_s_last": rows[-1]["samples_per_update_call_s"],
    "critic_loss_last": rows[-1]["critic_loss"],
}
print(json.dumps(summary, indent=2))
EOF
