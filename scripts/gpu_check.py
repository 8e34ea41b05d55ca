"""GPU checks for assay, run by scripts/gpu_check.sh on a CUDA machine; prints one line per check:
``CHECK name ... ok=True|False``, ``SKIP name: why`` or ``FAIL name: error``. A failing check
does not stop the others.

    python scripts/gpu_check.py             # on a CUDA machine (about 5 minutes on one H200)
    python scripts/gpu_check.py --quick     # the same checks at toy sizes, to rehearse on a CPU
    python scripts/gpu_check.py --only pool_on_one_gpu,rollout_benchmark   # some of them

The SmolLM2 GGUF (98 MB) may not travel to a remote GPU box; without it this uses SmolLM2-135M's
architecture with random weights (same shapes, so the same speed), built from the cached config.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from assay.paths import cache_dir
from trainers.engines.base import Completion, Sampling
from trainers.engines.hf import HFEngine
from trainers.logprobs import completion_logprobs, grouped_completion_logprobs
from trainers.rl.config import RLConfig
from trainers.rl.job import run_rl
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples

QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OUT = Path("/tmp/assay-gpu-runs")  # checkpoints are large; keep them off $OUT


def check(fn):
    """Run one check; report an exception as a FAIL line instead of stopping the script."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if ONLY is not None and fn.__name__ not in ONLY:
            return
        start = time.perf_counter()
        try:
            fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - every check reports, none stops the rest
            last = traceback.format_exception_only(err)[-1].strip()
            print(f"FAIL {fn.__name__}: {last}")
        print(f"  ({fn.__name__}: {time.perf_counter() - start:.1f} s)", flush=True)

    return run


def smollm2_shaped_model() -> str:
    try:
        load_causal_lm("smollm2-135m-instruct")
        return "smollm2-135m-instruct"
    except Exception as err:  # noqa: BLE001 - fall back to random weights, say so
        print(
            f"note: real SmolLM2 weights unavailable ({type(err).__name__}); using random weights"
        )
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(cache_dir() / "smollm2-config")
    tokenizer = AutoTokenizer.from_pretrained(cache_dir() / "smollm2-135m-instruct-tokenizer")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    target = Path("/tmp/smollm2-random")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target)


@check
def grouped_vs_naive_logprobs(model) -> None:
    g, tp, tc = 4, 40, 12
    prompt = torch.randint(100, 1000, (2, tp), device=DEVICE)
    pmask = torch.ones_like(prompt)
    pmask[1, :7] = 0
    comp = torch.randint(100, 1000, (2 * g, tc), device=DEVICE)
    cmask = torch.ones_like(comp)
    cmask[3, 5:] = 0
    with torch.no_grad():
        a, _ = grouped_completion_logprobs(model, prompt, pmask, comp, cmask)
        full = torch.cat([prompt.repeat_interleave(g, 0), comp], 1)
        b, _ = completion_logprobs(
            model, full, torch.cat([pmask.repeat_interleave(g, 0), cmask], 1), tc
        )
    diff = (a - b)[cmask == 1].abs().max().item()
    print(f"CHECK grouped_vs_naive_logprobs max_abs_diff={diff:.2e} ok={diff < 1e-3}")


@check
def engine_logprobs_vs_forward(model, tokenizer) -> None:
    engine = HFEngine(model, tokenizer)
    env = envs.make("codenames-guess-v0")
    prompts = [env.reset(seed=s)[0] for s in range(4)]
    groups = engine.generate(prompts, Sampling(n=4, temperature=0.7, max_new_tokens=24, seed=0))
    worst = 0.0
    for c in [c for g in groups for c in g]:
        ids = torch.tensor([c.prompt_ids + c.token_ids], device=DEVICE)
        with torch.no_grad():
            forced, _ = completion_logprobs(model, ids, torch.ones_like(ids), len(c.token_ids), 0.7)
        worst = max(worst, (forced.cpu() - torch.tensor([c.logprobs])).abs().max().item())
    print(f"CHECK engine_logprobs_vs_forward max_abs_diff={worst:.2e} ok={worst < 1e-2}")


