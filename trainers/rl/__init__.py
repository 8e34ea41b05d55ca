"""RL on text environments, in components a recipe assembles:

- ``config``: the job's typed config, one dataclass per section;
- ``samples``: one step's sampled and scored completions (``Samples``) and the seeds they use;
- ``single_turn``, ``multi_turn``, ``off_policy``: the rollout strategies (one prompt, one answer;
  whole episodes; either one step ahead in the background), chosen once, at construction;
- ``batch``: padding samples into tensors and splitting them into micro-batches;
- ``forward``: the policy's (and reference's) log-probs, entropies and values over a batch;
- ``advantages``: the registered estimator (``trainers.algos.registry``) applied to a batch;
- ``objective``: the loss of one micro-batch (policy loss, KL, entropy, value loss);
- ``learner``: ``RLLearner.step``, the algorithm top to bottom;
- ``metrics``, ``schedule``, ``lora``: step metrics, the learning-rate schedule, LoRA adapters;
- ``job``: ``run_rl``, the learner wrapped in a run (evaluation, checkpoints, logging).
"""
