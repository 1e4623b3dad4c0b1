"""Simplify stage: onnxslim (default) or onnxsim, node counts before/after, parity after."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any, ClassVar

from infercc.config import Simplifier, Tolerance
from infercc.errors import InferccError, StageError, VerificationFailed
from infercc.fsutil import atomic_path
from infercc.lazy import require
from infercc.metrics import compare
from infercc.onnxutil import TWO_GB, check_onnx, external_data_files, load_onnx, op_counts, save_onnx
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, StageOutput
from infercc.stages.results import SimplifyResult

FP32_FILE = "model.fp32.onnx"
SIMPLIFIER_LIMIT_BYTES = TWO_GB  # one protobuf; see SimplifyStage.run


class SimplifyStage:
    name = "simplify"
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts
    description = "Simplify the graph"
    needs: tuple[str, ...] = ("onnx", "reference")

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "tool": ctx.config.simplify.tool.value,
            "atol": ctx.config.export.atol,
            "rtol": ctx.config.export.rtol,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxslim", "onnxsim", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        source = ctx.path(inputs["onnx"].path)
        model = load_onnx(source)
        before = op_counts(model)
        tool, note = ctx.config.simplify.tool, ""
        if tool is not Simplifier.none and model_bytes(source) > SIMPLIFIER_LIMIT_BYTES:
            # both simplifiers serialize the whole model into one protobuf, which cannot exceed 2 GiB: onnxslim
            # failed after minutes (EncodeError) on a 2.27 GiB decoder; say so instead and keep the export's graph
            note = f"{tool.value} skipped: the model is over 2 GiB, which it cannot serialize; graph kept as exported"
            tool = Simplifier.none
        final = ctx.path(FP32_FILE)
        if tool is Simplifier.none and not external_data_files(load_onnx(source, with_data=False)):
            with atomic_path(final) as tmp:
                shutil.copyfile(source, tmp)
            simplified = model
        else:  # a plain copy would point at the export's own model.onnx.data: each artifact owns its data
            simplified = model if tool is Simplifier.none else _simplify(model, tool)
            save_onnx(simplified, final, ctx.config.export.external_data_threshold_mb * 2**20)
        after = op_counts(simplified)
        try:
            check_onnx(final)
            figures = parity(ctx, inputs, final)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return StageOutput(
            artifacts=[
                NewArtifact("fp32", FP32_FILE, "onnx", precision=None, meta={"simplifier": tool.value})
            ],
            result=SimplifyResult(
                brief=note or f"{tool.value}: {sum(before.values())} -> {sum(after.values())} nodes",
                tool=tool.value,
                nodes_before=sum(before.values()),
                nodes_after=sum(after.values()),
                op_counts_before=before,
                op_counts_after=after,
                parity=figures,
            ),
        )


def model_bytes(path: Path) -> int:
    """The ONNX file plus its external-data files, as stored."""
    header = load_onnx(path, with_data=False)
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in external_data_files(header))


def _simplify(model: Any, tool: Simplifier) -> Any:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if tool is Simplifier.onnxslim:
                onnxslim = require("onnxslim", "graph simplification")
                return onnxslim.slim(model)
            onnxsim = require("onnxsim", "simplify.tool: onnxsim")
            simplified, ok = onnxsim.simplify(model)
            if not ok:
                raise StageError(
                    "onnxsim could not validate the simplified model.", hint="Use simplify.tool: onnxslim."
                )
            return simplified
    except (
        InferccError
    ):  # e.g. MissingRuntimeError for an uninstalled simplifier: exit 3 with its install hint
        raise
    except Exception as exc:
        raise StageError(
            f"{tool.value} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Skip simplification with --simplifier none.",
        ) from exc


def parity(ctx: RunContext, inputs: dict[str, ArtifactRecord], path: Path) -> dict[str, Any]:
    """A rewritten graph (simplified, fused) must still match the reference at every checked shape."""
    from infercc.runtimes.isolation import IsolatedRuntime
    from infercc.stages.export import load_reference

    tolerance = Tolerance(atol=ctx.config.export.atol, rtol=ctx.config.export.rtol)
    reference = load_reference(ctx.path(inputs["reference"].path))
    report: dict[str, Any] = {}
    problems = []
    with IsolatedRuntime("onnxruntime-cpu", path) as runtime:  # a crash fails the stage
        for label, (feeds, expected) in reference.items():
            outputs = runtime.infer(feeds)
            report[label] = {}
            for name, ref in expected.items():
                metrics = compare(outputs[name], ref, tolerance)
                report[label][name] = metrics.to_dict()
                problems += [f"at the {label} shapes, output {name}: {f}" for f in metrics.failures]
    if problems:
        raise VerificationFailed(
            f"{path.name} no longer matches the reference: " + "; ".join(problems),
            hint="Run again with --simplifier none and report the model to the simplifier's authors.",
        )
    return report
