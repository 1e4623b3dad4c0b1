"""The typed result of every stage: what `Stage.run` returns in `StageOutput.result`.

The runner stores each result in manifest.json (`StageRecord.metrics`, the fields the stage set) and its
verdict (`StageRecord.verdict`); the CLI table and the report read them back with `Model.read(record)`.
The field names are the keys report.json and `--json` show. Figures that can be non-finite are `Figure`:
a number, "inf"/"-inf", or None (NaN, or not measured).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infercc.pipeline.manifest import Verdict
from infercc.pipeline.stage import StageResult
from infercc.stages.soundness import Finding

Figure = float | str | None
# a number that counts (a runtime's peak memory, a file size), or None where it could not be read
Count = int | None


class Model(BaseModel):
    """Strict: a key no model declares is a bug caught where it is made, not a silent change of report.json."""

    model_config = ConfigDict(extra="forbid")


# --- comparisons --------------------------------------------------------------------------------------------


class Check(Model):
    """One failed check: which metric, its value and the limit it broke; where (artifact, runtime, output,
    input set) in verify's list of checks."""

    artifact: str | None = None
    runtime: str | None = None
    output: str | None = None
    set: str | None = None
    metric: str
    value: float | int | str | None = None
    limit: str | None = None
    message: str


class ErrorFigures(Model):
    """How far an output is from its reference (infercc.metrics)."""

    max_abs: Figure = None
    max_rel: Figure = None
    mean_abs: Figure = None
    cosine: Figure = None
    snr_db: Figure = None
    nan: int = 0
    inf: int = 0
    top1: Figure = None
    top5: Figure = None


class OutputFigures(ErrorFigures):
    """infercc.metrics.OutputMetrics.to_dict(): one output against its reference."""

    ref_nan: int = 0
    ref_inf: int = 0
    shape_match: bool = True
    statistic: str | None = None
    stat_abs: Figure = None
    stat_rel: Figure = None
    mismatches: int | None = None
    elements: int = 0
    failures: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    passed: bool = True


class ParityPoint(Model):
    shapes: str
    outputs: dict[str, OutputFigures]


class DecisionFigures(Model):
    """Agreement of `p > threshold` on a probability output between a candidate and FP32 (sequences.py)."""

    agreement: Figure = None
    threshold: float
    samples: int
    positive_fp32: int | None = None
    flips_on: int | None = None
    flips_off: int | None = None


class OutputAccuracy(Model):
    """One output of a precision artifact against the FP32 graph on the evaluation data."""

    cosine: Figure = None
    cosine_mean_sample: Figure = None
    cosine_min_sample: Figure = None
    max_abs: Figure = None
    mean_abs: Figure = None
    snr_db: Figure = None
    nan: int = 0
    inf: int = 0
    top1: Figure = None
    top5: Figure = None
    confident_samples: int | None = None
    top1_confident: Figure = None
    task_top1: Figure = None
    task_top1_fp32: Figure = None


class Accuracy(Model):
    """infercc.quantization.accuracy.accuracy(): the worst figures over the outputs, and each output's."""

    samples: int = 0
    cosine: Figure = None
    max_abs: Figure = None
    top1: Figure = None
    top5: Figure = None
    non_finite: int = 0
    outputs: dict[str, OutputAccuracy] = Field(default_factory=dict)
    top1_confident: Figure = None
    confident_samples: int | None = None
    task_top1: Figure = None
    task_top1_fp32: Figure = None
    decision: DecisionFigures | None = None  # with quantize.int8_budget_decision


class SizeFigures(Model):
    size_bytes: int
    fp32_size_bytes: int
    size_ratio: float | None


# --- export, simplify, optimize ----------------------------------------------------------------------------


class ExportResult(StageResult):
    exporter: str
    fallback_reasons: list[str] = Field(default_factory=list)
    opset: int | None = None
    export_s: float | None = None
    nodes: int
    op_counts: dict[str, int]
    io: dict[str, dict[str, Any]]  # onnxutil.io_dims: name -> {io, dtype, dims}
    parity: dict[str, ParityPoint] = Field(default_factory=dict)
    shapes_checked: dict[str, str]
    trace_warnings: list[str] = Field(default_factory=list)
    graph_breaks: list[str] = Field(default_factory=list)
    soundness: list[Finding] = Field(default_factory=list)  # what the export froze (infercc.stages.soundness)


