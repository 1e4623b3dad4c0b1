"""Recurrent models with a dynamic time axis.

``gru_tagger``  -- per-step tagger: bidirectional nn.GRU(16 -> 2x24) + Linear.
    Inputs:  ``x`` float32 (N, T, 16)   -- N and T dynamic
    Outputs: ``tags`` float32 (N, T, 8)
    CLI:     --model tests/zoo/recurrent.py:gru_tagger --shape x:1x20x16
``lstm_audio``  -- clip classifier over mel-like frames: 2-layer nn.LSTM(40 -> 48),
                   mean over time, Linear -> 12 classes.
    Inputs:  ``mel`` float32 (N, T, 40)  -- N and T dynamic
    Outputs: ``logits`` float32 (N, 12)
    CLI:     --model tests/zoo/recurrent.py:lstm_audio --shape mel:1x50x40
"""

import torch
from torch import nn


class GRUTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 24, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(48, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(x)
        return self.proj(h)


class LSTMAudio(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(40)
        self.lstm = nn.LSTM(40, 48, num_layers=2, batch_first=True)
        self.head = nn.Linear(48, 12)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.norm(mel))
        return self.head(h.mean(dim=1))


def gru_tagger() -> nn.Module:
    torch.manual_seed(0)
    return GRUTagger().eval()


def lstm_audio() -> nn.Module:
    torch.manual_seed(0)
    return LSTMAudio().eval()
