"""Empirical bias correction of an INT8 Q/DQ graph (Nagel et al., "Data-Free Quantization", section 4.2,
empirical variant): quantized weights shift each output channel's mean; over the calibration data, measure the
mean error of every quantized Conv/Gemm output against the FP32 graph, channel by channel, and take it out of
that node's bias. The bias of the ONNX Runtime form is an int32 tensor dequantized with scale s_x * s_w, so the
correction is rounded to that grid.

Layers are corrected one at a time in graph order, each measured with the layers before it already corrected,
so a layer corrects its own error and not the error it inherits.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from infercc.fsutil import atomic_path

RENAMED = "_QuantizeLinear_Input"
ACTIVATIONS = ("Clip", "Relu")


def _bias_targets(model: Any) -> dict[str, tuple[str, str]]:
    """Conv/Gemm output tensor -> (int32 bias initializer, its scale initializer), for quantized nodes whose
    bias comes through a DequantizeLinear of an int32 initializer."""
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    targets = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        dq = producer.get(node.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        if inits[dq.input[0]].data_type != 6:  # TensorProto.INT32
            continue
        targets[node.output[0]] = (dq.input[0], dq.input[1])
    return targets


def _fp32_twins(fp32_model: Any, names: list[str]) -> dict[str, str]:
    """The FP32 tensor each quantized Conv/Gemm output stands for. The quantizer folds a following Clip/Relu
    into the output's range and gives the Conv that activation's output name, so the FP32 twin of 'hardtanh' is
    the input of the FP32 Clip named so (the pre-activation); a graph output it puts a QuantizeLinear behind is
    renamed ('logits' -> 'logits_QuantizeLinear_Input')."""
    producer = {o: n for n in fp32_model.graph.node for o in n.output}
    twins = {}
    for name in names:
        base = name.removesuffix(RENAMED)
        node = producer.get(base)
        if node is None:
            continue
        if node.op_type in ACTIVATIONS and node.input and node.input[0] in producer:
            base = node.input[0]
        if producer[base].op_type in ("Conv", "Gemm"):
            twins[name] = base
    return twins


def _with_outputs(model: Any, names: list[str]) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    copy.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in present
    )
    return copy.SerializeToString()


def _channel_means(session: Any, names: list[str], batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Per-channel (axis 1) mean of each named tensor over every batch, in `names` order."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for feed in batches:
        for name, value in zip(names, session.run(names, feed), strict=True):
            axes = (0, *range(2, value.ndim)) if value.ndim > 2 else (0,)
            sums[name] = sums.get(name, 0) + value.astype(np.float64).sum(axis=axes)
            counts[name] = counts.get(name, 0) + value.size // value.shape[1]
    return [sums[n] / max(counts[n], 1) for n in names]


def correct_biases(
    fp32: Path,
    int8: Path,
    out: Path,
    batches: Iterable[dict[str, np.ndarray]],
    threads: int | None = None,
) -> dict[str, Any]:
    """Write `out`: `int8` with each quantized Conv/Gemm bias shifted by its mean output error on `batches`."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    feeds = list(batches)
    model = onnx.load(str(int8))
    fp32_model = onnx.load(str(fp32))
    twin = _fp32_twins(fp32_model, list(_bias_targets(model)))
    targets = {n: t for n, t in _bias_targets(model).items() if n in twin}
    names = sorted(targets)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 4
    fp32_names = [twin[n] for n in names]
    fp32_session = ort.InferenceSession(_with_outputs(fp32_model, fp32_names), options)
    reference = dict(zip(names, _channel_means(fp32_session, fp32_names, feeds), strict=True))
    inits = {i.name: i for i in model.graph.initializer}
    order = [o for n in model.graph.node for o in n.output if o in targets]  # topological
    shifted = 0
    # one layer at a time, in graph order: each is measured with every layer before it already corrected, so it
    # corrects its own error only (correcting all at once over-corrects: the downstream error was upstream's)
    for name in order:
        session = ort.InferenceSession(_with_outputs(model, [name]), options)
        (mean,) = _channel_means(session, [name], feeds)
        bias_name, scale_name = targets[name]
        bias = numpy_helper.to_array(inits[bias_name]).astype(np.int64)
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
        step = np.round((mean - reference[name]) / scale).astype(np.int64)
        shifted += int(np.count_nonzero(step))
        fixed = np.clip(bias - step, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        inits[bias_name].CopyFrom(numpy_helper.from_array(fixed, bias_name))
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return {"corrected_nodes": len(order), "channel_shifts": shifted}
