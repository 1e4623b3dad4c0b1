"""torch.export with the declared dynamic ranges, and what it made of them.

Every dimension the user declared dynamic (min != max) is exported as `Dim.AUTO(min=, max=)`: where the
model's code fixes such a dimension, torch.export specialises it instead of refusing the whole export, and
infercc reads back, from the exported program, the range each dimension is really valid for. A package is
then verified and benched only inside that range, and the run says which dimension was fixed to what.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infercc.config import InputSpec
from infercc.errors import StageError
from infercc.shapes import Shape, ShapeRange

Valid = dict[str, list[list[int]]]  # input -> per axis [low, high] the package accepts


@dataclass(frozen=True)
class Specialization:
    """A dimension declared dynamic that the exported program does not cover over its whole range."""

    input: str
    axis: int
    declared: tuple[int, int]
    valid: tuple[int, int]

    @property
    def fixed(self) -> int | None:
        return self.valid[0] if self.valid[0] == self.valid[1] else None

    def describe(self) -> str:
        lo, hi = self.declared
        if self.fixed is not None:
            return (
                f"torch.export specialised input {self.input}, dimension {self.axis} to {self.fixed} "
                f"(declared dynamic {lo}..{hi}): the package accepts only {self.fixed} there"
            )
        return (
            f"torch.export narrowed input {self.input}, dimension {self.axis} to {self.valid[0]}..{self.valid[1]} "
            f"(declared {lo}..{hi})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "axis": self.axis,
            "declared": list(self.declared),
            "valid": list(self.valid),
            "fixed": self.fixed,
            "message": self.describe(),
        }


@dataclass
class ExportResult:
    program: Any  # torch.export.ExportedProgram
    valid: Valid
    specialized: list[Specialization] = field(default_factory=list)
    seconds: float = 0.0
    input_dtypes: dict[str, str] = field(default_factory=dict)


def example_shape(shape_range: ShapeRange) -> Shape:
    """The shape torch.export traces with: the opt shape, but never 1 on a dynamic axis (torch
    specialises sizes 0 and 1)."""
    dims = []
    for lo, opt, hi in zip(shape_range.min, shape_range.opt, shape_range.max, strict=True):
        dims.append(min(2, hi) if lo != hi and opt < 2 else opt)
    return tuple(dims)


def example_inputs(
    torch: Any,
    names: list[str],
    ranges: dict[str, ShapeRange],
    specs: dict[str, InputSpec],
    device: str,
    dtype: Any,
) -> list[Any]:
    from infercc.data.synthetic import synthetic_feed

    feed = synthetic_feed(names, {n: example_shape(ranges[n]) for n in names}, specs, seed=0)
    return [to_tensor(torch, feed[n], device, dtype) for n in names]


def to_tensor(torch: Any, array: np.ndarray, device: str, dtype: Any) -> Any:
    """A host array on `device`; floating values in the package's dtype."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def dynamic_shapes(torch: Any, names: list[str], ranges: dict[str, ShapeRange]) -> tuple[Any, ...]:
    dim = torch.export.Dim
    specs = []
    for name in names:
        r = ranges[name]
        axes = {
            a: dim.AUTO(min=lo, max=hi)
            for a, (lo, hi) in enumerate(zip(r.min, r.max, strict=True))
            if lo != hi
        }
        specs.append(axes or None)
    return tuple(specs)


