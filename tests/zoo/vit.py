"""A small ViT with the structure of torchvision's vit_b_16 (patch Conv stem, class token, learned positions,
pre-norm blocks with nn.MultiheadAttention, exact GELU MLP, final LayerNorm, Linear head).

Factory: ``small_vit``
Inputs:  ``x`` float32 (N, 3, 32, 32)
Outputs: ``logits`` float32 (N, 10)
Its FP16 form with a dynamic batch is a graph ONNX Runtime 1.31/1.32's CPU layout pass (NchwcTransformer) crashes
on while building the session, as on ViT-B/16.
CLI:     --model tests/zoo/vit.py:small_vit --min-shape x:1x3x32x32 --opt-shape x:2x3x32x32 --max-shape x:4x3x32x32
"""

import torch
from torch import nn

IMAGE, PATCH, HIDDEN, HEADS, MLP, LAYERS, CLASSES = 32, 8, 64, 4, 128, 2, 10


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-6), nn.LayerNorm(HIDDEN, eps=1e-6)
        self.attention = nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(HIDDEN, MLP), nn.GELU(), nn.Linear(MLP, HIDDEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class SmallViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, HIDDEN, kernel_size=PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.randn(1, 1, HIDDEN) * 0.02)
        self.positions = nn.Parameter(torch.randn(1, (IMAGE // PATCH) ** 2 + 1, HIDDEN) * 0.02)
        self.blocks = nn.Sequential(*[Block() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.stem(x).reshape(n, HIDDEN, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.positions
        return self.head(self.norm(self.blocks(x))[:, 0])


def small_vit() -> nn.Module:
    torch.manual_seed(0)
    return SmallViT().eval()
