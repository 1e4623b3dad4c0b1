"""The stage interface, the run context every stage receives, and the events a run emits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from infercc.config import CompileConfig, InputSpec, Precision
from infercc.errors import InferccError
from infercc.models.sources import ModelSource
from infercc.pipeline.manifest import ArtifactRecord, StageRecord, Verdict
from infercc.shapes import ShapeRange

if TYPE_CHECKING:
    from infercc.data.sources import Dataset
    from infercc.quantization.accuracy import Outputs


@dataclass
class NewArtifact:
    """A file a stage wrote (already complete and in place); the runner hashes and records it."""

    name: str
    filename: str  # relative to the output folder
    kind: str
    precision: Precision | None = None
    target: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class StageResult(BaseModel):
    """Base of every stage's typed result (infercc.stages.results). Strict: a key no model declares is a bug
    caught where it is made. `brief` is the one line the CLI prints when the stage finishes."""

    model_config = ConfigDict(extra="forbid")

    brief: str | None = None

    def verdict(self) -> Verdict:
        """What this result says against the run (verification failures, crashes, budget misses)."""
        return Verdict()

    def dump(self) -> dict[str, Any]:
        """The fields the stage set, as manifest.json stores them (StageRecord.metrics)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def read(cls, record: StageRecord | None) -> Any:
        """This stage's result from its manifest record (cached runs included); None when the stage did not
        finish (absent, failed or skipped)."""
        if record is None or record.status != "done":
            return None
        return cls.model_validate(record.metrics)


class SkippedResult(StageResult):
    skipped: str


@dataclass
class StageOutput:
    artifacts: list[NewArtifact] = field(default_factory=list)
    result: StageResult | None = None  # None: the stage has nothing to report beyond its artifacts
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # reason, when the stage could not run here (e.g. runtime not installed)
    # a failure of this stage alone (one target of several): recorded as failed, the run goes on, and the
    # command exits with its code at the end
    error: InferccError | None = None


class Events(Protocol):
    """What a run tells whoever watches it (the CLI draws progress bars from these)."""

    def stage_started(self, name: str, description: str) -> None: ...

    def stage_progress(self, name: str, completed: float, total: float | None, detail: str = "") -> None: ...

    def stage_finished(self, record: StageRecord, cached: bool) -> None: ...

    def stage_restored(self, record: StageRecord) -> None: ...  # taken from the shared cache (--cache)

    def warn(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...


class QuietEvents:
    """Events sink for library use and tests: collects warnings, prints nothing."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.finished: list[tuple[str, bool]] = []
        self.restored: list[str] = []

    def stage_started(self, name: str, description: str) -> None:
        pass

    def stage_progress(self, name: str, completed: float, total: float | None, detail: str = "") -> None:
        pass

    def stage_finished(self, record: StageRecord, cached: bool) -> None:
        self.finished.append((record.name, cached))

    def stage_restored(self, record: StageRecord) -> None:
        self.restored.append(record.name)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        pass


@dataclass
class RunState:
    """What the stages of one run compute once and share: the calibration and evaluation datasets, the FP32
    graph's outputs on the evaluation data (by the graph's sha256), and the warnings already shown."""

    datasets: tuple[Dataset, Dataset] | None = None
    fp32_outputs: dict[str, Outputs] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)


@dataclass
class RunContext:
    """Everything a stage may read. The PyTorch model is loaded only when a stage asks for it.

    `config` is the config as validated and is never changed during a run; what the run derives from it and
    the model lives beside it: `input_names`, `shape_ranges` and `inputs` (each model input's spec, declared
    or the default, by its name in the model)."""

    config: CompileConfig
    out: Path
    source: ModelSource
    source_hash: str
    input_names: list[str]
    shape_ranges: dict[str, ShapeRange]
    inputs: dict[str, InputSpec]
    events: Events
    force: bool = False
    module: Any = None  # the PyTorch model, once loaded (resolving the input names may have needed it)
    state: RunState = field(default_factory=RunState)

    def torch_module(self) -> Any:
        if self.module is None:
            from infercc.models.sources import load_module

            self.module = load_module(self.source, self.config.model)
        return self.module

    def path(self, filename: str) -> Path:
        return self.out / filename

    def progress(self, stage: str, completed: float, total: float | None, detail: str = "") -> None:
        self.events.stage_progress(stage, completed, total, detail)


@runtime_checkable
class Stage(Protocol):
    """One step of the pipeline.

    name      unique in a run (export, simplify, quantize-int8, build-fp16, verify, bench)
    version   bump when the stage's behaviour changes: it is part of the cache key
    needs     names of upstream artifacts it consumes
    wants     (optional attribute) artifacts it uses when an earlier stage produced them (a target that
              failed on its own leaves them out)
    settings  what besides its inputs changes its outputs (part of the key)
    tools     modules whose installed versions are part of the key
    portable  optional ClassVar[bool]: True when the outputs do not depend on the machine, so --cache shares
              them across hosts; other stages (verify, bench: they measure the machine) are cached per host
    deps      (optional) files and folders outside the pipeline that it reads (verify inputs, evaluation and
              calibration data, labels files); the runner hashes their contents into the key, so editing
              one re-runs the stage. A stage that reads such a file must declare it here.
    """

    name: str
    version: ClassVar[str]
    description: str
    needs: tuple[str, ...]

    def settings(self, ctx: RunContext) -> dict[str, Any]: ...

    def tools(self) -> tuple[str, ...]: ...

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput: ...


def stage_deps(stage: Stage, ctx: RunContext) -> list[Path]:
    """The files a stage declares it reads (Stage.deps), or none when it declares nothing."""
    deps = getattr(stage, "deps", None)
    return list(deps(ctx)) if deps is not None else []


class SkippedStage:
    """A stage that cannot run here (its tool is missing, or its input was not made): recorded as skipped,
    with the reason, so the run and the report say so instead of leaving it out."""

    version: ClassVar[str] = "1"
    needs: tuple[str, ...] = ()

    def __init__(self, name: str, description: str, reason: str) -> None:
        self.name = name
        self.description = description
        self.reason = reason

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"skipped": self.reason}

    def tools(self) -> tuple[str, ...]:
        return ()

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        return StageOutput(skipped=self.reason, result=SkippedResult(skipped=self.reason))
