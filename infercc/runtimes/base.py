"""The runtime interface, the base every adapter builds on, and the registry of runtime names.

A runtime is a context manager: it loads its artifact on enter and frees it on exit.
    io_spec()                        -> the inputs and outputs it expects
    infer(feeds)                     -> {output name: numpy array}
    time_infer(feeds, iters, warmup) -> seconds per iteration, device-synchronised
`status()` says whether the runtime can run here, importing nothing heavy. Every adapter declares, as class
attributes, the `device` it runs on, the `artifact_kinds` it runs and its `capabilities`; stages decide on those
declarations (TensorRT's own numerics in verify are the one exception, keyed on its name). Its constructor
names every option it takes: an option it does not know is a TypeError, not silently dropped.
`check_feeds` is the one feed check; runtimes.timing holds the timing loops and the CUDA-graph capture.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from infercc.errors import InferccError, MissingRuntimeError, UsageError


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


class Capability(StrEnum):
    """What a runtime offers beyond the protocol."""

    CUDA_EVENTS = "cuda-events"  # time_infer measures device time between CUDA events
    CUDA_GRAPHS = (
        "cuda-graphs"  # takes `cuda_graph` (bench.cuda_graph): replays a captured CUDA graph per shape
    )
    IO_BINDING = "io-binding"  # times with inputs and outputs already in device buffers
    H2D_TIMING = "h2d-timing"  # time_h2d(feeds, iters): the host-to-device copies timed on their own
    DYNAMIC_SHAPES = "dynamic-shapes"  # one loaded artifact serves a range of input shapes
    FP16 = "fp16"  # computes in these precisions where the artifact asks for them
    BF16 = "bf16"
    INT8 = "int8"
    CHILD_PROCESS = "child-process"  # runs its model in a child process of its own
    PEER = "peer"  # what a user gets without infercc (torch.compile): timed for comparison, never selected


class RuntimeName(StrEnum):
    """The runtimes infercc ships (tests and plug-ins may register more under other names)."""

    PYTORCH_CPU = "pytorch-cpu"
    PYTORCH_CUDA = "pytorch-cuda"
    ONNXRUNTIME_CPU = "onnxruntime-cpu"
    ONNXRUNTIME_CUDA = "onnxruntime-cuda"
    TENSORRT = "tensorrt"
    OPENVINO_CPU = "openvino-cpu"
    INDUCTOR_CPU = "inductor-cpu"
    INDUCTOR_CUDA = "inductor-cuda"
    TORCH_COMPILE_CPU = "torch-compile-cpu"
    TORCH_COMPILE_CUDA = "torch-compile-cuda"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | str | None, ...]  # str/None for dynamic dims


@dataclass(frozen=True)
class RuntimeStatus:
    name: str
    available: bool
    reason: str = ""  # why not, with the install hint
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Runtime(Protocol):
    name: ClassVar[str]
    artifact_kinds: ClassVar[tuple[str, ...]]  # "onnx", "engine", "inductor", "torch", "torch-compile"
    device: ClassVar[Device]
    capabilities: ClassVar[frozenset[Capability]]
    timing: str  # how time_infer timed its last call: "wall-clock", "cuda-events + cuda-graph" ...
    notes: list[
        str
    ]  # what the runtime wants said about its figures (a CUDA graph that could not be captured)
    run_settings: dict[str, Any]  # threads, hints, precision it actually ran with, where it reports them
    compile_s: dict[str, float]  # compile time per input shape, for runtimes that compile on first call

    @classmethod
    def status(cls) -> RuntimeStatus: ...

    def __enter__(self) -> Runtime: ...

    def __exit__(self, *exc: object) -> None: ...

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]: ...

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]: ...

    def device_memory(self) -> int | None: ...


class RuntimeBase:
    """What every adapter shares: the declared attributes with their defaults, and what it reports."""

    name: ClassVar[str]
    artifact_kinds: ClassVar[tuple[str, ...]]
    device: ClassVar[Device] = Device.CPU
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    timing: str = "wall-clock"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.run_settings: dict[str, Any] = {}
        self.compile_s: dict[str, float] = {}

    def device_memory(self) -> int | None:
        """Bytes in use on the device (whole device, as the driver reports it); None on the CPU."""
        return None


# numpy dtypes a feed is cast to when the artifact declares one of them
_CASTABLE = {"float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"}


def check_feeds(
    feeds: dict[str, np.ndarray], inputs: list[TensorSpec], artifact: str
) -> dict[str, np.ndarray]:
    """Feeds that name exactly the artifact's inputs, with its ranks and fixed dimensions, as contiguous arrays
    of its dtypes; a UsageError (exit 2) naming the input otherwise."""
    expected = {t.name: t for t in inputs}
    unknown = sorted(set(feeds) - set(expected))
    missing = sorted(set(expected) - set(feeds))
    if unknown or missing:
        raise UsageError(
            f"Inputs do not match {artifact}: "
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + (f"missing {', '.join(missing)}; " if missing else "")
            + f"the model takes {', '.join(expected)}."
        )
    checked = {}
    for name, value in feeds.items():
        spec = expected[name]
        if value.ndim != len(spec.shape):
            raise UsageError(
                f"Input {name} has rank {value.ndim} (shape {list(value.shape)}); {artifact} expects rank "
                f"{len(spec.shape)} {list(spec.shape)}."
            )
        for axis, (got, want) in enumerate(zip(value.shape, spec.shape, strict=True)):
            if isinstance(want, int) and want > 0 and got != want:
                raise UsageError(f"Input {name} dimension {axis} is {got}; {artifact} fixes it at {want}.")
        dtype = spec.dtype if spec.dtype in _CASTABLE else None
        checked[name] = np.asarray(value, dtype=dtype, order="C")  # ascontiguousarray makes a scalar 1-d
    return checked


# --- the registry ---------------------------------------------------------------------------------------

# name -> "module:Class"; modules are imported only when the runtime is used.
REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    if name in REGISTRY:
        raise ValueError(f"runtime {name!r} is registered twice")
    REGISTRY[str(name)] = target


register(RuntimeName.PYTORCH_CPU, "infercc.runtimes.torch_ref:TorchCPU")
register(RuntimeName.PYTORCH_CUDA, "infercc.runtimes.torch_ref:TorchCUDA")
register(RuntimeName.ONNXRUNTIME_CPU, "infercc.onnxrt.runtime:OrtCPU")
register(RuntimeName.ONNXRUNTIME_CUDA, "infercc.onnxrt.runtime:OrtCUDA")
register(RuntimeName.TENSORRT, "infercc.tensorrt.runtime:TensorRTRuntime")
register(RuntimeName.OPENVINO_CPU, "infercc.openvino.runtime:OpenVINOCPU")
register(RuntimeName.INDUCTOR_CPU, "infercc.inductor.runtime:InductorCPU")
register(RuntimeName.INDUCTOR_CUDA, "infercc.inductor.runtime:InductorCUDA")
register(RuntimeName.TORCH_COMPILE_CPU, "infercc.inductor.peer:TorchCompileCPU")
register(RuntimeName.TORCH_COMPILE_CUDA, "infercc.inductor.peer:TorchCompileCUDA")

# kinds of artifact files the pipeline writes; a runtime declares which of them it runs
ARTIFACT_KINDS = ("onnx", "engine", "inductor")
# graphs with com.microsoft ops (fused for ONNX Runtime) run on these only
ORT_ONLY = (RuntimeName.ONNXRUNTIME_CPU.value, RuntimeName.ONNXRUNTIME_CUDA.value)


def runtime_names() -> list[str]:
    """Every registered runtime name, in registration order (choices for the CLI and the config)."""
    return list(REGISTRY)


def check_runtime_names(names: Iterable[str]) -> list[str]:
    """`names` when every one is registered; a ValueError naming the first unknown one (with the closest known
    name) otherwise, for the config's validators."""
    names = list(names)
    for name in names:
        if name not in REGISTRY:
            close = difflib.get_close_matches(name, list(REGISTRY), n=1)
            guess = f"; did you mean '{close[0]}'?" if close else "."
            raise ValueError(f"Unknown runtime {name!r}{guess} Known runtimes: {', '.join(REGISTRY)}.")
    return names