class SimplifyResult(StageResult):
    tool: str
    nodes_before: int
    nodes_after: int
    op_counts_before: dict[str, int]
    op_counts_after: dict[str, int]
    parity: dict[str, dict[str, OutputFigures]]  # shape label -> output -> figures


class OptimizeResult(StageResult):
    applied: dict[str, dict[str, int]]  # fuser -> fusion -> count
    errors: dict[str, str]  # fuser -> why it did nothing
    fused_ops: dict[str, int]
    left: dict[str, int]
    parity: dict[str, dict[str, OutputFigures]]


# --- precisions --------------------------------------------------------------------------------------------


class Fp16Result(StageResult, SizeFigures):
    accuracy: Accuracy
    evaluation: str
    keep_io: bool
    source: str
    converter: str
    load_checked_on: list[str]
    blocked_ops: list[str]
    blocked_nodes: list[str]
    kept_fp32_nodes: int
    nodes: int
    casts_added: int
    auto_blocked: list[dict[str, Any]]  # quantization.fp16.Drift.to_dict() or a load failure, with its reason


class Bf16Result(StageResult, SizeFigures):
    accuracy: Accuracy
    evaluation: str
    runtime: str
    cpu: str
    nodes: int


class CalibrateResult(StageResult):
    method: str
    percentile: float | None
    source: str
    kind: str
    samples: int | None
    tensors: int | None
    reused_cache: bool
    calibration_s: float


class BudgetFigures(Model):
    """The INT8 budget judged on quantize's own figures (ONNX Runtime CPU on the evaluation data)."""

    top1: float | None
    cosine: float | None
    met: bool
    misses: list[str]
    accepted: bool
    decision: dict[str, Any] | None = None  # quantize.int8_budget_decision


class LayerFigure(Model):
    node: str
    op_type: str
    error: Figure


class FallbackStep(Model):
    step: int
    kept_fp32: list[LayerFigure]
    top1_before: Figure
    top1_after: Figure
    cosine_before: Figure
    cosine_after: Figure
    calibration_top1_after: Figure
    calibration_cosine_after: Figure
    met: bool


class Fallback(Model):
    steps: list[FallbackStep] = Field(default_factory=list)
    kept_fp32: list[str] = Field(default_factory=list)
    ranking: list[LayerFigure] = Field(default_factory=list)
    excluded_by_config: list[str] = Field(default_factory=list)
    excluded_ops: list[str] = Field(default_factory=list)


class QuantizeResult(StageResult, SizeFigures):
    """An INT8 artifact (either Q/DQ form) with its accuracy, budget verdict and the fallback's steps."""

    form: str
    target: str
    activations: str
    method: str
    per_channel: bool
    evaluation: str
    accuracy: Accuracy
    accuracy_before_fallback: Accuracy | None
    budget: BudgetFigures
    budget_misses: list[str]
    fallback: Fallback
    first_non_finite: dict[str, Any] | None  # quantization.probe.first_non_finite
    nodes: int
    quantize_linear: int
    dequantize_linear: int
    quantized_nodes: int
    bias_correction: dict[str, Any] | None = None

    def verdict(self) -> Verdict:
        return Verdict(budget_misses=self.budget_misses)


# --- builds --------------------------------------------------------------------------------------------


class BuildResult(StageResult):
    flavour: str
    build_s: float
    engine_bytes: int
    layers: int | None
    profiles: list[str]
    targets: dict[str, Any]
    timing_cache: Any = None
    calibration: dict[str, Any] | None = None


class InductorResult(StageResult):
    device: str
    export_s: float
    compile_s: float
    mode: str
    package_bytes: int
    valid_shapes: dict[str, Any] | None
    specialized: list[dict[str, Any]]
    load_check: dict[str, Any]  # {'loaded', 'ran', 'max_abs'} or {'error'}


class TuneChoice(Model):
    chosen: str
    p50_ms: float | None
    default_p50_ms: float | None
    cuda_graph: bool


class TuneResult(StageResult):
    artifacts: dict[str, TuneChoice]


# --- verify --------------------------------------------------------------------------------------------


class SkippedRuntime(Model):
    runtime: str
    reason: str


