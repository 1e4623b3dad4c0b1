"""Model whose intermediate values exceed the FP16 range (65504) while its FP32 output is finite.

Factory: ``fp16_overflow``
Inputs:  ``x`` float32 (N, 16), e.g. torch.randn   -- N dynamic
Outputs: ``y`` float32 (N, 16), LayerNorm-ed, values O(1)
CLI:     --model tests/zoo/overflow.py:fp16_overflow --shape x:1x16

Graph (TorchScript exporter, opset 17 / dynamo exporter, opset 18 node names):
  Gemm  /fc/Gemm              | node_linear          Linear 16->16, output O(1..10)
  Mul   /Mul                  | node_mul_2           * 1000 -> O(1e3..1e4): still < 65504
  Mul   /Mul_1                | node_mul_5           h*h -> O(1e6..1e8): FIRST OVERFLOW (-> +Inf in FP16)
  LayerNormalization /norm/LayerNormalization | node_layer_norm   brings it back to O(1) in FP32;
                                                     in FP16 the Inf input gives NaN for every element.
With onnxconverter_common.float16.convert_float_to_float16 (keep_io_types True or False) and ONNX Runtime
CPUExecutionProvider the output is all-NaN, FP32 is finite.

Why a LayerNorm and not e.g. ``sq / sq.sum()``: ORT's CPU EP has no FP16 kernels for Mul/Div/ReduceSum; its
InsertCastTransformer runs such chains in FP32 (and drops the Cast pairs between them), so an overflow inside
such a chain is INVISIBLE on CPU (it would show on CUDA/TensorRT).  The value only becomes Inf where it is
materialised in FP16 -- here the input of LayerNormalization, which has a native FP16 CPU kernel.  Blocking
``/Mul_1`` and ``/norm/LayerNormalization`` (op_block_list / node_block_list) from FP16 fixes the output.
"""

import torch
from torch import nn


class FP16Overflow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x) * 1000.0
        sq = h * h  # > 65504 whenever |h| > 256, i.e. for almost every element
        return self.norm(sq)


def fp16_overflow() -> nn.Module:
    torch.manual_seed(0)
    model = FP16Overflow()
    with torch.no_grad():
        # every pre-activation O(1): weights ~ N(0, 0.5), bias away from 0
        model.fc.weight.normal_(0.0, 0.5)
        model.fc.bias.uniform_(0.5, 1.0)
    return model.eval()
