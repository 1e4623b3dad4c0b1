"""Models for the AOTInductor target's tests.

``tiny_mlp``       -- Linear-ReLU-Linear. Inputs: ``x`` float32 (N, 16) -> (N, 4). N dynamic; exports everywhere.
``fast_path``      -- mean over time then a Linear, with a separate code path when T == 8 (same result).
    Inputs: ``x`` float32 (N, T, 8) -> (N, 4). Eager and ONNX are right for every T; torch.export guards
    on ``T == 8`` and so specialises T to 8 when it traces with T = 8.
``scripted_gate``  -- a TorchScript function branches on the input's sum, then a Linear:
    Inputs: ``x`` float32 (N, 8) -> (N, 4). torch.export cannot export it (a guard on a data-dependent value);
    the TorchScript ONNX exporter keeps both branches (an If node), so ONNX targets still work.
"""

import torch
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return TinyMLP().eval()


class FastPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 8:  # noqa: SIM108  (a "fast path" for the common length: same numbers, other code)
            pooled = x.sum(dim=1) / x.shape[1]
        else:
            pooled = x.mean(dim=1)
        return self.head(pooled)


def fast_path() -> nn.Module:
    torch.manual_seed(0)
    return FastPath().eval()


@torch.jit.script
def _gate(x: torch.Tensor) -> torch.Tensor:
    if bool(x.sum() > 0):
        return x * 2
    return x - 1


class ScriptedGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_gate(x))


def scripted_gate() -> nn.Module:
    torch.manual_seed(0)
    return ScriptedGate().eval()
