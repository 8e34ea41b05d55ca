"""Peak memory of one RL step (forward, backward, optimizer step; no rollout) for a Qwen3-shaped
model with random weights and Qwen3's 151,936-token vocabulary, in one run:

1. assay today's path (full logits: ``model.logprob_chunk=0``);
2. + chunked log-probs (``model.logprob_chunk=512``, the default);
3. + activation checkpointing (``model.gradient_checkpointing=true``);
4. the same under FSDP2 on 2 gloo ranks (``train.sharding=fsdp``), per rank;
5. TRL's ``GRPOTrainer`` on the same batch shape, with its own gradient checkpointing.

    python benchmarks/memory.py [--hidden 768] [--layers 6] [--prompts 2] [--group 8]
                                [--prompt-tokens 128] [--completion-tokens 256]
    python benchmarks/memory.py --shape qwen3-4b --runs fsdp2 --ranks 1 --bf16   # on a GPU

``--shape`` takes Qwen3-1.7B/4B/8B's real shapes; ``--runs`` a subset; ``--ranks`` the FSDP2
processes; ``--bf16`` FSDP2's bf16 mixed precision; ``--offload`` its CPU offload. On CUDA each
rank takes its own GPU and "step peak" is ``torch.cuda.max_memory_allocated`` during the step.

Each configuration runs in a process of its own (peak RSS is per process), sampling its resident
memory every millisecond around the step; "step peak" is the highest RSS during the step minus
the RSS just before it (gradients, AdamW state, activations and logits). Parameters, gradients
and AdamW state are also counted from the tensors themselves ("held"). TRL generates its own
completions first (256 new tokens, no EOS stops a random model early); its window opens after
generation. Goals (issue 20): FSDP2 held bytes per rank <= 0.55x one process; chunked +
checkpointing step peak <= 0.5x today's path and <= 0.7x TRL's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOCAB = 151_936
SHAPES = {  # hidden, layers, MLP width, attention heads, KV heads, tied embeddings
    "qwen3-1.7b": (2048, 28, 6144, 16, 8, True),
    "qwen3-4b": (2560, 36, 9728, 32, 8, True),
    "qwen3-8b": (4096, 36, 12288, 32, 8, False),
}
ASSAY_RUNS = {
    "today": ["model.logprob_chunk=0"],
    "chunked": ["model.logprob_chunk=512"],
    "chunked+ckpt": ["model.logprob_chunk=512", "model.gradient_checkpointing=true"],
    "fsdp2": ["model.logprob_chunk=512", "model.gradient_checkpointing=true",
              "train.sharding=fsdp"],
}  # fmt: skip


class PeakRSS:
    """The process's resident memory, sampled every millisecond in a thread."""

    def __init__(self):
        self.process, self.samples, self.running = psutil.Process(), [], True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.samples.append((time.perf_counter(), self.process.memory_info().rss))
            time.sleep(0.001)

    def peak_since(self, start: float) -> int:
        return max(rss for t, rss in self.samples if t >= start)

    def stop(self):
        self.running = False
        self.thread.join()


def qwen3_shaped(args):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    hidden, layers = args.hidden, args.layers
    width, heads, kv, tied, head_dim = hidden * 3, hidden // 64, max(1, hidden // 256), True, 64
    if args.shape:
        hidden, layers, width, heads, kv, tied = SHAPES[args.shape]
        head_dim = 128
    config = Qwen3Config(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, intermediate_size=width,
        num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        tie_word_embeddings=tied, max_position_embeddings=8192,
    )  # fmt: skip
    return Qwen3ForCausalLM(config)


def tokenizer():
    from assay.models import load_tokenizer_and_dir

    return load_tokenizer_and_dir("tiny-random-llama")[0]


def prompt_text(tok, n_tokens: int, index: int) -> str:
    words = " ".join(f"word{index}x{i}" for i in range(n_tokens))
    return tok.decode(tok.encode(words)[:n_tokens])


