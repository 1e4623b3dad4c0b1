"""ONNX -> serialized TensorRT engine, for every flavour. The only module that drives the builder.

Flavour differences come from `Capabilities` (flavours.py): strong typing opt-in and the FP16/INT8 builder
flags with the implicit calibrator (TensorRT 10), a working timing cache (10/11), hardware/version
compatibility (10/11), compute-capability targets chosen at build time (TensorRT-RTX).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infercc.errors import StageError, UsageError
from infercc.fsutil import atomic_path, atomic_write_bytes, sha256_file
from infercc.tensorrt.errors import build_failure, capture_logger, parse_failure
from infercc.tensorrt.flavours import FlavourInfo, describe_target
from infercc.tensorrt.profiles import Profile, describe_profiles, fit_to_network
from infercc.tensorrt.sidecar import RTX_DEFAULT_TARGETS, read_header_file

HW_LEVELS = {"none": "NONE", "ampere_plus": "AMPERE_PLUS", "same_cc": "SAME_COMPUTE_CAPABILITY"}


@dataclass
class Calibration:
    """TensorRT 10 implicit calibration: the calibrator (calibrator.make_calibrator) and what fed it."""

    calibrator: Any
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildRequest:
    precision: str
    profiles: list[Profile] = field(default_factory=list)
    builder_fp16: bool = False  # TensorRT 10: BuilderFlag.FP16 on the FP32 graph
    calibration: Calibration | None = None  # TensorRT 10: BuilderFlag.INT8 + implicit calibrator
    workspace_mib: int | None = None
    optimization_level: int = 3
    timing_cache: Path | None = None  # the user's: read, never written
    managed_timing_cache: Path | None = None  # infercc's own: read, then rewritten by the build
    compute_capabilities: list[str] = field(default_factory=list)  # normalized: SM86, CURRENT
    hardware_compatibility: str = "none"
    version_compatible: bool = False


@dataclass
class BuildResult:
    engine: Path
    seconds: float
    size: int
    sha256: str
    network: dict[str, Any]
    header: dict[str, Any]
    profiles: list[Profile]
    targets: dict[str, Any]
    timing_cache: dict[str, Any]
    notes: list[str]


def check_request(flavour: FlavourInfo, request: BuildRequest) -> None:
    """Refuse what this flavour cannot honour, saying what to do instead (before any export or parse)."""
    caps, label = flavour.caps, flavour.label
    if request.builder_fp16 and not caps.builder_precision_flags:
        raise UsageError(
            f"{label} has no FP16 builder flag (networks are strongly typed); it cannot make an "
            "FP16 engine from the "
            "FP32 graph.",
            hint="Build the fp16 engine from the fp16 artifact (model.fp16.onnx): drop "
            "build.sources.fp16 or set it "
            "to fp16.",
        )
    if request.calibration is not None and not caps.implicit_int8:
        raise UsageError(
            f"{label} has no implicit INT8 calibration (IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator).",
            hint="Build the int8 engine from the Q/DQ artifact int8-trt (model.int8.trt.onnx): "
            "--int8-route qdq.",
        )
    if request.compute_capabilities and not caps.compute_capabilities:
        raise UsageError(
            f"{label} builds for the GPU it runs on; --compute-capability applies to TensorRT-RTX only.",
            hint="Drop --compute-capability, or use build.hardware_compatibility ampere_plus for a "
            "portable engine.",
        )
    if request.version_compatible and not caps.version_compatible:
        raise UsageError(
            f"{label} cannot build version-compatible engines (it ships no lean runtime).",
            hint="Set build.version_compatible false; rebuild the engine when you upgrade TensorRT-RTX.",
        )
    if request.hardware_compatibility not in HW_LEVELS:
        raise UsageError(
            f"build.hardware_compatibility {request.hardware_compatibility!r} is not one of "
            f"{', '.join(HW_LEVELS)}."
        )


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def parse_network(trt: Any, builder: Any, onnx_path: Path, flags: int, label: str) -> tuple[Any, Any]:
    logger = capture_logger(trt)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not Path(onnx_path).is_file():
        raise UsageError(f"ONNX file {onnx_path} does not exist.")
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(
                {
                    "code": err.code().name,
                    "desc": err.desc(),
                    "node": err.node(),
                    "node_name": err.node_name(),
                    "node_operator": err.node_operator(),
                }
            )
        raise parse_failure(errors, Path(onnx_path), label)
    if network.num_outputs == 0:  # an empty or garbage-but-valid protobuf "parses"
        raise UsageError(
            f"{Path(onnx_path).name} parsed into a network with no outputs: it is empty or not an "
            "ONNX model.",
            hint="Re-create the file; with infercc, run again with --force.",
        )
    return network, parser


def describe_network(trt: Any, network: Any) -> dict[str, Any]:
    """Inputs, outputs and layers of a parsed network (recorded in the sidecar: no GPU needed to read it)."""

    def tensor(t: Any) -> dict[str, Any]:
        return {"name": t.name, "shape": [int(d) for d in t.shape], "dtype": t.dtype.name}

    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [tensor(layer.get_output(j)) for j in range(layer.num_outputs)]
        layers.append(
            {
                "name": layer.name,
                "type": layer.type.name,
                "precision": "/".join(dict.fromkeys(o["dtype"] for o in outputs)) or "-",
                "inputs": [
                    t.name if (t := layer.get_input(j)) is not None else None for j in range(layer.num_inputs)
                ],
                "outputs": outputs,
            }
        )
    inputs = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        entry = tensor(t)
        entry["dim_names"] = (
            [t.get_dimension_name(j) for j in range(len(entry["shape"]))]
            if hasattr(t, "get_dimension_name")
            else []
        )
        inputs.append(entry)
    return {
        "inputs": inputs,
        "outputs": [tensor(network.get_output(i)) for i in range(network.num_outputs)],
        "num_layers": network.num_layers,
        "layers": layers,
    }


def _parse(
    trt: Any, builder: Any, flavour: FlavourInfo, onnx_path: Path, request: BuildRequest
) -> tuple[Any, dict[str, Any]]:
    """The parsed network (strongly typed unless builder precision flags are asked for) and its description."""
    weakly_typed = request.builder_fp16 or request.calibration is not None
    flags = 0
    if flavour.caps.strong_typing_opt_in and not weakly_typed:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network, _parser = parse_network(trt, builder, onnx_path, flags, flavour.label)
    info = describe_network(trt, network)
    info["typing"] = (
        "weak (builder precision flags)" if weakly_typed else "strong (precision from the ONNX graph)"
    )
    return network, info


def _configure(
    trt: Any, config: Any, logger: Any, flavour: FlavourInfo, request: BuildRequest, notes: list[str]
) -> dict[str, Any]:
    """Set the builder config from the request; returns the targets the engine is built for."""
    caps, label = flavour.caps, flavour.label
    with contextlib.suppress(AttributeError):
        config.profiling_verbosity = (
            trt.ProfilingVerbosity.DETAILED
        )  # so the engine inspector shows everything
    if request.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(request.workspace_mib) << 20)
    config.builder_optimization_level = int(request.optimization_level)

    targets: dict[str, Any] = {}
    if caps.compute_capabilities:
        targets["compute_capabilities"] = _set_targets(
            trt, config, logger, request.compute_capabilities, label
        )
        targets["default_set"] = not request.compute_capabilities
    if request.hardware_compatibility != "none":
        if caps.hardware_compatibility:
            config.hardware_compatibility_level = getattr(
                trt.HardwareCompatibilityLevel, HW_LEVELS[request.hardware_compatibility]
            )
        else:
            notes.append(
                f"{label} ignores hardware_compatibility ({request.hardware_compatibility}); "
                "use build.compute_capabilities to choose the GPUs"
            )
    targets["hardware_compatibility"] = (
        request.hardware_compatibility if caps.hardware_compatibility else "n/a"
    )
    if request.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if request.builder_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        notes.append("FP16 by builder flag on the FP32 graph (TensorRT picks FP16 kernels where faster)")
    return targets


def _add_profiles(
    builder: Any, config: Any, logger: Any, request: BuildRequest, info: dict[str, Any], label: str
) -> tuple[list[Profile], list[Any]]:
    """The request's profiles fitted to the network, added to the config (a rejected one is exit 2)."""
    network_inputs = {t["name"]: t["shape"] for t in info["inputs"]}
    profiles = fit_to_network(request.profiles, network_inputs)
    trt_profiles = []
    for index, profile in enumerate(profiles):
        prof = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            prof.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        mark = logger.mark()
        if config.add_optimization_profile(prof) < 0:
            raise UsageError(
                f"TensorRT ({label}) rejected optimization profile {index} "
                f"({describe_profiles([profile])[0]}): "
                + ("; ".join(logger.since(mark)) or "invalid profile"),
                hint="Each profile needs min <= opt <= max for every dynamic input.",
            )
        trt_profiles.append(prof)
    return profiles, trt_profiles


