"""PyTorch eager adapter: the reference outputs and the baseline timings."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from infercc.errors import MissingRuntimeError, StageError, UsageError
from infercc.lazy import is_installed, require, version_of
from infercc.models.io import changed_inputs, flatten_outputs, input_copies, mutation_note
from infercc.runtimes.base import Capability, Device, RuntimeBase, RuntimeName, RuntimeStatus, TensorSpec
from infercc.runtimes.timing import cuda_event_times, time_loop


def torch_status(name: str, device: Device) -> RuntimeStatus:
    """Whether PyTorch is installed and, for CUDA, sees a GPU (the status of every runtime that runs on torch)."""
    if not is_installed("torch"):
        return RuntimeStatus(name, False, "torch is not installed: pip install torch")
    if device is Device.CPU:
        return RuntimeStatus(name, True, version=version_of("torch"))
    torch = require("torch")
    if not torch.cuda.is_available():
        return RuntimeStatus(name, False, "no CUDA device visible to PyTorch", version_of("torch"))
    return RuntimeStatus(
        name, True, version=version_of("torch"), details={"gpu": torch.cuda.get_device_name(0)}
    )


def require_cuda(device: Device) -> None:
    """On CUDA, a GPU PyTorch can see, else exit 3."""
    if device is Device.CUDA and not require("torch").cuda.is_available():
        raise MissingRuntimeError("PyTorch sees no CUDA device.", hint="Run on a machine with an NVIDIA GPU.")


class TorchCPU(RuntimeBase):
    """Runs an nn.Module in eager mode. `artifact` is the module; inputs are passed positionally in `input_names` order."""

    name: ClassVar[str] = RuntimeName.PYTORCH_CPU
    artifact_kinds: ClassVar[tuple[str, ...]] = ("torch",)
    device: ClassVar[Device] = Device.CPU

    def __init__(
        self,
        artifact: Any,
        input_names: list[str],
        output_names: list[str] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.module = artifact
        self.input_names = list(input_names)
        self.output_names = output_names
        self.threads = threads
        self._saved_threads: int | None = None

    @classmethod
    def status(cls) -> RuntimeStatus:
        return torch_status(cls.name, cls.device)

    def __enter__(self) -> TorchCPU:
        require_cuda(self.device)
        torch = require("torch")
        if self.threads:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        self.module = self.module.to(self.device.value).eval()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved_threads:
            require("torch").set_num_threads(self._saved_threads)

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        inputs = [TensorSpec(n, "float32", ()) for n in self.input_names]
        outputs = [TensorSpec(n, "float32", ()) for n in self.output_names or []]
        return inputs, outputs

    def _to_device(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        return input_copies(require("torch"), feeds, self.input_names, self.device.value)

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

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        args = self._to_device(feeds)
        return time_loop(lambda: self._forward(args), lambda: None, iters, warmup)


class TorchCUDA(TorchCPU):
    name: ClassVar[str] = RuntimeName.PYTORCH_CUDA
    device: ClassVar[Device] = Device.CUDA
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CUDA_EVENTS, Capability.H2D_TIMING})
    timing: str = "cuda-events"

    def device_memory(self) -> int | None:
        torch = require("torch")
        free, total = torch.cuda.mem_get_info()
        return int(total - free)

    def time_h2d(self, feeds: dict[str, np.ndarray], iters: int) -> list[float]:
        """Host-to-device copy of every input, timed on its own with CUDA events."""
        torch = require("torch")
        host = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        return cuda_event_times(torch, lambda: [tensor.to("cuda") for tensor in host], iters, 0)

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        """CUDA-event timing, data already on the device."""
        args = self._to_device(feeds)
        return cuda_event_times(require("torch"), lambda: self._forward(args), iters, warmup)
