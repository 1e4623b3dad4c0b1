"""Two inputs, two outputs (tuple).

Factory: ``two_in_two_out``
Inputs:  ``image``    float32 (N, 3, 16, 16)  -- N dynamic
         ``features`` float32 (N, 8)          -- same N
Outputs: tuple ``(logits, embedding)``: logits float32 (N, 5), embedding float32 (N, 4)
         (exported output names are positional; give them with output_names=["logits", "embedding"])
CLI:     --model tests/zoo/two_io.py:two_in_two_out --shape image:1x3x16x16 --shape features:1x8
"""

import torch
from torch import nn


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(8 + 16, 5)
        self.embed = nn.Linear(8 + 16, 4)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.flatten(self.conv(image), 1)
        b = self.mlp(features)
        h = torch.cat([a, b], dim=1)
        return self.head(h), torch.tanh(self.embed(h))


def two_in_two_out() -> nn.Module:
    torch.manual_seed(0)
    return TwoInTwoOut().eval()
