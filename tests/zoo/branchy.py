"""Data-dependent control flow: torch.export refuses it, the TorchScript tracer takes one branch."""

import torch


class Branchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent: torch.export refuses it, tracing takes one branch
            return self.lin(x)
        return self.lin(-x)


def make():
    return Branchy().eval()
