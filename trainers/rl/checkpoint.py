"""The RL learner's checkpoints. Unsharded: rank 0 writes the model, the tokenizer and
``trainer_state.pt`` (optimizer included), as ``assay.checkpoints`` does for every job.

Sharded (``train.sharding: fsdp``), every rank takes part:

- ``optimizer/``: the AdamW moments, written by each rank for its own shards with
  ``torch.distributed.checkpoint`` (DCP), so no rank ever gathers them; DCP reshards on load, so
  a run resumes on any number of ranks, sharded or not. Only tensors go there (the param groups
  go in ``trainer_state.pt``), and DCP's index file is read with :class:`SafeReader`, since
  DCP itself unpickles it and a run directory is untrusted;
- the policy as a plain Hugging Face safetensors folder (``AutoModelForCausalLM`` and vLLM load
  it; with LoRA, the adapters as peft saves them), gathered to rank 0's CPU memory;
- ``trainer_state.pt`` (scheduler, step, value head) last, as for any checkpoint.

The folder is written under a hidden name and renamed into place by rank 0 after every rank has
finished, so a killed save never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta, TensorStorageMetadata

from assay.checkpoints import (
    checkpoint_path,
    commit,
    partial_folder,
    prune_checkpoints,
    save_checkpoint,
    sweep_partial_checkpoints,
    write_checkpoint,
)
from assay.errors import CheckpointError
from trainers.distributed import all_gather_objects, barrier

OPTIMIZER_DIR = "optimizer"


def save_learner_checkpoint(run_dir: Path, step: int, learner, keep: int) -> None:
    """Checkpoint of ``step``; every rank calls it (only rank 0 writes unless sharded)."""
    world = learner.world
    if not learner.sharded:
        if world.main:
            save_checkpoint(run_dir, step, learner.model, learner.tokenizer,
                            learner.trainer_state(), keep)  # fmt: skip
        barrier(world)
        return
    import torch.distributed.checkpoint as dcp

    target, tmp = checkpoint_path(run_dir, step), None
    if world.main:
        sweep_partial_checkpoints(run_dir)
        tmp = partial_folder(target)
    tmp = Path(all_gather_objects(str(tmp), world)[0])
    try:
        optimizer = _optimizer_state(learner)
        dcp.save({"state": optimizer["state"]}, checkpoint_id=tmp / OPTIMIZER_DIR)
        weights = _full_model_state(learner.model)  # rank 0 only; the others get {}
        if world.main:
            state = {**learner.trainer_state(), "optimizer_groups": optimizer["param_groups"]}
            write_checkpoint(tmp, step, learner.model, learner.tokenizer, state, weights)
            commit(tmp, target)
            prune_checkpoints(run_dir, keep)
    finally:
        barrier(world)


def save_policy(learner, target: Path, step: int) -> None:
    """The policy alone (no optimizer) to ``target``, atomically; every rank calls it when
    sharded (the weights are gathered), rank 0 alone otherwise."""
    from assay.checkpoints import save_to

    weights = _full_model_state(learner.model) if learner.sharded else None
    if learner.world.main:
        save_to(target, step, learner.model, learner.tokenizer, {}, state_dict=weights)


def load_optimizer_shards(learner, checkpoint: Path, groups: list[dict]) -> None:
    """Load the AdamW state a sharded run saved into ``learner``'s optimizer, resharded to
    this run's ranks (or whole, for an unsharded learner); ``groups``: its param groups, as
    ``trainer_state.pt`` holds them."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    optimizer = _optimizer_state(learner)  # this run's layout, filled in place
    folder = checkpoint / OPTIMIZER_DIR
    dcp.load({"state": optimizer["state"]}, storage_reader=SafeReader(folder))
    optimizer["param_groups"] = groups
    set_optimizer_state_dict(_modules(learner), learner.optimizer, optimizer)


def has_optimizer_shards(checkpoint: Path) -> bool:
    return (checkpoint / OPTIMIZER_DIR).is_dir()


def _modules(learner) -> torch.nn.Module:
    """Every module the optimizer trains, under fixed names (the value head is not part of
    the policy model)."""
    modules = {"policy": learner.model}
    if learner.value_head is not None:
        modules["value_head"] = learner.value_head
    return torch.nn.ModuleDict(modules)


def _optimizer_state(learner) -> dict:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(_modules(learner), learner.optimizer)


def _full_model_state(model) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


class SafeReader(FileSystemReader):
    """DCP's file reader, except that its index (``.metadata``, a pickle) is read by an
    unpickler that builds only DCP's own metadata classes, and entries that DCP would unpickle
    (non-tensor values) are refused. The tensors themselves DCP reads with
    ``torch.load(weights_only=True)``."""

    ALLOWED = {
        ("torch.distributed.checkpoint.metadata", name)
        for name in ("Metadata", "MetadataIndex", "StorageMeta", "TensorProperties",
                     "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata",
                     "_MEM_FORMAT_ENCODING")
    } | {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
         ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
         ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"),
         ("pathlib", "PureWindowsPath")}  # fmt: skip

    def read_metadata(self, *args, **kwargs) -> Metadata:
        path = Path(self.path) / ".metadata"
        try:
            with open(path, "rb") as f:
                metadata = _MetadataUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, OSError) as err:
            raise CheckpointError(
                f"{path} is not an index of tensors that assay wrote ({err}); assay will not "
                "load it."
            ) from None
        if not isinstance(metadata, Metadata):
            raise CheckpointError(f"{path} is not a DCP index; assay will not load it.")
        for key, entry in metadata.state_dict_metadata.items():
            if not isinstance(entry, TensorStorageMetadata):
                raise CheckpointError(
                    f"{path} lists {key!r} as a pickled object; assay writes only tensors there "
                    "and will not unpickle it."
                )
        metadata.storage_meta = metadata.storage_meta or StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in SafeReader.ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}")
