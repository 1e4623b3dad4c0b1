"""Quantize stages: FP16, calibration ranges, and INT8 Q/DQ artifacts for ONNX Runtime and TensorRT.

  quantize-fp16      fp32 -> model.fp16.onnx (NaN/Inf traced to a node, which can be kept in FP32)
  calibrate          fp32 + calibration data -> calibration.json (tensor ranges, reused across forms)
  quantize-int8      fp32 + ranges -> model.int8.onnx (uint8 activations: ONNX Runtime CPU), with the
                     accuracy-aware fallback keeping the most harmful layers in FP32
  quantize-int8-trt  fp32 + ranges -> model.int8.trt.onnx (symmetric int8, float bias: TensorRT)

Each is its own stage so that changing one precision or form does not re-run the others, and the ranges
are computed once per model/data/method.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from infercc.budget import budget_for, miss_message
from infercc.config import CompileConfig, Precision, QuantizeConfig, Target
from infercc.errors import StageError, UsageError
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, Stage, StageOutput
from infercc.quantization.fallback import Int8Form, Int8Job, Outcome
from infercc.stages.evaluation import datasets, fig, fp32_outputs, size_figures, warn_once
from infercc.stages.results import BudgetFigures, CalibrateResult, Fallback, Fp16Result, QuantizeResult

FP16_FILE = "model.fp16.onnx"


def stages_for(config: CompileConfig) -> tuple[list[Stage], list[str]]:
    """Stages to run for the configured precisions, and the ONNX artifact names they produce."""
    stages: list[Stage] = []
    produced: list[str] = []
    if Precision.fp16 in config.precisions:
        from infercc.stages.optimize import enabled

        # the fused graph has com.microsoft ops TensorRT cannot read: FP16 for TensorRT comes from the plain graph
        fused = enabled(config) and Target.tensorrt not in config.targets
        stages.append(Fp16Stage("fp32-ort" if fused else "fp32"))
        produced.append("fp16")
    from infercc.stages.bf16 import bf16_stages

    more, made = bf16_stages(config)
    stages += more
    produced += made
    if Precision.int8 in config.precisions:
        from infercc.data.sources import effective_sources

        if effective_sources(config)[0] is None:
            raise UsageError(
                "INT8 needs calibration data, and none is configured (--calib / calibration:).",
                hint="Pass --calib DIR (.npy/.npz files or images), --calib module:fn, or --calib synthetic "
                "(seeded random values: a last resort that says little about accuracy).",
            )
        stages += [CalibrateStage(), Int8Stage(Int8Form.onnxruntime)]
        produced.append("int8")
        if Target.tensorrt in config.targets:
            stages.append(Int8Stage(Int8Form.tensorrt))
            produced.append("int8-trt")
    return stages, produced


# --- FP16 -----------------------------------------------------------------------------------------


class Fp16Stage:
    name = "quantize-fp16"
    version: ClassVar[str] = "3"  # 3: ReLU6 as HardSigmoid in the graph for ONNX Runtime
    portable: ClassVar[bool] = True  # machine-independent (the load-check runtimes are in its settings)
    description = "Convert to FP16"

    def __init__(self, source: str = "fp32") -> None:
        self.source = source  # "fp32", or "fp32-ort" (the graph fused for ONNX Runtime)
        self.needs: tuple[str, ...] = (source,)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        q = ctx.config.quantize
        return {
            "source": self.source,
            "keep_io": q.fp16_keep_io,
            "block_ops": sorted(q.fp16_block_ops),
            "block_nodes": list(q.fp16_block_nodes),
            "relu6_as_hardsigmoid": self._relu6(ctx),
            "auto_block": q.fp16_auto_block,
            "min_cosine": q.fp16_min_cosine,
            "drift": q.fp16_drift_threshold,
            "load_check": fp16_runtimes(ctx),
            "evaluation": datasets(ctx)[1].fingerprint,
            "output_kinds": ctx.config.model.output_kinds,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxruntime", "onnxruntime-gpu")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.fsutil import atomic_bundle
        from infercc.onnxutil import load_onnx
        from infercc.quantization.accuracy import brief

        q = ctx.config.quantize
        final = ctx.path(FP16_FILE)
        final.unlink(missing_ok=True)  # an earlier run's file must not outlive a failed conversion
        evaluate = datasets(ctx)[1]
        warn_once(ctx, evaluate.warnings)
        model, rewrite_notes = self._rewritten(ctx, load_onnx(ctx.path(inputs[self.source].path)))
        search = _Fp16Search(ctx, model, fp32_outputs(ctx, inputs[self.source]))
        with atomic_bundle(
            final
        ) as candidate:  # large graphs: data beside it, both moved into place at the end
            info, figures = search.run(candidate)
        result = Fp16Result(
            accuracy=figures,
            evaluation=evaluate.description,
            keep_io=q.fp16_keep_io,
            source=self.source,
            converter="onnxruntime.transformers.float16",
            load_checked_on=search.runtimes,
            **info,
            auto_blocked=search.log,
            **size_figures(ctx.path(FP16_FILE), inputs[self.source]),
        )
        result.brief = f"{brief(figures)}, {result.size_ratio:.0%} of FP32 size" + (
            f", {len(search.log)} node(s) kept FP32 by the data"
            if search.log
            else ", every op FP16"
            if not info["kept_fp32_nodes"]
            else ""
        )
        return StageOutput(
            artifacts=[
                NewArtifact(
                    "fp16",
                    FP16_FILE,
                    "onnx",
                    precision=Precision.fp16,
                    target="onnxruntime" if self.source == "fp32-ort" else None,
                    meta={
                        "nodes": info["nodes"],
                        "accuracy": fig(figures),
                        "blocked_nodes": search.block_nodes,
                        "runtimes": inputs[self.source].meta.get("runtimes"),
                    },
                )
            ],
            result=result,
            notes=rewrite_notes + search.notes,
        )

    def _relu6(self, ctx: RunContext) -> bool:
        return ctx.config.quantize.fp16_relu6_as_hardsigmoid and self.source == "fp32-ort"

    def _rewritten(self, ctx: RunContext, model: Any) -> tuple[Any, list[str]]:
        """The graph to convert: for ONNX Runtime, ReLU6 between convolutions as HardSigmoid (infercc.relu6)."""
        if not self._relu6(ctx):
            return model, []
        from infercc.relu6 import relu6_as_hardsigmoid

        model, counts = relu6_as_hardsigmoid(model)
        count = counts["ReluSixAsHardSigmoid"]
        return model, [
            f"{count} ReLU6 between convolutions written as HardSigmoid for ONNX Runtime"
        ] if count else []


def fp16_runtimes(ctx: RunContext) -> list[str]:
    """The runtimes an FP16 graph must load and run on before the stage accepts it: ONNX Runtime CPU always
    (verify and the accuracy figures use it), its CUDA provider where this machine has one."""
    from infercc.runtimes.base import probe

    names = ["onnxruntime-cpu"]
    if Target.onnxruntime in ctx.config.targets and not probe("onnxruntime-cuda")[1]:
        names.append("onnxruntime-cuda")
    return names


class _Fp16Search:
    """Convert, prove the file loads and runs, measure; keep in FP32 the nodes that fail to load or where the
    FP16 error starts, and convert again (at most quantize.fp16_auto_block rounds)."""

    def __init__(self, ctx: RunContext, model: Any, reference: Any) -> None:
        self.ctx, self.model, self.reference = ctx, model, reference
        self.q = ctx.config.quantize
        self.block_nodes = list(self.q.fp16_block_nodes)
        self.runtimes = fp16_runtimes(ctx)
        self.log: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.names = {n.name for n in model.graph.node}

    def run(self, candidate: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from infercc.onnxutil import save_onnx
        from infercc.quantization.accuracy import accuracy, run_model
        from infercc.quantization.fp16 import blocked_summary, convert_model, load_failures

        q = self.q
        evaluate = datasets(self.ctx)[1]
        first_feed = next(iter(evaluate.batches()))
        for attempt in range(q.fp16_auto_block + 1):
            last = attempt == q.fp16_auto_block
            detail = "converting" if not attempt else f"{len(self.block_nodes)} node(s) kept in FP32"
            self.ctx.progress(Fp16Stage.name, attempt, None, detail)
            converted = convert_model(
                self.model, keep_io=q.fp16_keep_io, block_ops=q.fp16_block_ops, block_nodes=self.block_nodes
            )
            save_onnx(converted, candidate, self.ctx.config.export.external_data_threshold_mb * 2**20)
            failures = load_failures(candidate, self.runtimes, first_feed)
            if failures:
                self._unloadable(failures, last)
                continue
            outputs = run_model(candidate, evaluate, threads=self.ctx.config.bench.threads)
            figures = accuracy(outputs, self.reference, self.ctx.config.model.output_kinds)
            if not figures["non_finite"] and (figures.get("cosine") or 0.0) >= q.fp16_min_cosine:
                break
            if not self._drifting(converted, outputs, figures, last):
                break
        return blocked_summary(self.model, converted, q.fp16_block_ops, self.block_nodes), figures

    def _unloadable(self, failures: list[dict[str, Any]], last: bool) -> None:
        from infercc.quantization.fp16 import node_in_error

        text = " ".join(f"{f.get('raw') or ''} {f['error']}" for f in failures)
        node = node_in_error(text, self.names)
        where = "; ".join(f"{f['runtime']}: {f['error'][:300]}" for f in failures)
        if node is None or node in self.block_nodes or last:
            raise StageError(
                f"The FP16 graph does not load/run on {where}"
                + (
                    f" (nodes already kept in FP32: {', '.join(self.block_nodes)})"
                    if self.block_nodes
                    else ""
                ),
                hint="Keep the node it names in FP32 with quantize.fp16_block_nodes, or drop FP16 for this model.",
            )
        op = next(n.op_type for n in self.model.graph.node if n.name == node)
        self.block_nodes.append(node)
        self.log.append({"node": node, "op_type": op, "reason": "load", "error": where[:300]})
        self.notes.append(
            f"FP16 graph failed to load ({where[:200]}); kept {node} ({op}) in FP32 and converted again"
        )
        warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])

    def _drifting(self, converted: Any, outputs: Any, figures: dict[str, Any], last: bool) -> bool:
        """Keep the nodes where the error starts in FP32; False when there is nothing more to try."""
        from infercc.quantization.fp16 import drift_sources

        q = self.q
        drifts: list[Any] = []
        for feed in outputs.batches[:3]:
            drifts = [
                d
                for d in drift_sources(converted, self.model, feed, q.fp16_drift_threshold)
                if d.node not in self.block_nodes
            ]
            if drifts:
                break
        bad = figures["non_finite"]
        where = (
            f"first at node {drifts[0].node} ({drifts[0].op_type}, relative error {drifts[0].error:.3g} "
            f"against FP32, inputs {drifts[0].input_error:.3g})"
            if drifts
            else "no single node could be isolated"
        )
        if not drifts or last:
            if bad:
                raise StageError(
                    f"The FP16 graph produces {bad} NaN/Inf output values that FP32 does not: {where}.",
                    hint=f"Keep it in FP32: add {drifts[0].node if drifts else 'the node'} to quantize.fp16_block_nodes "
                    f"(or its op to quantize.fp16_block_ops), or allow more quantize.fp16_auto_block rounds.",
                )
            self.notes.append(
                f"FP16 cosine {figures.get('cosine')} is below quantize.fp16_min_cosine {q.fp16_min_cosine}: {where}; "
                "the graph is kept and verify judges it against its tolerance"
            )
            warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])
            return False
        picked = drifts[:4]
        for d in picked:
            self.block_nodes.append(d.node)
            self.log.append({**d.to_dict(), "reason": "non-finite" if bad else "drift", "culprit": d.node})
        reason = f"{bad} NaN/Inf output values" if bad else f"cosine {figures.get('cosine')}"
        self.notes.append(
            f"FP16 {reason} {where}; kept {', '.join(f'{d.node} ({d.op_type})' for d in picked)} in FP32 and converted again"
        )
        warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])
        return True


# --- calibration ----------------------------------------------------------------------------------


class CalibrateStage:
    name = "calibrate"
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts
    description = "Calibrate INT8 ranges"
    needs: tuple[str, ...] = ("fp32",)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        q = ctx.config.quantize
        return {
            "method": q.method.value,
            "percentile": q.percentile if q.method.value == "percentile" else None,
            "data": datasets(ctx)[0].fingerprint,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.quantization.calibrate import (
            CALIBRATION_FILE,
            cache_identity,
            compute_ranges,
            read_identity,
            save_cache,
        )

        q = ctx.config.quantize
        calib = datasets(ctx)[0]
        warn_once(ctx, calib.warnings)
        identity = cache_identity(inputs["fp32"].sha256, calib.fingerprint, q.method, q.percentile)
        path = ctx.path(CALIBRATION_FILE)
        existing = read_identity(path) if path.is_file() else None
        notes = list(calib.warnings)
        started = time.perf_counter()
        if existing is not None and existing.get("key") == identity["key"] and not ctx.force:
            samples, tensors = existing.get("samples"), existing.get("tensors")
            notes.append("reused the cached ranges in calibration.json (same model, data and method)")
            reused = True
        else:
            if existing is not None:
                changed = [
                    k
                    for k in ("model_sha256", "data", "method", "percentile")
                    if existing.get(k) != identity.get(k)
                ]
                notes.append(f"recomputed the ranges: {', '.join(changed) or 'cache'} changed")
            ranges, batches = compute_ranges(
                ctx.path(inputs["fp32"].path),
                calib.batches(),
                q.method,
                q.percentile,
                progress=lambda n: ctx.progress(self.name, n, len(calib), "calibration batches"),
            )
            samples, tensors = calib.samples, len(ranges.data)
            save_cache(
                path,
                ranges,
                identity,
                {"samples": samples, "batches": batches, "tensors": tensors, "source": calib.description},
            )
            reused = False
        result = CalibrateResult(
            method=q.method.value,
            percentile=q.percentile if q.method.value == "percentile" else None,
            source=calib.description,
            kind=calib.kind,
            samples=samples,
            tensors=tensors,
            reused_cache=reused,
            calibration_s=round(time.perf_counter() - started, 3),
            brief=f"{q.method.value} over {samples} samples ({calib.kind}), {tensors} tensors"
            + (", reused cache" if reused else ""),
        )
        return StageOutput(
            artifacts=[
                NewArtifact(
                    "calibration",
                    CALIBRATION_FILE,
                    "calibration",
                    precision=Precision.int8,
                    meta={"method": q.method.value, "tensors": tensors, "samples": samples},
                )
            ],
            result=result,
            notes=notes,
        )


# --- INT8 -----------------------------------------------------------------------------------------


class Int8Stage:
    version: ClassVar[str] = "3"
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts

    def __init__(self, form: Int8Form) -> None:
        self.form = form
        self.artifact = form.artifact
        self.filename = form.filename
        self.name = "quantize-int8" if form is Int8Form.onnxruntime else "quantize-int8-trt"
        self.description = f"Quantize to INT8 ({form.value} Q/DQ form)"
        self.needs: tuple[str, ...] = ("fp32", "calibration") + (
            ("int8",) if form is Int8Form.tensorrt else ()
        )

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        q = ctx.config.quantize
        calib, evaluate = datasets(ctx)
        return {
            "form": self.form.value,
            "quantize": q.model_dump(
                mode="json", exclude={k for k in QuantizeConfig.model_fields if k.startswith("fp16_")}
            ),
            "calibration": calib.fingerprint,
            "evaluation": evaluate.fingerprint,
            "output_kinds": ctx.config.model.output_kinds,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        """Every candidate of the fallback search is written under an infercc temporary name; only the
        chosen one is renamed to the artifact's name, so a run killed mid-search leaves no half-made
        model.int8.onnx (and the next run removes the temporary)."""
        from infercc.fsutil import atomic_path
        from infercc.quantization.fallback import FallbackSearch

        with atomic_path(ctx.path(self.filename)) as candidate:
            outcome = FallbackSearch(self._job(ctx, inputs, candidate)).run()
            trace = None
            if outcome.figures["non_finite"]:
                from infercc.quantization.probe import first_non_finite

                fp32 = ctx.path(inputs["fp32"].path)
                trace = first_non_finite(
                    candidate, fp32, outcome.outputs.batches, threads=ctx.config.bench.threads
                )
            sizes = size_figures(candidate, inputs["fp32"])
        result = self._result(ctx, outcome, trace, sizes)
        meta = {
            "nodes": outcome.info["nodes"],
            "accuracy": fig(outcome.figures),
            "fallback_nodes": outcome.kept,
            "activations": self.form.activations,
        }
        artifact = NewArtifact(self.artifact, self.filename, "onnx", Precision.int8, self.form.value, meta)
        return StageOutput(artifacts=[artifact], result=result, notes=outcome.notes)

    def _job(self, ctx: RunContext, inputs: dict[str, ArtifactRecord], out: Path) -> Int8Job:
        calib, evaluate = datasets(ctx)
        warn_once(ctx, evaluate.warnings)
        return Int8Job(
            fp32=ctx.path(inputs["fp32"].path),
            ranges=ctx.path(inputs["calibration"].path),
            out=out,
            form=self.form,
            settings=ctx.config.quantize,
            calibration=calib,
            evaluation=evaluate,
            reference=fp32_outputs(ctx, inputs["fp32"]),
            budget=budget_for(ctx.config, Precision.int8),
            output_kinds=ctx.config.model.output_kinds,
            threads=ctx.config.bench.threads,
            inherited=list(inputs["int8"].meta.get("fallback_nodes", [])) if "int8" in inputs else [],
            progress=lambda done, total, detail: ctx.progress(self.name, done, total, detail),
        )

    def _result(
        self, ctx: RunContext, outcome: Outcome, trace: dict[str, Any] | None, sizes: dict[str, Any]
    ) -> QuantizeResult:
        """The figures, and the budget's verdict: a miss is a failed verdict unless accepted, and the TensorRT
        form's figures (ONNX Runtime CPU only approximates TensorRT) are judged by verify on tensorrt."""
        from infercc.quantization.accuracy import brief

        q = ctx.config.quantize
        accepted = bool(outcome.misses) and q.accept_budget_miss
        missed: list[str] = []
        notes = outcome.notes
        if not outcome.met and outcome.judged:
            message = miss_message(self.artifact, outcome.misses)
            notes.append(message + (" (accepted: quantize.accept_budget_miss)" if accepted else ""))
            missed = [] if accepted or self.form is Int8Form.tensorrt else [message]
            hint = " (see the fallback notes; try --calib-method entropy/percentile or more data)"
            warn_once(ctx, [message + hint])
        kept = f", {len(outcome.kept)} layer(s) kept FP32" if outcome.kept else ""
        missed_note = "" if outcome.met or not outcome.judged else " (budget missed)"
        return QuantizeResult(
            form=self.form.value,
            target=self.form.value,
            activations=self.form.activations,
            method=q.method.value,
            per_channel=q.per_channel,
            evaluation=datasets(ctx)[1].description,
            accuracy=outcome.figures,
            accuracy_before_fallback=outcome.first if outcome.steps else None,
            budget=BudgetFigures(
                top1=outcome.top1,
                cosine=outcome.cosine,
                met=outcome.met,
                misses=outcome.misses,
                accepted=accepted,
                decision=outcome.decision.model_dump(mode="json") if outcome.decision is not None else None,
            ),
            budget_misses=missed,
            fallback=Fallback(
                steps=outcome.steps,
                kept_fp32=outcome.kept,
                ranking=outcome.ranking,
                excluded_by_config=list(q.exclude_nodes),
                excluded_ops=list(q.exclude_ops),
            ),
            first_non_finite=trace,
            **outcome.info,
            **sizes,
            brief=f"{self.form.activations.split(',')[0]}, {brief(outcome.figures)}, "
            f"{sizes['size_ratio']:.0%} of FP32 size{kept}{missed_note}",
        )
