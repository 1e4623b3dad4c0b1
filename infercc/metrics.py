"""Comparison metrics and tolerance checks, independent of any runtime.

Tolerance semantics follow Polygraphy's comparator: an element passes if |a-b| <= atol OR
|a-b| <= rtol * |b|; the per-element errors are reduced with the chosen statistic (max, mean,
median, quantile) before comparing. infercc adds set checks (cosine, SNR, top-1 agreement, no NaN/Inf).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from infercc.config import Statistic, Tolerance


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
    stat_abs: float | None = None  # abs error reduced with the tolerance's statistic
    stat_rel: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _reduce(values: np.ndarray, statistic: Statistic, quantile: float) -> float:
    if values.size == 0:
        return 0.0
    match statistic:
        case Statistic.max:
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
    return float(np.dot(a64, b64) / (na * nb))


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
    topk = np.argpartition(-act, kth=min(k, act.shape[-1]) - 1, axis=-1)[:, :k]
    return float(np.mean([r in row for r, row in zip(ref_top1, topk, strict=True)]))


def looks_like_logits(reference: np.ndarray) -> bool:
    """Heuristic for classifier outputs: float, 2-D (N, C) with a handful of classes or more."""
    return reference.ndim == 2 and reference.shape[-1] >= 2 and np.issubdtype(reference.dtype, np.floating)


def compare(actual: np.ndarray, reference: np.ndarray, tolerance: Tolerance | None = None) -> OutputMetrics:
    """All metrics of one output against its reference, and the failures under `tolerance`."""
    tolerance = tolerance or Tolerance()
    if actual.shape != reference.shape:
        m = OutputMetrics(*(float("nan"),) * 5, 0, 0, 0, 0, shape_match=False)  # type: ignore[arg-type]
        m.failures.append(f"shape {list(actual.shape)} differs from reference {list(reference.shape)}")
        return m
    act = actual.astype(np.float64)
    ref = reference.astype(np.float64)
    finite = np.isfinite(act) & np.isfinite(ref)
    diff = np.abs(act - ref)[finite]
    rel = diff / np.maximum(np.abs(ref[finite]), np.finfo(np.float64).tiny)
    m = OutputMetrics(
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        cosine=cosine(np.where(finite, act, 0), np.where(finite, ref, 0)),
        snr_db=snr_db(np.where(finite, act, 0), np.where(finite, ref, 0)),
        nan=int(np.isnan(act).sum()),
        inf=int(np.isinf(act).sum()),
        ref_nan=int(np.isnan(ref).sum()),
        ref_inf=int(np.isinf(ref).sum()),
    )
    if looks_like_logits(reference) and np.issubdtype(actual.dtype, np.floating):
        m.top1 = topk_agreement(actual, reference, 1)
        m.top5 = topk_agreement(actual, reference, min(5, reference.shape[-1]))
    _check(m, act, ref, finite, diff, rel, tolerance)
    return m


def _check(
    m: OutputMetrics, act: np.ndarray, ref: np.ndarray, finite: np.ndarray,
    diff: np.ndarray, rel: np.ndarray, tol: Tolerance,
) -> None:
    new_nan, new_inf = m.nan - m.ref_nan, m.inf - m.ref_inf
    if new_nan > 0 or new_inf > 0:
        m.failures.append(f"{max(new_nan, 0)} NaN and {max(new_inf, 0)} Inf values not in the reference")
    if tol.atol is not None or tol.rtol is not None:
        atol = tol.atol if tol.atol is not None else 0.0
        rtol = tol.rtol if tol.rtol is not None else 0.0
        # Polygraphy: an element passes within atol OR rtol; the statistic reduces each error separately.
        m.stat_abs = _reduce(diff, tol.statistic, tol.quantile)
        m.stat_rel = _reduce(rel, tol.statistic, tol.quantile)
        elementwise_ok = (diff <= atol) | (rel <= rtol)
        if tol.statistic is Statistic.max:
            ok = bool(np.all(elementwise_ok))
        else:
            ok = m.stat_abs <= atol or m.stat_rel <= rtol
        if not ok:
            m.failures.append(
                f"{tol.statistic.value} abs error {m.stat_abs:.3g} > atol {atol:g} "
                f"and {tol.statistic.value} rel error {m.stat_rel:.3g} > rtol {rtol:g}"
            )
    if tol.min_cosine is not None and not m.cosine >= tol.min_cosine:
        m.failures.append(f"cosine {m.cosine:.6f} < {tol.min_cosine:g}")
    if tol.min_snr_db is not None and not m.snr_db >= tol.min_snr_db:
        m.failures.append(f"SNR {m.snr_db:.1f} dB < {tol.min_snr_db:g} dB")
    if tol.min_top1 is not None and m.top1 is not None and m.top1 < tol.min_top1:
        m.failures.append(f"top-1 agreement {m.top1:.4f} < {tol.min_top1:g}")
