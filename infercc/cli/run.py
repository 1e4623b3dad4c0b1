"""Running a pipeline command: its parsed parameters become Flags and run options, the pipeline runs up to
the command's goal, and the result is printed (table, one line, or one JSON document)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from infercc.cli.render import (
    RichEvents,
    make_console,
    print_json,
    result_line,
    selection_lines,
    summary_table,
)
from infercc.cli.settings import Flags, load_settings
from infercc.errors import UsageError


@dataclass(frozen=True)
class RunOptions:
    """A pipeline command's parameters that are not config: how to run and what to print."""

    config: Path | None = None
    force: bool = False
    out_force: bool = False
    cache: str | None = None
    save_inputs: Path | None = None
    save_outputs: Path | None = None
    json_out: bool = False
    verbose: int = 0
    quiet: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RunOptions:
        from infercc.cli.settings import fields_from_params

        return fields_from_params(cls, params)


def run_pipeline(goal_name: str, params: dict[str, Any]) -> None:
    """Run the pipeline up to `goal_name` with a command's parsed parameters (typer's ctx.params)."""
    from infercc.pipeline.cache import open_cache
    from infercc.pipeline.plan import Goal, execute

    flags, run = Flags.from_params(params), RunOptions.from_params(params)
    console = make_console(run.json_out)
    notes: list[str] = []
    settings = load_settings(run.config, flags, notes)
    if not run.quiet:
        for note in notes:
            console.print(f"[cyan]note:[/] {escape(note)}", soft_wrap=True)
    if settings.model.allow_pickle:
        console.print(
            "[yellow]warning:[/] --allow-pickle: model files are fully unpickled, which runs any code in them."
        )
    store = open_cache(run.cache) if run.cache else None
    with RichEvents(console, quiet=run.quiet, verbose=run.verbose) as events:
        ctx, result = execute(
            settings,
            Goal(goal_name),
            events,
            force=run.force,
            explicit_targets=bool(flags.target),
            after=lambda ctx, result: _after_run(ctx, result, console, run.save_inputs, run.save_outputs),
            cache=store,
            out_force=run.out_force,
        )
    _finish(console, ctx, result, run.json_out, run.quiet)


def _after_run(
    ctx: Any, result: Any, console: Any, inputs_file: Path | None, outputs_file: Path | None
) -> None:
    """Under the output folder's lock: the reports, then the Polygraphy files asked for."""
    _write_reports(ctx, result.manifest, console)
    if inputs_file is None and outputs_file is None:
        return
    from infercc.data.polygraphy import save_inputs, save_outputs
    from infercc.stages.export import load_reference

    record = result.manifest.artifacts().get("reference")
    if record is None:
        raise UsageError("--save-inputs/--save-outputs: this run produced no reference (reference.npz).")
    sets = load_reference(ctx.path(record.path))
    if inputs_file is not None:
        save_inputs(inputs_file, [feeds for feeds, _ in sets.values()])
    if outputs_file is not None:
        save_outputs(outputs_file, [outputs for _, outputs in sets.values()], runner_name="pytorch")
    written = " and ".join(str(p) for p in (inputs_file, outputs_file) if p is not None)
    console.print(
        f"wrote {escape(written)} ({len(sets)} feeds: {', '.join(sets)}) in Polygraphy's JSON formats",
        soft_wrap=True,
    )


def _finish(console: Any, ctx: Any, result: Any, json_out: bool, quiet: bool) -> None:
    manifest = result.manifest
    failures = result.failures
    problem = _run_problem(result, failures)
    if json_out:
        problem_fields = {
            "exit_code": int(problem.exit_code) if problem else 0,
            "error": problem.message if problem else None,
            "hint": problem.hint if problem else None,
        }
        print_json(
            {
                "status": "failed"
                if failures or result.errors or result.crashes
                else ("budget missed" if result.budget_misses else "ok"),
                **problem_fields,
                "out": str(ctx.out),
                "ran": result.ran,
                "cached": result.cached,
                "skipped": result.skipped,
                "restored": result.restored,
                "cache": manifest.cache.counts() if manifest.cache else None,
                "failures": failures,
                "errors": [e.message for e in result.errors],
                "manifest": manifest.model_dump(mode="json", by_alias=True),
            }
        )
    elif not quiet:
        console.print()
        console.print(summary_table(manifest))
        restored = f", {len(result.restored)} from the cache" if manifest.cache else ""
        for line in _selection_lines(ctx.out):
            console.print(line, markup=False, highlight=False)
        console.print(
            f"\n[bold]{len(result.ran)}[/] stage(s) ran, {len(result.cached)} up to date{restored}. Artifacts in [bold]{escape(str(ctx.out))}[/]"
        )
        if manifest.cache:
            c = manifest.cache.counts()
            console.print(
                f"cache {escape(manifest.cache.url)}: {c['hits']} hit(s), {c['misses']} miss(es)"
                + (f", {c['refused']} refused (sha256 mismatch, rebuilt)" if c["refused"] else "")
            )
        foreign = manifest.foreign_artifacts()
        if foreign:
            console.print(
                f"[dim]{', '.join(foreign)}: from another config run into the same folder; "
                "not verified or benched by this one (use a separate --out per config).[/]"
            )
    else:
        console.print(escape(result_line(manifest, failures, ctx.out, crashes=len(result.crashes))))
    if problem is not None:
        problem.json_reported = (
            json_out  # one JSON document on stdout: the result above already holds the error
        )
        raise problem


def _run_problem(result: Any, failures: list[str]) -> Any:
    """The error a finished run ends with (crashes, stage errors, verification failures, a missed budget), or None."""
    from infercc.errors import StageError, VerificationFailed

    if result.crashes:
        return StageError(
            f"{len(result.crashes)} runtime crash(es):\n  " + "\n  ".join(result.crashes[:20]),
            hint="The other artifact/runtime pairs finished; the report lists them. Try another runtime, "
            "precision or opset for the crashing pair.",
        )
    if result.errors:
        return stage_failures(result.errors, failures)
    if failures:
        return VerificationFailed(
            f"{len(failures)} verification failure(s):\n  " + "\n  ".join(failures[:20]),
            hint="Loosen verify.tolerances / verify.outputs in the config if these differences are acceptable.",
        )
    if result.budget_misses:
        return VerificationFailed(
            "accuracy budget missed:\n  " + "\n  ".join(result.budget_misses[:20]),
            hint="Improve the artifact (more or other calibration data, --calib-method, quantize.exclude_*), "
            "or accept the miss with quantize.accept_budget_miss: true (and say why in the config).",
        )
    return None


def _selection_lines(out: Path) -> list[str]:
    """The selection verdicts from the report this run just wrote (none when it wrote none)."""
    import json

    try:
        report = json.loads((Path(out) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return selection_lines(report)


def stage_failures(errors: list[Any], failures: list[str]) -> Any:
    """One error for the stages that failed on their own while the run went on (the first one's code)."""
    first = errors[0]
    message = (
        first.message
        if len(errors) == 1
        else f"{len(errors)} stages failed:\n  " + "\n  ".join(e.message for e in errors)
    )
    if failures:
        message += f"\n  and {len(failures)} verification failure(s) (see the report)"
    return type(first)(message, hint=first.hint)


def _write_reports(ctx: Any, manifest: Any, console: Any) -> None:
    try:
        from infercc.report import write_reports
    except ImportError:
        return
    write_reports(ctx.out, manifest, ctx.config)
