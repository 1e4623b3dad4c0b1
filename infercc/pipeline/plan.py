"""From a config to a run: resolve the model's inputs and shapes, then order the stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infercc.config import CompileConfig, InputSpec, Target
from infercc.errors import InferccError, UsageError
from infercc.fsutil import OutDirLock, ensure_writable_dir
from infercc.models.sources import ModelSource, parse_source, source_fingerprint
from infercc.pipeline.manifest import load_manifest
from infercc.pipeline.runner import RunResult, run_stages
from infercc.pipeline.stage import Events, RunContext, Stage
from infercc.shapes import ShapeRange, format_dims

if TYPE_CHECKING:
    from infercc.pipeline.cache import ArtifactCache

UNNAMED = ""  # config key for a --shape given without a name (single-input models)


class Goal(StrEnum):
    """How far a command runs the pipeline (like a make target)."""

    export = "export"
    simplify = "simplify"
    quantize = "quantize"
    build = "build"
    verify = "verify"
    bench = "bench"
    compile = "compile"


_ORDER = list(Goal)


@dataclass
class Plan:
    ctx: RunContext
    stages: list[Stage]


def reaches(goal: Goal, step: Goal) -> bool:
    return _ORDER.index(goal) >= _ORDER.index(step)


def make_context(config: CompileConfig, events: Events, force: bool = False) -> RunContext:
    """Call after execute() claimed config.out (or with an out folder that already holds the marker)."""
    source = parse_source(config.model.source)
    source_hash = source_fingerprint(source, config.model)
    out = ensure_writable_dir(config.out)
    names, ranges, specs, module = resolve_inputs(config, source, source_hash, out)
    return RunContext(config, out, source, source_hash, names, ranges, specs, events, force, module)


def resolve_inputs(
    config: CompileConfig, source: ModelSource, source_hash: str, out: Path
) -> tuple[list[str], dict[str, ShapeRange], dict[str, InputSpec], Any]:
    """Input names in the model's order, with their shape ranges and specs (declared, else the default), and
    the PyTorch model when finding the names needed it (else None). `config` is left as it is."""
    declared = dict(config.inputs)
    _check_memory(config.inputs, "declared")  # before the model is built or any feed allocated
    module = None
    if source.is_onnx:
        names, graph_dims = _onnx_inputs(Path(source.spec))
    else:
        names = _cached_names(out, source_hash, declared)
        graph_dims = {}
        if names is None:
            from infercc.models.io import forward_input_names
            from infercc.models.sources import load_module

            module = load_module(source, config.model)
            names = forward_input_names(module, set(declared)) or [n for n in declared if n != UNNAMED]
    if UNNAMED in declared:
        if len(names) != 1:
            raise UsageError(
                f"A shape without an input name fits only single-input models; this one takes {', '.join(names)}.",
                hint="Name each input: --shape NAME:1x3x224x224.",
            )
        declared[names[0]] = declared.pop(UNNAMED)
    unknown = [n for n in declared if n not in names]
    if unknown:
        raise UsageError(
            f"{', '.join(repr(n) for n in unknown)} {'is not an input' if len(unknown) == 1 else 'are not inputs'} "
            f"of the model; its inputs are: {', '.join(names)}.",
            hint="Use the model's input names in --shape / inputs.",
        )
    specs = {n: declared.get(n) or InputSpec() for n in names}
    ranges: dict[str, ShapeRange] = {}
    for name in names:
        shape_range = specs[name].shape_range(name)
        if shape_range is None:
            shape_range = _range_from_graph(name, graph_dims.get(name))
        elif name in graph_dims:
            _check_against_graph(name, shape_range, graph_dims[name], source.spec)
        ranges[name] = shape_range
    _check_memory(specs, "largest", ranges)
    return names, ranges, specs, module


def _check_memory(
    specs: dict[str, InputSpec], what: str, ranges: dict[str, ShapeRange] | None = None
) -> None:
    from infercc.resources import check_feed_memory

    if ranges is None:
        ranges = {n: r for n, spec in specs.items() if (r := spec.shape_range(n)) is not None}
    shapes = {n or "input": r.max for n, r in ranges.items()}
    dtypes = {n or "input": (specs.get(n) or InputSpec()).dtype.value for n in ranges}
    check_feed_memory(shapes, dtypes, what)


def _cached_names(out: Path, source_hash: str, declared: dict[str, InputSpec]) -> list[str] | None:
    """Input names recorded by an earlier run of the same source, so a no-op run needs no torch import."""
    manifest, _ = load_manifest(out)
    if manifest is None or manifest.source.get("sha256") != source_hash:
        return None
    names = manifest.source.get("input_names")
    if not names or set(declared) - {UNNAMED} - set(names) or not all(n in declared for n in names):
        return None
    return list(names)


def _onnx_inputs(path: Path) -> tuple[list[str], dict[str, list[Any]]]:
    from infercc.onnxutil import check_onnx, io_dims, load_onnx

    model = load_onnx(path, with_data=False)
    check_onnx(path, user_input=True, name=str(path))  # by path: external data is resolved beside the file
    dims = io_dims(model)
    inputs = {n: d["dims"] for n, d in dims.items() if d["io"] == "input"}
    return list(inputs), inputs


def _check_against_graph(name: str, shape_range: ShapeRange, dims: list[Any], spec: str) -> None:
    """A declared shape must have the graph input's rank and keep its fixed dimensions."""
    if not dims and not shape_range.opt:
        return
    graph = "x".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in dims)
    example = "x".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in dims)
    if len(dims) != len(shape_range.opt):
        raise UsageError(
            f"Input {name}: the shape {shape_range.describe()} has rank {len(shape_range.opt)}, "
            f"but {spec} declares rank {len(dims)} ({graph}).",
            hint=f"Give {len(dims)} dimensions, e.g. --shape {name}:{example}.",
        )
    for axis, fixed in enumerate(dims):
        if isinstance(fixed, int) and fixed > 0:
            lo, hi = shape_range.min[axis], shape_range.max[axis]
            if lo != fixed or hi != fixed:
                got = str(lo) if lo == hi else f"{lo}..{hi}"
                raise UsageError(
                    f"Input {name}, dimension {axis}: {spec} fixes it at {fixed}, but the shape gives {got}.",
                    hint=f"Use {fixed} for that dimension ({graph}); only ?/named dimensions can vary.",
                )


