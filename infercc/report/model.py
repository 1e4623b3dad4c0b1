"""report.json as pydantic models; report.schema.json is generated from them (`make docs`, report_schema())
and a test fails when the shipped file is stale."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infercc.stages.results import (
    BenchEntry,
    BudgetJudgement,
    Figure,
    OutputSummary,
    Overhead,
    SkippedRuntime,
    Unverified,
)

SCHEMA_ID = "infercc.report/1"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(Model):
    source: str | None
    input_names: list[str] | None = None
    shapes: dict[str, str] | None = None


class Environment(Model):
    python: str
    platform: str | None = None
    cpu: str
    cpu_count: int | None
    cpu_flags: list[str] | None = None
    packages: dict[str, str | None]
    gpus: list[str]


class ReportStage(Model):
    name: str
    status: Literal["done", "failed", "skipped"]
    duration_s: float = Field(ge=0)
    started: str | None = None
    notes: list[str] = Field(default_factory=list)
    error: str | None = None


class ReportArtifact(Model):
    name: str
    path: str
    kind: Literal["onnx", "onnx-bf16", "engine", "inductor"]
    precision: str | None = None
    target: str | None = None
    size: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    from_other_config: bool | None = Field(
        None,
        description="written into the same folder by a run with another config; not verified or benched by "
        "this one",
    )
    specialized: list[str | None] | None = Field(
        None, description="AOTInductor: dimensions torch.export specialised, in words"
    )
    valid_shapes: dict[str, Any] | None = Field(
        None, description="AOTInductor: the shapes the package accepts"
    )
    not_loadable: str | None = Field(None, description="AOTInductor: why the package does not load here")
    device: str | None = None


class VerifyPair(Model):
    """One artifact on one runtime, as the report shows it (manifest: stages.results.VerifyEntry)."""

    artifact: str
    runtime: str
    precision: str | None = None
    kind: str | None = None
    passed: bool
    outputs: dict[str, OutputSummary]
    tolerances: dict[str, dict[str, Any]] | None = None
    failures: list[str]
    budget: BudgetJudgement | None = None
    seconds: float | None = None
    notes: list[str] | None = None


class ReportInputs(Model):
    source: str | None = None
    sets: list[str] | None = None


class VerifySection(Model):
    passed: bool
    reference: str
    inputs: ReportInputs
    results: list[VerifyPair]
    skipped_runtimes: list[SkippedRuntime]
    unverified: list[Unverified]
    failures: list[str]
    budget_misses: list[str]
    overhead: Overhead | None


class BenchSection(Model):
    batch_sizes: list[int]
    threads: int | None
    settings: dict[str, Any]
    results: list[BenchEntry]
    skipped_runtimes: list[SkippedRuntime]
    warnings: list[str]
    errors: list[str]
    overhead: Overhead
    flops_per_item: float | None
    timed_shapes: dict[str, dict[str, str]]


class Accuracy(Model):
    """The worst figures over the outputs of one artifact on one runtime (selection)."""

    passed: bool
    runtime: str
    budget: BudgetJudgement | None = None
    cosine: Figure = None
    top1: Figure = None
    snr_db: Figure = None
    max_abs: Figure = None


class Loser(Model):
    artifact: str
    runtime: str | None = None
    p50_ms: float | None = None
    reason: str


class RuntimePick(Model):
    """The fastest artifact within the accuracy budget on one runtime, and why each other one lost."""

    runtime: str
    device: str | None = None
    chosen: str | None
    p50_ms: float | None
    speedup: float | None
    disturbed: str | None = None
    accuracy: Accuracy | None = None
    others: list[Loser]


class Chosen(Model):
    artifact: str
    runtime: str
    backend: str
    precision: str
    p50_ms: float


class Candidate(Model):
    """A row of the backend x precision x batch table."""

    backend: str
    precision: str
    batch: int
    artifact: str
    runtime: str
    p50_ms: float | None
    vs_eager: float | None
    vs_compile: float | None
    reason: str | None = None
    chosen: bool | None = None


class Headline(Model):
    """The chosen artifact at one batch, its ratios to PyTorch eager and torch.compile, and the verdict."""

    batch: int
    chosen: Chosen | None
    eager_p50_ms: float | None
    compile_p50_ms: float | None
    vs_eager: float | None
    vs_compile: float | None
    verdict: str


class DevicePick(Model):
    """One device: the pick over the runtimes' own picks, and the pick across backends with its table."""

    device: str
    artifact: str | None = None
    runtime: str | None = None
    p50_ms: float | None = None
    speedup: float | None = None
    others: list[Loser] | None = None
    batch: int | None = None
    chosen: Chosen | None = None
    eager_p50_ms: float | None = None
    compile_p50_ms: float | None = None
    vs_eager: float | None = None
    vs_compile: float | None = None
    verdict: str | None = None
    batches: dict[str, Headline] | None = None
    table: list[Candidate] | None = None


class SelectionBudget(Model):
    cosine: float | None
    top1: float | None
    snr_db: float | None


class Selection(Model):
    budget: SelectionBudget
    batch: int | None
    runtimes: list[RuntimePick]
    devices: list[DevicePick] | None = None


class FloorEntry(Model):
    artifact: str
    runtime: str
    batch: int
    p50_ms: float
    floor_ms: float
    ratio: float


class ComputeFloor(Model):
    flops_per_item: float
    peak_flops: float | None
    gpu: str | None
    entries: list[FloorEntry]


class Report(Model):
    """report.json, written into --out by every compile, verify and bench run."""

    model_config = ConfigDict(
        extra="forbid",
        title="infercc report",
        json_schema_extra={
            "description": "report.json written into --out by every compile, verify and bench run. Version: "
            f"the `schema` field ({SCHEMA_ID}); a breaking change bumps it."
        },
    )

    schema_: Literal["infercc.report/1"] = Field(alias="schema")
    infercc_version: str
    created: str
    out: str
    model: ModelInfo
    environment: Environment
    stages: list[ReportStage]
    artifacts: list[ReportArtifact]
    verify: VerifySection | None
    bench: BenchSection | None
    selection: Selection
    compute_floor: ComputeFloor | None = None
    status: Literal["ok", "failed", "budget missed"]


def report_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (written to infercc/report/report.schema.json by `make docs`)."""
    schema = Report.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://infercc.dev/schemas/report-1.json",
        **schema,
    }
