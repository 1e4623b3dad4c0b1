"""What an export assumed about its inputs: the findings behind the export's soundness verdict.

An ONNX graph is sound when it computes what the model computes for every input the user declared. Three ways
an export can hold less than that, and how each exporter says so:

* The TorchScript tracer turns a tensor into a Python value (`if x.sum() > 0`, `.item()`, `int(t)`): the graph
  keeps what the traced inputs decided. It says so with a TracerWarning at the user's line.
* torch.export (the dynamo exporter) refuses such code: a guard on a data-dependent value is an error naming the
  line. When the exporter that follows it (TorchScript) writes a graph without any If/Loop node, that control
  flow cannot be in the graph: the trace froze it. (A scripted branch becomes an If node and is kept.)
* torch.export specialises a dimension declared dynamic where the code branches on it (`if x.shape[1] == 8`),
  and torch.onnx then narrows the range silently (its suggested fixes): the graph is right only on the narrowed
  range, and ONNX keeps no guard to say so. infercc reads the range each dimension really has from the exported
  program, and asks torch.export once more, without the fixes, which line made it so.
* With TORCH_ONNX_ENABLE_DRAFT_EXPORT=1, torch.onnx may fall back to torch.export's draft export, which exports
  past data-dependent errors with the traced values: its report lists each one.

Each is a `Finding`; `judge` makes any finding exit 1 naming the line, unless export.accept_trace_warnings.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from infercc.shapes import ShapeRange

DATA_DEPENDENT = (
    "data-dependent",
    "GuardOnDataDependentSymNode",
    "DataDependentOutputException",
    "Could not guard on",
    "Could not extract specialized integer",
)
DRAFT_STRATEGY = "TorchExportDraftExportStrategy"
# a source line where Python itself decides on a tensor's value ("file.py:12: if x.sum() > 0:")
PYTHON_DECISION = re.compile(
    r":\d+: +(if|elif|while|for|assert)\b|\.item\(\)|\.tolist\(\)|\b(int|float|bool)\("
)


class FindingKind(StrEnum):
    tensor_to_python = "tensor turned into a Python value"
    data_dependent = "data-dependent control flow"
    specialised = "dimension specialised"
    draft_export = "draft export used a traced value"


class Finding(BaseModel):
    """One thing an export froze, with the user's source line where the exporter names it."""

    model_config = ConfigDict(extra="forbid")

    exporter: str
    kind: FindingKind
    where: str | None = None  # "model.py:12: if x.sum() > 0:"
    detail: str
    # a specialised dimension: which, declared and still valid range (inclusive)
    input: str | None = None
    axis: int | None = None
    declared: tuple[int, int] | None = None
    valid: tuple[int, int] | None = None
    tied: list[tuple[str, int]] | None = None  # the input dimensions that are the same symbol as this one

    def excluded(self) -> list[int] | None:
        """The declared values a specialised dimension's graph is not known to cover (None when too many)."""
        if self.declared is None or self.valid is None:
            return None
        (lo, hi), (valid_lo, valid_hi) = self.declared, self.valid
        values = [*range(lo, min(valid_lo, hi + 1)), *range(max(valid_hi + 1, lo), hi + 1)]
        return values if len(values) <= 8 else None

    def describe(self) -> str:
        return f"{self.where}: {self.detail}" if self.where else self.detail


def tracer_findings(torch: Any, caught: list[Any]) -> list[Finding]:
    """A finding per TracerWarning raised outside torch itself (torch's own modules check shapes this way;
    their ops export whole)."""
    own = str(Path(torch.__file__).parent)
    found: dict[str, Finding] = {}
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning) and not str(w.filename).startswith(own):
            first = str(w.message).strip().split(". ")[0]
            where = f"{w.filename}:{w.lineno}"
            found.setdefault(
                f"{where} {first}",
                Finding(exporter="torchscript", kind=FindingKind.tensor_to_python, where=where, detail=first),
            )
    return list(found.values())


