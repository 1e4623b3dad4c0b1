"""Which quantized layers hurt most.

`rank_layers` (cheap, one pass): every QuantizeLinear of the INT8 graph reads the FP32 graph's tensor, so each
node's own error is measured on exact inputs (no propagation). `rank_by_output` (one short run per layer):
the FP32 graph with only that layer quantized - its input Q/DQ and dequantized weights taken from the INT8
graph - measured at the model outputs, which accounts for how much later layers amplify the error (what
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
    local: float  # rank_layers: NMSE of the node's output on exact inputs; rank_by_output: 1 - output cosine
    output: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op_type": self.op_type, "error": _r(self.local)}


def _r(value: float) -> float:
    return float(f"{value:.4g}")


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def rank_layers(
    fp32_path: Path, int8_path: Path, feeds: list[dict[str, np.ndarray]], threads: int | None = None
) -> list[LayerError]:
    """Quantized nodes of the INT8 graph, worst first, by the error each adds on its own.

    Every QuantizeLinear of the INT8 graph is rewired to read the FP32 graph's value of its tensor, so each
    node sees exact inputs (passed through its own input quantization and its quantized weights) and no error
    propagates: a layer that merely amplifies upstream error (a BatchNorm after a broken conv) is not blamed."""
    import onnx

    qmodel = load(int8_path)
    fmodel = load(fp32_path)
    fp32_nodes = {n.name for n in fmodel.graph.node}
    graph_inputs = {i.name for i in qmodel.graph.input}
    fp32_tensors = {o for n in fmodel.graph.node for o in n.output} | {i.name for i in fmodel.graph.input}
    ops = {n.name: n.op_type for n in qmodel.graph.node}
    nodes = list(qmodel.graph.node)
    q_by_input = {n.input[0]: n for n in nodes if n.op_type == "QuantizeLinear"}
    dq_by_input = {n.input[0]: n for n in nodes if n.op_type == "DequantizeLinear"}
    dq_outputs = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    # each candidate's output, re-quantized by a copy of its own output Q/DQ (which keeps the Relu/Clip the
    # quantizer folded into the range), compared with the FP32 tensor
    edges: dict[str, list[tuple[str, str]]] = {}
    copies = []
    for node in nodes:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or node.name not in fp32_nodes:
            continue
        if not any(i in dq_outputs for i in node.input):
            continue
        outs = []
        for o in node.output:
            q = q_by_input.get(o)
            dq = dq_by_input.get(q.output[0]) if q is not None else None
            if dq is not None:
                target = dq.output[0] if dq.output[0] in fp32_tensors else o
                if target not in fp32_tensors:
                    continue
                copies.append(
                    onnx.helper.make_node(
                        "QuantizeLinear", [o, *q.input[1:]], [f"{o}__infercc_q"], **_attrs(q)
                    )
                )
                copies.append(
                    onnx.helper.make_node(
                        "DequantizeLinear",
                        [f"{o}__infercc_q", *dq.input[1:]],
                        [f"{o}__infercc_dq"],
                        **_attrs(dq),
                    )
                )
                outs.append((target, f"{o}__infercc_dq"))
            elif o in fp32_tensors:
                outs.append((o, o))
        if outs:
            edges[node.name] = outs
    # rewire: every original Q reads the FP32 graph's value of its tensor
    dq_of_q = {n.input[0]: n for n in nodes if n.op_type == "DequantizeLinear"}
    rewired: dict[str, str] = {}  # new graph input -> FP32 tensor
    for node in nodes:
        if node.op_type != "QuantizeLinear" or node.input[0] in graph_inputs:
            continue
        dq = dq_of_q.get(node.output[0])
        source = dq.output[0] if dq is not None and dq.output[0] in fp32_tensors else node.input[0]
        if source not in fp32_tensors:
            continue
        name = f"{source}__infercc_fp32"
        if name not in rewired:
            rewired[name] = source
            qmodel.graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        node.input[0] = name
    qmodel.graph.node.extend(copies)
    pairs = {pair for outs in edges.values() for pair in outs}
    qsession = exposed_session(qmodel, sorted({q for _, q in pairs}), threads)
    fsession = exposed_session(fmodel, sorted({f for f, _ in pairs} | set(rewired.values())), threads)
    noise: dict[tuple[str, str], float] = dict.fromkeys(pairs, 0.0)
    power: dict[tuple[str, str], float] = dict.fromkeys(pairs, 0.0)
    for feed in feeds:
        fvalues = {**feed, **run_exposed(fsession, feed)}
        qfeed = {**feed, **{name: fvalues[src] for name, src in rewired.items()}}
        qvalues = {**feed, **run_exposed(qsession, qfeed)}
        for pair in pairs:
            f, q = fvalues.get(pair[0]), qvalues.get(pair[1])
            if q is None or f is None or q.shape != f.shape:
                continue
            f64 = f.astype(np.float64)
            noise[pair] += float(
                np.sum((np.nan_to_num(q.astype(np.float64), posinf=1e30, neginf=-1e30) - f64) ** 2)
            )
            power[pair] += float(np.sum(f64**2))

    ranked = []
    for name, outs in edges.items():
        local = max(noise[p] / max(power[p], 1e-30) for p in outs)
        ranked.append(LayerError(name, ops[name], local, local))
    ranked.sort(key=lambda e: e.local, reverse=True)
    return ranked


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
