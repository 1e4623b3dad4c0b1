"""ConvNeXt-Tiny written from torch.nn alone, layer for layer the architecture of torchvision's
`convnext_tiny(weights=None)` (torchvision cannot be imported beside this box's torch): so its ONNX export and
graph can be studied on CPU before a GPU run.

A 4x4 stride-4 stem with a channels-first LayerNorm, four stages of [3, 3, 9, 3] blocks at widths
[96, 192, 384, 768] with a LayerNorm + 2x2 stride-2 downsampling between them, and blocks of: 7x7 depthwise
convolution, permute to channels-last, LayerNorm (eps 1e-6), Linear 4x, exact GELU, Linear, permute back, a
per-channel layer scale (1e-6 at initialisation) and the residual add; then average pooling, LayerNorm, Linear.
Convolutions and Linears get truncated-normal weights (std 0.02) and zero biases, as torchvision initialises them.

    infercc compile -m scripts/convnext_tiny.py:convnext_tiny --shape x:1x3x224x224 ...
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DEPTHS, WIDTHS = (3, 3, 9, 3), (96, 192, 384, 768)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim),
            Permute((0, 2, 3, 1)),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute((0, 3, 1, 2)),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * self.block(x) + x


class Permute(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class ConvNeXt(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, WIDTHS[0], kernel_size=4, stride=4), LayerNorm2d(WIDTHS[0], eps=1e-6))
        ]
        for stage, (depth, width) in enumerate(zip(DEPTHS, WIDTHS, strict=True)):
            layers.append(nn.Sequential(*[Block(width) for _ in range(depth)]))
            if stage < len(WIDTHS) - 1:
                downsample = nn.Conv2d(width, WIDTHS[stage + 1], kernel_size=2, stride=2)
                layers.append(nn.Sequential(LayerNorm2d(width, eps=1e-6), downsample))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            LayerNorm2d(WIDTHS[-1], eps=1e-6), nn.Flatten(1), nn.Linear(WIDTHS[-1], classes)
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny() -> nn.Module:
    torch.manual_seed(0)
    return ConvNeXt().eval()
