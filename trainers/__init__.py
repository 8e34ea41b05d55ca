"""Rollout engines and RL learners (GRPO), with the RL job's config."""

from trainers.config import RLConfig
from trainers.grpo import clipped_policy_loss, completion_logprobs, group_advantages
from trainers.rl import GRPOLearner, run_rl
from trainers.rollout import Completion, HFEngine, Sampling

__all__ = [
    "Completion",
    "GRPOLearner",
    "HFEngine",
    "RLConfig",
    "Sampling",
    "clipped_policy_loss",
    "completion_logprobs",
    "group_advantages",
    "run_rl",
]
