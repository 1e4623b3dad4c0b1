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
    if path.is_dir():
        return inspect_folder(path)
    if path.suffix.lower() == ".onnx":
        from infercc.onnxutil import summary

        return {"kind": "onnx", **summary(path)}
    if path.suffix.lower() in (".engine", ".plan", ".trt"):
        from infercc.runtimes.tensorrt import inspect_engine

        return {"kind": "engine", **inspect_engine(path)}
    raise UsageError(f"Cannot inspect {path.name}: expected an .onnx or .engine file, or an output folder.")


def inspect_folder(folder: Path) -> dict[str, Any]:
    """An earlier run's output folder: its recorded model, shapes and config, and every artifact in it."""
    from infercc.pipeline.manifest import MANIFEST_NAME, load_manifest

    manifest, damage = load_manifest(folder)
    if manifest is None:
        raise UsageError(
            damage or f"{folder} holds no {MANIFEST_NAME}: not an infercc output folder.",
            hint="Give an .onnx or .engine file, or the --out folder of an earlier run.",
        )
    artifacts = []
    for stage in manifest.stages.values():
        if stage.status != "done":
            continue
        for art in stage.outputs:
            artifacts.append(
                {
                    "name": art.name,
                    "path": art.path,
                    "kind": art.kind,
                    "precision": art.precision,
                    "size_bytes": art.size,
                    "stage": stage.name,
                    "from_other_config": manifest.from_other_config(stage),
                }
            )
    config = manifest.config
    return {
        "kind": "folder",
        "path": str(folder),
        "model": manifest.source.get("spec"),
        "shapes": manifest.source.get("shapes") or {},
        "precisions": config.get("precisions") or [],
        "targets": config.get("targets") or [],
        "updated": manifest.updated,
        "stages": {s.name: s.status for s in manifest.stages.values()},
        "artifacts": artifacts,
    }


def _render_folder(console: Console, info: dict[str, Any]) -> None:
    from infercc.cli.render import human_size

    console.print(
        f"[bold]{escape(info['path'])}[/]  model {escape(str(info['model']))}, updated {info['updated']}"
    )
    for name, shape in info["shapes"].items():
        console.print(f"  input {escape(name)}: {escape(shape)}  (min .. opt .. max)")
    console.print(
        f"  precisions {', '.join(info['precisions']) or '-'}; targets {', '.join(info['targets']) or '-'}"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("artifact", "file", "kind", "size", "written by"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for art in info["artifacts"]:
        by = art["stage"] + (" (from another config)" if art["from_other_config"] else "")
        table.add_row(art["name"], escape(art["path"]), art["kind"], human_size(art["size_bytes"]), by)
    console.print(table)
    console.print(
        "[dim]infercc inspect FOLDER/FILE for one artifact; infercc verify FOLDER re-runs with this config.[/]"
    )


def render_inspection(console: Console, info: dict[str, Any], layers: bool = False) -> None:
    if info["kind"] == "folder":
        _render_folder(console, info)
        return
    if info["kind"] == "engine":
        from infercc.runtimes.tensorrt import render_engine

        render_engine(console, info, show_layers=layers)
        return
    from infercc.cli.render import human_size

    console.print(
        f"[bold]{escape(info['path'])}[/]  {human_size(info['size_bytes'])}, {info['parameters']:,} parameters"
    )
    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in info["opsets"].items())
    console.print(f"opset {opsets}; IR {info['ir_version']}; producer {escape(info['producer'] or '?')}")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("", "name", "dtype", "shape"):
        table.add_column(col)
    for name, io in info["io"].items():
        named = any(isinstance(d, str) for d in io["dims"])
        shown = ["?" if d is None else str(d) for d in io["dims"]]
        dims = f"({', '.join(shown)})" if named else "x".join(shown)
        table.add_row(io["io"], escape(name), io["dtype"], dims or "scalar")
    console.print(table)
    ops = ", ".join(f"{op} {n}" for op, n in info["op_counts"].items())
    console.print(f"{info['nodes']} nodes: {escape(ops)}")
