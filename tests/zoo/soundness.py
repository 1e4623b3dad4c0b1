"""Models whose export can freeze what the traced inputs decided, for the export soundness tests.

``hushed_branch``  x (N, 4) -> (N, 4): a data-dependent Python `if` inside a block that silences warnings, as
                   some libraries do, so the TorchScript tracer's TracerWarning never reaches infercc;
                   torch.export still refuses the branch and names the line.
``scripted_branch`` x (N, 4) -> (N, 4): the same branch in a torch.jit.script function: the TorchScript exporter
                   keeps it as an If node (a sound graph), though torch.export refuses it too.
``batch_branch``   x (N, 4) -> (N, 4): a branch on the batch size (N > 2). torch.export keeps the branch taken at
                   the traced size and narrows N to 3.. (torch.onnx applies that silently); ONNX keeps no check,
                   so for N of 1 or 2 the graph computes x * 2 where PyTorch computes x - 100.
``wrong_at_one``   x (N, 4) -> (N, 4): a branch on N != 1 with a different result for a batch of one. torch.export
                   takes N != 1 as known (it assumes sizes of 2 and more) without narrowing the range, so only
                   parity at the min shape (N = 1) sees the graph is wrong there.
``downsample``     x (N, 8, 6, 6) -> (N, 8, 3, 3): ConvNeXt's downsampling (a LayerNorm over channels written as
                   permute -> layer_norm -> permute, then a 2x2 stride-2 convolution). Its channels-last strides
                   make torch.export narrow N to 2.. (no line of the model's), and the graph is right at 1.
"""

import warnings

import torch
from torch import nn


class HushedBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if x.sum() > 0:  # the line torch.export names
                return x * 2
        return x - 100


@torch.jit.script
def _branch(x: torch.Tensor) -> torch.Tensor:
    if bool(x.sum() > 0):
        return x * 2
    return x - 100


class ScriptedBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _branch(x)


class BatchBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:  # the line torch.export guards on
            return x * 2
        return x - 100


class WrongAtOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return x * 2
        return x - 100


def wrong_at_one() -> nn.Module:
    return WrongAtOne().eval()


class Downsample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.conv = nn.Conv2d(8, 8, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.conv(x)


def downsample() -> nn.Module:
    torch.manual_seed(0)
    return Downsample().eval()


def hushed_branch() -> nn.Module:
    return HushedBranch().eval()


def scripted_branch() -> nn.Module:
    return ScriptedBranch().eval()


def batch_branch() -> nn.Module:
    return BatchBranch().eval()
