"""Export stage: PyTorch -> ONNX, checked, then compared with PyTorch at the min, opt and max shapes.

Exporters can bake a traced dimension into the graph; such an export works at the traced shape
and fails elsewhere. Checking every shape of every dynamic range catches it, naming the node.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.config import Exporter, Tolerance
from infercc.data.synthetic import Feeds, synthetic_feed
from infercc.dimnames import name_dynamic_dims, wanted_names
from infercc.errors import InferccError, StageError, UsageError, VerificationFailed
from infercc.fsutil import atomic_bundle, atomic_path
from infercc.lazy import require
from infercc.metrics import compare, non_finite_outputs
from infercc.models.boundary import user_code
from infercc.models.io import changed_inputs, flatten_outputs, input_copies, mutation_note
from infercc.onnxutil import check_onnx, externalize_if_large, io_dims, load_onnx, op_counts
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import NewArtifact, RunContext, StageOutput
from infercc.sequences import check_declarations
from infercc.shapes import Shape, format_dims
from infercc.stages.results import ExportResult
from infercc.stages.soundness import (
    Finding,
    FindingKind,
    failure_finding,
    frozen_by_trace,
    program_findings,
    tracer_findings,
)

ONNX_FILE = "model.onnx"
REFERENCE_FILE = "reference.npz"
REJECTED_FILE = "model.rejected.onnx"


@dataclass
class ShapePoint:
    label: str  # opt, min, max
    shapes: dict[str, Shape]


@dataclass
class ParityResult:
    ok: bool
    per_point: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def shape_points(ctx: RunContext) -> list[ShapePoint]:
    """opt first (the traced shape), then min and max where they differ."""
    points: list[ShapePoint] = []
    for label in ("opt", "min", "max"):
        shapes = {name: getattr(ctx.shape_ranges[name], label) for name in ctx.input_names}
        if all(shapes != p.shapes for p in points):
            points.append(ShapePoint(label, shapes))
    return points


def describe_point(point: ShapePoint) -> str:
    return ", ".join(f"{n}:{format_dims(s)}" for n, s in point.shapes.items())


class ExportStage:
    name = "export"
    version: ClassVar[str] = (
        "4"  # 2: dims named <input>_dim<axis> or --dim-name; 3: PyTorch on input copies, NaN reference exit 4;
        # 4: soundness findings judged (frozen branches, narrowed dimensions, parity at excluded shapes)
    )
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts
    description = "Export PyTorch -> ONNX"
    needs: tuple[str, ...] = ()

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.config
        return {
            "export": cfg.export.model_dump(mode="json"),
            "inputs": {n: ctx.inputs[n].model_dump(mode="json") for n in ctx.input_names},
            "ranges": {n: r.describe() for n, r in ctx.shape_ranges.items()},
            "input_names": ctx.input_names,
            "output_names": cfg.model.output_names,
        }

    def tools(self) -> tuple[str, ...]:
        return ("torch", "onnx", "onnxscript", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        torch = require("torch", "exporting PyTorch models")
        module = ctx.torch_module()
        points = shape_points(ctx)
        feeds = {
            p.label: synthetic_feed(ctx.input_names, p.shapes, ctx.inputs, seed=ctx.config.verify.seed)
            for p in points
        }
        notes: list[str] = []
        references = {p.label: _torch_outputs(module, ctx, feeds[p.label], p, notes) for p in points}
        output_names = list(references[points[0].label])
        for p in points:  # state pairs and the decision output against the model's real outputs (exit 2)
            check_declarations(
                ctx.config, ctx.input_names, feeds[p.label], references[p.label], describe_point(p)
            )

        exporters = _exporter_order(ctx.config.export.exporter)
        attempts: list[str] = []
        refused: list[Finding] = []  # what the dynamo exporter refused (data-dependent control flow)
        tolerance = Tolerance(atol=ctx.config.export.atol, rtol=ctx.config.export.rtol)
        for i, exporter in enumerate(exporters):
            ctx.progress(self.name, i, len(exporters), f"{exporter.value} exporter")
            final = ctx.path(ONNX_FILE)
            started = time.perf_counter()
            try:
                with atomic_bundle(final) as tmp, user_code("The model's forward", "being exported"):
                    found = _run_exporter(torch, module, ctx, exporter, output_names, tmp)
                    if exporter is Exporter.torchscript:
                        found += frozen_by_trace(refused, load_onnx(tmp, with_data=False).graph)
                    externalize_if_large(tmp, _external_threshold(ctx))
                    checked = [f for f in found if _checked_where_excluded(f, points)]
                    _judge_soundness(
                        ctx, exporter, [f for f in found if f not in checked], tmp, attempts, notes
                    )
                    _infer_shapes(tmp)
                    name_dynamic_dims(tmp, _dim_names(ctx))
                    parity = _parity(ctx, tmp, points, feeds, references, tolerance)
                    if not parity.ok:
                        shutil.copyfile(tmp, ctx.path(REJECTED_FILE))
                        raise _ParityError(parity)
                    notes += [_checked_note(f, points) for f in checked]
            except _ParityError as failure:
                attempts.append(f"{exporter.value}: " + "; ".join(failure.parity.problems))
                continue
            except _ExporterFailed as failure:
                attempts.append(f"{exporter.value} exporter failed: {failure}")
                refused += [failure.finding] if failure.finding else []
                continue
            export_s = time.perf_counter() - started
            if attempts:
                notes.append(f"used the {exporter.value} exporter after: {' | '.join(attempts)}")
            ctx.path(REJECTED_FILE).unlink(missing_ok=True)
            _save_reference(ctx.path(REFERENCE_FILE), feeds, references)
            model = load_onnx(final, with_data=False)
            counts = op_counts(model)
            result = ExportResult(
                exporter=exporter.value,
                fallback_reasons=attempts,
                opset=ctx.config.export.opset,
                export_s=round(export_s, 3),
                nodes=sum(counts.values()),
                op_counts=counts,
                io=io_dims(model),
                parity=parity.per_point,
                shapes_checked={p.label: describe_point(p) for p in points},
                trace_warnings=[f.describe() for f in found if f.kind is FindingKind.tensor_to_python],
                graph_breaks=[a for a in attempts if a.startswith("dynamo")],
                soundness=[*refused, *found],
            )
            return StageOutput(
                artifacts=[
                    NewArtifact("onnx", ONNX_FILE, "onnx", meta={"exporter": exporter.value}),
                    NewArtifact("reference", REFERENCE_FILE, "reference"),
                ],
                result=with_brief(result),
                notes=notes,
            )
        raise _export_failure(attempts, ctx)


def with_brief(result: ExportResult) -> ExportResult:
    fallback = "".join(f" (after {reason})" for reason in result.fallback_reasons)
    result.brief = (
        f"{result.exporter} exporter{fallback}, {result.nodes} nodes, "
        f"parity OK at {', '.join(result.shapes_checked)}"
    )
    return result


_VERDICTS = {
    FindingKind.tensor_to_python: "traced tensors into Python values, so the graph holds only what the traced "
    "inputs decided",
    FindingKind.data_dependent: "traced past data-dependent control flow, so the graph holds only the branch the "
    "traced inputs took",
    FindingKind.specialised: "specialised a dimension declared dynamic, so the graph is right only on part of "
    "its range",
    FindingKind.draft_export: "took data-dependent values from the traced inputs (draft export), so the graph "
    "holds only what they decided",
}


def _judge_soundness(
    ctx: RunContext,
    exporter: Exporter,
    found: list[Finding],
    tmp: Path,
    attempts: list[str],
    notes: list[str],
) -> None:
    """An export that froze what the traced inputs decided is exit 1 naming the source lines, unless
    export.accept_trace_warnings (then noted, and verify tries negative and large inputs too)."""
    if not found:
        return
    if ctx.config.export.accept_trace_warnings:
        notes += [f"accepted trace warning ({f.kind.value}): {f.describe()}" for f in found]
        return
    why = f" (the dynamo exporter failed first: {attempts[-1]})" if attempts else ""
    shutil.copyfile(tmp, ctx.path(REJECTED_FILE))
    raise VerificationFailed(
        f"The {exporter.value} export {_VERDICTS[found[0].kind]}{why}:\n  "
        + "\n  ".join(f.describe() for f in found[:10]),
        hint="Write the branch with tensor ops (torch.where, masks, torch.cond) instead of if/.item()/int(); for "
        "a branch on a shape, declare that dimension static or within the range it holds; or accept it with "
        "--set export.accept_trace_warnings=true (kept for inspection: model.rejected.onnx).",
    )


def _checked_where_excluded(finding: Finding, points: list[ShapePoint]) -> bool:
    """A narrowed dimension whose every excluded value is a shape the parity check runs at (torch.export's
    usual case: a batch declared 1..N, valid 2..N, and 1 is the min shape), with no other dimension varying
    independently: parity there decides, not the trace."""
    excluded = finding.excluded() if finding.kind is FindingKind.specialised else None
    if not excluded or finding.input is None or finding.axis is None:
        return False
    own = [p.shapes[finding.input][finding.axis] for p in points]
    tied = {tuple(t) for t in finding.tied or [(finding.input, finding.axis)]}
    varying = [
        (name, axis)
        for name in points[0].shapes
        for axis in range(len(points[0].shapes[name]))
        if len({p.shapes[name][axis] for p in points}) > 1
    ]
    # the checked shapes prove the excluded values only when no other dimension varies on its own (the same
    # symbol in the exported program, a batch shared by several inputs, is the same dimension); otherwise the
    # other sizes at that batch are unchecked
    return all(key in tied for key in varying) and set(excluded) <= set(own)


def _checked_note(finding: Finding, points: list[ShapePoint]) -> str:
    excluded = finding.excluded() or []
    labels = [
        p.label
        for p in points
        if finding.input in p.shapes and p.shapes[finding.input][finding.axis] in excluded
    ]
    values = ", ".join(map(str, excluded))
    return (
        f"{finding.detail}; the values outside that range ({values}) are shapes parity ran at "
        f"({', '.join(labels)}) and the graph matches PyTorch there, so the export is accepted"
    )


def _dim_names(ctx: RunContext) -> dict[str, dict[int, str]]:
    """input -> dynamic axis -> its name in the graph; a name for a static axis is a usage error."""
    chosen: dict[str, dict[int, str]] = {}
    for name in ctx.input_names:
        names = ctx.inputs[name].dim_names
        dynamic = ctx.shape_ranges[name].dynamic_axes
        for axis in names:
            if axis not in dynamic:
                raise UsageError(
                    f"--dim-name {name}:{axis}={names[axis]}: dimension {axis} of {name} is static "
                    f"({ctx.shape_ranges[name].describe()}); only dynamic dimensions have names.",
                    hint="Give it a range with --min-shape/--max-shape, or drop the name.",
                )
        chosen[name] = dict(names)
    return wanted_names({n: ctx.shape_ranges[n].dynamic_axes for n in ctx.input_names}, chosen)


class _ExporterFailed(Exception):
    """The exporter raised or wrote an invalid graph: the next exporter gets a try."""

    def __init__(self, message: str, finding: Finding | None = None) -> None:
        super().__init__(message)
        self.finding = finding


def _run_exporter(
    torch: Any, module: Any, ctx: RunContext, exporter: Exporter, output_names: list[str], path: Path
) -> list[Finding]:
    try:
        found = _export(torch, module, ctx, exporter, _trace_feed(ctx), output_names, path)
        check_onnx(path)
        return found
    except InferccError as exc:
        raise _ExporterFailed(exc.message) from exc
    except Exception as exc:
        if "KeyboardInterrupt" in _first_line(exc):  # Ctrl-C inside the tracer comes back wrapped
            raise KeyboardInterrupt from exc
        raise _ExporterFailed(_first_line(exc), failure_finding(exc)) from exc


class _ParityError(Exception):
    def __init__(self, parity: ParityResult) -> None:
        super().__init__("; ".join(parity.problems))
        self.parity = parity


def _exporter_order(choice: Exporter) -> list[Exporter]:
    if choice is Exporter.auto:
        return [Exporter.dynamo, Exporter.torchscript]
    return [choice]


_EXPORT_STEPS = {"1/3": "torch.export", "2/3": "conversion to ONNX", "3/3": "ONNX checks"}
# lines of torch's error text that say what to do in general, not what went wrong
_BOILERPLATE = (
    "Next steps",
    "- ",
    "⬆",
    "(Refer to",
    "consider using",
    "For more",
    "For extended",
    "For C++",
    "If you suspect",
    "Caused by:",
    "Traceback",
    "File ",
)


def _first_line(exc: BaseException) -> str:
    """The cause in one line: torch's exporter wraps it in 'This is step N/3 ... Next steps:' text whose
    first line says nothing; the exception summary (or the innermost cause) says what went wrong."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    step = re.search(r"This is step (\d/\d)", text)
    if "## Exception summary" in text:
        line = _meaningful(text.split("## Exception summary", 1)[1])
    else:
        root = exc
        while root.__cause__ is not None and root.__cause__ is not root:
            root = root.__cause__
        line = _meaningful(re.sub(r"\x1b\[[0-9;]*m", "", str(root)))
        line = f"{type(root).__name__}: {line}" if line else type(root).__name__
    line = re.sub(r"^<class '(?:[\w.]*\.)?(\w+)'>:", r"\1:", line or type(exc).__name__)
    where = re.search(r'The following call raised this error:\s*File "([^"]+)", line (\d+)', text)
    if where:
        line += f" (at {Path(where.group(1)).name}:{where.group(2)})"
    if step:
        line = f"{_EXPORT_STEPS.get(step.group(1), 'step ' + step.group(1))} failed: {line}"
    return line[:400]


