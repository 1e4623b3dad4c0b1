"""Graphs that broke FP16 conversion with onnxconverter-common 1.16 (ONNX Runtime refused the result).

``output_feeds_node``  -- a graph output that also feeds another node (a recurrent-state-like output).
    Inputs: ``x`` float32 (N, 16) -> ``h`` (N, 16), ``y`` (N, 8)
``masked_mean``        -- an int64 mask Cast to float and summed (a reduction after a Cast), then a mean.
    Inputs: ``x`` float32 (N, T, 16), ``mask`` int64 (N, T) in {0, 1} -> ``pooled`` (N, 16)
``reduce_mean``        -- ReduceMean over the last axis feeding a Linear.
    Inputs: ``x`` float32 (N, 8, 16) -> ``y`` (N, 8)
``layer_norm``         -- Linear, LayerNorm, GELU.
    Inputs: ``x`` float32 (N, 16) -> ``y`` (N, 16)
"""

import torch
from torch import nn


class OutputFeedsNode(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.head = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.fc(x))
        return h, self.head(h)


class MaskedMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(torch.float32).unsqueeze(-1)
        summed = (self.fc(x) * m).sum(dim=1)
        return summed / m.sum(dim=1).clamp(min=1.0)


class ReduceMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=-1, keepdim=True)).mean(dim=-1)


class LayerNormGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.norm(self.fc(x)))


def _seeded(cls: type) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


def output_feeds_node() -> nn.Module:
    return _seeded(OutputFeedsNode)


def masked_mean() -> nn.Module:
    return _seeded(MaskedMean)


def reduce_mean() -> nn.Module:
    return _seeded(ReduceMean)


def layer_norm() -> nn.Module:
    return _seeded(LayerNormGelu)


class CeluHead(nn.Module):
    """ONNX's Celu is defined for float32 only: its FP16 form is a graph ONNX Runtime refuses to load."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.act = nn.CELU()
        self.head = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)))


def celu_head() -> nn.Module:
    return _seeded(CeluHead)