@contextlib.contextmanager
def quiet_torch() -> Any:
    """torch.export and Inductor print graph dumps and deprecation warnings on failure and success alike;
    infercc reports what matters in one line, so they are silenced (shown again with TORCH_LOGS)."""
    import logging
    import os
    import warnings

    silence = not os.environ.get("TORCH_LOGS")
    if not silence:
        yield
        return
    logging.disable(logging.WARNING)
    try:
        sink = io.StringIO()
        with (
            warnings.catch_warnings(),
            _fd_to_devnull(1),
            _fd_to_devnull(2),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


@contextlib.contextmanager
def _fd_to_devnull(fd: int) -> Any:
    """Some of torch's failure output (graph dumps) is printed, not logged: hide it at the descriptor."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(fd)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


def _size_oblivious(torch: Any) -> Any:
    """Let a dynamic axis whose range starts at 1 keep 1 (torch otherwise narrows it to 2..max)."""
    try:
        from torch.fx.experimental import _config as config
    except ImportError:
        return contextlib.nullcontext()
    if not hasattr(config, "backed_size_oblivious"):
        return contextlib.nullcontext()
    return config.patch(backed_size_oblivious=True)


def export_program(
    module: Any,
    names: list[str],
    ranges: dict[str, ShapeRange],
    specs: dict[str, InputSpec],
    device: str,
    dtype: Any,
) -> ExportResult:
    """torch.export the module (already on `device` in `dtype`); a failure raises StageError (exit 4)."""
    import torch

    args = example_inputs(torch, names, ranges, specs, device, dtype)
    started = time.perf_counter()
    try:
        oblivious = any(
            lo <= 1 < hi for n in names for lo, hi in zip(ranges[n].min, ranges[n].max, strict=True)
        )
        with (
            quiet_torch(),
            _size_oblivious(torch) if oblivious else contextlib.nullcontext(),
            torch.no_grad(),
        ):
            program = torch.export.export(
                module, tuple(args), dynamic_shapes=dynamic_shapes(torch, names, ranges)
            )
    except Exception as exc:
        raise export_failure(exc) from exc
    valid = valid_ranges(program, names, ranges)
    special = [
        Specialization(name, axis, (lo, hi), (valid[name][axis][0], valid[name][axis][1]))
        for name in names
        for axis, (lo, hi) in enumerate(zip(ranges[name].min, ranges[name].max, strict=True))
        if lo != hi and tuple(valid[name][axis]) != (lo, hi)
    ]
    dtypes = {n: str(a.dtype).removeprefix("torch.") for n, a in zip(names, args, strict=True)}
    return ExportResult(program, valid, special, time.perf_counter() - started, dtypes)


def valid_ranges(program: Any, names: list[str], ranges: dict[str, ShapeRange]) -> Valid:
    """Per input and axis, the sizes the exported program accepts, within the declared range."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user_inputs = list(program.graph_signature.user_inputs)
    constraints = {str(k): v for k, v in program.range_constraints.items()}
    valid: Valid = {}
    for name, node_name in zip(names, user_inputs, strict=False):
        declared = ranges[name]
        shape = placeholders[node_name].meta["val"].shape
        axes = []
        for axis, size in enumerate(shape):
            lo, hi = declared.min[axis], declared.max[axis]
            expr = size if isinstance(size, int) else size.node.expr
            if isinstance(expr, int) or getattr(expr, "is_number", False):  # specialised to a constant
                axes.append([int(expr), int(expr)])
                continue
            bound = constraints.get(str(expr))
            if bound is not None:
                lo = max(lo, _bound(bound.lower, lo))
                hi = min(hi, _bound(bound.upper, hi))
            axes.append([lo, hi])
        valid[name] = axes
    return valid


def _bound(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):  # sympy's oo, torch's int_oo
        return default


def within(valid: Valid, feeds: dict[str, np.ndarray]) -> str | None:
    """Why these feeds fall outside the package's valid shapes, or None when they fit."""
    for name, axes in valid.items():
        if name not in feeds:
            continue
        shape = feeds[name].shape
        for axis, (lo, hi) in enumerate(axes):
            if axis < len(shape) and not lo <= shape[axis] <= hi:
                allowed = str(lo) if lo == hi else f"{lo}..{hi}"
                return f"input {name}, dimension {axis} is {shape[axis]}; the package accepts {allowed}"
    return None


# --- why torch.export failed, in one line ------------------------------------------------------------

_NOISE = re.compile(
    r"^(For more information|For extended logs|If you suspect|For C\+\+ stack|consider using|def forward|#)"
)


def first_meaningful_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not _NOISE.match(line):
            return line[:300]
    return ""


def source_line(exc: BaseException, text: str) -> str | None:
    """'file.py:20: if x.sum() > 0:': the user's line torch.export points at (or the last frame outside torch)."""
    match = re.search(
        r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+)[^\n]*\n\s*(\S[^\n]*)', text
    )
    if match:
        return f"{match.group(1)}:{match.group(2)}: {match.group(3).strip()}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
    frames = [f for f in frames if "/infercc/" not in f.filename]
    if frames:
        frame = frames[-1]
        return f"{frame.filename}:{frame.lineno}: {(frame.line or '').strip()}"
    return None


def export_failure(exc: BaseException) -> StageError:
    text = str(exc)
    reason = first_meaningful_line(text) or type(exc).__name__
    where = source_line(exc, text)
    return StageError(
        f"torch.export could not export the model for target inductor: {type(exc).__name__}: {reason}"
        + (f"\n  at {where}" if where else ""),
        hint="Make forward() traceable by torch.export (no Python branches on tensor values: torch.cond; "
        "no .item()), or drop inductor from --target.",
    )
