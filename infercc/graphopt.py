"""Fusions for ONNX Runtime: infercc's packed-QKV attention rule (infercc.packed_attention), onnxscript's
ort_fusions rewriter and ONNX Runtime's transformer optimizer turn attention, LayerNorm+residual, Gelu and rotary
patterns into com.microsoft ops that ORT runs as one kernel.

A fuser that fails or finds nothing leaves the graph as it was; what it did is reported, never raised."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from infercc.config import Fuser
from infercc.lazy import require

# ops a fusion produces (com.microsoft domain), reported per type
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "GroupQueryAttention",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "SimplifiedLayerNormalization",
    "LayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "QuickGelu",
    "RotaryEmbedding",
    "FusedMatMul",
    "BiasSplitGelu",
    "BiasAdd",
    "GroupNorm",
)
# unfused patterns worth naming when left: attention is still MatMul+Softmax
LEFT_OVER = ("Softmax", "Erf", "Tanh", "ReduceMean", "Pow", "Sqrt")


@dataclass
class FusionReport:
    applied: dict[str, dict[str, int]] = field(default_factory=dict)  # fuser -> {fusion: count}
    errors: dict[str, str] = field(default_factory=dict)  # fuser -> why it did nothing
    fused_ops: dict[str, int] = field(default_factory=dict)  # fused op type -> count in the result
    left: dict[str, int] = field(default_factory=dict)  # unfused ops of LEFT_OVER still present

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "errors": self.errors,
            "fused_ops": self.fused_ops,
            "left": self.left,
        }


def op_types(model: Any) -> Counter[tuple[str, str]]:
    return Counter((n.domain or "", n.op_type) for n in model.graph.node)


def fuse(model: Any, fusers: list[Fuser]) -> tuple[Any, FusionReport]:
    """Apply `fusers` in order to a copy of `model` (an onnx ModelProto); returns the result and the report."""
    report = FusionReport()
    before = op_types(model)
    current = model
    for fuser in fusers:
        try:
            with _quiet():
                current, counts = _FUSERS[fuser](current)
            report.applied[fuser.value] = {k: v for k, v in counts.items() if v}
        except Exception as exc:  # a pattern a fuser cannot handle must not fail the build
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            report.errors[fuser.value] = f"{type(exc).__name__}: {first}"
    after = op_types(current)
    report.fused_ops = {
        op: after[(d, op)] - before.get((d, op), 0)
        for d, op in after
        if op in FUSED_OPS and d == "com.microsoft" and after[(d, op)] > before.get((d, op), 0)
    }
    report.left = {op: n for (d, op), n in after.items() if op in LEFT_OVER and not d}
    return current, report


def named_dims(model: Any) -> Any:
    """The model with every intermediate shape written in terms of its inputs' dimensions (ONNX Runtime's
    symbolic shape inference). ONNX's own inference gives each `-1` of a Reshape a fresh unknown name, so with
    a dynamic batch the query, key and value of one attention no longer share their batch dimension and the
    attention rules (which check that they do) match nothing. Best effort: the model unchanged if it fails."""
    # when inference is incomplete ONNX Runtime saves "sym_shape_infer_temp.onnx" into the current folder (the
    # user's): it runs in a scratch folder of its own instead
    with tempfile.TemporaryDirectory(prefix="infercc-shapes-") as scratch, contextlib.chdir(scratch):
        try:
            symbolic = require("onnxruntime.tools.symbolic_shape_infer", "graph fusion")
            return symbolic.SymbolicShapeInference.infer_shapes(
                model, auto_merge=True, guess_output_rank=False
            )
        except Exception:
            return model


def _onnxscript(model: Any) -> tuple[Any, dict[str, int]]:
    ir = require("onnx_ir", "graph fusion (pip install onnxscript)")
    ort_fusions = require("onnxscript.rewriter.ort_fusions", "graph fusion (pip install onnxscript)")
    irmodel = ir.from_proto(named_dims(model))
    irmodel, counts = ort_fusions.optimize_for_ort(irmodel)
    return ir.to_proto(irmodel), dict(counts)


def _ort_transformers(model: Any) -> tuple[Any, dict[str, int]]:
    optimizer = require("onnxruntime.transformers.optimizer", "graph fusion")
    onnx = require("onnx")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    optimized = optimizer.optimize_model(copy, model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    stats = optimized.get_fused_operator_statistics() or {}
    return optimized.model, {k: int(v) for k, v in stats.items() if isinstance(v, int)}


def _packed_attention(model: Any) -> tuple[Any, dict[str, int]]:
    from infercc.packed_attention import fuse_packed_attention

    return fuse_packed_attention(model)


_FUSERS = {
    Fuser.packed_attention: _packed_attention,
    Fuser.onnxscript: _onnxscript,
    Fuser.ort_transformers: _ort_transformers,
}


@contextlib.contextmanager
def _quiet() -> Any:
    """The fusers print and log progress; keep it off the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime", "onnxscript", "onnx_ir", "")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
