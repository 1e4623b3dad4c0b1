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

FP16_FILE = "model.fp16.onnx"
INT8_FILES = {"onnxruntime": "model.int8.onnx", "tensorrt": "model.int8.trt.onnx"}
INT8_NAMES = {"onnxruntime": "int8", "tensorrt": "int8-trt"}
ACTIVATIONS = {
    "onnxruntime": "uint8 asymmetric activations",
    "tensorrt": "int8 symmetric activations, float bias",
}


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
        stages += [CalibrateStage(), Int8Stage("onnxruntime")]
        produced.append("int8")
        if Target.tensorrt in config.targets:
            stages.append(Int8Stage("tensorrt"))
            produced.append("int8-trt")
    return stages, produced


# --- shared per-run state -------------------------------------------------------------------------


def _state(ctx: RunContext) -> dict[str, Any]:
    return ctx.__dict__.setdefault("_quantize_state", {})


def datasets(ctx: RunContext) -> tuple[Any, Any]:
    """(calibration, evaluation) datasets, resolved once per run."""
    state = _state(ctx)
    if "datasets" not in state:
        from infercc.data.sources import ModelInputs, effective_sources, resolve_datasets

        inputs = ModelInputs(list(ctx.input_names), dict(ctx.shape_ranges), dict(ctx.config.inputs))
        calibration, evaluation = effective_sources(ctx.config)
        state["datasets"] = resolve_datasets(calibration, evaluation, inputs, seed=ctx.config.verify.seed)
    return state["datasets"]


def fp32_outputs(ctx: RunContext, fp32: ArtifactRecord) -> Any:
    """The FP32 graph's outputs on the evaluation data (the reference every precision is measured against)."""
    from infercc.quantization.accuracy import run_model

    state = _state(ctx)
    key = ("fp32-outputs", fp32.sha256)
    if key not in state:
        from infercc.stages.export import require_finite_reference

        outputs = run_model(ctx.path(fp32.path), datasets(ctx)[1], threads=ctx.config.bench.threads)
        require_finite_reference(outputs.values, "the evaluation data", "FP32 graph")
        state[key] = outputs
    return state[key]


def _warn_once(ctx: RunContext, messages: list[str]) -> None:
    shown = _state(ctx).setdefault("warned", set())
    for message in messages:
        if message not in shown:
            shown.add(message)
            ctx.events.warn(message)


def _size_figures(ctx: RunContext, filename: str, fp32: ArtifactRecord) -> dict[str, Any]:
    return _size_figures_at(ctx.path(filename), fp32)


def _size_figures_at(path: Path, fp32: ArtifactRecord) -> dict[str, Any]:
    size = path.stat().st_size
    return {
        "size_bytes": size,
        "fp32_size_bytes": fp32.size,
        "size_ratio": round(size / fp32.size, 4) if fp32.size else None,
    }


# --- FP16 -----------------------------------------------------------------------------------------


class Fp16Stage:
    name = "quantize-fp16"
    version: ClassVar[str] = "2"
    portable: ClassVar[bool] = (
        True  # its outputs do not depend on this machine (the load-check runtimes are in its settings)
    )
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
        from infercc.fsutil import atomic_path
        from infercc.onnxutil import load_onnx
        from infercc.quantization.accuracy import brief

        q = ctx.config.quantize
        final = ctx.path(FP16_FILE)
        final.unlink(missing_ok=True)  # an earlier run's file must not outlive a failed conversion
        evaluate = datasets(ctx)[1]
        _warn_once(ctx, evaluate.warnings)
        search = _Fp16Search(
            ctx, load_onnx(ctx.path(inputs[self.source].path)), fp32_outputs(ctx, inputs[self.source])
        )
        with atomic_path(final) as candidate:
            info, figures = search.run(candidate)
        metrics = {
            "accuracy": figures,
            "evaluation": evaluate.description,
            "keep_io": q.fp16_keep_io,
            "source": self.source,
            "converter": "onnxruntime.transformers.float16",
            "load_checked_on": search.runtimes,
            **info,
            "auto_blocked": search.log,
            **_size_figures(ctx, FP16_FILE, inputs[self.source]),
        }
        metrics["brief"] = f"{brief(figures)}, {metrics['size_ratio']:.0%} of FP32 size" + (
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
                        "accuracy": _fig(figures),
                        "blocked_nodes": search.block_nodes,
                        "runtimes": inputs[self.source].meta.get("runtimes"),
                    },
                )
            ],
            metrics=metrics,
            notes=search.notes,
        )


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
        from infercc.onnxutil import TWO_GB
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
            _save_candidate(converted, candidate, TWO_GB)
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
        _warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])

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
            _warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])
            return False
        picked = drifts[:4]
        for d in picked:
            self.block_nodes.append(d.node)
            self.log.append({**d.to_dict(), "reason": "non-finite" if bad else "drift", "culprit": d.node})
        reason = f"{bad} NaN/Inf output values" if bad else f"cosine {figures.get('cosine')}"
        self.notes.append(
            f"FP16 {reason} {where}; kept {', '.join(f'{d.node} ({d.op_type})' for d in picked)} in FP32 and converted again"
        )
        _warn_once(self.ctx, [f"quantize-fp16: {self.notes[-1]}"])
        return True


