"""Models for the non-finite verdict tests.

``nan_model``          x (N, 4) -> y (N, 4): PyTorch itself returns NaN (exit 4 before anything is verified).
``fp16_fragile``       x (N, 16) -> y (N, 16): LayerNorm of (x*1000)^2. Finite in FP32 for any x here; in FP16
                       the square overflows to Inf (then NaN) once |x| > 0.256, so with inputs declared in
                       [0, 0.001] the FP16 artifact passes quantize and fails verify on larger inputs.
``mutates_input``      x (N, 4) -> y (N, 4): forward does x.mul_(3) and returns x + 1 (a correct export).
"""

import torch
from torch import nn


class NanModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class Fp16Fragile(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 1000.0
        return self.norm(h * h)


class MutatesInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(3)
        return x + 1


def nan_model() -> nn.Module:
    return NanModel().eval()


def fp16_fragile() -> nn.Module:
    return Fp16Fragile().eval()


def mutates_input() -> nn.Module:
    return MutatesInput().eval()


class Embedder(nn.Module):
    """x (N, 8) -> (N, 32) L2-normalised rows: a sentence-embedding-like output, not classification scores."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.proj(x), dim=-1)


def embedder() -> nn.Module:
    torch.manual_seed(0)
    return Embedder().eval()


class FrozenBranch(nn.Module):
    """x (N, 4) -> (N, 4): a data-dependent Python `if`. Traced on inputs in [0, 1) it freezes the first branch;
    for negative inputs PyTorch takes the second."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # the line the trace warning names
            return x * 2
        return x - 100


def frozen_branch() -> nn.Module:
    return FrozenBranch().eval()
