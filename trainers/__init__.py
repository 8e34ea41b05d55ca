"""RL and its neighbours: algorithms (``trainers.algos``), generation engines
(``trainers.engines``), the RL learner and job (``trainers.rl``), reward-model training
(``trainers.rm``) and evaluation. Importing this package loads nothing: import the module you
need (``import trainers.algos`` stays free of transformers)."""
