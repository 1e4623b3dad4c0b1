"""The infercc command line: parse, call the pipeline, print. No stage logic lives here."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from infercc import __version__
from infercc.cli import options as opt
from infercc.cli.render import (
    RichEvents,
    make_console,
    print_error,
    print_json,
    result_line,
    summary_table,
)
from infercc.cli.settings import Flags, load_settings
from infercc.errors import ExitCode, InferccError, UsageError

app = typer.Typer(
    name="infercc",
    help="Compile a PyTorch model into verified, benchmarked ONNX, FP16/INT8 and TensorRT artifacts.\n\n"
    "Exit codes: 0 success, 1 verification failed, 2 bad usage or config, 3 runtime not installed, "
    "4 a stage failed, 130 interrupted.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    help="Write a starting config or print the config's JSON Schema.", no_args_is_help=True
)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infercc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def _pipeline_command(goal_name: str) -> Any:
    """Build a command that runs the pipeline up to `goal_name`, sharing every option."""

    def command(
        config: opt.ConfigArg = None,
        model: opt.ModelOpt = None,
        model_arg: opt.ModelArgOpt = None,
        weights: opt.WeightsOpt = None,
        allow_pickle: opt.AllowPickleOpt = False,
        shape: opt.ShapeOpt = None,
        min_shape: opt.MinShapeOpt = None,
        opt_shape: opt.OptShapeOpt = None,
        max_shape: opt.MaxShapeOpt = None,
        dtype: opt.DtypeOpt = None,
        val_range: opt.ValRangeOpt = None,
        dim_name: opt.DimNameOpt = None,
        out: opt.OutOpt = None,
        out_force: opt.OutForceOpt = False,
        force: opt.ForceOpt = False,
        exporter: opt.ExporterOpt = None,
        opset: opt.OpsetOpt = None,
        simplifier: opt.SimplifierOpt = None,
        precision: opt.PrecisionOpt = None,
        calib: opt.CalibOpt = None,
        target: opt.TargetOpt = None,
        lock_wait: opt.LockWaitOpt = None,
        cache: opt.CacheOpt = None,
        set_: opt.SetOpt = None,
        calib_method: opt.CalibMethodOpt = None,
        eval_: opt.EvalOpt = None,
        workspace: opt.WorkspaceOpt = None,
        timing_cache: opt.TimingCacheOpt = None,
        compute_capability: opt.ComputeCapOpt = None,
        builder_optimization_level: opt.OptLevelOpt = None,
        int8_route: opt.Int8RouteOpt = None,
        reference: opt.ReferenceOpt = None,
        inputs: opt.InputsOpt = None,
        load_inputs: opt.LoadInputsOpt = None,
        save_inputs: opt.SaveInputsOpt = None,
        save_outputs: opt.SaveOutputsOpt = None,
        seed: opt.SeedOpt = None,
        iterations: opt.IterationsOpt = None,
        warmup: opt.WarmupOpt = None,
        duration: opt.DurationOpt = None,
        threads: opt.ThreadsOpt = None,
        batch_sizes: opt.BatchSizesOpt = None,
        no_bench: opt.NoBenchOpt = False,
        json_out: opt.JsonOpt = False,
        verbose: opt.VerboseOpt = 0,
        quiet: opt.QuietOpt = False,
    ) -> None:
        from infercc.pipeline.cache import open_cache
        from infercc.pipeline.plan import Goal, execute

        flags = Flags(
            model=model,
            model_args=model_arg or [],
            weights=weights,
            allow_pickle=allow_pickle,
            shape=shape or [],
            min_shape=min_shape or [],
            opt_shape=opt_shape or [],
            max_shape=max_shape or [],
            dtypes=dtype or [],
            val_ranges=val_range or [],
            dim_names=dim_name or [],
            out=out,
            exporter=exporter,
            opset=opset,
            simplifier=simplifier,
            precision=precision,
            calib=calib,
            target=target,
            lock_wait=lock_wait,
            sets=set_ or [],
            eval=eval_,
            extra={
                "quantize.method": calib_method,
                "build.workspace_mib": workspace,
                "build.timing_cache": str(timing_cache) if timing_cache else None,
                "build.compute_capabilities": _csv(compute_capability),
                "build.optimization_level": builder_optimization_level,
                "build.int8_route": int8_route,
                "verify.reference": reference,
                "verify.inputs": _verify_inputs(inputs, load_inputs),
                "verify.seed": seed,
                "bench.iterations": iterations,
                "bench.warmup": warmup,
                "bench.duration_s": duration,
                "bench.threads": threads,
                "bench.batch_sizes": [int(b) for b in _csv(batch_sizes)] if batch_sizes else None,
                "bench.enabled": False if no_bench else None,
            },
        )
        console = make_console(json_out)
        notes: list[str] = []
        settings = load_settings(config, flags, notes)
        if not quiet:
            for note in notes:
                console.print(f"[cyan]note:[/] {escape(note)}", soft_wrap=True)
        if settings.model.allow_pickle:
            console.print(
                "[yellow]warning:[/] --allow-pickle: model files are fully unpickled, which runs any code in them."
            )
        store = open_cache(cache) if cache else None
        with RichEvents(console, quiet=quiet, verbose=verbose) as events:
            ctx, result = execute(
                settings,
                Goal(goal_name),
                events,
                force=force,
                explicit_targets=target is not None,
                after=lambda ctx, result: _after_run(ctx, result, console, save_inputs, save_outputs),
                cache=store,
                out_force=out_force,
            )
        _finish(console, ctx, result, json_out, quiet)

    command.__name__ = goal_name
    return command


def _verify_inputs(folder: Path | None, polygraphy_file: Path | None) -> str | None:
    if folder is not None and polygraphy_file is not None:
        raise UsageError("--inputs and --load-inputs both give verify inputs.", hint="Pass one of them.")
    if polygraphy_file is not None and polygraphy_file.suffix.lower() != ".json":
        raise UsageError(f"--load-inputs {polygraphy_file}: expected a Polygraphy .json inputs file.")
    chosen = folder or polygraphy_file
    return str(chosen) if chosen else None


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


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    for item in items:
        if item.startswith("-") or not item:
            raise UsageError(f"Bad list value {value!r}.")
    return items


def _finish(console: Any, ctx: Any, result: Any, json_out: bool, quiet: bool) -> None:
    from rich.markup import escape

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
                if failures or result.errors
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

    from infercc.cli.render import selection_lines

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


_DOCS = {
    "compile": "Run every stage: export, simplify, quantize, build, verify, bench; write the report.",
    "export": "Export the PyTorch model to ONNX and check parity at the min/opt/max shapes.",
    "simplify": "Export (if needed) and simplify the ONNX graph.",
    "quantize": "Produce the FP16 / INT8 artifacts named by --precision.",
    "build": "Build TensorRT engines from the ONNX artifacts.",
    "verify": "Compare every artifact on every available runtime against the reference.",
    "bench": "Time every artifact on every available runtime.",
}
for _goal, _doc in _DOCS.items():
    _cmd = _pipeline_command(_goal)
    _cmd.__doc__ = _doc + "\n\nEarlier stages run only if their inputs changed (see manifest.json in --out)."
    app.command(_goal)(_cmd)


@app.command()
def matrix(
    matrix_file: Path = typer.Argument(
        ..., metavar="MATRIX.yaml", help="Matrix file: models x precisions x targets (see docs/config.md)."
    ),
    out: opt.OutOpt = None,
    cache: opt.CacheOpt = None,
    ray: opt.RayOpt = None,
    jobs: opt.JobsOpt = None,
    force: opt.ForceOpt = False,
    json_out: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Compile models x precisions x targets: one compile job per combination, on a local process pool or a
    Ray cluster; writes matrix.json and matrix.html (rows models, columns targets).

    Jobs that finished in an earlier run with the same config are not run again (--force runs them).
    Exit codes: 0 every job ok, 1 the failing jobs failed verification only, 4 any other job failed,
    2 a bad matrix file (no job runs)."""
    from infercc.cli.render import MatrixProgress, matrix_table
    from infercc.matrix.run import run_matrix
    from infercc.matrix.spec import job_count, load_matrix
    from infercc.matrix.summary import SUMMARY_HTML, build_summary

    console = make_console(json_out)
    spec = load_matrix(matrix_file)
    with MatrixProgress(console, job_count(spec), quiet=quiet, verbose=verbose) as events:
        run = run_matrix(spec, matrix_file, events, out, cache, ray, jobs, force)
    summary = build_summary(run)
    if json_out:
        print_json(
            {
                **{k: summary[k] for k in ("status", "exit_code", "out", "backend", "wall_s", "jobs_s")},
                "cache": run.cache_counts(),  # over the jobs that ran now (0 and 0 without --cache)
                "cache_url": run.cache_url,
                "jobs": summary["jobs"],
                "cells": summary["cells"],
            }
        )
    elif quiet:
        typer.echo(f"matrix {summary['status']}: {len(run.jobs)} job(s), {Path(run.out) / SUMMARY_HTML}")
    else:
        console.print()
        console.print(matrix_table(summary))
        console.print(f"summary: {Path(run.out) / SUMMARY_HTML}")
    code = run.exit_code()
    if code:
        failed = run.failed
        print_error(
            None,
            f"{len(failed)} of {len(run.jobs)} job(s) failed: "
            + ", ".join(j.id for j in failed[:5])
            + (" ..." if len(failed) > 5 else ""),
            "Each failed cell's error is in matrix.json / matrix.html.",
        )
        raise typer.Exit(int(code))


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="An .onnx file, a TensorRT .engine file, or an output folder."),
    layers: bool = typer.Option(
        False, "--layers", help="List every layer of an engine (default: a summary)."
    ),
    json_out: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = 0,
) -> None:
    """Summarise an ONNX file (inputs/outputs, opset, op counts, parameters, size), an engine, or an
    output folder (its recorded model, shapes and artifacts)."""
    from infercc.inspection import inspect_path, render_inspection

    info = inspect_path(path)
    if json_out:
        print_json(info)
    else:
        render_inspection(make_console(False), info, layers=layers)


