"""manifest.json: what was built, from what, with which tools, and how long it took.

Each stage entry records its key (sha256 over its inputs, settings and tool versions), its
output artifacts with their sha256, its status and duration. It is rewritten atomically after
every stage, so a killed run keeps the record of every stage that finished.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from infercc import __version__
from infercc.fsutil import atomic_write_json, sha256_file, sha256_json

MANIFEST_NAME = "manifest.json"
SCHEMA = "infercc.manifest/1"


class CompanionFile(BaseModel):
    """A file an artifact needs beside it (an ONNX model's external data, `model.onnx.data`)."""

    path: str  # relative to the output folder
    sha256: str
    size: int


def companion_paths(artifact_path: str) -> list[str]:
    """The companions infercc writes for an artifact: only `<path>.data` (see onnxutil.save_onnx)."""
    return [f"{artifact_path}.data"]


class ArtifactRecord(BaseModel):
    name: str  # logical name: onnx, fp32, fp16, int8, int8-trt, engine-fp16, ...
    path: str  # relative to the output folder
    kind: str  # onnx, engine, calibration, reference, sidecar
    sha256: str
    size: int
    precision: str | None = None
    target: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    companions: list[CompanionFile] = Field(default_factory=list)


class Verdict(BaseModel):
    """What a stage's result says against the run; the runner sums these over the stages it used."""

    failures: list[str] = Field(default_factory=list)  # verification failures: exit 1
    crashes: list[str] = Field(default_factory=list)  # runtimes that crashed on an artifact: exit 4
    budget_misses: list[str] = Field(default_factory=list)  # accuracy budgets missed, not accepted: exit 1
    # True for a stage that judges every artifact's budget on every runtime (verify): when one ran, its
    # budget misses replace the earlier, provisional ones (quantize's)
    budget_final: bool = False


class StageRecord(BaseModel):
    name: str
    key: str
    status: str  # done, failed, skipped
    started: str
    duration_s: float
    inputs: dict[str, str] = Field(default_factory=dict)  # upstream artifact name -> sha256
    outputs: list[ArtifactRecord] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)  # the stage's result (infercc.stages.results)
    verdict: Verdict = Field(default_factory=Verdict)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    # which config last ran or confirmed this stage (config_stamp); None in manifests from before it existed
    config_sha256: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _verdict_of_older_manifests(cls, data: Any) -> Any:
        """Manifests written before `verdict` existed kept its lists among the metrics."""
        if isinstance(data, dict) and "verdict" not in data and isinstance(data.get("metrics"), dict):
            lists = {k: data["metrics"][k] for k in Verdict.model_fields if k in data["metrics"]}
            data = {**data, "verdict": {**lists, "budget_final": data.get("name") == "verify"}}
        return data


class CacheSummary(BaseModel):
    """What the shared cache (--cache URL) did in the last run: stage names per outcome."""

    url: str
    hits: list[str] = Field(default_factory=list)  # restored from the cache instead of run
    misses: list[str] = Field(default_factory=list)  # looked up and not usable (absent, refused, unreachable)
    refused: list[str] = Field(default_factory=list)  # an entry failed its sha256 check and was rebuilt
    stored: list[str] = Field(default_factory=list)  # uploaded after running
    errors: list[str] = Field(default_factory=list)  # the cache could not be read or written

    def counts(self) -> dict[str, int]:
        return {"hits": len(self.hits), "misses": len(self.misses), "refused": len(self.refused)}


class Manifest(BaseModel):
    schema_: str = Field(SCHEMA, alias="schema")
    infercc_version: str = __version__
    created: str = Field(default_factory=lambda: now_iso())
    updated: str = Field(default_factory=lambda: now_iso())
    config: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str | None] = Field(default_factory=dict)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    cache: CacheSummary | None = None  # the last run's use of --cache (None: no cache)
    config_sha256: str | None = None  # config_stamp of the latest run's config

    model_config = {"populate_by_name": True}

    def artifacts(self) -> dict[str, ArtifactRecord]:
        found: dict[str, ArtifactRecord] = {}
        for stage in self.stages.values():
            if stage.status == "done":
                for art in stage.outputs:
                    found[art.name] = art
        return found

    def from_other_config(self, stage: StageRecord) -> bool:
        """True when the stage's record was written by a run with another config than the latest one
        (e.g. a --precision int8 run into the demo's folder): its artifacts are not this config's."""
        return (
            None not in (stage.config_sha256, self.config_sha256)
            and stage.config_sha256 != self.config_sha256
        )

    def foreign_artifacts(self) -> list[str]:
        return [
            art.name
            for stage in self.stages.values()
            if stage.status == "done" and self.from_other_config(stage)
            for art in stage.outputs
            if art.kind in ("onnx", "engine")
        ]

    def save(self, folder: Path) -> None:
        self.updated = now_iso()
        atomic_write_json(folder / MANIFEST_NAME, self.model_dump(mode="json", by_alias=True))


def config_stamp(config_dump: dict[str, Any]) -> str:
    """sha256 of a config, leaving out where and how the run was made (out folder, lock)."""
    return sha256_json({k: v for k, v in config_dump.items() if k not in ("out", "lock", "lock_wait_s")})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_manifest(folder: Path) -> tuple[Manifest | None, str | None]:
    """Read the manifest; a damaged one is reported (second value) and treated as absent."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None, None
    try:
        return Manifest.model_validate(json.loads(path.read_text())), None
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).splitlines()[0][:200]
        return None, f"{path} is damaged ({reason}); every stage will run again."


def verify_outputs(folder: Path, record: StageRecord) -> str | None:
    """None if every output of a stage is present with its recorded hash, else why not."""
    for art in record.outputs:
        for item in [art, *art.companions]:
            problem = _file_problem(folder, item.path, item.size, item.sha256)
            if problem is not None:
                return problem
    return None


def _file_problem(folder: Path, relative: str, size: int, sha256: str) -> str | None:
    path = folder / relative
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        return f"{relative} is outside the output folder (edited manifest?)"
    if not path.is_file():
        return f"{relative} is missing"
    if path.stat().st_size != size:
        return f"{relative} changed size ({path.stat().st_size} bytes, recorded {size})"
    if sha256_file(path) != sha256:
        return f"{relative} does not match its recorded sha256"
    return None
