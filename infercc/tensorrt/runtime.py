"""The tensorrt runtime: a serialized engine (TensorRT 10/11 and TensorRT-RTX) run on the GPU.

Engines run with device buffers that are PyTorch CUDA tensors (no pycuda): set_input_shape /
set_tensor_address / execute_async_v3 on a torch CUDA stream, timed with CUDA events, optionally replayed
from a CUDA graph. Before deserializing, the engine's sidecar is checked against the installed TensorRT and
this GPU, so a mismatch gives the command that rebuilds the engine instead of a bare failure.
Nothing heavy is imported at module import time; `status()` reads package metadata and /dev only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.config import Flavour
from infercc.errors import InferccError, StageError, UsageError
from infercc.runtimes.base import (
    Capability,
    Device,
    RuntimeBase,
    RuntimeName,
    RuntimeStatus,
    TensorSpec,
    check_feeds,
)
from infercc.runtimes.timing import capture_cuda_graph, cuda_event_times
from infercc.tensorrt.flavours import not_installed_reason, select_flavour

# TensorRT DataType name -> (torch dtype name, numpy dtype name)
DTYPES = {
    "FLOAT": ("float32", "float32"),
    "HALF": ("float16", "float16"),
    "BF16": ("bfloat16", "float32"),
    "INT8": ("int8", "int8"),
    "UINT8": ("uint8", "uint8"),
    "INT32": ("int32", "int32"),
    "INT64": ("int64", "int64"),
    "BOOL": ("bool", "bool"),
}


def gpu_visible() -> bool:
    """A cheap guess (no CUDA call) that an NVIDIA GPU and driver are present."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg"))


class BufferPool:
    """Device buffers per tensor name, reused while they are big enough (stable addresses for CUDA graphs).

    `allocate(numel, dtype)` returns flat storage; `view(storage, numel, shape)` a shaped view of its start.
    `generation` changes whenever any storage was (re)allocated: a captured CUDA graph is then stale.
    """

    def __init__(
        self, allocate: Callable[[int, str], Any], view: Callable[[Any, int, tuple[int, ...]], Any]
    ) -> None:
        self.allocate, self.view = allocate, view
        self.storage: dict[str, tuple[Any, int, str]] = {}  # name -> (flat storage, capacity, dtype)
        self.generation = 0

    def get(self, name: str, shape: tuple[int, ...], dtype: str) -> Any:
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        held = self.storage.get(name)
        if held is None or held[1] < numel or held[2] != dtype:
            capacity = max(numel, 1)
            self.storage[name] = (self.allocate(capacity, dtype), capacity, dtype)
            self.generation += 1
        return self.view(self.storage[name][0], numel, shape)

    def release(self) -> None:
        self.storage.clear()
        self.generation += 1


