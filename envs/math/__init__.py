"""GSM8K and MATH as single-turn TextEnvs graded by :mod:`rewards.math`."""
