"""Models whose export can freeze what the traced inputs decided, for the export soundness tests.

``hushed_branch``  x (N, 4) -> (N, 4): a data-dependent Python `if` inside a block that silences warnings, as
                   some libraries do, so the TorchScript tracer's TracerWarning never reaches infercc;
                   torch.export still refuses the branch and names the line.
``scripted_branch`` x (N, 4) -> (N, 4): the same branch in a torch.jit.script function: the TorchScript exporter
                   keeps it as an If node (a sound graph), though torch.export refuses it too.
``batch_branch``   x (N, 4) -> (N, 4): a branch on the batch size (N > 2). torch.export keeps the branch taken at
                   the traced size and narrows N to 3.. (torch.onnx applies that silently); ONNX keeps no check,
                   so for N of 1 or 2 the graph computes x * 2 where PyTorch computes x - 100.
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


def hushed_branch() -> nn.Module:
    return HushedBranch().eval()


def scripted_branch() -> nn.Module:
    return ScriptedBranch().eval()


def batch_branch() -> nn.Module:
    return BatchBranch().eval()