def _meaningful(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(_BOILERPLATE):
            return line
    return ""


def _export_failure(attempts: list[str], ctx: RunContext) -> InferccError:
    parity_failed = any(" exporter failed:" not in a for a in attempts)
    lines = "\n  ".join(attempts)
    if parity_failed:
        kept = f"The graph is kept as {ctx.path(REJECTED_FILE)} for inspection. "
        if any("dimension" in a or "reshaped" in a for a in attempts):
            why = (
                "A dimension fixed at trace time usually comes from shape-dependent Python code (e.g. "
                "nn.MultiheadAttention, x.shape[1] in a reshape); make it dynamic in the model, or declare that "
                "dimension static."
            )
        else:
            why = "Compare the graph's inputs and outputs with the model's (infercc inspect FILE), or try --exporter."
        return VerificationFailed(
            f"The exported ONNX does not match PyTorch on the declared shape ranges:\n  {lines}",
            hint=kept + why,
        )
    return StageError(
        f"Every exporter failed:\n  {lines}",
        hint="Run with -v for the traceback; try --exporter torchscript or another --opset.",
    )


def _torch_outputs(
    module: Any, ctx: RunContext, feed: Feeds, point: ShapePoint, notes: list[str]
) -> dict[str, np.ndarray]:
    """PyTorch's outputs on copies of the feed (a mutating forward is noted); NaN/Inf in them is exit 4."""
    torch = require("torch")
    args = input_copies(torch, feed, ctx.input_names)
    try:
        with torch.inference_mode(), user_code("The model's forward", f"running on the {point.label} shapes"):
            result = module(*args)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"The model's forward pass failed on the declared {point.label} shapes {describe_point(point)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint="Check --shape / --min-shape / --max-shape against what the model accepts"
            + (
                f"; inputs are fed as {', '.join(f'{n}:{feed[n].dtype}' for n in ctx.input_names)} — for token ids "
                "pass --dtype NAME:int64 --val-range NAME:[0,VOCAB]."
                if _looks_like_dtype_error(exc)
                else "."
            ),
        ) from exc
    changed = changed_inputs(args, feed, ctx.input_names)
    if changed and mutation_note(changed) not in notes:
        notes.append(mutation_note(changed))
    tensors = flatten_outputs(result, ctx.config.model.output_names)
    outputs = {n: t.detach().cpu().numpy() for n, t in tensors.items()}
    require_finite_reference(outputs, f"the {point.label} shapes ({describe_point(point)})")
    return outputs


