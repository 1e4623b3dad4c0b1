"""Stateful models: inputs that take the model's own outputs of the step before (`inputs.NAME.state_from`), and
runs over sequences, step by step, with that state carried.

A recurrent model's error compounds over time: judged on independent samples with random state, an INT8 graph
can look fine while its state drifts away within a few steps. So wherever infercc measures a stateful model
(calibration, quantize accuracy, the INT8 fallback, verify), it runs each sequence from its initial state and
feeds every step the state the same model produced at the step before: FP32 with FP32's state, the candidate
with its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from infercc.errors import UsageError
from infercc.shapes import format_dims

Feeds = dict[str, np.ndarray]
Infer = Callable[[Feeds], dict[str, Any]]


@dataclass(frozen=True)
class StatePair:
    input: str  # fed at step t ...
    output: str  # ... with this output of step t-1
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    dtype: str
    initial: float

    @property
    def where(self) -> str:
        return f"inputs.{self.input}.state_from: {self.output}"

    def start(self, batch: int | None) -> np.ndarray:
        """The declared initial value at the declared shape; a dynamic first axis follows the data's batch."""
        shape = list(self.opt_shape)
        if batch is not None and shape and self.min_shape[0] <= batch <= self.max_shape[0]:
            shape[0] = batch
        return np.full(shape, self.initial, dtype=self.dtype)


@dataclass(frozen=True)
class StatePlan:
    """Which inputs are state (and from which output) and which come from the data, one time slice a step."""

    pairs: tuple[StatePair, ...]
    stepped: tuple[str, ...]

    @property
    def state_inputs(self) -> tuple[str, ...]:
        return tuple(p.input for p in self.pairs)

    def steps(self, sequence: Feeds) -> int:
        return int(sequence[self.stepped[0]].shape[0])

    def initial_state(self, sequence: Feeds) -> Feeds:
        """Each state input at the start of `sequence`: the sequence's own array when it holds one (no time
        axis), else `state_initial` at the declared shape."""
        first = sequence[self.stepped[0]]
        batch = int(first.shape[1]) if first.ndim > 1 else None
        return {
            p.input: np.asarray(sequence[p.input], dtype=p.dtype) if p.input in sequence else p.start(batch)
            for p in self.pairs
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": {p.input: p.output for p in self.pairs},
            "initial": {p.input: p.initial for p in self.pairs},
            "stepped": list(self.stepped),
        }


def state_plan(specs: dict[str, Any], input_names: list[str]) -> StatePlan | None:
    """The state pairs declared in `specs` (inputs.NAME -> InputSpec) over the model's inputs; None for a model
    without state."""
    pairs = []
    for name in input_names:
        spec = specs.get(name)
        if spec is None or spec.state_from is None:
            continue
        shape_range = spec.shape_range(name)
        pairs.append(
            StatePair(
                name,
                spec.state_from,
                tuple(shape_range.min),
                tuple(shape_range.opt),
                tuple(shape_range.max),
                spec.dtype.value,
                spec.state_initial,
            )
        )
    unknown = sorted(n for n, s in specs.items() if s.state_from is not None and n not in input_names)
    if unknown:
        raise UsageError(
            f"inputs.{unknown[0]}.state_from: the model has no input {unknown[0]} (its inputs: "
            f"{', '.join(input_names)}).",
            hint="Declare state_from on one of the model's inputs.",
        )
    if not pairs:
        return None
    stepped = tuple(n for n in input_names if n not in {p.input for p in pairs})
    if not stepped:
        raise UsageError(
            f"Every input of the model is state ({', '.join(input_names)}): nothing comes from the data, so "
            "there is no sequence to run.",
            hint="Leave state_from off the inputs the data gives at each step.",
        )
    return StatePlan(tuple(pairs), stepped)


