"""Build stage: one TensorRT engine per precision (build-fp32, build-fp16, build-int8), each with a sidecar.

fp32 <- `fp32` (model.fp32.onnx), fp16 <- `fp16` (model.fp16.onnx), int8 <- `int8-trt` (Q/DQ,
model.int8.trt.onnx); on TensorRT 10 also fp16 <- `fp32` with the FP16 builder flag (build.sources) and
int8 <- `fp32` with the implicit calibrator (--int8-route calibrator). The flavour, its version and the
targets are part of each stage's cache key. Engines go to engines/model.<precision>.<flavour>.engine with
engines/model.<precision>.<flavour>.json beside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from infercc.config import CompileConfig, Int8Route, Precision
from infercc.errors import MissingRuntimeError, UsageError
from infercc.fsutil import atomic_write_json, sha256_json
from infercc.pipeline.manifest import ArtifactRecord, now_iso
from infercc.pipeline.stage import NewArtifact, RunContext, SkippedStage, Stage, StageOutput
from infercc.shapes import format_dims, shape_flags
from infercc.stages.results import BuildResult
from infercc.tensorrt.flavours import (
    FlavourInfo,
    install_hint,
    normalize_target,
    not_installed_reason,
    select_flavour,
)

ENGINE_DIR = "engines"
DEFAULT_SOURCES = {Precision.fp32: "fp32", Precision.fp16: "fp16", Precision.int8: "int8-trt"}
ALLOWED_SOURCES = {
    Precision.fp32: ("fp32", "onnx"),
    Precision.fp16: ("fp16", "fp32"),
    Precision.int8: ("int8-trt", "fp32"),
}


def engine_filename(precision: str, family: str) -> str:
    return f"{ENGINE_DIR}/model.{precision}.{family}.engine"


def sidecar_filename(precision: str, family: str) -> str:
    return f"{ENGINE_DIR}/model.{precision}.{family}.json"


def route(config: CompileConfig, precision: Precision) -> tuple[str, bool, bool]:
    """(source artifact, FP16 builder flag, implicit INT8 calibrator) for one engine."""
    build = config.build
    if precision is Precision.int8 and build.int8_route is Int8Route.calibrator:
        return "fp32", False, True
    source = build.sources.get(precision, DEFAULT_SOURCES[precision])
    if source not in ALLOWED_SOURCES[precision]:
        raise UsageError(
            f"build.sources.{precision.value} is {source!r}; a {precision.value} engine is built from "
            f"{' or '.join(ALLOWED_SOURCES[precision])}.",
            hint="For INT8 from the FP32 graph use --int8-route calibrator (TensorRT 10).",
        )
    if precision is Precision.int8 and source == "fp32":
        return "fp32", False, True
    return source, precision is Precision.fp16 and source == "fp32", False


def stages_for(
    config: CompileConfig, onnx_artifacts: list[str], explicit: bool
) -> tuple[list[Stage], list[str]]:
    """Stages to run for target tensorrt, and the engine artifact names they produce."""
    flavour = select_flavour(config.build.flavour)
    if flavour is None:
        reason = not_installed_reason(config.build.flavour)
        if explicit:
            raise MissingRuntimeError(
                f"Target tensorrt needs TensorRT: {reason.split(':')[0]}.",
                hint=install_hint(config.build.flavour),
            )
        return [SkippedBuild(p.value, reason) for p in config.precisions], []
    targets = [normalize_target(t) for t in config.build.compute_capabilities]
    if "CURRENT" in targets and len(targets) > 1:
        raise UsageError("Compute capability 'current' cannot be combined with other targets.")
    stages: list[Stage] = []
    engines: list[str] = []
    for precision in config.precisions:
        if precision is Precision.bf16:
            stages.append(
                SkippedBuild(
                    "bf16", "bf16 is an OpenVINO CPU and AOTInductor precision: no TensorRT engine is built"
                )
            )
            continue
        source, fp16_flag, calibrate = route(config, precision)
        from infercc.tensorrt.builder import BuildRequest, Calibration, check_request

        check_request(
            flavour,
            BuildRequest(
                precision.value,
                builder_fp16=fp16_flag,
                calibration=Calibration(None) if calibrate else None,
                compute_capabilities=targets,
                hardware_compatibility=config.build.hardware_compatibility,
                version_compatible=config.build.version_compatible,
            ),
        )
        if source not in onnx_artifacts:
            stages.append(
                SkippedBuild(
                    precision.value,
                    f"no {source} ONNX artifact to build the {precision.value} engine from (the "
                    "quantize stage made none)",
                )
            )
            continue
        stages.append(BuildStage(precision, source, flavour, targets, fp16_flag, calibrate))
        engines.append(f"engine-{precision.value}")
    return stages, engines


class SkippedBuild(SkippedStage):
    """A build that cannot happen here (no TensorRT, or no source artifact): reported as skipped."""

    def __init__(self, precision: str, reason: str) -> None:
        super().__init__(f"build-{precision}", f"Build TensorRT engine ({precision})", reason)


class BuildStage:
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts

    def __init__(
        self,
        precision: Precision,
        source: str,
        flavour: FlavourInfo,
        targets: list[str],
        fp16_flag: bool,
        calibrate: bool,
    ) -> None:
        self.precision = precision
        self.source = source
        self.flavour = flavour
        self.targets = targets
        self.fp16_flag = fp16_flag
        self.calibrate = calibrate
        self.name = f"build-{precision.value}"
        self.description = f"Build {flavour.caps.label} engine ({precision.value})"
        self.needs: tuple[str, ...] = (source,)

    def _profiles(self, ctx: RunContext) -> list[Any]:
        from infercc.tensorrt.profiles import resolve_profiles

        return resolve_profiles(ctx.input_names, ctx.shape_ranges, ctx.config.build.profiles)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        from infercc.tensorrt.profiles import profiles_to_json

        build, caps = ctx.config.build, self.flavour.caps
        settings: dict[str, Any] = {
            "precision": self.precision.value,
            "source": self.source,
            "flavour": {
                "module": self.flavour.module,
                "family": caps.family,
                "version": self.flavour.version,
            },
            "route": "fp16-flag" if self.fp16_flag else "calibrator" if self.calibrate else "graph",
            "profiles": profiles_to_json(self._profiles(ctx)),
            "workspace_mib": build.workspace_mib,
            "optimization_level": build.optimization_level,
        }
        if caps.compute_capabilities:
            settings["compute_capabilities"] = self.targets or "default"
        if caps.hardware_compatibility:
            settings["hardware_compatibility"] = build.hardware_compatibility
            settings["version_compatible"] = build.version_compatible
        if caps.timing_cache:
            # the user's cache by content (deps); infercc's own cache never: see timing_cache_path
            settings["timing_cache"] = build.timing_cache is not None
        if caps.needs_gpu_to_build:
            settings["gpu"] = local_gpu()  # the engine targets the GPU it is built on
        if self.calibrate:
            settings["calibration"] = {
                "data": ctx.config.calibration.model_dump(mode="json") if ctx.config.calibration else None,
                "method": ctx.config.quantize.method.value,
            }
        return settings

    def tools(self) -> tuple[str, ...]:
        return (self.flavour.module,)

    def deps(self, ctx: RunContext) -> list[Path]:
        """The calibration data the TensorRT 10 implicit-INT8 calibrator reads, and the user's timing cache
        (build.timing_cache: read, never written, so its content is a stable input). infercc's own cache is
        left out: every build rewrites it, and it changes which tactics are timed, not what the engine computes
        (the engine is verified either way)."""
        from infercc.data.sources import effective_sources, source_paths

        deps = source_paths(effective_sources(ctx.config)[0], "calibration") if self.calibrate else []
        user_cache = ctx.config.build.timing_cache
        if user_cache is not None and self.flavour.caps.timing_cache:
            deps.append(Path(user_cache))
        return deps

    def timing_cache_path(self, ctx: RunContext) -> Path | None:
        """infercc's own timing cache for this flavour, beside the engines (None where it is switched off or
        the flavour ignores timing caches)."""
        if not ctx.config.build.managed_timing_cache or not self.flavour.caps.timing_cache:
            return None
        return ctx.path(f"{ENGINE_DIR}/timing.{self.flavour.family}.cache")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.tensorrt.builder import BuildRequest, build_engine
        from infercc.tensorrt.profiles import describe_profiles

        build, family, p = ctx.config.build, self.flavour.family, self.precision.value
        source = inputs[self.source]
        onnx_path = ctx.path(source.path)
        engine_rel, sidecar_rel = engine_filename(p, family), sidecar_filename(p, family)
        profiles = self._profiles(ctx)
        request = BuildRequest(
            precision=p,
            profiles=profiles,
            builder_fp16=self.fp16_flag,
            workspace_mib=build.workspace_mib,
            optimization_level=build.optimization_level,
            timing_cache=build.timing_cache,
            managed_timing_cache=self.timing_cache_path(ctx),
            compute_capabilities=self.targets,
            hardware_compatibility=build.hardware_compatibility,
            version_compatible=build.version_compatible,
        )
        artifacts: list[NewArtifact] = []
        calibration_info: dict[str, Any] = {}
        if self.calibrate:
            request.calibration, calibration_info, cache_rel = self._calibration(ctx, profiles, source)
        ctx.progress(self.name, 0, 1, f"{self.flavour.label} from {source.path}")
        result = build_engine(self.flavour, onnx_path, ctx.path(engine_rel), request)
        if self.calibrate and ctx.path(cache_rel).is_file():
            artifacts.append(NewArtifact(f"engine-{p}-calibration-cache", cache_rel, "calibration-cache"))
        targets = dict(result.targets)
        if self.flavour.caps.needs_gpu_to_build:
            gpu = local_gpu() or {}
            targets.update({"gpu": gpu.get("name"), "gpu_compute_capability": gpu.get("compute_capability")})
        sidecar = self._sidecar(ctx, source, engine_rel, result, targets, calibration_info)
        atomic_write_json(ctx.path(sidecar_rel), sidecar)
        ctx.progress(self.name, 1, 1, f"{result.size:,} bytes")
        meta = {"flavour": family, "version": self.flavour.version, "sidecar": sidecar_rel}
        artifacts[:0] = [
            NewArtifact(f"engine-{p}", engine_rel, "engine", self.precision, "tensorrt", meta=meta),
            NewArtifact(f"engine-{p}-sidecar", sidecar_rel, "sidecar", self.precision, "tensorrt"),
        ]
        return StageOutput(
            artifacts=artifacts,
            result=BuildResult(
                brief=f"{self.flavour.label}, {result.size / 1024:.0f} KB, {len(result.profiles)} "
                f"profile(s), {result.network['num_layers']} layers, {result.seconds:.2f} s",
                flavour=self.flavour.label,
                build_s=round(result.seconds, 4),
                engine_bytes=result.size,
                layers=result.network["num_layers"],
                profiles=describe_profiles(result.profiles),
                targets=targets,
                timing_cache=result.timing_cache,
                **({"calibration": calibration_info} if calibration_info else {}),
            ),
            notes=result.notes,
        )

    def _sidecar(
        self,
        ctx: RunContext,
        source: ArtifactRecord,
        engine_rel: str,
        result: Any,
        targets: dict[str, Any],
        calibration_info: dict[str, Any],
    ) -> dict[str, Any]:
        """The engine's sidecar: what it was built from, for which GPU, with which settings, and how to rebuild."""
        from infercc.tensorrt.profiles import profiles_to_json
        from infercc.tensorrt.sidecar import SCHEMA

        build, p = ctx.config.build, self.precision.value
        return {
            "schema": SCHEMA,
            "engine": engine_rel.rsplit("/", 1)[-1],
            "engine_bytes": result.size,
            "engine_sha256": result.sha256,
            "precision": p,
            "flavour": {
                "module": self.flavour.module,
                "family": self.flavour.family,
                "version": self.flavour.version,
                "label": self.flavour.label,
            },
            "source": {
                "artifact": self.source,
                "path": source.path,
                "sha256": source.sha256,
                "route": self.settings(ctx)["route"],
            },
            "targets": targets,
            "profiles": profiles_to_json(result.profiles),
            "settings": {
                "workspace_mib": build.workspace_mib,
                "optimization_level": build.optimization_level,
                "timing_cache": result.timing_cache,
                "hardware_compatibility": build.hardware_compatibility,
                "version_compatible": build.version_compatible,
                **({"calibration": calibration_info} if calibration_info else {}),
            },
            "built": now_iso(),
            "build_s": round(result.seconds, 4),
            "header": result.header,
            "network": result.network,
            "notes": result.notes,
            "rebuild": rebuild_command(ctx, p),
        }

    def _calibration(
        self, ctx: RunContext, profiles: list[Any], source: ArtifactRecord
    ) -> tuple[Any, dict[str, Any], str]:
        from infercc.lazy import require
        from infercc.tensorrt.builder import Calibration
        from infercc.tensorrt.calibrator import (
            CalibrationCache,
            calibration_samples,
            make_calibrator,
            rebatch,
        )

        shapes = {n: r[1] for n, r in profiles[0].items()}
        data = ctx.config.calibration
        key = sha256_json(
            {
                "onnx": source.sha256,
                "data": data.model_dump(mode="json") if data else None,
                "method": ctx.config.quantize.method.value,
                "shapes": shapes,
            }
        )[:12]
        cache_rel = f"{ENGINE_DIR}/model.int8.{self.flavour.family}.calib-{key}.cache"
        cache = CalibrationCache(ctx.path(cache_rel))
        batches = rebatch(calibration_samples(ctx, shapes), shapes, limit=data.samples if data else None)
        torch = require("torch", "feeding the TensorRT calibrator")
        trt = self.flavour.load()
        calibrator = make_calibrator(
            trt, ctx.config.quantize.method, batches.batches, cache, lambda a: torch.from_numpy(a).cuda()
        )
        info = {
            "method": ctx.config.quantize.method.value,
            "batches": len(batches.batches),
            "rows_used": batches.samples_used,
            "rows_dropped": batches.samples_dropped,
            "shapes": {n: format_dims(s) for n, s in shapes.items()},
            "cache": cache_rel,
            "cache_reused": cache.path.is_file(),
        }
        return Calibration(calibrator, info), info, cache_rel


def local_gpu() -> dict[str, Any] | None:
    """Name and compute capability of CUDA device 0, or None (imports torch: TensorRT 10/11 builds only)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}


def rebuild_command(ctx: RunContext, precision: str) -> str:
    """The command that rebuilds this engine on the machine that will run it."""
    parts = ["infercc", "build", "--model", ctx.source.spec]
    parts += shape_flags(ctx.input_names, ctx.shape_ranges)
    parts += ["--precision", precision, "--out", str(ctx.out), "--force"]
    return " ".join(parts)
