"""Pure reward functions: deterministic, safe on untrusted model output, bounded in time."""

from rewards.codenames import (
    INVALID_REWARD,
    GuessScore,
    guess_chance_reward,
    guess_reward,
    parse_guesses,
    score_guess_answer,
)
from rewards.rm.aggregate import aggregate
from rewards.trl import as_trl_reward, as_trl_reward_model

__all__ = [
    "INVALID_REWARD",
    "GuessScore",
    "aggregate",
    "as_trl_reward",
    "as_trl_reward_model",
    "guess_chance_reward",
    "guess_reward",
    "parse_guesses",
    "score_guess_answer",
]
