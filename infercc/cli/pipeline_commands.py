"""The seven pipeline commands. Each runs the pipeline up to its stage, like a make target, and takes the option
groups of the stages it reaches (Polygraphy's tools list their argument groups the same way): `export` has no
--calib, --target or bench flags; `compile` has them all.

A group is a tuple of parameters declared once; a command's signature is its groups in order, which is what
typer reads to build its options. The parameter names are Flags' and RunOptions' fields, so a command hands
typer's parsed parameters (ctx.params) to run_pipeline as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from infercc.cli import options as opt


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


MODEL = (
    _param("config", opt.ConfigArg),
    _param("model", opt.ModelOpt),
    _param("model_arg", opt.ModelArgOpt),
    _param("weights", opt.WeightsOpt),
    _param("allow_pickle", opt.AllowPickleOpt, False),
    _param("shape", opt.ShapeOpt),
    _param("min_shape", opt.MinShapeOpt),
    _param("opt_shape", opt.OptShapeOpt),
    _param("max_shape", opt.MaxShapeOpt),
    _param("dtype", opt.DtypeOpt),
    _param("val_range", opt.ValRangeOpt),
    _param("dim_name", opt.DimNameOpt),
)
EXPORT = (_param("exporter", opt.ExporterOpt), _param("opset", opt.OpsetOpt))
SIMPLIFY = (_param("simplifier", opt.SimplifierOpt),)
REFERENCE_FILES = (_param("save_inputs", opt.SaveInputsOpt), _param("save_outputs", opt.SaveOutputsOpt))
QUANTIZE = (
    _param("calib", opt.CalibOpt),
    _param("eval_", opt.EvalOpt),
    _param("precision", opt.PrecisionOpt),
    _param("calib_method", opt.CalibMethodOpt),
    _param("target", opt.TargetOpt),
    _param("threads", opt.ThreadsOpt),
)
BUILD = (
    _param("workspace", opt.WorkspaceOpt),
    _param("timing_cache", opt.TimingCacheOpt),
    _param("compute_capability", opt.ComputeCapOpt),
    _param("builder_optimization_level", opt.OptLevelOpt),
    _param("int8_route", opt.Int8RouteOpt),
)
VERIFY = (
    _param("inputs", opt.InputsOpt),
    _param("load_inputs", opt.LoadInputsOpt),
    _param("reference", opt.ReferenceOpt),
    _param("seed", opt.SeedOpt),
)
BENCH = (
    _param("iterations", opt.IterationsOpt),
    _param("warmup", opt.WarmupOpt),
    _param("duration", opt.DurationOpt),
    _param("batch_sizes", opt.BatchSizesOpt),
)
SKIP_BENCH = (_param("no_bench", opt.NoBenchOpt, False),)
RUN = (
    _param("out", opt.OutOpt),
    _param("out_force", opt.OutForceOpt, False),
    _param("force", opt.ForceOpt, False),
    _param("set_", opt.SetOpt),
    _param("lock_wait", opt.LockWaitOpt),
    _param("cache", opt.CacheOpt),
    _param("json_out", opt.JsonOpt, False),
    _param("verbose", opt.VerboseOpt, 0),
    _param("quiet", opt.QuietOpt, False),
)

_TO_SIMPLIFY = (*MODEL, *EXPORT, *SIMPLIFY, *REFERENCE_FILES)
_TO_BUILD = (*_TO_SIMPLIFY, *QUANTIZE, *BUILD)

# command -> (what it does, its option groups); --help lists the commands in this order
COMMANDS: dict[str, tuple[str, tuple[inspect.Parameter, ...]]] = {
    "compile": (
        "Run every stage: export, simplify, quantize, build, verify, bench; write the report.",
        (*_TO_BUILD, *VERIFY, *BENCH, *SKIP_BENCH, *RUN),
    ),
    "export": (
        "Export the PyTorch model to ONNX and check parity at the min/opt/max shapes.",
        (*MODEL, *EXPORT, *REFERENCE_FILES, *RUN),
    ),
    "simplify": ("Export (if needed) and simplify the ONNX graph.", (*_TO_SIMPLIFY, *RUN)),
    "quantize": (
        "Produce the FP16 / BF16 / INT8 artifacts named by --precision (INT8 in the forms the --target list "
        "needs).",
        (*_TO_SIMPLIFY, *QUANTIZE, *RUN),
    ),
    "build": (
        "Build TensorRT engines (and AOTInductor packages with --target inductor) from the ONNX artifacts.",
        (*_TO_BUILD, *RUN),
    ),
    "verify": (
        "Compare every artifact on every available runtime against the reference.",
        (*_TO_BUILD, *VERIFY, *RUN),
    ),
    "bench": (
        "Time every artifact on every available runtime (after verifying it).",
        (*_TO_BUILD, *VERIFY, *BENCH, *RUN),
    ),
}


def pipeline_command(goal: str) -> Callable[..., None]:
    """The command that runs the pipeline up to `goal`, with the options of COMMANDS[goal]."""
    doc, params = COMMANDS[goal]

    def command(ctx: typer.Context, **_: Any) -> None:
        from infercc.cli.run import run_pipeline  # imported here: --help loads none of the pipeline

        run_pipeline(goal, ctx.params)

    command.__name__ = goal
    command.__doc__ = doc
    command.__signature__ = inspect.Signature([_param("ctx", typer.Context), *params])  # type: ignore[attr-defined]
    return command
