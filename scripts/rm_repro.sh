#!/usr/bin/env bash
# The small-scale ORM/PRM reproduction in docs/reward-models.md, on a CPU:
#   bash scripts/rm_repro.sh [OUT]      (about an hour on a 2-core CPU; the data phase resumes)
# SmolLM2-135M-Instruct is the policy and the reward-model backbone; GSM8K train problems give
# the RM data, GSM8K test problems the best-of-N table and the RL evaluations.
set -euo pipefail
OUT=${1:-runs/rm-repro}
ASSAY=${ASSAY:-.venv/bin/assay}
mkdir -p "$OUT"

# 1. Data: 4 solutions to each of 64 train problems, graded; arithmetic step labels for all,
#    Monte-Carlo labels (4 continuations per step) for the first 8 solutions; the reference
#    solutions join as correct rows (SmolLM2 solves about 1% of them).
$ASSAY rm data --problems 64 --samples 4 --max-new-tokens 192 --labels arith,mc --include-reference \
  --mc-rollouts 4 --mc-limit 8 --out "$OUT/data"

# 2. Reward models on the SmolLM2 backbone.
$ASSAY rm train --kind orm --data "$OUT/data/orm" --epochs 2 --lr 2e-5 --out "$OUT/orm"
$ASSAY rm train --kind prm --data "$OUT/data/prm_arith" --epochs 2 --lr 2e-5 --out "$OUT/prm"

# 3. Best-of-N on 30 test problems, 8 samples each.
$ASSAY eval rerank --problems 30 --n 8 --max-new-tokens 192 --orm "$OUT/orm" --prm "$OUT/prm" \
  --output-dir "$OUT/rerank"

# 4. One short RL run per reward type, all evaluated on the same 30 test episodes.
common=(train.output_dir="$OUT/rl" eval.compare_base=false)
$ASSAY train rl --config configs/math_gsm8k_rm.yaml "${common[@]}" train.run_name=grader \
  eval.compare_base=true
$ASSAY train rl --config configs/math_gsm8k_rm.yaml "${common[@]}" train.run_name=orm \
  reward_model.path="$OUT/orm"
$ASSAY train rl --config configs/math_gsm8k_rm.yaml "${common[@]}" train.run_name=prm-min \
  reward_model.path="$OUT/prm" reward_model.aggregate=min
$ASSAY train rl --config configs/math_gsm8k_rm.yaml "${common[@]}" train.run_name=prm-prod \
  reward_model.path="$OUT/prm" reward_model.aggregate=prod
$ASSAY train rl --config configs/math_gsm8k_rm.yaml "${common[@]}" train.run_name=prm-dense \
  reward_model.path="$OUT/prm" reward_model.aggregate=per_step algo.name=ppo
