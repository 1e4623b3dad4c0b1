"""`infercc inspect`: a summary of an ONNX file, of a TensorRT engine (via its sidecar or the engine inspector,
tensorrt/engine_info.py) or of an output folder, and how each is drawn."""

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
        from infercc.tensorrt.engine_info import inspect_engine

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
    from infercc.fsutil import human_size

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
        render_engine(console, info, show_layers=layers)
        return
    from infercc.fsutil import human_size

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


def _tally(layers: list[dict[str, Any]], key: str) -> str:
    counts: dict[str, int] = {}
    for layer in layers:
        counts[str(layer.get(key))] = counts.get(str(layer.get(key)), 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def render_engine(console: Console, info: dict[str, Any], show_layers: bool = False) -> None:
    from infercc.fsutil import human_size

    flavour = info.get("flavour", {})
    console.print(
        f"[bold]{escape(info['path'])}[/]  {human_size(info['size_bytes'])}, {info.get('precision')} engine, "
        f"{escape(flavour.get('label') or '?')}"
    )
    targets = info.get("targets", {})
    if targets.get("compute_capabilities"):
        from infercc.tensorrt.flavours import describe_target

        caps = ", ".join(describe_target(t) for t in targets["compute_capabilities"])
        console.print(
            f"targets: compute capability {caps}"
            + (" (TensorRT-RTX default set)" if targets.get("default_set") else "")
        )
    if targets.get("gpu"):
        console.print(
            f"built on: {escape(str(targets['gpu']))} (compute capability "
            f"{targets.get('gpu_compute_capability')})"
        )
    src = info.get("source", {})
    console.print(
        f"from: {escape(str(src.get('path')))} (sha256 {str(src.get('sha256'))[:12]}..), built "
        f"{info.get('built')} "
        f"in {info.get('build_s')} s"
    )
    for i, text in enumerate(info.get("profiles_text", [])):
        console.print(f"profile {i}: {escape(text)}")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("", "name", "dtype", "shape"):
        table.add_column(col)
    for kind in ("inputs", "outputs"):
        for t in info.get(kind, []):
            dims = "x".join("?" if d is None or d < 0 else str(d) for d in t["shape"])
            table.add_row(kind[:-1], escape(t["name"]), str(t["dtype"]), dims or "scalar")
    console.print(table)
    all_layers = info.get("layers", [])
    if show_layers:
        layers = Table(show_edge=False, pad_edge=False, title=f"{len(all_layers)} layers")
        for col in ("#", "name", "type", "precision"):
            layers.add_column(col)
        for i, layer in enumerate(all_layers):
            layers.add_row(
                str(i), escape(str(layer["name"]))[:80], str(layer["type"]), str(layer["precision"])
            )
        console.print(layers)
    else:
        console.print(f"{len(all_layers)} layers: {escape(_tally(all_layers, 'type'))}")
        console.print(
            f"  precision: {escape(_tally(all_layers, 'precision'))}  [dim](--layers lists them)[/]"
        )
    console.print(f"listing from: {escape(info['listing_source'])}")
    if info.get("problem"):
        console.print(f"[yellow]cannot load here:[/] {escape(info['problem'])}")
        if info.get("rebuild"):
            console.print(f"  rebuild: {escape(info['rebuild'])}")
    for note in info.get("notes", []):
        console.print(f"note: {escape(note)}")
