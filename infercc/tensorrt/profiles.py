"""Optimization profiles: from the model's shape ranges (and config build.profiles) to what the builder
gets, and back at run time: which profile a feed's shapes fall in. Pure logic, no TensorRT import."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infercc.config import InputSpec
from infercc.errors import UsageError
from infercc.shapes import Shape, ShapeRange, format_dims

# input name -> (min, opt, max)
Profile = dict[str, tuple[Shape, Shape, Shape]]


def resolve_profiles(
    input_names: Sequence[str], ranges: Mapping[str, ShapeRange], extra: Sequence[Mapping[str, InputSpec]]
) -> list[Profile]:
    """Profile 0 from the inputs' min/opt/max (--min/--opt/--max-shape), then config build.profiles.

    An extra profile may leave out inputs whose shape is static; every dynamic input must be in every profile.
    """
    first: Profile = {n: (ranges[n].min, ranges[n].opt, ranges[n].max) for n in input_names}
    profiles = [first]
    for index, spec in enumerate(extra, start=1):
        unknown = [n for n in spec if n not in input_names]
        if unknown:
            raise UsageError(
                f"build.profiles[{index - 1}] names {', '.join(unknown)}, which the model does not take "
                f"(inputs: {', '.join(input_names)}).",
                hint="Use the model's input names as keys of each profile.",
            )
        profile: Profile = {}
        for name in input_names:
            if name in spec:
                shape_range = spec[name].shape_range(name)
                if shape_range is None:
                    raise UsageError(
                        f"build.profiles[{index - 1}].{name} gives no shapes.", hint="Give min, opt and max."
                    )
                profile[name] = (shape_range.min, shape_range.opt, shape_range.max)
            elif not ranges[name].is_dynamic:
                profile[name] = first[name]
            else:
                raise UsageError(
                    f"build.profiles[{index - 1}] does not give dynamic input {name}; TensorRT "
                    "needs every dynamic "
                    "input in every optimization profile.",
                    hint=f"Add {name}: {{min: ..., opt: ..., max: ...}} to that profile.",
                )
        profiles.append(profile)
    return profiles


def fit_to_network(profiles: Sequence[Profile], network_inputs: Mapping[str, Sequence[int]]) -> list[Profile]:
    """Check profiles against the parsed network (-1 marks a dynamic dim) and keep only its dynamic inputs.

    Returns [] for a fully static network (TensorRT needs no profile then). Raises a UsageError naming the
    input and axis for a rank mismatch, a static dim the profile changes, or an uncovered dynamic input.
    """
    dynamic = {n: list(d) for n, d in network_inputs.items() if any(x < 0 for x in d)}
    if not dynamic:
        for profile in profiles[:1]:
            for name, dims in network_inputs.items():
                if name in profile:
                    _check_static(name, list(dims), profile[name], 0)
        return []
    if not profiles:
        raise _no_profile(sorted(dynamic))
    fitted: list[Profile] = []
    for index, profile in enumerate(profiles):
        missing = [n for n in dynamic if n not in profile]
        if missing:
            raise _no_profile(missing, index)
        for name, dims in network_inputs.items():
            if name in profile:
                _check_static(name, list(dims), profile[name], index)
        fitted.append({n: profile[n] for n in dynamic})
    return fitted


def _no_profile(names: list[str], index: int | None = None) -> UsageError:
    where = "no optimization profile" if index is None else f"optimization profile {index} does not"
    flags = " ".join(f"--min-shape {n}:.. --opt-shape {n}:.. --max-shape {n}:.." for n in names)
    return UsageError(
        f"Input {', '.join(names)} has a dynamic dimension and {where} gives its shapes.",
        hint=f"Give the range: {flags}, or fix the shape with --shape at export.",
    )


def _check_static(name: str, dims: list[int], shapes: tuple[Shape, Shape, Shape], index: int) -> None:
    for label, shape in zip(("min", "opt", "max"), shapes, strict=True):
        if len(shape) != len(dims):
            raise UsageError(
                f"Profile {index}: input {name} has rank {len(dims)} in the ONNX graph "
                f"({_graph_dims(dims)}) but its {label} shape {format_dims(shape)} has rank {len(shape)}.",
                hint="Give shapes with the graph's number of dimensions.",
            )
        for axis, (want, got) in enumerate(zip(dims, shape, strict=True)):
            if want >= 0 and want != got:
                raise UsageError(
                    f"Profile {index}: input {name} dimension {axis} is fixed at {want} in the ONNX graph "
                    f"({_graph_dims(dims)}), but the {label} shape asks for {got}.",
                    hint="Keep that dimension at its fixed size, or re-export with the axis dynamic "
                    "(--min-shape/--max-shape at export time).",
                )


def _graph_dims(dims: Sequence[int]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in dims)


def choose_profile(
    profiles: Sequence[Mapping[str, Sequence[Sequence[int]]]], shapes: Mapping[str, Shape]
) -> int:
    """Index of the first profile whose min..max holds every given input shape."""
    if not profiles:
        return 0
    for index, profile in enumerate(profiles):
        if all(_within(shapes[n], r) for n, r in profile.items() if n in shapes):
            return index
    asked = ", ".join(f"{n}:{format_dims(s)}" for n, s in shapes.items())
    offered = "; ".join(
        f"profile {i}: " + ", ".join(f"{n} {format_dims(r[0])}..{format_dims(r[2])}" for n, r in p.items())
        for i, p in enumerate(profiles)
    )
    raise UsageError(
        f"No optimization profile of the engine accepts {asked} ({offered}).",
        hint="Feed shapes inside a profile, or rebuild with wider --min-shape/--max-shape or "
        "another build.profiles entry.",
    )


def _within(shape: Shape, shape_range: Sequence[Sequence[int]]) -> bool:
    lo, _, hi = shape_range
    return len(shape) == len(lo) and all(a <= d <= b for d, a, b in zip(shape, lo, hi, strict=True))


def profiles_to_json(profiles: Sequence[Profile]) -> list[dict[str, dict[str, list[int]]]]:
    return [
        {n: {"min": list(r[0]), "opt": list(r[1]), "max": list(r[2])} for n, r in p.items()} for p in profiles
    ]


def profiles_from_json(data: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[Profile]:
    return [{n: (tuple(r["min"]), tuple(r["opt"]), tuple(r["max"])) for n, r in p.items()} for p in data]


def describe_profiles(profiles: Sequence[Profile]) -> list[str]:
    return [
        ", ".join(f"{n} {format_dims(r[0])}..{format_dims(r[1])}..{format_dims(r[2])}" for n, r in p.items())
        for p in profiles
    ]
