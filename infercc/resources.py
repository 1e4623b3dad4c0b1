"""Memory guards: refuse, before allocating, work that cannot fit in this machine's memory.

A declared shape, an .npy header, an .npz member or a model's parameter count says how many bytes a step
will need; infercc compares that with the memory available (the smaller of /proc/meminfo's MemAvailable and
the cgroup's limit) and stops with exit 2 naming what is too large, instead of swapping or being OOM-killed.
INFERCC_MEMORY_LIMIT_MB overrides the measured figure (tests, or a machine shared with other jobs).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from infercc.errors import UsageError
from infercc.fsutil import format_bytes

MEMORY_LIMIT_ENV = "INFERCC_MEMORY_LIMIT_MB"
# A feed is held several times at once (the reference set, each runtime's copy, outputs) and the model's
# activations are usually several times its inputs: the inputs at their largest shape get this share.
FEED_SHARE = 1 / 16
# Export holds the weights in PyTorch and again in the ONNX protobuf being written.
EXPORT_COPIES = 2

ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "bool": 1}


def available_memory() -> int | None:
    """Bytes this process can still allocate, or None when it cannot be told."""
    override = os.environ.get(MEMORY_LIMIT_ENV)
    if override:
        return int(float(override) * (1 << 20))
    figures = [f for f in (_meminfo_available(), _cgroup_headroom()) if f is not None]
    return min(figures) if figures else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            return max(int(limit) - usage, 0)
    return None


def shape_bytes(shape: tuple[int, ...] | list[int], dtype: str) -> int:
    return math.prod(shape) * ITEMSIZE.get(dtype, 8)


def check_feed_memory(shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str], what: str) -> None:
    """The inputs at their largest declared shapes must fit in FEED_SHARE of the available memory."""
    available = available_memory()
    if available is None:
        return
    sizes = {name: shape_bytes(shape, dtypes[name]) for name, shape in shapes.items()}
    total = sum(sizes.values())
    if total <= available * FEED_SHARE:
        return
    name = max(sizes, key=lambda n: sizes[n])
    dims = "x".join(map(str, shapes[name]))
    raise UsageError(
        f"Input {name} at its {what} shape {dims} ({dtypes[name]}) is {format_bytes(sizes[name])}"
        + (f" ({format_bytes(total)} for all inputs)" if len(sizes) > 1 else "")
        + f"; with copies and the model's activations that needs about {format_bytes(total / FEED_SHARE)}, "
        f"but {format_bytes(available)} of memory is available.",
        hint="Declare a smaller shape (batch) with --shape / --max-shape, or run on a machine with more memory.",
    )


def check_bytes_fit(size: int, what: str, share: float = 0.5) -> None:
    """A single allocation of `size` bytes (a file's array, a zip member) must fit in `share` of memory."""
    available = available_memory()
    if available is None or size <= available * share:
        return
    raise UsageError(
        f"{what} needs {format_bytes(size)} of memory, more than this machine can spare "
        f"({format_bytes(available)} available).",
        hint="Use smaller files (fewer samples per batch).",
    )


def check_parameters_fit(parameter_bytes: int, spec: str) -> None:
    """Export holds the weights about twice: refuse a model whose parameters cannot fit that way."""
    available = available_memory()
    if available is None or parameter_bytes * EXPORT_COPIES <= available:
        return
    raise UsageError(
        f"The model {spec} has {format_bytes(parameter_bytes)} of parameters; exporting it needs about "
        f"{format_bytes(parameter_bytes * EXPORT_COPIES)}, but {format_bytes(available)} of memory is available.",
        hint="Run on a machine with more memory, or export a smaller configuration of the model.",
    )