@app.command()
def report(
    folder: Path = typer.Argument(..., help="The output folder of an earlier run (it holds manifest.json)."),
    json_out: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
) -> None:
    """Write report.json, report.html and summary.md again from a folder's manifest (no stage runs)."""
    from infercc.cli.settings import recorded_config
    from infercc.config import parse_config
    from infercc.fsutil import OutDirLock
    from infercc.pipeline.manifest import MANIFEST_NAME, load_manifest
    from infercc.report import REPORT_HTML, write_reports

    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder.", hint="Give the --out folder of an earlier run.")
    config = parse_config(recorded_config(folder), str(folder / MANIFEST_NAME))
    with OutDirLock(folder, wait=0):
        manifest, _ = load_manifest(folder)
        written = write_reports(folder, manifest, config)
    if json_out:
        print_json(written)
    elif quiet:
        typer.echo(f"{written['status']}: {folder / REPORT_HTML}")
    else:
        make_console(False).print(
            f"report {written['status']}: wrote {escape(str(folder / REPORT_HTML))}, report.json, summary.md"
        )


@app.command()
def doctor(json_out: opt.JsonOpt = False) -> None:
    """Which runtimes, execution providers, TensorRT flavours and GPUs this machine has."""
    from infercc.doctor import collect, render

    info = collect()
    if json_out:
        print_json(info)
    else:
        render(make_console(False), info)


