"""What the AOTInductor backend needs from torch and from the machine, checked before any work starts."""

from __future__ import annotations

from types import ModuleType

from infercc.errors import MissingRuntimeError
from infercc.lazy import require, version_of

# aoti_compile_and_package / aoti_load_package and Dim.AUTO(min=, max=) arrived in torch 2.6
MIN_TORCH = "2.6"
COMPILER_HINT = (
    "Install a C++ compiler (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++), or point "
    "the CXX environment variable at one."
)


def require_aoti() -> ModuleType:
    """torch with the AOTInductor packaging API, else exit 3 naming the torch version needed."""
    torch = require("torch", "AOTInductor packages")
    inductor = require("torch._inductor", "AOTInductor packages")
    export = getattr(torch, "export", None)
    dim = getattr(export, "Dim", None)
    missing = [
        name
        for name, present in (
            ("torch._inductor.aoti_compile_and_package", hasattr(inductor, "aoti_compile_and_package")),
            ("torch._inductor.aoti_load_package", hasattr(inductor, "aoti_load_package")),
            ("torch.export.Dim.AUTO", dim is not None and hasattr(dim, "AUTO")),
        )
        if not present
    ]
    if missing:
        raise MissingRuntimeError(
            f"Target inductor needs torch >= {MIN_TORCH} (AOTInductor packages); torch "
            f"{version_of('torch') or torch.__version__} lacks {', '.join(missing)}.",
            hint=f"pip install 'torch>={MIN_TORCH}'",
        )
    return torch


def require_compiler() -> str:
    """The C++ compiler Inductor will use, else exit 3 naming what to install."""
    require_aoti()
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MissingRuntimeError(
            f"Target inductor needs a C++ compiler, and none was found ({first}).", hint=COMPILER_HINT
        ) from None
    return str(compiler)
