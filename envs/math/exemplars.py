"""Four worked MATH-style exemplars for few-shot prompts, written for assay.

The MATH train file we ship has final answers but no solutions, and MATH-500 is the test set, so
the exemplars are our own problems (question, solution steps, final answer) covering algebra,
counting, geometry and number theory.
"""

MATH_EXEMPLARS: tuple[tuple[str, str, str], ...] = (
    (
        "Solve for $x$: $3x - 7 = 11$.",
        "Adding 7 to both sides gives $3x = 18$, so $x = 18/3 = 6$.",
        "6",
    ),
    (
        "How many ways can a committee of 2 people be chosen from 6 people?",
        "The order does not matter, so the count is $\\binom{6}{2} = \\frac{6 \\cdot 5}{2} = 15$.",
        "15",
    ),
    (
        "A right triangle has legs of length 1 and 2. What is the length of its hypotenuse?",
        "By the Pythagorean theorem the hypotenuse is $\\sqrt{1^2 + 2^2} = \\sqrt{5}$.",
        "\\sqrt{5}",
    ),
    (
        "What fraction of the positive divisors of 12 are even? Express your answer as a "
        "common fraction.",
        "The divisors of 12 are 1, 2, 3, 4, 6 and 12. Four of the six are even, so the fraction "
        "is $\\frac{4}{6} = \\frac{2}{3}$.",
        "\\frac{2}{3}",
    ),
)
