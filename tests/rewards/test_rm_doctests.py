"""The examples in the reward-model modules' docstrings run as written."""

import doctest
import importlib

import pytest

MODULES = ["rewards.rm", "rewards.rm.steps", "rewards.rm.aggregate", "rewards.rm.labels",
           "envs.reward_model"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
