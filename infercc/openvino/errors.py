"""OpenVINO's load and run errors as one readable line, naming the unsupported op where there is one."""

from __future__ import annotations

import re
from pathlib import Path

from infercc.errors import StageError

# OpenVINO's ONNX frontend lists the ops it has no conversion for, in a few wordings across versions
_UNSUPPORTED = (
    re.compile(r"No conversion rule found for operations?:\s*([^\n]+)"),
    re.compile(r"OpenVINO does not support the following ONNX operations?:\s*([^\n]+)"),
    re.compile(r"(?:operations?|ops?) (?:is|are) not supported:?\s*([^\n]+)", re.IGNORECASE),
)


def unsupported_ops(text: str) -> list[str]:
    """The op names an OpenVINO error says it cannot convert or run ([] if it says none)."""
    for pattern in _UNSUPPORTED:
        found = pattern.search(text)
        if found:
            names = re.split(r"[,\s]+", found.group(1).strip().rstrip("."))
            return [n for n in dict.fromkeys(names) if n and n != "-"]
    return []


def explain_openvino_error(exc: Exception, path: Path, when: str) -> StageError:
    """One line for an OpenVINO failure while `when` ('reading', 'compiling', 'running') `path`."""
    text = str(exc)
    ops = unsupported_ops(text)
    if ops:
        return StageError(
            f"OpenVINO cannot run op {', '.join(ops)} in {path.name}.",
            hint="Verify this artifact on another runtime (verify.runtimes), or re-export without that op.",
        )
    if "protobuf" in text.lower() or "not a valid" in text.lower():
        return StageError(
            f"OpenVINO could not read {path.name} (truncated, corrupt or not ONNX).",
            hint="Re-create it; with infercc, run the stage again with --force.",
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # OpenVINO prefixes the message with source locations: keep the first line that says something
    told = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    first = (told or lines or [type(exc).__name__])[0]
    return StageError(f"OpenVINO failed {when} {path.name}: {first[:600]}")
