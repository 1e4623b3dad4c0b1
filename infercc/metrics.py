"""Comparison metrics and tolerance checks, independent of any runtime.

Tolerance semantics follow Polygraphy's comparator (polygraphy/comparator/compare.py, CompareFunc.simple):

* absolute error ``|a - b|``; relative error ``|a - b| / |b|`` where ``b`` is the reference and a
  reference value of exactly 0 is replaced by 2.22e-16 (Polygraphy's epsilon);
* ``elemwise``: an element fails only if it exceeds BOTH atol and rtol; the output fails if any element does;
* ``max`` / ``mean`` / ``median`` / ``quantile``: the abs and rel errors are each reduced with the
  statistic, and the output fails only if the reduced abs error > atol AND the reduced rel error > rtol.

Where infercc differs (see docs/verify.md): non-finite values are counted and judged on their own
(any NaN/Inf in the output fails, even where the reference has one) instead of propagating NaN into
the error statistics, and cosine and SNR over non-finite values are NaN, which fails every minimum; an unset atol or rtol means "not checked" (Polygraphy defaults both to 1e-5);
and infercc adds set checks (cosine, SNR, top-1 agreement) that Polygraphy's simple comparator lacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from infercc.config import OutputKind, Statistic, Tolerance

POLYGRAPHY_EPSILON = 2.220446049250313e-16


@dataclass
class Check:
    """One failed check: which metric, its value, and the limit it broke."""

    metric: str
    value: float | int | None
    limit: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": _jsonable(self.value),
            "limit": self.limit,
            "message": self.message,
        }


@dataclass
class OutputMetrics:
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    snr_db: float
    nan: int
    inf: int
    ref_nan: int
    ref_inf: int
    top1: float | None = None
    top5: float | None = None
    shape_match: bool = True
    statistic: str | None = None
    stat_abs: float | None = None  # abs error reduced with the tolerance's statistic
    stat_rel: float | None = None
    mismatches: int | None = None  # elements outside both atol and rtol
    elements: int = 0
    failures: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, metric: str, value: Any, limit: str, message: str) -> None:
        self.failures.append(message)
        self.checks.append(Check(metric, value, limit, message))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        data["passed"] = self.passed
        return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.generic):
        return value.item()
    return value


def reduce(values: np.ndarray, statistic: Statistic, quantile: float = 0.99) -> float:
    """The statistic of a set of elementwise errors (elemwise reduces like max, as Polygraphy reports it)."""
    if values.size == 0:
        return 0.0
    match statistic:
        case Statistic.max | Statistic.elemwise:
            return float(np.max(values))
        case Statistic.mean:
            return float(np.mean(values))
        case Statistic.median:
            return float(np.median(values))
        case Statistic.quantile:
            return float(np.quantile(values, quantile))
    raise AssertionError(statistic)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.clip(np.dot(a64, b64) / (na * nb), -1.0, 1.0))


def snr_db(actual: np.ndarray, reference: np.ndarray) -> float:
    """10*log10(signal power / noise power); inf when identical."""
    ref = reference.astype(np.float64)
    noise = np.sum((actual.astype(np.float64) - ref) ** 2)
    signal = np.sum(ref**2)
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


def topk_agreement(actual: np.ndarray, reference: np.ndarray, k: int) -> float:
    """Share of rows whose reference top-1 class is in the actual top-k (last axis = classes)."""
    ref_top1 = np.argmax(reference.reshape(-1, reference.shape[-1]), axis=-1)
    act = actual.reshape(-1, actual.shape[-1])
    if k == 1:
        return float(np.mean(np.argmax(act, axis=-1) == ref_top1))
    k = min(k, act.shape[-1])
    topk = np.argpartition(-act, kth=k - 1, axis=-1)[:, :k]
    return float(np.mean(np.any(topk == ref_top1[:, None], axis=-1)))


CLASSIFICATION_WORDS = ("logit", "score", "prob", "class", "pred", "label")
EMBEDDING_WORDS = ("embed", "hidden", "feature", "pool", "state", "vector", "token", "encod")


def output_kind(
    name: str, reference: np.ndarray, declared: dict[str, OutputKind] | None = None
) -> OutputKind:
    """Classification scores or an embedding/hidden state: declared per output, else from the name, else from
    the shape (float, 2-D (N, C), C >= 2, rows not all unit-length: L2-normalised rows are embeddings)."""
    if declared and name in declared:
        return OutputKind(declared[name])
    lowered = name.lower()
    if any(word in lowered for word in CLASSIFICATION_WORDS) and reference.ndim >= 2:
        return OutputKind.classification
    if any(word in lowered for word in EMBEDDING_WORDS):
        return OutputKind.embedding
    return OutputKind.classification if looks_like_logits(reference) else OutputKind.embedding


def looks_like_logits(reference: np.ndarray) -> bool:
    """Heuristic for classifier outputs: float, 2-D (N, C) with a handful of classes or more, rows that are
    not L2-normalised (a normalised 2-D output is an embedding)."""
    if not (reference.ndim == 2 and reference.shape[-1] >= 2 and np.issubdtype(reference.dtype, np.floating)):
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(reference.astype(np.float64), axis=-1)
    return not (norms.size and np.all(np.abs(norms - 1.0) < 1e-3))


def compare(
    actual: np.ndarray,
    reference: np.ndarray,
    tolerance: Tolerance | None = None,
    kind: OutputKind | None = None,
) -> OutputMetrics:
    """All metrics of one output against its reference, and the failures under `tolerance`. Top-k agreement
    only for classification scores (`kind`, else judged from the shape: output_kind)."""
    tolerance = tolerance or Tolerance()
    actual, reference = np.asarray(actual), np.asarray(reference)
    if actual.shape != reference.shape:
        nan = float("nan")
        m = OutputMetrics(nan, nan, nan, nan, nan, 0, 0, 0, 0, shape_match=False)
        m.fail(
            "shape",
            None,
            str(list(reference.shape)),
            f"shape {list(actual.shape)} differs from reference {list(reference.shape)}",
        )
        return m
    if actual.dtype == np.bool_ or reference.dtype == np.bool_:
        actual, reference = actual.astype(np.float64), reference.astype(np.float64)
    act = actual.astype(np.float64)
    ref = reference.astype(np.float64)
    finite = np.isfinite(act) & np.isfinite(ref)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(act - ref)[finite]
    ref_f = np.abs(ref[finite])
    rel = diff / np.where(ref_f == 0, POLYGRAPHY_EPSILON, ref_f)
    all_finite = bool(finite.all())
    m = OutputMetrics(
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        # over non-finite values there is no cosine or SNR: NaN, which fails every minimum
        cosine=cosine(act, ref) if all_finite else float("nan"),
        snr_db=snr_db(act, ref) if all_finite else float("nan"),
        nan=int(np.isnan(act).sum()),
        inf=int(np.isinf(act).sum()),
        ref_nan=int(np.isnan(ref).sum()),
        ref_inf=int(np.isinf(ref).sum()),
        elements=int(act.size),
    )
    kind = kind or output_kind("", reference)
    classes = reference.ndim >= 2 and reference.shape[-1] >= 2
    if kind is OutputKind.classification and classes and np.issubdtype(actual.dtype, np.floating):
        m.top1 = topk_agreement(actual, reference, 1)
        m.top5 = topk_agreement(actual, reference, min(5, reference.shape[-1]))
    _check(m, act, ref, finite, diff, rel, tolerance)
    return m


def _check(
    m: OutputMetrics,
    act: np.ndarray,
    ref: np.ndarray,
    finite: np.ndarray,
    diff: np.ndarray,
    rel: np.ndarray,
    tol: Tolerance,
) -> None:
    if tol.check_nonfinite and (m.nan or m.inf):
        m.fail(
            "nan_inf",
            m.nan + m.inf,
            "0",
            f"{m.nan} NaN and {m.inf} Inf value(s) of {m.elements} in the output"
            + (f" (the reference has {m.ref_nan} NaN and {m.ref_inf} Inf)" if m.ref_nan or m.ref_inf else ""),
        )
    if tol.atol is not None or tol.rtol is not None:
        atol = tol.atol if tol.atol is not None else 0.0
        rtol = tol.rtol if tol.rtol is not None else 0.0
        m.statistic = tol.statistic.value
        m.stat_abs = reduce(diff, tol.statistic, tol.quantile)
        m.stat_rel = reduce(rel, tol.statistic, tol.quantile)
        if tol.statistic is Statistic.elemwise:
            m.mismatches = int(np.sum((diff > atol) & (rel > rtol)))
            ok = m.mismatches == 0
            what = f"{m.mismatches} of {diff.size} elements outside atol {atol:g} and rtol {rtol:g} (max abs error {m.stat_abs:.3g}, max rel error {m.stat_rel:.3g})"
        else:
            ok = m.stat_abs <= atol or m.stat_rel <= rtol
            name = f"q{tol.quantile:g}" if tol.statistic is Statistic.quantile else tol.statistic.value
            what = (
                f"{name} abs error {m.stat_abs:.3g} > atol {atol:g} and {name} rel error {m.stat_rel:.3g} "
                f"> rtol {rtol:g}"
            )
        if not ok:
            m.fail(f"{tol.statistic.value}_error", m.stat_abs, f"atol {atol:g} or rtol {rtol:g}", what)
    if tol.min_cosine is not None and not m.cosine >= tol.min_cosine:
        m.fail(
            "cosine",
            m.cosine,
            f">= {tol.min_cosine:g}",
            f"cosine {m.cosine:.6f} < min_cosine {tol.min_cosine:g}",
        )
    if tol.min_snr_db is not None and not m.snr_db >= tol.min_snr_db:
        m.fail(
            "snr_db",
            m.snr_db,
            f">= {tol.min_snr_db:g}",
            f"SNR {m.snr_db:.1f} dB < min_snr_db {tol.min_snr_db:g} dB",
        )
    if tol.min_top1 is not None and m.top1 is not None and m.top1 < tol.min_top1:
        m.fail(
            "top1",
            m.top1,
            f">= {tol.min_top1:g}",
            f"top-1 agreement {m.top1:.4f} < min_top1 {tol.min_top1:g}",
        )


def non_finite_outputs(outputs: dict[str, np.ndarray]) -> list[str]:
    """'logits: 12 NaN and 0 Inf of 40 values' for each floating output holding NaN or Inf."""
    found = []
    for name, value in outputs.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
            found.append(f"{name}: {nan} NaN and {inf} Inf of {value.size} values")
    return found


def split_tolerance(tol: Tolerance) -> tuple[Tolerance, Tolerance]:
    """(per-sample part, whole-set part): the error statistic and NaN checks are judged per input set,
    as Polygraphy judges each iteration; cosine, SNR and top-1 agreement over all input sets together."""
    per_sample = tol.model_copy(update={"min_cosine": None, "min_snr_db": None, "min_top1": None})
    whole = tol.model_copy(update={"atol": None, "rtol": None, "check_nonfinite": False})
    return per_sample, whole


def stack_rows(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate outputs of several input sets: rows of (N, C) logits stay rows; anything else is
    flattened (so a (N, T, H) hidden state is not mistaken for logits)."""
    if not arrays:
        return np.zeros((0,))
    if all(a.ndim == 2 for a in arrays) and len({a.shape[-1] for a in arrays}) == 1:
        return np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays], axis=0)
    return np.concatenate([a.ravel() for a in arrays])
