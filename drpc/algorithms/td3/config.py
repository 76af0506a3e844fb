"""``TD3Config``: every TD3 hyperparameter, with its default and one line on what it does.

Defaults are those of the DRPC paper's teacher (which match CleanRL's
``td3_continuous_action.py`` except for the network and ``learning_starts``)::

    config = (
        TD3Config()
        .environment("Pendulum-v1")
        .training(actor_lr=3e-4, policy_frequency=2)
        .rl_module(model_config={"actor_hiddens": [256, 256], "layer_norm": False})
        .learners(num_learners=1, num_gpus_per_learner=1)  # optional: a GPU learner
    )
    algo = config.build_algo()

Replay buffers (``replay_buffer_config["type"]``): the default ``"TransitionReplayBuffer"``
keeps transitions in numpy arrays and builds a batch in microseconds; it is single-agent
and stores the env's observations as the episodes hold them. RLlib's
``"EpisodeReplayBuffer"`` / ``"MultiAgentEpisodeReplayBuffer"`` run RLlib's DQN loop
instead: train batches go through the learner connector pipeline (custom connectors,
multi-agent, ``n_step``), at ~0.2 ms per sampled transition (~50 ms per batch of 256).
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import (
    AddObservationsFromEpisodesToBatch,
)
from ray.rllib.connectors.learner.add_next_observations_from_episodes_to_train_batch import (
    AddNextObservationsFromEpisodesToTrainBatch,
)
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.typing import LearningRateOrSchedule
from typing_extensions import Self

from drpc.algorithms.td3.replay_buffer import TRANSITION_BUFFER

__all__ = ["TD3Config"]

# RLlib's uniform episode buffers (TD3 samples uniformly; no prioritized replay).
_EPISODE_BUFFERS = ("EpisodeReplayBuffer", "MultiAgentEpisodeReplayBuffer")


class TD3Config(AlgorithmConfig):
    """Configuration of :class:`~drpc.algorithms.td3.TD3` (set via ``.training(...)``).

    Besides the TD3 fields below, the usual RLlib settings apply: ``gamma`` (0.99),
    ``train_batch_size_per_learner`` (256, the minibatch of one gradient step),
    ``grad_clip`` (None), ``.rl_module(model_config=...)`` for the networks (see
    :class:`~drpc.algorithms.td3.TD3ModelConfig`), ``.learners(num_learners=...,
    num_gpus_per_learner=...)`` and ``.env_runners(...)``.
    """

    def __init__(self, algo_class: type | None = None):
        from drpc.algorithms.td3.algorithm import TD3

        super().__init__(algo_class=algo_class or TD3)

        self.actor_lr: LearningRateOrSchedule = 3e-4
        """Adam learning rate of the actor (float, or an RLlib ``[[t, lr], ...]`` schedule)."""
        self.critic_lr: LearningRateOrSchedule = 3e-4
        """Adam learning rate of the twin critics (float or schedule)."""
        self.tau: float = 0.005
        """Polyak factor of the soft target update: target <- tau*online + (1-tau)*target."""
        self.policy_noise: float = 0.2
        """Std of the target-policy smoothing noise, as a fraction of the action half-range."""
        self.noise_clip: float = 0.5
        """Clip of the target-policy smoothing noise, as a fraction of the action half-range."""
        self.policy_frequency: int = 2
        """Critic updates per actor (and target) update: the delayed policy update."""
        self.exploration_noise: float = 0.1
        """Std of the Gaussian exploration noise, as a fraction of the action half-range."""
        self.num_steps_sampled_before_learning_starts: int = 1000
        """Env steps of uniform random actions, without updates, before learning starts
        (CleanRL's ``learning_starts``)."""
        self.random_warmup: bool = True
        """Uniform random actions before learning starts (False: the actor plus exploration
        noise from the first step, e.g. for an actor warm-started from demonstrations)."""
        self.actor_update_starts: int = 0
        """Critic updates before the first actor update (lets the critics learn the value of
        a warm-started actor before its gradient moves it)."""
        self.actor_anchor_weight: float = 0.0
        """Trust region for the actor (0: plain TD3): its loss becomes
        ``-Q1(s, mu(s)) / mean|Q1| + w * mean((mu(s) - mu'(s))^2)`` in action half-ranges, a
        pull toward the slowly moving target actor mu', so no update jumps far from it."""
        self.component_rewards_key: str | None = None
        """Info key of per-component rewards (K,) that sum to the reward. With a module
        that has ``q_components`` (e.g. DRPC's per-service teacher), each critic component
        regresses on its own reward: per-service credit assignment. TransitionReplayBuffer only."""
        self.updates_per_env_step: float = 1.0
        """Gradient steps, each on a fresh uniform batch, per env step sampled (CleanRL: 1)."""
        self.replay_buffer_config: dict[str, Any] = {
            "type": TRANSITION_BUFFER,
            "capacity": 1_000_000,
        }
        """Uniform replay: type and capacity in env steps (paper: 1e6); see module docstring."""
        self.n_step: int = 1
        """Steps of the bootstrapped return; > 1 needs one of RLlib's episode buffers."""
        self.store_buffer_in_checkpoints: bool = False
        """Save the replay buffer in checkpoints (large)."""

        # Base-class settings with TD3 defaults.
        self.gamma = 0.99
        self.lr = None  # unused: actor_lr and critic_lr
        self.train_batch_size_per_learner = 256
        self.rollout_fragment_length = "auto"  # = n_step
        self.min_sample_timesteps_per_iteration = 1000
        self.min_time_s_per_iteration = None

    def training(
        self,
        *,
        actor_lr: LearningRateOrSchedule | None = NotProvided,
        critic_lr: LearningRateOrSchedule | None = NotProvided,
        tau: float | None = NotProvided,
        policy_noise: float | None = NotProvided,
        noise_clip: float | None = NotProvided,
        policy_frequency: int | None = NotProvided,
        exploration_noise: float | None = NotProvided,
        num_steps_sampled_before_learning_starts: int | None = NotProvided,
        random_warmup: bool | None = NotProvided,
        actor_update_starts: int | None = NotProvided,
        actor_anchor_weight: float | None = NotProvided,
        component_rewards_key: str | None = NotProvided,
        updates_per_env_step: float | None = NotProvided,
        replay_buffer_config: dict[str, Any] | None = NotProvided,
        n_step: int | None = NotProvided,
        store_buffer_in_checkpoints: bool | None = NotProvided,
        **kwargs: Any,
    ) -> Self:
        """Set TD3 hyperparameters (see the attribute docs in ``__init__``); other keyword
        arguments go to ``AlgorithmConfig.training`` (``gamma``, ``grad_clip``,
        ``train_batch_size_per_learner``, ...)."""
        super().training(**kwargs)
        if actor_lr is not NotProvided:
            self.actor_lr = actor_lr
        if critic_lr is not NotProvided:
            self.critic_lr = critic_lr
        if tau is not NotProvided:
            self.tau = tau
        if policy_noise is not NotProvided:
            self.policy_noise = policy_noise
        if noise_clip is not NotProvided:
            self.noise_clip = noise_clip
        if policy_frequency is not NotProvided:
            self.policy_frequency = policy_frequency
        if exploration_noise is not NotProvided:
            self.exploration_noise = exploration_noise
        if num_steps_sampled_before_learning_starts is not NotProvided:
            self.num_steps_sampled_before_learning_starts = num_steps_sampled_before_learning_starts
        if random_warmup is not NotProvided:
            self.random_warmup = random_warmup
        if actor_update_starts is not NotProvided:
            self.actor_update_starts = actor_update_starts
        if actor_anchor_weight is not NotProvided:
            self.actor_anchor_weight = actor_anchor_weight
        if component_rewards_key is not NotProvided:
            self.component_rewards_key = component_rewards_key
        if updates_per_env_step is not NotProvided:
            self.updates_per_env_step = updates_per_env_step
        if replay_buffer_config is not NotProvided:
            self.replay_buffer_config = {**self.replay_buffer_config, **replay_buffer_config}
        if n_step is not NotProvided:
            self.n_step = n_step
        if store_buffer_in_checkpoints is not NotProvided:
            self.store_buffer_in_checkpoints = store_buffer_in_checkpoints
        return self

    def validate(self) -> None:
        super().validate()
        if not self.enable_rl_module_and_learner or not self.enable_env_runner_and_connector_v2:
            self._value_error("TD3 runs on RLlib's new API stack only.")
        if self.framework_str != "torch":
            self._value_error("TD3 is implemented for framework='torch' only.")
        if self.lr is not None:
            self._value_error("TD3 uses `actor_lr` and `critic_lr`; leave `lr` at None.")
        if not isinstance(self.policy_frequency, int) or self.policy_frequency < 1:
            self._value_error(f"`policy_frequency` must be an int >= 1: {self.policy_frequency}")
        if not 0.0 < self.tau <= 1.0:
            self._value_error(f"`tau` must be in (0, 1]: {self.tau}")
        for name in ("policy_noise", "noise_clip", "exploration_noise", "actor_anchor_weight"):
            if getattr(self, name) < 0:
                self._value_error(f"`{name}` must be >= 0: {getattr(self, name)}")
        if not isinstance(self.actor_update_starts, int) or self.actor_update_starts < 0:
            self._value_error(
                f"`actor_update_starts` must be an int >= 0: {self.actor_update_starts}"
            )
        if self.updates_per_env_step <= 0:
            self._value_error(f"`updates_per_env_step` must be > 0: {self.updates_per_env_step}")
        if not isinstance(self.n_step, int) or self.n_step < 1:
            self._value_error(f"`n_step` must be an int >= 1: {self.n_step}")
        if (
            not self.in_evaluation
            and self.rollout_fragment_length != "auto"
            and self.rollout_fragment_length < self.n_step
        ):
            self._value_error(
                f"`rollout_fragment_length` ({self.rollout_fragment_length}) < `n_step` "
                f"({self.n_step})."
            )
        buffer_type = self.replay_buffer_config.get("type")
        if buffer_type == TRANSITION_BUFFER:
            if self.n_step != 1:
                self._value_error(f"n_step={self.n_step} needs one of {_EPISODE_BUFFERS}.")
            if self.is_multi_agent:
                self._value_error(f"Multi-agent TD3 needs one of {_EPISODE_BUFFERS}.")
        elif self.component_rewards_key is not None:
            self._value_error(f"component_rewards_key needs {TRANSITION_BUFFER!r}.")
        elif buffer_type not in _EPISODE_BUFFERS:
            self._value_error(
                f"replay_buffer_config['type'] must be {TRANSITION_BUFFER!r} or one of "
                f"{_EPISODE_BUFFERS}, got {buffer_type!r}."
            )

    @property
    def training_intensity(self) -> float:
        """Replayed / sampled env steps, as RLlib's DQN loop reads it (RLlib buffers)."""
        return self.updates_per_env_step * self.total_train_batch_size

    def get_rollout_fragment_length(self, worker_index: int = 0) -> int:
        """``"auto"``: ``n_step`` env steps per sample call (one update per env step)."""
        if self.rollout_fragment_length == "auto":
            return self.n_step
        return self.rollout_fragment_length

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from drpc.algorithms.td3.rl_module import TD3TorchRLModule

        return RLModuleSpec(module_class=TD3TorchRLModule)

    def get_default_learner_class(self) -> type:
        from drpc.algorithms.td3.learner import TD3TorchLearner

        return TD3TorchLearner

    def build_learner_connector(self, input_observation_space, input_action_space, device=None):
        """The default learner pipeline plus ``NEXT_OBS`` (for the bootstrapped target)."""
        pipeline = super().build_learner_connector(
            input_observation_space=input_observation_space,
            input_action_space=input_action_space,
            device=device,
        )
        pipeline.insert_after(
            AddObservationsFromEpisodesToBatch, AddNextObservationsFromEpisodesToTrainBatch()
        )
        return pipeline

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        # What the module needs from the algorithm config (see TD3ModelConfig).
        return super()._model_config_auto_includes | {
            "exploration_noise": self.exploration_noise,
            "learning_starts": (
                self.num_steps_sampled_before_learning_starts if self.random_warmup else 0
            ),
            "normalize_actions": self.normalize_actions,
        }