def _save_candidate(model: Any, path: Any, limit: int) -> None:
    import onnx

    if model.ByteSize() <= limit:
        onnx.save(model, str(path))
    else:  # pragma: no cover - very large models: weights beside the final name
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"{FP16_FILE}.data",
        )


# --- calibration ----------------------------------------------------------------------------------


class CalibrateStage:
    name = "calibrate"
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = (
        True  # its outputs do not depend on this machine: --cache shares them across hosts
    )
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
        _warn_once(ctx, calib.warnings)
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
        metrics = {
            "method": q.method.value,
            "percentile": q.percentile if q.method.value == "percentile" else None,
            "source": calib.description,
            "kind": calib.kind,
            "samples": samples,
            "tensors": tensors,
            "reused_cache": reused,
            "calibration_s": round(time.perf_counter() - started, 3),
            "brief": f"{q.method.value} over {samples} samples ({calib.kind}), {tensors} tensors"
            + (", reused cache" if reused else ""),
        }
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
            metrics=metrics,
            notes=notes,
        )


# --- INT8 -----------------------------------------------------------------------------------------


class Int8Stage:
    version: ClassVar[str] = "3"
    portable: ClassVar[bool] = (
        True  # its outputs do not depend on this machine: --cache shares them across hosts
    )

    def __init__(self, form: str) -> None:
        self.form = form
        self.artifact = INT8_NAMES[form]
        self.filename = INT8_FILES[form]
        self.name = "quantize-int8" if form == "onnxruntime" else "quantize-int8-trt"
        self.description = f"Quantize to INT8 ({form} Q/DQ form)"
        self.needs: tuple[str, ...] = ("fp32", "calibration") + (("int8",) if form == "tensorrt" else ())

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        q = ctx.config.quantize
        calib, evaluate = datasets(ctx)
        return {
            "form": self.form,
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

        with atomic_path(ctx.path(self.filename)) as candidate:
            output = self._search(ctx, inputs, candidate)
        return output

    def _search(self, ctx: RunContext, inputs: dict[str, ArtifactRecord], out: Path) -> StageOutput:
        from infercc.quantization.accuracy import accuracy, brief, meets, run_model
        from infercc.quantization.int8 import write_qdq
        from infercc.quantization.probe import first_non_finite
        from infercc.quantization.sensitivity import rank_by_output

        q = ctx.config.quantize
        threads = ctx.config.bench.threads
        fp32 = ctx.path(inputs["fp32"].path)
        cache = ctx.path(inputs["calibration"].path)
        calib, evaluate = datasets(ctx)
        _warn_once(ctx, evaluate.warnings)
        reference = fp32_outputs(ctx, inputs["fp32"])
        inherited = list(inputs["int8"].meta.get("fallback_nodes", [])) if "int8" in inputs else []
        fallback: list[str] = list(inherited)

        def quantize() -> tuple[dict[str, Any], dict[str, Any], Any]:
            info = write_qdq(
                fp32,
                cache,
                out,
                form=self.form,
                method=q.method,
                per_channel=q.per_channel,
                exclude_nodes=[*q.exclude_nodes, *fallback],
                exclude_ops=q.exclude_ops,
            )
            if q.bias_correction and self.form == "onnxruntime":
                from infercc.quantization.bias_correction import correct_biases

                info["bias_correction"] = correct_biases(
                    fp32, out, out, list(calib.batches()), threads=threads
                )
            outputs = run_model(out, evaluate, threads=threads)
            return info, accuracy(outputs, reference, ctx.config.model.output_kinds), outputs

        def decide() -> dict[str, Any]:
            # fallback choices are judged on the calibration data: choosing on the evaluation data would
            # make the reported held-out figure optimistic
            return accuracy(
                run_model(out, calib, threads=threads), calib_reference, ctx.config.model.output_kinds
            )

        ctx.progress(self.name, 0, None, "quantizing")
        calib_reference = run_model(fp32, calib, threads=threads)
        info, figures, outputs = quantize()
        first = figures
        artifact_budget = budget_for(ctx.config, Precision.int8)
        top1_budget = artifact_budget.top1 if figures.get("top1") is not None else None
        cos_budget = artifact_budget.cosine
        ok, misses = meets(figures, top1_budget, cos_budget)
        judged = decide() if not ok else figures
        calib_ok = cos_budget is not None and meets(judged, None, cos_budget)[0]
        steps: list[dict[str, Any]] = []
        notes: list[str] = []
        if inherited:
            notes.append(f"kept in FP32 as in the ONNX Runtime form: {', '.join(inherited)}")
        best = (_score(judged, fallback), list(fallback))
        stalled = 0
        sens_feeds: list[Any] | None = None
        fp32_graph = None
        ranking: list[Any] | None = None
        ranked_report: list[dict[str, Any]] = []
        # the TensorRT form inherits the ONNX Runtime form's choice: its accuracy here (ORT CPU running the Q/DQ
        # graph) only approximates TensorRT's numerics, so it is reported, not searched on
        max_steps = q.fallback_max_steps if self.form == "onnxruntime" else 0
        while (
            not ok
            and not calib_ok
            and len(steps) < max_steps
            and stalled < 2
            and (top1_budget is not None or cos_budget is not None)
        ):
            if sens_feeds is None:
                import onnx

                sens_feeds = list(calib.batches(limit=q.sensitivity_samples))
                fp32_graph = onnx.load(str(fp32), load_external_data=False).graph
            if ranking is None:  # once: each layer alone in INT8, measured at the outputs
                ranking = rank_by_output(
                    fp32,
                    out,
                    sens_feeds,
                    threads=threads,
                    progress=lambda n, total: ctx.progress(
                        self.name, n, total, "ranking layers by quantization error"
                    ),
                )
                ranked_report = [r.to_dict() for r in ranking[:20]]
            ctx.progress(self.name, len(steps) + 1, q.fallback_max_steps, "re-quantizing")
            open_ = [r for r in ranking if r.node not in fallback and r.node not in q.exclude_nodes]
            # several per round only when they hurt about as much as the worst (errors downstream of a bad
            # layer look "local" too until that layer is fixed)
            picked = [
                r for r in open_[: q.fallback_nodes_per_step] if open_ and r.local >= 0.5 * open_[0].local
            ][:]
            picked = picked or open_[:1]
            if not picked:
                notes.append("fallback: no quantized layer left to keep in FP32")
                break
            before, judged_before = figures, judged
            fallback += [n for r in picked for n in activation_unit(fp32_graph, r.node)]
            fallback = list(dict.fromkeys(fallback))
            info, figures, outputs = quantize()
            judged = decide()
            ok, misses_now = meets(figures, top1_budget, cos_budget)
            calib_ok = cos_budget is not None and meets(judged, None, cos_budget)[0]
            step = {
                "step": len(steps) + 1,
                "kept_fp32": [r.to_dict() for r in picked],
                "top1_before": before.get("top1"),
                "top1_after": figures.get("top1"),
                "cosine_before": before.get("cosine"),
                "cosine_after": figures.get("cosine"),
                "calibration_top1_after": judged.get("top1"),
                "calibration_cosine_after": judged.get("cosine"),
                "met": ok,
            }
            steps.append(step)
            notes.append(
                f"fallback step {step['step']}: kept {', '.join(f'{r.node} ({r.op_type})' for r in picked)} in FP32: "
                f"calibration data {_fig(judged_before)} -> {_fig(judged)}; held-out {_fig(before)} -> {_fig(figures)}"
            )
            score = _score(judged, fallback)
            if score > best[0]:
                best, stalled = (score, list(fallback)), 0
            else:
                stalled += 1
            misses = misses_now
        if stalled >= 2:
            notes.append("fallback: stopped after two rounds without a gain on the calibration data")
        if (
            not ok and steps and best[1] != fallback
        ):  # the last step was not the best one: go back to the best
            fallback = best[1]
            info, figures, outputs = quantize()
            ok, misses = meets(figures, top1_budget, cos_budget)
            notes.append(f"kept the best fallback set ({len(fallback)} layers in FP32)")
        if fallback:  # a pick can keep several nodes (its activation unit): name every one
            notes.append(f"{len(fallback)} layer(s) kept FP32: {', '.join(fallback)}")
        trace = None
        if figures["non_finite"]:
            trace = first_non_finite(out, fp32, outputs.batches, threads=threads)
        budget = {
            "top1": top1_budget,
            "cosine": cos_budget,
            "met": ok,
            "misses": misses,
            "accepted": bool(misses) and artifact_budget.accept_miss,
        }
        missed: list[str] = []
        if not ok and (top1_budget is not None or cos_budget is not None):
            message = miss_message(self.artifact, misses)
            notes.append(message + (" (accepted: quantize.accept_budget_miss)" if budget["accepted"] else ""))
            # the TensorRT form's figures come from ONNX Runtime CPU, which only approximates TensorRT: they are
            # reported here and judged by verify on tensorrt
            missed = [] if budget["accepted"] or self.form == "tensorrt" else [message]
            _warn_once(
                ctx,
                [message + " (see the fallback notes; try --calib-method entropy/percentile or more data)"],
            )
        sizes = _size_figures_at(out, inputs["fp32"])
        metrics = {
            "form": self.form,
            "target": self.form,
            "activations": ACTIVATIONS[self.form],
            "method": q.method.value,
            "per_channel": q.per_channel,
            "evaluation": evaluate.description,
            "accuracy": figures,
            "accuracy_before_fallback": first if steps else None,
            "budget": budget,
            "budget_misses": missed,
            "fallback": {
                "steps": steps,
                "kept_fp32": fallback,
                "ranking": ranked_report,
                "excluded_by_config": list(q.exclude_nodes),
                "excluded_ops": list(q.exclude_ops),
            },
            "first_non_finite": trace,
            **info,
            **sizes,
        }
        metrics["brief"] = (
            f"{ACTIVATIONS[self.form].split(',')[0]}, {brief(figures)}, {sizes['size_ratio']:.0%} of FP32 size"
            + (f", {len(fallback)} layer(s) kept FP32" if fallback else "")
            + ("" if ok or (top1_budget is None and cos_budget is None) else " (budget missed)")
        )
        return StageOutput(
            artifacts=[
                NewArtifact(
                    self.artifact,
                    self.filename,
                    "onnx",
                    precision=Precision.int8,
                    target=self.form,
                    meta={
                        "nodes": info["nodes"],
                        "accuracy": _fig(figures),
                        "fallback_nodes": fallback,
                        "activations": ACTIVATIONS[self.form],
                    },
                )
            ],
            metrics=metrics,
            notes=notes,
        )


def activation_unit(graph: Any, name: str) -> list[str]:
    """The nodes kept in FP32 together when the fallback picks `name`:
    - the activation it feeds alone (Conv -> Clip/Relu): the quantizer folds such an activation into the
      output range, so it goes with its Conv;
    - for a grouped (depthwise) Conv, also the unit that produces its input: a DequantizeLinear feeding an
      FP32 depthwise Conv gives wrong results once ONNX Runtime's basic graph optimizations run
      (EfficientNet-Lite0, ORT 1.32: top-1 agreement 94% with optimizations disabled, 74% with them on).
    """
    if graph is None:
        return [name]
    nodes = {n.name: n for n in graph.node}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    activations = ("Clip", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid")

    def with_activation(node: Any) -> list[str]:
        after = consumers.get(node.output[0], [])
        return [node.name] + ([after[0].name] if len(after) == 1 and after[0].op_type in activations else [])

    node = nodes.get(name)
    if node is None:
        return [name]
    unit = with_activation(node)
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if node.op_type == "Conv" and group > 1 and node.input[0] in producer:
        source = producer[node.input[0]]
        if source.op_type in activations and source.input and source.input[0] in producer:
            source = producer[source.input[0]]
        unit = with_activation(source) + unit
    return unit


def _score(figures: dict[str, Any], fallback: list[str]) -> tuple[float, float, int]:
    """How the fallback ranks its candidate sets on the calibration data (higher is better): no NaN/Inf, then
    cosine to the FP32 outputs to 3 decimals (top-1 on calibration views is dominated by near-ties, and finer
    cosine gains are noise), then fewer layers in FP32 (each one costs speed)."""
    return (-float(figures.get("non_finite") or 0), round(figures.get("cosine") or 0.0, 3), -len(fallback))


def _fig(figures: dict[str, Any]) -> str:
    from infercc.quantization.accuracy import brief

    return brief(figures, precise=True)
