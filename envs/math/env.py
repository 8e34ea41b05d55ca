"""``math-gsm8k-v0``, ``math-math-v0`` and ``math-math500-v0``: one problem per episode.

The agent sees the problem (after optional few-shot exemplars) and answers in free text. The
reward is

    reward = (1 - format_weight) * correct + format_weight * format_ok

where ``correct`` is 1 if :func:`rewards.math.grade` accepts the final answer and ``format_ok``
is 1 if the answer was given in the requested form (``\\boxed{}`` for ``answer_style="boxed"``;
"The answer is N." or ``#### N`` for ``answer_style="answer_is"``). With the default
``format_weight=0`` the reward is exactly 1 or 0.

``reset(options={"index": i})`` poses problem ``i`` of the split (evaluation walks the split in
order); otherwise the problem is drawn with the env's seeded generator. ``info`` carries the
hidden ``gold``, ``problem_id`` and ``index``; ``step`` adds ``correct``, ``format_ok``,
``answer`` (the extracted answer), ``rule`` (how it was found) and the grader's ``reason``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from gymnasium.error import ResetNeeded

from assay.errors import ConfigError, did_you_mean
from envs.core import Message, TextEnv
from envs.math.data import Problem, Source, check_split, load_problems, strip_calculator
from envs.math.exemplars import MATH_EXEMPLARS
from rewards.math import DEFAULT_TIMEOUT, grade

PromptStyle = Literal["chat", "plain"]
AnswerStyle = Literal["boxed", "answer_is"]
MAX_SHOTS = 8

INSTRUCTIONS = {
    "boxed": "Solve the problem step by step, then give the final answer in \\boxed{}.",
    "answer_is": (
        "Solve the problem step by step, then finish with 'The answer is N.' where N is the "
        "final answer."
    ),
}
FORMAT_RULES = {"boxed": ("boxed",), "answer_is": ("answer_is", "gsm8k")}


class MathEnv(TextEnv):
    """A math word problem; options (keyword arguments of ``envs.make``):

    - ``split``: ``"train"`` (default; RL) or ``"test"`` (evaluation). ``math500`` is test-only.
    - ``few_shot``: 0-8 solved exemplars before the problem. GSM8K takes them from the first
      train problems (which the train split then never poses); MATH uses four written for
      assay (the MATH train file has no solutions).
    - ``prompt_style``: ``"chat"`` (exemplars as user/assistant turns) or ``"plain"`` (one user
      message of ``Question:``/``Answer:`` blocks, for base models).
    - ``answer_style``: ``"answer_is"`` (GSM8K default) or ``"boxed"`` (MATH default).
    - ``system_prompt``: an optional system message.
    - ``format_weight``: weight of the format reward in [0, 1] (see the module docstring).
    - ``source``: ``"package"`` (shipped data, default) or ``"hub"``.
    - ``timeout``: seconds the grader may spend on one answer.
    """

    metric_keys = ("correct", "format_ok")

    def __init__(
        self,
        dataset: str = "gsm8k",
        split: str = "train",
        few_shot: int = 0,
        prompt_style: PromptStyle = "chat",
        answer_style: AnswerStyle | None = None,
        system_prompt: str | None = None,
        format_weight: float = 0.0,
        source: Source = "package",
        timeout: float = DEFAULT_TIMEOUT,
    ):
        answer_style = answer_style or ("answer_is" if dataset == "gsm8k" else "boxed")
        _check_options(
            dataset,
            split,
            few_shot=few_shot,
            prompt_style=prompt_style,
            answer_style=answer_style,
            format_weight=format_weight,
            timeout=timeout,
        )
        self.dataset, self.split = dataset, split
        self.prompt_style, self.answer_style = prompt_style, answer_style
        self.system_prompt = system_prompt
        self.format_weight = float(format_weight)
        self.timeout = float(timeout)
        self.exemplars = self._exemplars(few_shot, source)
        problems = load_problems(dataset, split, source)
        if dataset == "gsm8k" and split == "train":
            problems = problems[MAX_SHOTS:]  # the exemplar pool is never posed as a problem
        self.problems: tuple[Problem, ...] = problems
        self.problem: Problem | None = None
        self._messages: list[Message] = []
        self._index = -1

    def _exemplars(self, few_shot: int, source: Source) -> list[tuple[str, str]]:
        if few_shot == 0:
            return []
        if self.dataset == "gsm8k":
            pool = load_problems("gsm8k", "train", source)[:MAX_SHOTS]
            return [(p.question, self._worked(p)) for p in pool[:few_shot]]
        return [(q, self._restyle(s, a)) for q, s, a in MATH_EXEMPLARS[:few_shot]]

    def _worked(self, problem: Problem) -> str:
        return self._restyle(strip_calculator(problem.solution), problem.answer)

    def reference_solution(self, problem: Problem) -> str | None:
        """The dataset's worked solution in this env's answer style (None when the split has no
        solutions, as MATH train)."""
        return self._worked(problem) if problem.solution.strip() else None

    def _restyle(self, steps: str, answer: str) -> str:
        if self.answer_style == "boxed":
            return f"{steps}\nThe final answer is $\\boxed{{{answer}}}$."
        return f"{steps}\nThe answer is {answer}."

    def render(self, question: str) -> list[Message]:
        """The observation for one problem."""
        instruction = INSTRUCTIONS[self.answer_style]
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if self.prompt_style == "plain":
            blocks = [f"Question: {q}\nAnswer: {a}" for q, a in self.exemplars]
            blocks.append(f"Question: {question}\nAnswer:")
            messages.append({"role": "user", "content": instruction + "\n\n" + "\n\n".join(blocks)})
            return messages
        for i, (q, a) in enumerate(self.exemplars):
            prefix = instruction + "\n\n" if i == 0 else ""
            messages += [
                {"role": "user", "content": prefix + q},
                {"role": "assistant", "content": a},
            ]
        prefix = "" if self.exemplars else instruction + "\n\n"
        messages.append({"role": "user", "content": prefix + question})
        return messages

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index = (options or {}).get("index")
        if index is None:
            index = int(self.np_random.integers(len(self.problems)))
        elif not (isinstance(index, int) and 0 <= index < len(self.problems)):
            raise ConfigError(
                f"options['index'] must be an int in [0, {len(self.problems)}), got {index!r}."
            )
        self._index = index
        self.problem = self.problems[index]
        self._messages = self.render(self.problem.question)
        return list(self._messages), self._hidden_info()

    def demonstration(self) -> str | None:
        """The dataset's worked solution in the env's answer style (the SFT teacher); None on
        splits without solutions (MATH train)."""
        return None if self.problem is None else self.reference_solution(self.problem)

    def _hidden_info(self) -> dict[str, Any]:
        p = self.problem
        return self.make_info(
            "solver", gold=p.answer, problem_id=p.id, index=self._index, split=self.split
        )

    def step(self, action: str):
        if self.problem is None:
            raise ResetNeeded("Call reset() before step(); a math episode is one step.")
        result = grade(action, self.problem.answer, timeout=self.timeout)
        format_ok = result.rule in FORMAT_RULES[self.answer_style]
        w = self.format_weight
        reward = (1.0 - w) * float(result.correct) + w * float(format_ok)
        info = self._hidden_info()
        info.update(
            valid=result.answer is not None,
            reason=result.reason,
            correct=float(result.correct),
            format_ok=float(format_ok),
            answer=result.answer,
            rule=result.rule,
        )
        transcript = self._messages + [{"role": "assistant", "content": action}]
        self.problem = None
        return transcript, reward, True, False, info


def _check_options(dataset, split, *, few_shot, prompt_style, answer_style, format_weight, timeout):
    check_split(dataset, split)
    for name, value, allowed in (
        ("prompt_style", prompt_style, get_args(PromptStyle)),
        ("answer_style", answer_style, get_args(AnswerStyle)),
    ):
        if value not in allowed:
            raise ConfigError(
                f"{name} must be one of {', '.join(allowed)}; got {value!r}."
                f"{did_you_mean(str(value), allowed)}"
            )
    max_shots = MAX_SHOTS if dataset == "gsm8k" else len(MATH_EXEMPLARS)
    if not (
        isinstance(few_shot, int) and not isinstance(few_shot, bool) and 0 <= few_shot <= max_shots
    ):
        raise ConfigError(f"few_shot must be an int from 0 to {max_shots}, got {few_shot!r}.")
    if not (isinstance(format_weight, int | float) and 0.0 <= format_weight <= 1.0):
        raise ConfigError(f"format_weight must be a number in [0, 1], got {format_weight!r}.")
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}.")
