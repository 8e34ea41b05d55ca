"""The examples in the math grader's docstrings are true."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "rewards.math",
        "rewards.math.extract",
        "rewards.math.normalize",
        "rewards.math.grader",
        "rewards.math.steps",
    ],  # fmt: skip
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
