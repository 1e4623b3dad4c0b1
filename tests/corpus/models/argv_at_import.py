"""A model file that parses the command line at import, as scripts do: it must see only [this file].

Inputs: ``x`` float32 (N, 4) -> Outputs: float32 (N, 4) (ReLU).
"""

import argparse
import sys

import torch
from torch import nn

ARGS = argparse.ArgumentParser().parse_args()  # any infercc flag here would be "unrecognized arguments"
ARGV = list(sys.argv)


class Relu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def make() -> nn.Module:
    assert [__file__] == ARGV, ARGV
    return Relu()