def require_finite_reference(outputs: dict[str, np.ndarray], where: str, what: str = "PyTorch model") -> None:
    """The reference must be finite: NaN/Inf in it leaves nothing to verify against (exit 4)."""
    bad = non_finite_outputs(outputs)
    if bad:
        has_nan = any(np.issubdtype(v.dtype, np.floating) and np.isnan(v).any() for v in outputs.values())
        kind = "NaN" if has_nan else "Inf"
        raise StageError(
            f"The {what} itself produces {kind} on {where}: {'; '.join(bad)}.",
            hint="Nothing can be verified against a non-finite reference. Fix the model or its weights, or "
            "declare the value ranges it handles (--val-range NAME:[LOW,HIGH]).",
        )


def _trace_feed(ctx: RunContext) -> Feeds:
    """Inputs to trace with: the opt shapes, except that a dynamic axis is never traced at size 1
    (exporters specialise size-1 dimensions); parity still checks size 1 afterwards."""
    shapes = {}
    for name in ctx.input_names:
        shape_range = ctx.shape_ranges[name]
        dims = list(shape_range.opt)
        for axis in shape_range.dynamic_axes:
            if dims[axis] == 1 and shape_range.max[axis] >= 2:
                dims[axis] = 2
        shapes[name] = tuple(dims)
    return synthetic_feed(ctx.input_names, shapes, ctx.inputs, seed=ctx.config.verify.seed + 1)


