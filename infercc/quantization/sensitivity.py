"""Which quantized layers hurt most.

`rank_by_output` (one short run per layer): the FP32 graph with only that layer quantized - its input Q/DQ and
dequantized weights taken from the INT8 graph - measured at the model outputs, which accounts for how much later layers amplify the error (what
matters for accuracy: early depthwise convs hurt most in EfficientNet, though their own error is modest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infercc.quantization.probe import exposed_session, load, run_exposed


@dataclass
class LayerError:
    node: str
    op_type: str
    local: float  # 1 - cosine at the model's outputs with only this node in INT8
    output: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "error": _r(self.local)}


def _r(value: float) -> float:
    return float(f"{value:.4g}")


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def rank_by_output(
    fp32_path: Path,
    int8_path: Path,
    feeds: list[dict[str, np.ndarray]],
    threads: int | None = None,
    progress: Any = None,
) -> list[LayerError]:
    """Quantized nodes, worst first, by the output error (1 - cosine, worst output) with only that node in INT8."""
    import onnx
    from onnx import numpy_helper

    qmodel = load(int8_path)
    fmodel = load(fp32_path)
    fp32_nodes = {n.name: i for i, n in enumerate(fmodel.graph.node)}
    inits = {t.name: t for t in qmodel.graph.initializer}
    producer = {o: n for n in qmodel.graph.node for o in n.output}
    reference_session = exposed_session(fmodel, [], threads)
    reference = [run_exposed(reference_session, feed) for feed in feeds]
    candidates = [
        n
        for n in qmodel.graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and n.name in fp32_nodes
        and any(i in producer and producer[i].op_type == "DequantizeLinear" for i in n.input)
    ]
    ranked = []
    for done, qnode in enumerate(candidates):
        model = onnx.ModelProto()
        model.CopyFrom(fmodel)
        target = model.graph.node[fp32_nodes[qnode.name]]
        new_nodes = []
        for k, name in enumerate(qnode.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or k >= len(target.input):
                continue
            source = producer.get(dq.input[0])
            tag = f"{qnode.name}__in{k}"
            if source is not None and source.op_type == "QuantizeLinear":  # activation: insert the same Q/DQ
                for t in (*source.input[1:], *dq.input[1:]):
                    if t in inits and not any(i.name == t for i in model.graph.initializer):
                        model.graph.initializer.append(inits[t])
                new_nodes += [
                    onnx.helper.make_node(
                        "QuantizeLinear", [target.input[k], *source.input[1:]], [f"{tag}_q"], **_attrs(source)
                    ),
                    onnx.helper.make_node(
                        "DequantizeLinear", [f"{tag}_q", *dq.input[1:]], [f"{tag}_dq"], **_attrs(dq)
                    ),
                ]
                target.input[k] = f"{tag}_dq"
            elif dq.input[0] in inits:  # weight / bias: its dequantized values
                values = _dequantize(numpy_helper, dq, inits)
                if values is None:
                    continue
                model.graph.initializer.append(numpy_helper.from_array(values, f"{tag}_w"))
                target.input[k] = f"{tag}_w"
        nodes = list(model.graph.node)
        index = fp32_nodes[qnode.name]
        del model.graph.node[:]
        model.graph.node.extend(nodes[:index] + new_nodes + nodes[index:])
        session = exposed_session(model, [], threads)
        worst = 0.0
        for feed, ref in zip(feeds, reference, strict=True):
            out = run_exposed(session, feed)
            for name, value in ref.items():
                worst = max(worst, 1.0 - _cos(out[name], value))
        ranked.append(LayerError(qnode.name, qnode.op_type, worst, worst))
        if progress is not None:
            progress(done + 1, len(candidates))
    ranked.sort(key=lambda e: e.local, reverse=True)
    return ranked


def _dequantize(numpy_helper: Any, dq: Any, inits: dict[str, Any]) -> np.ndarray | None:
    try:
        q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        zero = (
            numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64)
            if len(dq.input) > 2 and dq.input[2] in inits
            else 0.0
        )
    except (KeyError, IndexError):
        return None
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if np.ndim(scale) == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) == 1 else zero
    return ((q - zero) * scale).astype(np.float32)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a64 = np.nan_to_num(a.astype(np.float64)).ravel()
    b64 = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a64, b64) / (na * nb))