def build_engine(
    flavour: FlavourInfo, onnx_path: Path, engine_path: Path, request: BuildRequest
) -> BuildResult:
    """Parse, configure, build and write the engine atomically. Raises UsageError/StageError with hints."""
    check_request(flavour, request)
    trt = flavour.load()
    caps, label = flavour.caps, flavour.label
    logger = capture_logger(trt)
    notes: list[str] = []
    builder = trt.Builder(logger)
    network, info = _parse(trt, builder, flavour, onnx_path, request)
    config = builder.create_builder_config()
    targets = _configure(trt, config, logger, flavour, request, notes)
    profiles, trt_profiles = _add_profiles(builder, config, logger, request, info, label)

    if request.calibration is not None:
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = request.calibration.calibrator
        if trt_profiles:
            config.set_calibration_profile(trt_profiles[0])
        notes.append("INT8 by implicit calibration (TensorRT 10; deprecated by NVIDIA in favour of Q/DQ)")

    cache_info = _load_timing_cache(trt, config, caps.timing_cache, request, label, notes)

    mark = logger.mark()
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise build_failure(logger.since(mark, keep_noise=True), Path(onnx_path), label)
    with atomic_path(engine_path) as tmp, open(tmp, "wb") as fh:
        fh.write(memoryview(serialized))
    del serialized

    if cache_info.get("used") and request.managed_timing_cache is not None:
        with _quiet_deprecations():
            cache = config.get_timing_cache()
            if cache is not None:
                data = bytes(memoryview(cache.serialize()))
                atomic_write_bytes(request.managed_timing_cache, data)
                cache_info["saved_bytes"] = len(data)
    header = read_header_file(engine_path)
    return BuildResult(
        engine=Path(engine_path),
        seconds=seconds,
        size=Path(engine_path).stat().st_size,
        sha256=sha256_file(engine_path),
        network=info,
        header=header,
        profiles=profiles,
        targets=targets,
        timing_cache=cache_info,
        notes=notes,
    )


