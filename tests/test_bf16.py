"""Precision bf16: the FP32 graph run by OpenVINO at BF16 inference precision where the CPU computes in BF16
(AMX or AVX512-BF16), measured and verified like FP16; skipped with the reason where it cannot be."""

from __future__ import annotations

from pathlib import Path

import pytest

from infercc.openvino.capability import BF16_FLAGS, bf16_support, cpu_flags
from tests.conftest import manifest, zoo

pytest.importorskip("openvino")

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32"]
BOTH = "verify.runtimes=[onnxruntime-cpu,openvino-cpu]"
HAS_BF16 = bool(set(BF16_FLAGS) & cpu_flags())


@pytest.fixture(scope="module")
def simplified(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infercc.cli import main

    out = tmp_path_factory.mktemp("bf16") / "base"
    with pytest.raises(SystemExit) as exc:
        main(["simplify", *CNN, "-o", str(out), "-q"])
    assert exc.value.code == 0
    return out


def _copy(base: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(base, tmp_path / "out"))


def test_detection_agrees_with_cpuinfo_and_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERCC_CPU_BF16", raising=False)
    import openvino as ov

    support = bf16_support()
    says = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert support.available == (HAS_BF16 and says)
    assert set(support.flags) == set(BF16_FLAGS) & cpu_flags()
    monkeypatch.setenv("INFERCC_CPU_BF16", "off")
    assert not bf16_support().available and "INFERCC_CPU_BF16=off" in bf16_support().reason


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither AMX-BF16 nor AVX512-BF16")
def test_bf16_runs_in_bf16_on_openvino_and_verifies(
    cli, simplified: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("INFERCC_CPU_BF16", raising=False)
    out = _copy(simplified, tmp_path)
    result = cli("verify", *CNN, "-o", out, "--precision", "fp32,bf16", "--set", BOTH)
    assert result.code == 0, result.err
    stages = manifest(out)["stages"]
    bf16 = stages["quantize-bf16"]
    assert bf16["status"] == "done" and bf16["metrics"]["runtime"] == "openvino-cpu"
    assert bf16["metrics"]["accuracy"]["cosine"] > 0.999 and bf16["metrics"]["accuracy"]["non_finite"] == 0
    results = {(r["artifact"], r["runtime"]): r for r in stages["verify"]["metrics"]["results"]}
    # ONNX Runtime would run the file in FP32 and call it BF16: only OpenVINO takes it
    assert ("bf16", "openvino-cpu") in results and ("bf16", "onnxruntime-cpu") not in results
    run = results[("bf16", "openvino-cpu")]
    assert run["passed"] and run["precision"] == "bf16"
    settings = run["runtime_settings"]
    assert settings["inference_precision"] == "bf16" and settings["layer_precisions"].get("bf16", 0) >= 3
    assert results[("fp32", "openvino-cpu")]["runtime_settings"]["inference_precision"] == "f32"


def test_bf16_skipped_with_its_reason_where_the_cpu_has_none(
    cli, simplified: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("INFERCC_CPU_BF16", "off")
    out = _copy(simplified, tmp_path)
    result = cli("verify", *CNN, "-o", out, "--precision", "fp32,bf16", "--set", BOTH)
    assert result.code == 0, result.err
    stages = manifest(out)["stages"]
    assert stages["quantize-bf16"]["status"] == "skipped"
    assert "bf16 skipped: BF16 turned off by INFERCC_CPU_BF16=off" in stages["quantize-bf16"]["notes"]
    assert "bf16 skipped: BF16 turned off" in result.text
    assert not any(r["artifact"] == "bf16" for r in stages["verify"]["metrics"]["results"])
    assert not (out / "model.bf16.onnx").exists()
