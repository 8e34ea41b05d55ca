"""ICL prompts by component: every corruption's layout on a hand-made 4-demo prompt (golden
strings), determinism per seed, token-length matched random words, and the envs."""

import pytest

import envs
from envs.icl import Demo, Layout, Parts, corrupt, expand, list_corruptions, render_plain
from envs.icl.corruptions import ood_sentences

LAYOUT = Layout(input_prefix="Q: ", label_prefix="A: ", sep="\n", demo_sep="\n\n")
LABELS = ("pos", "neg")
PARTS = Parts(
    description="DESC",
    demos=tuple(Demo(f"in{i}", LABELS[i % 2], "INL") for i in range(4)),
    test_input="test",
    test_inline="INL",
)


def _render(name: str, seed: int = 0, tokenizer=None) -> str:
    return render_plain(corrupt(PARTS, name, seed, LABELS, tokenizer), LAYOUT)


def _demos(inline_k=4, inputs=True, labels=True, inline="INL") -> list[str]:
    out = []
    for i in range(4):
        lines = [f"Q: in{i}"] if inputs else []
        lines += [inline] if inline and i < inline_k else []
        lines += [f"A: {LABELS[i % 2]}"] if labels else []
        out.append("\n".join(lines))
    return out


TEST = "Q: test\nINL\nA:"
TEST_BARE = "Q: test\nA:"
GOLDEN = {
    "empty": [TEST_BARE],
    "only_instruction": ["DESC", TEST_BARE],
    "only_inline": [TEST],
    "both_instructions": ["DESC", TEST],
    "only_demonstrations": [*_demos(inline=None), TEST_BARE],
    "instruction_and_demos": ["DESC", *_demos(inline=None), TEST_BARE],
    "inline_and_demos": [*_demos(), TEST],
    "all": ["DESC", *_demos(), TEST],
    "inputs_removed": ["DESC", *_demos(inputs=False), TEST],
    "labels_removed": ["DESC", *_demos(labels=False), TEST],
    "instruction_after_demos": [*_demos(), "DESC", TEST],
    **{f"inline_in_k_demos:{k}": ["DESC", *_demos(inline_k=k), TEST] for k in range(5)},
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_structural_corruptions_give_the_expected_layout(name):
    assert _render(name) == "\n\n".join(GOLDEN[name])


def test_every_corruption_is_listed_and_deterministic_per_seed(tiny_lm):
    _, tokenizer = tiny_lm
    names = expand(list_corruptions(), 4)
    assert len(names) == len(list_corruptions()) - 2 + 2 * 5
    for name in names:
        assert _render(name, 7, tokenizer) == _render(name, 7, tokenizer), name
    for name in ("instruction_random_words", "labels_random_words", "inputs_random_words",
                 "wrong_labels", "inputs_out_of_distribution"):  # fmt: skip
        assert _render(name, 1, tokenizer) != _render(name, 2, tokenizer) or name == "wrong_labels"
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(PARTS, "shuffle", 0, LABELS)
    with pytest.raises(ValueError, match="needs :k"):
        corrupt(PARTS, "inline_in_k_demos:5", 0, LABELS)


def test_random_words_match_the_replaced_token_length(tiny_lm):
    _, tokenizer = tiny_lm
    parts = Parts(
        description="Classify the sentiment of the movie review as positive or negative.",
        demos=tuple(
            Demo(f"a rather long review number {i} of the film", "positive", "Is it?")
            for i in range(4)
        ),  # fmt: skip
        test_input="test",
        test_inline="Is the sentiment of this review positive or negative?",
    )

    def n(text):
        return len(tokenizer.encode(text, add_special_tokens=False))

    for seed in range(5):
        out = corrupt(parts, "instruction_random_words", seed, LABELS, tokenizer)
        assert n(out.description) == n(parts.description)
        assert out.description != parts.description
        assert n(out.test_inline) == n(parts.test_inline)
        assert all(d.inline == out.test_inline for d in out.demos)
        out = corrupt(parts, "inputs_random_words", seed, LABELS, tokenizer)
        assert [n(d.input) for d in out.demos] == [n(d.input) for d in parts.demos]
        out = corrupt(parts, "labels_random_words", seed, LABELS, tokenizer)
        assert [n(d.label) for d in out.demos] == [n("positive")] * 4
        out = corrupt(parts, "random_words_inline_in_k_demos:2", seed, LABELS, tokenizer)
        assert [d.inline is not None for d in out.demos] == [True, True, False, False]
        assert n(out.test_inline) == n(parts.test_inline)


def test_semantic_corruptions_change_only_their_component():
    wrong = corrupt(PARTS, "wrong_labels", 3, LABELS)
    assert all(
        w.label != d.label and w.label in LABELS
        for w, d in zip(wrong.demos, PARTS.demos, strict=True)
    )
    assert [d.input for d in wrong.demos] == [d.input for d in PARTS.demos]
    ood = corrupt(PARTS, "inputs_out_of_distribution", 3, LABELS)
    assert all(d.input in ood_sentences() for d in ood.demos)
    assert [d.label for d in ood.demos] == [d.label for d in PARTS.demos]
    frequent = corrupt(PARTS, "instruction_frequent_words", 3, LABELS)
    assert frequent.description != "DESC" and frequent.test_inline == "INL"


def test_icl_envs_pose_balanced_demos_and_score_exact_matches():
    env = envs.make("icl-agnews-v0", n_demos=4, mode="chat")
    observation, info = env.reset(seed=0)
    labels = [m["content"] for m in observation if m["role"] == "assistant"]
    assert sorted(labels) == sorted(["World", "Sports", "Business", "Technology"])  # balanced
    assert observation[0]["role"] == "system" and observation[-1]["role"] == "user"
    assert env.step(f" {info['label']}.\nBecause...")[1] == 1.0
    env.reset(seed=0)
    assert env.step("Sports or World")[1] == 0.0  # a hedge is not an exact match
    first, info3 = env.reset(seed=5, options={"index": 3})
    again, _ = envs.make("icl-agnews-v0", n_demos=4).reset(seed=5, options={"index": 3})
    assert info3["index"] == 3 and first == again  # same seed, same prompt
    with pytest.raises(Exception, match="corruption"):
        envs.make("icl-sst2-v0", corruption="inline_in_k_demos:9")
