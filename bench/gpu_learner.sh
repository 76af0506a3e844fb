#!/usr/bin/env bash
# TD3 on Pendulum-v1 with one GPU learner (num_learners=1, num_gpus_per_learner=1):
# a few training iterations, then the learner's throughput in samples/s.
#
#   bench/gpu_learner.sh                 # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python ITERATIONS=5 bench/gpu_learner.sh
#
# Needs a CUDA GPU and the project's dependencies (ray[rllib]==2.60.0, a CUDA build of
# torch, gymnasium). Prints one line per iteration and a JSON summary; exits non-zero
# if there is no GPU. Bounded by TIMEOUT_S (default 280 s).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
ITERATIONS="${ITERATIONS:-5}"
TIMEOUT_S="${TIMEOUT_S:-280}"
export RAY_AUTH_MODE=disabled  # throwaway local cluster: no token auth
export ITERATIONS

command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

timeout "${TIMEOUT_S}" "${PYTHON}" - <<'EOF'
import json
import os
import shutil
import sys
import time

import torch

if not torch.cuda.is_available():
    print(f"no CUDA GPU visible to torch {torch.__version__}", file=sys.stderr)
    sys.exit(2)

import ray

from drpc.algorithms import TD3Config

ray.init(include_dashboard=False, log_to_driver=False)
iterations = int(os.environ["ITERATIONS"])
config = (
    TD3Config()
    .environment("Pendulum-v1")
    .env_runners(num_env_runners=0, rollout_fragment_length=64)
    .learners(num_learners=1, num_gpus_per_learner=1)
    .training(num_steps_sampled_before_learning_starts=1000)
    .reporting(min_sample_timesteps_per_iteration=2000)
    .debugging(seed=0)
)
algo = config.build_algo()
rows = []
try:
    for i in range(iterations):
        start = time.perf_counter()
        result = algo.train()
        seconds = time.perf_counter() - start
        learner = result["learners"]["__all_modules__"]
        # Module steps = transitions through a gradient step. (RLlib's env-step count
        # counts the whole batch once per minibatch, K times too many here.)
        trained = float(learner.get("num_module_steps_trained", 0))
        ray_throughput = learner.get("num_module_steps_trained_lifetime_throughput", {})
        if isinstance(ray_throughput, dict):
            ray_throughput = ray_throughput.get("throughput_since_last_reduce")
        # Mean seconds per `learner_group.update` call (one call = one fragment's updates).
        update_s = result["timers"].get("learner_update_timer")
        per_call = config.get_rollout_fragment_length() * config.total_train_batch_size
        row = {
            "iteration": i + 1,
            "env_steps": int(result["num_env_steps_sampled_lifetime"]),
            "samples_trained": trained,
            "iteration_s": round(seconds, 2),
            "learner_samples_per_s": ray_throughput,
            "samples_per_wall_s": round(trained / seconds, 1),
            "learner_update_timer_s": update_s,
            "samples_per_update_call_s": round(per_call / update_s, 1) if update_s else None,
            "return_mean": result["env_runners"].get("episode_return_mean"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name(0)
finally:
    algo.stop()
    shutil.rmtree(algo.logdir, ignore_errors=True)
    ray.shutdown()

trained_rows = [r for r in rows if r["learner_samples_per_s"]]
summary = {
    "device": device,
    "iterations": iterations,
    "train_batch_size_per_learner": config.train_batch_size_per_learner,
    "updates_per_learner_call": config.get_rollout_fragment_length(),
    "learner_samples_per_s_last": trained_rows[-1]["learner_samples_per_s"] if trained_rows else None,
    "samples_per_wall_s_last": rows[-1]["samples_per_wall_s"],
    "samples_per_update_call_s_last": rows[-1]["samples_per_update_call_s"],
}
print(json.dumps(summary, indent=2))
EOF