@check
def bf16_update(name: str) -> None:
    model, tokenizer = load_causal_lm(name, "bfloat16", DEVICE)
    config = load_config(
        RLConfig,
        overrides=[
            "optim.lr=1e-4",
            "sampling.temperature=1.0",
            "model.dtype=bfloat16",
            "algo.group_size=2",
            "algo.prompts_per_step=1",
        ],
    )
    learner = RLLearner(config, model, tokenizer)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say yes."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    good = Completion("", prompt, tokenizer.encode("yes indeed"), [], "stop")
    bad = Completion("", prompt, tokenizer.encode("no way at all"), [], "stop")
    rollout = Samples([good, bad], torch.tensor([[1.0, 0.0]]))

    def logprob(c):
        ids = torch.tensor([c.prompt_ids + c.token_ids], device=DEVICE)
        with torch.no_grad():
            out = completion_logprobs(model, ids, torch.ones_like(ids), len(c.token_ids))
        return out[0].sum().item()

    before = logprob(good), logprob(bad)
    for _ in range(5):
        learner.update(rollout)
    after = logprob(good), logprob(bad)
    ok = after[0] > before[0] and after[1] < before[1]
    print(
        f"CHECK bf16_update good={before[0]:.2f}->{after[0]:.2f} "
        f"bad={before[1]:.2f}->{after[1]:.2f} ok={ok}"
    )