def registry_target(name: str) -> str:
    """The "module:Class" a runtime name is registered to."""
    if name not in REGISTRY:
        raise UsageError(f"Unknown runtime {name!r}.", hint=f"Known runtimes: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def runtime_class(name: str) -> type[Any]:
    module_name, cls_name = registry_target(name).split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def get_runtime(name: str, artifact: Path | Any, **options: Any) -> Runtime:
    """Instantiate runtime `name` for an artifact (a file path, or an nn.Module for PyTorch)."""
    return runtime_class(name)(artifact, **options)


def runtime_statuses() -> list[RuntimeStatus]:
    statuses = []
    for name in REGISTRY:
        try:
            statuses.append(runtime_class(name).status())
        except Exception as exc:  # a broken install must not break `doctor`
            statuses.append(RuntimeStatus(name, False, f"probe failed: {exc}"))
    return statuses


def runs_artifact(runtime: str, cls: type, art: Any) -> bool:
    """Whether `runtime` should run artifact record `art`: its kind fits, and the artifact does not name the
    only runtimes that can read it (meta["runtimes"], e.g. a graph fused into ONNX Runtime's own ops)."""
    only = (getattr(art, "meta", None) or {}).get("runtimes")
    return art.kind in cls.artifact_kinds and (not only or runtime in only)


def candidate_runtimes(wanted: list[str], kinds: tuple[str, ...] = ARTIFACT_KINDS) -> list[str]:
    """The configured runtimes, or every registered runtime that runs artifact files (ONNX, engines,
    AOTInductor packages)."""
    if wanted:
        return list(wanted)
    names = []
    for name in REGISTRY:
        try:
            cls = runtime_class(name)
        except Exception:  # an adapter that cannot even be imported is still listed (as skipped)
            names.append(name)
            continue
        if set(cls.artifact_kinds) & set(kinds):
            names.append(name)
    return names


def probe(name: str) -> tuple[type | None, str]:
    """(runtime class, '') if it can run here, else (None or class, why not)."""
    try:
        cls = runtime_class(name)
    except InferccError:
        raise
    except Exception as exc:
        return (
            None,
            f"adapter failed to import: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
        )
    try:
        status = cls.status()
    except Exception as exc:
        return cls, f"status probe failed: {type(exc).__name__}: {exc}"
    return (cls, "") if status.available else (cls, status.reason or "not available")


def usable_runtimes(wanted: list[str], setting: str) -> tuple[list[tuple[str, type]], list[dict[str, str]]]:
    """The runtimes a stage should use here, and those it skips with the reason. A runtime the user named
    (`setting`, e.g. verify.runtimes) that cannot run here is an error (exit 3), not a skip."""
    usable: list[tuple[str, type]] = []
    skipped: list[dict[str, str]] = []
    for name in candidate_runtimes(wanted):
        cls, reason = probe(name)
        if reason:
            if wanted:
                raise MissingRuntimeError(
                    f"Runtime {name} is not available here: {reason}",
                    hint=f"Drop it from {setting}, or install it (infercc doctor).",
                )
            skipped.append({"runtime": name, "reason": reason})
            continue
        assert cls is not None
        usable.append((name, cls))
    return usable, skipped
