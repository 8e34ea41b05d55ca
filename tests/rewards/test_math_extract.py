"""Answer extraction: each rule, the order of the fallbacks, and messy real-world output."""

import pytest

from rewards.math import extract_answer, extract_gold, last_boxed


@pytest.mark.parametrize(
    ("output", "text", "rule"),
    [
        (r"so the answer is \boxed{\frac{1}{2}}.", r"\frac{1}{2}", "boxed"),
        (r"\boxed{\frac{\sqrt{3}}{\{2\}}} and later \fbox{7}", "7", "boxed"),
        (r"First \boxed{3}, wait, no: \boxed{4}", "4", "boxed"),
        (r"Thus \boxed 5.", "5", "boxed"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72", "gsm8k"),
        ("#### 1,234.", "1,234", "gsm8k"),
        ("So 3 + 4 = 7. The answer is 7.", "7", "answer_is"),
        ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", "answer_is"),
        ("the answer is: 3.5 cups.", "3.5 cups", "answer_is"),
        ("The answer is \\(x = 2\\)", "x = 2", "answer_is"),
        ("Work...\n**Answer:** 42", "42", "answer_label"),
        ("Final answer: \\[ 2\\sqrt{2} \\]", "2\\sqrt{2}", "answer_label"),
        ("He has 3 apples and buys 4 more, so 7", "7", "last_number"),
        # no marker: a bare answer taken whole, else the last math span, else the last number
        (r"\frac{2}{5}", r"\frac{2}{5}", "whole"),
        ("(a+1)(a-1)", "(a+1)(a-1)", "whole"),
        (r"y \le 4", r"y \le 4", "whole"),
        ("$5$ and $6$", "$5$ and $6$", "whole"),
        ("Evelyn", "Evelyn", "whole"),
        (r"So we get $y = \frac{3}{4}$.", r"y = \frac{3}{4}", "math_span"),
        (r"Hence $\sqrt7$, as required", r"\sqrt7", "math_span"),
        (r"so $d = \frac{90}{n}$, and there are 12 such sequences", "12", "last_number"),
        ("It costs $3 on Monday\nand $4 on Tuesday", "4", "last_number"),  # no span across lines
        # several boxes that state one answer together; a final answer stated after the box
        (r"so \boxed{-2} \quad \text{and} \quad \boxed{1}.", "-2, 1", "boxed"),
        (r"first \boxed{200}, then 455. The final answer is $455$.", "455", "answer_is"),
        ("Final Answer: The largest $n$ is 34.", "34", "answer_label"),
        ("It costs $1,200.50 in total", "1,200.50", "last_number"),
        ("a ratio of -3/4", "-3/4", "last_number"),
        ("The result is 10^3", "10^3", "last_number"),
        # the answer's own clause, not a later span or a currency sign
        ("The answer is $18, since she spent $2 on food.", "18", "answer_is"),
        ("The answer is $18 and she has $5 left.", "18", "answer_is"),
        ("The answer is 42, not $41$.", "42", "answer_is"),
        ("The answer is 5. Earlier I wrongly got $7$.", "5", "answer_is"),
        ("Answer: 42 (I first thought $41$)", "42", "answer_label"),
        ("The answer is 5 because 2+3=5.", "5", "answer_is"),
        ("The answer is approximately 3.14.", "3.14", "answer_is"),
        ("The answer is therefore $\\sqrt{2}$.", "\\sqrt{2}", "answer_is"),
        ("Answer: $x = 2$ or $x = 3$", "x = 2 or x = 3", "answer_label"),  # a hedge stays whole
        # markdown headings are not GSM8K answers; "isn't" is not "is"
        ("#### Step 2: Money\nThe answer is 18.", "18", "answer_is"),
        ("#### Final Answer: 18", "18", "answer_label"),
        ("the answer isn't clear. 5", "5", "last_number"),
    ],
)
def test_each_rule_extracts_the_answer(output, text, rule):
    found = extract_answer(output)
    assert (found.text, found.rule) == (text, rule)


def test_rules_are_tried_in_order_boxed_first():
    output = "#### 1\nThe answer is 2.\nAnswer: 3\n\\boxed{4} 5"
    assert extract_answer(output).rule == "boxed"
    output = output.replace("\\boxed{4}", "")
    assert (extract_answer(output).text, extract_answer(output).rule) == ("1", "gsm8k")
    output = output.replace("#### 1", "")
    assert extract_answer(output).rule == "answer_is"
    output = output.replace("The answer is 2.", "")
    assert extract_answer(output).rule == "answer_label"
    output = output.replace("Answer: 3", "")
    assert (extract_answer(output).text, extract_answer(output).rule) == ("5", "whole")
    assert extract_answer("So we get $y = 2$, hence").rule == "math_span"
    assert extract_answer("So we get 4 apples and 5 pears").rule == "last_number"


def test_last_number_fallback_can_be_turned_off():
    assert extract_answer("it is 7", last_number_fallback=False) is None
    assert extract_answer("so there are 7 of them", last_number_fallback=False) is None
    assert extract_answer("no numbers here") is None
    assert extract_answer("") is None


def test_boxed_with_nested_and_unclosed_braces():
    assert last_boxed(r"\boxed{\frac{a}{b^{2}}}") == r"\frac{a}{b^{2}}"
    assert last_boxed(r"\boxed{1} then \boxed{2") == "1"  # the unclosed last box is skipped
    deep = "\\boxed{" + "{" * 5000 + "1" + "}" * 5001
    assert last_boxed(deep).count("{") == 5000


def test_a_digit_inside_a_word_is_not_a_number():
    assert extract_answer("AZYUK2A") is None
    assert extract_answer("the code XK7 failed") is None
    assert extract_answer("Soucis : 2,74 $ a..").text == "2,74"


def test_a_gold_is_read_like_an_output_but_never_by_its_last_number():
    assert extract_gold(r"... so $x = \boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"
    assert extract_gold(r"x \in \boxed{[1,2]}") == "[1,2]"
    assert extract_gold("$40$ km") == "$40$ km"  # taken whole: the unit is kept
    assert extract_gold("Natalia sold 48 clips.\n#### 72") == "72"
    assert extract_gold("1, 2") == "1, 2"
    assert (
        extract_gold("It took him a long while 3 times over")
        == "It took him a long while 3 times over"
    )


def test_huge_outputs():
    assert extract_answer("7 " * 50_000 + "The answer is 8.").text == "8"
    assert extract_answer("a" * 100_000) is None
