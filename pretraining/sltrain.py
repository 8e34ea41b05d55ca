"""SLTrain: each weight is a low-rank product plus a sparse matrix with a fixed random support.

Han et al. 2024, "SLTrain: a sparse plus low-rank approach for parameter and memory efficient
pretraining":

    W = (alpha / r) * B A + S,   A: (r, in),  B: (out, r),  S sparse with density delta

The support of S is drawn uniformly at random once, at construction, and never changes; only
its values train. That costs ``r * (in + out) + round(delta * in * out)`` parameters per layer.

Init (following the paper): A and B are Kaiming-uniform like ``nn.Linear``'s weight (fan-in
``in`` for A, ``r`` for B), and the sparse values are ``U(+-1/sqrt(in))``, the bound a dense
``nn.Linear(in, out)`` draws its entries from, so S starts as a random subset of a default dense
init. B is *not* zeroed: this is pretraining from scratch, there is no pretrained weight the
low-rank part must leave intact (unlike LoRA/ReLoRA), and a random B lets A learn from step 0.

The layer has ``dense_weight()``, so :func:`pretraining.relora.dense_state_dict` exports it as a
plain ``.weight``. The forward pass materialises the dense ``(out, in)`` weight and lets autograd
keep it; the paper's custom backward that recomputes it instead (to save activation memory) is
not implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from assay.errors import ConfigError
from pretraining.relora import LLAMA_LINEAR_TARGETS, replace_linears


class SLTrainLinear(nn.Module):
    """A linear layer with weight ``(alpha / rank) * B @ A + S``, S on a fixed random support.

    Buffers and parameters: ``lora_A`` ``(rank, in)``, ``lora_B`` ``(out, rank)``,
    ``sparse_values`` ``(nnz,)`` (trainable) and ``sparse_index`` ``(nnz,)`` (int64 buffer of
    sorted flat indices into the row-major ``(out, in)`` weight, drawn without replacement),
    with ``nnz = round(density * in * out)``. Random draws use ``generator`` on the CPU.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        alpha: float,
        density: float,
        generator: torch.Generator | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        _check_args(in_features, out_features, rank, alpha, density)
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.scale = alpha / rank
        n_weights = in_features * out_features
        nnz = round(density * n_weights)
        support = torch.randperm(n_weights, generator=generator)[:nnz].sort().values  # (nnz,)
        self.register_buffer("sparse_index", support)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.empty(out_features, rank))
        self.sparse_values = nn.Parameter(torch.empty(nnz))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-uniform A and B, ``U(+-1/sqrt(in))`` sparse values and bias (support kept)."""
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.sparse_values, -bound, bound, generator=generator)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    @property
    def nnz(self) -> int:
        """Number of entries in the sparse support."""
        return self.sparse_index.numel()

    def sparse_weight(self) -> torch.Tensor:
        """S as a dense ``(out, in)`` tensor, zero off the support; differentiable in the values."""
        flat = self.sparse_values.new_zeros(self.out_features * self.in_features)
        return flat.scatter(0, self.sparse_index, self.sparse_values).view(
            self.out_features, self.in_features
        )

    def dense_weight(self) -> torch.Tensor:
        """``(alpha / rank) * B @ A + S``, ``(out, in)``; gradients reach A, B and the values."""
        return self.scale * (self.lora_B @ self.lora_A) + self.sparse_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"scale={self.scale:g}, nnz={self.nnz}, bias={self.bias is not None}"
        )


def convert_sltrain(
    model: nn.Module,
    rank: int,
    alpha: float,
    density: float,
    targets: Iterable[str] = LLAMA_LINEAR_TARGETS,
    generator: torch.Generator | None = None,
) -> dict[str, SLTrainLinear]:
    """Replace the target linear layers of ``model`` by fresh :class:`SLTrainLinear` layers.

    For pretraining from scratch: the dense weights are discarded. Each new layer gets the
    replaced layer's bias setting, device and dtype. Returns ``{qualified name: layer}``.
    """

    def build(linear: nn.Linear) -> SLTrainLinear:
        layer = SLTrainLinear(
            linear.in_features,
            linear.out_features,
            rank,
            alpha,
            density,
            generator=generator,
            bias=linear.bias is not None,
        )
        # .to() casts floating tensors only: the int64 support stays int64.
        return layer.to(device=linear.weight.device, dtype=linear.weight.dtype)

    return replace_linears(model, targets, build)


def _check_args(in_features: int, out_features: int, rank: int, alpha: float, density: float):
    if not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"The SLTrain rank must be a positive integer, got {rank!r}.")
    if alpha <= 0:
        raise ConfigError(f"alpha must be positive (B A is scaled by alpha/rank), got {alpha}.")
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"The sparse density must be in (0, 1], got {density}.")
    if round(density * in_features * out_features) == 0:
        raise ConfigError(
            f"density={density} leaves no sparse entry in a {out_features}x{in_features} layer; "
            f"use at least {1 / (in_features * out_features):.2g}."
        )
