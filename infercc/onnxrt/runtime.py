"""The onnxruntime-cpu and onnxruntime-cuda runtimes: ONNX Runtime with the CPU or the CUDA execution provider."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.errors import MissingRuntimeError, UsageError
from infercc.lazy import is_installed, require
from infercc.onnxrt.errors import explain_ort_error, ort_version
from infercc.runtimes.base import (
    Capability,
    Device,
    RuntimeBase,
    RuntimeName,
    RuntimeStatus,
    TensorSpec,
    check_feeds,
)
from infercc.runtimes.timing import cuda_event_times, time_loop

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


# ONNX Runtime's CPU layout pass (NCHWc blocking) segfaults while building the session of FP16 graphs with a
# dynamic batch (ONNX Runtime 1.31 and 1.32; seen on ViT-B/16 and a two-block ViT): off for graphs with FP16
# tensors, where the CPU provider computes the convolutions in FP32 behind Casts anyway.
FP16_DISABLED_OPTIMIZERS = ("NchwcTransformer",)


def disabled_optimizers(path: Path) -> list[str]:
    """The graph optimizers to turn off for this file (FP16_DISABLED_OPTIMIZERS when it holds FP16 tensors)."""
    from infercc.onnxutil import load_onnx

    try:
        graph = load_onnx(path, with_data=False).graph
    except Exception:
        return []  # unreadable: ONNX Runtime's own load says why
    fp16 = 10  # onnx.TensorProto.FLOAT16
    holds_fp16 = any(t.data_type == fp16 for t in graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16 for v in [*graph.input, *graph.output]
    )
    return list(FP16_DISABLED_OPTIMIZERS) if holds_fp16 else []


class OrtCPU(RuntimeBase):
    """ONNX Runtime with the CPU execution provider."""

    name: ClassVar[str] = RuntimeName.ONNXRUNTIME_CPU
    artifact_kinds: ClassVar[tuple[str, ...]] = ("onnx",)
    device: ClassVar[Device] = Device.CPU
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DYNAMIC_SHAPES, Capability.INT8})
    providers: ClassVar[list[str]] = ["CPUExecutionProvider"]

    def __init__(self, artifact: Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(artifact)
        self.threads = threads
        self.session: Any = None

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not (is_installed("onnxruntime")):
            return RuntimeStatus(cls.name, False, "onnxruntime is not installed: pip install onnxruntime")
        return RuntimeStatus(cls.name, True, version=ort_version())

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
                str(self.path),
                sess_options=self._session_options(),
                providers=self.providers,
                disabled_optimizers=disabled_optimizers(self.path),
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
        return check_feeds(feeds, self.io_spec()[0], self.path.name)

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
    """ONNX Runtime with the CUDA execution provider.

    Timing binds inputs and outputs to device buffers (I/O binding), so host-device copies stay out of the
    figure (`time_h2d` times them on their own); ORT runs on PyTorch's current CUDA stream where PyTorch has
    CUDA, and CUDA events on that stream time each run. With `cuda_graph`, a second session per input shape
    captures the whole run as a CUDA graph and replays it; if capture fails (ops outside the CUDA provider),
    timing falls back to plain I/O binding and says so in `notes`.
    """

    name: ClassVar[str] = RuntimeName.ONNXRUNTIME_CUDA
    device: ClassVar[Device] = Device.CUDA
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.DYNAMIC_SHAPES,
            Capability.FP16,
            Capability.INT8,
            Capability.IO_BINDING,
            Capability.CUDA_EVENTS,
            Capability.CUDA_GRAPHS,
            Capability.H2D_TIMING,
        }
    )
    providers: ClassVar[list[str]] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    timing: str = "cuda-events"

    def __init__(
        self,
        artifact: Path,
        threads: int | None = None,
        cuda_graph: bool = False,
        provider_options: dict[str, str] | None = None,
    ) -> None:
        super().__init__(artifact, threads)
        self.cuda_graph = cuda_graph
        self.provider_options = dict(provider_options or {})  # e.g. prefer_nhwc, cudnn_conv_algo_search
        self._torch: Any = None
        self._graph_sessions: dict[Any, Any] = {}

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not is_installed("onnxruntime"):
            return RuntimeStatus(
                cls.name, False, "onnxruntime-gpu is not installed: pip install 'infercc[gpu]'"
            )
        if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            return RuntimeStatus(cls.name, False, "CUDA_VISIBLE_DEVICES is empty")
        ort = require("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return RuntimeStatus(
                cls.name,
                False,
                "this onnxruntime has no CUDA provider: pip install 'infercc[gpu]'",
                ort_version(),
            )
        return RuntimeStatus(cls.name, True, version=getattr(ort, "__version__", None) or ort_version())

    def _cuda_torch(self) -> Any:
        """PyTorch with CUDA, when present: its stream and events time ORT's kernels."""
        if self._torch is None:
            try:
                import torch

                self._torch = torch if torch.cuda.is_available() else False
            except ImportError:
                self._torch = False
        return self._torch or None

    def _provider_options(self, graph: bool) -> list[Any]:
        options: dict[str, str] = {"device_id": "0", **self.provider_options}
        torch = self._cuda_torch()
        if torch is not None:
            options["user_compute_stream"] = str(torch.cuda.current_stream().cuda_stream)
        if graph:
            options["enable_cuda_graph"] = "1"
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]

    def __enter__(self) -> OrtCUDA:
        ort = require("onnxruntime", "running ONNX artifacts on CUDA")
        self._cuda_torch()  # loads PyTorch's CUDA libraries first, which ORT's CUDA provider can then share
        if hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception:
                pass
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise MissingRuntimeError(
                f"ONNX Runtime here lacks the CUDA provider (has {', '.join(ort.get_available_providers())}).",
                hint="pip install 'infercc[gpu]' (onnxruntime-gpu) on a machine with a CUDA GPU.",
            )
        if not self.path.is_file():
            raise UsageError(f"ONNX file {self.path} does not exist.")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=self._session_options(), providers=self._provider_options(False)
            )
        except Exception as exc:
            raise explain_ort_error(exc, self.path) from exc
        if "CUDAExecutionProvider" not in self.session.get_providers():
            raise MissingRuntimeError(
                f"ONNX Runtime could not start its CUDA provider for {self.path.name}.",
                hint="Check the CUDA and cuDNN libraries (infercc doctor).",
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._graph_sessions.clear()
        self.session = None

    def device_memory(self) -> int | None:
        """Bytes in use on the GPU (whole device, as the driver reports it)."""
        torch = self._cuda_torch()
        if torch is None:
            return None
        free, total = torch.cuda.mem_get_info()
        return int(total - free)

    def _bound(
        self, session: Any, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
    ) -> tuple[Any, list[Any]]:
        ort = require("onnxruntime")
        binding = session.io_binding()
        keep = []
        for name, value in feeds.items():
            dev = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), "cuda", 0)
            binding.bind_ortvalue_input(name, dev)
            keep.append(dev)
        for name, value in outputs.items():
            dev = ort.OrtValue.ortvalue_from_shape_and_type(list(value.shape), value.dtype, "cuda", 0)
            binding.bind_ortvalue_output(name, dev)
            keep.append(dev)
        return binding, keep

    def _graph_session(self, feeds: dict[str, np.ndarray]) -> Any:
        ort = require("onnxruntime")
        key = tuple((n, v.shape) for n, v in sorted(feeds.items()))
        if key not in self._graph_sessions:
            try:
                self._graph_sessions[key] = ort.InferenceSession(
                    str(self.path),
                    sess_options=fixed_dimensions(self._session_options(), self.session, feeds),
                    providers=self._provider_options(True),
                )
            except Exception as exc:
                self._graph_sessions[key] = None
                self.notes.append(
                    f"CUDA graph unavailable for {self.path.name}: {str(exc).strip().splitlines()[0][:200]}"
                )
        return self._graph_sessions[key]

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        """Device time per run (CUDA events), inputs and outputs already on the GPU."""
        feeds = self.check_feeds(feeds)
        outputs = self.infer(feeds)
        session, graph = self.session, False
        if self.cuda_graph:
            graph_session = self._graph_session(feeds)
            if graph_session is not None:
                session, graph = graph_session, True
        binding, _keep = self._bound(session, feeds, outputs)
        try:
            session.run_with_iobinding(binding)  # with a CUDA graph: the capture
        except Exception as exc:
            if not graph:
                raise explain_ort_error(exc, self.path) from exc
            self.notes.append(
                f"CUDA graph capture failed for {self.path.name}: {str(exc).strip().splitlines()[0][:200]}"
            )
            self._graph_sessions[tuple((n, v.shape) for n, v in sorted(feeds.items()))] = None
            session, graph = self.session, False
            binding, _keep = self._bound(session, feeds, outputs)
        self.timing = "cuda-events" + (" + cuda-graph" if graph else "") + " + io-binding"
        run = lambda: session.run_with_iobinding(binding)  # noqa: E731
        torch = self._cuda_torch()
        if torch is None:
            self.timing = self.timing.replace("cuda-events", "wall-clock")
            return time_loop(run, binding.synchronize_outputs, iters, warmup)
        return cuda_event_times(torch, run, iters, warmup)  # ORT runs on PyTorch's current stream

    def time_h2d(self, feeds: dict[str, np.ndarray], iters: int) -> list[float]:
        """Host-to-device copy of every input, timed on its own (wall clock, synchronous copies)."""
        ort = require("onnxruntime")
        feeds = self.check_feeds(feeds)

        def copy() -> None:
            for value in feeds.values():
                ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0)

        return time_loop(copy, lambda: None, iters, 0)


def free_dimensions(session: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """Each named (symbolic) input dimension of `session` and its size in `feeds`."""
    sizes: dict[str, int] = {}
    for arg in session.get_inputs():
        if arg.name in feeds:
            for dim, size in zip(arg.shape, feeds[arg.name].shape, strict=False):
                if isinstance(dim, str) and dim:
                    sizes.setdefault(dim, int(size))
    return sizes


def fixed_dimensions(options: Any, session: Any, feeds: dict[str, np.ndarray]) -> Any:
    """Session options that fix every named input dimension to its size in `feeds`. A CUDA graph replays one
    shape anyway; with the sizes fixed ONNX Runtime folds the shape arithmetic (Shape -> Gather -> Range) into
    constants, so no node is left on the CPU and the graph can be captured, NHWC layout included."""
    for name, size in free_dimensions(session, feeds).items():
        options.add_free_dimension_override_by_name(name, size)
    return options