def failure_finding(exc: BaseException) -> Finding | None:
    """The dynamo exporter's failure, when torch.export refused a guard on a data-dependent value."""
    from infercc.inductor.export import first_meaningful_line, source_line

    text = _chain_text(exc)
    if not any(marker in text for marker in DATA_DEPENDENT):
        return None
    reason = next(
        (line.strip() for line in text.splitlines() if any(m in line for m in DATA_DEPENDENT)),
        first_meaningful_line(text),
    )
    return Finding(
        exporter="dynamo",
        kind=FindingKind.data_dependent,
        where=source_line(_innermost(exc), text),
        detail=re.sub(r"\s+", " ", reason)[:300],
    )


def frozen_by_trace(earlier: list[Finding], graph: Any) -> list[Finding]:
    """Dynamo's data-dependent findings at a Python decision (if/while/for, .item(), int(), bool() ...) that the
    TorchScript graph cannot hold: it has no If or Loop node. (Data-dependent ops such as x[x > 0] trace whole.)"""
    if any(n.op_type in ("If", "Loop", "Scan") for n in graph.node):
        return []
    return [
        f.model_copy(update={"detail": f"{f.detail} (torch.export; the traced graph has no If/Loop node)"})
        for f in earlier
        if f.kind is FindingKind.data_dependent and PYTHON_DECISION.search(f.where or "")
    ]


def program_findings(
    torch: Any,
    onnx_program: Any,
    module: Any,
    args: tuple[Any, ...],
    names: list[str],
    ranges: dict[str, ShapeRange],
) -> list[Finding]:
    """What the dynamo exporter's ExportedProgram froze: narrowed dimensions (with the line that narrowed them)
    and the draft export's report."""
    program = getattr(onnx_program, "exported_program", None)
    if program is None:
        return []
    found = []
    if getattr(onnx_program, "_capture_strategy", "") == DRAFT_STRATEGY:
        found += _draft_findings(_draft_report(torch, module, args, _dynamic(torch, names, ranges)))
    narrowed = _narrowed(program, names, ranges)
    if narrowed:
        where = _specialising_line(torch, module, args, names, ranges)
        symbols = _symbols(program, names)
        found += [
            Finding(
                exporter="dynamo",
                kind=FindingKind.specialised,
                where=where,
                detail=_narrowing(s),
                input=s.input,
                axis=s.axis,
                declared=tuple(s.declared),
                valid=tuple(s.valid),
                tied=[key for key, expr in symbols.items() if expr == symbols.get((s.input, s.axis))],
            )
            for s in narrowed
        ]
    return found


def _narrowed(program: Any, names: list[str], ranges: dict[str, ShapeRange]) -> list[Any]:
    from infercc.inductor.export import Specialization, valid_ranges

    valid = valid_ranges(program, names, ranges)
    return [
        Specialization(name, axis, (lo, hi), (valid[name][axis][0], valid[name][axis][1]))
        for name in names
        for axis, (lo, hi) in enumerate(zip(ranges[name].min, ranges[name].max, strict=True))
        if lo != hi and tuple(valid[name][axis]) != (lo, hi)
    ]


