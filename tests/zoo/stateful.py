"""Tiny stateful models: each step takes the state its own outputs gave at the step before.

``leaky_sum``  -- a leaky integrator: h_out = 0.9 h + x, y = Linear(h_out). Its outputs depend on every
                  earlier step: with the state carried, h after t steps of x = 1 is (1 - 0.9^t) / 0.1.
    Inputs:  ``x`` float32 (1, 4), ``h`` float32 (1, 4) (state <- h_out)
    Outputs: ``y`` float32 (1, 2), ``h_out`` float32 (1, 4)
``gru_detector`` -- a small GRU-like cell over x (1, 8) with a sigmoid probability output.
    Inputs:  ``x`` float32 (1, 8), ``h`` float32 (1, 16) (state <- h_out)
    Outputs: ``event_prob`` float32 (1, 1), ``h_out`` float32 (1, 16)
``narrow_state`` -- h_out is (1, 4) whatever h is: for the shape-mismatch error.
"""

import torch
from torch import nn


class LeakySum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        h_out = 0.9 * h + x
        return {"y": self.head(h_out), "h_out": h_out}


class GruDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gates = nn.Linear(8 + 16, 32)
        self.candidate = nn.Linear(8 + 16, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        h_out = (1 - z) * n + z * h
        return {"event_prob": torch.sigmoid(4.0 * self.head(h_out)), "h_out": h_out}


class NarrowState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        h_out = self.proj(x) + h.mean()
        return {"y": h_out.sum(dim=1, keepdim=True), "h_out": h_out}


def leaky_sum() -> nn.Module:
    torch.manual_seed(0)
    return LeakySum().eval()


def gru_detector() -> nn.Module:
    torch.manual_seed(3)
    return GruDetector().eval()


def narrow_state() -> nn.Module:
    torch.manual_seed(0)
    return NarrowState().eval()
