"""CoLA: a low-rank bottleneck with a nonlinearity in place of each dense projection.

Liu et al. 2025, "CoLA: Compute-Efficient Pre-Training of LLMs via Low-Rank Activation".
Each target ``nn.Linear(in, out)`` of the model becomes a small auto-encoder

    y = B sigma(A x),   A: (rank, in),  B: (out, rank),  sigma = SiLU

with ``rank * (in + out)`` weights instead of ``in * out``, trained from scratch. Unlike ReLoRA
or SLTrain the layer is *not* a reparametrised dense matrix: sigma is nonlinear, so no
``(out, in)`` weight reproduces it and it cannot be merged into an ``nn.Linear`` or exported as a
plain LLaMA checkpoint; a CoLA model is saved and loaded with its own architecture (there is
deliberately no ``dense_weight()`` here, so :func:`pretraining.relora.dense_state_dict` leaves
these layers' ``A.weight``/``B.weight`` as they are).

Init: A and B are initialised exactly like ``nn.Linear``'s default (Kaiming-uniform with
``a=sqrt(5)``, i.e. ``U(+-1/sqrt(fan_in))`` with fan-in ``in`` for A and ``rank`` for B). CoLA is
an architectural change, so each factor is treated as the ordinary layer it is: its output scale
is independent of its width and of the chosen rank, and because A and B are ``nn.Linear``
modules, re-running the model's own init (``LlamaForCausalLM._init_weights``) re-initialises them
the same way it does every other projection. The cost is a smaller output at init than the
dense layer it replaces (about 0.31x the std for unit Gaussian inputs, since SiLU shrinks its
input); that is harmless in pre-norm residual blocks, whose branches are added to the stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from assay.errors import ConfigError
from pretraining.relora import LLAMA_LINEAR_TARGETS, replace_linears


class CoLALinear(nn.Module):
    """``y = B(SiLU(A x))``: a rank-``rank`` bottleneck replacing ``nn.Linear(in, out)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"The CoLA rank must be a positive integer, got {rank!r}.")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        # skip_init: reset_parameters draws the init below, without touching the global RNG.
        self.A = skip_init(nn.Linear, in_features, rank, bias=False)  # (rank, in)
        self.B = skip_init(nn.Linear, rank, out_features, bias=bias)  # (out, rank)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """``nn.Linear``'s default init for both factors, drawn from ``generator`` if given."""
        for layer in (self.A, self.B):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return self.B(F.silu(self.A(x)))  # the activation is (..., rank): the low-rank part

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def convert_cola(
    model: nn.Module,
    rank: int,
    targets: Iterable[str] = LLAMA_LINEAR_TARGETS,
    generator: torch.Generator | None = None,
) -> dict[str, CoLALinear]:
    """Replace the target linear layers of ``model`` by fresh :class:`CoLALinear` layers, in place.

    Meant for pretraining from scratch: the dense weights are discarded. Each new layer gets the
    replaced layer's bias setting, device and dtype. Returns ``{qualified name: layer}``.
    """

    def build(linear: nn.Linear) -> CoLALinear:
        # Init on the CPU (so a CPU generator works anywhere), then move to the layer's place.
        layer = CoLALinear(
            linear.in_features, linear.out_features, rank, linear.bias is not None, generator
        )
        return layer.to(device=linear.weight.device, dtype=linear.weight.dtype)

    return replace_linears(model, targets, build)
