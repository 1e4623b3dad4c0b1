"""Accuracy of an artifact against the FP32 graph on the evaluation data: per output cosine, max error,
NaN/Inf; top-1/top-5 agreement for classifier outputs; top-1 accuracy when labels are given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infercc.metrics import compare, output_kind

CONFIDENT_MARGIN = 0.5  # logits


@dataclass
class Outputs:
    values: dict[str, np.ndarray]  # output name -> rows of every batch, concatenated
    labels: list[int] | None
    batches: list[dict[str, np.ndarray]]  # the feeds, for tracing NaN/Inf to a node


def run_model(
    path: Path,
    dataset: Any,
    threads: int | None = None,
    limit: int | None = None,
    runtime: str = "onnxruntime-cpu",
) -> Outputs:
    """Run an ONNX file on a CPU runtime (ONNX Runtime unless told) over the dataset's batches, in a child
    process: a freshly written artifact that crashes the runtime (an FP16 graph that segfaults it) fails the
    stage with the reason (exit 4) instead of taking infercc down."""
    from infercc.runtimes.isolation import IsolatedRuntime

    if hasattr(dataset, "sequences"):  # a stateful model: whole sequences, the state carried (sequences.py)
        return run_sequences(path, dataset, threads, runtime)
    collected: dict[str, list[np.ndarray]] = {}
    labels: list[int] | None = []
    feeds = []
    with IsolatedRuntime(runtime, path, threads=threads) as session:
        for feed, batch_labels in dataset.labelled_batches(limit):
            for name, value in session.infer(feed).items():
                collected.setdefault(name, []).append(np.asarray(value))
            feeds.append(feed)
            if batch_labels is None or labels is None:
                labels = None
            else:
                labels.extend(batch_labels)
    values = {n: np.concatenate(v) if v[0].ndim else np.stack(v) for n, v in collected.items()}
    return Outputs(values, labels or None, feeds)


def run_sequences(path: Path, dataset: Any, threads: int | None, runtime: str) -> Outputs:
    """run_model over a stateful model's sequences (data.sequences.SequenceDataset): the model at `path` runs
    every sequence from its initial state, each step fed the state it produced at the step before."""
    from infercc.runtimes.isolation import IsolatedRuntime
    from infercc.sequences import rollout, stack_steps

    collected: dict[str, list[np.ndarray]] = {}
    feeds: list[dict[str, np.ndarray]] = []
    with IsolatedRuntime(runtime, path, threads=threads) as session:
        for sequence in dataset.sequences():
            outputs, steps = rollout(session.infer, sequence, dataset.plan)
            for name, value in outputs.items():
                collected.setdefault(name, []).append(value)
            feeds += steps
    return Outputs({n: stack_steps(v) for n, v in collected.items()}, None, feeds)


def accuracy(
    candidate: Outputs, reference: Outputs, kinds: dict[str, Any] | None = None, decision: Any = None
) -> dict[str, Any]:
    """Figures of `candidate` against `reference` (the FP32 graph on the same data); top-1/top-5 only for
    classification outputs (`kinds`: declared output kinds, see metrics.output_kind); with `decision` (the
    config's DecisionBudget), the agreement of `p > threshold` on that output."""
    per_output: dict[str, Any] = {}
    top1s, top5s, cosines, worst = [], [], [], 0.0
    non_finite = 0
    for name, ref in reference.values.items():
        act = candidate.values[name]
        kind = output_kind(name, ref, kinds)
        m = compare(act, ref, kind=kind)
        rows = _row_cosines(act, ref)
        entry: dict[str, Any] = {
            "cosine": round(m.cosine, 6) if np.isfinite(m.cosine) else None,  # none over NaN/Inf
            "cosine_mean_sample": round(float(np.mean(rows)), 6) if rows.size else None,
            "cosine_min_sample": round(float(np.min(rows)), 6) if rows.size else None,
            "max_abs": _num(m.max_abs),
            "mean_abs": _num(m.mean_abs),
            "snr_db": _num(m.snr_db),
            "nan": m.nan,
            "inf": m.inf,
        }
        non_finite += m.nan + m.inf  # any NaN/Inf misses the budget, even where the reference has one
        cosines.append(m.cosine)
        worst = max(worst, m.max_abs if np.isfinite(m.max_abs) else float("inf"))
        if m.top1 is not None:
            entry["top1"] = round(float(m.top1 or 0.0), 6)
            entry["top5"] = round(float(m.top5 or 0.0), 6)
            top1s.append(entry["top1"])
            top5s.append(entry["top5"])
            confident = _margin(ref) >= CONFIDENT_MARGIN
            entry["confident_samples"] = int(confident.sum())
            if confident.any():
                entry["top1_confident"] = round(
                    float(np.mean(act[confident].argmax(-1) == ref[confident].argmax(-1))), 6
                )
            if reference.labels is not None and len(reference.labels) == len(ref):
                labels = np.asarray(reference.labels)
                entry["task_top1"] = round(float(np.mean(np.argmax(act, -1) == labels)), 6)
                entry["task_top1_fp32"] = round(float(np.mean(np.argmax(ref, -1) == labels)), 6)
        per_output[name] = entry
    summary: dict[str, Any] = {
        "samples": int(next(iter(reference.values.values())).shape[0]) if reference.values else 0,
        "cosine": round(min(cosines), 6) if cosines and np.isfinite(cosines).all() else None,
        "max_abs": _num(worst),
        "top1": min(top1s) if top1s else None,
        "top5": min(top5s) if top5s else None,
        "non_finite": non_finite,
        "outputs": per_output,
    }
    confident_top1 = [e["top1_confident"] for e in per_output.values() if "top1_confident" in e]
    if confident_top1:
        summary["top1_confident"] = min(confident_top1)
        summary["confident_samples"] = min(
            e["confident_samples"] for e in per_output.values() if "top1_confident" in e
        )
    if decision is not None and decision.output in reference.values:
        from infercc.sequences import decision_figures

        summary["decision"] = decision_figures(
            candidate.values[decision.output], reference.values[decision.output], decision.threshold
        )
    task = [e["task_top1"] for e in per_output.values() if "task_top1" in e]
    if task:
        summary["task_top1"] = min(task)
        summary["task_top1_fp32"] = min(
            e["task_top1_fp32"] for e in per_output.values() if "task_top1_fp32" in e
        )
    return summary


def _margin(logits: np.ndarray) -> np.ndarray:
    """FP32 top-1 minus top-2 logit per row: views under CONFIDENT_MARGIN are near-ties that any perturbation
    (FP16 included) may flip, so agreement is also reported on the confident rows alone."""
    rows = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    top2 = np.sort(rows, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def meets(
    figures: dict[str, Any], top1: float | None, cosine: float | None, decision: Any = None
) -> tuple[bool, list[str]]:
    """Whether the figures meet the budget, and what misses it (infercc.budget.Budget.misses)."""
    from infercc.budget import Budget

    misses = Budget(top1, cosine, decision=decision).misses(
        figures.get("top1"),
        figures.get("cosine"),
        figures.get("non_finite") or 0,
        (figures.get("decision") or {}).get("agreement"),
    )
    return not misses, misses


def brief(figures: dict[str, Any], precise: bool = False) -> str:
    """'top-1 97.0%, 100.0% on 129 confident, cos 0.9975'; `precise` gives the short, finer form used to
    compare fallback steps ('top-1 97.02%, cos 0.99755')."""
    pct, cos = (".2%", ".5f") if precise else (".1%", ".4f")
    parts = []
    if figures.get("top1") is not None:
        parts.append(f"top-1 {figures['top1']:{pct}}")
        confident = figures.get("top1_confident")
        if (
            not precise
            and confident is not None
            and figures.get("confident_samples") != figures.get("samples")
        ):
            parts.append(f"{confident:.1%} on {figures['confident_samples']} confident")
    if (figures.get("decision") or {}).get("agreement") is not None:
        parts.append(f"decisions {figures['decision']['agreement']:{pct}}")
    if figures.get("cosine") is not None:
        parts.append(f"cos {figures['cosine']:{cos}}")
    if not precise and figures.get("task_top1") is not None:
        parts.append(f"acc {figures['task_top1']:.1%} (fp32 {figures['task_top1_fp32']:.1%})")
    if figures.get("non_finite"):
        parts.append(f"{figures['non_finite']} NaN/Inf")
    return ", ".join(parts)


def _row_cosines(act: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if act.ndim < 2 or act.shape != ref.shape:
        return np.array([])
    a = np.nan_to_num(act.reshape(act.shape[0], -1).astype(np.float64))
    b = ref.reshape(ref.shape[0], -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na == 0) & (nb == 0), 1.0, (a * b).sum(1) / np.maximum(na * nb, 1e-300))
    return cos


def _num(value: float) -> float | str | None:
    if value is None:
        return None
    if np.isnan(value):
        return None
    if np.isinf(value):
        return "inf"
    return float(f"{value:.6g}")