@config_app.command("init")
def config_init(
    path: Path = typer.Argument(Path("infercc.yaml"), help="Where to write the config."),
    force: opt.ForceOpt = False,
) -> None:
    """Write a commented starting config (the EfficientNet-Lite0 example)."""
    from infercc.configdoc import starter_yaml
    from infercc.fsutil import atomic_write_text

    if path.exists() and not force:
        raise UsageError(
            f"{path} already exists.", hint="Pass --force to overwrite it, or give another path."
        )
    atomic_write_text(path, starter_yaml())
    typer.echo(f"wrote {path}; run: infercc compile {path}")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    from infercc.configdoc import json_schema

    print_json(json_schema())


def _wants_traceback(argv: list[str]) -> bool:
    return any(a in ("-v", "-vv", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in argv)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _click_exceptions() -> Any:
    """Typer >= 0.20 vendors click as typer._click; older versions use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


INTERRUPTED_MESSAGE = "interrupted; finished stages are kept and the next run resumes from there."


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps user errors to one-line messages and documented exit codes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = _run(argv, verbose=_wants_traceback(argv), json_mode="--json" in argv)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one was being reported
        code = ExitCode.INTERRUPTED
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(int(code)) if os.environ.get("INFERCC_HARD_EXIT") else sys.exit(int(code))


def _run(argv: list[str], verbose: bool, json_mode: bool) -> int:
    click = _click_exceptions()
    try:
        result = app(args=argv, prog_name="infercc", standalone_mode=False)
        # In non-standalone mode typer returns exit codes instead of raising: typer.Exit(n), and 130 for a
        # KeyboardInterrupt (Ctrl-C, or SIGTERM through _on_sigterm) that it caught itself.
        code = result if isinstance(result, int) and not isinstance(result, bool) else ExitCode.OK
        if code == ExitCode.INTERRUPTED:
            _report(INTERRUPTED_MESSAGE, None, verbose=False)
        return code
    except InferccError as exc:
        _report(exc.message, exc.hint, verbose)
        if json_mode and not getattr(exc, "json_reported", False):
            print_json(
                {"status": "error", "exit_code": int(exc.exit_code), "error": exc.message, "hint": exc.hint}
            )
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _report(INTERRUPTED_MESSAGE, None, verbose=False)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        if json_mode:
            error = exc.format_message()
            print_json({"status": "error", "exit_code": int(ExitCode.USAGE), "error": error, "hint": None})
        return ExitCode.USAGE
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.STAGE_FAILED
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        log = _write_bug_log(argv)
        where = f"the traceback is in {log}" if log else "run again with -v for the traceback"
        hint = f"This is a bug in infercc: {where}; please report it with that file."
        _report(f"internal error: {type(exc).__name__}: {first}", hint, verbose)
        return ExitCode.STAGE_FAILED


def _write_bug_log(argv: list[str]) -> str | None:
    """The traceback of an internal error, in a new folder of infercc's own under the system temp folder."""
    import tempfile

    try:
        folder = tempfile.mkdtemp(prefix="infercc-bug-")
        path = Path(folder) / "traceback.log"
        path.write_text(f"infercc {__version__}\nargs: {argv}\n\n{traceback.format_exc()}")
        return str(path)
    except OSError:
        return None


def _report(message: str, hint: str | None, verbose: bool) -> None:
    """Print an error in one or two lines (a traceback first with -v); never fail while doing so."""
    if verbose:
        traceback.print_exc()
    try:
        print_error(None, message, hint)
    except Exception:
        sys.stderr.write(f"error: {message}\n" + (f"  hint: {hint}\n" if hint else ""))