def check_state_outputs(plan: StatePlan, feed: Feeds, outputs: dict[str, Any], where: str) -> None:
    """Exit 2 when a state output is missing, or differs from its input in shape or dtype."""
    for pair in plan.pairs:
        if pair.output not in outputs:
            raise UsageError(
                f"{pair.where}: the model has no output {pair.output} (its outputs: {', '.join(outputs)}).",
                hint=f"Name the output that holds the next {pair.input}, or name the outputs with model.output_names.",
            )
        got, want = np.asarray(outputs[pair.output]), np.asarray(feed[pair.input])
        if got.shape != want.shape or got.dtype != want.dtype:
            raise UsageError(
                f"{pair.where}: output {pair.output} is {format_dims(got.shape)} {got.dtype}, but input "
                f"{pair.input} takes {format_dims(want.shape)} {want.dtype} ({where}).",
                hint=f"A state output must have its input's shape and dtype: fix inputs.{pair.input} (shape, "
                "dtype) or name another output.",
            )


def check_decision_output(config: Any, outputs: dict[str, Any], where: str) -> None:
    """Exit 2 when the decision budget names an output the model does not have."""
    decision = config.quantize.int8_budget_decision
    if decision is not None and decision.output not in outputs:
        raise UsageError(
            f"quantize.int8_budget_decision.output: the model has no output {decision.output} ({where}; its "
            f"outputs: {', '.join(outputs)}).",
            hint="Name the probability output the decisions are taken on.",
        )


def check_declarations(
    config: Any, input_names: list[str], feed: Feeds, outputs: dict[str, Any], where: str
) -> None:
    """The state pairs and the decision output against one real run of the model (export, ONNX import)."""
    plan = state_plan(config.inputs, input_names)
    if plan is not None:
        check_state_outputs(plan, feed, outputs, where)
    check_decision_output(config, outputs, where)


def rollout(infer: Infer, sequence: Feeds, plan: StatePlan) -> tuple[dict[str, np.ndarray], list[Feeds]]:
    """Run one sequence step by step, each step fed the state outputs of the step before. Returns every output
    stacked over the steps (first axis: steps x batch rows, in time order) and the feeds of every step."""
    state = plan.initial_state(sequence)
    collected: dict[str, list[np.ndarray]] = {}
    feeds: list[Feeds] = []
    for step in range(plan.steps(sequence)):
        feed = {**{n: np.ascontiguousarray(sequence[n][step]) for n in plan.stepped}, **state}
        outputs = infer(feed)
        if step == 0:
            check_state_outputs(plan, feed, outputs, "at the first step")
        state = {p.input: np.asarray(outputs[p.output]) for p in plan.pairs}
        for name, value in outputs.items():
            collected.setdefault(name, []).append(np.asarray(value))
        feeds.append(feed)
    return {name: stack_steps(values) for name, values in collected.items()}, feeds


def run_input(infer: Infer, feeds: Feeds, plan: StatePlan | None) -> dict[str, Any]:
    """One input set: a single feed, or with a plan a whole sequence run step by step (outputs over the steps)."""
    return infer(feeds) if plan is None else rollout(infer, feeds, plan)[0]


def stack_steps(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(values) if values[0].ndim else np.stack(values)


def decision_figures(actual: np.ndarray, reference: np.ndarray, threshold: float) -> dict[str, Any]:
    """Agreement of `p > threshold` between a candidate and FP32 over every element (every step of every
    sequence), with the flips each way. NaN never agrees."""
    act = np.asarray(actual, dtype=np.float64).ravel()
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if act.shape != ref.shape or not ref.size:
        return {"agreement": None, "threshold": threshold, "samples": int(ref.size)}
    act_on, ref_on = act > threshold, ref > threshold
    agree = (act_on == ref_on) & np.isfinite(act)
    return {
        "agreement": round(float(agree.mean()), 6),
        "threshold": threshold,
        "samples": int(ref.size),
        "positive_fp32": int(ref_on.sum()),
        "flips_on": int((act_on & ~ref_on).sum()),
        "flips_off": int((~act_on & ref_on & np.isfinite(act)).sum()),
    }
