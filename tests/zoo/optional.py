"""A forward() with optional parameters: ``x`` (N, 6) float, optional ``mask`` (N, 4), optional ``scale``.

Returns a tuple ``(y, None)``: the None is dropped from the outputs.
CLI: --model tests/zoo/optional.py:optional_inputs --shape x:2x6 [--shape mask:2x4]
"""

import torch
from torch import nn


class OptionalMask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, x, mask=None, scale: float = 1.0):
        y = self.lin(x) * scale
        if mask is not None:
            y = y * mask
        return y, None


def optional_inputs() -> nn.Module:
    torch.manual_seed(0)
    return OptionalMask().eval()
