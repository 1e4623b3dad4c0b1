"""FP16 graph with onnxconverter_common.float16: float16 weights and compute, FP32 inputs/outputs by
default, and overflow-prone ops (config.quantize.fp16_block_ops) or named nodes kept in FP32."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

from infercc.errors import StageError
from infercc.lazy import require
from infercc.onnxutil import save_onnx


def convert(
    fp32: Path, out: Path, *, keep_io: bool, block_ops: list[str], block_nodes: list[str]
) -> dict[str, Any]:
    """Write the FP16 graph of `fp32` to `out`; returns what was kept in FP32."""
    onnx = require("onnx")
    float16 = require("onnxconverter_common", "FP16 conversion (pip install onnxconverter-common)").float16
    model = onnx.load(str(fp32))
    # stale value_info from the exporter makes the converter declare float16 outputs on nodes it keeps in FP32
    # (ORT then refuses the graph: "Type (tensor(float)) of output arg ... does not match"); it re-infers them.
    del model.graph.value_info[:]
    ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(block_ops))
    present = {n.op_type for n in model.graph.node}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            converted = float16.convert_float_to_float16(
                model, keep_io_types=keep_io, op_block_list=ops, node_block_list=list(block_nodes)
            )
    except Exception as exc:
        raise StageError(
            f"FP16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Keep the failing op in FP32 with quantize.fp16_block_ops.",
        ) from exc
    save_onnx(converted, out)
    return {
        "blocked_ops": sorted(set(block_ops) & present),
        "blocked_nodes": list(block_nodes),
        "kept_fp32_nodes": sum(1 for n in model.graph.node if n.op_type in ops or n.name in block_nodes),
        "nodes": len(converted.graph.node),
    }
