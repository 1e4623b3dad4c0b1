"""Graph-optimization stage for ONNX Runtime: fp32 -> model.fp32.ort.onnx with attention, SkipLayerNorm,
Gelu and rotary patterns fused into com.microsoft ops; fusion counts per op type; parity as simplify checks it.

Only for the onnxruntime target: TensorRT cannot read com.microsoft ops, so its graphs come from model.fp32.onnx."""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from infercc.config import CompileConfig, Target
from infercc.errors import StageError, VerificationFailed
from infercc.fsutil import atomic_bundle, atomic_path
from infercc.onnxutil import check_onnx, load_onnx, save_onnx
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, StageOutput
from infercc.runtimes.base import ORT_ONLY
from infercc.stages.results import OptimizeResult

ORT_FILE = "model.fp32.ort.onnx"
ATTENTION = ("Attention", "MultiHeadAttention", "GroupQueryAttention")


def enabled(config: CompileConfig) -> bool:
    return config.optimize.enabled and Target.onnxruntime in config.targets and bool(config.optimize.fusers)


class OptimizeStage:
    name = "optimize-ort"
    version: ClassVar[str] = "3"  # 2: packed-QKV attention fusion; 3: fused graph judged under a temp name
    portable: ClassVar[bool] = True  # its outputs do not depend on this machine
    description = "Fuse the graph for ONNX Runtime"
    needs: tuple[str, ...] = ("fp32", "reference")

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "fusers": [f.value for f in ctx.config.optimize.fusers],
            "atol": ctx.config.export.atol,
            "rtol": ctx.config.export.rtol,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxscript", "onnx_ir", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.graphopt import fuse
        from infercc.stages.simplify import parity

        source = ctx.path(inputs["fp32"].path)
        final = ctx.path(ORT_FILE)
        ctx.progress(self.name, 0, None, "fusing")
        fused, report = fuse(load_onnx(source), list(ctx.config.optimize.fusers))
        notes = [f"{fuser} did nothing: {why}" for fuser, why in report.errors.items()]
        try:
            with atomic_bundle(final) as candidate:  # judged under a temp name; only an accepted graph lands
                save_onnx(fused, candidate)
                check_onnx(candidate)
                figures = parity(ctx, inputs, candidate)
        except (VerificationFailed, StageError) as exc:
            notes.append(f"the fused graph was rejected ({exc.message[:300]}); kept the unfused graph")
            with atomic_path(final) as tmp:
                shutil.copyfile(source, tmp)
            report.fused_ops, figures = {}, parity(ctx, inputs, final)
        notes += _left_alone(report)
        fused_total = sum(report.fused_ops.values())
        brief = (
            ", ".join(f"{n} {op}" for op, n in sorted(report.fused_ops.items()))
            if fused_total
            else "nothing fused"
        )
        return StageOutput(
            artifacts=[
                NewArtifact(
                    "fp32-ort",
                    ORT_FILE,
                    "onnx",
                    precision=None,
                    target=Target.onnxruntime.value,
                    meta={
                        # only ONNX Runtime reads com.microsoft ops; an unfused graph runs anywhere
                        "runtimes": list(ORT_ONLY) if _has_contrib_ops(final) else None,
                        "fused_ops": report.fused_ops,
                        "nodes": len(load_onnx(final, with_data=False).graph.node),
                    },
                )
            ],
            result=OptimizeResult(**report.to_dict(), parity=figures, brief=brief),
            notes=notes,
        )


def _has_contrib_ops(path: Any) -> bool:
    return any(n.domain == "com.microsoft" for n in load_onnx(path, with_data=False).graph.node)


def _left_alone(report: Any) -> list[str]:
    """Patterns the fusers did not match, said plainly (an unfused pattern is not an error)."""
    notes = []
    softmax = report.left.get("Softmax", 0)
    if softmax and not any(report.fused_ops.get(op) for op in ATTENTION):
        notes.append(f"attention not fused: {softmax} Softmax left as MatMul/Softmax chains")
    erf = report.left.get("Erf", 0)
    if erf:
        notes.append(f"{erf} Erf left unfused (Gelu pattern not matched)")
    return notes
