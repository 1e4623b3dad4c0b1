"""Runtimes inductor-cpu and inductor-cuda: an AOTInductor package loaded with aoti_load_package.

The sidecar beside the package says which device and torch version built it and which shapes it accepts:
a package from another machine is refused with its rebuild command, and a shape outside its range is refused
before it reaches the package (AOTInductor does not check). Stages open it through
infercc.runtimes.isolation, in a child process of its own, so a crash while loading or running (as on the GPU
image, docs/inductor.md) fails that pair and the run goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.errors import InferccError, MissingRuntimeError, StageError
from infercc.lazy import is_installed, version_of
from infercc.runtimes.base import (
    Capability,
    Device,
    RuntimeBase,
    RuntimeName,
    RuntimeStatus,
    TensorSpec,
    check_feeds,
)
from infercc.runtimes.torch_ref import torch_status


def _torch_at_least(minimum: str) -> bool:
    version = version_of("torch") or "0"
    try:
        parts = tuple(int(p) for p in version.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return parts >= tuple(int(p) for p in minimum.split("."))


class InductorCPU(RuntimeBase):
    name: ClassVar[str] = RuntimeName.INDUCTOR_CPU
    artifact_kinds: ClassVar[tuple[str, ...]] = ("inductor",)
    device: ClassVar[Device] = Device.CPU
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DYNAMIC_SHAPES, Capability.FP16, Capability.BF16}
    )

    def __init__(self, artifact: Path, threads: int | None = None, cuda_graph: bool = True) -> None:
        super().__init__()
        self.path = Path(artifact)
        self.threads = threads
        self.cuda_graph = (
            cuda_graph  # on CUDA: a graph per shape for small batches (sessions.GRAPH_MAX_BATCH)
        )
        self.session: Any = None  # sessions.PackageSession
        self.sidecar: dict[str, Any] = {}

    @classmethod
    def status(cls) -> RuntimeStatus:
        from infercc.inductor.api import MIN_TORCH

        if is_installed("torch") and not _torch_at_least(MIN_TORCH):
            return RuntimeStatus(
                cls.name,
                False,
                f"AOTInductor packages need torch >= {MIN_TORCH}: pip install 'torch>={MIN_TORCH}'",
            )
        return torch_status(cls.name, cls.device)

    def __enter__(self) -> InductorCPU:
        from infercc.inductor.package import incompatibility, read_sidecar
        from infercc.inductor.sessions import PackageSession

        self.sidecar = read_sidecar(self.path)
        problem = incompatibility(self.sidecar, self.device.value)
        if problem:
            raise MissingRuntimeError(
                f"Package {self.path.name} cannot run here: {problem}.",
                hint=f"Rebuild it on this machine: {self.sidecar.get('rebuild') or 'infercc compile ... --target inductor --force'}",
            )
        try:
            self.session = PackageSession(
                {
                    "path": str(self.path.resolve()),
                    "device": self.device.value,
                    "threads": self.threads,
                    "cuda_graph": self.cuda_graph,
                    "input_names": self.sidecar["input_names"],
                    "output_names": self.sidecar.get("output_names"),
                    "input_dtypes": self.sidecar.get("input_dtypes"),
                }
            )
        except InferccError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise StageError(
                f"{self.name} could not load {self.path.name}: {type(exc).__name__}: {first}"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self.session = None

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        valid = self.sidecar.get("valid_shapes") or {}
        dtypes = self.sidecar.get("input_dtypes") or {}
        inputs = [
            TensorSpec(
                n, dtypes.get(n, "float32"), tuple(lo if lo == hi else None for lo, hi in valid.get(n, []))
            )
            for n in self.sidecar.get("input_names", [])
        ]
        outputs = [TensorSpec(n, "float32", ()) for n in self.sidecar.get("output_names") or []]
        return inputs, outputs

    def _check(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The package's shape range first (AOTInductor does not check it), then names, ranks and dtypes."""
        from infercc.inductor.export import within

        problem = within(self.sidecar.get("valid_shapes") or {}, feeds)
        if problem:
            raise StageError(f"{self.path.name} cannot run this input: {problem}.")
        return check_feeds(feeds, self.io_spec()[0], self.path.name)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self._check(feeds)
        assert self.session is not None
        return self.session.infer(feeds)["outputs"]

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        feeds = self._check(feeds)
        assert self.session is not None
        reply = self.session.time(feeds, iters, warmup)
        self.notes += [n for n in reply.get("notes", []) if n not in self.notes]
        return reply["times"]


class InductorCUDA(InductorCPU):
    name: ClassVar[str] = RuntimeName.INDUCTOR_CUDA
    device: ClassVar[Device] = Device.CUDA
    timing: str = "cuda-events"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.DYNAMIC_SHAPES,
            Capability.FP16,
            Capability.BF16,
            Capability.CUDA_EVENTS,
            Capability.CUDA_GRAPHS,
        }
    )
