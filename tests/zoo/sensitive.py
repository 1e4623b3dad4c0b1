"""Small CNN with exactly ONE layer that breaks under INT8 quantization.

Factory: ``quant_sensitive``
Inputs:  ``x`` float32 (N, 3, 32, 32), e.g. torch.randn / images in [0, 1]   -- N dynamic
Outputs: ``logits`` float32 (N, 10)
CLI:     --model tests/zoo/sensitive.py:quant_sensitive --shape x:1x3x32x32

The sensitive layer is the 1x1 conv ``self.outlier_conv`` (32 -> 32 channels).
Its weight has a huge outlier (+-100) in input column 31 for EVERY output channel, while all
other weights are ~0.1.  Input channel 31 is a "dead" channel (the preceding conv has zero
weights and a negative bias there, so after ReLU it is exactly 0), so in FP32 the outlier
never contributes and the activations keep a normal range.  But the INT8 weight scale of that
conv becomes ~100/127 ~= 0.8 -- per-tensor AND per-channel -- so every ordinary weight rounds to
0 and the conv's output (and hence the logits) is destroyed.  Activations everywhere have a
normal range, so excluding only this node from quantization restores accuracy.

ONNX node name after torch.onnx.export(dynamo=False, opset_version=17): ``/outlier_conv/Conv``
(dynamo=True, opset 18 names it ``node_conv2d_2``; input weight initializer ``outlier_conv.weight``).
Other nodes (dynamo=False): /stem/stem.0/Conv (BN folded in), /mid/Conv, /outlier_conv/Conv,
/head/Gemm.
"""

import torch
from torch import nn


class QuantSensitive(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.mid = nn.Conv2d(16, 32, 3, padding=1)
        self.mid_act = nn.ReLU()
        self.outlier_conv = nn.Conv2d(32, 32, 1)
        self.out_act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_act(self.mid(self.stem(x)))
        x = self.out_act(self.outlier_conv(x))
        return self.head(torch.flatten(self.pool(x), 1))


def quant_sensitive() -> nn.Module:
    torch.manual_seed(0)
    model = QuantSensitive()
    with torch.no_grad():
        bn = model.stem[1]
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.8, 1.2)
        # dead channel 31 of `mid`: always exactly 0 after ReLU
        model.mid.weight[31].zero_()
        model.mid.bias[31] = -1.0
        # outlier column in the sensitive conv
        w = model.outlier_conv.weight  # (32, 32, 1, 1), kaiming-uniform ~ +-0.18
        w[:, 31] = 100.0
        w[::2, 31] = -100.0
    return model.eval()
