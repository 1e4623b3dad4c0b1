"""TensorRT's parser and builder failures as one readable message with a hint.

The ONNX parser reports structured errors (code, node, op); the builder returns None and says why only
through the logger. `CaptureLogger` collects those messages; the functions below turn them into
StageError / UsageError with the failing node's name, op type and inputs, the reason and what to do.
"""

from __future__ import annotations

import re
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

from infercc.errors import InferccError, StageError, UsageError

# Lines TensorRT-RTX adds on machines without a GPU after most API-usage errors: noise for the user.
NOISE = ("cudaError 35", "Thread context has not been set", "Exception caught in log()")


@cache
def capture_logger(trt: Any) -> Any:
    """One process-wide logger per TensorRT module (a second builder's logger is ignored by TensorRT)."""

    class CaptureLogger(trt.ILogger):  # type: ignore[name-defined, misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # required by the bindings
            # (sequence number, severity, message); numbered so that a mark stays valid when old lines go
            self.records: deque[tuple[int, str, str]] = deque(maxlen=4000)
            self.count = 0

        def log(self, severity: Any, msg: str) -> None:
            self.records.append((self.count, getattr(severity, "name", str(severity)), msg))
            self.count += 1

        def mark(self) -> int:
            return self.count

        def since(self, mark: int, keep_noise: bool = False) -> list[str]:
            return [
                m
                for n, s, m in list(self.records)
                if n >= mark
                and s in ("ERROR", "INTERNAL_ERROR")
                and (keep_noise or not any(x in m for x in NOISE))
            ]

    return CaptureLogger()


def _clean(text: str, lines: int = 2) -> str:
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and not any(n in ln for n in NOISE)]
    return " ".join(kept[:lines])


def node_inputs(onnx_path: Path, node_name: str) -> list[str]:
    """Input names of the ONNX node called `node_name` (empty when unknown or unreadable)."""
    if not node_name:
        return []
    try:
        from infercc.onnxutil import load_onnx

        model = load_onnx(onnx_path, with_data=False)
    except Exception:
        return []
    for node in model.graph.node:
        if node.name == node_name:
            return list(node.input)
    return []


def parse_failure(errors: list[dict[str, Any]], onnx_path: Path, flavour_label: str) -> InferccError:
    """errors: [{code, desc, node, node_name, node_operator}] from the parser -> one error with a hint."""
    if not errors:
        return StageError(f"TensorRT ({flavour_label}) could not parse {onnx_path.name} and gave no reason.")
    first = errors[0]
    code, op, name = first["code"], first.get("node_operator") or "", first.get("node_name") or ""
    desc = _clean(first.get("desc") or "", lines=3)
    desc = re.sub(rf"^Invalid Node - {re.escape(name)}\s*", "", desc) if name else desc
    if code == "MODEL_DESERIALIZE_FAILED":
        return UsageError(
            f"{onnx_path} is not a readable ONNX file (truncated or corrupt): {desc}",
            hint="Re-create it; with infercc, run again with --force.",
        )
    if code == "INVALID_VALUE" and "cannot be found" in desc:
        return UsageError(f"ONNX file {onnx_path} does not exist.")
    where = ""
    if name or op:
        inputs = node_inputs(onnx_path, name)
        shown = f", inputs {', '.join(inputs)}" if inputs else ""
        where = f" at node '{name}' ({op}{shown})"
    if op == "DequantizeLinear" and "Int32" in desc:
        hint = (
            "TensorRT takes only int8 (or fp8/int4) DequantizeLinear inputs: this is an int32 bias. "
            "Quantize without "
            "bias quantization (onnxruntime quantize_static extra_options QuantizeBias=False); "
            "infercc's int8-trt "
            "artifact (model.int8.trt.onnx) is made that way."
        )
    elif code in ("UNSUPPORTED_NODE", "INVALID_NODE") and (
        "Plugin not found" in desc or re.fullmatch(r"false\.?", desc.strip())
    ):
        desc = f"op {op} is not supported by {flavour_label}'s ONNX parser" + (
            " (no importer or plugin registered)" if "Plugin" in desc else ""
        )
        hint = (
            f"Replace or remove the {op} op (or rewrite that part of the model), export with "
            "another --opset, "
            "or register a TensorRT plugin for it."
        )
    elif "Failed to import initializer" in desc or code == "INVALID_GRAPH":
        hint = "Keep the model's external-data files next to the .onnx file, or re-export it."
    else:
        hint = (
            "Simplify the graph (infercc simplify), export with another --opset, or check the "
            "op's TensorRT support."
        )
    more = f" (+{len(errors) - 1} more parser error(s))" if len(errors) > 1 else ""
    return StageError(
        f"TensorRT ({flavour_label}) cannot parse {onnx_path.name}{where}: {desc}{more}", hint=hint
    )


