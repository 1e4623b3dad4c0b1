"""Small conv/bn/relu/pool image classifier.

Factory: ``small_cnn``
Inputs:  ``x``      float32 (N, 3, 32, 32)   -- N dynamic
Outputs: ``logits`` float32 (N, 10)
CLI:     --model tests/zoo/cnn.py:small_cnn --shape x:1x3x32x32
~0.1 MB of weights. Exports cleanly with both exporters (dynamic N).
"""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def _randomise_bn(model: nn.Module) -> None:
    # Non-trivial running stats so BN folding is actually exercised.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN()
    _randomise_bn(model)
    return model.eval()


class Relu6CNN(nn.Module):
    """MobileNet-style: conv/bn/ReLU6, a depthwise conv/bn/ReLU6 read by two convs, and a last ReLU6 read by the
    pooling (not a convolution: that one stays a Clip)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.depthwise = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.left, self.right = nn.Conv2d(16, 24, 1), nn.Conv2d(16, 24, 1)
        self.head = nn.Sequential(nn.Conv2d(24, 32, 1), nn.BatchNorm2d(32), nn.ReLU6())
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(self.stem(x))
        h = self.head(self.left(h) + self.right(h))
        return self.classifier(h.mean((2, 3)))


def relu6_cnn() -> nn.Module:
    """Weights scaled so that some activations pass 6 (the clamp matters)."""
    torch.manual_seed(0)
    model = Relu6CNN()
    _randomise_bn(model)
    with torch.no_grad():
        for conv in (model.stem[0], model.depthwise[0]):
            conv.weight.mul_(10.0)
    return model.eval()
