"""Non-finite values never pass: NaN/Inf in a candidate's output fails verify (exit 1) naming the output; a
PyTorch reference with NaN is exit 4; NaN/Inf in calibration or evaluation data is exit 2 naming the file and
index; a forward() that mutates its input is noted, not reported as an export mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import manifest, zoo

TS = ["--exporter", "torchscript"]


def test_pytorch_reference_with_nan_is_exit_4(cli, tmp_path: Path) -> None:
    result = cli("export", "-m", zoo("nonfinite.py:nan_model"), "--shape", "x:2x4", *TS, "-o", tmp_path / "o")
    assert result.code == 4, result.text
    assert (
        "The PyTorch model itself produces NaN on the opt shapes (x:2x4): output: 8 NaN and 0 Inf of 8"
        in (" ".join(result.err.split()))
    )


def test_nan_in_a_candidate_output_fails_verify_naming_the_output(cli, tmp_path: Path) -> None:
    out, inputs = tmp_path / "out", tmp_path / "inputs"
    model = ["-m", zoo("nonfinite.py:fp16_fragile"), "--shape", "x:1x16", "--val-range", "x:[0,0.001]", *TS]
    fp16 = ["--precision", "fp32,fp16", "--set", "quantize.fp16_block_ops=[]"]
    assert cli("quantize", *model, *fp16, "-o", out, "-q").code == 0  # finite on the declared range
    inputs.mkdir()
    np.save(inputs / "large.npy", np.full((1, 16), 0.5, np.float32) + np.arange(16, dtype=np.float32) / 100)
    result = cli("verify", *model, *fp16, "-o", out, "--inputs", inputs)
    assert result.code == 1, result.text
    text = " ".join(result.err.split())
    assert (
        "fp16 on onnxruntime-cpu, output output (verify#0): 16 NaN and 0 Inf value(s) of 16 in the output"
        in text
    )
    assert "FAIL 16 NaN/Inf" in result.out  # the summary table
    results = manifest(out)["stages"]["verify"]["metrics"]["results"]
    passed = {
        (r["artifact"], r["runtime"]): r["passed"] for r in results if r["runtime"] == "onnxruntime-cpu"
    }
    assert passed == {
        ("onnx", "onnxruntime-cpu"): True,
        ("fp32", "onnxruntime-cpu"): True,
        ("fp32-ort", "onnxruntime-cpu"): True,
        ("fp16", "onnxruntime-cpu"): False,
    }
    fp16_summary = next(r for r in results if r["artifact"] == "fp16")["outputs"]["output"]
    assert fp16_summary["cosine"] is None and not fp16_summary["passed"]  # no cosine over NaN, never a pass


def test_nan_in_calibration_data_is_exit_2_naming_file_and_index(cli, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(calib / f"b{i}.npy", rng.random((1, 3, 32, 32), dtype=np.float32))
    bad = rng.random((1, 3, 32, 32), dtype=np.float32)
    bad[0, 1, 2, 3] = np.nan
    np.save(calib / "b2.npy", bad)
    cnn = ["-m", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", *TS]
    result = cli("quantize", *cnn, "--precision", "int8", "--calib", calib, "-o", tmp_path / "o")
    assert result.code == 2, result.text
    assert (
        "data b2.npy: input x holds 1 NaN and 0 Inf value(s), the first at index [0, 1, 2, 3]" in result.err
    )


def test_a_forward_that_mutates_its_input_is_noted_not_a_mismatch(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("verify", "-m", zoo("nonfinite.py:mutates_input"), "--shape", "x:2x4", *TS, "-o", out)
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    note = "forward() changes its input x in place; PyTorch is given copies"
    assert any(note in n for n in stages["export"]["notes"])
    assert any(note in n for n in stages["verify"]["notes"])
    assert stages["verify"]["metrics"]["passed"]


def test_an_embedding_gets_cosine_and_errors_but_no_top_k(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = ["-m", zoo("nonfinite.py:embedder"), "--shape", "x:4x8", *TS]
    assert cli("verify", *model, "-o", out, "-q").code == 0
    summary = manifest(out)["stages"]["verify"]["metrics"]["results"][0]["outputs"]["output"]
    assert summary["kind"] == "embedding" and summary["top1"] is None and summary["cosine"] > 0.9999
    declared = cli("verify", *model, "-o", out, "-q", "--set", "model.output_kinds.output=classification")
    assert declared.code == 0, declared.text
    summary = manifest(out)["stages"]["verify"]["metrics"]["results"][0]["outputs"]["output"]
    assert summary["kind"] == "classification" and summary["top1"] == 1.0


def test_a_failed_run_rewrites_the_report_as_failed(cli, tmp_path: Path) -> None:
    """An earlier build's "ok" report must not stay beside a failed run into the same folder."""
    import json

    out, calib = tmp_path / "out", tmp_path / "calib"
    cnn = ["-m", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", *TS, "--no-bench"]
    assert cli("compile", *cnn, "-o", out, "-q").code == 0
    assert json.loads((out / "report.json").read_text())["status"] == "ok"
    calib.mkdir()
    np.save(calib / "a.npy", np.full((1, 3, 32, 32), np.inf, np.float32))
    failed = cli("compile", *cnn, "-o", out, "--precision", "fp32,int8", "--calib", calib)
    assert failed.code == 2, failed.text
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed"
    stage = next(s for s in report["stages"] if s["status"] == "failed")
    assert stage["name"] == "calibrate" and "a.npy: input x holds 0 NaN and 3072 Inf" in stage["error"]
    assert "failed" in (out / "report.html").read_text() and "failed" in (out / "summary.md").read_text()


def test_a_traced_data_dependent_branch_is_exit_1_naming_the_line(cli, tmp_path: Path) -> None:
    model = ["-m", zoo("nonfinite.py:frozen_branch"), "--shape", "x:2x4", *TS]
    result = cli("export", *model, "-o", tmp_path / "a")
    assert result.code == 1, result.text
    text = " ".join(result.err.split())
    assert "traced tensors into Python values" in text and "nonfinite.py:" in text
    assert "Converting a tensor to a Python boolean" in text
    assert (tmp_path / "a" / "model.rejected.onnx").is_file() and not (tmp_path / "a" / "model.onnx").exists()
    # accepted, the export passes; verify's negative inputs then expose the frozen branch
    out = tmp_path / "b"
    accepted = cli("verify", *model, "-o", out, "--set", "export.accept_trace_warnings=true")
    assert accepted.code == 1, accepted.text
    stages = manifest(out)["stages"]
    assert (
        stages["export"]["metrics"]["trace_warnings"]
        and "accepted trace warning" in stages["export"]["notes"][0]
    )
    failures = stages["verify"]["metrics"]["failures"]
    assert any("(negative)" in f for f in failures) and not any("(opt)" in f for f in failures)


def test_verify_sets_include_the_ends_of_a_declared_range(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = ["-m", zoo("nonfinite.py:frozen_branch"), "--shape", "x:2x4", "--val-range", "x:[-3,5]", *TS]
    result = cli("verify", *model, "-o", out, "--set", "export.accept_trace_warnings=true")
    assert result.code == 1  # [-3, 5] crosses the branch: the low end shows it
    inputs = manifest(out)["stages"]["verify"]["metrics"]["inputs"]
    assert (
        "range-low" in inputs["sets"] and "range-high" in inputs["sets"] and "negative" not in inputs["sets"]
    )