# (pattern in the builder log, kind of error, hint)
_BUILD_HINTS: list[tuple[str, type[InferccError], str]] = [
    (
        "no optimization profile has been defined",
        UsageError,
        "The model has a dynamic dimension without a profile: give "
        "--min-shape/--opt-shape/--max-shape for it.",
    ),
    (
        "is missing dimensions in profile",
        UsageError,
        "Every dynamic input must appear in every optimization profile (build.profiles).",
    ),
    (
        "Dimension mismatch for tensor",
        UsageError,
        "A profile changes a dimension that is fixed in the ONNX graph; keep it, or re-export with "
        "that axis dynamic.",
    ),
    (
        "violate shape constraints",
        StageError,
        "The ONNX graph bakes in a traced shape (a Reshape to a constant size): re-export with the "
        "dynamo exporter or "
        "compute the shape from x.shape in the model, or narrow the profile to the traced shape.",
    ),
    (
        "within workspace limit",
        UsageError,
        "Raise the workspace limit (--workspace MiB, build.workspace_mib) or leave it unset.",
    ),
    (
        "requires workspace memory greater than 0",
        UsageError,
        "Raise the workspace limit (--workspace MiB, build.workspace_mib) or leave it unset.",
    ),
    (
        "FP32 GEMM is not supported",
        UsageError,
        "Turing (7.5) cannot run FP32 matrix multiplies in TensorRT-RTX: build the fp16 engine for "
        "7.5, or drop 7.5 "
        "from --compute-capability.",
    ),
    (
        "generateForCurrent",
        UsageError,
        "Compute capability 'current' needs a visible GPU: name the targets instead, e.g. "
        "--compute-capability 8.6,8.9.",
    ),
    (
        "libnvinfer_lean",
        UsageError,
        "Version-compatible engines need TensorRT's lean runtime: set build.version_compatible false.",
    ),
    (
        "Quantized constant",
        StageError,
        "A quantized scalar constant feeds a non-DQ op: quantize only Conv/MatMul/Gemm (exclude the "
        "other op types).",
    ),
    (
        "Could not find any implementation",
        StageError,
        "No TensorRT kernel for that layer with these settings: try fp32/fp16 for it, another "
        "opset, or a newer TensorRT.",
    ),
]


def build_failure(messages: list[str], onnx_path: Path, flavour_label: str) -> InferccError:
    """The builder returned None: explain with the logged errors."""
    text = "\n".join(messages)
    quiet = [m for m in messages if not any(n in m for n in NOISE)]
    reason = _summarize(quiet) or _summarize(messages, noise_ok=True) or "the builder gave no reason"
    for pattern, kind, hint in _BUILD_HINTS:
        if pattern in text:
            return kind(
                f"TensorRT ({flavour_label}) could not build an engine from {onnx_path.name}: {reason}",
                hint=hint,
            )
    return StageError(
        f"TensorRT ({flavour_label}) could not build an engine from {onnx_path.name}: {reason}",
        hint="Check the ops and shapes named above; try a lower --builder-optimization-level or the "
        "fp32 artifact.",
    )


def _summarize(messages: list[str], noise_ok: bool = False) -> str:
    """The informative part of the builder's error lines ('... Error Code 4: ... (WHAT. In f at x)')."""
    parts = []
    for msg in messages:
        inner = re.search(r"Error Code \d+: [^(]*\((.*)\)\s*$", msg, re.S)
        text = inner.group(1) if inner else msg
        text = re.sub(r"\s*In \w+ at /\S+:\d+\s*$", "", text.strip())
        text = " ".join(text.split()) if noise_ok else _clean(text, lines=2)
        if text and text not in parts:
            parts.append(text)
    return "; ".join(parts)[:800]
