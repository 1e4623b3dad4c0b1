"""FP16 graphs with onnxruntime.transformers.float16 (ships with ONNX Runtime): every op in FP16 by default,
FP32 inputs/outputs when asked, and only the nodes the data says need it kept in FP32.

Data-driven fallback (in the spirit of ModelOpt's AutoCast): the FP16 graph and the FP32 graph run on the
same reference inputs with every intermediate tensor exposed; a node whose output drifts from FP32 beyond a
threshold while its inputs did not (the error starts there, it is not carried in) is kept in FP32.

Load check: a written graph must load and run on each target runtime before the stage accepts it
(infercc.runtimes.isolation.load_check: a child process, so a runtime that crashes on the graph is a failed
check, not a dead run).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infercc.errors import StageError
from infercc.lazy import require

# drift of a node's output counts as "starting there" when it exceeds its inputs' drift this many times
DRIFT_GAIN = 4.0


def convert_model(model: Any, *, keep_io: bool, block_ops: list[str], block_nodes: list[str]) -> Any:
    """The FP16 form of an ONNX ModelProto. ONNX Runtime's own list of ops without FP16 kernels stays FP32."""
    float16 = require("onnxruntime.transformers.float16", "FP16 conversion")
    onnx = require("onnx")
    source = onnx.ModelProto()
    source.CopyFrom(model)
    # stale value_info from the exporter can contradict the types the converter decides; it re-infers them
    del source.graph.value_info[:]
    ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(block_ops))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            converted = float16.convert_float_to_float16(
                source,
                keep_io_types=keep_io,
                op_block_list=ops,
                node_block_list=list(block_nodes),
                disable_shape_infer=source.ByteSize() > 2_000_000_000,
            )
    except Exception as exc:
        raise StageError(
            f"FP16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Keep the failing node in FP32 with quantize.fp16_block_nodes (or its op in fp16_block_ops).",
        ) from exc
    drop_round_trips(converted)
    return converted


def drop_round_trips(model: Any) -> int:
    """Remove Cast(float->float16)->Cast(float16->float) pairs between two nodes kept in FP32: the converter
    inserts them around every blocked node, and a value above 65504 passing between two FP32 nodes would
    become Inf in the middle. Returns how many Casts went."""
    onnx = require("onnx")
    FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16

    def cast_to(node: Any) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed: list[Any] = []
    rename: dict[str, str] = {}
    for down in [n for n in graph.node if cast_to(n) == FLOAT16]:
        back = [c for c in consumers.get(down.output[0], []) if cast_to(c) == FLOAT]
        for cast in back:
            if cast.output[0] not in outputs:
                rename[cast.output[0]] = down.input[0]
                removed.append(cast)
        others = [c for c in consumers.get(down.output[0], []) if c not in back]
        if back and not others and down.output[0] not in outputs and all(c in removed for c in back):
            removed.append(down)
    ids = {id(n) for n in removed}
    kept = [n for n in graph.node if id(n) not in ids]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    return len(removed)


def blocked_summary(
    model: Any, converted: Any, block_ops: list[str], block_nodes: list[str]
) -> dict[str, Any]:
    float16 = require("onnxruntime.transformers.float16")
    ops = set(float16.DEFAULT_OP_BLOCK_LIST) | set(block_ops)
    kept = [n.name for n in model.graph.node if n.op_type in ops or n.name in block_nodes]
    return {
        "blocked_ops": sorted({n.op_type for n in model.graph.node if n.op_type in ops}),
        "blocked_nodes": list(block_nodes),
        "kept_fp32_nodes": len(kept),
        "nodes": len(converted.graph.node),
        "casts_added": sum(1 for n in converted.graph.node if n.op_type == "Cast")
        - sum(1 for n in model.graph.node if n.op_type == "Cast"),
    }


# --- drift: where FP16 error starts ----------------------------------------------------------------


