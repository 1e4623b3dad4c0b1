"""ReLU6 between convolutions as HardSigmoid, for ONNX Runtime's CUDA provider.

ONNX Runtime's CUDA Clip kernel reads its bounds through pointers and moves about 1.4 TB/s on an H200, less than half
of what its unary kernels (Relu, HardSigmoid) move; in a MobileNet/EfficientNet-Lite network the 30-odd ReLU6
(Clip 0..c) layers were 40% of the GPU time at batch 32. Between two convolutions the bound can move into the
weights, exactly in real arithmetic:

    Conv(x; W, b) -> Clip(0, c) -> Conv(.; W2)   ==   Conv(x; W/c, b/c) -> HardSigmoid(alpha=1, beta=0) -> Conv(.; c*W2)

since clip(y, 0, c) = c * clip(y/c, 0, 1) and a convolution is linear in its input (zero padding stays zero). Only a
Clip whose lower bound is 0, whose input comes from a Conv read by nothing else and whose every reader is a Conv
(as its data input) is rewritten; the weights are new initializers, so shared ones stay as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infercc.graphedit import GraphIndex, attr, remove_dead


def _bounds(g: GraphIndex, clip: Any) -> tuple[float, float] | None:
    if len(clip.input) >= 3 and clip.input[1] and clip.input[2]:
        low, high = g.const(clip.input[1]), g.const(clip.input[2])
        if low is None or high is None or low.size != 1 or high.size != 1:
            return None
        return float(low.ravel()[0]), float(high.ravel()[0])
    if len(clip.input) == 1 and attr(clip, "min") is not None and attr(clip, "max") is not None:
        return float(attr(clip, "min")), float(attr(clip, "max"))  # opset < 11
    return None


def _conv_weight(g: GraphIndex, conv: Any) -> np.ndarray | None:
    weight = g.const(conv.input[1]) if len(conv.input) > 1 else None
    return weight if weight is not None and weight.dtype in (np.float32, np.float16) else None


def _rewritable(g: GraphIndex, clip: Any) -> float | None:
    """The bound c when this Clip(0, c) sits between a Conv and Convs only; None otherwise."""
    bounds = _bounds(g, clip)
    if bounds is None or bounds[0] != 0.0 or not (np.isfinite(bounds[1]) and bounds[1] > 0):
        return None
    producer = g.op(clip.input[0], "Conv")
    if producer is None or not g.sole_use(producer.output[0]) or _conv_weight(g, producer) is None:
        return None
    if len(producer.input) > 2 and producer.input[2] and g.const(producer.input[2]) is None:
        return None
    readers = g.consumers.get(clip.output[0], [])
    if not readers or clip.output[0] in g.outputs:
        return None
    for reader in readers:
        if (
            reader.op_type != "Conv"
            or reader.domain not in ("", "ai.onnx")
            or list(reader.input).count(clip.output[0]) != 1
            or reader.input[0] != clip.output[0]
            or _conv_weight(g, reader) is None
        ):
            return None
    return bounds[1]


def _scaled_input(g: GraphIndex, conv: Any, index: int, factor: float, tag: str, added: list[Any]) -> None:
    from onnx import numpy_helper

    value = g.const(conv.input[index])
    name = f"{conv.input[index]}_{tag}"
    scaled = (value * factor).astype(value.dtype)
    added.append(numpy_helper.from_array(scaled, name))
    g.constants[name] = scaled  # a Conv both after one Clip and before another is scaled twice
    conv.input[index] = name


def relu6_as_hardsigmoid(model: Any) -> tuple[Any, dict[str, int]]:
    """A copy of `model` with every rewritable Clip(0, c) as HardSigmoid, c moved into the convolutions."""
    import onnx

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    g = GraphIndex(rewritten.graph)
    added: list[Any] = []
    count = 0
    for clip in [n for n in rewritten.graph.node if n.op_type == "Clip" and n.domain in ("", "ai.onnx")]:
        bound = _rewritable(g, clip)
        if bound is None:
            continue
        producer = g.producer[clip.input[0]]
        tag = f"infercc_relu6_{count}"
        _scaled_input(g, producer, 1, 1.0 / bound, f"{tag}_before", added)
        if len(producer.input) > 2 and producer.input[2]:
            _scaled_input(g, producer, 2, 1.0 / bound, f"{tag}_before", added)
        for index, reader in enumerate(g.consumers[clip.output[0]]):
            _scaled_input(g, reader, 1, bound, f"{tag}_after{index}", added)
        output = clip.output[0]
        clip.CopyFrom(
            onnx.helper.make_node(
                "HardSigmoid", [clip.input[0]], [output], name=clip.name or tag, alpha=1.0, beta=0.0
            )
        )
        count += 1
    if count:
        rewritten.graph.initializer.extend(added)
        remove_dead(rewritten.graph)
    return rewritten, {"ReluSixAsHardSigmoid": count}
