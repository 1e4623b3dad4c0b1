"""Look inside a graph: expose intermediate tensors as outputs and run them on ONNX Runtime CPU.

Used to trace NaN/Inf to the first node that produces it, and to compare the intermediate tensors of a
quantized graph with the FP32 graph's (same tensor names) when ranking layers by quantization error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def exposed_session(model: Any, names: Iterable[str], threads: int | None = None) -> Any:
    """An ORT session on a copy of `model` whose outputs are its own plus `names`."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    produced = {o for n in copy.graph.node for o in n.output}
    for name in names:
        if name and name in produced and name not in existing:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if threads:
        options.intra_op_num_threads = threads
    if copy.ByteSize() < 1_500_000_000:
        return ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory(prefix="infercc-probe-") as tmp:  # pragma: no cover - very large models
        path = Path(tmp) / "probe.onnx"
        onnx.save(copy, str(path), save_as_external_data=True)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_exposed(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def topological(model: Any) -> list[Any]:
    """Nodes in an order where every node comes after the producers of its inputs."""
    graph = model.graph
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        progress = []
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                progress.append(node)
            else:
                rest.append(node)
        if not progress:  # inputs from subgraph scopes or a cycle: keep the file order for the rest
            ordered += rest
            break
        for node in progress:
            available.update(node.output)
        ordered += progress
        pending = rest
    return ordered


def _is_float(value: Any) -> bool:
    arr = np.asarray(value)
    return bool(arr.size) and np.issubdtype(arr.dtype, np.floating)


def _bad(value: Any) -> int:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        return 0
    return int((~np.isfinite(arr)).sum())


def first_non_finite(
    model_path: Path, reference_path: Path, feeds: list[dict[str, np.ndarray]], threads: int | None = None
) -> dict[str, Any] | None:
    """The first node (in execution order) whose output holds NaN/Inf that the reference graph's same tensor
    doesn't, while its inputs hold none; None when no output goes non-finite on these feeds.

    A node the converter inserted (a Cast with no counterpart in the reference) is reported with the
    reference node that consumes its output, since that is the node to keep in higher precision."""
    model = load(model_path)
    reference = load(reference_path)
    ref_tensors = {o for n in reference.graph.node for o in n.output}
    ref_nodes = {n.name for n in reference.graph.node}
    order = topological(model)
    all_names = [o for n in order for o in n.output]
    session = exposed_session(model, all_names, threads)
    ref_session = exposed_session(reference, [n for n in all_names if n in ref_tensors], threads)
    for feed in feeds:
        values = run_exposed(session, feed)
        if not any(_bad(values[o.name]) for o in model.graph.output):
            continue
        ref_values = run_exposed(ref_session, feed)

        def new_bad(
            name: str, values: dict[str, np.ndarray] = values, ref_values: dict[str, np.ndarray] = ref_values
        ) -> int:
            if name not in values:
                return 0
            return _bad(values[name]) - (_bad(ref_values[name]) if name in ref_values else 0)

        for node in order:
            produced = [o for o in node.output if new_bad(o) > 0]
            if not produced or any(new_bad(i) > 0 for i in node.input):
                continue
            arr = np.asarray(values[produced[0]])
            report: dict[str, Any] = {
                "node": node.name,
                "op_type": node.op_type,
                "tensor": produced[0],
                "nan": int(np.isnan(arr).sum()),
                "inf": int(np.isinf(arr).sum()),
                "dtype": str(arr.dtype),
            }
            if node.name not in ref_nodes:
                consumers = [n for n in order if produced[0] in n.input and n.name in ref_nodes]
                if consumers:
                    report["culprit"] = consumers[0].name
                    report["culprit_op_type"] = consumers[0].op_type
            report.setdefault("culprit", node.name)
            report.setdefault("culprit_op_type", node.op_type)
            floats = [
                np.asarray(values[i], dtype=np.float64)
                for i in node.input
                if i in values and _is_float(values[i])
            ]
            if floats:
                report["input_max_abs"] = float(max(np.abs(f).max() for f in floats if f.size))
            return report
        return {
            "node": None,
            "op_type": None,
            "note": "NaN/Inf in the outputs but no single node could be isolated",
        }
    return None