@dataclass
class Drift:
    node: str
    op_type: str
    error: float  # relative L2 error of its output against FP32 (inf: NaN/Inf where FP32 is finite)
    input_error: float

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | str:
            return round(v, 6) if math.isfinite(v) else "inf"

        return {
            "node": self.node,
            "op_type": self.op_type,
            "error": num(self.error),
            "input_error": num(self.input_error),
        }


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float | None:
    """||actual - expected|| / ||expected|| over the elements FP32 has finite; inf for new NaN/Inf."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape or not np.issubdtype(e.dtype, np.floating) or not e.size:
        return None
    a, e = a.astype(np.float64), e.astype(np.float64)
    finite = np.isfinite(e)
    if not np.isfinite(a[finite]).all():
        return math.inf
    return float(np.linalg.norm(a[finite] - e[finite]) / max(float(np.linalg.norm(e[finite])), 1e-6))


def drift_sources(candidate: Any, fp32: Any, feed: dict[str, np.ndarray], threshold: float) -> list[Drift]:
    """Nodes of the FP16 graph whose output error exceeds `threshold` and DRIFT_GAIN x their inputs' error,
    worst first. Tensors the converter added or renamed have no FP32 twin: they carry their producer's input
    error."""
    from infercc.quantization.probe import exposed_session, run_exposed, topological

    shared = {o for n in fp32.graph.node for o in n.output} & {
        o for n in candidate.graph.node for o in n.output
    }
    values = run_exposed(exposed_session(candidate, shared), _cast_feed(candidate, feed))
    reference = run_exposed(exposed_session(fp32, shared), _cast_feed(fp32, feed))
    errors: dict[str, float] = {}
    for name in shared:
        if name in values and name in reference:
            err = relative_error(values[name], reference[name])
            if err is not None:
                errors[name] = err
    found: dict[str, Drift] = {}
    for node in topological(candidate):
        in_err = max((errors.get(i, 0.0) for i in node.input), default=0.0)
        for name in node.output:  # a tensor the converter renamed or added: assume the node added no error
            errors.setdefault(name, in_err)
        out_err = max((errors[o] for o in node.output), default=0.0)
        if out_err > threshold and out_err > DRIFT_GAIN * in_err:
            for culprit in _original_nodes(node, candidate, fp32):
                found.setdefault(culprit.name, Drift(culprit.name, culprit.op_type, out_err, in_err))
    return sorted(found.values(), key=lambda d: -d.error)


def _original_nodes(node: Any, candidate: Any, fp32: Any) -> list[Any]:
    """The FP32 graph's node(s) to keep in FP32 for a drifting node: itself, or for a Cast the converter
    added, the original nodes it feeds (or, at a graph output, the one that feeds it)."""
    original = {n.name: n for n in fp32.graph.node}
    if node.name in original:
        return [original[node.name]]
    consumers = [n for n in candidate.graph.node if set(n.output) and set(node.output) & set(n.input)]
    kept = [original[n.name] for n in consumers if n.name in original]
    if kept:
        return kept
    producers = [n for n in candidate.graph.node if set(n.output) & set(node.input)]
    return [original[n.name] for n in producers if n.name in original]


def _cast_feed(model: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed in the dtypes the graph declares (an FP16-I/O graph takes float16 inputs)."""
    onnx = require("onnx")
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    out = {}
    for name, value in feed.items():
        if name in types and np.issubdtype(value.dtype, np.floating):
            value = value.astype(onnx.helper.tensor_dtype_to_np_dtype(types[name]))
        out[name] = value
    return out


# --- load check (child process) ---------------------------------------------------------------------


def load_failures(path: Path, runtimes: list[str], feed: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each runtime that cannot load `path` and run `feed` (in a child process: a crash is a failed check,
    not a dead run), with the reason; [] when all can. Runtimes not available here are not failures."""
    from infercc.runtimes.isolation import load_check

    return [
        {"runtime": c.runtime, "error": load_reason(c.reason, path), "raw": c.reason, "crashed": c.crashed}
        for c in load_check(path, runtimes, feed)
        if not c.ok and not c.skipped
    ]


# ONNX Runtime's framing around the reason: status code, the file it loaded, "This is an invalid model."
_ORT_FRAMING = (
    r"\[ONNXRuntimeError\] : \d+ : \w+ : ",
    r"Load model from \S+ failed:",
    r"This is an invalid model\.\s*",
    r"ONNX Runtime failed at node '[^']*' on \S+: ",
    r"\S+ failed on \S+: ",
)


def load_reason(text: str, path: Path) -> str:
    """ONNX Runtime's reason for refusing a graph without its framing, and without the temporary file's name
    (the graph under test is written under a temporary name until it passes), e.g. "Type Error: Type
    'tensor(float16)' of input parameter (x) of operator (Celu) in node (node_celu) is invalid."""
    reason = text.replace(str(path), path.name)
    for pattern in _ORT_FRAMING:
        reason = re.sub(pattern, "", reason)
    return re.sub(r"\.infercc-tmp-\d+-(\S+?)\.[A-Za-z0-9_]+\b", r"\1", reason).strip() or text


_NODE_PATTERNS = (
    r"node with name '([^']+)'",
    r"[Nn]ode \(([^)]+)\)",
    r"at node '([^']+)'",
    r"[Nn]ode:\s*([^\s,]+)",
)


def node_in_error(text: str, known: set[str]) -> str | None:
    """The graph node an ONNX Runtime error names, if it is one of `known`."""
    for pattern in _NODE_PATTERNS:
        for match in re.finditer(pattern, text):
            if match.group(1) in known:
                return match.group(1)
    return None
