"""Rollout engines and RL learners (GRPO family, PPO), with the RL job's config."""

from trainers.algos import clipped_policy_loss, group_advantages
from trainers.config import RLConfig
from trainers.engines.base import Completion, Sampling
from trainers.engines.hf import HFEngine
from trainers.logprobs import completion_logprobs, grouped_completion_logprobs
from trainers.rl import GRPOLearner, RLLearner, run_rl

__all__ = [
    "Completion",
    "GRPOLearner",
    "HFEngine",
    "RLConfig",
    "RLLearner",
    "Sampling",
    "clipped_policy_loss",
    "completion_logprobs",
    "group_advantages",
    "grouped_completion_logprobs",
    "run_rl",
]
