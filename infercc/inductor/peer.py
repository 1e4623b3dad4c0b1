"""Runtimes torch-compile-cpu and torch-compile-cuda: the user's own module under torch.compile, timed in the
same bench run as the artifacts. It is what a user gets without infercc, so every report states the chosen
artifact's ratio to it.

The module is loaded and compiled in a child process (a compiler crash or hang cannot take the run down),
with `bench.peer_compile_s` as the bound on compiling, per run of the peer over all batch sizes. On CUDA the
module runs in FP16 with mode="reduce-overhead" (CUDA graphs), as a user chasing speed would write it; on the
CPU in FP32 with the default mode (reduce-overhead's CUDA graphs do not exist there).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from infercc.errors import StageError
from infercc.inductor.child import ChildSession
from infercc.runtimes.base import Capability, Device, RuntimeBase, RuntimeName, RuntimeStatus, TensorSpec
from infercc.runtimes.torch_ref import require_cuda, torch_status

PEER_SETTINGS = {Device.CPU: ("default", "float32"), Device.CUDA: ("reduce-overhead", "float16")}


class TorchCompileCPU(RuntimeBase):
    name: ClassVar[str] = RuntimeName.TORCH_COMPILE_CPU
    artifact_kinds: ClassVar[tuple[str, ...]] = ("torch-compile",)
    device: ClassVar[Device] = Device.CPU
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.PEER, Capability.CHILD_PROCESS})

    def __init__(
        self,
        artifact: Any,
        source: str,
        model: dict[str, Any],
        input_names: list[str],
        compile_budget_s: float = 600.0,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.model = model
        self.input_names = list(input_names)
        self.budget_s = compile_budget_s
        self.threads = threads
        self.mode, self.dtype = PEER_SETTINGS[self.device]
        self.session: ChildSession | None = None

    @classmethod
    def status(cls) -> RuntimeStatus:
        return torch_status(cls.name, cls.device)

    def __enter__(self) -> TorchCompileCPU:
        require_cuda(self.device)
        self.session = ChildSession(f"torch.compile ({self.mode}) on {self.device}")
        try:
            self.session.open(
                {
                    "kind": "peer",
                    "source": self.source,
                    "model": self.model,
                    "device": self.device.value,
                    "threads": self.threads,
                    "mode": self.mode,
                    "dtype": self.dtype,
                    "input_names": self.input_names,
                    "input_dtypes": {n: self.dtype for n in self.input_names},
                }
            )
        except BaseException:
            self.session.close()
            self.session = None
            raise
        self.notes.append(f"torch.compile(mode={self.mode!r}, dynamic=False) on the module in {self.dtype}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return [TensorSpec(n, "float32", ()) for n in self.input_names], []

    def _warm(self, feeds: dict[str, np.ndarray]) -> None:
        """Compile for this shape, within what is left of the compile budget."""
        assert self.session is not None
        key = "x".join(str(d) for d in next(iter(feeds.values())).shape) if feeds else "scalar"
        if key in self.compile_s:
            return
        left = self.budget_s - sum(self.compile_s.values())
        if left <= 0:
            raise StageError(
                f"torch.compile used its whole compile budget (bench.peer_compile_s = {self.budget_s:g} s)."
            )
        started = time.perf_counter()
        try:
            reply = self.session.call({"op": "warm", "feeds": feeds}, timeout=left, doing="compiling")
        except StageError as exc:
            self.compile_s[key] = time.perf_counter() - started
            raise StageError(f"{exc.message} (bench.peer_compile_s bounds it)") from None
        self.compile_s[key] = float(reply["compile_s"])

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._warm(feeds)
        assert self.session is not None
        return self.session.call({"op": "infer", "feeds": feeds})["outputs"]

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        self._warm(feeds)
        assert self.session is not None
        return self.session.call({"op": "time", "feeds": feeds, "iters": iters, "warmup": warmup})["times"]


class TorchCompileCUDA(TorchCompileCPU):
    name: ClassVar[str] = RuntimeName.TORCH_COMPILE_CUDA
    device: ClassVar[Device] = Device.CUDA
    timing: str = "cuda-events"
    # mode="reduce-overhead" replays CUDA graphs: that is what the peer is, not a switch (no Capability.CUDA_GRAPHS)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PEER, Capability.CHILD_PROCESS, Capability.CUDA_EVENTS}
    )
