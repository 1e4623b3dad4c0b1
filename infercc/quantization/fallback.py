"""The accuracy-aware INT8 fallback: quantize, measure against the FP32 graph, and while the accuracy budget is
missed keep the layers that hurt the outputs most in FP32, then quantize again.

Choices are judged on the calibration data; the figures reported are on the held-out evaluation data, so the
choice cannot flatter them. Layers are ranked once (each alone in INT8, measured at the outputs); each round
keeps the worst open one in FP32, with any others that hurt about as much; the search stops when the budget is
met, after `quantize.fallback_max_steps` rounds, or after two rounds without a gain, and then goes back to the
best set it saw. The TensorRT form inherits the ONNX Runtime form's set and is not searched (its figures here
come from ONNX Runtime CPU, which only approximates TensorRT).

    search = FallbackSearch(Int8Job(...))
    outcome = search.run()        # writes job.out; outcome.figures, outcome.kept, outcome.steps, outcome.notes
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from infercc.budget import Budget
from infercc.config import QuantizeConfig


class Int8Form(StrEnum):
    """The two Q/DQ forms written from the same calibration ranges (quantization.int8)."""

    onnxruntime = "onnxruntime"  # uint8 asymmetric activations: ONNX Runtime CPU's integer kernels
    tensorrt = "tensorrt"  # int8 symmetric activations, float bias: TensorRT's explicit quantization

    @property
    def artifact(self) -> str:
        return "int8" if self is Int8Form.onnxruntime else "int8-trt"

    @property
    def filename(self) -> str:
        return "model.int8.onnx" if self is Int8Form.onnxruntime else "model.int8.trt.onnx"

    @property
    def activations(self) -> str:
        if self is Int8Form.onnxruntime:
            return "uint8 asymmetric activations"
        return "int8 symmetric activations, float bias"


@dataclass
class Int8Job:
    """What one INT8 artifact is made from, and where it goes."""

    fp32: Path
    ranges: Path  # the calibration cache (calibration.json)
    out: Path  # where each candidate is written (the stage's temporary name)
    form: Int8Form
    settings: QuantizeConfig
    calibration: Any  # data.sources.Dataset: choices are judged on it
    evaluation: Any  # data.sources.Dataset: the figures reported
    reference: Any  # quantization.accuracy.Outputs: the FP32 graph on the evaluation data
    budget: Budget
    output_kinds: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    inherited: list[str] = field(default_factory=list)  # kept FP32 by the ONNX Runtime form
    progress: Callable[[float, float | None, str], None] = lambda done, total, detail: None


@dataclass
class Outcome:
    """The chosen candidate (already in job.out) and how the search got there."""

    info: dict[str, Any]  # quantization.int8.describe (+ bias_correction)
    figures: dict[str, Any]  # accuracy on the evaluation data
    first: dict[str, Any]  # the same before any fallback
    outputs: Any  # the chosen candidate's outputs on the evaluation data
    kept: list[str]  # nodes kept in FP32 by the search (the inherited ones included)
    steps: list[dict[str, Any]]
    ranking: list[dict[str, Any]]  # the 20 worst layers, as ranked
    notes: list[str]
    met: bool
    misses: list[str]
    top1: float | None  # the budget as judged: top-1 only where the outputs have a top-1 figure
    cosine: float | None
    decision: Any = None  # config.DecisionBudget: agreement of p > threshold on a probability output

    @property
    def judged(self) -> bool:
        return self.top1 is not None or self.cosine is not None or self.decision is not None


class FallbackSearch:
    """One INT8 artifact: quantize, and keep layers in FP32 until the budget is met (see the module)."""

    def __init__(self, job: Int8Job) -> None:
        self.job = job
        self.kept: list[str] = list(job.inherited)
        self.steps: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.ranking: list[Any] | None = None
        self.top1: float | None = None
        self.cosine: float | None = job.budget.cosine
        self._calibration_reference: Any = None
        self._graph: Any = None
        self._feeds: list[Any] = []

    def run(self) -> Outcome:
        from infercc.quantization.accuracy import run_model

        job = self.job
        job.progress(0, None, "quantizing")
        self._calibration_reference = run_model(job.fp32, job.calibration, threads=job.threads)
        info, figures, outputs = self._quantize()
        first = figures
        self.top1 = job.budget.top1 if figures.get("top1") is not None else None
        met, misses = self._meets(figures)
        if job.inherited:
            self.notes.append(f"kept in FP32 as in the ONNX Runtime form: {', '.join(job.inherited)}")
        if not met:
            info, figures, outputs, met, misses = self._search(info, figures, outputs)
        if self.kept:  # a pick can keep several nodes (its activation unit): name every one
            self.notes.append(f"{len(self.kept)} layer(s) kept FP32: {', '.join(self.kept)}")
        return Outcome(
            info=info,
            figures=figures,
            first=first,
            outputs=outputs,
            kept=self.kept,
            steps=self.steps,
            ranking=[r.to_dict() for r in (self.ranking or [])[:20]],
            notes=self.notes,
            met=met,
            misses=misses,
            top1=self.top1,
            cosine=self.cosine,
            decision=self.job.budget.decision,
        )

    def _search(self, info: dict[str, Any], figures: dict[str, Any], outputs: Any) -> tuple[Any, ...]:
        """Rounds of keeping layers in FP32 while the budget is missed; ends on the best set seen."""
        judged = self._judge()
        calibration_met = self._met_on_calibration(judged)
        best = (_score(judged, self.kept), list(self.kept))
        met, misses, stalled = False, self._meets(figures)[1], 0
        while not calibration_met and len(self.steps) < self._max_steps() and stalled < 2 and self._judged():
            picked = self._pick()
            if not picked:
                self.notes.append("fallback: no quantized layer left to keep in FP32")
                break
            before, judged_before = figures, judged
            self.kept = list(dict.fromkeys(self.kept + [n for r in picked for n in self._unit(r.node)]))
            info, figures, outputs = self._quantize()
            judged = self._judge()
            met, misses = self._meets(figures)
            calibration_met = self._met_on_calibration(judged)
            self._record_step(picked, before, figures, judged_before, judged, met)
            score = _score(judged, self.kept)
            best, stalled = ((score, list(self.kept)), 0) if score > best[0] else (best, stalled + 1)
            if met:
                break
        if stalled >= 2:
            self.notes.append("fallback: stopped after two rounds without a gain on the calibration data")
        elif self.steps and not met and calibration_met:
            self.notes.append(
                "fallback: stopped because the calibration data meets the budget (the held-out figure is "
                "reported as measured)"
            )
        elif self.steps and not met and len(self.steps) >= self._max_steps():
            self.notes.append(
                f"fallback: stopped at quantize.fallback_max_steps ({self._max_steps()} rounds)"
            )
        if not met and self.steps and best[1] != self.kept:  # the last step was not the best one
            self.kept = best[1]
            info, figures, outputs = self._quantize()
            met, misses = self._meets(figures)
            self.notes.append(f"kept the best fallback set ({len(self.kept)} layers in FP32)")
        return info, figures, outputs, met, misses

    def _max_steps(self) -> int:
        # the TensorRT form inherits the ONNX Runtime form's choice: its accuracy here (ORT CPU running the
        # Q/DQ graph) only approximates TensorRT's numerics, so it is reported, not searched on
        return self.job.settings.fallback_max_steps if self.job.form is Int8Form.onnxruntime else 0

    def _judged(self) -> bool:
        return self.top1 is not None or self.cosine is not None or self.job.budget.decision is not None

    def _met_on_calibration(self, judged: dict[str, Any]) -> bool:
        """The cosine or decision budget already met on the calibration data: the search stops there (a
        held-out miss is then reported as measured, not searched away on the data it is measured on)."""
        from infercc.quantization.accuracy import meets

        decision = self.job.budget.decision
        if self.cosine is None and decision is None:
            return False
        return meets(judged, None, self.cosine, decision)[0]

    def _quantize(self) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """Write the candidate with the current FP32 set; its description, figures and outputs."""
        from infercc.quantization.accuracy import accuracy, run_model
        from infercc.quantization.int8 import write_qdq

        job, q = self.job, self.job.settings
        info = write_qdq(
            job.fp32,
            job.ranges,
            job.out,
            form=job.form.value,
            method=q.method,
            per_channel=q.per_channel,
            exclude_nodes=[*q.exclude_nodes, *self.kept],
            exclude_ops=q.exclude_ops,
        )
        if q.bias_correction and job.form is Int8Form.onnxruntime:
            from infercc.quantization.bias_correction import correct_biases

            batches = list(job.calibration.batches())
            info["bias_correction"] = correct_biases(job.fp32, job.out, job.out, batches, threads=job.threads)
        outputs = run_model(job.out, job.evaluation, threads=job.threads)
        return info, accuracy(outputs, job.reference, job.output_kinds, job.budget.decision), outputs

    def _judge(self) -> dict[str, Any]:
        """The candidate on the calibration data: what the fallback chooses on."""
        from infercc.quantization.accuracy import accuracy, run_model

        job = self.job
        outputs = run_model(job.out, job.calibration, threads=job.threads)
        return accuracy(outputs, self._calibration_reference, job.output_kinds, job.budget.decision)

    def _meets(self, figures: dict[str, Any]) -> tuple[bool, list[str]]:
        from infercc.quantization.accuracy import meets

        return meets(figures, self.top1, self.cosine, self.job.budget.decision)

    def _pick(self) -> list[Any]:
        """The worst open layer, with the others about as harmful (errors downstream of a bad layer look
        "local" too until that layer is fixed)."""
        q = self.job.settings
        if self.ranking is None:
            self._rank()
        self.job.progress(len(self.steps) + 1, q.fallback_max_steps, "re-quantizing")
        ranking = self.ranking or []
        open_ = [r for r in ranking if r.node not in self.kept and r.node not in q.exclude_nodes]
        picked = [r for r in open_[: q.fallback_nodes_per_step] if r.local >= 0.5 * open_[0].local]
        return picked or open_[:1]

    def _rank(self) -> None:
        """Once: each quantized layer alone in INT8, measured at the outputs."""
        import onnx

        from infercc.quantization.sensitivity import rank_by_output

        job = self.job
        self._feeds = list(job.calibration.batches(limit=job.settings.sensitivity_samples))
        self._graph = onnx.load(str(job.fp32), load_external_data=False).graph
        self.ranking = rank_by_output(
            job.fp32,
            job.out,
            self._feeds,
            threads=job.threads,
            progress=lambda n, total: job.progress(n, total, "ranking layers by quantization error"),
        )

    def _unit(self, node: str) -> list[str]:
        return activation_unit(self._graph, node)

    def _record_step(
        self,
        picked: list[Any],
        before: dict[str, Any],
        after: dict[str, Any],
        judged_before: dict[str, Any],
        judged: dict[str, Any],
        met: bool,
    ) -> None:
        step = {
            "step": len(self.steps) + 1,
            "kept_fp32": [r.to_dict() for r in picked],
            "top1_before": before.get("top1"),
            "top1_after": after.get("top1"),
            "cosine_before": before.get("cosine"),
            "cosine_after": after.get("cosine"),
            "calibration_top1_after": judged.get("top1"),
            "calibration_cosine_after": judged.get("cosine"),
            "met": met,
        }
        self.steps.append(step)
        layers = ", ".join(f"{r.node} ({r.op_type})" for r in picked)
        self.notes.append(
            f"fallback step {step['step']}: kept {layers} in FP32: calibration data {_fig(judged_before)} -> "
            f"{_fig(judged)}; held-out {_fig(before)} -> {_fig(after)}"
        )


def activation_unit(graph: Any, name: str) -> list[str]:
    """The nodes kept in FP32 together when the fallback picks `name`:
    - the activation it feeds alone (Conv -> Clip/Relu): the quantizer folds such an activation into the
      output range, so it goes with its Conv;
    - for a grouped (depthwise) Conv, also the unit that produces its input: a DequantizeLinear feeding an
      FP32 depthwise Conv gives wrong results once ONNX Runtime's basic graph optimizations run
      (EfficientNet-Lite0, ORT 1.32: top-1 agreement 94% with optimizations disabled, 74% with them on).
    """
    if graph is None:
        return [name]
    nodes = {n.name: n for n in graph.node}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def with_activation(node: Any) -> list[str]:
        after = consumers.get(node.output[0], [])
        return [node.name] + ([after[0].name] if len(after) == 1 and after[0].op_type in ACTIVATIONS else [])

    node = nodes.get(name)
    if node is None:
        return [name]
    unit = with_activation(node)
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if node.op_type == "Conv" and group > 1 and node.input[0] in producer:
        source = producer[node.input[0]]
        if source.op_type in ACTIVATIONS and source.input and source.input[0] in producer:
            source = producer[source.input[0]]
        unit = with_activation(source) + unit
    return unit


ACTIVATIONS = ("Clip", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid")


def _score(figures: dict[str, Any], kept: list[str]) -> tuple[float, float, float, int]:
    """How the fallback ranks its candidate sets on the calibration data (higher is better): no NaN/Inf, then
    decision agreement to 3 decimals (where a decision budget is set), then cosine to the FP32 outputs to 3
    decimals (top-1 on calibration views is dominated by near-ties, and finer cosine gains are noise), then
    fewer layers in FP32 (each one costs speed)."""
    agreement = (figures.get("decision") or {}).get("agreement") or 0.0
    return (
        -float(figures.get("non_finite") or 0),
        round(agreement, 3),
        round(figures.get("cosine") or 0.0, 3),
        -len(kept),
    )


def _fig(figures: dict[str, Any]) -> str:
    from infercc.quantization.accuracy import brief

    return brief(figures, precise=True)
