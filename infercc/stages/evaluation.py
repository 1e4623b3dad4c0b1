"""What the precision stages (FP16, BF16, INT8, calibration) share within one run: the calibration and
evaluation datasets, the FP32 graph's outputs on the evaluation data, warnings shown once, and size figures.
Computed once per run and kept in the run's typed state (RunContext.state)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import RunContext

if TYPE_CHECKING:
    from infercc.data.sources import Dataset
    from infercc.quantization.accuracy import Outputs


def datasets(ctx: RunContext) -> tuple[Dataset, Dataset]:
    """(calibration, evaluation) datasets, resolved once per run."""
    if ctx.state.datasets is None:
        from infercc.data.sequences import bind_teacher, for_model
        from infercc.data.sources import ModelInputs, effective_sources, resolve_datasets
        from infercc.stages.simplify import FP32_FILE

        inputs = ModelInputs(list(ctx.input_names), dict(ctx.shape_ranges), dict(ctx.inputs))
        calibration, evaluation = effective_sources(ctx.config)
        found = resolve_datasets(calibration, evaluation, inputs, seed=ctx.config.verify.seed)
        # a stateful model's data are sequences, their single steps carrying the FP32 graph's state
        ctx.state.datasets = for_model(ctx.inputs, ctx.input_names, found, (calibration, evaluation))
        bind_teacher(ctx.state.datasets, ctx.path(FP32_FILE), ctx.config.bench.threads)
    return ctx.state.datasets


def fp32_outputs(ctx: RunContext, fp32: ArtifactRecord) -> Outputs:
    """The FP32 graph's outputs on the evaluation data (the reference every precision is measured against)."""
    if fp32.sha256 not in ctx.state.fp32_outputs:
        from infercc.quantization.accuracy import run_model
        from infercc.stages.export import require_finite_reference

        outputs = run_model(ctx.path(fp32.path), datasets(ctx)[1], threads=ctx.config.bench.threads)
        require_finite_reference(outputs.values, "the evaluation data", "FP32 graph")
        ctx.state.fp32_outputs[fp32.sha256] = outputs
    return ctx.state.fp32_outputs[fp32.sha256]


def warn_once(ctx: RunContext, messages: list[str]) -> None:
    for message in messages:
        if message not in ctx.state.warned:
            ctx.state.warned.add(message)
            ctx.events.warn(message)


def size_figures(path: Path, fp32: ArtifactRecord) -> dict[str, Any]:
    size = path.stat().st_size
    return {
        "size_bytes": size,
        "fp32_size_bytes": fp32.size,
        "size_ratio": round(size / fp32.size, 4) if fp32.size else None,
    }


def fig(figures: dict[str, Any]) -> str:
    """The short, precise accuracy figures ('top-1 97.02%, cos 0.99755')."""
    from infercc.quantization.accuracy import brief

    return brief(figures, precise=True)
