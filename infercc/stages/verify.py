"""Verify stage: every ONNX artifact on every available runtime against the reference, per output."""

from __future__ import annotations

from typing import Any, ClassVar

from infercc.config import Precision, Reference, Tolerance
from infercc.errors import InferccError, MissingRuntimeError
from infercc.metrics import compare
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import RunContext, StageOutput
from infercc.runtimes.base import get_runtime, runtime_class

DEFAULT_RUNTIMES = ("onnxruntime-cpu", "onnxruntime-cuda")


def artifact_precision(art: ArtifactRecord) -> Precision:
    return Precision(art.precision) if art.precision else Precision.fp32


def tolerance_for(ctx: RunContext, art: ArtifactRecord, output: str) -> Tolerance:
    cfg = ctx.config.verify
    return cfg.outputs.get(output) or cfg.tolerances.get(artifact_precision(art)) or Tolerance()


class VerifyStage:
    name = "verify"
    version: ClassVar[str] = "1"
    description = "Verify artifacts against the reference"

    def __init__(self, artifact_names: tuple[str, ...]) -> None:
        self.artifact_names = artifact_names
        self.needs: tuple[str, ...] = ("reference", *artifact_names)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {"verify": ctx.config.verify.model_dump(mode="json"), "runtimes": self._runtimes(ctx)}

    def tools(self) -> tuple[str, ...]:
        return ("onnxruntime", "onnxruntime-gpu", "numpy")

    def _runtimes(self, ctx: RunContext) -> list[str]:
        wanted = ctx.config.verify.runtimes or list(DEFAULT_RUNTIMES)
        return [name for name in wanted if "onnx" in runtime_class(name).artifact_kinds]

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.stages.export import load_reference

        reference = load_reference(ctx.path(inputs["reference"].path))
        if ctx.config.verify.reference is Reference.onnx and "onnx" in inputs:
            reference = _onnx_reference(ctx, inputs["onnx"], reference)
        results: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        explicit = bool(ctx.config.verify.runtimes)
        for runtime_name in self._runtimes(ctx):
            status = runtime_class(runtime_name).status()
            if not status.available:
                if explicit:
                    raise MissingRuntimeError(f"Runtime {runtime_name} is not available: {status.reason}")
                skipped.append({"runtime": runtime_name, "reason": status.reason})
                continue
            for name in self.artifact_names:
                art = inputs[name]
                ctx.progress(self.name, len(results), None, f"{name} on {runtime_name}")
                results.append(_verify_one(ctx, art, runtime_name, reference))
        failures = [f for r in results for f in r["failures"]]
        return StageOutput(
            metrics={"passed": not failures, "results": results, "skipped_runtimes": skipped, "failures": failures,
                     "reference": ctx.config.verify.reference.value},
            notes=[f"skipped {s['runtime']}: {s['reason']}" for s in skipped],
        )


def _onnx_reference(ctx: RunContext, art: ArtifactRecord, reference: dict[str, Any]) -> dict[str, Any]:
    with get_runtime("onnxruntime-cpu", ctx.path(art.path)) as runtime:
        return {label: (feeds, runtime.infer(feeds)) for label, (feeds, _) in reference.items()}


def _verify_one(ctx: RunContext, art: ArtifactRecord, runtime_name: str, reference: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"artifact": art.name, "path": art.path, "precision": artifact_precision(art).value,
                             "runtime": runtime_name, "points": {}, "failures": []}
    try:
        with get_runtime(runtime_name, ctx.path(art.path), threads=ctx.config.bench.threads) as runtime:
            for label, (feeds, expected) in reference.items():
                outputs = runtime.infer(feeds)
                point: dict[str, Any] = {}
                for out_name, ref in expected.items():
                    tol = tolerance_for(ctx, art, out_name)
                    metrics = compare(outputs[out_name], ref, tol)
                    point[out_name] = metrics.to_dict()
                    entry["failures"] += [
                        f"{art.name} on {runtime_name}, output {out_name} at the {label} shapes: {failure}"
                        for failure in metrics.failures
                    ]
                entry["points"][label] = point
    except InferccError as exc:
        entry["failures"].append(f"{art.name} on {runtime_name}: {exc.message}")
    return entry