def _symbols(program: Any, names: list[str]) -> dict[tuple[str, int], str]:
    """(input, axis) -> the exported program's symbol for that size, for every dynamic size."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    found = {}
    for name, node_name in zip(names, program.graph_signature.user_inputs, strict=False):
        value = placeholders[node_name].meta.get("val")
        for axis, size in enumerate(getattr(value, "shape", ())):
            if not isinstance(size, int):
                found[(name, axis)] = str(size.node.expr)
    return found


def _narrowing(special: Any) -> str:
    lo, hi = special.declared
    valid = str(special.fixed) if special.fixed is not None else f"{special.valid[0]}..{special.valid[1]}"
    return (
        f"torch.export specialised input {special.input}, dimension {special.axis}: the graph is valid only for "
        f"{valid} (declared dynamic {lo}..{hi}), and ONNX keeps no check for it"
    )


def _specialising_line(
    torch: Any, module: Any, args: tuple[Any, ...], names: list[str], ranges: dict[str, ShapeRange]
) -> str | None:
    """The user's line that narrowed a dimension: torch.export once more, without torch.onnx's wrapping, keeps
    the guards it added with their source location ("model.py:12 in forward")."""
    from infercc.inductor.export import quiet_torch, source_line

    try:
        with quiet_torch(), torch.no_grad():
            program = torch.export.export(
                module, args, dynamic_shapes=_dynamic(torch, names, ranges), strict=False
            )
    except Exception as exc:
        return source_line(_innermost(exc), _chain_text(exc))
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    values = [
        placeholders[n].meta.get("val") for n in program.graph_signature.user_inputs if n in placeholders
    ]
    symbols = {
        symbol
        for value in values
        if value is not None
        for size in value.shape
        if not isinstance(size, int)
        for symbol in size.node.expr.free_symbols
    }
    env = next((v.fake_mode.shape_env for v in values if getattr(v, "fake_mode", None) is not None), None)
    for guard in getattr(env, "guards", None) or []:
        where = _user_location(str(getattr(guard, "sloc", "")))
        if where and guard.expr.free_symbols & symbols:
            return where
    return None


def _user_location(sloc: str) -> str | None:
    """'model.py:12: if x.shape[0] > 2:' from a guard's 'model.py:12 in forward', when the file is not torch's."""
    import linecache

    match = re.search(r"([^\s(]+\.py):(\d+) in \w+", sloc)
    if not match or "torch/" in match.group(1) or match.group(1).startswith("_"):
        return None
    text = linecache.getline(match.group(1), int(match.group(2))).split("#")[0].strip()
    return f"{match.group(1)}:{match.group(2)}" + (f": {text}" if text else "")


def _dynamic(torch: Any, names: list[str], ranges: dict[str, ShapeRange]) -> tuple[Any, ...] | None:
    """The dynamic shapes infercc's dynamo export passes (every dynamic axis Dim.DYNAMIC), None when static."""
    specs = tuple(
        {axis: torch.export.Dim.DYNAMIC for axis in ranges[name].dynamic_axes} or None for name in names
    )
    return specs if any(specs) else None


def _draft_report(torch: Any, module: Any, args: tuple[Any, ...], dynamic: tuple[Any, ...] | None) -> Any:
    """torch.export.draft_export's report, which torch.onnx drops with the program it decomposes: the draft
    export once more, only when torch.onnx used it."""
    from infercc.inductor.export import quiet_torch

    with quiet_torch(), torch.no_grad():
        return getattr(torch.export.draft_export(module, args, dynamic_shapes=dynamic), "_report", None)


def _draft_findings(report: Any) -> list[Finding]:
    """torch.export.draft_export's report: each data-dependent value it took from the traced inputs, each guard
    it added, at the user's frame."""
    files = dict(getattr(report, "str_to_filename", {}) or {})
    files.update({number: name for name, number in _interned_names().items()})  # torch logs each name once
    found = []
    for failure in getattr(report, "failures", None) or []:
        if failure.xfail:
            continue
        data = failure.data or {}
        stack = data.get("user_stack") or []
        where = None
        if stack:
            frame = stack[-1]
            where = f"{files.get(frame.get('filename'), frame.get('filename'))}:{frame.get('line')}: {str(frame.get('loc', '')).split('#')[0].strip()}"
        what = f"`{data['expr']}`" if "expr" in data else str(data.get("op", ""))
        taken = f" was taken as {data['result']} from the traced inputs" if "result" in data else ""
        found.append(
            Finding(
                exporter="dynamo",
                kind=FindingKind.draft_export,
                where=where,
                detail=f"draft export {str(failure.failure_type).lower().replace('_', ' ')}: {what}{taken}",
            )
        )
    return found


def _interned_names() -> dict[str, int]:
    try:
        from torch._logging.structured import INTERN_TABLE
    except ImportError:
        return {}
    return dict(INTERN_TABLE)


def _chain_text(exc: BaseException) -> str:
    parts, seen, current = [], set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def _innermost(exc: BaseException) -> BaseException:
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc
