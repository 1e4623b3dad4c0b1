"""`infercc doctor`: what this machine can run, with versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infercc.lazy import is_installed, version_of


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "f16c"}
    for line in _cpuinfo():
        if line.startswith("flags"):
            return sorted(wanted & set(line.split(":", 1)[1].split()))
    return []


def environment() -> dict[str, Any]:
    """Machine and package versions, recorded in manifests and reports."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "packages": {
            name: version_of(name)
            for name in (
                "infercc",
                "torch",
                "onnx",
                "onnxruntime",
                "onnxruntime-gpu",
                "onnxslim",
                "onnxscript",
                "onnxconverter-common",
                "tensorrt",
                "tensorrt_rtx_bindings",
                "numpy",
            )
        },
    }


def collect() -> dict[str, Any]:
    from infercc.runtimes.base import runtime_statuses

    info = environment()
    info["runtimes"] = [vars(s) for s in runtime_statuses()]
    info["onnxruntime_providers"] = _ort_providers()
    info["gpus"] = _gpus()
    info["tensorrt_flavours"] = _tensorrt_flavours()
    return info


def _ort_providers() -> list[str]:
    if not is_installed("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _gpus() -> list[str]:
    if not is_installed("torch"):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        f"{torch.cuda.get_device_name(i)} (compute capability {'.'.join(map(str, torch.cuda.get_device_capability(i)))})"
        for i in range(torch.cuda.device_count())
    ]


def _tensorrt_flavours() -> list[dict[str, Any]]:
    from infercc.tensorrt.flavours import detect_flavours  # reads package metadata; imports no TensorRT

    return detect_flavours()


def render(console: Console, info: dict[str, Any]) -> None:
    console.print(
        f"[bold]infercc doctor[/]  Python {info['python']} on {escape(info['cpu'])} ({info['cpu_count']} cores; {' '.join(info['cpu_flags'])})"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("runtime", "available", "version", "note"):
        table.add_column(col)
    for rt in info["runtimes"]:
        mark = "[green]yes[/]" if rt["available"] else "[red]no[/]"
        table.add_row(
            rt["name"],
            mark,
            rt.get("version") or "-",
            escape(rt.get("reason") or ", ".join(f"{k}: {v}" for k, v in rt.get("details", {}).items())),
        )
    console.print(table)
    console.print(f"ONNX Runtime providers: {', '.join(info['onnxruntime_providers']) or 'none'}")
    console.print(f"GPUs: {escape(', '.join(info['gpus'])) or 'none visible'}")
    for flavour in info["tensorrt_flavours"]:
        console.print(f"TensorRT flavour: {escape(describe_flavour(flavour))}")
    if not info["tensorrt_flavours"]:
        console.print(
            escape(
                "TensorRT: not installed (pip install 'infercc[rtx]' for TensorRT-RTX, "
                "'infercc[tensorrt]' for TensorRT 10/11)"
            )
        )


def describe_flavour(flavour: dict[str, Any]) -> str:
    """'rtx 1.7.1.116 (tensorrt_rtx_bindings), supported; can: compute_capabilities, ...' in words, not a dict."""
    caps = [name.replace("_", " ") for name, on in (flavour.get("capabilities") or {}).items() if on]
    support = "supported" if flavour.get("supported") else "not supported by infercc"
    return (
        f"{flavour.get('family')} {flavour.get('version')} ({flavour.get('module')}), {support}; "
        f"features: {', '.join(caps) or 'none'}"
    )