def _set_targets(trt: Any, config: Any, logger: Any, wanted: list[str], label: str) -> list[str]:
    if not wanted:
        return list(RTX_DEFAULT_TARGETS)
    config.num_compute_capabilities = len(wanted)
    for index, target in enumerate(wanted):
        member = getattr(trt.ComputeCapability, target, None)
        mark = logger.mark()
        if member is None or not config.set_compute_capability(member, index):
            why = "; ".join(logger.since(mark)) or f"{label} does not know this target"
            raise UsageError(
                f"{label} rejected compute capability {describe_target(target)}: {why}",
                hint="Use known targets, e.g. --compute-capability 8.6,8.9,12.0; 'current' must be "
                "the only one.",
            )
    return list(wanted)


def _load_timing_cache(
    trt: Any, config: Any, works: bool, request: BuildRequest, label: str, notes: list[str]
) -> dict[str, Any]:
    """Start the build from infercc's own cache (build.managed_timing_cache) with the user's cache
    (build.timing_cache) merged in. The user's file is only read; the build rewrites infercc's own."""
    user, managed = request.timing_cache, request.managed_timing_cache
    if user is None and managed is None:
        return {"used": False}
    if not works:
        if user is None:
            return {"used": False}
        notes.append(
            f"{label} ignores the timing cache (a no-op since TensorRT-RTX 1.2; kernels are "
            "compiled on the user's "
            f"GPU at run time): {user} was neither read nor written"
        )
        return {"used": False, "file": str(user), "ignored": True}
    own = Path(managed).read_bytes() if managed is not None and Path(managed).is_file() else b""
    with _quiet_deprecations():
        cache = _own_timing_cache(config, own, managed, label)
        info: dict[str, Any] = {
            "used": True,
            "managed": str(managed) if managed else None,
            "loaded_bytes": len(own),
        }
        if user is not None:
            blob = Path(user).read_bytes() if Path(user).is_file() else b""
            # a cache from another TensorRT version or GPU is not merged (ignore_mismatch=False)
            merged = bool(blob) and cache.combine(_timing_cache(config, blob, user, label), False)
            info.update(file=str(user), user_bytes=len(blob), merged=merged)
            notes.append(
                f"timing cache {user}: {len(blob):,} bytes "
                + ("merged" if merged else "not merged (empty, or from another TensorRT version or GPU)")
            )
        config.set_timing_cache(cache, False)  # ignore_mismatch=False: a cache from another GPU is not used
    return info


def _own_timing_cache(config: Any, blob: bytes, path: Path | None, label: str) -> Any:
    """infercc's own cache, or a new one when it cannot be read (it only ever saves build time)."""
    try:
        cache = config.create_timing_cache(blob)
    except Exception:
        cache = None
    return cache if cache is not None else _timing_cache(config, b"", path, label)


def _timing_cache(config: Any, blob: bytes, path: Path | None, label: str) -> Any:
    cache = config.create_timing_cache(blob)
    if cache is None:
        raise StageError(
            f"TensorRT ({label}) could not read the timing cache {path}.",
            hint="Point --timing-cache at another file, or delete infercc's own cache (it is rebuilt).",
        )
    return cache
