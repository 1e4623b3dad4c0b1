"""The runtime interface and its registry.

A runtime is a context manager: it loads its artifact on enter and frees it on exit.
    io_spec()                      -> the inputs and outputs it expects
    infer(feeds)                   -> {output name: numpy array}
    time_infer(feeds, iters, warmup) -> seconds per iteration, device-synchronised
`status()` says whether the runtime can run here, importing nothing heavy. Newer adapters also declare, as
class attributes, `device` ("cpu"/"cuda"), `timing` ("wall-clock"/"cuda-events") and `capabilities` (a
frozenset such as {"dynamic-shapes", "cuda-graphs", "peer"}).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


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

    @classmethod
    def status(cls) -> RuntimeStatus: ...

    def __enter__(self) -> Runtime: ...

    def __exit__(self, *exc: object) -> None: ...

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]: ...

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]: ...


# name -> "module:Class"; modules are imported only when the runtime is used.
REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    if name in REGISTRY:
        raise ValueError(f"runtime {name!r} is registered twice")
    REGISTRY[name] = target


register("pytorch-cpu", "infercc.runtimes.torch_ref:TorchCPU")
register("pytorch-cuda", "infercc.runtimes.torch_ref:TorchCUDA")
register("onnxruntime-cpu", "infercc.runtimes.onnxrt:OrtCPU")
register("onnxruntime-cuda", "infercc.runtimes.onnxrt:OrtCUDA")
register("tensorrt", "infercc.runtimes.tensorrt:TensorRTRuntime")
register("openvino-cpu", "infercc.openvino.runtime:OpenVINOCPU")
register("inductor-cpu", "infercc.inductor.runtime:InductorCPU")
register("inductor-cuda", "infercc.inductor.runtime:InductorCUDA")
register("torch-compile-cpu", "infercc.inductor.peer:TorchCompileCPU")
register("torch-compile-cuda", "infercc.inductor.peer:TorchCompileCUDA")

# kinds of artifact files the pipeline writes; a runtime declares which of them it runs
ARTIFACT_KINDS = ("onnx", "engine", "inductor")


def registry_target(name: str) -> str:
    """The "module:Class" a runtime name is registered to."""
    from infercc.errors import UsageError

    if name not in REGISTRY:
        raise UsageError(f"Unknown runtime {name!r}.", hint=f"Known runtimes: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def runtime_class(name: str) -> type:
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


def time_loop(run_once: Any, sync: Any, iters: int, warmup: int) -> list[float]:
    """Shared CPU timing loop: per-iteration wall time after `sync` (a no-op on CPU)."""
    import time

    for _ in range(warmup):
        run_once()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run_once()
        sync()
        times.append(time.perf_counter() - start)
    return times


ORT_ONLY = ("onnxruntime-cpu", "onnxruntime-cuda")  # graphs with com.microsoft ops (fused for ONNX Runtime)


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
    from infercc.errors import InferccError

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
    from infercc.errors import MissingRuntimeError

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
