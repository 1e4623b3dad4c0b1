"""Runs a list of stages like a build system: a stage whose key is unchanged and whose outputs are
intact is skipped; anything else re-runs, and so does everything downstream whose inputs changed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infercc.errors import InferccError, StageError
from infercc.fsutil import check_still_locked, remove_stale_temporaries, sha256_file, sha256_json
from infercc.lazy import version_of
from infercc.pipeline import loadcheck
from infercc.pipeline.manifest import (
    ArtifactRecord,
    CompanionFile,
    Manifest,
    StageRecord,
    Verdict,
    companion_paths,
    config_stamp,
    load_manifest,
    now_iso,
    verify_outputs,
)
from infercc.pipeline.stage import RunContext, Stage, StageOutput, stage_deps

if TYPE_CHECKING:
    from infercc.pipeline.cache import ArtifactCache

CORE_TOOLS = ("torch", "onnx", "onnxruntime", "onnxslim", "numpy")


@dataclass
class RunResult:
    manifest: Manifest
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # taken from the shared cache (--cache)
    errors: list[InferccError] = field(default_factory=list)  # stages that failed alone; the run went on

    @property
    def records(self) -> list[StageRecord]:
        return list(self.manifest.stages.values())

    @property
    def failures(self) -> list[str]:
        """Verification failures of the stages this run used (ran or found up to date): a non-empty list
        means exit 1. Records of stages outside this run (another goal's) do not count."""
        return [f for v in self._verdicts() for f in v.failures]

    @property
    def crashes(self) -> list[str]:
        """Runtimes that crashed (SIGSEGV, abort, OOM kill) on an artifact in a stage of this run: exit 4."""
        return [c for v in self._verdicts() for c in v.crashes]

    @property
    def budget_misses(self) -> list[str]:
        """Artifacts that miss their accuracy budget (infercc.budget), not accepted: exit 1. Verify judges every
        runtime; without verify in this run, quantize's own verdict counts."""
        verdicts = self._verdicts()
        final = [v for v in verdicts if v.budget_final]
        return [m for v in final or verdicts for m in v.budget_misses]

    def _verdicts(self) -> list[Verdict]:
        used = set(self.ran) | set(self.cached) | set(self.restored)
        return [s.verdict for s in self.manifest.stages.values() if s.name in used]


def stage_key(stage: Stage, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> str:
    """Full sha256 over the stage's identity, settings, input artifacts and tool versions."""
    material: dict[str, Any] = {
        "stage": stage.name,
        "version": stage.version,
        "settings": stage.settings(ctx),
        "inputs": {name: art.sha256 for name, art in sorted(inputs.items())},
        "tools": {tool: version_of(tool) for tool in stage.tools()},
    }
    if not stage.needs:  # a root stage depends on the model source itself
        material["source"] = ctx.source_hash
    deps = stage_deps(stage, ctx)
    if deps:
        material["deps"] = [content_digest(path) for path in deps]  # by content only: keys stay portable
    return sha256_json(material)


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, recursively); 'missing' when
    there is nothing there (the stage itself then says what is wrong)."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return sha256_json({str(p.relative_to(path)): sha256_file(p) for p in files})
    return "missing"


def tool_versions() -> dict[str, str | None]:
    return {tool: version_of(tool) for tool in CORE_TOOLS}


def run_stages(
    ctx: RunContext, stages: list[Stage], config_dump: dict[str, Any], cache: ArtifactCache | None = None
) -> RunResult:
    out = ctx.out
    for stale in remove_stale_temporaries(out):
        ctx.events.info(f"removed an unfinished file from an interrupted run: {stale.name}")
    manifest, damage = load_manifest(out)
    if damage:
        ctx.events.warn(damage)
    if manifest is None:
        manifest = Manifest()
    manifest.config = config_dump
    manifest.config_sha256 = config_stamp(config_dump)
    manifest.source = {"spec": ctx.source.spec, "kind": ctx.source.kind.value, "sha256": ctx.source_hash}
    manifest.versions = tool_versions()
    manifest.cache = cache.summary if cache is not None else None
    result = RunResult(manifest)
    available: dict[str, ArtifactRecord] = {}

    for stage in stages:
        missing = [n for n in stage.needs if n not in available]
        if missing:
            raise StageError(
                f"Stage {stage.name} needs {', '.join(missing)}, which no earlier stage produced."
            )
        inputs = {n: available[n] for n in (*stage.needs, *getattr(stage, "wants", ())) if n in available}
        key = stage_key(stage, ctx, inputs)
        previous = manifest.stages.get(stage.name)
        if previous is not None and previous.key == key and previous.status == "done" and not ctx.force:
            problem = verify_outputs(out, previous)
            if problem is None:
                previous.config_sha256 = manifest.config_sha256  # still what this config produces
                available.update({a.name: a for a in previous.outputs})
                result.cached.append(stage.name)
                ctx.events.stage_finished(previous, cached=True)
                continue
            ctx.events.warn(f"{stage.name}: {problem}; running the stage again.")
        if cache is not None and not ctx.force:
            record = _restore(cache, stage, ctx, key, manifest)
            if record is not None:
                available.update({a.name: a for a in record.outputs})
                result.restored.append(stage.name)
                continue
        record, error = _run_one(stage, ctx, inputs, key, manifest)
        if error is not None:
            result.errors.append(error)
        if cache is not None and error is None:
            cache.store(stage, key, record, out)
            _report_cache_warnings(cache, ctx)
        if record.status == "skipped":
            result.skipped.append(stage.name)
        else:
            result.ran.append(stage.name)
        available.update({a.name: a for a in record.outputs})
    manifest.save(out)
    return result


def _restore(
    cache: ArtifactCache, stage: Stage, ctx: RunContext, key: str, manifest: Manifest
) -> StageRecord | None:
    record = cache.restore(stage, key, ctx.out)
    _report_cache_warnings(cache, ctx)
    if record is not None:
        record.config_sha256 = manifest.config_sha256  # what this config produces, wherever it was built
        manifest.stages[stage.name] = record
        manifest.save(ctx.out)
        ctx.events.stage_restored(record)
    return record


def _report_cache_warnings(cache: ArtifactCache, ctx: RunContext) -> None:
    while cache.warnings:
        ctx.events.warn(cache.warnings.pop(0))


def _run_one(
    stage: Stage, ctx: RunContext, inputs: dict[str, ArtifactRecord], key: str, manifest: Manifest
) -> tuple[StageRecord, InferccError | None]:
    ctx.events.stage_started(stage.name, stage.description)
    started, clock = now_iso(), time.perf_counter()
    try:
        output = stage.run(ctx, inputs)
        if output.error is None and not output.skipped:
            output = loadcheck.gate(ctx, output)  # every written artifact loads on its target runtimes
    except InferccError as exc:
        # a stage that found its input gone because the whole folder was deleted says that, not "file missing"
        check_still_locked(ctx.out)
        record = StageRecord(
            name=stage.name,
            key=key,
            status="failed",
            started=started,
            duration_s=round(time.perf_counter() - clock, 3),
            inputs={n: a.sha256 for n, a in inputs.items()},
            error=exc.message,
            config_sha256=manifest.config_sha256,
        )
        manifest.stages[stage.name] = record
        manifest.save(ctx.out)
        ctx.events.stage_finished(record, cached=False)
        raise
    failed = output.error
    record = StageRecord(
        name=stage.name,
        key=key,
        status="failed" if failed else "skipped" if output.skipped else "done",
        started=started,
        duration_s=round(time.perf_counter() - clock, 3),
        inputs={n: a.sha256 for n, a in inputs.items()},
        outputs=[] if failed else [_record(ctx.out, art) for art in output.artifacts],
        metrics=output.result.dump() if output.result is not None else {},
        verdict=output.result.verdict() if output.result is not None else Verdict(),
        notes=output.notes + ([output.skipped] if output.skipped else []),
        config_sha256=manifest.config_sha256,
        error=failed.message if failed else None,
    )
    manifest.stages[stage.name] = record
    manifest.save(ctx.out)
    ctx.events.stage_finished(record, cached=False)
    return record, failed


def _record(out: Path, art: Any) -> ArtifactRecord:
    path = out / art.filename
    if not path.is_file():
        raise StageError(f"Stage output {art.filename} was not written.")
    return ArtifactRecord(
        name=art.name,
        path=art.filename,
        kind=art.kind,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        precision=art.precision.value if art.precision is not None else None,
        target=art.target,
        meta=art.meta,
        companions=[
            CompanionFile(path=c, sha256=sha256_file(out / c), size=(out / c).stat().st_size)
            for c in companion_paths(art.filename)
            if (out / c).is_file()
        ],
    )


__all__ = ["RunResult", "StageOutput", "run_stages", "stage_key"]