class TensorRTRuntime(RuntimeBase):
    """Runs a serialized engine (.engine + sidecar .json) on the GPU. `threads` is taken like every runtime's
    and unused: the engine runs on the GPU. `cuda_graph` replays one captured execution per shape; the
    pipeline leaves it off (bench.cuda_graph applies to the runtimes that declare Capability.CUDA_GRAPHS)."""

    name: ClassVar[str] = RuntimeName.TENSORRT
    artifact_kinds: ClassVar[tuple[str, ...]] = ("engine",)
    device: ClassVar[Device] = Device.CUDA
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DYNAMIC_SHAPES, Capability.FP16, Capability.BF16, Capability.INT8, Capability.CUDA_EVENTS}
    )
    timing: str = "cuda-events"

    def __init__(
        self,
        artifact: Path,
        threads: int | None = None,
        cuda_graph: bool = False,
        flavour: Flavour = Flavour.auto,
    ) -> None:
        super().__init__()
        self.path = Path(artifact)
        self.cuda_graph = cuda_graph
        self.flavour_choice = flavour
        self.engine: Any = None
        self.context: Any = None
        self.profiles: list[dict[str, tuple[tuple[int, ...], ...]]] = []
        self.profile = 0
        self._graph: Any = None
        self._graph_key: Any = None

    @classmethod
    def status(cls) -> RuntimeStatus:
        try:
            flavour = select_flavour(Flavour.auto)
        except InferccError as exc:
            return RuntimeStatus(cls.name, False, exc.message)
        if flavour is None:
            return RuntimeStatus(cls.name, False, not_installed_reason(Flavour.auto))
        details = {"flavour": flavour.label, "module": flavour.module}
        if not gpu_visible():
            return RuntimeStatus(
                cls.name,
                False,
                f"{flavour.label} is installed but no NVIDIA GPU is visible (engines need one to run"
                + ("; building works without one)" if not flavour.caps.needs_gpu_to_build else ")"),
                flavour.version,
                details,
            )
        from infercc.lazy import is_installed

        if not is_installed("torch"):
            return RuntimeStatus(
                cls.name,
                False,
                "torch (CUDA build) is needed for device buffers: pip install torch",
                flavour.version,
                details,
            )
        return RuntimeStatus(cls.name, True, version=flavour.version, details=details)

    # --- loading ---------------------------------------------------------------------------------

    def __enter__(self) -> TensorRTRuntime:
        from infercc.lazy import require
        from infercc.tensorrt.errors import capture_logger
        from infercc.tensorrt.sidecar import cannot_load, gpu_problem, load_sidecar, version_problem

        sidecar = load_sidecar(self.path)
        flavour = select_flavour(self.flavour_choice)
        problem = version_problem(sidecar, flavour)
        if problem:
            raise cannot_load(self.path, sidecar, problem)
        torch = require("torch", "running TensorRT engines")
        if not torch.cuda.is_available():
            raise cannot_load(
                self.path, sidecar, "no CUDA GPU is visible to PyTorch (install a CUDA build of torch)"
            )
        problem = gpu_problem(sidecar, torch.cuda.get_device_capability(0), torch.cuda.get_device_name(0))
        if problem:
            raise cannot_load(self.path, sidecar, problem)
        assert flavour is not None
        trt = flavour.load()
        logger = capture_logger(trt)
        self._torch, self._trt = torch, trt
        self._runtime = trt.Runtime(logger)
        mark = logger.mark()
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            why = "; ".join(logger.since(mark)) or "TensorRT gave no reason"
            raise cannot_load(self.path, sidecar, f"{flavour.label} could not deserialize it ({why})")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: self.engine.get_tensor_dtype(n).name for n in names}
        self.profiles = [
            {
                n: tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(n, i))
                for n in self.inputs
                if any(d < 0 for d in self.engine.get_tensor_shape(n))
            }
            for i in range(self.engine.num_optimization_profiles)
        ]
        self.profile = 0
        self.pool = BufferPool(
            lambda numel, dtype: torch.empty(numel, dtype=getattr(torch, dtype), device="cuda"),
            lambda flat, numel, shape: flat[:numel].view(shape),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._graph = None
        if self.context is not None:
            self.pool.release()
        self.context = None
        self.engine = None

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(n: str) -> TensorSpec:
            shape = tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(n))
            return TensorSpec(n, DTYPES.get(self.dtypes[n], ("", self.dtypes[n].lower()))[1], shape)

        return [spec(n) for n in self.inputs], [spec(n) for n in self.outputs]

    # --- running ---------------------------------------------------------------------------------

    def _prepare(self, feeds: dict[str, np.ndarray]) -> None:
        """Choose the profile, set shapes, copy inputs into device buffers, bind every address."""
        from infercc.tensorrt.profiles import choose_profile

        torch = self._torch
        feeds = check_feeds(feeds, self.io_spec()[0], self.path.name)
        shapes = {n: tuple(int(d) for d in np.shape(v)) for n, v in feeds.items()}
        profile = choose_profile(self.profiles, shapes)
        if profile != self.profile:
            self.context.set_optimization_profile_async(profile, self.stream.cuda_stream)
            self.profile = profile
        for name in self.inputs:
            if not self.context.set_input_shape(name, shapes[name]):
                raise UsageError(
                    f"{self.path.name} does not accept input {name} with shape {list(shapes[name])}."
                )
            buf = self.pool.get(name, shapes[name], DTYPES[self.dtypes[name]][0])
            host = torch.from_numpy(feeds[name])
            with torch.cuda.stream(self.stream):
                buf.copy_(host, non_blocking=False)
            self.context.set_tensor_address(name, buf.data_ptr())
        self.buffers = {}
        for name in self.outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise StageError(
                    f"Output {name} of {self.path.name} has a data-dependent shape {list(shape)}; "
                    "infercc runs only engines whose output shapes follow from the input shapes."
                )
            self.buffers[name] = self.pool.get(name, shape, DTYPES[self.dtypes[name]][0])
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self._shapes_key = (profile, tuple(sorted(shapes.items())), self.pool.generation)

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise StageError(f"TensorRT failed to run {self.path.name} (execute_async_v3 returned False).")

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._prepare(feeds)
        self._execute()
        self.stream.synchronize()
        return {
            n: b.float().cpu().numpy() if self.dtypes[n] == "BF16" else b.cpu().numpy()
            for n, b in self.buffers.items()
        }

    def _replay(self) -> Callable[[], None]:
        """A CUDA graph of one execution (recaptured when shapes or buffers change), or plain execution."""
        if not self.cuda_graph:
            return self._execute
        if self._graph is None or self._graph_key != self._shapes_key:
            # the warm-up execution flushes TensorRT's deferred shape work before the capture
            self._graph, _, _ = capture_cuda_graph(self._torch, self._execute, warmup=1, stream=self.stream)
            self._graph_key = self._shapes_key
        return self._graph.replay

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        self._prepare(feeds)
        return cuda_event_times(self._torch, self._replay(), iters, warmup, stream=self.stream)
