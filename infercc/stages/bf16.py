"""BF16 stage: fp32 -> model.bf16.onnx, the FP32 graph marked to run at BF16 inference precision on OpenVINO.

There is no BF16 ONNX graph to write: OpenVINO's CPU plugin computes in BF16 when asked through its inference
precision hint (AMX or AVX512-BF16 underneath), with FP32 weights and FP32 inputs and outputs. The artifact is
the FP32 graph with one metadata entry (`infercc.inference_precision: bf16`) that the openvino-cpu runtime reads;
its kind `onnx-bf16` keeps runtimes that would ignore the entry (ONNX Runtime) from timing it as if it were BF16.

Like FP16, the artifact is measured against the FP32 graph on the evaluation data and fails loudly when an output
goes NaN/Inf. On a CPU without BF16, or without OpenVINO, the stage is skipped with the reason (`stages_for`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from infercc.config import CompileConfig, Precision
from infercc.errors import StageError
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, SkippedStage, Stage, StageOutput
from infercc.stages.evaluation import datasets, fig, fp32_outputs, size_figures, warn_once
from infercc.stages.results import Bf16Result

BF16_FILE = "model.bf16.onnx"
BF16_KIND = "onnx-bf16"
RUNTIME = "openvino-cpu"


def bf16_stages(config: CompileConfig) -> tuple[list[Stage], list[str]]:
    """The BF16 stage, or a skipped one saying why this machine cannot make a BF16 artifact."""
    if Precision.bf16 not in config.precisions:
        return [], []
    from infercc.openvino.capability import bf16_support
    from infercc.runtimes.base import probe

    _, missing = probe(RUNTIME)
    if missing:
        return [SkippedBf16(f"bf16 needs OpenVINO: {missing}")], []
    support = bf16_support()
    if not support.available:
        return [SkippedBf16(f"bf16 skipped: {support.reason}")], []
    return [Bf16Stage()], ["bf16"]


class SkippedBf16(SkippedStage):
    """BF16 on a machine that cannot compute in it: reported as skipped, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__("quantize-bf16", "Mark for BF16 inference (OpenVINO)", reason)


def write_bf16(fp32: Any, out: Any) -> dict[str, Any]:
    """The FP32 graph with the BF16 inference-precision entry in its metadata, written atomically."""
    import onnx

    from infercc.onnxutil import save_onnx
    from infercc.openvino.runtime import INFERENCE_PRECISION_KEY

    model = onnx.load(str(fp32))
    kept = [p for p in model.metadata_props if p.key != INFERENCE_PRECISION_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=INFERENCE_PRECISION_KEY, value="bf16")
    save_onnx(model, out)
    return {"nodes": len(model.graph.node)}


class Bf16Stage:
    name = "quantize-bf16"
    version: ClassVar[str] = "1"
    description = "Mark for BF16 inference (OpenVINO)"
    needs: tuple[str, ...] = ("fp32",)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "runtime": RUNTIME,
            "evaluation": datasets(ctx)[1].fingerprint,
            "threads": ctx.config.bench.threads,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxruntime", "openvino")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.openvino.capability import bf16_support
        from infercc.quantization.accuracy import accuracy, brief, run_model

        out = ctx.path(BF16_FILE)
        evaluate = datasets(ctx)[1]
        warn_once(ctx, evaluate.warnings)
        ctx.progress(self.name, 0, None, "writing")
        info = write_bf16(ctx.path(inputs["fp32"].path), out)
        ctx.progress(self.name, 1, None, f"measuring on {RUNTIME}")
        outputs = run_model(out, evaluate, threads=ctx.config.bench.threads, runtime=RUNTIME)
        figures = accuracy(outputs, fp32_outputs(ctx, inputs["fp32"]))
        if figures["non_finite"]:
            out.unlink(missing_ok=True)
            raise StageError(
                f"The BF16 run on {RUNTIME} produces {figures['non_finite']} NaN/Inf output values that FP32 "
                "does not.",
                hint="Drop bf16 from the precisions for this model (BF16 has FP32's range, so this is rare: "
                "check the evaluation data).",
            )
        support = bf16_support()
        result = Bf16Result(
            accuracy=figures,
            evaluation=evaluate.description,
            runtime=RUNTIME,
            cpu=support.reason,
            **info,
            **size_figures(out, inputs["fp32"]),
            brief=f"{brief(figures)} on {RUNTIME} ({support.reason})",
        )
        artifact = NewArtifact(
            "bf16",
            BF16_FILE,
            BF16_KIND,
            precision=Precision.bf16,
            target="openvino",
            meta={"nodes": info["nodes"], "accuracy": fig(figures), "runtime": RUNTIME},
        )
        return StageOutput(artifacts=[artifact], result=result)
