"""Model whose intermediate values exceed the FP16 range (65504) but whose output is finite in FP32.

Factory: ``fp16_overflow``
Inputs:  ``x`` float32 (N, 16), e.g. torch.randn   -- N dynamic
Outputs: ``y`` float32 (N, 16): a non-negative distribution per row (rows sum to 1)

Graph: Gemm (Linear 16->16)  ->  Mul(*1000)  ->  Mul(h*h)  ->  ReduceSum  ->  Div
  * Linear output is O(1);  *1000 -> O(1e3) (still fine in FP16);
  * the square ``h * h`` is O(1e6) > 65504: in FP16 it becomes +Inf.  This is where FP16
    first overflows: ONNX node ``/Mul_1`` (TorchScript exporter, opset 17) / ``node_mul_1``
    (dynamo exporter, opset 18) -- the second Mul, whose two inputs are the same tensor.
  * ReduceSum of Inf is Inf and Inf / Inf = NaN in the output, whereas FP32 is finite.
A plain FP16 conversion (onnxconverter_common.float16.convert_float_to_float16, keep_io_types
or not) therefore yields NaN (and Inf/Inf) in ``y``; blocking the Mul/ReduceSum/Div nodes
(keeping them in FP32) fixes it.
CLI:     --model tests/zoo/overflow.py:fp16_overflow --shape x:1x16
"""

import torch
from torch import nn


class FP16Overflow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x) * 1000.0
        sq = h * h  # > 65504 for |h| > 256, i.e. for almost every element
        return sq / sq.sum(dim=-1, keepdim=True)


def fp16_overflow() -> nn.Module:
    torch.manual_seed(0)
    model = FP16Overflow()
    with torch.no_grad():
        # make sure every pre-activation is O(1): weights ~ N(0, 0.5), bias away from 0
        model.fc.weight.normal_(0.0, 0.5)
        model.fc.bias.uniform_(0.5, 1.0)
    return model.eval()
