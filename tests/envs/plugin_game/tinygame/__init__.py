"""A third-party game for the plugin test: say whether a number is even or odd."""

import envs


class ParityEnv(envs.TextEnv):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = int(self.np_random.integers(1000))
        question = f"Is {self.n} even or odd? Answer with one word."
        return [{"role": "user", "content": question}], self.make_info("player")

    def step(self, action):
        word = action.strip().lower()
        valid = word in ("even", "odd")
        correct = valid and (word == "even") == (self.n % 2 == 0)
        info = self.make_info("player", valid, "" if valid else "answer must be even or odd")
        return [{"role": "assistant", "content": action}], float(correct), True, False, info
