"""Everything the CLI prints: progress while stages run, the summary table, errors, JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from infercc.pipeline.manifest import Manifest, StageRecord


def make_console(json_mode: bool) -> Console:
    """Human output: stdout normally, stderr when stdout carries JSON."""
    return Console(stderr=json_mode, highlight=False, soft_wrap=False)


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class RichEvents:
    """Shows a spinner for the running stage and one line per finished stage."""

    def __init__(self, console: Console, quiet: bool = False, verbose: int = 0) -> None:
        self.console = console
        self.quiet = quiet
        self.verbose = verbose
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichEvents:
        if not self.quiet and self.console.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("[dim]{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def stage_started(self, name: str, description: str) -> None:
        if self.progress is not None:
            self.tasks[name] = self.progress.add_task(f"{name}: {description}", total=None, detail="")
        elif not self.quiet and self.verbose:
            self.console.print(f"[dim]… {name}: {description}[/]")

    def stage_progress(self, name: str, completed: float, total: float | None, detail: str = "") -> None:
        if self.progress is not None and name in self.tasks:
            self.progress.update(self.tasks[name], completed=completed, total=total, detail=detail)

    def stage_finished(self, record: StageRecord, cached: bool) -> None:
        if self.progress is not None and record.name in self.tasks:
            self.progress.remove_task(self.tasks.pop(record.name))
        if self.quiet:
            return
        if cached:
            self.console.print(f"[dim]- {record.name:<14} up to date[/]")
        elif record.status == "done":
            self.console.print(
                f"[green]✓[/] {record.name:<14} {record.duration_s:6.2f} s  {stage_brief(record)}"
            )
        elif record.status == "skipped":
            self.console.print(f"[yellow]○[/] {record.name:<14} skipped: {escape('; '.join(record.notes))}")
        else:
            self.console.print(f"[red]✗[/] {record.name:<14} {record.duration_s:6.2f} s  failed")
        if self.verbose:
            for note in record.notes:
                self.console.print(f"    [dim]{escape(note)}[/]")

    def warn(self, message: str) -> None:
        self.console.print(
            f"[yellow]warning:[/] {escape(message)}", soft_wrap=True
        )  # paths stay whole in CI logs

    def info(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.console.print(f"[dim]{escape(message)}[/]")


def stage_brief(record: StageRecord) -> str:
    m = record.metrics
    if record.name == "export":
        return f"{m.get('exporter')} exporter, {m.get('nodes')} nodes, parity OK at {', '.join(m.get('shapes_checked', {}))}"
    if record.name == "simplify":
        return f"{m.get('tool')}: {m.get('nodes_before')} -> {m.get('nodes_after')} nodes"
    if record.name == "verify":
        n = len(m.get("results", []))
        failed = len(m.get("failures", []))
        return f"{n} artifact/runtime pairs, " + (
            "all within tolerance" if not failed else f"{failed} failures"
        )
    brief = m.get("brief")
    return str(brief) if brief else ""


def summary_table(manifest: Manifest) -> Table:
    table = Table(title="Artifacts", title_justify="left", show_edge=False, pad_edge=False)
    # quantize stages put their accuracy against FP32 on the evaluation data in art.meta["accuracy"]
    accuracy = any(
        a.meta.get("accuracy") for s in manifest.stages.values() if s.status == "done" for a in s.outputs
    )
    columns = (
        ("artifact", "file", "size", "nodes", "vs reference")
        + (("vs fp32 (eval data)",) if accuracy else ())
        + ("stage time",)
    )
    for col in columns:
        table.add_column(col, justify="right" if col in ("size", "nodes", "stage time") else "left")
    verify = manifest.stages.get("verify")
    worst = _worst_by_artifact(verify)
    for stage in manifest.stages.values():
        if stage.status != "done":
            continue
        for art in stage.outputs:
            if art.kind not in ("onnx", "engine"):
                continue
            nodes = art.meta.get("nodes") or _nodes(stage, art.name)
            table.add_row(
                art.name,
                art.path,
                human_size(art.size),
                str(nodes or "-"),
                worst.get(art.name, "-"),
                *((art.meta.get("accuracy") or "-",) if accuracy else ()),
                f"{stage.duration_s:.2f} s",
            )
    return table


def _nodes(stage: StageRecord, name: str) -> int | None:
    if name == "onnx":
        return stage.metrics.get("nodes")
    if name == "fp32":
        return stage.metrics.get("nodes_after")
    return None


def _worst_by_artifact(verify: StageRecord | None) -> dict[str, str]:
    if verify is None:
        return {}
    shown: dict[str, str] = {}
    for result in verify.metrics.get("results", []):
        cosines, errors, top1 = [], [], []
        for point in result.get("points", {}).values():
            for metrics in point.values():
                cosines.append(metrics.get("cosine") or 0.0)
                errors.append(metrics.get("max_abs") or 0.0)
                if metrics.get("top1") is not None:
                    top1.append(metrics["top1"])
        if not cosines:
            continue
        text = f"max|Δ| {max(errors):.2g}, cos {min(cosines):.6f}"
        if top1:
            text += f", top-1 {min(top1):.1%}"
        mark = "[green]ok[/]" if not result.get("failures") else "[red]FAIL[/]"
        shown[result["artifact"]] = f"{mark} {text}"
    return shown


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_error(console: Console, message: str, hint: str | None) -> None:
    err = Console(stderr=True, highlight=False)
    # messages quote user input (paths, shapes, "pip install 'infercc[gpu]'"): never read them as markup
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    if hint:
        err.print(f"  [dim]hint:[/] {escape(hint)}", soft_wrap=True)