class Unverified(Model):
    artifact: str
    reason: str


class Overhead(Model):
    total_s: float
    runtime_s: float
    data_s: float
    own_s: float
    own_share: float


class OutputSummary(ErrorFigures):
    """One output of a pair over every input set it ran."""

    kind: str
    samples: int
    passed: bool
    decision: DecisionFigures | None = None  # the output quantize.int8_budget_decision names


class BudgetJudgement(Model):
    """The artifact's accuracy budget (infercc.budget) judged on one pair's worst figures."""

    top1: float | None
    cosine: float | None
    accept_miss: bool
    top1_measured: Figure
    cosine_measured: Figure
    decision: dict[str, Any] | None = None  # quantize.int8_budget_decision
    decision_measured: Figure = None
    met: bool
    misses: list[str]
    message: str | None
    accepted: bool


class VerifyEntry(Model):
    """One artifact on one runtime."""

    artifact: str
    path: str
    kind: str
    precision: str
    runtime: str
    outputs: dict[str, OutputSummary] = Field(default_factory=dict)
    points: dict[str, dict[str, OutputFigures]] = Field(default_factory=dict)  # input set -> output
    failures: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    tolerances: dict[str, dict[str, Any]] = Field(default_factory=dict)
    runtime_settings: dict[str, Any] | None = None
    crashed: str | None = None
    passed: bool = False
    budget: BudgetJudgement | None = None
    seconds: float = 0.0
    notes: list[str] | None = None


class VerifyInputs(Model):
    source: str
    sets: list[str]
    shapes: dict[str, dict[str, list[int]]] | None = None


class VerifyResult(StageResult):
    passed: bool
    reference: str
    inputs: VerifyInputs
    results: list[VerifyEntry]
    skipped_runtimes: list[SkippedRuntime]
    unverified: list[Unverified]
    failures: list[str]
    crashes: list[str]
    budget_misses: list[str]
    checks: list[Check]
    overhead: Overhead

    def verdict(self) -> Verdict:
        return Verdict(
            failures=self.failures, crashes=self.crashes, budget_misses=self.budget_misses, budget_final=True
        )


# --- bench ---------------------------------------------------------------------------------------------


class BatchFigures(Model):
    """One subject at one batch size: latency statistics (ms), throughput (items/s), the repeats, and the
    ratios to PyTorch eager and torch.compile; or only `error` when it could not be timed."""

    iterations: int | None = None
    repeats: int | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    repeat_medians_ms: list[float] | None = None
    spread: float | None = None
    throughput: float | None = None
    rounds: list[dict[str, Any]] | None = None  # machine_load.CpuSample per timed block
    disturbed: str | None = None
    h2d_ms: float | None = None
    baseline_p50_ms: float | None = None
    speedup: float | None = None
    vs_compile: float | None = None
    compile_p50_ms: float | None = None
    error: str | None = None


class BenchEntry(Model):
    """One subject (an artifact, PyTorch eager or the torch.compile peer) on one runtime."""

    artifact: str
    runtime: str
    device: Literal["cpu", "cuda"]
    precision: str | None
    file_size: Count
    threads: int | None
    batches: dict[str, BatchFigures] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    role: Literal["baseline", "peer"] | None = None
    crashed: str | None = None
    load_s: float | None = None
    timing: str | None = None
    runtime_settings: dict[str, Any] | None = None
    compile_s: dict[str | int, float] | None = None  # per batch (or shape) compiled
    device_memory: Count = None
    device_memory_delta: Count = None
    peak_rss: Count = None
    peak_rss_delta: Count = None


class LoadAverage(Model):
    before: list[float] | None
    after: list[float] | None
    cpus: int | None


class BenchResult(StageResult):
    batch_sizes: list[int]
    threads: int | None
    settings: dict[str, Any]  # config.BenchConfig as run
    results: list[BenchEntry]
    skipped_runtimes: list[SkippedRuntime]
    warnings: list[str]
    errors: list[str]
    crashes: list[str]
    overhead: Overhead
    flops_per_item: float | None
    timed_shapes: dict[str, dict[str, str]]  # batch -> input -> dims
    load_average: LoadAverage
    disturbed: list[str]

    def verdict(self) -> Verdict:
        return Verdict(crashes=self.crashes)
