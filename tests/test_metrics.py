"""Metrics on hand-built arrays: known cosine, SNR, NaN counts, and Polygraphy's tolerance semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infercc.config import Statistic, Tolerance
from infercc.metrics import compare, cosine, snr_db, split_tolerance, topk_agreement


def test_cosine_known_values() -> None:
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert cosine(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(1 / math.sqrt(2))
    assert cosine(np.array([1.0, 2.0]), np.array([-1.0, -2.0])) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


def test_snr_known_value() -> None:
    ref = np.ones(100)
    act = ref + 0.1  # noise power 0.01 per element, signal 1 -> 20 dB
    assert snr_db(act, ref) == pytest.approx(20.0)
    assert snr_db(ref, ref) == math.inf


def test_nan_and_inf_counts_and_failure() -> None:
    ref = np.arange(10, dtype=np.float32)
    act = ref.copy()
    act[[1, 2]] = np.nan
    act[3] = np.inf
    m = compare(act, ref, Tolerance(atol=1e-3))
    assert (m.nan, m.inf, m.ref_nan, m.ref_inf) == (2, 1, 0, 0)
    assert not m.passed
    assert m.checks[0].metric == "nan_inf" and m.checks[0].value == 3
    # NaN where the reference has NaN too still fails: a NaN output is never a pass
    ref2 = ref.copy()
    ref2[[1, 2]] = np.nan
    ref2[3] = np.inf
    m = compare(act, ref2, Tolerance(atol=1e-3))
    assert not m.passed and "2 NaN and 1 Inf value(s) of 10 in the output" in m.failures[0]


def test_cosine_and_snr_over_non_finite_values_never_pass() -> None:
    ref = np.full((4, 10), np.nan, np.float32)  # all NaN, as the model gave
    m = compare(ref.copy(), ref, Tolerance(min_cosine=0.99, min_snr_db=10, check_nonfinite=False))
    assert math.isnan(m.cosine) and math.isnan(m.snr_db)
    assert {c.metric for c in m.checks} == {"cosine", "snr_db"}
    ok = np.ones((4, 10), np.float32)
    bad = ok.copy()
    bad[0, 0] = np.inf
    m = compare(bad, ok, Tolerance(min_cosine=0.5))
    assert math.isnan(m.cosine) and {c.metric for c in m.checks} == {"nan_inf", "cosine"}


def test_elemwise_passes_within_atol_or_rtol() -> None:
    ref = np.array([1000.0, 0.001])
    act = np.array([1000.5, 0.0011])  # first within rtol 1e-3 only, second within atol 1e-3 only
    m = compare(act, ref, Tolerance(atol=1e-3, rtol=1e-3))
    assert m.passed, m.failures
    m = compare(np.array([1002.0, 0.0011]), ref, Tolerance(atol=1e-3, rtol=1e-3))
    assert not m.passed and m.mismatches == 1
    assert "1 of 2 elements outside atol 0.001 and rtol 0.001" in m.failures[0]


def test_statistic_max_is_polygraphy_max_not_elemwise() -> None:
    # Polygraphy "max": fails only if max abs > atol AND max rel > rtol, each maximum taken separately.
    ref = np.array([1000.0, 0.001])
    act = np.array([1000.5, 0.0011])
    m = compare(act, ref, Tolerance(atol=1e-3, rtol=1e-3, statistic=Statistic.max))
    assert m.stat_abs == pytest.approx(0.5) and m.stat_rel == pytest.approx(0.1)
    assert not m.passed  # elementwise it passes, by the max statistic it does not
    assert "max abs error 0.5 > atol 0.001 and max rel error 0.1 > rtol 0.001" in m.failures[0]


def test_mean_median_quantile() -> None:
    ref = np.zeros(100) + 1.0
    act = ref.copy()
    act[:5] += 1.0  # 5 large errors, 95 exact
    assert compare(act, ref, Tolerance(atol=0.1, statistic=Statistic.median)).passed
    assert compare(act, ref, Tolerance(atol=0.06, statistic=Statistic.mean)).passed
    assert not compare(act, ref, Tolerance(atol=0.04, statistic=Statistic.mean)).passed
    assert compare(act, ref, Tolerance(atol=0.1, statistic=Statistic.quantile, quantile=0.9)).passed
    assert not compare(act, ref, Tolerance(atol=0.1, statistic=Statistic.quantile, quantile=0.99)).passed


def test_relative_error_uses_polygraphy_epsilon_for_zero_reference() -> None:
    m = compare(np.array([1e-20]), np.array([0.0]), Tolerance(atol=0.0, rtol=1e-3))
    assert m.max_rel == pytest.approx(1e-20 / 2.220446049250313e-16)


def test_topk_and_set_checks() -> None:
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    act = np.array([[0.1, 0.8, 0.9], [0.8, 0.1, 0.1]])
    assert topk_agreement(act, ref, 1) == 0.5
    assert topk_agreement(act, ref, 2) == 1.0
    m = compare(act, ref, Tolerance(min_top1=0.9, min_cosine=0.99))
    assert m.top1 == 0.5
    assert {c.metric for c in m.checks} == {"top1", "cosine"}


def test_shape_mismatch_and_split() -> None:
    assert not compare(np.zeros((2, 3)), np.zeros((3, 2))).passed
    per, whole = split_tolerance(Tolerance(atol=1.0, min_cosine=0.5, min_top1=0.5))
    assert per.min_cosine is None and per.atol == 1.0
    assert whole.atol is None and whole.min_cosine == 0.5


def test_output_kind_from_declaration_name_and_shape() -> None:
    from infercc.config import OutputKind
    from infercc.metrics import output_kind

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 384)).astype(np.float32)
    unit = logits / np.linalg.norm(logits, axis=-1, keepdims=True)
    assert output_kind("output", logits) is OutputKind.classification
    assert output_kind("output", unit) is OutputKind.embedding  # L2-normalised rows: a sentence embedding
    assert output_kind("sentence_embedding", logits) is OutputKind.embedding
    assert output_kind("last_hidden_state", rng.random((2, 5, 384))) is OutputKind.embedding
    assert output_kind("logits", unit) is OutputKind.classification
    assert output_kind("output", unit, {"output": OutputKind.classification}) is OutputKind.classification
    assert compare(logits, logits, kind=OutputKind.embedding).top1 is None
    assert compare(logits, logits).top1 == 1.0
