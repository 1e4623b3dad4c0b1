"""Model returning a dict of two tensors.

Factory: ``dict_model``
Inputs:  ``x`` float32 (N, 12)   -- N dynamic
Outputs: dict {"scores": float32 (N, 3), "probs": float32 (N, 3)}
         Both exporters flatten the dict in insertion order (scores, probs) into two ONNX outputs; the keys
         are lost: default output names are 'linear_1', 'softmax' (dynamo) or '8'-style numbers
         (TorchScript), so pass output_names=["scores", "probs"].
CLI:     --model tests/zoo/dict_out.py:dict_model --shape x:1x12
"""

import torch
from torch import nn


class DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.body(x)
        return {"scores": scores, "probs": torch.softmax(scores, dim=-1)}


def dict_model() -> nn.Module:
    torch.manual_seed(0)
    return DictModel().eval()
