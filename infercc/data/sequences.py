"""Sequence data for stateful models (inputs.NAME.state_from; docs/sequences.md).

A sequence is one dict of arrays: every input the data gives (not the state inputs) with a leading time axis,
`(T, *step shape)`, e.g. `x: (T, 1, 512)` for a model that takes `x: 1x512` per step. A state input may be given
too, without a time axis: the value the state starts at in that sequence (else `inputs.NAME.state_initial`).

Sources, as for single batches: a folder of `.npz` files (one sequence per file, keyed by input name), a
callable yielding one such dict per sequence, or `synthetic` (`samples` seeded sequences of `steps` steps,
values uniform within each input's declared range). `samples` counts sequences; `steps` also caps how many
steps are read from each sequence.

The dataset offers the same interface as single-batch data, plus `sequences()`. Its `batches()` are single
steps with the state the FP32 graph carries there (the `teacher`), which is what calibration, the layer ranking
and bias correction look at; accuracy runs each model over whole sequences (infercc.sequences.rollout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infercc.data.sources import Dataset, Feeds, Item, ModelInputs, check_feed, name_mismatch
from infercc.errors import UsageError
from infercc.fsutil import sha256_json
from infercc.sequences import StatePlan, rollout
from infercc.shapes import format_dims


@dataclass
class SequenceDataset:
    role: str
    kind: str
    description: str
    items: list[Item]
    inputs: ModelInputs
    fingerprint: str
    plan: StatePlan
    steps: int  # most steps read from one sequence
    warnings: list[str] = field(default_factory=list)
    labels: Any = None
    batch_size: int = 1
    teacher: Path | None = None  # the FP32 graph whose state the single-step batches carry
    threads: int | None = None
    _sequences: list[Feeds] | None = None
    _steps: list[Feeds] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def sequences(self, limit: int | None = None) -> Iterator[Feeds]:
        """Checked sequences (loaded once, then kept), at most `limit` of them."""
        if self._sequences is None:
            self._sequences = [self._checked(item) for item in self.items]
        yield from self._sequences[:limit]

    @property
    def samples(self) -> int:
        """Steps over every sequence (each step a sample of the data's batch)."""
        return sum(self.plan.steps(s) for s in self.sequences())

    def batches(self, limit: int | None = None) -> Iterator[Feeds]:
        """Single steps, each with the state the teacher (the FP32 graph) carries at that step; with `limit`,
        that many steps spread evenly over all sequences (not only the first steps, where the state is new)."""
        steps = self._teacher_steps()
        if limit is not None and limit < len(steps):
            picked = np.linspace(0, len(steps) - 1, limit).round().astype(int)
            steps = [steps[i] for i in sorted(set(picked.tolist()))]
        yield from steps

    def labelled_batches(self, limit: int | None = None) -> Iterator[tuple[Feeds, None]]:
        for feed in self.batches(limit):
            yield feed, None

    def _teacher_steps(self) -> list[Feeds]:
        if self._steps is None:
            if self.teacher is None:
                raise RuntimeError("sequence data needs the FP32 graph (bind_teacher) before single steps")
            from infercc.runtimes.isolation import IsolatedRuntime

            self._steps = []
            with IsolatedRuntime("onnxruntime-cpu", self.teacher, threads=self.threads) as session:
                for sequence in self.sequences():
                    self._steps += rollout(session.infer, sequence, self.plan)[1]
        return self._steps

    def _checked(self, item: Item) -> Feeds:
        loaded = item.load()
        where = f"{self.role} sequence {item.key}"
        if len(loaded) != 1:
            raise UsageError(f"{where}: expected one sequence, got {len(loaded)}.")
        return check_sequence(loaded[0], self.inputs, self.plan, where, self.steps)


def check_sequence(sequence: Any, inputs: ModelInputs, plan: StatePlan, where: str, steps: int) -> Feeds:
    """A sequence names the stepped inputs (each with a leading time axis of the same length) and optionally
    state inputs (their initial value); every step must fit the model's inputs."""
    if not isinstance(sequence, dict):
        raise UsageError(
            f"{where}: a sequence must be a dict of input name -> array with a leading time axis, not "
            f"{type(sequence).__name__}.",
            hint=f"Give {', '.join(plan.stepped)} as (T, ...) arrays (docs/sequences.md).",
        )
    mismatch = name_mismatch(sequence, inputs.names, plan.stepped)
    if mismatch:
        raise UsageError(
            f"{where}: {mismatch}; each step takes {', '.join(plan.stepped)} (state: "
            f"{', '.join(plan.state_inputs)}).",
            hint="Key each array by the model's input name; state inputs are optional (their initial value).",
        )
    arrays = {name: _array(value) for name, value in sequence.items()}
    lengths = {n: int(arrays[n].shape[0]) if arrays[n].ndim else 0 for n in plan.stepped}
    if len(set(lengths.values())) != 1 or min(lengths.values()) < 1:
        shown = ", ".join(f"{n}: {format_dims(arrays[n].shape)}" for n in plan.stepped)
        raise UsageError(
            f"{where}: every stepped input needs the same leading time axis of at least one step ({shown}).",
            hint="Stack the steps on a new first axis: np.stack(steps) for each input.",
        )
    arrays.update({n: arrays[n][:steps] for n in plan.stepped})
    first = {**{n: arrays[n][0] for n in plan.stepped}, **plan.initial_state(arrays)}
    check_feed(first, inputs, f"{where}, step 0")  # names, dtypes, shapes within the declared ranges
    for name in plan.stepped:
        values = arrays[name]
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            step = int(np.argwhere(~np.isfinite(values))[0][0])
            check_feed({**first, name: values[step]}, inputs, f"{where}, step {step}")
    return {name: np.ascontiguousarray(value) for name, value in arrays.items()}


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def for_model(
    specs: dict[str, Any], input_names: list[str], datasets: tuple[Dataset, Dataset], sources: tuple[Any, Any]
) -> tuple[Any, Any]:
    """The (calibration, evaluation) datasets as sequences when the model has state pairs (`specs`: each model
    input's InputSpec), else unchanged. `sources`: the calibration and evaluation DataSources they were opened
    from (None where not given)."""
    from infercc.config import DataSource
    from infercc.sequences import state_plan

    plan = state_plan(specs, input_names)
    if plan is None:
        return datasets
    calibration, evaluation = sources
    calib_steps = (calibration or DataSource(synthetic=True)).steps
    eval_steps = (evaluation or calibration or DataSource(synthetic=True)).steps
    return as_sequences(datasets[0], plan, calib_steps), as_sequences(datasets[1], plan, eval_steps)


def as_sequences(dataset: Dataset, plan: StatePlan, steps: int) -> SequenceDataset:
    """The same source read as sequences: its items are whole sequences (synthetic data: seeded sequences of
    `steps` steps instead of single batches, seeded from the source's fingerprint). Nothing is loaded yet."""
    if dataset.kind == "images":
        raise UsageError(
            f"The {dataset.role} data is a folder of images, but the model is stateful: it needs sequences.",
            hint="Give a folder of .npz files, one sequence each (docs/sequences.md), or synthetic data.",
        )
    items, description = dataset.items, dataset.description.replace("files", "sequence files", 1)
    if dataset.kind == "synthetic":
        seed = int(dataset.fingerprint[:8] or "0", 16)
        items, description = synthetic_sequences(len(dataset.items), steps, dataset.inputs, plan, seed)
    fingerprint = sha256_json({"data": dataset.fingerprint, "plan": plan.to_dict(), "steps": steps})
    return SequenceDataset(
        role=dataset.role,
        kind=dataset.kind,
        description=description,
        items=items,
        inputs=dataset.inputs,
        fingerprint=fingerprint,
        plan=plan,
        steps=steps,
        warnings=list(dataset.warnings),
    )


def synthetic_sequences(
    count: int, steps: int, inputs: ModelInputs, plan: StatePlan, seed: int
) -> tuple[list[Item], str]:
    """`count` seeded sequences of `steps` steps: the stepped inputs at their opt shapes, values uniform within
    each input's declared range; the state starts at its declared initial value."""
    from infercc.data.synthetic import synthetic_feed

    shapes = {n: (steps, *inputs.ranges[n].opt) for n in plan.stepped}

    def loader(i: int) -> Callable[[], list[Feeds]]:
        return lambda: [synthetic_feed(list(plan.stepped), shapes, inputs.specs, seed=seed + i)]

    items = [Item(f"synthetic sequence {i}", loader(i), f"{seed}:{steps}:{i}") for i in range(count)]
    shown = ", ".join(f"{n}:{format_dims(s)}" for n, s in shapes.items())
    return items, f"{count} seeded synthetic sequences ({shown})"


def bind_teacher(datasets: tuple[Any, ...], teacher: Path, threads: int | None) -> None:
    """Give sequence datasets the FP32 graph whose state their single-step batches carry."""
    for dataset in datasets:
        if isinstance(dataset, SequenceDataset):
            dataset.teacher, dataset.threads = teacher, threads


def verify_sequences(
    config: Any, input_names: list[str], ranges: dict[str, Any], specs: dict[str, Any], plan: StatePlan
) -> tuple[str, list[tuple[str, Feeds]], bool]:
    """The sequences verify runs a stateful model on: (where they come from, labelled sequences, whether they are
    real data). verify.inputs (a folder of sequence .npz files), else the evaluation data (its own source, or the
    share held out of the calibration data), else verify.samples seeded sequences."""
    from infercc.config import DataSource
    from infercc.data.sources import effective_sources, open_source, resolve_datasets

    inputs = ModelInputs(list(input_names), dict(ranges), dict(specs))
    calibration, evaluation = effective_sources(config)
    if config.verify.inputs is not None:
        if Path(config.verify.inputs).suffix.lower() == ".json":
            raise UsageError(
                f"verify.inputs {config.verify.inputs} is a Polygraphy inputs file of single feeds, but the model "
                "is stateful and is verified over sequences.",
                hint="Point verify.inputs at a folder of .npz sequence files (docs/sequences.md).",
            )
        source = DataSource(folder=config.verify.inputs, samples=max(config.verify.samples, 1) * 64)
        found, label, real = open_source(source, inputs, "verify"), "verify", True
    elif evaluation is not None or (calibration is not None and not calibration.synthetic):
        source = evaluation or calibration
        found = resolve_datasets(calibration, evaluation, inputs, seed=config.verify.seed)[1]
        label, real = "eval", found.kind != "synthetic"
    else:
        source = DataSource(synthetic=True, samples=config.verify.samples, seed=config.verify.seed)
        found, label, real = open_source(source, inputs, "verify"), "sequence", False
        found.fingerprint = sha256_json(source.model_dump(mode="json"))  # seeds the sequences
    dataset = as_sequences(found, plan, source.steps)
    sequences = [(f"{label}#{i}", sequence) for i, sequence in enumerate(dataset.sequences())]
    return dataset.description, sequences, real
