"""Write an INT8 Q/DQ graph from cached calibration ranges with onnxruntime.quantization.quantize_static.

Two forms from the same ranges:
  onnxruntime  uint8 asymmetric activations, int8 symmetric (per-channel) weights, int32 bias:
               what ONNX Runtime's CPU integer kernels (QLinearConv, MatMulInteger...) run fast.
  tensorrt     int8 symmetric activations and weights, bias left in float (QuantizeBias=False):
               what TensorRT's explicit-quantization (Q/DQ) path expects.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from infercc.config import CalibrationMethod
from infercc.errors import StageError
from infercc.fsutil import atomic_path
from infercc.quantization.calibrate import _quiet, ort_method, quantizable_ops

FORMS = ("onnxruntime", "tensorrt")


def form_options(form: str) -> tuple[Any, Any, dict[str, Any]]:
    from onnxruntime.quantization import QuantType

    if form == "onnxruntime":
        return QuantType.QUInt8, QuantType.QInt8, {"ActivationSymmetric": False, "WeightSymmetric": True}
    if form == "tensorrt":
        return (
            QuantType.QInt8,
            QuantType.QInt8,
            {
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
            },
        )
    raise ValueError(form)


def write_qdq(
    fp32: Path,
    cache: Path,
    out: Path,
    *,
    form: str,
    method: CalibrationMethod,
    per_channel: bool,
    exclude_nodes: list[str],
    exclude_ops: list[str],
) -> dict[str, Any]:
    """Quantize `fp32` into `out` (atomically) using the ranges in `cache`; returns a short description."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    activation, weight, extra = form_options(form)
    op_types = [op for op in quantizable_ops() if op not in set(exclude_ops)]
    try:
        with atomic_path(out) as tmp, _quiet():
            quantize_static(
                str(fp32),
                str(tmp),
                None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=per_channel,
                activation_type=activation,
                weight_type=weight,
                nodes_to_exclude=list(exclude_nodes),
                calibrate_method=ort_method(method),
                extra_options=dict(extra),
                calibration_cache_path=str(cache),
            )
    except StageError:
        raise
    except Exception as exc:
        raise StageError(
            f"INT8 quantization ({form} form) failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Exclude the failing op type with quantize.exclude_ops, or report the model.",
        ) from exc
    return describe(out)


def describe(path: Path) -> dict[str, Any]:
    """Counts of Q/DQ pairs and of quantized compute nodes (those fed by a DequantizeLinear)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    return {
        "nodes": len(model.graph.node),
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "quantized_nodes": len(quantized_nodes(model)),
    }


def quantized_nodes(model: Any) -> list[tuple[str, str]]:
    """(name, op_type) of compute nodes whose inputs come through a DequantizeLinear."""
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        (n.name, n.op_type)
        for n in model.graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dq_outputs for i in n.input)
    ]