class NoEngine:
    """Takes the weight syncs a learner sends and generates nothing (no rollout here)."""

    def update_weights(self, named):
        for _ in named if not isinstance(named, dict) else named.items():
            pass

    def close(self):
        pass


def held_bytes(learner) -> int:
    from assay.sharding import local_bytes

    params = [p for p in learner.model.parameters() if p.requires_grad]
    state = [t for s in learner.optimizer.state.values() for t in s.values() if t.dim() > 0]
    grads = [p.grad for p in params if p.grad is not None]
    return local_bytes(params) + local_bytes(grads) + local_bytes(state)


def run_assay(name: str, args) -> dict:
    from assay.config import load_config
    from trainers.distributed import init_world
    from trainers.engines.base import Completion
    from trainers.rl.config import RLConfig
    from trainers.rl.learner import RLLearner
    from trainers.rl.samples import Samples

    world = init_world()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", world.local_rank) if cuda else torch.device("cpu")
    tok = tokenizer()
    overrides = [f"algo.group_size={args.group}", f"algo.prompts_per_step={args.prompts}",
                 "algo.micro_batch_tokens=0", "eval.episodes=0", *ASSAY_RUNS[name]]  # fmt: skip
    overrides += ["model.autocast=bf16"] if args.bf16 else []
    overrides += ["train.cpu_offload=true"] if args.offload else []
    config = load_config(RLConfig, overrides=overrides)
    model = qwen3_shaped(args).to(device)
    learner = RLLearner(config, model, tok, engine=NoEngine(), world=world)
    g = torch.Generator().manual_seed(1)
    completions = []
    prompts = range(world.rank * args.prompts // world.size,
                    (world.rank + 1) * args.prompts // world.size)  # fmt: skip
    for p in prompts:
        ids = tok.encode(prompt_text(tok, args.prompt_tokens, p))
        for _ in range(args.group):
            tokens = torch.randint(VOCAB, (args.completion_tokens,), generator=g).tolist()
            completions.append(Completion("", ids, tokens, [], "length"))
    rewards = torch.rand(len(prompts), args.group, generator=g)
    monitor = PeakRSS()
    before, start = monitor.process.memory_info().rss, time.perf_counter()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    learner.update(Samples(completions, rewards))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else monitor.peak_since(start)
    monitor.stop()
    return {"name": name, "rank": world.rank, "ranks": world.size, "before": before,
            "step_peak": peak - before, "held": held_bytes(learner), "seconds": seconds}  # fmt: skip


def run_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = tokenizer()
    model = qwen3_shaped(args)
    model.generation_config.eos_token_id = None  # full-length completions, as assay's batch
    rows = [{"prompt": prompt_text(tok, args.prompt_tokens, p)} for p in range(args.prompts)]
    monitor, marks = PeakRSS(), {}

    class Window(TrainerCallback):
        def on_step_end(self, *_args, **_kwargs):
            marks["end"] = time.perf_counter()

    import tempfile

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.prompts * args.group,
            num_generations=args.group, max_completion_length=args.completion_tokens,
            temperature=1.0, beta=0.0, max_steps=1, gradient_checkpointing=True, bf16=False,
            use_cpu=not torch.cuda.is_available(), save_strategy="no", report_to=[],
            disable_tqdm=True, logging_steps=1,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=model, processing_class=tok, args=config, train_dataset=Dataset.from_list(rows),
            reward_funcs=[lambda completions, **_: [float(len(c) % 7) for c in completions]],
            callbacks=[Window()],
        )  # fmt: skip
        generate = trainer._generate_and_score_completions

        def generate_then_mark(*a, **k):
            out = generate(*a, **k)
            marks["start"], marks["before"] = time.perf_counter(), monitor.process.memory_info().rss
            return out

        trainer._generate_and_score_completions = generate_then_mark
        trainer.train()
    peak = max(rss for t, rss in monitor.samples if marks["start"] <= t <= marks["end"])
    monitor.stop()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for s in trainer.optimizer.state.values()
                for t in s.values() if t.dim() > 0)  # fmt: skip
    return {"name": "trl", "rank": 0, "ranks": 1, "before": marks["before"],
            "step_peak": peak - marks["before"], "held": 2 * params + state,
            "seconds": marks["end"] - marks["start"]}  # fmt: skip


