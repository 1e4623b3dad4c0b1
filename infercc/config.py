"""The typed configuration: one pydantic model per stage, all reachable from CompileConfig.

Every field here is documented; `infercc config schema` prints the JSON Schema built from these
models and docs/config.md is generated from it. Unknown keys are errors (with a suggestion).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infercc.choices import (
    CalibrationMethod,
    DType,
    Exporter,
    Flavour,
    Fuser,
    Int8Route,
    LockMode,
    OutputKind,
    Precision,
    Reference,
    Simplifier,
    Statistic,
    Target,
)
from infercc.errors import UsageError
from infercc.shapes import MAX_DIM, Shape, ShapeRange, check_shape_limits, format_dims, parse_dims

DEFAULT_MODEL = "infercc.models.examples:efficientnet_lite0"


def _coerce_shape(value: Any) -> Any:
    if value is None or isinstance(value, list | tuple):
        return value
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        try:
            return list(parse_dims(value))
        except UsageError as exc:  # pydantic reports ValueErrors with the key's location
            raise ValueError(exc.message) from None
    return value


@dataclass(frozen=True)
class Described:
    """What docs/config.md calls a type whose Python spelling says little to a reader (see configdoc)."""

    text: str


def _registered_runtime(name: str) -> str:
    # imported when a config is validated, not when this module is: the registry's module loads numpy
    from infercc.runtimes.base import check_runtime_names

    return check_runtime_names([name])[0]


# a name registered in infercc.runtimes (pytorch-cpu, onnxruntime-cpu, tensorrt, ...)
RuntimeName = Annotated[str, AfterValidator(_registered_runtime), Described("runtime name")]

ShapeField = Annotated[list[Annotated[int, Field(ge=1, le=MAX_DIM)]] | None, BeforeValidator(_coerce_shape)]

# the values an integer input's synthetic range may span
_INT_BOUNDS = {"int64": (-(2**63), 2**63), "int32": (-(2**31), 2**31), "bool": (0, 2)}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)


class InputSpec(Strict):
    """One model input: its shapes and how to make synthetic values for it."""

    shape: ShapeField = Field(None, description="Static shape (or the opt shape), e.g. 1x3x224x224.")
    min: ShapeField = Field(None, description="Smallest shape of a dynamic input (TensorRT profile min).")
    opt: ShapeField = Field(
        None, description="Shape to optimise for (TensorRT profile opt). Defaults to `shape`."
    )
    max: ShapeField = Field(None, description="Largest shape of a dynamic input (TensorRT profile max).")
    dtype: DType = Field(DType.float32, description="Element type fed to the model.")
    low: float = Field(0.0, allow_inf_nan=False, description="Lower bound of seeded synthetic values.")
    high: float = Field(
        1.0,
        allow_inf_nan=False,
        description="Upper bound of seeded synthetic values (exclusive for integer inputs).",
    )
    dim_names: dict[int, str] = Field(
        default_factory=dict,
        description="Names of dynamic dimensions in the ONNX graph, axis -> name (e.g. {0: batch}); "
        "default NAME_dim<axis>.",
    )
    state_from: str | None = Field(
        None,
        description="Recurrent state: this input takes, at every step of a sequence, the value the named output "
        "had at the step before (e.g. h: {state_from: h_out}). Calibration, quantize accuracy, the INT8 fallback "
        "and verify then run the model step by step over sequences (docs/sequences.md). The output must have this "
        "input's shape and dtype.",
    )
    state_initial: float = Field(
        0.0,
        allow_inf_nan=False,
        description="With state_from: the value the state starts at in every sequence (a sequence file may give "
        "its own initial array under the input's name).",
    )

    @model_validator(mode="after")
    def _high_above_low(self) -> InputSpec:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        bounds = _INT_BOUNDS.get(self.dtype.value)
        if bounds is not None and (self.low < bounds[0] or self.high > bounds[1]):
            raise ValueError(
                f"the range [{self.low:g}, {self.high:g}] does not fit {self.dtype.value} "
                f"(values from {bounds[0]} to {bounds[1] - 1})"
            )
        if self.dtype.value == "float16" and max(abs(self.low), abs(self.high)) > 65504:
            raise ValueError(f"the range [{self.low:g}, {self.high:g}] does not fit float16 (|x| <= 65504)")
        if self.state_from is not None and self.shape is None and self.opt is None and self.max is None:
            raise ValueError(
                f"a state input (state_from: {self.state_from}) needs its shape, e.g. shape: 1x64: the state "
                "starts as an array of that shape"
            )
        try:
            shape_range = self.shape_range(None)  # same rank, min <= opt <= max; reported at inputs.NAME
            if shape_range is not None:
                check_shape_limits(shape_range.max, f"the max shape {format_dims(shape_range.max)}")
        except UsageError as exc:
            raise ValueError(exc.message) from None
        return self

    def shape_range(self, name: str | None) -> ShapeRange | None:
        """Resolve min/opt/max; None when no shape was given at all."""
        opt = self.opt or self.shape
        lo, hi = self.min, self.max
        if opt is None and lo is None and hi is None:
            return None
        if opt is None:
            opt = hi or lo
        shape_range = ShapeRange(tuple(lo or opt), tuple(opt), tuple(hi or opt))
        shape_range.validate(name)
        return shape_range


class ModelConfig(Strict):
    """Where the PyTorch (or ONNX) model comes from."""

    source: str = Field(
        DEFAULT_MODEL,
        description=(
            "Model spec: path/to/file.py:factory, package.module:factory, a TorchScript (.pt/.ts) or "
            "torch.export (.pt2) file, an .onnx file (export is skipped), torchvision:NAME or timm:NAME. "
            "A config names code that runs, as a Makefile does: the file or module is imported and the factory "
            "called. Specs naming the standard library or infercc itself are refused."
        ),
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the factory."
    )
    weights: Path | None = Field(None, description="Optional state-dict file, loaded with weights_only=True.")
    allow_pickle: bool = Field(
        False,
        description="Allow full unpickling of model/weights files. Runs code from the file: only for files you trust.",
    )
    output_names: list[str] | None = Field(
        None, description="Names for the model outputs (default: derived)."
    )
    output_kinds: dict[str, OutputKind] = Field(
        default_factory=dict,
        description="Per output name: classification (scores: top-k agreement) or embedding (embeddings, hidden "
        "states: cosine and errors, no top-k). Default: from the name (logits/scores/probs vs embedding/hidden/"
        "features), else 2-D (N, C) outputs whose rows are not unit-length count as classification.",
    )


class ExportConfig(Strict):
    exporter: Exporter = Field(
        Exporter.auto,
        description="auto tries the dynamo-based exporter and falls back to TorchScript, recording why.",
    )
    opset: int = Field(18, ge=11, le=23, description="ONNX opset to export.")
    accept_trace_warnings: bool = Field(
        False,
        description="Accept an export whose tracing converted tensors to Python values (a data-dependent if, "
        ".item(), int(t)): the graph then holds only the branch the traced inputs took. Default: exit 1 naming "
        "the source line.",
    )
    atol: float = Field(1e-4, gt=0, description="Parity check after export: absolute tolerance vs PyTorch.")
    rtol: float = Field(1e-3, ge=0, description="Parity check after export: relative tolerance vs PyTorch.")
    external_data_threshold_mb: int = Field(
        1800,
        ge=1,
        description="MiB (2^20 bytes). The ONNX files export, simplify and FP16 write (model.onnx, model.fp32.onnx, "
        "model.fp16.onnx; also the copy of an .onnx source) keep their weights in `<file>.data` beside them when "
        "larger than this, or, for the dynamo exporter, when the model's parameters are; the .data file is hashed "
        "in the manifest. The BF16 and fused artifacts move their weights out only past ONNX's 2 GB limit; INT8 "
        "ones never.",
    )


class SimplifyConfig(Strict):
    tool: Simplifier = Field(
        Simplifier.onnxslim,
        description="Graph simplifier: onnxslim, onnxsim or none. A model over 2 GiB keeps its exported graph "
        "(both simplifiers serialize it into one protobuf, which cannot exceed 2 GiB), with a note.",
    )


class OptimizeConfig(Strict):
    enabled: bool = Field(
        True,
        description="Fuse the simplified graph for ONNX Runtime (attention, SkipLayerNormalization, Gelu, rotary) "
        "into model.fp32.ort.onnx; its FP16 form is built from it unless TensorRT is also a target.",
    )
    fusers: list[Fuser] = Field(
        default_factory=lambda: [Fuser.packed_attention, Fuser.onnxscript, Fuser.ort_transformers],
        description="Fusion passes in order: packed_attention (nn.MultiheadAttention's packed QKV projection and "
        "attention into one com.microsoft Attention node, as in ViT), onnxscript (onnxscript.rewriter.ort_fusions, "
        "written for dynamo exports) and ort_transformers (onnxruntime.transformers.optimizer, model_type bert).",
    )


class TuneConfig(Strict):
    enabled: bool = Field(
        True,
        description="Where ONNX Runtime has its CUDA provider: time provider-option sets (prefer_nhwc, TF32 for FP32 "
        "graphs, CUDA graph) per artifact at the opt shape, keep the fastest that passes verify, and write it "
        "beside the artifact as model.<precision>.ort-cuda.json (bench uses it).",
    )


class DataSource(Strict):
    """Where calibration or evaluation data comes from. Give exactly one of folder / images / callable / synthetic."""

    folder: Path | None = Field(
        None,
        description="Folder of .npy files (single-input models) or .npz files keyed by input name; one batch per file.",
    )
    images: Path | None = Field(
        None,
        description="Folder of images, preprocessed as described by `preprocess` (or module:fn returning a folder, "
        "e.g. infercc.models.examples:sample_photos_dir).",
    )
    callable: str | None = Field(
        None, description="module:fn or file.py:fn; fn() yields batches as dicts input name -> array."
    )
    synthetic: bool = Field(
        False, description="Seeded random data within the inputs' ranges (says little about accuracy)."
    )
    include: list[str] = Field(
        default_factory=list,
        description="File-name patterns (glob) to use from folder/images (default: every file).",
    )
    samples: int = Field(
        64, ge=1, description="Most samples to read: files (folder), image views (images) or batches."
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Images/synthetic: samples per batch (default: the largest batch the input's range allows, up to 8).",
    )
    holdout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of the calibration files/batches held out for evaluation when no `evaluation` source is given.",
    )
    seed: int = Field(0, description="Seed of synthetic data and of augmented image views.")
    steps: int = Field(
        32,
        ge=1,
        description="Stateful models (inputs.NAME.state_from): steps of each synthetic sequence, and the most "
        "steps read from each sequence file.",
    )
    labels: Path | None = Field(
        None, description="Labels file: one class index per line, or a JSON map file name -> class."
    )
    preprocess: ImagePreprocess | None = Field(None, description="Image preprocessing (for `images`).")

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSource:
        given = [k for k in ("folder", "images", "callable") if getattr(self, k) is not None] + (
            ["synthetic"] if self.synthetic else []
        )
        if len(given) != 1:
            raise ValueError(
                "give exactly one of folder, images, callable, synthetic"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        for key in ("folder", "images", "callable"):
            if getattr(self, key) is not None:
                return key
        return "synthetic"


class ImagePreprocess(Strict):
    resize: int = Field(256, ge=1, description="Resize the shorter side to this many pixels.")
    crop: int = Field(224, ge=1, description="Centre crop to crop x crop.")
    channel_order: str = Field("RGB", pattern="^(RGB|BGR)$", description="RGB or BGR.")
    layout: str = Field("NCHW", pattern="^(NCHW|NHWC)$", description="NCHW or NHWC.")
    scale: float = Field(1.0, description="Multiply pixel values (0..255) by this first.")
    mean: list[float] = Field([0.0, 0.0, 0.0], description="Subtracted per channel after scaling.")
    std: list[float] = Field([1.0, 1.0, 1.0], description="Divides per channel after subtracting the mean.")
    views: int = Field(
        1,
        ge=1,
        description="Views per image: the first is resize + centre crop, the others seeded random resized crops, "
        "flips and mild colour jitter.",
    )


class DecisionBudget(Strict):
    """Agreement of thresholded decisions between FP32 and a candidate, on one probability output."""

    output: str = Field(description="The probability output (values in [0, 1]) whose decisions are judged.")
    threshold: float = Field(0.5, gt=0, lt=1, description="A sample is positive when p > threshold.")
    min_agreement: float = Field(
        0.99, ge=0, le=1, description="Least share of samples whose decision matches FP32's."
    )


class QuantizeConfig(Strict):
    method: CalibrationMethod = Field(
        CalibrationMethod.minmax, description="Calibration method: minmax, entropy, percentile."
    )
    percentile: float = Field(99.999, gt=90, le=100, description="Percentile for the percentile method.")
    per_channel: bool = Field(True, description="Per-channel weight scales.")
    exclude_ops: list[str] = Field(
        default_factory=list, description="Op types never quantized (e.g. Softmax)."
    )
    exclude_nodes: list[str] = Field(default_factory=list, description="Node names never quantized.")
    fp16_keep_io: bool = Field(True, description="FP16 artifact keeps FP32 inputs/outputs.")
    fp16_block_ops: list[str] = Field(
        default_factory=list,
        description="Op types kept in FP32 inside the FP16 graph. Default none: every op runs in FP16 (ONNX "
        "Runtime's FP16 LayerNormalization and Softmax accumulate in FP32); the data decides which nodes stay FP32.",
    )
    fp16_relu6_as_hardsigmoid: bool = Field(
        True,
        description="In the FP16 graph built for ONNX Runtime (from model.fp32.ort.onnx), write each ReLU6 between "
        "two convolutions as HardSigmoid with its bound moved into the weights: ONNX Runtime CUDA's Clip kernel "
        "is slow (EfficientNet-Lite0 batch 32 on an H200: 1.46 -> 1.16 ms). FP32 graphs keep their Clip.",
    )
    fp16_block_nodes: list[str] = Field(
        default_factory=list, description="Node names kept in FP32 inside the FP16 graph."
    )
    fp16_auto_block: int = Field(
        3,
        ge=0,
        description="Rounds of the data-driven fallback: when the FP16 graph fails to load on a target runtime, "
        "goes NaN/Inf, or misses fp16_min_cosine, keep the nodes where the error starts in FP32 and convert "
        "again, at most this many times (0: fail at once on NaN/Inf or a load failure).",
    )
    fp16_min_cosine: float = Field(
        0.999,
        ge=-1,
        le=1,
        description="FP16 outputs' cosine to FP32 below which the fallback keeps nodes in FP32.",
    )
    fp16_drift_threshold: float = Field(
        0.01,
        gt=0,
        description="Relative L2 error of a node's FP16 output against FP32 (on the evaluation data) above which, "
        "when its inputs drift 4x less, the node counts as where the FP16 error starts.",
    )
    int8_budget_top1: float | None = Field(
        0.99,
        ge=0,
        le=1,
        description="Accuracy budget: minimum INT8 top-1 agreement with FP32 (None: no fallback).",
    )
    int8_budget_cosine: float | None = Field(
        None, ge=-1, le=1, description="Accuracy budget: minimum cosine to FP32."
    )
    int8_budget_decision: DecisionBudget | None = Field(
        None,
        description="Accuracy budget on decisions: for a probability output, the share of all samples (every "
        "step of every sequence for a stateful model) where `p > threshold` is the same for INT8 as for FP32, "
        "e.g. {output: speech_prob, threshold: 0.5, min_agreement: 0.99}.",
    )
    accept_budget_miss: bool = Field(
        False,
        description="Accept an artifact that misses its accuracy budget: the run exits 0 and the miss is noted, "
        "but the artifact is still never selected as within budget. Say why in the config.",
    )
    fallback_max_steps: int = Field(
        6, ge=0, description="Accuracy-aware fallback: most re-quantization rounds."
    )
    fallback_nodes_per_step: int = Field(2, ge=1, description="Nodes moved back to FP32 per fallback round.")
    bias_correction: bool = Field(
        False,
        description="Empirical bias correction of the ONNX Runtime INT8 form: shift each quantized Conv/Gemm bias "
        "by its mean output error against FP32 over the calibration data, layer by layer (before the fallback "
        "judges the result).",
    )
    sensitivity_samples: int = Field(
        16, ge=1, description="Calibration samples used to rank layers by quantization error."
    )


class BuildConfig(Strict):
    flavour: Flavour = Field(
        Flavour.auto, description="TensorRT flavour: auto, tensorrt (10/11) or tensorrt_rtx."
    )
    workspace_mib: int | None = Field(
        None, ge=1, description="Workspace memory pool limit in MiB (trtexec --memPoolSize)."
    )
    optimization_level: int = Field(
        3, ge=0, le=5, description="Builder optimization level (trtexec --builderOptimizationLevel)."
    )
    timing_cache: Path | None = Field(
        None,
        description="Your TensorRT timing cache to start from: read, never written; its content is part of "
        "each build's key, so another cache rebuilds the engines.",
    )
    managed_timing_cache: bool = Field(
        True,
        description="Keep infercc's own timing cache in the output folder (engines/timing.<flavour>.cache), "
        "updated by every build. Not part of any key: it changes which tactics are timed (build speed), and "
        "every engine is verified.",
    )
    compute_capabilities: list[str] = Field(
        default_factory=list,
        description="TensorRT-RTX target compute capabilities, e.g. ['8.6', '8.9'] (empty: default).",
    )
    hardware_compatibility: str = Field(
        "none", description="Hardware compatibility level: none, ampere_plus, same_cc."
    )
    version_compatible: bool = Field(False, description="Build a version-compatible engine (TensorRT 10+).")
    int8_route: Int8Route = Field(
        Int8Route.qdq, description="INT8 from the Q/DQ artifact, or TensorRT 10's implicit calibrator."
    )
    profiles: list[dict[str, InputSpec]] = Field(
        default_factory=list, description="Extra optimization profiles: a list of {input: {min, opt, max}}."
    )
    inductor_autotune_s: float | None = Field(
        None,
        gt=0,
        description="AOTInductor: compile with max-autotune, bounded by this many seconds per package (a "
        "compile that runs longer is stopped and the package is compiled in the default mode, noted). "
        "None: default mode.",
    )
    sources: dict[Precision, str] = Field(
        default_factory=dict,
        description=(
            "ONNX artifact each engine is built from (default fp32 <- fp32, fp16 <- fp16, int8 <- int8-trt). "
            "fp16: fp32 uses TensorRT 10's FP16 builder flag on the FP32 graph."
        ),
    )


class Tolerance(Strict):
    """Pass when, reduced by `statistic`, elementwise |a-b| <= atol OR |a-b| <= rtol*|b| (Polygraphy semantics),
    and the other set checks hold."""

    atol: float | None = Field(None, ge=0, description="Absolute tolerance.")
    rtol: float | None = Field(None, ge=0, description="Relative tolerance.")
    statistic: Statistic = Field(
        Statistic.elemwise,
        description="elemwise (every element within atol OR rtol), or reduce the abs and rel errors with max, mean, "
        "median or quantile and pass if either reduced error is within its tolerance.",
    )
    quantile: float = Field(0.99, gt=0, le=1, description="Quantile used when statistic is quantile.")
    min_cosine: float | None = Field(None, ge=-1, le=1, description="Minimum cosine similarity.")
    min_top1: float | None = Field(
        None, ge=0, le=1, description="Minimum top-1 agreement (classifier outputs)."
    )
    min_snr_db: float | None = Field(None, description="Minimum signal-to-noise ratio in dB.")
    check_nonfinite: bool = Field(True, description="Fail on any NaN/Inf value in the output.")


def _default_tolerances() -> dict[Precision, Tolerance]:
    return {
        Precision.fp32: Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.99999),
        # An FP16 graph's outputs drift by ~0.5% over a deep network: logits of magnitude 10-20 land ~0.05
        # off on real images (measured on EfficientNet-Lite0). Judge the 99th percentile; cosine is the guard.
        Precision.fp16: Tolerance(
            atol=1e-1, rtol=5e-2, statistic=Statistic.quantile, quantile=0.99, min_cosine=0.999
        ),
        Precision.int8: Tolerance(min_cosine=0.98, min_top1=0.9),
        # BF16 keeps 8 mantissa bits (FP16: 11): the same statistic as FP16, with room for 8x the rounding error
        Precision.bf16: Tolerance(
            atol=2.5e-1, rtol=1e-1, statistic=Statistic.quantile, quantile=0.99, min_cosine=0.995
        ),
    }


def _default_runtime_tolerances() -> dict[RuntimeName, dict[Precision, Tolerance]]:
    # ONNX Runtime's CUDA provider and TensorRT run FP32 convolutions and matmuls in TF32 by default
    # (10-bit mantissa): an FP32 artifact deployed there differs from PyTorch's CPU result by ~1e-2.
    tf32 = Tolerance(atol=5e-2, rtol=1e-2, min_cosine=0.9999)
    return {"onnxruntime-cuda": {Precision.fp32: tf32}, "tensorrt": {Precision.fp32: tf32}}


class VerifyConfig(Strict):
    reference: Reference = Field(
        Reference.pytorch,
        description="What artifacts are compared against: pytorch or onnx (FP32 on ORT CPU).",
    )
    seed: int = Field(0, description="Seed of the synthetic inputs.")
    samples: int = Field(
        4,
        ge=1,
        description="Input sets: the min/opt/max reference sets, plus seeded sets at the opt shape up to this many.",
    )
    tolerances: dict[Precision, Tolerance] = Field(
        default_factory=_default_tolerances, description="Default tolerance per precision."
    )
    runtime_tolerances: dict[RuntimeName, dict[Precision, Tolerance]] = Field(
        default_factory=_default_runtime_tolerances,
        description="Per-runtime overrides of the precision defaults. By default FP32 on onnxruntime-cuda and "
        "tensorrt allows for TF32 math, which both use unless told otherwise.",
    )
    outputs: dict[str, Tolerance] = Field(default_factory=dict, description="Per-output tolerance overrides.")
    inputs: Path | None = Field(
        None,
        description="Folder of .npy/.npz input files, or a Polygraphy inputs JSON file (--load-inputs), to "
        "verify on instead of random data.",
    )
    runtimes: list[RuntimeName] = Field(
        default_factory=list,
        description="Runtimes to verify on (default: every ONNX/engine runtime; those not installed are listed as skipped).",
    )


class BenchConfig(Strict):
    enabled: bool = Field(True, description="Run the bench stage in `compile`.")
    warmup: int = Field(10, ge=0, description="Untimed warm-up iterations (before the first repeat).")
    iterations: int = Field(50, ge=1, description="Timed iterations per repeat.")
    duration_s: float | None = Field(
        None, gt=0, description="Time each repeat for this long instead of a fixed count."
    )
    repeats: int = Field(3, ge=1, description="Repeats, to report spread.")
    budget_s: float | None = Field(
        5.0,
        gt=0,
        description="Most seconds one artifact/runtime/batch measurement may take; fewer iterations if needed.",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for every runtime (default: all cores). Recorded."
    )
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="Batch-size sweep for dynamic models (default: the min, opt and max batch).",
    )
    runtimes: list[RuntimeName] = Field(
        default_factory=list, description="Runtimes to bench on (default: every one available)."
    )
    baseline: bool = Field(
        True, description="Time PyTorch eager on the same device as the baseline (ratios)."
    )
    cuda_graph: bool = Field(
        True,
        description="ONNX Runtime CUDA and inductor-cuda: capture a CUDA graph (falls back without, recorded).",
    )
    peers: bool = Field(
        True,
        description="Time torch.compile on the same device as a peer (runtimes torch-compile-cpu/-cuda): "
        "what a user gets without infercc. Reports show each artifact's ratio to it.",
    )
    peer_compile_s: float = Field(
        600.0, gt=0, description="Most seconds torch.compile may spend compiling the peer (all batch sizes)."
    )
    max_foreign_load: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A timed round is disturbed when other processes used more than this share of the machine's "
        "cores meanwhile (or the timed CPU process got under 80% of one core); ratios to the baseline are then "
        "reported as 'disturbed', not as numbers.",
    )
    max_spread: float = Field(
        0.05,
        gt=0,
        description="Warn when the repeats' spread (max-min)/median of two artifacts' medians overlaps.",
    )


class ReportConfig(Strict):
    html: bool = Field(True, description="Write report.html.")
    markdown: bool = Field(True, description="Write summary.md (for a CI job summary).")
    accuracy_budget_top1: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Selection: minimum top-1 agreement, on top of each artifact's own budget.",
    )
    accuracy_budget_cosine: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Selection: minimum cosine to the reference, on top of each artifact's own budget "
        "(quantize.int8_budget_*) and verify tolerances.",
    )
    accuracy_budget_snr_db: float | None = Field(
        None, description="Selection: minimum SNR to the reference, in dB."
    )
    batch: int | None = Field(
        None,
        ge=1,
        description="Batch size the per-runtime selection ranks latency at (default, or when that batch was not "
        "benched: the smallest benched batch).",
    )


class CompileConfig(Strict):
    """Everything `infercc compile` does, in one file. Flags override these values."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="The model to compile.")
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Input name -> shapes and value range."
    )
    out: Path = Field(Path("artifacts"), description="Output folder for artifacts, manifest and reports.")
    precisions: list[Precision] = Field(
        default_factory=lambda: [Precision.fp32], description="Artifacts to produce."
    )
    targets: list[Target] = Field(
        default_factory=lambda: [Target.onnxruntime], description="onnxruntime, tensorrt and/or inductor."
    )
    lock: LockMode = Field(
        LockMode.fail, description="When --out is in use by another run: fail at once, or wait."
    )
    lock_wait_s: float = Field(600.0, ge=0, description="With lock: wait, the most seconds to wait.")
    export: ExportConfig = Field(
        default_factory=ExportConfig, description="Export settings (PyTorch -> ONNX)."
    )
    simplify: SimplifyConfig = Field(default_factory=SimplifyConfig, description="Graph simplification.")
    optimize: OptimizeConfig = Field(
        default_factory=OptimizeConfig, description="Graph fusion for ONNX Runtime (after simplify)."
    )
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig, description="FP16 and INT8 settings.")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="ONNX Runtime CUDA provider tuning.")
    calibration: DataSource | None = Field(None, description="Calibration data for INT8.")
    evaluation: DataSource | None = Field(None, description="Held-out evaluation data for accuracy figures.")
    build: BuildConfig = Field(default_factory=BuildConfig, description="TensorRT engine build settings.")
    verify: VerifyConfig = Field(
        default_factory=VerifyConfig, description="Verification against the reference."
    )
    bench: BenchConfig = Field(default_factory=BenchConfig, description="Benchmark settings.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="Report settings.")

    @model_validator(mode="after")
    def _check_consistency(self) -> CompileConfig:
        # shape ranges are checked by InputSpec itself, so errors point at inputs.NAME
        self._check_state_pairs()
        return self

    def _check_state_pairs(self) -> None:
        """State pairs name outputs, not inputs, one input per output; the outputs named must exist when
        model.output_names lists them (the rest is checked against the model's own outputs at export). State
        outputs are hidden states: no top-k agreement unless declared otherwise."""
        outputs = self.model.output_names
        taken: dict[str, str] = {}
        for name, spec in self.inputs.items():
            source = spec.state_from
            if source is None:
                continue
            where = f"inputs.{name}.state_from: {source}"
            if source in self.inputs:
                raise ValueError(f"{where} names an input; it must name a model output (e.g. {name}_out)")
            if source in taken:
                raise ValueError(f"{where}: the output {source} already feeds input {taken[source]}")
            if outputs and source not in outputs:
                raise ValueError(
                    f"{where}: the model has no output {source} (model.output_names: {', '.join(outputs)})"
                )
            taken[source] = name
            self.model.output_kinds.setdefault(source, OutputKind.embedding)
        decision = self.quantize.int8_budget_decision
        if decision is not None and outputs and decision.output not in outputs:
            raise ValueError(
                f"quantize.int8_budget_decision.output: the model has no output {decision.output} "
                f"(model.output_names: {', '.join(outputs)})"
            )

    @field_validator("precisions", "targets")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        if not values:
            raise ValueError("needs at least one entry")
        return values

    def shape_ranges(self) -> dict[str, ShapeRange]:
        ranges = {}
        for name, spec in self.inputs.items():
            shape_range = spec.shape_range(name)
            if shape_range is not None:
                ranges[name] = shape_range
        return ranges


DataSource.model_rebuild()


# --- loading and error formatting -------------------------------------------------------------


# where each key of a YAML file sits: key path -> (line, column), 1-based
YamlPositions = dict[tuple[str | int, ...], tuple[int, int]]


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with line/column on syntax errors."""
    return load_yaml_document(path)[0]


def load_yaml_document(path: Path) -> tuple[dict[str, Any], YamlPositions]:
    """Like load_yaml, and where each key is, so validation errors can point at file:line:column."""
    from infercc.fsutil import read_regular_file

    if not Path(path).exists() and not Path(path).is_symlink():
        raise UsageError(f"Config file {path} does not exist.", hint="Create one with: infercc config init")
    try:
        text = read_regular_file(Path(path), "Config file", MAX_CONFIG_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"Config file {path} is not UTF-8 text (byte {exc.start}).", hint="Save it as a UTF-8 YAML file."
        ) from None
    try:
        _check_document(text, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            tag = problem.rsplit(" ", 1)[-1].strip("'")
            tag = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag
            raise UsageError(
                f"{where}: the YAML tag {tag} is not allowed in a config.",
                hint="Config values are plain data and never evaluated as code: remove the tag.",
            ) from None
        raise UsageError(
            f"{where}: YAML syntax error: {problem}.", hint="Fix the YAML at that line."
        ) from None
    except RecursionError:
        raise UsageError(f"{path}: the YAML is nested too deeply.") from None
    if data is None:
        raise UsageError(f"Config file {path} is empty.", hint="Start from: infercc config init")
    if not isinstance(data, dict):
        raise UsageError(f"Config file {path} must hold a mapping of settings, not a {type(data).__name__}.")
    return data, _yaml_positions(text)


def resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Data folders in a config file are relative to the file (when they exist there); `out` and the model
    spec stay relative to the current folder."""
    for section in ("calibration", "evaluation"):
        source = data.get(section)
        if not isinstance(source, dict):
            continue
        for key in ("folder", "images"):
            value = source.get(key)
            if isinstance(value, str) and not Path(value).is_absolute() and (base / value).exists():
                source[key] = str(base / value)


MAX_YAML_NODES = 100_000
MAX_CONFIG_BYTES = 4 << 20  # a config is settings, not data: a few KiB in practice


def _check_document(text: str, path: Path) -> None:
    """Checks on the composed YAML graph, before any value is built: duplicate keys (both lines named),
    too many values, and alias bombs ('billion laughs'). Sizes are counted memoised per node, so the check
    is linear in the text however much the aliases would expand."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return
    sizes: dict[int, int] = {}

    def expanded(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # placeholder: a recursive alias counts once
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node, path)
            total = 1 + sum(expanded(k) + expanded(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(expanded(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    total = expanded(root)
    if len(sizes) > MAX_YAML_NODES:
        raise UsageError(
            f"{path}: the YAML holds {len(sizes):,} values; a config may hold at most {MAX_YAML_NODES:,}.",
            hint="A config holds settings; put data in files it names (calibration.folder, verify.inputs).",
        )
    if total > MAX_YAML_NODES:
        raise UsageError(
            f"{path}: the YAML expands to {total:,} values through its aliases (*name); a config may "
            f"hold at most {MAX_YAML_NODES:,}.",
            hint="Write the values out, or use fewer nested anchors.",
        )


def _refuse_duplicate_keys(node: Any, path: Path) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise UsageError(
                f"{path}:{line}: the key {key.value!r} appears twice in one mapping (lines {seen[key.value]} "
                f"and {line}); YAML would silently keep the last.",
                hint="Keep one of them.",
            )
        seen[key.value] = line


def _yaml_positions(text: str) -> YamlPositions:
    """Line and column of every mapping key and list item (best effort: {} if the text will not compose)."""
    positions: YamlPositions = {}

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    here = (*path, key.value)
                    positions[here] = (key.start_mark.line + 1, key.start_mark.column + 1)
                    walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                positions[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, (*path, index))

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except (yaml.YAMLError, RecursionError):
        return {}
    return positions


def parse_config(
    data: dict[str, Any],
    origin: str = "config",
    positions: YamlPositions | None = None,
    file_data: dict[str, Any] | None = None,
) -> CompileConfig:
    """Validate a config dict; every problem becomes one readable line.

    With `positions` (from load_yaml_document) and `file_data` (the file's own values, before flags),
    a problem with a value that came from the file is reported as origin:line:column.
    """
    try:
        return CompileConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(err, origin, data, positions, file_data) for err in exc.errors()]
        raise UsageError("Invalid configuration:\n  " + "\n  ".join(lines)) from None
    except RecursionError:
        raise UsageError(f"Invalid configuration ({origin}): values are nested too deeply.") from None


_MISSING = object()


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            return _MISSING
        data = data[part]
    return data


def _position(
    loc: tuple[Any, ...],
    data: dict[str, Any],
    positions: YamlPositions | None,
    file_data: dict[str, Any] | None,
) -> tuple[int, int] | None:
    """Where in the file the value at `loc` was written, if it still holds the file's value."""
    if not positions or file_data is None:
        return None
    for depth in range(len(loc), 0, -1):  # the key itself, else its closest parent in the file
        part = tuple(loc[:depth])
        if part in positions:
            value = _value_at(data, part)
            if value is not _MISSING and value == _value_at(file_data, part):
                return positions[part]
            return None
    return None


def _describe_error(
    err: Any,
    origin: str,
    data: dict[str, Any],
    positions: YamlPositions | None = None,
    file_data: dict[str, Any] | None = None,
) -> str:
    parts = tuple(err["loc"])
    is_key = bool(parts) and parts[-1] == "[key]"  # pydantic's marker for a bad dict key
    parts = parts[:-1] if is_key else parts
    loc = ".".join(str(part) for part in parts) or "(top level)"
    loc = f"{loc} (the key)" if is_key else loc
    position = _position(parts, data, positions, file_data)
    where = f"{origin}:{position[0]}:{position[1]}: {loc}" if position else f"{origin}: {loc}"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        choices = _fields_at(err["loc"][:-1], data)
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
        suggestion = (
            f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(choices))}"
        )
        return f"{where}: unknown key{suggestion}"
    if err["type"] == "missing":
        return f"{where}: required setting is missing"
    message = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None or repr(got) in message else f" (got {got!r})"
    return f"{where}: {message}{shown}"


def _fields_at(loc: tuple[Any, ...], data: dict[str, Any]) -> list[str]:
    """Field names of the model that sits at `loc` inside CompileConfig."""
    model: type[BaseModel] | None = CompileConfig
    path = list(loc)
    while path and model is not None:
        part = path.pop(0)
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = nested_model(field.annotation)
        if path and _holds_many(field.annotation):  # dict[str, Model] or list[Model]: skip the key or index
            path.pop(0)
    return list(model.model_fields) if model is not None else []


def _holds_many(annotation: Any) -> bool:
    import typing

    return any(typing.get_origin(a) in (list, dict) for a in (annotation, *typing.get_args(annotation)))


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, directly or inside a list, dict or `| None` (e.g. dict[str, InputSpec])."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = nested_model(arg)
        if found is not None:
            return found
    return None


def describe_shapes(ranges: dict[str, ShapeRange]) -> str:
    return ", ".join(f"{name}:{r.describe()}" for name, r in ranges.items()) or "(none)"


def shape_text(shape: Shape) -> str:
    return format_dims(shape)
