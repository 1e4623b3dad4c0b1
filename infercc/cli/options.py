"""The commands' options, declared once: Annotated typer aliases, each in the help panel of its concern.

Choices come from the config's Enums (`infercc.choices`), never from text copied into the help; bounds are
checked once, by the config models (the flags become config values). Importing this module loads no pydantic
model, so --help stays fast. Switches are
plain flags (no value); list options take repeated flags or comma-separated values, checked by their callback
into one typed list (the annotation says what typer reads: text).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from infercc.choices import (
    CalibrationMethod,
    DType,
    Exporter,
    Int8Route,
    Precision,
    Reference,
    Simplifier,
    Target,
)

# help panels, in the order a run meets them
MODEL = "Model & inputs"
EXPORT = "Export & simplify"
DATA = "Data"
PRECISION = "Precision & quantization"
TARGETS = "Targets & build"
VERIFY_BENCH = "Verify & bench"
RUN = "Run & output"

E = TypeVar("E", bound=Enum)


def _option(*names: str, panel: str | None, help: str, **more: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **more)


def _names(enum: type[Enum]) -> str:
    return ", ".join(str(member.value) for member in enum)


def comma_list(item: Callable[[str], Any], what: str) -> Callable[[list[str] | None], list[Any] | None]:
    """The callback of a list option: every occurrence holds comma-separated items, each converted by `item`
    (a ValueError: the item is not `what`); the value is one flat list (`-p fp32,fp16 -p int8`: 3 items)."""

    def convert(values: list[str] | None) -> list[Any] | None:
        if not values:
            return None
        items = []
        for text in values:
            for part in (part.strip() for part in str(text).split(",")):
                if not part:
                    raise typer.BadParameter(f"{text!r} holds an empty item; each item is {what}.")
                try:
                    items.append(item(part))
                except ValueError:
                    raise typer.BadParameter(f"{part!r} is not {what}.") from None
        return items

    return convert


def enum_items(enum: type[E]) -> Callable[[list[str] | None], list[E] | None]:
    """Comma-separated members of `enum`, case-insensitive: `fp32,fp16`."""
    return comma_list(lambda part: enum(part.lower()), f"one of {_names(enum)}")


def _choices_metavar(enum: type[Enum]) -> str:
    return "<" + "|".join(str(member.value) for member in enum) + ">,..."


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _capability(text: str) -> str:
    major, dot, minor = text.partition(".")
    if not (major.isdigit() and dot and minor.isdigit()):
        raise ValueError(text)
    return text


# --- Model & inputs ---------------------------------------------------------------------------------------

ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="CONFIG",
        help="YAML config file (see `infercc config init`), or the output folder of an earlier run (its "
        "recorded config is reused). Flags override it. Default: the config recorded in --out, else the "
        "built-in EfficientNet-Lite0 example.",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    _option(
        "--model",
        "-m",
        metavar="SPEC",
        panel=MODEL,
        help="file.py:factory, package.module:factory, model.onnx, model.pt/.pt2, torchvision:NAME, timm:NAME.",
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    _option(
        "--model-arg",
        metavar="KEY=VALUE",
        panel=MODEL,
        help="KEY=VALUE keyword argument for the factory (YAML value). Repeatable.",
    ),
]
WeightsOpt = Annotated[
    Path | None,
    _option("--weights", metavar="FILE", panel=MODEL, help="State-dict file loaded with weights_only=True."),
]
AllowPickleOpt = Annotated[
    bool,
    _option(
        "--allow-pickle",
        panel=MODEL,
        help="Allow full unpickling of model/weight files. This runs code from the file: only for files you trust.",
    ),
]
ShapeOpt = Annotated[
    list[str] | None,
    _option(
        "--shape",
        "-s",
        metavar="NAME:DIMS",
        panel=MODEL,
        help="Static input shape NAME:1x3x224x224 (or NAME:[1,3,224,224]). Repeatable; comma-separated lists work too.",
    ),
]
MinShapeOpt = Annotated[
    list[str] | None,
    _option(
        "--min-shape", metavar="NAME:DIMS", panel=MODEL, help="Smallest shape of a dynamic input, NAME:DIMS."
    ),
]
OptShapeOpt = Annotated[
    list[str] | None,
    _option("--opt-shape", metavar="NAME:DIMS", panel=MODEL, help="Shape to optimise for, NAME:DIMS."),
]
MaxShapeOpt = Annotated[
    list[str] | None,
    _option(
        "--max-shape", metavar="NAME:DIMS", panel=MODEL, help="Largest shape of a dynamic input, NAME:DIMS."
    ),
]
DtypeOpt = Annotated[
    list[str] | None,
    _option(
        "--dtype",
        metavar="NAME:TYPE",
        panel=MODEL,
        help=f"Input element type NAME:TYPE, TYPE one of {_names(DType)}. Default {DType.float32.value}.",
    ),
]
ValRangeOpt = Annotated[
    list[str] | None,
    _option(
        "--val-range",
        metavar="NAME:[LOW,HIGH]",
        panel=MODEL,
        help="Range of seeded input values NAME:[LOW,HIGH] (Polygraphy style), e.g. input_ids:[0,30522].",
    ),
]
DimNameOpt = Annotated[
    list[str] | None,
    _option(
        "--dim-name",
        metavar="NAME:AXIS=LABEL",
        panel=MODEL,
        help="Name of a dynamic dimension in the ONNX graph, NAME:AXIS=LABEL, e.g. images:0=batch "
        "(default NAME_dim<AXIS>). Repeatable.",
    ),
]

# --- Export & simplify ------------------------------------------------------------------------------------

ExporterOpt = Annotated[
    Exporter | None,
    _option(
        "--exporter",
        panel=EXPORT,
        case_sensitive=False,
        help="auto tries the dynamo exporter, then TorchScript (the reason is recorded).",
    ),
]
OpsetOpt = Annotated[
    int | None,
    _option("--opset", metavar="N", panel=EXPORT, help="ONNX opset to export (default 18)."),
]
SimplifierOpt = Annotated[
    Simplifier | None,
    _option("--simplifier", panel=EXPORT, case_sensitive=False, help="Graph simplifier (default onnxslim)."),
]

# --- Data -------------------------------------------------------------------------------------------------

CalibOpt = Annotated[
    str | None,
    _option(
        "--calib",
        metavar="SOURCE",
        panel=DATA,
        help="Calibration data, required for int8: a folder of .npy/.npz or images, module:fn, or 'synthetic' "
        "(a last resort).",
    ),
]
EvalOpt = Annotated[
    str | None,
    _option(
        "--eval",
        metavar="SOURCE",
        panel=DATA,
        help="Held-out evaluation data (same forms as --calib) for accuracy figures.",
    ),
]
InputsOpt = Annotated[
    Path | None,
    _option(
        "--inputs",
        metavar="DIR",
        panel=DATA,
        help="Folder of .npy/.npz inputs to verify on instead of seeded random data.",
    ),
]
LoadInputsOpt = Annotated[
    Path | None,
    _option(
        "--load-inputs",
        metavar="FILE",
        panel=DATA,
        help="Verify on the feeds of a Polygraphy inputs JSON file (polygraphy run --save-inputs).",
    ),
]
SaveInputsOpt = Annotated[
    Path | None,
    _option(
        "--save-inputs",
        metavar="FILE",
        panel=DATA,
        help="Write the reference inputs (min/opt/max feeds) in Polygraphy's --load-inputs JSON format.",
    ),
]
SaveOutputsOpt = Annotated[
    Path | None,
    _option(
        "--save-outputs",
        metavar="FILE",
        panel=DATA,
        help="Write PyTorch's outputs for those inputs as Polygraphy RunResults JSON (--load-outputs).",
    ),
]

# --- Precision & quantization -----------------------------------------------------------------------------

PrecisionOpt = Annotated[
    list[str] | None,
    _option(
        "--precision",
        "-p",
        panel=PRECISION,
        callback=enum_items(Precision),
        metavar=_choices_metavar(Precision),
        help="Artifacts to produce, comma-separated or repeated (default fp32). bf16: OpenVINO CPU where the CPU "
        "has BF16, and inductor packages.",
    ),
]
CalibMethodOpt = Annotated[
    CalibrationMethod | None,
    _option(
        "--calib-method",
        panel=PRECISION,
        case_sensitive=False,
        help="INT8 calibration method (default minmax).",
    ),
]

# --- Targets & build --------------------------------------------------------------------------------------

TargetOpt = Annotated[
    list[str] | None,
    _option(
        "--target",
        "-t",
        panel=TARGETS,
        callback=enum_items(Target),
        metavar=_choices_metavar(Target),
        help="What to build for, comma-separated or repeated (default onnxruntime). inductor: AOTInductor .pt2 "
        "packages.",
    ),
]
WorkspaceOpt = Annotated[
    int | None,
    _option(
        "--workspace",
        metavar="MIB",
        panel=TARGETS,
        help="TensorRT workspace memory limit in MiB (trtexec --memPoolSize).",
    ),
]
TimingCacheOpt = Annotated[
    Path | None,
    _option(
        "--timing-cache",
        metavar="FILE",
        panel=TARGETS,
        help="Your TensorRT timing cache to start from (read, never written; its content is in the build key).",
    ),
]
ComputeCapOpt = Annotated[
    list[str] | None,
    _option(
        "--compute-capability",
        panel=TARGETS,
        callback=comma_list(_capability, "a compute capability such as 8.6"),
        metavar="MAJOR.MINOR,...",
        help="TensorRT-RTX targets, comma-separated, e.g. 8.6,8.9,12.0.",
    ),
]
OptLevelOpt = Annotated[
    int | None,
    _option(
        "--builder-optimization-level",
        metavar="N",
        panel=TARGETS,
        help="TensorRT builder optimization level (trtexec --builderOptimizationLevel; default 3).",
    ),
]
Int8RouteOpt = Annotated[
    Int8Route | None,
    _option(
        "--int8-route",
        panel=TARGETS,
        case_sensitive=False,
        help="TensorRT INT8 from the Q/DQ artifact (qdq, default) or TensorRT 10's calibrator.",
    ),
]

# --- Verify & bench ---------------------------------------------------------------------------------------

ReferenceOpt = Annotated[
    Reference | None,
    _option(
        "--reference",
        panel=VERIFY_BENCH,
        case_sensitive=False,
        help="Compare against pytorch (default) or onnx (FP32 on ONNX Runtime CPU).",
    ),
]
SeedOpt = Annotated[
    int | None, _option("--seed", metavar="N", panel=VERIFY_BENCH, help="Seed of the synthetic inputs.")
]
IterationsOpt = Annotated[
    int | None,
    _option("--iterations", metavar="N", panel=VERIFY_BENCH, help="Timed iterations per repeat."),
]
WarmupOpt = Annotated[
    int | None,
    _option("--warmup", metavar="N", panel=VERIFY_BENCH, help="Untimed warm-up iterations."),
]
DurationOpt = Annotated[
    float | None,
    _option(
        "--duration",
        metavar="SECONDS",
        panel=VERIFY_BENCH,
        help="Time each measurement for this many seconds instead.",
    ),
]
BatchSizesOpt = Annotated[
    list[str] | None,
    _option(
        "--batch-sizes",
        panel=VERIFY_BENCH,
        callback=comma_list(_positive_int, "a batch size (1 or more)"),
        metavar="N,...",
        help="Batch-size sweep, comma-separated, e.g. 1,8,32.",
    ),
]
NoBenchOpt = Annotated[bool, _option("--no-bench", panel=VERIFY_BENCH, help="Skip the bench stage.")]

# --- Run & output -----------------------------------------------------------------------------------------

OutOpt = Annotated[
    Path | None,
    _option(
        "--out", "-o", metavar="DIR", panel=RUN, help="Output folder (default from config, else artifacts/)."
    ),
]
OutForceOpt = Annotated[
    bool,
    _option(
        "--out-force",
        panel=RUN,
        help="Write into an existing non-empty --out folder that infercc did not create (never /, home, or a "
        "parent of the current folder). infercc still deletes nothing it did not write.",
    ),
]
ForceOpt = Annotated[
    bool, _option("--force", "-f", panel=RUN, help="Re-run every stage even if its inputs did not change.")
]
SetOpt = Annotated[
    list[str] | None,
    _option(
        "--set",
        metavar="KEY=VALUE",
        panel=RUN,
        help="Override any config key: dotted.key=VALUE (YAML value), e.g. --set verify.samples=8. Repeatable.",
    ),
]
ThreadsOpt = Annotated[
    int | None,
    _option(
        "--threads",
        metavar="N",
        panel=RUN,
        help="CPU threads for every runtime: quantization checks, verify, bench (recorded).",
    ),
]
LockWaitOpt = Annotated[
    float | None,
    _option(
        "--lock-wait",
        metavar="SECONDS",
        panel=RUN,
        help="If another run holds --out, wait up to this many seconds (default: refuse at once).",
    ),
]
CacheOpt = Annotated[
    str | None,
    _option(
        "--cache",
        metavar="URL",
        panel=RUN,
        envvar="INFERCC_CACHE",
        help="Shared stage cache, an fsspec URL (file:///path, s3://bucket/prefix, gs://bucket/prefix): stages "
        "whose key matches are downloaded instead of rebuilt (sha256-checked). Default: no cache.",
    ),
]
JsonOpt = Annotated[
    bool,
    _option("--json", panel=RUN, help="Print one JSON document on stdout; human output goes to stderr."),
]
VerboseOpt = Annotated[
    int,
    _option(
        "--verbose",
        "-v",
        panel=RUN,
        count=True,
        show_default=False,
        help="More detail; tracebacks on errors.",
    ),
]
QuietOpt = Annotated[bool, _option("--quiet", "-q", panel=RUN, help="Only errors and the final result.")]

# --- matrix and config ------------------------------------------------------------------------------------

RayOpt = Annotated[
    str | None,
    _option(
        "--ray",
        panel=RUN,
        metavar="ADDRESS",
        help="Run each job as a Ray task on the cluster at ADDRESS (e.g. 127.0.0.1:6379, or auto). "
        "Needs infercc[cluster]. Default: a local process pool.",
    ),
]
JobsOpt = Annotated[
    int | None,
    _option(
        "--jobs",
        "-j",
        metavar="N",
        panel=RUN,
        min=1,
        help="Local pool: jobs at once (default: cores / cpus_per_job, at most the jobs).",
    ),
]
MatrixForceOpt = Annotated[
    bool,
    _option(
        "--force",
        "-f",
        panel=RUN,
        help="Run every job again, also those that finished with the same config in an earlier run.",
    ),
]
OverwriteOpt = Annotated[
    bool, _option("--force", "-f", panel=None, help="Overwrite PATH if it already exists.")
]


# --- help rendering ---------------------------------------------------------------------------------------


def _without_switch_types(params: list[Any]) -> list[Any]:
    # typer 0.29's rich help prints a type after every option, `<bool>` after a switch (such as --json or
    # --help) though it takes no value; an empty metavar prints nothing there and changes nothing else
    for param in params:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose help shows switches without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_switch_types(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """A command group whose help shows switches (--help, --version) without a type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_switch_types(super().get_params(ctx))
