"""Empirical bias correction on a real INT8 Q/DQ graph: the mean error of every corrected layer against FP32
shrinks on the data it was measured on, the outputs do not get worse, and the quantize stage applies it when
asked and records what it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import manifest, zoo

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:2x3x32x32"]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from infercc.cli import main

    base = tmp_path_factory.mktemp("bias")
    calib = base / "calib"
    calib.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        np.save(calib / f"{i:03d}.npy", rng.normal(0.4, 0.3, (2, 3, 32, 32)).astype(np.float32))
    out = base / "out"
    with pytest.raises(SystemExit) as exc:
        main(["quantize", *CNN, "-o", str(out), "--precision", "int8", "--calib", str(calib), "-q"])
    assert exc.value.code == 0
    return out, calib


def _layer_errors(fp32: Path, int8: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    import onnx
    import onnxruntime as ort

    from infercc.quantization.bias_correction import _bias_targets, _channel_means, _fp32_twins, _with_outputs

    model, reference = onnx.load(str(int8)), onnx.load(str(fp32))
    twins = _fp32_twins(reference, list(_bias_targets(model)))
    names = sorted(twins)
    got = _channel_means(ort.InferenceSession(_with_outputs(model, names)), names, feeds)
    want = _channel_means(
        ort.InferenceSession(_with_outputs(reference, [twins[n] for n in names])),
        [twins[n] for n in names],
        feeds,
    )
    return {n: float(np.abs(g - w).mean()) for n, g, w in zip(names, got, want, strict=True)}


def test_correction_shrinks_each_layers_mean_error(quantized: tuple[Path, Path], tmp_path: Path) -> None:
    from infercc.quantization.bias_correction import correct_biases

    out, calib = quantized
    feeds = [{"x": np.load(f)} for f in sorted(calib.glob("*.npy"))]
    corrected = tmp_path / "model.int8.bc.onnx"
    info = correct_biases(out / "model.fp32.onnx", out / "model.int8.onnx", corrected, feeds)
    assert info["corrected_nodes"] >= 4 and info["channel_shifts"] > 0  # three convs and the classifier
    before = _layer_errors(out / "model.fp32.onnx", out / "model.int8.onnx", feeds)
    after = _layer_errors(out / "model.fp32.onnx", corrected, feeds)
    assert set(before) == set(after) and len(before) >= 4
    for name in before:
        assert after[name] <= before[name] * 0.5 + 1e-4, (name, before[name], after[name])


def test_quantize_stage_applies_it_when_asked(quantized: tuple[Path, Path], cli) -> None:
    out, calib = quantized
    result = cli(
        "quantize",
        *CNN,
        "-o",
        out,
        "--precision",
        "int8",
        "--calib",
        calib,
        "--set",
        "quantize.bias_correction=true",
    )
    assert result.code == 0, result.err
    metrics = manifest(out)["stages"]["quantize-int8"]["metrics"]
    assert metrics["bias_correction"]["corrected_nodes"] >= 4
    assert metrics["accuracy"]["cosine"] > 0.99
