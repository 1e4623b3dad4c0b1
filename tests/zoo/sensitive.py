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
(weight initializer ``outlier_conv.weight``).  Other nodes (dynamo=False): /stem/stem.0/Conv (BN folded
in), /mid/Conv, /mid_act/Relu, /outlier_conv/Conv, /out_act/Relu, /pool/MaxPool, /Flatten,
/feat_norm/BatchNormalization, /head/Gemm.
With dynamo=True (opset 18) the same conv is ``node_conv2d_2`` -- dynamo node names are derived from
aten op counters and are NOT stable across model edits; match on the weight name instead.

Measured (onnxruntime 1.32 quantize_static, QDQ, QInt8/QInt8, 32 N(0,1) calibration samples, 64 N(0,1)
test inputs, top-1 agreement with FP32 / max |logit error|, logits range about +-1.5):
    all nodes INT8, per_channel=False        0.03 / 3.1
    all nodes INT8, per_channel=True         0.03 / 3.1
    exclude /outlier_conv/Conv, per-tensor   1.00 / 0.13
    exclude /outlier_conv/Conv, per-channel  0.95 / 0.16
    exclude /mid/Conv instead                0.03 / 3.1   (no help)
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
        self.pool = nn.AdaptiveMaxPool2d(1)  # max, not mean: keeps logits input-dependent on noise inputs
        self.feat_norm = nn.BatchNorm1d(32)  # stats set in the factory so logits vary per input
        self.head = nn.Linear(32, 10)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_act(self.mid(self.stem(x)))
        x = self.out_act(self.outlier_conv(x))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feat_norm(self.pooled(x)))


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
        model.head.bias.zero_()
        # normalise the pooled features with statistics of N(0,1) inputs (what tests feed)
        model.eval()
        g = torch.Generator().manual_seed(1)
        feats = model.pooled(torch.randn(256, 3, 32, 32, generator=g))
        model.feat_norm.running_mean.copy_(feats.mean(0))
        model.feat_norm.running_var.copy_(feats.var(0) + 1e-4)
    return model.eval()