def _range_from_graph(name: str, dims: list[Any] | None) -> ShapeRange:
    if dims is None:
        raise UsageError(
            f"Input {name} has no shape.",
            hint=f"Pass --shape {name}:DIMS (e.g. 1x3x224x224), or --min-shape/--opt-shape/--max-shape for a dynamic input.",
        )
    dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
    if dynamic:
        shown = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in dims)
        raise UsageError(
            f"Input {name} has dynamic dimension(s) {', '.join(map(str, dynamic))} ({shown}) and no shape was given.",
            hint=f"Pass --shape {name}:DIMS, or --min-shape/--opt-shape/--max-shape {name}:DIMS.",
        )
    return ShapeRange.static(tuple(dims))


def plan(ctx: RunContext, goal: Goal, explicit_targets: bool = False) -> list[Stage]:
    from infercc.stages import bench, build, inductor, optimize, quantize, tune
    from infercc.stages.export import ExportStage, ImportOnnxStage
    from infercc.stages.simplify import SimplifyStage
    from infercc.stages.verify import VerifyStage

    stages: list[Stage] = [ImportOnnxStage() if ctx.source.is_onnx else ExportStage()]
    if goal is Goal.export:
        return stages
    stages.append(SimplifyStage())
    onnx_artifacts = ["onnx", "fp32"]
    onnx_targets = {Target.onnxruntime, Target.tensorrt} & set(ctx.config.targets)
    wants_onnx = onnx_targets or goal is Goal.quantize
    if reaches(goal, Goal.quantize) and wants_onnx and optimize.enabled(ctx.config):
        stages.append(optimize.OptimizeStage())
        onnx_artifacts.append("fp32-ort")
    if reaches(goal, Goal.quantize) and wants_onnx:
        more, produced = quantize.stages_for(ctx.config)
        stages += more
        onnx_artifacts += produced
    engines: list[str] = []
    if reaches(goal, Goal.build) and (Target.tensorrt in ctx.config.targets or goal is Goal.build):
        more, engines = build.stages_for(ctx.config, onnx_artifacts, explicit_targets or goal is Goal.build)
        stages += more
    packages: list[str] = []  # a package whose compile fails is left out downstream: the others go on
    if reaches(goal, Goal.build):
        more, packages = inductor.stages_for(ctx.config)
        stages += more
    run_configs: list[str] = []
    if reaches(goal, Goal.verify) and goal is not Goal.build and tune.planned(ctx.config):
        tuned = [a for a in onnx_artifacts if a in tune.TUNED]
        stages.append(tune.TuneStage(tuple(tuned)))
        run_configs = [tune.run_config_name(a) for a in tuned]
    if reaches(goal, Goal.verify) and goal is not Goal.build:
        stages.append(VerifyStage(tuple(onnx_artifacts + engines), wants=tuple(packages)))
    if reaches(goal, Goal.bench) and (goal is Goal.bench or ctx.config.bench.enabled):
        stages += bench.stages_for(ctx.config, onnx_artifacts + engines, run_configs, packages)
    return stages


