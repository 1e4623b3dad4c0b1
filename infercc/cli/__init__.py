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

from infercc import __version__
from infercc.cli import options as opt
from infercc.cli.pipeline_commands import COMMANDS, pipeline_command
from infercc.errors import ExitCode, InferccError, UsageError

app = typer.Typer(
    name="infercc",
    help="Compile a PyTorch model into verified, benchmarked ONNX, FP16/INT8 and TensorRT artifacts.\n\n"
    "Exit codes: 0 success, 1 verification failed, 2 bad usage or config, 3 runtime not installed, "
    "4 a stage failed, 130 interrupted.",
    cls=opt.Group,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    cls=opt.Group, help="Write a starting config or print the config's JSON Schema.", no_args_is_help=True
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


EARLIER_STAGES = "Earlier stages run only if their inputs changed (see manifest.json in --out)."
for _goal in COMMANDS:
    app.command(_goal, cls=opt.Command, epilog=EARLIER_STAGES)(pipeline_command(_goal))


@app.command(cls=opt.Command)
def matrix(
    matrix_file: Path = typer.Argument(
        ..., metavar="MATRIX.yaml", help="Matrix file: models x precisions x targets (see docs/config.md)."
    ),
    out: opt.OutOpt = None,
    cache: opt.CacheOpt = None,
    ray: opt.RayOpt = None,
    jobs: opt.JobsOpt = None,
    force: opt.MatrixForceOpt = False,
    json_out: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = 0,
    quiet: opt.QuietOpt = False,
) -> None:
    """Compile models x precisions x targets: one compile job per combination, on a local process pool or a Ray cluster; writes matrix.json and matrix.html (rows models, columns targets).

    Jobs that finished in an earlier run with the same config are not run again (--force runs them). Exit codes: 0 every job ok, 1 the failing jobs failed verification only, 4 any other job failed, 2 a bad matrix file (no job runs)."""
    from infercc.cli.render import MatrixProgress, make_console, matrix_table, print_error, print_json
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


@app.command(cls=opt.Command)
def inspect(
    path: Path = typer.Argument(
        ..., metavar="PATH", help="An .onnx file, a TensorRT .engine file, or an output folder."
    ),
    layers: bool = typer.Option(
        False, "--layers", help="List every layer of an engine (default: a summary)."
    ),
    json_out: opt.JsonOpt = False,
    verbose: opt.VerboseOpt = 0,
) -> None:
    """Summarise an ONNX file (inputs/outputs, opset, op counts, parameters, size), an engine, or an output folder (its recorded model, shapes and artifacts)."""
    from infercc.cli.render import make_console, print_json
    from infercc.inspection import inspect_path, render_inspection

    info = inspect_path(path)
    if json_out:
        print_json(info)
    else:
        render_inspection(make_console(False), info, layers=layers)


@app.command(cls=opt.Command)
def report(
    folder: Path = typer.Argument(
        ..., metavar="FOLDER", help="The output folder of an earlier run (it holds manifest.json)."
    ),
    json_out: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
) -> None:
    """Write report.json, report.html and summary.md again from a folder's manifest (no stage runs)."""
    from rich.markup import escape

    from infercc.cli.render import make_console, print_json
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


@app.command(cls=opt.Command)
def doctor(json_out: opt.JsonOpt = False) -> None:
    """Which runtimes, execution providers, TensorRT flavours and GPUs this machine has."""
    from infercc.cli.render import make_console, print_json
    from infercc.doctor import collect, render

    info = collect()
    if json_out:
        print_json(info)
    else:
        render(make_console(False), info)


@config_app.command("init", cls=opt.Command)
def config_init(
    path: Path = typer.Argument(Path("infercc.yaml"), metavar="PATH", help="Where to write the config."),
    force: opt.OverwriteOpt = False,
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


@config_app.command("schema", cls=opt.Command)
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    from infercc.cli.render import print_json
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
            _print_error_json(exc.exit_code, exc.message, exc.hint)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _report(INTERRUPTED_MESSAGE, None, verbose=False)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        hint = _option_elsewhere(exc.option_name) if isinstance(exc, click.NoSuchOption) else None
        if hint:
            sys.stderr.write(f"  hint: {hint}\n")
        if json_mode:
            _print_error_json(ExitCode.USAGE, exc.format_message(), hint)
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


def _option_elsewhere(option: str) -> str | None:
    """Which commands take an option the command given does not (`export --calib`: a later stage reads it)."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    taking = [name for name, command in commands.items() if any(option in p.opts for p in command.params)]
    return f"{option} is an option of {', '.join(taking)}." if taking else None


def _print_error_json(code: int, message: str, hint: str | None) -> None:
    """The one JSON document of a run that failed before it could print its result."""
    from infercc.cli.render import print_json

    print_json({"status": "error", "exit_code": int(code), "error": message, "hint": hint})


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
        from infercc.cli.render import print_error

        print_error(None, message, hint)
    except Exception:
        sys.stderr.write(f"error: {message}\n" + (f"  hint: {hint}\n" if hint else ""))
