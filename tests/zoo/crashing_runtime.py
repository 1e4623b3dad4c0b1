"""A runtime adapter that really crashes its process, for the crash-isolation tests.

`CrashingOrt` is ONNX Runtime CPU, except that loading a file whose name contains "fp16" dereferences a
null pointer (a genuine SIGSEGV, as ONNX Runtime did on ViT-B/16's FP16 graph), and `infer` on a feed whose
first value is -7 aborts (SIGABRT).
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any, ClassVar

import numpy as np

from infercc.onnxrt.runtime import OrtCPU


def segfault() -> None:
    ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV


class CrashingOrt(OrtCPU):
    name: ClassVar[str] = "crashing-cpu"

    def __enter__(self) -> CrashingOrt:
        if "fp16" in self.path.name:
            segfault()
        return super().__enter__()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        first = next(iter(feeds.values()))
        if first.size and float(first.flat[0]) == -7.0:
            os.kill(os.getpid(), signal.SIGABRT)
        return super().infer(feeds)