def execute(
    config: CompileConfig,
    goal: Goal,
    events: Events,
    force: bool = False,
    explicit_targets: bool = False,
    after: Callable[[RunContext, RunResult], None] | None = None,
    cache: ArtifactCache | None = None,
    out_force: bool = False,
) -> tuple[RunContext, RunResult]:
    """Claim and lock the output folder, resolve, run the stages, record input names for the next run.

    `after` (e.g. writing the reports) runs while the lock is still held, so two runs never interleave.
    `cache` (pipeline.cache.open_cache) restores finished stages from, and stores them in, a shared store.
    `out_force` lets infercc take over an existing non-empty folder that it did not create.
    """
    config = config_for(config, goal)
    out = ensure_writable_dir(config.out, force=out_force)
    wait = config.lock_wait_s if config.lock.value == "wait" else 0.0
    with OutDirLock(out, wait=wait):
        ctx = make_context(config, events, force)
        stages = plan(ctx, goal, explicit_targets)
        try:
            result = run_stages(ctx, stages, config.model_dump(mode="json"), cache)
        except InferccError:
            if after is not None:
                _after_failure(ctx, after)
            raise
        result.manifest.source["input_names"] = ctx.input_names
        result.manifest.source["shapes"] = {n: r.describe() for n, r in ctx.shape_ranges.items()}
        result.manifest.save(out)
        if after is not None:
            after(ctx, result)
    return ctx, result


def config_for(config: CompileConfig, goal: Goal) -> CompileConfig:
    """The config a goal runs: `infercc build` means TensorRT, so the quantize stage also writes the TensorRT
    INT8 form. A copy: the caller's config is left as it is."""
    if goal is Goal.build and Target.tensorrt not in config.targets:
        return config.model_copy(update={"targets": [*config.targets, Target.tensorrt]})
    return config


def _after_failure(ctx: RunContext, after: Callable[[RunContext, RunResult], None]) -> None:
    """A failed run still writes its reports (status "failed"), so an earlier run's "ok" report never stays
    beside a failed one. A problem while reporting is a warning: the run's own error is the one to show."""
    manifest, _ = load_manifest(ctx.out)
    if manifest is None:
        return
    try:
        after(ctx, RunResult(manifest))
    except Exception as exc:
        ctx.events.warn(f"could not write the report of the failed run: {type(exc).__name__}: {exc}")


def describe_ranges(ranges: dict[str, ShapeRange]) -> str:
    return ", ".join(f"{n}:{format_dims(r.opt)}" for n, r in ranges.items())