def child(args) -> None:
    result = run_trl(args) if args.one == "trl" else run_assay(args.one, args)
    Path(args.out, f"rank{result['rank']}.json").write_text(json.dumps(result))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def launch(name: str, args, ranks: int = 1) -> list[dict]:
    import tempfile

    out = tempfile.mkdtemp(prefix="assay-memory-")
    sizes = [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("one", "out")
    ]
    cmd = [sys.executable, __file__, "--one", name, "--out", out, *sizes]
    if ranks > 1:
        from assay.distributed import free_port

        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
               f"--master_port={free_port()}", *cmd[1:]]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // ranks)))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    results = [json.loads(p.read_text()) for p in sorted(Path(out).glob("rank*.json"))]
    if done.returncode != 0 or len(results) != ranks:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    print(f"{name}: done", flush=True)
    return results


def gb(n: float) -> str:
    return f"{n / 2**30:6.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a real Qwen3 shape")
    parser.add_argument("--runs", default=",".join([*ASSAY_RUNS, "trl"]))
    parser.add_argument("--ranks", type=int, default=2, help="FSDP2 processes")
    parser.add_argument("--bf16", action="store_true", help="FSDP2 bf16 mixed precision")
    parser.add_argument("--offload", action="store_true", help="FSDP2 CPU offload")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return child(args)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in qwen3_shaped(args).parameters())
    rows = args.prompts * args.group
    print(f"Qwen3-shaped ({args.shape or f'hidden {args.hidden}, {args.layers} layers'}), vocab {VOCAB:,}, "
          f"{n_params / 1e6:.0f}M parameters; {rows} rows of "
          f"{args.prompt_tokens} prompt + {args.completion_tokens} completion tokens; fp32")  # fmt: skip
    p_bytes = n_params * 4
    print(f"per-rank formula (fp32 AdamW): params + grads + 2 moments = 16 B x {n_params / 1e6:.0f}M"
          f" / ranks = {gb(4 * p_bytes)} on 1 rank, {gb(2 * p_bytes)} on 2")  # fmt: skip
    logits = rows * args.completion_tokens * VOCAB * 4
    print(f"full fp32 logits of the batch: rows x T_c x V x 4 B = {gb(logits)}; a 512-token "
          f"chunk: {gb(512 * VOCAB * 4)}")  # fmt: skip
    wanted = args.runs.split(",")
    results = {name: launch(name, args, ranks=args.ranks if name == "fsdp2" else 1)
               for name in [*ASSAY_RUNS, "trl"] if name in wanted}  # fmt: skip
    print(f"\n{'run':14}{'step peak':>12}{'held':>12}{'seconds':>9}")
    for name, runs in results.items():
        for r in runs:
            label = name if r["ranks"] == 1 else f"{name} r{r['rank']}"
            print(f"{label:14}{gb(r['step_peak']):>12}{gb(r['held']):>12}{r['seconds']:9.1f}")
    if set(results) != {*ASSAY_RUNS, "trl"}:
        return
    today, best = results["today"][0], results["chunked+ckpt"][0]
    trl, shard = results["trl"][0], max(r["held"] for r in results["fsdp2"])
    ratios = {
        "fsdp2_held_per_rank": shard / best["held"],
        "saver_vs_today": best["step_peak"] / today["step_peak"],
        "saver_vs_trl": best["step_peak"] / trl["step_peak"],
        "chunked_vs_today": results["chunked"][0]["step_peak"] / today["step_peak"],
    }
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in ratios.items()))
    print("goals: fsdp2_held_per_rank <= 0.55, saver_vs_today <= 0.5, saver_vs_trl <= 0.7")


if __name__ == "__main__":
    main()
