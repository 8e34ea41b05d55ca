"""The file that carries new weights to vLLM's workers (trainers/engines/vllm.py): every name
comes back with its exact values, tied tensors are stored once, and nothing is unpickled."""

import json
import os

import pytest
import torch
from safetensors import safe_open

from trainers.engines.vllm import _weights_dir, read_weights, write_weights


def test_every_name_comes_back_exactly_and_tied_tensors_are_stored_once(tiny_lm, tmp_path):
    model, _ = tiny_lm
    torch.manual_seed(0)
    named = [(n, p.detach() + torch.randn_like(p)) for n, p in model.named_parameters()]
    embed = dict(named)["model.embed_tokens.weight"]
    named.append(("lm_head.weight", embed))  # tied: the same tensor under a second name
    named.append(("half.weight", torch.randn(3, 5).to(torch.bfloat16)))
    named.append(("view.weight", embed[2:5]))  # same storage, another offset: a tensor of its own
    path = write_weights(named, str(tmp_path))
    back = list(read_weights(path))
    assert [n for n, _ in back] == [n for n, _ in named]  # the caller's order, not sorted
    expected = dict(named)
    for name, tensor in back:
        assert tensor.dtype == expected[name].dtype and torch.equal(tensor, expected[name]), name
    with safe_open(path, framework="pt") as f:
        stored = set(f.keys())
        sources = dict(json.loads(f.metadata()["assay.names"]))
    assert sources["lm_head.weight"] == "model.embed_tokens.weight"
    assert "lm_head.weight" not in stored and "view.weight" in stored


def test_a_failed_write_leaves_no_file(tmp_path):
    sparse = torch.eye(3).to_sparse()
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error for non-dense tensors
        write_weights([("a", torch.ones(2)), ("sparse", sparse)], str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_the_weights_go_to_shared_memory_only_when_it_has_room():
    assert _weights_dir(1) in ("/dev/shm", __import__("tempfile").gettempdir())
    assert _weights_dir(1 << 60) != "/dev/shm"  # an exabyte never fits
