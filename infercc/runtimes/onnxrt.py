"""ONNX Runtime adapter (CPU and CUDA execution providers)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.errors import MissingRuntimeError, StageError, UsageError
from infercc.lazy import is_installed, require, version_of
from infercc.runtimes.base import RuntimeStatus, TensorSpec, time_loop

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _ort_version() -> str | None:
    return version_of("onnxruntime") or version_of("onnxruntime-gpu")


def explain_ort_error(exc: Exception, path: Path) -> StageError:
    """One readable line for ONNX Runtime's load/run errors, naming the op and node where it can."""
    text = str(exc)
    missing = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", text)
    if missing:
        op, opset, node = missing.groups()
        return StageError(
            f"ONNX Runtime cannot run op {op} (opset {opset}) at node '{node}' in {path.name}.",
            hint="Export with another --opset, exclude the op from quantization, or use a runtime that supports it.",
        )
    opset = re.search(r"(?:Opset|opset) (\d+) .*(?:not|under) .*support", text)
    if opset or "is under development and support for this is limited" in text:
        return StageError(
            f"The installed ONNX Runtime {_ort_version()} does not support the opset of {path.name}: {text.strip()[:300]}",
            hint="Re-export with a lower --opset (e.g. 17) or upgrade onnxruntime.",
        )
    if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
        return StageError(
            f"{path} is not a readable ONNX file (truncated or corrupt).",
            hint="Re-create it; with infercc, run the stage again with --force.",
        )
    node = re.search(r"[Nn]ode \(([^)]*)\)", text)
    where = f" at node '{node.group(1)}'" if node else ""
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return StageError(f"ONNX Runtime failed{where} on {path.name}: {first[:1200]}")


class OrtCPU:
    """ONNX Runtime with the CPU execution provider."""

    name: ClassVar[str] = "onnxruntime-cpu"
    artifact_kinds: ClassVar[tuple[str, ...]] = ("onnx",)
    providers: ClassVar[list[str]] = ["CPUExecutionProvider"]

    def __init__(self, artifact: Path, threads: int | None = None, **_: Any) -> None:
        self.path = Path(artifact)
        self.threads = threads
        self.session: Any = None

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not (is_installed("onnxruntime")):
            return RuntimeStatus(cls.name, False, "onnxruntime is not installed: pip install onnxruntime")
        return RuntimeStatus(cls.name, True, version=_ort_version())

    def _session_options(self) -> Any:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 4
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        return options

    def __enter__(self) -> OrtCPU:
        ort = require("onnxruntime", "running ONNX artifacts")
        if not self.path.is_file():
            raise UsageError(f"ONNX file {self.path} does not exist.")
        ort.set_default_logger_severity(4)  # errors come back as exceptions; keep ORT's own log quiet
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise MissingRuntimeError(
                f"ONNX Runtime here lacks {', '.join(missing)} (has {', '.join(ort.get_available_providers())}).",
                hint="pip install 'infercc[gpu]' (onnxruntime-gpu) on a machine with a CUDA GPU.",
            )
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=self._session_options(), providers=self.providers
            )
        except Exception as exc:
            raise explain_ort_error(exc, self.path) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self.session = None

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(arg: Any) -> TensorSpec:
            return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), tuple(arg.shape))

        return [spec(a) for a in self.session.get_inputs()], [spec(a) for a in self.session.get_outputs()]

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs, _ = self.io_spec()
        expected = {t.name: t for t in inputs}
        unknown = sorted(set(feeds) - set(expected))
        missing = sorted(set(expected) - set(feeds))
        if unknown or missing:
            raise UsageError(
                f"Inputs do not match {self.path.name}: "
                + (f"unknown {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}; " if missing else "")
                + f"the model takes {', '.join(expected)}."
            )
        checked = {}
        for name, value in feeds.items():
            spec = expected[name]
            if value.ndim != len(spec.shape):
                raise UsageError(
                    f"Input {name} has rank {value.ndim} (shape {list(value.shape)}); {self.path.name} expects rank "
                    f"{len(spec.shape)} {list(spec.shape)}."
                )
            for axis, (got, want) in enumerate(zip(value.shape, spec.shape, strict=True)):
                if isinstance(want, int) and want > 0 and got != want:
                    raise UsageError(
                        f"Input {name} dimension {axis} is {got}; {self.path.name} fixes it at {want}."
                    )
            checked[name] = value.astype(spec.dtype, copy=False) if spec.dtype in _ORT_TYPES.values() else value
        return checked

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(feeds)
        names = [o.name for o in self.session.get_outputs()]
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:
            raise explain_ort_error(exc, self.path) from exc
        return dict(zip(names, values, strict=True))

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        feeds = self.check_feeds(feeds)
        names = [o.name for o in self.session.get_outputs()]
        return time_loop(lambda: self.session.run(names, feeds), lambda: None, iters, warmup)


class OrtCUDA(OrtCPU):
    """ONNX Runtime with the CUDA execution provider; timing uses I/O binding with data already on the GPU."""

    name: ClassVar[str] = "onnxruntime-cuda"
    providers: ClassVar[list[str]] = ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def __init__(self, artifact: Path, threads: int | None = None, cuda_graph: bool = False, **_: Any) -> None:
        super().__init__(artifact, threads)
        self.cuda_graph = cuda_graph

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not is_installed("onnxruntime"):
            return RuntimeStatus(cls.name, False, "onnxruntime-gpu is not installed: pip install 'infercc[gpu]'")
        if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            return RuntimeStatus(cls.name, False, "CUDA_VISIBLE_DEVICES is empty")
        ort = require("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return RuntimeStatus(
                cls.name, False, "this onnxruntime has no CUDA provider: pip install 'infercc[gpu]'", _ort_version()
            )
        return RuntimeStatus(cls.name, True, version=_ort_version())
