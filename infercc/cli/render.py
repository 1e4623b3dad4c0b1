"""Everything the CLI prints: progress while stages run, the summary table, errors, JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from infercc.fsutil import human_size
from infercc.pipeline.manifest import Manifest, StageRecord


def make_console(json_mode: bool) -> Console:
    """Human output: stdout normally, stderr when stdout carries JSON. Output that is not a terminal (CI
    logs, pipes, files) is never wrapped, and its tables are Markdown rows (LogConsole)."""
    console = Console(stderr=json_mode, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        return LogConsole(stderr=json_mode, highlight=False, soft_wrap=True, width=120)
    return console


class LogConsole(Console):
    """For logs: lines stay whole however long, tables print as Markdown (one row a line, greppable)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        objects = tuple(table_markdown(o) if isinstance(o, Table) else o for o in objects)
        kwargs["soft_wrap"] = True
        super().print(*objects, **kwargs)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def table_markdown(table: Table) -> Text:
    """A rich Table as a Markdown table (title as a bold line above it)."""
    headers = [_plain(c.header) or " " for c in table.columns]
    columns = [[_plain(cell).replace("|", "\\|") for cell in c.cells] for c in table.columns]
    lines = [f"**{_plain(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---:" if c.justify == "right" else "---" for c in table.columns) + "|")
    for row in zip(*columns, strict=True):
        lines.append("| " + " | ".join(cell or " " for cell in row) + " |")
    return Text("\n".join(lines))


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
            # verify and bench run to the end and report every failure and crash; the mark says if there were any
            failed = record.verdict.failures or record.verdict.crashes
            mark = "[red]✗[/]" if failed else "[green]✓[/]"
            self.console.print(f"{mark} {record.name:<14} {record.duration_s:6.2f} s  {stage_brief(record)}")
        elif record.status == "skipped":
            self.console.print(f"[yellow]○[/] {record.name:<14} skipped: {escape('; '.join(record.notes))}")
        else:
            self.console.print(f"[red]✗[/] {record.name:<14} {record.duration_s:6.2f} s  failed")
        if self.verbose:
            for note in record.notes:
                self.console.print(f"    [dim]{escape(note)}[/]")

    def stage_restored(self, record: StageRecord) -> None:
        if self.quiet:
            return
        self.console.print(
            f"[cyan]↓[/] {record.name:<14} from the cache (ran {record.duration_s:.2f} s where it was built)"
        )

    def warn(self, message: str) -> None:
        self.console.print(
            f"[yellow]warning:[/] {escape(message)}", soft_wrap=True
        )  # paths stay whole in CI logs

    def info(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.console.print(f"[dim]{escape(message)}[/]")


def stage_brief(record: StageRecord) -> str:
    """The stage result's one line (StageResult.brief)."""
    return str(record.metrics.get("brief") or "")


def summary_table(manifest: Manifest) -> Table:
    """One row per artifact: size, nodes, how it compares with the reference, accuracy on the evaluation
    data (precision artifacts), and its batch-1 latency with the speed-up over PyTorch eager."""
    rows = [
        (stage, art)
        for stage in manifest.stages.values()
        if stage.status == "done"
        for art in stage.outputs
        if art.kind in ("onnx", "onnx-bf16", "engine", "inductor")
    ]
    verify = _verify_by_artifact(manifest.stages.get("verify"))
    latency = _latency_by_artifact(manifest.stages.get("bench"))
    accuracy = any(art.meta.get("accuracy") for _, art in rows)
    table = Table(title="Artifacts", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("artifact")
    table.add_column("size", justify="right")
    table.add_column("nodes", justify="right")
    table.add_column("verify (worst output)", no_wrap=True)
    if accuracy:
        table.add_column("vs FP32 on eval data", no_wrap=True)
    if latency:
        table.add_column("fastest p50 (× eager)", justify="right", no_wrap=True)
    table.add_column("built in", justify="right")
    for stage, art in rows:
        cells = [art.name, human_size(art.size), str(art.meta.get("nodes") or _nodes(stage, art.name) or "-")]
        foreign = manifest.from_other_config(stage)
        cell = _verify_cell(manifest, verify, art.name, foreign)
        if art.meta.get("specialized"):
            cell += " [yellow](valid shapes only)[/]"
        if art.meta.get("loadable") is False:
            cell = "[yellow]built, not loadable here[/]"
        cells.append(cell)
        if accuracy:
            cells.append(escape(str(art.meta.get("accuracy") or "-")))
        if latency:
            cells.append("-" if foreign else latency.get(art.name, "-"))
        cells.append(f"{stage.duration_s:.1f} s")
        table.add_row(*cells)
    for name, role in (("pytorch", "reference"), ("torch.compile", "peer")):
        if latency.get(name):
            table.add_row(name, "", "", f"[dim]{role}[/]", *([""] if accuracy else []), latency[name], "")
    return table


def _verify_cell(manifest: Manifest, verify: dict[str, str], name: str, foreign: bool) -> str:
    if foreign:
        return "[dim]from another config[/]"
    if name in verify:
        return verify[name]
    if "verify" not in manifest.stages:
        return "[dim]-[/]"
    return "[dim]no runtime here[/]"


def selection_lines(report: dict[str, Any]) -> list[str]:
    """Per device: the pick across backends with its ratio to PyTorch eager and to torch.compile."""
    lines = []
    for d in (report.get("selection") or {}).get("devices") or []:
        ratios = []
        if d.get("vs_eager"):
            ratios.append(f"{d['vs_eager']:.2f}x PyTorch eager")
        if d.get("vs_compile"):
            ratios.append(f"{d['vs_compile']:.2f}x torch.compile")
        tail = f" ({', '.join(ratios)}; above 1 is faster)" if ratios and d.get("chosen") else ""
        lines.append(f"Selected on {d['device']}: {d['verdict']}{tail}.")
    return lines


def _nodes(stage: StageRecord, name: str) -> int | None:
    from infercc.stages.results import ExportResult, SimplifyResult

    if name == "onnx":
        return ExportResult.read(stage).nodes
    if name == "fp32":
        return SimplifyResult.read(stage).nodes_after
    return None  # the other artifacts carry their node count in their meta


def _verify_by_artifact(verify: StageRecord | None) -> dict[str, str]:
    """'ok cos 0.999998, top-1 100%': the worst cosine over all outputs, input sets and runtimes."""
    if verify is None:
        return {}
    from infercc.stages.results import VerifyResult

    verified = VerifyResult.read(verify)
    results = verified.results if verified is not None else []
    several = len({r.runtime for r in results}) > 1
    worst: dict[str, tuple[tuple[bool, bool, float], str]] = {}
    for result in results:
        outputs = result.outputs.values()
        cosines = [o.cosine for o in outputs if isinstance(o.cosine, float | int)]
        top1 = [o.top1 for o in outputs if isinstance(o.top1, float | int)]
        failed = bool(result.failures)
        budget = result.budget
        missed = not failed and budget is not None and not budget.met
        non_finite = sum(o.nan + o.inf for o in outputs)
        cosine = min(cosines) if cosines else (0.0 if non_finite else 1.0)
        text = f"cos {cosine:.6f}" if cosines else ""
        if non_finite:
            text = ", ".join([t for t in (text, f"{non_finite} NaN/Inf") if t])
        if top1:
            text += f", top-1 {min(top1):.0%}"
        if several:
            text += f" [dim]({_short_runtime(result.runtime)})[/]"
        accepted = budget is not None and budget.accepted
        if missed:
            text += " [yellow](budget missed, accepted)[/]" if accepted else ""
        verdict = (
            "[red]FAIL[/] "
            if failed
            else ("[red]budget missed[/] " if missed and not accepted else "[green]ok[/] ")
        )
        key = (failed, missed, -cosine)
        previous = worst.get(result.artifact)
        if previous is None or key > previous[0]:
            worst[result.artifact] = (key, verdict + text)
    return {name: text for name, (_, text) in worst.items()}


def _short_runtime(name: str) -> str:
    return name.replace("onnxruntime-", "ort-").replace("pytorch-", "torch-")


def _latency_by_artifact(bench: StageRecord | None) -> dict[str, str]:
    """'0.402 ms ort-cuda (7.4x, 1.1x compile)': the fastest runtime at the smallest benched batch, with its
    speed-up over PyTorch eager and over torch.compile on the same device."""
    if bench is None:
        return {}
    from infercc.stages.results import BenchResult

    timed = BenchResult.read(bench)
    results = timed.results if timed is not None else []
    several = len({r.runtime for r in results if r.artifact not in ("pytorch", "torch.compile")}) > 1
    best: dict[str, tuple[float, str]] = {}
    for result in results:
        if not result.batches:
            continue
        figures = result.batches[min(result.batches, key=int)]
        p50, speedup = figures.p50_ms, figures.speedup
        if p50 is None:
            continue
        reference = result.artifact in ("pytorch", "torch.compile")
        where = f" {_short_runtime(result.runtime)}" if several or reference else ""
        ratios = []
        if speedup and result.artifact != "pytorch":
            ratios.append(f"{speedup:.1f}x")
        elif figures.disturbed and not reference:
            ratios.append("disturbed")
        if figures.vs_compile:
            ratios.append(f"{figures.vs_compile:.1f}x compile")
        text = f"{p50:.3g} ms{where}" + (f" ({', '.join(ratios)})" if ratios else "")
        if result.artifact not in best or p50 < best[result.artifact][0]:
            best[result.artifact] = (p50, text)
    return {name: text for name, (_, text) in best.items()}


def result_line(manifest: Manifest, failures: list[str], out: Any, crashes: int = 0) -> str:
    """The -q result: status, this config's artifacts, the fastest at batch 1, where they are."""
    foreign = set(manifest.foreign_artifacts())
    names = [
        a.name
        for a in manifest.artifacts().values()
        if a.kind in ("onnx", "engine") and a.name not in foreign
    ]
    problems = [f"{len(failures)} verification failure(s)"] if failures else []
    problems += [f"{crashes} runtime crash(es)"] if crashes else []
    status = f"FAILED ({', '.join(problems)})" if problems else "ok"
    verify = manifest.stages.get("verify")
    checked = " verified" if verify is not None and verify.status == "done" and not problems else ""
    line = f"{status}: {', '.join(names) or 'no artifacts'}{checked}"
    latency = {k: v for k, v in _latency_by_artifact(manifest.stages.get("bench")).items() if k in names}
    if latency:
        fastest = min(latency, key=lambda k: _ms(latency[k]))
        line += f"; fastest {fastest} {Text.from_markup(latency[fastest]).plain}"
    return f"{line}; in {out}"


def _ms(text: str) -> float:
    try:
        return float(text.split(" ms", 1)[0])
    except ValueError:
        return float("inf")


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_error(console: Console, message: str, hint: str | None) -> None:
    err = Console(stderr=True, highlight=False)
    # messages quote user input (paths, shapes, "pip install 'infercc[gpu]'"): never read them as markup
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    if hint:
        err.print(f"  [dim]hint:[/] {escape(hint)}", soft_wrap=True)


class MatrixProgress:
    """Progress of `infercc matrix`: one line per job as it starts (with -v) and as it finishes."""

    def __init__(self, console: Console, total: int, quiet: bool = False, verbose: int = 0) -> None:
        self.console, self.total, self.quiet, self.verbose = console, total, quiet, verbose
        self.done = 0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> MatrixProgress:
        if not self.quiet and self.console.is_terminal:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console
            )
            self.progress.start()
            self.task = self.progress.add_task(f"jobs 0/{self.total}", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def job_started(self, job: Any) -> None:
        if self.verbose and not self.quiet:
            self.console.print(f"[dim]… {escape(job.id)} started[/]")

    def job_finished(self, result: Any) -> None:
        self.done += 1
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=self.done, description=f"jobs {self.done}/{self.total}")
        if self.quiet:
            return
        where = f"{len(result.ran)} ran, {len(result.restored)} from cache, {len(result.cached)} up to date"
        retried = f", {result.attempts} attempts" if (result.attempts or 1) > 1 else ""
        if result.status == "ok":
            self.console.print(
                f"[green]✓[/] {escape(result.id):<40} {result.seconds:6.1f} s  {where}{retried}"
            )
        else:
            self.console.print(
                f"[red]✗[/] {escape(result.id):<40} {result.seconds:6.1f} s  exit {result.exit_code}: "
                f"{escape(str(result.error))}{retried}",
                soft_wrap=True,
            )


def matrix_table(summary: dict[str, Any]) -> Table:
    """Rows models, columns targets: the selected artifact, its speed-up and accuracy, or the failure."""
    table = Table(title="matrix", show_lines=True)
    table.add_column("model")
    for target in summary["targets"]:
        table.add_column(target)
    cells = {(c["model"], c["target"]): c for c in summary["cells"]}
    for model in summary["models"]:
        table.add_row(model, *(_matrix_cell(cells.get((model, t))) for t in summary["targets"]))
    return table


def _matrix_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    lines = ["[green]ok[/]" if cell["status"] == "ok" else "[red]failed[/]"]
    sel = cell.get("selected")
    if sel:
        acc = sel.get("accuracy") or {}
        speed = f"{sel['speedup']:.2f}x" if sel.get("speedup") is not None else "-"
        cosine = f", cos {acc['cosine']:.5f}" if isinstance(acc.get("cosine"), float) else ""
        lines.append(f"{escape(str(sel['artifact']))} on {escape(str(sel.get('runtime')))}: {speed}{cosine}")
    elif cell["status"] == "ok":
        lines.append("[dim]no timed artifact[/]")
    lines += [f"[red]{escape(f['job'].split('/')[-1])}: exit {f['exit_code']}[/]" for f in cell["failures"]]
    return "\n".join(lines)
