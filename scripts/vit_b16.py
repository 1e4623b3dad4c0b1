"""ViT-B/16 written from torch.nn alone, layer for layer the architecture of torchvision's `vit_b_16(weights=None)`
(torchvision cannot be imported beside this box's torch): so its ONNX export, FP16 conversion and verification can
be reproduced on CPU before a GPU run.

Same modules and initialisation that matter for the graph and the numbers: a 16x16 stride-16 Conv2d patch stem,
a class token, learned position embeddings, 12 pre-norm encoder blocks (LayerNorm eps 1e-6,
nn.MultiheadAttention(768, 12, batch_first=True), MLP 768-3072-768 with exact GELU), a final LayerNorm, and a
Linear head that torchvision initialises to zero (so the untrained model's logits are all zero: `random_head=True`
gives it random weights instead).

    infercc compile -m scripts/vit_b16.py:vit_b_16_random_head --shape x:1x3x224x224 ...   # vit_b_16's logits are 0
    infercc quantize -m scripts/vit_b16.py:vit_tiny --shape x:2x3x224x224 --precision fp16    # two blocks, quick
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE, PATCH, LAYERS, HEADS, HIDDEN, MLP = 224, 16, 12, 12, 768, 3072


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True)
        self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(HIDDEN, MLP), nn.GELU(), nn.Linear(MLP, HIDDEN))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        h, _ = self.self_attention(h, h, h, need_weights=False)
        x = x + h
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    def __init__(self, layers: int = LAYERS, random_head: bool = False, classes: int = 1000) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, HIDDEN, kernel_size=PATCH, stride=PATCH)
        fan_in = 3 * PATCH * PATCH
        nn.init.trunc_normal_(self.conv_proj.weight, std=(1 / fan_in) ** 0.5)
        nn.init.zeros_(self.conv_proj.bias)
        tokens = (IMAGE // PATCH) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, HIDDEN).normal_(std=0.02))
        self.layers = nn.Sequential(*[Block() for _ in range(layers)])
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-6)
        self.head = nn.Linear(HIDDEN, classes)
        if not random_head:  # torchvision's vit_b_16(weights=None): the head starts at zero
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, HIDDEN, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos_embedding
        x = self.ln(self.layers(x))
        return self.head(x[:, 0])


def vit_b_16() -> nn.Module:
    """As torchvision's vit_b_16(weights=None): zero head, so every logit is exactly 0."""
    torch.manual_seed(0)
    return ViT().eval()


def vit_b_16_random_head() -> nn.Module:
    torch.manual_seed(0)
    return ViT(random_head=True).eval()


def vit_tiny() -> nn.Module:
    """Two blocks, random head: the same graph pattern at a size a test can afford."""
    torch.manual_seed(0)
    return ViT(layers=2, random_head=True).eval()
