"""`infercc inspect`: a summary of an ONNX file, or of a TensorRT engine (via its sidecar or the engine inspector)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infercc.errors import UsageError


def inspect_path(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist.")
    if path.suffix.lower() == ".onnx":
        from infercc.onnxutil import summary

        return {"kind": "onnx", **summary(path)}
    if path.suffix.lower() in (".engine", ".plan", ".trt"):
        from infercc.runtimes.tensorrt import inspect_engine

        return {"kind": "engine", **inspect_engine(path)}
    raise UsageError(f"Cannot inspect {path.name}: expected an .onnx or .engine file.")


def render_inspection(console: Console, info: dict[str, Any]) -> None:
    if info["kind"] == "engine":
        from infercc.runtimes.tensorrt import render_engine

        render_engine(console, info)
        return
    from infercc.cli.render import human_size

    console.print(
        f"[bold]{escape(info['path'])}[/]  {human_size(info['size_bytes'])}, {info['parameters']:,} parameters"
    )
    console.print(
        f"opsets {info['opsets']}, IR {info['ir_version']}, producer {escape(info['producer'] or '?')}"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("", "name", "dtype", "shape"):
        table.add_column(col)
    for name, io in info["io"].items():
        dims = "x".join("?" if d is None else str(d) for d in io["dims"])
        table.add_row(io["io"], escape(name), io["dtype"], dims or "scalar")
    console.print(table)
    ops = ", ".join(f"{op} {n}" for op, n in info["op_counts"].items())
    console.print(f"{info['nodes']} nodes: {escape(ops)}")