def _reinfer_output_shapes(path: Path) -> None:
    """The dynamo exporter can declare traced sizes on outputs (e.g. GRU over time) while computing them
    dynamically; clear the declared shapes and let shape inference recompute them."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    if path.with_name(path.name + ".data").exists():
        return
    del model.graph.value_info[:]
    declared = {o.name: [d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return
    for output in model.graph.output:  # where inference gives up (unk__N), the exporter's symbol stays
        symbols = declared.get(output.name) or []
        dims = output.type.tensor_type.shape.dim
        if len(symbols) == len(dims):
            for dim, symbol in zip(dims, symbols, strict=True):
                unknown = not dim.HasField("dim_value") and (
                    not dim.dim_param or dim.dim_param.startswith("unk__")
                )
                if symbol and unknown:
                    dim.dim_param = symbol
    onnx.save(model, str(path))


def _looks_like_dtype_error(exc: Exception) -> bool:
    text = str(exc)
    return any(word in text for word in ("Long", "Int", "indices", "dtype", "scalar type"))


def _export(
    torch: Any,
    module: Any,
    ctx: RunContext,
    exporter: Exporter,
    feed: Feeds,
    output_names: list[str],
    path: Path,
) -> list[Finding]:
    """Export to `path`; returns what the export froze (infercc.stages.soundness)."""
    args = tuple(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in ctx.input_names)
    opset = ctx.config.export.opset
    quiet = contextlib.redirect_stdout(io.StringIO())
    with (
        warnings.catch_warnings(record=True) as caught,
        quiet,
        contextlib.redirect_stderr(io.StringIO()),
        _quiet_loggers(),
    ):
        warnings.simplefilter("always")
        if exporter is Exporter.dynamo:
            dynamic_shapes = {
                name: {axis: torch.export.Dim.DYNAMIC for axis in ctx.shape_ranges[name].dynamic_axes} or None
                for name in ctx.input_names
            }
            has_dynamic = any(v for v in dynamic_shapes.values())
            program = torch.onnx.export(
                module,
                args,
                None,
                dynamo=True,
                opset_version=opset,
                input_names=ctx.input_names,
                output_names=output_names,
                dynamic_shapes=tuple(dynamic_shapes.values()) if has_dynamic else None,
                optimize=True,
                verbose=False,
            )
            large = sum(p.numel() * p.element_size() for p in module.parameters()) > _external_threshold(ctx)
            program.save(str(path), external_data=large)
            if has_dynamic:
                _reinfer_output_shapes(path)
        else:
            dynamic_axes = {
                name: {axis: f"{name}_dim{axis}" for axis in ctx.shape_ranges[name].dynamic_axes}
                for name in ctx.input_names
                if ctx.shape_ranges[name].dynamic_axes
            }
            torch.onnx.export(
                _positional(torch, module, len(ctx.input_names)),
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=ctx.input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes or None,
                do_constant_folding=True,
            )
    _rename_outputs(path, output_names)
    if exporter is Exporter.dynamo:
        return program_findings(torch, program, module, args, ctx.input_names, ctx.shape_ranges)
    return tracer_findings(torch, caught)


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """torch's exporter loggers at ERROR while exporting (a failed attempt is reported in one line), and back
    to their own levels afterwards: the user's logging is theirs."""
    loggers = [
        logging.getLogger(n)
        for n in ("torch.onnx", "torch.fx", "torch.export", "torch._export", "torch._dynamo")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _external_threshold(ctx: RunContext) -> int:
    return ctx.config.export.external_data_threshold_mb * 2**20


def _positional(torch: Any, module: Any, count: int) -> Any:
    """The TorchScript exporter turns forward() parameters that keep their defaults (e.g. `scale: float = 1.0`)
    into extra graph inputs; tracing through a wrapper that takes only the declared inputs bakes the defaults in."""

    class Positional(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(*inputs)

    from infercc.models.io import forward_parameter_count

    if isinstance(module, torch.jit.ScriptModule) or forward_parameter_count(module) <= count:
        return module  # nothing to bake in: keep the model's own weight and node names
    return Positional(module).eval()


def _rename_outputs(path: Path, output_names: list[str]) -> None:
    """Make graph input/output names exactly the ones PyTorch reported (dynamo may drop output_names)."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    current = [o.name for o in model.graph.output]
    if current == output_names or len(current) != len(output_names):
        return
    mapping = dict(zip(current, output_names, strict=True))
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for out in model.graph.output:
        out.name = mapping[out.name]
    onnx.save(model, str(path))


def _infer_shapes(path: Path) -> None:
    onnx = require("onnx")
    with contextlib.suppress(Exception):  # shape inference is best effort; the checker already passed
        onnx.shape_inference.infer_shapes_path(str(path), str(path))


def _parity(
    ctx: RunContext,
    path: Path,
    points: list[ShapePoint],
    feeds: dict[str, Feeds],
    references: dict[str, dict[str, np.ndarray]],
    tolerance: Tolerance,
) -> ParityResult:
    from infercc.runtimes.isolation import IsolatedRuntime

    result = ParityResult(ok=True)
    graph_dims = io_dims(load_onnx(path, with_data=False))
    for name in ctx.input_names:
        dims = graph_dims.get(name, {}).get("dims", [])
        for axis in ctx.shape_ranges[name].dynamic_axes:
            if axis < len(dims) and isinstance(dims[axis], int):
                result.problems.append(
                    f"input {name} dimension {axis} was exported as fixed {dims[axis]} although it ranges "
                    f"{ctx.shape_ranges[name].min[axis]}..{ctx.shape_ranges[name].max[axis]}"
                )
    with IsolatedRuntime("onnxruntime-cpu", path) as runtime:  # a crash fails the export, not infercc
        for point in points:
            try:
                outputs = runtime.infer(feeds[point.label])
            except InferccError as exc:
                result.problems.append(
                    f"at the {point.label} shapes ({describe_point(point)}) {_node_of(exc, ctx, point)}"
                )
                continue
            per_output = {}
            for out_name, reference in references[point.label].items():
                if out_name not in outputs:
                    result.problems.append(f"output {out_name} is missing from the ONNX graph")
                    continue
                metrics = compare(outputs[out_name], reference, tolerance)
                per_output[out_name] = metrics.to_dict()
                for failure in metrics.failures:
                    result.problems.append(
                        f"at the {point.label} shapes ({describe_point(point)}) output {out_name}: {failure}"
                    )
            result.per_point[point.label] = {"shapes": describe_point(point), "outputs": per_output}
    result.problems = [text.replace(path.name, ONNX_FILE) for text in result.problems]  # not the temp name
    result.ok = not result.problems
    return result


def _node_of(exc: InferccError, ctx: RunContext, point: ShapePoint) -> str:
    """Name the failing node, and the traced dimension sizes baked into it where they can be recognised."""
    text = exc.message
    match = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
    if not match:
        return text.splitlines()[0][:300]
    status = re.search(r"Status Message: (.*)", text)
    detail = status.group(1).strip() if status else ""
    detail = re.sub(r"^\S*onnxruntime_src\S*:\d+ .*?\) ", "", detail)  # drop the C++ source location
    shapes = re.search(r"Input shape:\s*(\{[^}]*\}),\s*requested shape:\s*(\{[^}]*\})", detail)
    if shapes:
        detail = f"input shape {shapes.group(1)} cannot be reshaped to {shapes.group(2)}"
        requested = [int(v) for v in re.findall(r"-?\d+", shapes.group(2))]
        baked = _baked_dims(ctx, point, requested)
        if baked:
            detail += f"; the requested shape holds the traced size of {baked}"
    return f"ONNX Runtime failed in {match.group(1)} node '{match.group(2)}': {detail[:300]}"


def _baked_dims(ctx: RunContext, point: ShapePoint, requested: list[int]) -> str:
    """Dynamic dimensions whose traced (opt) size appears in a constant shape while the run used another size."""
    found = []
    for name in ctx.input_names:
        shape_range = ctx.shape_ranges[name]
        for axis in shape_range.dynamic_axes:
            traced, now = shape_range.opt[axis], point.shapes[name][axis]
            if traced != now and traced in requested and traced > 1:
                found.append(f"{name} dimension {axis} ({traced})")
    return ", ".join(dict.fromkeys(found))


def _save_reference(
    final: Path, feeds: dict[str, Feeds], references: dict[str, dict[str, np.ndarray]]
) -> None:
    arrays = {}
    for label, feed in feeds.items():
        arrays.update({f"{label}/input/{n}": v for n, v in feed.items()})
        arrays.update({f"{label}/output/{n}": v for n, v in references[label].items()})
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_reference(path: Path) -> dict[str, tuple[Feeds, dict[str, np.ndarray]]]:
    """{point label: (inputs, PyTorch outputs)} from reference.npz."""
    result: dict[str, tuple[Feeds, dict[str, np.ndarray]]] = {}
    with np.load(path) as data:
        for key in data.files:
            label, kind, name = key.split("/", 2)
            feeds, outs = result.setdefault(label, ({}, {}))
            (feeds if kind == "input" else outs)[name] = data[key]
    return result


class ImportOnnxStage:
    """For an .onnx source: copy it in, check it, and record ONNX Runtime's outputs as the reference."""

    name = "export"
    version: ClassVar[str] = "1"
    portable: ClassVar[bool] = True  # machine-independent outputs: --cache shares them across hosts
    description = "Import ONNX"
    needs: tuple[str, ...] = ()

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "ranges": {n: r.describe() for n, r in ctx.shape_ranges.items()},
            "seed": ctx.config.verify.seed,
            "inputs": {n: ctx.inputs[n].model_dump(mode="json") for n in ctx.input_names},
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnx", "onnxruntime")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.runtimes.isolation import IsolatedRuntime

        source = Path(ctx.source.spec)
        model = load_onnx(source, with_data=True)
        check_onnx(source)
        from infercc.onnxutil import save_onnx

        save_onnx(model, ctx.path(ONNX_FILE), _external_threshold(ctx))
        points = shape_points(ctx)
        feeds = {
            p.label: synthetic_feed(ctx.input_names, p.shapes, ctx.inputs, seed=ctx.config.verify.seed)
            for p in points
        }
        references = {}
        # in a child process (a crash is exit 4); errors then name the user's file, not our copy
        with IsolatedRuntime("onnxruntime-cpu", source) as runtime:
            for point in points:
                references[point.label] = runtime.infer(feeds[point.label])
                check_declarations(
                    ctx.config,
                    ctx.input_names,
                    feeds[point.label],
                    references[point.label],
                    describe_point(point),
                )
        _save_reference(ctx.path(REFERENCE_FILE), feeds, references)
        counts = op_counts(model)
        result = ExportResult(
            exporter="none",
            nodes=sum(counts.values()),
            op_counts=counts,
            io=io_dims(model),
            shapes_checked={p.label: describe_point(p) for p in points},
        )
        return StageOutput(
            artifacts=[
                NewArtifact("onnx", ONNX_FILE, "onnx", meta={"exporter": "none (ONNX source)"}),
                NewArtifact("reference", REFERENCE_FILE, "reference"),
            ],
            result=with_brief(result),
            notes=["ONNX source: export skipped; the reference is ONNX Runtime CPU on the source file"],
        )
