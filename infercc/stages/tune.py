"""Provider tuning for ONNX Runtime CUDA, measured per model like trtexec's tactic selection.

For each ONNX artifact: every candidate set of CUDA provider options (prefer_nhwc where the graph has
convolutions, and under NHWC cuDNN's bias fusion, fuse_conv_bias; TF32 on/off for FP32 graphs), always with I/O binding and a CUDA graph when capture works, is
checked against the PyTorch reference at the opt shape with verify's tolerance for that artifact on
onnxruntime-cuda, and timed there. The fastest that passes is written beside the artifact as a run config
(`model.fp16.ort-cuda.json`) that a user's own ONNX Runtime session can apply, and that bench uses. When no
candidate passes, the defaults are kept and the run config says so.

Planned only where ONNX Runtime has its CUDA provider: on a CPU-only machine there is nothing to tune.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.config import CompileConfig, Target
from infercc.errors import InferccError
from infercc.fsutil import atomic_write_text
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, StageOutput
from infercc.stages.results import TuneResult

RUNTIME = "onnxruntime-cuda"
TUNED = (
    "fp32",
    "fp32-ort",
    "fp16",
)  # the artifacts meant for ONNX Runtime CUDA (INT8 Q/DQ forms target CPU/TensorRT)
ITERATIONS, WARMUP = 50, 10


def run_config_name(artifact: str) -> str:
    return f"runconfig-{artifact}"


def run_config_file(artifact_file: str) -> str:
    stem = artifact_file[: -len(".onnx")] if artifact_file.endswith(".onnx") else artifact_file
    return f"{stem}.ort-cuda.json"


def planned(config: CompileConfig) -> bool:
    """Tune where the CUDA provider exists and ONNX Runtime is a target (cheap probe, no torch import)."""
    from infercc.runtimes.base import probe

    return config.tune.enabled and Target.onnxruntime in config.targets and not probe(RUNTIME)[1]


def candidates(model: Any, fp32: bool) -> list[dict[str, str]]:
    """Provider-option sets worth timing for this graph. Convolutions: layout (prefer_nhwc) and whether cuDNN's
    frontend fuses the bias add into them (fuse_conv_bias; cuDNN finds no engine for some convolutions, and that
    trial fails and is not picked)."""
    ops = {n.op_type for n in model.graph.node}
    convs = bool(ops & {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool"})
    layouts = [("0", "0"), ("1", "0"), ("1", "1")] if convs else [("0", "0")]
    tf32 = (
        ["1", "0"] if fp32 and ops & {"Conv", "MatMul", "Gemm", "Attention", "MultiHeadAttention"} else [None]
    )
    found = []
    for (nhwc, fuse_bias), math in itertools.product(layouts, tf32):
        options = {"prefer_nhwc": nhwc, "cudnn_conv_algo_search": "EXHAUSTIVE"}
        if fuse_bias == "1":
            options["fuse_conv_bias"] = "1"
        if math is not None:
            options["use_tf32"] = math
        found.append(options)
    return found


class TuneStage:
    name = "tune-ort-cuda"
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = False  # measured on this machine's GPU
    description = "Tune ONNX Runtime CUDA provider options"

    def __init__(self, artifact_names: tuple[str, ...]) -> None:
        self.artifact_names = tuple(artifact_names)
        self.needs: tuple[str, ...] = ("reference", *self.artifact_names)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "verify": ctx.config.verify.model_dump(
                mode="json", include={"tolerances", "runtime_tolerances", "outputs"}
            ),
            "iterations": ITERATIONS,
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnxruntime", "onnxruntime-gpu", "torch")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.stages.export import load_reference

        feeds, expected = load_reference(ctx.path(inputs["reference"].path))["opt"]
        artifacts, notes, summary = [], [], {}
        for i, name in enumerate(self.artifact_names):
            ctx.progress(self.name, i, len(self.artifact_names), name)
            record = inputs[name]
            choice = tune_artifact(ctx, record, feeds, expected)
            filename = run_config_file(record.path)
            atomic_write_text(ctx.path(filename), json.dumps(choice, indent=1) + "\n")
            artifacts.append(
                NewArtifact(run_config_name(name), filename, "run-config", target=RUNTIME, meta={"for": name})
            )
            summary[name] = {k: choice[k] for k in ("chosen", "p50_ms", "default_p50_ms", "cuda_graph")}
            if choice["note"]:
                notes.append(f"{name}: {choice['note']}")
        brief = "; ".join(
            f"{n}: {s['chosen']}" + (f" {s['p50_ms']:.3g} ms" if s["p50_ms"] else "")
            for n, s in summary.items()
        )
        return StageOutput(
            artifacts=artifacts, result=TuneResult(artifacts=summary, brief=brief), notes=notes
        )


def tune_artifact(
    ctx: RunContext, record: ArtifactRecord, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]
) -> dict[str, Any]:
    from infercc.onnxutil import load_onnx

    path = ctx.path(record.path)
    model = load_onnx(path, with_data=False)
    trials = [
        _trial(ctx, record, path, options, feeds, expected)
        for options in candidates(model, record.precision in (None, "fp32"))
    ]
    passing = [t for t in trials if t["passed"] and t.get("p50_ms")]
    default = trials[0]
    best = min(passing, key=lambda t: t["p50_ms"]) if passing else None
    chosen = best or default
    note = "" if best else "no provider-option set passed verify at the opt shape: kept the defaults"
    provider_options = dict(chosen["options"])
    session_options: dict[str, Any] = {"graph_optimization_level": "ORT_ENABLE_ALL"}
    if chosen.get("cuda_graph"):
        provider_options["enable_cuda_graph"] = "1"
        # the graph replays the opt shape: infercc's graph session fixes the named dimensions to it
        session_options["free_dimension_overrides_by_name"] = _named_sizes(model, feeds)
    return {
        "artifact": Path(record.path).name,
        "sha256": record.sha256,
        "execution_provider": "CUDAExecutionProvider",
        "provider_options": provider_options,
        "session_options": session_options,
        "io_binding": True,
        "cuda_graph": bool(chosen.get("cuda_graph")),
        "opt_shapes": {n: list(v.shape) for n, v in feeds.items()},
        "chosen": _label(chosen["options"]) if best else "defaults",
        "p50_ms": best["p50_ms"] if best else None,
        "default_p50_ms": default.get("p50_ms"),
        "trials": trials,
        "note": note,
        "usage": "onnxruntime.InferenceSession(path, sess_options, providers=[('CUDAExecutionProvider', "
        "provider_options), 'CPUExecutionProvider']); with enable_cuda_graph, call "
        "sess_options.add_free_dimension_override_by_name(name, size) for each free_dimension_overrides_by_name "
        "and bind inputs/outputs to fixed GPU buffers (I/O binding)",
    }


def _named_sizes(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """Each named input dimension of `model` and its size in `feeds` (the opt shape)."""
    sizes: dict[str, int] = {}
    for arg in model.graph.input:
        if arg.name in feeds:
            for dim, size in zip(arg.type.tensor_type.shape.dim, feeds[arg.name].shape, strict=False):
                if dim.dim_param:
                    sizes.setdefault(dim.dim_param, int(size))
    return sizes


def _label(options: dict[str, str]) -> str:
    parts = ["nhwc" if options.get("prefer_nhwc") == "1" else "nchw"]
    if options.get("fuse_conv_bias") == "1":
        parts.append("fuse-bias")
    if "use_tf32" in options:
        parts.append("tf32" if options["use_tf32"] == "1" else "no-tf32")
    return "+".join(parts)


def _trial(
    ctx: RunContext,
    record: ArtifactRecord,
    path: Path,
    options: dict[str, str],
    feeds: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
) -> dict[str, Any]:
    from infercc.metrics import compare
    from infercc.onnxrt.runtime import OrtCUDA
    from infercc.stages.verify import tolerance_for

    trial: dict[str, Any] = {"options": options, "label": _label(options), "passed": False}
    try:
        with OrtCUDA(path, cuda_graph=True, provider_options=options) as runtime:
            outputs = runtime.infer(feeds)
            failures = []
            for out_name, ref in expected.items():
                metrics = compare(
                    outputs[out_name], ref, tolerance_for(ctx.config, record, out_name, RUNTIME)
                )
                failures += [f"{out_name}: {f}" for f in metrics.failures]
            trial["failures"] = failures
            trial["passed"] = not failures
            times = runtime.time_infer(feeds, ITERATIONS, WARMUP)
            trial["p50_ms"] = float(np.median(times) * 1e3)
            trial["cuda_graph"] = "cuda-graph" in runtime.timing
            trial["notes"] = list(runtime.notes)
    except InferccError as exc:
        trial["error"] = exc.message[:300]
    return trial
