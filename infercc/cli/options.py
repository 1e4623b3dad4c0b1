"""Option aliases shared by the commands (Annotated typer options), grouped into help panels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MODEL = "Model"
SHAPES = "Shapes (trtexec / Polygraphy style)"
PIPELINE = "Pipeline"
PRECISION = "Precision"
TENSORRT = "TensorRT"
OUTPUT = "Output"

ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        help="YAML config file (see `infercc config init`), or the output folder of an earlier run (its "
        "recorded config is reused). Flags override it. Default: the config recorded in --out, else the "
        "built-in EfficientNet-Lite0 example."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="file.py:factory, package.module:factory, model.onnx, model.pt/.pt2, torchvision:NAME, timm:NAME.",
        rich_help_panel=MODEL,
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        help="KEY=VALUE keyword argument for the factory (YAML value). Repeatable.",
        rich_help_panel=MODEL,
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", help="State-dict file loaded with weights_only=True.", rich_help_panel=MODEL),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Allow full unpickling of model/weight files. This runs code from the file: only for files you trust.",
        rich_help_panel=MODEL,
    ),
]
ShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shape",
        "-s",
        help="Static input shape NAME:1x3x224x224 (or NAME:[1,3,224,224]). Repeatable; comma-separated lists work too.",
        rich_help_panel=SHAPES,
    ),
]
MinShapeOpt = Annotated[
    list[str] | None,
    typer.Option("--min-shape", help="Smallest shape of a dynamic input, NAME:DIMS.", rich_help_panel=SHAPES),
]
OptShapeOpt = Annotated[
    list[str] | None,
    typer.Option("--opt-shape", help="Shape to optimise for, NAME:DIMS.", rich_help_panel=SHAPES),
]
MaxShapeOpt = Annotated[
    list[str] | None,
    typer.Option("--max-shape", help="Largest shape of a dynamic input, NAME:DIMS.", rich_help_panel=SHAPES),
]
DtypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dtype",
        help="Input element type NAME:int64 (float32, float16, int64, int32, bool). Default float32.",
        rich_help_panel=SHAPES,
    ),
]
ValRangeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--val-range",
        help="Range of seeded input values NAME:[LOW,HIGH] (Polygraphy style), e.g. input_ids:[0,30522].",
        rich_help_panel=SHAPES,
    ),
]
DimNameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dim-name",
        help="Name of a dynamic dimension in the ONNX graph, NAME:AXIS=LABEL, e.g. images:0=batch "
        "(default NAME_dim<AXIS>). Repeatable.",
        rich_help_panel=SHAPES,
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Output folder (default from config, else artifacts/).", rich_help_panel=OUTPUT
    ),
]
OutForceOpt = Annotated[
    bool,
    typer.Option(
        "--out-force",
        help="Write into an existing non-empty --out folder that infercc did not create (never /, home, or a "
        "parent of the current folder). infercc still deletes nothing it did not write.",
        rich_help_panel=OUTPUT,
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        "-f",
        help="Re-run every stage even if its inputs did not change.",
        rich_help_panel=PIPELINE,
    ),
]
ExporterOpt = Annotated[
    str | None,
    typer.Option(
        "--exporter", help="auto (dynamo, then TorchScript), dynamo or torchscript.", rich_help_panel=PIPELINE
    ),
]
OpsetOpt = Annotated[
    int | None, typer.Option("--opset", help="ONNX opset to export (default 18).", rich_help_panel=PIPELINE)
]
SimplifierOpt = Annotated[
    str | None,
    typer.Option("--simplifier", help="onnxslim (default), onnxsim or none.", rich_help_panel=PIPELINE),
]
LockWaitOpt = Annotated[
    float | None,
    typer.Option(
        "--lock-wait",
        help="If another run holds --out, wait up to this many seconds (default: refuse at once).",
        rich_help_panel=PIPELINE,
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        "-p",
        help="Comma-separated: fp32,fp16,int8,bf16 (bf16: OpenVINO CPU where the CPU has BF16, and inductor packages).",
        rich_help_panel=PRECISION,
    ),
]
CalibOpt = Annotated[
    str | None,
    typer.Option(
        "--calib",
        help="Calibration data, required for int8: a folder of .npy/.npz or images, module:fn, or 'synthetic' (a last resort).",
        rich_help_panel=PRECISION,
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        help="Comma-separated: onnxruntime,tensorrt,inductor (AOTInductor .pt2 packages).",
        rich_help_panel=TENSORRT,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout; human output goes to stderr.",
        rich_help_panel=OUTPUT,
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="More detail; tracebacks on errors.", rich_help_panel=OUTPUT
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only errors and the final result.", rich_help_panel=OUTPUT)
]

VERIFY = "Verify"
POLYGRAPHY = "Polygraphy interop"

SaveInputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--save-inputs",
        help="Write the reference inputs (min/opt/max feeds) in Polygraphy's --load-inputs JSON format.",
        rich_help_panel=POLYGRAPHY,
    ),
]
SaveOutputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--save-outputs",
        help="Write PyTorch's outputs for those inputs as Polygraphy RunResults JSON (--load-outputs).",
        rich_help_panel=POLYGRAPHY,
    ),
]
LoadInputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--load-inputs",
        help="Verify on the feeds of a Polygraphy inputs JSON file (polygraphy run --save-inputs).",
        rich_help_panel=POLYGRAPHY,
    ),
]
BENCH = "Bench"

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config key: dotted.key=VALUE (YAML value), e.g. --set verify.samples=8. Repeatable.",
        rich_help_panel=PIPELINE,
    ),
]
CalibMethodOpt = Annotated[
    str | None,
    typer.Option(
        "--calib-method", help="INT8 calibration: minmax, entropy or percentile.", rich_help_panel=PRECISION
    ),
]
EvalOpt = Annotated[
    str | None,
    typer.Option(
        "--eval",
        help="Held-out evaluation data (same forms as --calib) for accuracy figures.",
        rich_help_panel=PRECISION,
    ),
]
WorkspaceOpt = Annotated[
    int | None,
    typer.Option(
        "--workspace",
        help="TensorRT workspace memory limit in MiB (trtexec --memPoolSize).",
        rich_help_panel=TENSORRT,
    ),
]
TimingCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--timing-cache",
        help="Your TensorRT timing cache to start from (read, never written; its content is in the build key).",
        rich_help_panel=TENSORRT,
    ),
]
ComputeCapOpt = Annotated[
    str | None,
    typer.Option(
        "--compute-capability",
        help="TensorRT-RTX targets, comma-separated, e.g. 8.6,8.9,12.0.",
        rich_help_panel=TENSORRT,
    ),
]
OptLevelOpt = Annotated[
    int | None,
    typer.Option(
        "--builder-optimization-level",
        help="0-5 (trtexec --builderOptimizationLevel).",
        rich_help_panel=TENSORRT,
    ),
]
Int8RouteOpt = Annotated[
    str | None,
    typer.Option(
        "--int8-route",
        help="qdq (from the INT8 artifact) or calibrator (TensorRT 10 only).",
        rich_help_panel=TENSORRT,
    ),
]
ReferenceOpt = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="Compare against pytorch (default) or onnx (FP32 on ONNX Runtime CPU).",
        rich_help_panel=VERIFY,
    ),
]
InputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--inputs",
        help="Folder of .npy/.npz inputs to verify on instead of seeded random data.",
        rich_help_panel=VERIFY,
    ),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Seed of the synthetic inputs.", rich_help_panel=VERIFY)
]
IterationsOpt = Annotated[
    int | None, typer.Option("--iterations", help="Timed iterations per repeat.", rich_help_panel=BENCH)
]
WarmupOpt = Annotated[
    int | None, typer.Option("--warmup", help="Untimed warm-up iterations.", rich_help_panel=BENCH)
]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Time each measurement for this many seconds instead.", rich_help_panel=BENCH
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads for every runtime (recorded).", rich_help_panel=BENCH),
]
BatchSizesOpt = Annotated[
    str | None,
    typer.Option(
        "--batch-sizes", help="Batch-size sweep, comma-separated, e.g. 1,8,32.", rich_help_panel=BENCH
    ),
]
NoBenchOpt = Annotated[
    bool, typer.Option("--no-bench", help="Skip the bench stage in compile.", rich_help_panel=BENCH)
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache",
        envvar="INFERCC_CACHE",
        help="Shared stage cache, an fsspec URL (file:///path, s3://bucket/prefix, gs://bucket/prefix): stages "
        "whose key matches are downloaded instead of rebuilt (sha256-checked). Default: no cache.",
        rich_help_panel=PIPELINE,
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run each job as a Ray task on the cluster at ADDRESS (e.g. 127.0.0.1:6379, or auto). "
        "Needs infercc[cluster]. Default: a local process pool.",
    ),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Local pool: jobs at once (default: cores / cpus_per_job, at most the jobs).",
    ),
]
