"""Factories that misbehave, for error-path tests.

``not_a_module`` -- returns the int 42 instead of an nn.Module.
``raises``       -- raises ValueError("boom") when called.
``bad_forward``  -- a valid nn.Module whose forward only works when the last dim of ``x`` is 7:
    Inputs:  ``x`` float32 (N, 7)  -> Outputs: float32 (N, 3)
    --shape x:1x7 works; --shape x:1x8 fails inside forward with
    RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x8 and 7x3)
``exits_in_factory`` / ``exits_with_3`` -- the factory calls sys.exit(0) / raises SystemExit(3).
``exits_in_forward`` -- forward(x) raises SystemExit(0).
``returns_none``     -- forward(x) returns None.
"""

import torch
from torch import nn


def not_a_module():
    return 42


def raises():
    raise ValueError("boom")


class BadForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def bad_forward() -> nn.Module:
    torch.manual_seed(0)
    return BadForward().eval()


def exits_in_factory() -> nn.Module:
    import sys

    sys.exit(0)


def exits_with_3() -> nn.Module:
    raise SystemExit(3)


class ExitsInForward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise SystemExit(0)


def exits_in_forward() -> nn.Module:
    return ExitsInForward().eval()


class ReturnsNone(nn.Module):
    def forward(self, x: torch.Tensor) -> None:
        return None


def returns_none() -> nn.Module:
    return ReturnsNone().eval()
