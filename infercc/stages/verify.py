"""Verify stage: every artifact on every runtime of this machine against the reference, output by output.

Inputs (the same sets go to every runtime): files from `verify.inputs` (.npy/.npz folder), else the
evaluation source when `evaluation` is configured, else the seeded reference sets of the export stage
(min/opt/max shapes) plus seeded sets at the opt shape up to `verify.samples`. The reference is PyTorch
(or, with `verify.reference: onnx`, the exported FP32 ONNX on ONNX Runtime CPU). Runtimes not installed
here are listed as skipped, with the reason. Semantics of the checks: infercc.metrics, docs/verify.md.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.budget import budget_for, miss_message
from infercc.config import OutputKind, Precision, Reference, Tolerance, _default_tolerances
from infercc.errors import InferccError
from infercc.metrics import Check as MetricCheck
from infercc.metrics import compare, non_finite_outputs, output_kind, split_tolerance, stack_rows
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import RunContext, StageOutput
from infercc.runtimes.base import candidate_runtimes, runs_artifact, usable_runtimes
from infercc.runtimes.isolation import RuntimeCrashed, open_runtime
from infercc.sequences import StatePlan, decision_figures, run_input, state_plan
from infercc.stages.results import (
    BudgetJudgement,
    Check,
    OutputFigures,
    OutputSummary,
    Unverified,
    VerifyEntry,
    VerifyInputs,
    VerifyResult,
)

ARTIFACT_KINDS = ("onnx", "engine", "inductor")
SUMMARY_KEYS = ("max_abs", "max_rel", "mean_abs", "cosine", "snr_db", "nan", "inf", "top1", "top5")


def artifact_precision(art: ArtifactRecord) -> Precision:
    try:
        return Precision(art.precision) if art.precision else Precision.fp32
    except ValueError:
        return Precision.fp32


def tolerance_for(config: Any, art: ArtifactRecord, output: str, runtime: str | None = None) -> Tolerance:
    """Per-output override, else the runtime's override for the artifact's precision, else the configured
    tolerance of that precision, else the default one."""
    cfg = config.verify
    precision = artifact_precision(art)
    per_runtime = cfg.runtime_tolerances.get(runtime or "", {}).get(precision)
    return (
        cfg.outputs.get(output)
        or per_runtime
        or cfg.tolerances.get(precision)
        or _default_tolerances()[precision]
    )


@dataclass
class InputSet:
    label: str
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray] | None = None
    real: bool = False  # real data (evaluation split or --inputs files), not seeded random values
    wide: bool = False  # values outside the seeded range (range_sets): not for calibrated INT8
    plan: StatePlan | None = None  # a sequence of a stateful model: run step by step, the state carried


@dataclass
class Clock:
    """Time spent inside runtimes (session creation and inference), reading input data (files, image
    decoding and preprocessing), and the rest: infercc's own work."""

    runtime_s: float = 0.0
    data_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.runtime_s += time.perf_counter() - t0

    def load(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Time a data-loading call; runtime calls made inside it still count as runtime time."""
        t0, inner = time.perf_counter(), self.runtime_s
        try:
            return fn(*args, **kwargs)
        finally:
            self.data_s += time.perf_counter() - t0 - (self.runtime_s - inner)

    def summary(self) -> dict[str, float]:
        total = time.perf_counter() - self.started
        own = max(total - self.runtime_s - self.data_s, 0.0)
        return {
            "total_s": round(total, 4),
            "runtime_s": round(self.runtime_s, 4),
            "data_s": round(self.data_s, 4),
            "own_s": round(own, 4),
            "own_share": round(own / total, 4) if total > 0 else 0.0,
        }


@contextlib.contextmanager
def opened(clock: Clock, name: str, artifact: Any, **options: Any) -> Iterator[Any]:
    """A runtime entered and exited with the time it takes counted as the runtime's own. Artifact files run
    in a child process of their own (infercc.runtimes.isolation), so a runtime crash fails only that pair."""
    runtime = clock.call(open_runtime, name, artifact, **options)
    clock.call(runtime.__enter__)
    try:
        yield runtime
    finally:
        clock.call(runtime.__exit__, None, None, None)


class VerifyStage:
    name = "verify"
    version: ClassVar[str] = "9"
    description = "Verify artifacts against the reference"

    def __init__(self, artifact_names: tuple[str, ...], wants: tuple[str, ...] = ()) -> None:
        self.artifact_names = (*artifact_names, *wants)
        self.needs: tuple[str, ...] = ("reference", *artifact_names)
        self.wants = tuple(wants)  # used when produced (a failed inductor compile leaves its package out)

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.config
        return {
            "verify": cfg.verify.model_dump(mode="json"),
            "runtimes": candidate_runtimes(cfg.verify.runtimes),
            "evaluation": cfg.evaluation.model_dump(mode="json") if cfg.evaluation else None,
            "calibration": cfg.calibration.model_dump(mode="json") if cfg.calibration else None,
            "threads": cfg.bench.threads,
            "output_kinds": cfg.model.output_kinds,
            "int8_budget": budget_for(cfg, Precision.int8).to_dict(),  # judged here too
            "state": {n: [s.state_from, s.state_initial] for n, s in cfg.inputs.items() if s.state_from},
        }

    def tools(self) -> tuple[str, ...]:
        return ("onnxruntime", "onnxruntime-gpu", "numpy", "torch", "tensorrt", "tensorrt_rtx_bindings")

    def deps(self, ctx: RunContext) -> list[Path]:
        """verify.inputs, and the evaluation (or held-out calibration) data and labels it verifies on."""
        from infercc.data.sources import effective_sources, source_paths

        if ctx.config.verify.inputs is not None:
            return [Path(ctx.config.verify.inputs)]
        calibration, evaluation = effective_sources(ctx.config)
        return source_paths(evaluation, "evaluation") + source_paths(calibration, "calibration")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        clock = Clock()
        cfg = ctx.config.verify
        source, sets = clock.load(input_sets, ctx, inputs, clock)
        reference_notes: list[str] = []
        reference_name = _attach_reference(ctx, inputs, sets, clock, reference_notes)
        sets = [
            s for s in sets if s.expected is not None
        ]  # wide sets the reference cannot answer are left out
        results: list[VerifyEntry] = []
        handled: set[str] = set()
        unverified_reasons: dict[str, str] = {}
        usable, skipped = usable_runtimes(cfg.runtimes, "verify.runtimes")
        for runtime_name, cls in usable:
            for name in self.artifact_names:
                art = inputs.get(name)
                if art is None or not runs_artifact(runtime_name, cls, art):
                    continue
                handled.add(name)
                chosen, why_not = sets_within(art, sets_for(art, sets))
                if why_not:
                    unverified_reasons[name] = why_not
                    continue
                ctx.progress(self.name, len(results), None, f"{name} on {runtime_name}")
                results.append(verify_one(ctx.config, ctx.path(art.path), art, runtime_name, chosen, clock))
                if len(chosen) < len(sets_for(art, sets)):
                    results[-1].notes = [restricted_note(art, sets_for(art, sets), chosen)]
        unverified = [
            Unverified(artifact=n, reason=unverified_reasons.get(n, "no available runtime runs it"))
            for n in self.artifact_names
            if n in inputs and (n not in handled or n in unverified_reasons)
        ]
        failures = [f for r in results for f in r.failures]
        notes = [f"skipped runtime {s['runtime']}: {s['reason']}" for s in skipped]
        notes += [f"not verified: {u.artifact} ({u.reason})" for u in unverified]
        notes += reference_notes
        notes += [f"{r.artifact} on {r.runtime}: {n}" for r in results for n in r.notes or []]
        result = VerifyResult(
            passed=not failures,
            reference=reference_name,
            inputs=VerifyInputs(
                source=source,
                sets=[s.label for s in sets],
                shapes={s.label: {n: list(v.shape) for n, v in s.feeds.items()} for s in sets},
            ),
            results=results,
            skipped_runtimes=skipped,
            unverified=unverified,
            failures=failures,
            crashes=[r.crashed for r in results if r.crashed],
            budget_misses=_budget_misses(results),
            checks=[c for r in results for c in r.checks],
            overhead=clock.summary(),
            brief=_brief(results, skipped, failures),
        )
        return StageOutput(result=result, notes=notes)


def _budget_misses(results: list[VerifyEntry]) -> list[str]:
    """Budget misses of pairs that otherwise passed, unless accepted (quantize.accept_budget_miss)."""
    return [
        r.budget.message or ""
        for r in results
        if r.passed and r.budget and not r.budget.met and not r.budget.accepted
    ]


def _brief(results: list[VerifyEntry], skipped: list[dict[str, str]], failures: list[str]) -> str:
    text = f"{len(results)} artifact/runtime pairs, " + (
        "all within tolerance" if not failures else f"{len(failures)} failures"
    )
    if skipped:
        text += f"; skipped {', '.join(s['runtime'] for s in skipped)}"
    return text


def sets_within(art: ArtifactRecord, sets: list[InputSet]) -> tuple[list[InputSet], str | None]:
    """The sets an artifact can run (a package whose dimension torch.export specialised accepts only some
    shapes), or why it cannot be verified here at all."""
    if art.meta.get("loadable") is False:
        return [], f"built, not loadable on this machine: {art.meta.get('load_error')}"
    valid = art.meta.get("valid_shapes")
    if not valid:
        return sets, None
    from infercc.inductor.export import within

    kept = [s for s in sets if within(valid, s.feeds) is None]
    if not kept:
        return [], "no input set has a shape the package accepts (see the specialised dimensions)"
    return kept, None


def restricted_note(art: ArtifactRecord, sets: list[InputSet], kept: list[InputSet]) -> str:
    kept_ids = {id(s) for s in kept}
    left_out = [s.label for s in sets if id(s) not in kept_ids]
    return (
        f"verified only where the package is valid: {len(kept)} of {len(sets)} input sets "
        f"(left out {', '.join(left_out[:6])}{' ...' if len(left_out) > 6 else ''})"
    )


def sets_for(art: ArtifactRecord, sets: list[InputSet]) -> list[InputSet]:
    """INT8 artifacts are calibrated for real data: judge them on real data when there is some."""
    real = [s for s in sets if s.real]
    sequences = [s for s in sets if s.plan is not None]
    if artifact_precision(art) is Precision.int8 and sequences:  # a stateful model: judged over sequences
        return [s for s in sequences if s.real] or sequences
    if artifact_precision(art) is Precision.int8:
        return real or [s for s in sets if not s.wide]
    return sets


# --- inputs and reference ---------------------------------------------------------------------------


def input_sets(
    ctx: RunContext, inputs: dict[str, ArtifactRecord], clock: Clock
) -> tuple[str, list[InputSet]]:
    """(where the inputs come from, the input sets); sets from the export reference carry their outputs."""
    cfg = ctx.config.verify
    plan = state_plan(ctx.inputs, ctx.input_names)
    if plan is not None:
        return _sequence_sets(ctx, inputs, plan)
    if cfg.inputs is not None and Path(cfg.inputs).suffix.lower() == ".json":
        return f"Polygraphy inputs {cfg.inputs}", _polygraphy_sets(ctx, Path(cfg.inputs))
    if cfg.inputs is not None:
        return f"files in {cfg.inputs}", _dataset_sets(ctx, "folder", cfg.inputs)
    from infercc.data.synthetic import synthetic_feed
    from infercc.stages.export import load_reference

    reference = load_reference(ctx.path(inputs["reference"].path))
    sets = [InputSet(label, feeds, outs) for label, (feeds, outs) in reference.items()]
    opt = {n: ctx.shape_ranges[n].opt for n in ctx.input_names}
    for i in range(1, max(cfg.samples - len(sets) + 1, 1)):
        sets.append(InputSet(f"opt#{i}", synthetic_feed(ctx.input_names, opt, ctx.inputs, seed=cfg.seed + i)))
    sets += range_sets(ctx, synthetic_feed(ctx.input_names, opt, ctx.inputs, seed=cfg.seed + 999))
    real = _evaluation_sets(ctx)
    if real:
        return (
            f"seeded random (seed {cfg.seed}) at the min/opt/max shapes, and {real[0]}",
            sets + real[1],
        )
    return f"seeded random (seed {cfg.seed}) within the declared ranges", sets


def _sequence_sets(
    ctx: RunContext, inputs: dict[str, ArtifactRecord], plan: StatePlan
) -> tuple[str, list[InputSet]]:
    """A stateful model: the export's single steps at the min/opt/max shapes (seeded state), then sequences run
    step by step with the state carried: verify.inputs, else the evaluation data, else seeded sequences."""
    from infercc.data.sequences import verify_sequences
    from infercc.stages.export import load_reference

    reference = load_reference(ctx.path(inputs["reference"].path))
    sets = [InputSet(label, feeds, outs) for label, (feeds, outs) in reference.items()]
    where, sequences, real = verify_sequences(ctx.config, ctx.input_names, ctx.shape_ranges, ctx.inputs, plan)
    sets += [InputSet(label, feeds, real=real, plan=plan) for label, feeds in sequences]
    return f"single steps at the min/opt/max shapes, and {where}", sets


def range_sets(ctx: RunContext, base: dict[str, np.ndarray]) -> list[InputSet]:
    """Inputs beyond the seeded [low, high) values, at the opt shape: for float inputs without a declared value
    range, negative (standard normal) and large-magnitude (uniform +-1000) values, which expose a branch frozen
    by tracing; for inputs with a declared range, both ends of it (ints: low and high - 1)."""
    rng = np.random.default_rng(ctx.config.verify.seed + 7)
    specs = ctx.inputs
    open_ = [
        n for n in ctx.input_names if specs[n].dtype.value.startswith("float") and not _declared(specs[n])
    ]
    declared = [n for n in ctx.input_names if _declared(specs[n])]
    sets = []
    if open_:
        for label, draw in (
            ("negative", rng.standard_normal),
            ("large", lambda shape: rng.uniform(-1e3, 1e3, shape)),
        ):
            feeds = {**base, **{n: draw(base[n].shape).astype(base[n].dtype) for n in open_}}
            sets.append(InputSet(label, feeds, wide=True))
    for end in ("low", "high"):
        if declared:
            feeds = dict(base)
            for n in declared:
                value = getattr(specs[n], end)
                if specs[n].dtype.value.startswith("int"):
                    value = int(np.floor(value)) if end == "low" else int(np.ceil(value)) - 1
                feeds[n] = np.full_like(base[n], value)
            sets.append(InputSet(f"range-{end}", feeds, wide=True))
    return sets


def _declared(spec: Any) -> bool:
    return bool({"low", "high"} & spec.model_fields_set)


def _evaluation_sets(ctx: RunContext) -> tuple[str, list[InputSet]] | None:
    """The evaluation data of the precision stage (its own source, or the split held out of the calibration
    data), when real data was given. INT8 artifacts are judged on it alone: random values say little there."""
    from infercc.data.sources import ModelInputs, effective_sources, resolve_datasets

    cfg = ctx.config
    calibration, evaluation_source = effective_sources(cfg)
    if evaluation_source is None and (calibration is None or calibration.synthetic):
        return None
    model_inputs = ModelInputs(list(ctx.input_names), dict(ctx.shape_ranges), dict(ctx.inputs))
    _, evaluation = resolve_datasets(calibration, evaluation_source, model_inputs, seed=cfg.verify.seed)
    sets = [InputSet(f"eval#{i}", feeds, real=True) for i, feeds in enumerate(evaluation.batches())]
    return (evaluation.description, sets) if sets else None


def _polygraphy_sets(ctx: RunContext, path: Path) -> list[InputSet]:
    """Feeds from a Polygraphy inputs file (--load-inputs), checked against the model's inputs."""
    from infercc.data.polygraphy import load_inputs
    from infercc.errors import UsageError

    sets = []
    for i, feed in enumerate(load_inputs(path)):
        if set(feed) != set(ctx.input_names):
            raise UsageError(
                f"{path}, item {i}: inputs {', '.join(sorted(feed))}; the model takes {', '.join(ctx.input_names)}.",
                hint="Save the inputs from the same model (polygraphy run ... --save-inputs, or infercc --save-inputs).",
            )
        for name in ctx.input_names:
            shape_range, dims = ctx.shape_ranges[name], tuple(feed[name].shape)
            fits = len(dims) == len(shape_range.min) and all(
                lo <= d <= hi for d, lo, hi in zip(dims, shape_range.min, shape_range.max, strict=True)
            )
            if not fits:
                raise UsageError(
                    f"{path}, item {i}: input {name} has shape {'x'.join(map(str, dims))}, outside the "
                    f"model's range {shape_range.describe()}.",
                    hint="Widen --min-shape/--max-shape, or save inputs within the range.",
                )
            feed[name] = feed[name].astype(ctx.inputs[name].dtype.value, copy=False)
        sets.append(InputSet(f"polygraphy#{i}", feed, real=True))
    return sets


def _dataset_sets(ctx: RunContext, kind: str | None, folder: Any) -> list[InputSet]:
    from infercc.config import DataSource
    from infercc.data.sources import ModelInputs, open_source

    model_inputs = ModelInputs(list(ctx.input_names), dict(ctx.shape_ranges), dict(ctx.inputs))
    if kind == "folder":
        source = DataSource(folder=folder, samples=max(ctx.config.verify.samples, 1) * 64)
        role = "verify"
    else:
        source = ctx.config.evaluation
        role = "evaluation"
    dataset = open_source(source, model_inputs, role)
    sets = [InputSet(f"{role}#{i}", feeds, real=True) for i, feeds in enumerate(dataset.batches())]
    if not sets:
        from infercc.errors import UsageError

        raise UsageError(
            f"No {role} inputs found in {dataset.description}.",
            hint="Point verify.inputs at .npy/.npz files.",
        )
    return sets


def _attach_reference(
    ctx: RunContext, inputs: dict[str, ArtifactRecord], sets: list[InputSet], clock: Clock, notes: list[str]
) -> str:
    """Fill in the expected outputs of every set (all of them with reference=onnx); returns what the reference
    is. A non-finite reference is exit 4; what PyTorch noted (a forward that mutates its inputs) goes to notes."""
    from infercc.stages.export import require_finite_reference

    onnx_ref = ctx.config.verify.reference is Reference.onnx or ctx.source.is_onnx
    if onnx_ref and "onnx" in inputs:
        with opened(
            clock, "onnxruntime-cpu", ctx.path(inputs["onnx"].path), threads=ctx.config.bench.threads
        ) as rt:
            for s in sets:
                if s.expected is None or ctx.config.verify.reference is Reference.onnx:
                    s.expected = clock.call(run_input, rt.infer, s.feeds, s.plan)
                    if s.wide and non_finite_outputs(s.expected):
                        notes.append(
                            f"input set {s.label} left out: the reference itself gives NaN/Inf there"
                        )
                        s.expected = None
                        continue
                    require_finite_reference(
                        s.expected, f"the verify input set {s.label}", "FP32 ONNX reference"
                    )
        return (
            "onnx (FP32, ONNX Runtime CPU)"
            if ctx.config.verify.reference is Reference.onnx
            else "onnx source"
        )
    missing = [s for s in sets if s.expected is None]
    if missing:
        names = ctx.config.model.output_names or list(sets[0].expected or {}) or None
        module = clock.call(ctx.torch_module)
        with opened(
            clock,
            "pytorch-cpu",
            module,
            input_names=ctx.input_names,
            output_names=names,
            threads=ctx.config.bench.threads,
        ) as rt:
            for s in missing:
                s.expected = clock.call(run_input, rt.infer, s.feeds, s.plan)
                if s.wide and non_finite_outputs(s.expected):
                    notes.append(
                        f"input set {s.label} left out: the PyTorch model itself gives NaN/Inf there "
                        f"({'; '.join(non_finite_outputs(s.expected))}); declare the value range it handles"
                    )
                    s.expected = None
                    continue
                require_finite_reference(s.expected, f"the verify input set {s.label}")
            notes += rt.notes
    return "pytorch (eager FP32, CPU)"


# --- one artifact on one runtime ------------------------------------------------------------------------


def verify_one(
    config: Any,
    path: Any,
    art: ArtifactRecord,
    runtime_name: str,
    sets: list[InputSet],
    clock: Clock | None = None,
    **runtime_options: Any,
) -> VerifyEntry:
    """Run every input set through `art` on `runtime_name` and compare each output with the reference."""
    clock = clock or Clock()
    pair = Pair(art, runtime_name, config)
    started = time.perf_counter()
    try:
        with opened(clock, runtime_name, path, threads=config.bench.threads, **runtime_options) as runtime:
            if getattr(runtime, "run_settings", None):
                pair.entry.runtime_settings = dict(runtime.run_settings)
            for s in sets:
                pair.compare_set(s, clock.call(run_input, runtime.infer, s.feeds, s.plan))
    except RuntimeCrashed as exc:
        pair.entry.crashed = exc.message
        pair.entry.failures.append(exc.message)
        pair.entry.checks.append(pair.run_check("crash", exc.message))
    except InferccError as exc:
        pair.entry.failures.append(f"{art.name} on {runtime_name}: {exc.message}")
        pair.entry.checks.append(pair.run_check("run", exc.message))
    pair.summarise()
    entry = pair.entry
    entry.passed = not entry.failures
    entry.budget = judge_budget(config, art, runtime_name, entry)
    entry.seconds = round(time.perf_counter() - started, 4)
    return entry


class Pair:
    """One artifact on one runtime: its entry, and the outputs collected over the input sets to judge whole."""

    def __init__(self, art: ArtifactRecord, runtime: str, config: Any) -> None:
        self.art, self.runtime, self.config = art, runtime, config
        self.entry = VerifyEntry(
            artifact=art.name,
            path=art.path,
            kind=art.kind,
            precision=artifact_precision(art).value,
            runtime=runtime,
            outputs={},
            points={},
            failures=[],
            checks=[],
            tolerances={},
        )
        self.collected: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.kinds: dict[str, OutputKind] = {}  # judged once per output, on the first input set

    def compare_set(self, s: InputSet, outputs: dict[str, np.ndarray]) -> None:
        """Each output of one input set against its reference, per sample (split_tolerance)."""
        point: dict[str, OutputFigures] = {}
        for out_name, ref in (s.expected or {}).items():
            if out_name not in outputs:
                message = f"output {out_name} is missing (the artifact gives {', '.join(outputs)})"
                self.failed(out_name, s.label, MetricCheck("missing_output", None, "present", message))
                continue
            got = np.asarray(outputs[out_name])
            kind = self.kinds.setdefault(out_name, output_kind(out_name, ref, self.config.model.output_kinds))
            per_sample, _ = split_tolerance(self.tolerance(out_name))
            metrics = compare(got, ref, per_sample, kind)
            point[out_name] = OutputFigures.model_validate(metrics.to_dict())
            for check in metrics.checks:
                self.failed(out_name, s.label, check)
            if metrics.shape_match:
                acts, refs = self.collected.setdefault(out_name, ([], []))
                acts.append(got)
                refs.append(ref)
        self.entry.points[s.label] = point

    def summarise(self) -> None:
        """Each output over every input set it ran (the whole-set tolerance: cosine, SNR, top-1)."""
        for out_name, (acts, refs) in self.collected.items():
            tol = self.tolerance(out_name)
            _, whole = split_tolerance(tol)
            metrics = compare(stack_rows(acts), stack_rows(refs), whole, self.kinds[out_name])
            summary = {k: v for k, v in metrics.to_dict().items() if k in SUMMARY_KEYS}
            decision = self.config.quantize.int8_budget_decision
            if decision is not None and out_name == decision.output:
                summary["decision"] = decision_figures(stack_rows(acts), stack_rows(refs), decision.threshold)
            self.entry.outputs[out_name] = OutputSummary(
                **summary,
                kind=self.kinds[out_name].value,
                samples=len(acts),
                passed=metrics.passed and not any(c.output == out_name for c in self.entry.checks),
            )
            self.entry.tolerances[out_name] = tol.model_dump(mode="json", exclude_none=True)
            for check in metrics.checks:
                self.failed(out_name, "all sets", check)

    def tolerance(self, output: str) -> Tolerance:
        return tolerance_for(self.config, self.art, output, self.runtime)

    def failed(self, output: str, where: str, found: MetricCheck) -> None:
        """Record a failed check of `output` on input set `where` (or "all sets")."""
        self.entry.failures.append(
            f"{self.art.name} on {self.runtime}, output {output} ({where}): {found.message}"
        )
        self.entry.checks.append(
            Check(
                artifact=self.art.name,
                runtime=self.runtime,
                output=output,
                set=where,
                metric=found.metric,
                value=_finite(found.value),
                limit=found.limit,
                message=found.message,
            )
        )

    def run_check(self, metric: str, message: str) -> Check:
        """A check for a pair that did not run to the end (a runtime error, or the runtime crashing)."""
        return Check(
            artifact=self.art.name,
            runtime=self.runtime,
            output=None,
            set=None,
            metric=metric,
            value=None,
            limit="runs",
            message=message,
        )


def _finite(value: Any) -> Any:
    """A check's value as JSON keeps it: a plain number, None for NaN/Inf."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def judge_budget(
    config: Any, art: ArtifactRecord, runtime: str, entry: VerifyEntry
) -> BudgetJudgement | None:
    """The artifact's accuracy budget (infercc.budget) judged on this pair's figures: the worst top-1 agreement
    and cosine over its outputs, on the same input sets as its tolerances (real data for INT8)."""
    budget = budget_for(config, artifact_precision(art))
    if budget.empty or not entry.outputs:
        return None
    if art.target == "tensorrt" and not runtime.startswith("tensorrt"):
        return None  # the TensorRT Q/DQ form on another runtime only approximates TensorRT's numerics
    outputs = entry.outputs.values()
    top1s = [o.top1 for o in outputs if isinstance(o.top1, float | int)]
    cosines = [o.cosine for o in outputs]
    finite = all(isinstance(c, float | int) for c in cosines)
    non_finite = sum(o.nan + o.inf for o in outputs)
    top1 = min(top1s) if top1s else None
    cosine = min(cosines) if finite and cosines else None
    decided = entry.outputs.get(budget.decision.output) if budget.decision is not None else None
    agreement = decided.decision.agreement if decided is not None and decided.decision is not None else None
    misses = budget.misses(top1, cosine, non_finite, agreement)
    return BudgetJudgement(
        **budget.to_dict(),
        top1_measured=top1,
        cosine_measured=cosine,
        decision_measured=agreement,
        met=not misses,
        misses=misses,
        message=miss_message(art.name, misses, runtime) if misses else None,
        accepted=bool(misses) and budget.accept_miss,
    )
