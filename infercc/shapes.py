"""Shape specs in the form TensorRT users know: NAME:1x3x224x224 (trtexec) or NAME:[1,3,224,224] (Polygraphy)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infercc.errors import UsageError

Shape = tuple[int, ...]

# Limits on what a declared shape may say: ONNX Runtime and TensorRT index dimensions with 32-bit
# integers in many kernels, and a tensor of more elements than this is not a shape anyone means.
MAX_DIM = 2**31 - 1
MAX_RANK = 32
MAX_ELEMENTS = 2**40

_DIMS_X = re.compile(r"^\d+(x\d+)*$")
_DIMS_LIST = re.compile(r"^\[\s*\d+(\s*,\s*\d+)*\s*\]$")


def parse_dims(text: str, where: str = "shape") -> Shape:
    """'1x3x224x224' or '[1,3,224,224]' -> (1, 3, 224, 224). A scalar is '[]'."""
    text = text.strip()
    if text == "[]":
        return ()
    if not text:
        raise UsageError(
            f"{where}: the dimensions are missing.", hint="Write NAME:1x3x224x224 (or NAME:[] for a scalar)."
        )
    if len(text) > 400 or any(len(d) > 10 for d in re.findall(r"\d+", text)):
        raise UsageError(
            f"{where}: {text[:60]!r}{'...' if len(text) > 60 else ''} has a dimension or rank far too large.",
            hint=f"Each dimension is at most {MAX_DIM:,}; a shape has at most {MAX_RANK} dimensions.",
        )
    if _DIMS_X.match(text):
        dims = tuple(int(d) for d in text.split("x"))
    elif _DIMS_LIST.match(text):
        dims = tuple(int(d) for d in text.strip("[]").split(","))
    else:
        raise UsageError(
            f"Cannot read {where} {text!r}: expected dimensions like 1x3x224x224 or [1,3,224,224].",
            hint="Use positive whole numbers; dynamic ranges go in --min-shape/--opt-shape/--max-shape.",
        )
    if any(d <= 0 for d in dims):
        raise UsageError(f"{where} {text!r} has a dimension of 0; every dimension must be at least 1.")
    check_shape_limits(dims, f"{where} {text!r}")
    return dims


def check_shape_limits(dims: Shape | list[int], where: str) -> None:
    """Rank, each dimension and the element count within MAX_RANK, MAX_DIM and MAX_ELEMENTS."""
    if len(dims) > MAX_RANK:
        raise UsageError(f"{where} has {len(dims)} dimensions; at most {MAX_RANK} are supported.")
    big = [d for d in dims if d > MAX_DIM]
    if big:
        raise UsageError(f"{where}: the dimension {big[0]:,} is larger than the most supported, {MAX_DIM:,}.")
    elements = 1
    for d in dims:
        elements *= d
    if elements > MAX_ELEMENTS:
        raise UsageError(
            f"{where} has {elements:,} elements; at most {MAX_ELEMENTS:,} are supported (the size overflows).",
            hint="Declare the shape of one batch, e.g. 1x3x224x224.",
        )


def format_dims(shape: Shape | list[int] | None) -> str:
    if shape is None:
        return "?"
    return "x".join(str(d) for d in shape) if len(shape) else "[]"


def split_specs(values: list[str]) -> list[str]:
    """Each flag value may hold several comma-separated specs: 'a:1x3,b:1x8' (trtexec style).

    Commas inside [..] belong to a Polygraphy-style list, not a separator.
    """
    specs: list[str] = []
    for value in values:
        depth, start = 0, 0
        for i, ch in enumerate(value):
            depth += ch == "["
            depth -= ch == "]"
            if ch == "," and depth == 0:
                specs.append(value[start:i])
                start = i + 1
        specs.append(value[start:])
    return [s.strip() for s in specs if s.strip()]


def parse_named_shapes(values: list[str], flag: str) -> dict[str | None, Shape]:
    """Parse repeated NAME:DIMS values. A lone DIMS (no name) is allowed for single-input models (key None)."""
    result: dict[str | None, Shape] = {}
    for spec in split_specs(values):
        name: str | None
        if ":" in spec:
            name, dims = spec.rsplit(":", 1)
            name = name.strip()
            if not name:
                raise UsageError(
                    f"{flag} {spec!r}: the input name before ':' is empty.",
                    hint=f"Write {flag} NAME:1x3x224x224.",
                )
        else:
            name, dims = None, spec
        if name in result:
            raise UsageError(f"{flag} gives input {name or '(unnamed)'} twice.")
        result[name] = parse_dims(dims, where=f"{flag} {name}" if name else flag)
    return result


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shapes of one input. Static when all three are equal."""

    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def static(cls, shape: Shape) -> ShapeRange:
        return cls(shape, shape, shape)

    @property
    def is_dynamic(self) -> bool:
        return self.min != self.max

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, (lo, hi) in enumerate(zip(self.min, self.max, strict=True)) if lo != hi]

    def points(self) -> list[tuple[str, Shape]]:
        """The distinct shapes worth checking: min, opt, max (deduplicated, in that order)."""
        seen: list[tuple[str, Shape]] = []
        for label, shape in (("opt", self.opt), ("min", self.min), ("max", self.max)):
            if all(shape != s for _, s in seen):
                seen.append((label, shape))
        return seen

    def validate(self, name: str | None) -> None:
        """Same rank, and min <= opt <= max on every axis. `name` None: the caller says which input."""
        ranks = {len(self.min), len(self.opt), len(self.max)}
        if len(ranks) != 1:
            raise UsageError(
                f"{f'Input {name}: ' if name else ''}min/opt/max shapes have different ranks "
                f"({format_dims(self.min)}, {format_dims(self.opt)}, {format_dims(self.max)}).",
                hint="Give the same number of dimensions to --min-shape, --opt-shape and --max-shape.",
            )
        for axis, (lo, mid, hi) in enumerate(zip(self.min, self.opt, self.max, strict=True)):
            if not lo <= mid <= hi:
                raise UsageError(
                    f"{f'Input {name}, d' if name else 'D'}imension {axis}: needs min <= opt <= max, "
                    f"got {lo}, {mid}, {hi}.",
                    hint="Check the order of --min-shape, --opt-shape and --max-shape.",
                )

    def contains(self, shape: Shape) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for d, lo, hi in zip(shape, self.min, self.max, strict=True)
        )

    def describe(self) -> str:
        if not self.is_dynamic:
            return format_dims(self.opt)
        return f"{format_dims(self.min)} .. {format_dims(self.opt)} .. {format_dims(self.max)}"


def shape_flags(input_names: list[str], ranges: dict[str, ShapeRange]) -> list[str]:
    """The --shape / --min/--opt/--max-shape flags that declare these shape ranges on the command line."""
    flags = []
    for name in input_names:
        r = ranges[name]
        if r.is_dynamic:
            flags += [
                f"--min-shape {name}:{format_dims(r.min)}",
                f"--opt-shape {name}:{format_dims(r.opt)}",
                f"--max-shape {name}:{format_dims(r.max)}",
            ]
        else:
            flags.append(f"--shape {name}:{format_dims(r.opt)}")
    return flags
