"""The ``TD3`` Algorithm: sample, store, update, sync (CleanRL's loop, on Ray's runners).

One :meth:`TD3.training_step`:

1. Sample ``rollout_fragment_length`` env steps per env runner with
   ``forward_exploration`` (uniform random actions while fewer than
   ``num_steps_sampled_before_learning_starts`` env steps were sampled, then
   ``pi(s)`` plus Gaussian noise) and add them to the replay buffer.
2. Once past ``num_steps_sampled_before_learning_starts``: run
   ``updates_per_env_step`` TD3 updates per new env step
   (:class:`~drpc.algorithms.td3.TD3TorchLearner`), each on a fresh batch of
   ``train_batch_size_per_learner`` transitions per learner drawn uniformly.
3. Send the new actor weights to the env runners.

``train()`` repeats ``training_step`` until ``min_sample_timesteps_per_iteration`` env
steps were sampled. With one of RLlib's episode buffers in ``replay_buffer_config`` the
loop is RLlib's DQN/SAC ``training_step`` instead (same three steps, slower batches).
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.dqn.dqn import DQN
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import DEFAULT_MODULE_ID
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_RESULTS,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from drpc.algorithms.td3.config import TD3Config
from drpc.algorithms.td3.replay_buffer import TRANSITION_BUFFER, TransitionReplayBuffer

__all__ = ["TD3"]


class TD3(DQN):
    """Twin Delayed DDPG (Fujimoto et al. 2018) on RLlib's new API stack."""

    config: TD3Config
    local_replay_buffer: Any

    @classmethod
    def get_default_config(cls) -> TD3Config:
        return TD3Config()

    @classmethod
    def get_default_policy_class(cls, config: TD3Config) -> None:
        # Old API stack (Policy classes) is not supported.
        return None

    def _create_local_replay_buffer_if_necessary(self, config: TD3Config) -> Any:
        buffer_config = config["replay_buffer_config"]
        if buffer_config["type"] == TRANSITION_BUFFER:
            return TransitionReplayBuffer(
                capacity=buffer_config["capacity"],
                seed=config.seed,
                component_rewards_key=config.component_rewards_key,
            )
        return super()._create_local_replay_buffer_if_necessary(config)

    def setup(self, config: TD3Config) -> None:
        super().setup(config)
        self._pending_updates = 0.0  # fractional updates carried to the next step

    def training_step(self) -> None:
        if not isinstance(self.local_replay_buffer, TransitionReplayBuffer):
            return super().training_step()  # RLlib's episode-buffer loop
        buffer: TransitionReplayBuffer = self.local_replay_buffer
        config = self.config

        # 1. Collect env steps (random actions before learning starts) and store them.
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = synchronous_parallel_sample(
                worker_set=self.env_runner_group,
                concat=True,
                sample_timeout_s=config.sample_timeout_s,
                _uses_new_env_runners=True,
                _return_metrics=True,
            )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            new_steps = buffer.add_episodes(episodes)
        self.metrics.log_dict(buffer.get_metrics(), key=REPLAY_BUFFER_RESULTS, window=1)

        env_steps = self.metrics.peek(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
        )
        if env_steps < config.num_steps_sampled_before_learning_starts:
            return

        # 2. `updates_per_env_step` TD3 updates per new env step, fresh batch each.
        self._pending_updates += new_steps * config.updates_per_env_step
        num_updates = int(self._pending_updates)
        if num_updates == 0:
            return
        self._pending_updates -= num_updates
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
            batch = buffer.sample(num_updates * config.total_train_batch_size)
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                batch=MultiAgentBatch(
                    {DEFAULT_MODULE_ID: SampleBatch(batch)}, env_steps=len(batch[Columns.REWARDS])
                ),
                # One gradient step per minibatch of train_batch_size_per_learner.
                minibatch_size=config.train_batch_size_per_learner,
                num_epochs=1,
                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: env_steps},
            )
        self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        # 3. Ship the new actor weights to the env runners.
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0].keys()) - {ALL_MODULES},
                inference_only=True,
            )
