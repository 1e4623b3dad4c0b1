"""ONNX Runtime's load and run errors made readable: the op, node and opset where it can name them."""

from __future__ import annotations

import re
from pathlib import Path

from infercc.errors import StageError
from infercc.lazy import version_of


def ort_version() -> str | None:
    return version_of("onnxruntime") or version_of("onnxruntime-gpu")


def explain_ort_error(exc: Exception, path: Path) -> StageError:
    """One readable line for ONNX Runtime's load/run errors, naming the op and node where it can."""
    text = str(exc)
    missing = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", text)
    if missing:
        op, opset, node = missing.groups()
        return StageError(
            f"ONNX Runtime cannot run op {op} (opset {opset}) at node '{node}' in {path.name}.",
            hint="Export with another --opset, exclude the op from quantization, or use a runtime that supports it.",
        )
    unregistered = re.search(r"([\w.]*:?\w+)\((-?\d+)\) is not a registered function/op", text)
    if unregistered:
        return StageError(
            f"ONNX Runtime {ort_version()} has no op {unregistered.group(1)} (used in {path.name}).",
            hint="A custom op needs its runtime library registered; otherwise re-export without it or use a runtime "
            "that supports it.",
        )
    opset = re.search(r"(?:Opset|opset) (\d+) .*(?:not|under) .*support", text)
    if opset or "is under development and support for this is limited" in text:
        newest = re.search(r"support for domain (\S+) is till opset (\d+)", text)
        detail = f" (it supports {newest.group(1)} up to opset {newest.group(2)})" if newest else ""
        used = f"opset {opset.group(1)}" if opset else "the opset"
        return StageError(
            f"The installed ONNX Runtime {ort_version()} does not support {used} of {path.name}{detail}.",
            hint="Re-export with a lower --opset (e.g. 17) or upgrade onnxruntime.",
        )
    if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
        return StageError(
            f"{path} is not a readable ONNX file (truncated or corrupt).",
            hint="Re-create it; with infercc, run the stage again with --force.",
        )
    node = re.search(r"[Nn]ode \(([^)]*)\)", text)
    where = f" at node '{node.group(1)}'" if node else ""
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return StageError(f"ONNX Runtime failed{where} on {path.name}: {first[:1200]}")