def rl_job(name: str, run_name: str, extra: list[str]) -> tuple[dict, list[dict]]:
    """A short Codenames GRPO job on this device in bf16: its summary and metrics records."""
    steps, episodes = (2, 4) if QUICK else (8, 64)
    config = load_config(
        RLConfig,
        "configs/codenames_guess.yaml",
        [
            f"model.name={name}",
            f"model.device={DEVICE}",
            "model.dtype=bfloat16",
            f"train.steps={steps}",
            "train.max_minutes=null",
            f"train.output_dir={OUT}",
            f"train.run_name={run_name}",
            f"eval.episodes={episodes}",
            f"eval.batch_size={episodes}",
            *extra,
        ],
    )
    summary = run_rl(config, log=lambda *_: None)
    sys.stderr.write("\n")  # end the progress bars' line before the CHECK line
    lines = (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    return summary, [json.loads(x) for x in lines]


@check
def run_rl_bf16(name: str) -> None:
    summary, metrics = rl_job(name, "on-policy", [])
    step_s = sum(m["step_time_s"] for m in metrics[1:]) / max(len(metrics) - 1, 1)
    print(
        f"CHECK run_rl_bf16 steps={summary['steps']} mean_step_s={step_s:.2f} "
        f"trained_valid={summary['eval_trained']['valid_rate']:.2f} ok={summary['steps'] > 0}"
    )


@check
def run_rl_off_policy(name: str) -> None:
    """A separate HF engine on the GPU, one step stale: weight sync, TIS weights and the
    engine-vs-learner log-prob gap (both bf16, so the gap is the kernels' rounding)."""
    _, metrics = rl_job(name, "off-policy", ["engines.off_policy=true"])

    def mean(key):
        values = [m[key] for m in metrics if key in m]
        return sum(values) / max(len(values), 1)

    ok = all("is_weight_mean" in m and "weight_sync_s" in m for m in metrics)
    print(
        f"CHECK run_rl_off_policy steps={len(metrics)} weight_sync_s={mean('weight_sync_s'):.3f} "
        f"engine_logprob_gap={mean('engine_logprob_gap'):.4f} "
        f"gap_max={max(m.get('engine_logprob_gap_max', 0) for m in metrics):.3f} "
        f"is_weight_mean={mean('is_weight_mean'):.4f} "
        f"is_weight_capped={mean('is_weight_capped'):.4f} ok={ok}"
    )


@check
def rollout_benchmark(name: str) -> None:
    """HF bf16 generation at the issue's size (8 prompts x 8 samples x 256 tokens), plus the
    pool and vLLM where they import (the benchmark says which it skipped)."""
    size = ["2", "2", "8"] if QUICK else ["8", "8", "256"]
    command = [sys.executable, "benchmarks/rollout.py", "--model", name, "--device", DEVICE]
    command += ["--dtype", "bfloat16", "--prompts", size[0], "--samples", size[1]]
    subprocess.run([*command, "--tokens", size[2]], check=True, timeout=300)


PROMPTS = [[{"role": "user", "content": f"Tell a story about {i}."}] for i in range(8)]
GREEDY = Sampling(temperature=0.0, max_new_tokens=32)


def greedy_reference(name: str):
    """The bf16 model on this device and one HF engine's greedy answers to ``PROMPTS``."""
    model, tokenizer = load_causal_lm(name, "bfloat16", DEVICE)
    groups = HFEngine(model, tokenizer).generate(PROMPTS, GREEDY)
    return model, [g[0].token_ids for g in groups]


@check
def pool_on_one_gpu(name: str) -> None:
    """Two pool replicas sharing this GPU return what one engine returns, after a weight sync,
    and a replica killed mid-batch is replaced without losing or repeating a request."""
    try:
        import ray
    except ImportError:
        print("SKIP pool_on_one_gpu: ray is not installed")
        return
    from trainers.engines.pool import EnginePool, EngineSpec

    model, reference = greedy_reference(name)
    ray.init(include_dashboard=False, log_to_driver=False)
    gpus = 0.4 if DEVICE == "cuda" else 0
    spec = EngineSpec(name, dtype="bfloat16", device=DEVICE, num_gpus=gpus)
    pool = EnginePool(spec, replicas=2, chunk_size=2)
    try:
        pool.update_weights(model.state_dict())  # waits for both replicas to start
        start = time.perf_counter()
        pool.update_weights(model.state_dict())
        sync_s = time.perf_counter() - start
        same = [g[0].token_ids for g in pool.generate(PROMPTS, GREEDY)] == reference
        seen: dict[int, list[int]] = {}
        for index, group in pool.stream(PROMPTS, GREEDY):
            if not seen:
                ray.kill(pool.actors[0], no_restart=True)
            seen.setdefault(index, []).append(group[0].token_ids)
        once = sorted(seen) == list(range(len(PROMPTS))) and all(len(v) == 1 for v in seen.values())
        kept = [seen[i][0] for i in range(len(PROMPTS))] == reference
    finally:
        pool.close()
        ray.shutdown()
    print(
        f"CHECK pool_on_one_gpu replicas=2 object_store_sync_s={sync_s:.2f} greedy_equals_hf={same} "
        f"killed_replica_restarts={pool.restarts} exactly_once={once} same_answers={kept} "
        f"ok={same and once and kept and pool.restarts == 1}"
    )


@check
def vllm_engine(name: str) -> None:
    """vLLM in bf16 on this GPU: greedy agreement with HF and an in-place weight update."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("SKIP vllm_engine: vllm is not installed")
        return
    from trainers.engines.vllm import VLLMEngine

    model, reference = greedy_reference(name)
    engine = VLLMEngine(name, dtype="bfloat16", gpu_memory_utilization=0.3, max_model_len=1024)
    outputs = engine.generate(PROMPTS, GREEDY)
    agree = sum(g[0].token_ids == r for g, r in zip(outputs, reference, strict=True))
    engine.update_weights(model.state_dict())
    again = sum(
        g[0].token_ids == o[0].token_ids
        for g, o in zip(engine.generate(PROMPTS, GREEDY), outputs, strict=True)
    )
    print(
        f"CHECK vllm_engine greedy_agreement_with_hf={agree}/8 (bf16 kernels differ) "
        f"same_after_reloading_same_weights={again}/8 ok={again == 8}"
    )
    engine.close()


def _weight_group_rank(rank: int, port: int, backend: str, results) -> None:
    """One rank of the broadcast probe: rank 0 sends a SmolLM2-sized state, rank 1 receives it."""
    from trainers.engines.weight_sync import WeightGroup, manifest

    device = torch.device(DEVICE)
    torch.manual_seed(0)
    sizes = [(576, 576)] * 4 if QUICK else [(49152, 576)] + [(576, 576), (1536, 576)] * 60
    state = [
        (f"w{i}", torch.randn(s, device=device, dtype=torch.bfloat16)) for i, s in enumerate(sizes)
    ]
    group = WeightGroup("127.0.0.1", port, rank, 2, backend, timeout_s=60)
    start = time.perf_counter()
    if rank == 0:
        group.send(state)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        results.put(("sent", time.perf_counter() - start))
    else:
        got = dict(group.receive(manifest(state)))
        same = all(torch.equal(got[n], t) for n, t in state)
        nbytes = sum(t.numel() * t.element_size() for _, t in state)
        results.put(("received", same, nbytes, time.perf_counter() - start))


@check
def weight_group_broadcast() -> None:
    """The pool's broadcast sync between two processes. NCCL wants one GPU per rank, so on a
    one-GPU machine this probes whether it accepts two ranks on the same GPU."""
    import torch.multiprocessing as mp

    from assay.distributed import free_port

    backend = "nccl" if DEVICE == "cuda" else "gloo"
    if DEVICE == "cuda" and torch.cuda.device_count() < 2:
        print("note: one GPU, so both NCCL ranks share it (NCCL may refuse duplicate GPUs)")
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = free_port()
    procs = [
        ctx.Process(target=_weight_group_rank, args=(r, port, backend, results)) for r in (0, 1)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    got = {}
    while not results.empty():
        item = results.get()
        got[item[0]] = item[1:]
    if "received" not in got:
        print(f"CHECK weight_group_broadcast backend={backend} exit_codes={codes} ok=False")
        return
    same, nbytes, seconds = got["received"]
    print(
        f"CHECK weight_group_broadcast backend={backend} bytes={nbytes / 1e6:.0f}MB "
        f"seconds={seconds:.3f} GB_s={nbytes / 1e9 / seconds:.1f} identical={same} ok={same}"
    )


@check
def pretrain_bf16() -> None:
    """Issue 9's trainer on this device: bf16 autocast, a 20M LLaMA, WikiText-2."""
    from pretraining.config import PretrainConfig
    from pretraining.trainer import run_pretrain

    size, steps = ("llama-1m", 4) if QUICK else ("llama-20m", 100)
    config = load_config(
        PretrainConfig,
        "configs/pretrain_tiny.yaml",
        [
            f"model.size={size}",
            f"train.max_steps={steps}",
            f"train.device={DEVICE}",
            "train.dtype=bfloat16",
            "train.batch_size=32",
            "train.micro_batch_size=32",
            f"train.eval_every={steps}",
            f"train.checkpoint_every={steps}",
            f"train.output_dir={OUT}",
            "train.run_name=pretrain",
        ],
    )
    run_dir = run_pretrain(config)
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speed = [r["tokens_per_s"] for r in records if "tokens_per_s" in r][1:]
    first = next(r["loss"] for r in records if "loss" in r)
    print(
        f"CHECK pretrain_bf16 size={size} tokens_per_s={sum(speed) / max(len(speed), 1):.0f} "
        f"loss={first:.2f}->{summary['final_loss']:.2f} eval_ppl={summary.get('eval/ppl')} "
        f"ok={summary['final_loss'] < first}"
    )


@check
def rl_step_benchmark(name: str, replicas: int = 1) -> None:
    if replicas > 1:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("SKIP rl_step_benchmark --replicas: ray is not installed")
            return
    print(f"BENCH rl_step --replicas {replicas} (fp32, the CPU benchmark's settings):", flush=True)
    command = [
        sys.executable,
        "benchmarks/rl_step.py",
        "--model",
        name,
        "--replicas",
        str(replicas),
    ]
    if replicas > 1:  # the other algorithms' step times do not depend on where generation runs
        command += ["--algos", "grpo"]
    subprocess.run(command, check=True, timeout=240)


@check
def fsdp_memory() -> None:
    """Issue 20 on this GPU: one FSDP2 bf16 RL step (chunked log-probs, activation
    checkpointing) of Qwen3-1.7B- and 4B-shaped random models, peak memory and step time; the
    8B shape with CPU offload where the host RAM holds its 16 bytes per parameter; NCCL over
    2 GPUs when there are 2. ``--quick``: a small shape on the CPU."""
    import psutil

    base = [sys.executable, "benchmarks/memory.py", "--runs", "fsdp2", "--prompts", "2",
            "--group", "8", "--prompt-tokens", "256", "--completion-tokens", "512", "--bf16"]  # fmt: skip
    runs = [["--shape", "qwen3-1.7b", "--ranks", "1"], ["--shape", "qwen3-4b", "--ranks", "1"]]
    if QUICK:
        runs = [["--hidden", "256", "--layers", "2", "--ranks", "1"]]
    elif psutil.virtual_memory().total > 8.2e9 * 16 * 1.25:
        runs.append(["--shape", "qwen3-8b", "--ranks", "1", "--offload"])
    else:
        print(f"SKIP fsdp_memory qwen3-8b: CPU offload needs ~165 GB of host RAM, this machine "
              f"has {psutil.virtual_memory().total / 2**30:.0f} GiB")  # fmt: skip
    if torch.cuda.device_count() >= 2 and not QUICK:
        runs.append(["--shape", "qwen3-1.7b", "--ranks", "2"])  # NCCL, one GPU per rank
    for extra in runs:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=900)
        table = [line for line in done.stdout.splitlines() if line.startswith(("fsdp2", "Qwen3"))]
        print("\n".join(table))
        print(f"CHECK fsdp_memory {' '.join(extra)} ok={done.returncode == 0}", flush=True)
        if done.returncode != 0:
            print(done.stderr[-2000:])


def main() -> None:
    where = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU (rehearsal)"
    print(f"torch {torch.__version__} on {where}{' --quick' if QUICK else ''}")
    for package in ("ray", "vllm"):
        try:
            __import__(package)
        except ImportError:
            print(f"SKIP {package}: not installed here (the pool and vLLM checks are skipped)")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    name = smollm2_shaped_model()
    if ONLY is None or {"grouped_vs_naive_logprobs", "engine_logprobs_vs_forward"} & set(ONLY):
        model, tokenizer = load_causal_lm(name, "float32", DEVICE)
        grouped_vs_naive_logprobs(model)
        engine_logprobs_vs_forward(model, tokenizer)
        del model
    bf16_update(name)
    rollout_benchmark(name)
    pool_on_one_gpu(name)
    vllm_engine(name)
    weight_group_broadcast()
    run_rl_bf16(name)
    run_rl_off_policy(name)
    pretrain_bf16()
    fsdp_memory()
    if not QUICK:
        rl_step_benchmark(name)
        rl_step_benchmark(name, replicas=2)


if __name__ == "__main__":
    main()
