"""A tiny CNN whose forward sleeps, so a stage is long enough to be interrupted mid-way.

Factory: ``slow_cnn``. Inputs: ``x`` float32 (N, 3, 32, 32). Outputs: ``logits`` float32 (N, 10).
Each forward call sleeps INFERCC_TEST_SLEEP seconds (default 0); export calls forward several
times (reference outputs, tracing), so a sleep makes the export stage long enough to kill.
The sleep does not change the outputs: artifacts equal those of a run without it.
"""

import os
import time

import torch
from torch import nn


class SlowCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delay = float(os.environ.get("INFERCC_TEST_SLEEP", "0") or 0)
        if delay:
            time.sleep(delay)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def slow_cnn() -> nn.Module:
    torch.manual_seed(0)
    return SlowCNN().eval()
