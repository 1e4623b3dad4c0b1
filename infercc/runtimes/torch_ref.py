"""PyTorch eager adapter: the reference outputs and the baseline timings."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from infercc.errors import MissingRuntimeError, StageError, UsageError
from infercc.lazy import is_installed, require, version_of
from infercc.models.io import changed_inputs, flatten_outputs, input_copies, mutation_note
from infercc.runtimes.base import RuntimeStatus, TensorSpec, time_loop


class TorchCPU:
    """Runs an nn.Module in eager mode. `artifact` is the module; inputs are passed positionally in `input_names` order."""

    name: ClassVar[str] = "pytorch-cpu"
    artifact_kinds: ClassVar[tuple[str, ...]] = ("torch",)
    device: ClassVar[str] = "cpu"

    def __init__(
        self,
        artifact: Any,
        input_names: list[str],
        output_names: list[str] | None = None,
        threads: int | None = None,
        **_: Any,
    ) -> None:
        self.module = artifact
        self.input_names = list(input_names)
        self.output_names = output_names
        self.threads = threads
        self._saved_threads: int | None = None
        self.notes: list[str] = []

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not is_installed("torch"):
            return RuntimeStatus(cls.name, False, "torch is not installed: pip install torch")
        return RuntimeStatus(cls.name, True, version=version_of("torch"))

    def __enter__(self) -> TorchCPU:
        torch = require("torch")
        if self.threads:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        self.module = self.module.to(self.device).eval()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved_threads:
            require("torch").set_num_threads(self._saved_threads)

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        inputs = [TensorSpec(n, "float32", ()) for n in self.input_names]
        outputs = [TensorSpec(n, "float32", ()) for n in self.output_names or []]
        return inputs, outputs

    def _to_device(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        return input_copies(require("torch"), feeds, self.input_names, self.device)

    def _forward(self, args: list[Any]) -> Any:
        from infercc.models.boundary import user_code

        torch = require("torch")
        with torch.inference_mode(), user_code("The model's forward", "running"):
            return self.module(*args)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = self._to_device(feeds)
        try:
            result = self._forward(args)
        except UsageError:
            raise
        except Exception as exc:
            shapes = ", ".join(f"{n}:{'x'.join(map(str, feeds[n].shape))}" for n in self.input_names)
            raise StageError(
                f"The PyTorch model's forward failed on inputs {shapes}: {type(exc).__name__}: {exc}"
            ) from exc
        changed = changed_inputs(args, feeds, self.input_names)
        if changed and mutation_note(changed) not in self.notes:
            self.notes.append(mutation_note(changed))
        tensors = flatten_outputs(result, self.output_names)
        return {
            name: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
            for name, t in tensors.items()
        }

    timing: ClassVar[str] = "wall-clock"

    def _sync(self) -> None:
        pass

    def device_memory(self) -> int | None:
        return None

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        args = self._to_device(feeds)
        return time_loop(lambda: self._forward(args), self._sync, iters, warmup)


class TorchCUDA(TorchCPU):
    name: ClassVar[str] = "pytorch-cuda"
    device: ClassVar[str] = "cuda"

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not is_installed("torch"):
            return RuntimeStatus(cls.name, False, "torch is not installed")
        torch = require("torch")
        if not torch.cuda.is_available():
            return RuntimeStatus(cls.name, False, "no CUDA device visible to PyTorch", version_of("torch"))
        return RuntimeStatus(
            cls.name, True, version=version_of("torch"), details={"gpu": torch.cuda.get_device_name(0)}
        )

    def __enter__(self) -> TorchCUDA:
        if not require("torch").cuda.is_available():
            raise MissingRuntimeError(
                "PyTorch sees no CUDA device.", hint="Run on a machine with an NVIDIA GPU."
            )
        super().__enter__()
        return self

    timing: ClassVar[str] = "cuda-events"

    def _sync(self) -> None:
        require("torch").cuda.synchronize()

    def device_memory(self) -> int | None:
        torch = require("torch")
        free, total = torch.cuda.mem_get_info()
        return int(total - free)

    def time_h2d(self, feeds: dict[str, np.ndarray], iters: int) -> list[float]:
        """Host-to-device copy of every input, timed on its own with CUDA events."""
        torch = require("torch")
        host = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for tensor in host:
                tensor.to("cuda")
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        return times

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        """CUDA-event timing, data already on the device."""
        torch = require("torch")
        args = self._to_device(feeds)
        for _ in range(warmup):
            self._forward(args)
        torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self._forward(args)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        return times
