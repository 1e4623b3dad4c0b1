"""verify on real ONNX Runtime sessions of a tiny CNN: tolerance failures exit 1 naming what failed;
runtimes not installed here are reported as skipped; the report validates against its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tests.conftest import zoo

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infercc.cli import main

    out = tmp_path_factory.mktemp("verify")
    with pytest.raises(SystemExit) as exc:
        main(["simplify", *CNN, "-o", str(out), "-q"])
    assert exc.value.code == 0
    return out


def test_verify_passes_and_lists_skipped_runtimes(cli, built: Path) -> None:
    result = cli("verify", *CNN, "-o", built, "--json")
    assert result.code == 0, result.err
    verify = result.json()["manifest"]["stages"]["verify"]["metrics"]
    assert verify["passed"]
    pairs = {(r["artifact"], r["runtime"]) for r in verify["results"]}
    assert {("onnx", "onnxruntime-cpu"), ("fp32", "onnxruntime-cpu")} <= pairs
    skipped = {s["runtime"]: s["reason"] for s in verify["skipped_runtimes"]}
    assert "onnxruntime-cuda" in skipped and "CUDA" in skipped["onnxruntime-cuda"]
    assert "tensorrt" in skipped
    logits = next(iter(verify["results"][0]["outputs"].values()))
    # min/opt/max + opt#1, and the negative and large sets (no value range declared)
    assert logits["cosine"] > 0.99999 and logits["top1"] == 1.0 and logits["samples"] == 6
    report = json.loads((built / "report.json").read_text())
    from infercc.report import load_schema

    jsonschema.validate(report, load_schema())
    assert {s["runtime"] for s in report["verify"]["skipped_runtimes"]} >= {"onnxruntime-cuda"}
    assert (built / "report.html").is_file() and (built / "summary.md").is_file()


def test_failing_tolerance_exits_1_naming_artifact_runtime_output_metric(cli, built: Path) -> None:
    result = cli(
        "verify",
        *CNN,
        "-o",
        built,
        "--set",
        "verify.tolerances.fp32.atol=0",
        "--set",
        "verify.tolerances.fp32.rtol=0",
        "--set",
        "verify.tolerances.fp32.min_snr_db=1000",
    )
    assert result.code == 1
    # the stage ran to the end, but its line must not read as a pass
    assert "✗ verify" in result.text and "✓ verify" not in result.text
    text = result.err
    assert "verification failure" in text
    assert "fp32 on onnxruntime-cpu, output " in text
    assert "dB < min_snr_db 1000 dB" in text  # metric, value and tolerance
    assert "outside atol 0 and rtol 0" in text
    report = json.loads((built / "report.json").read_text())
    assert report["status"] == "failed"
    assert any(
        c["metric"] for r in report["verify"]["results"] for c in [{"metric": f} for f in r["failures"]]
    )


def test_explicit_missing_runtime_exits_3(cli, built: Path) -> None:
    result = cli("verify", *CNN, "-o", built, "--set", "verify.runtimes=[onnxruntime-cuda]")
    assert result.code == 3
    assert "onnxruntime-cuda" in result.err


def test_verify_on_input_files(cli, built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(2):
        np.save(
            folder / f"x{i}.npy", np.random.default_rng(i).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
        )
    result = cli("verify", *CNN, "-o", built, "--inputs", folder, "--json")
    assert result.code == 0, result.err
    verify = result.json()["manifest"]["stages"]["verify"]["metrics"]
    assert verify["inputs"]["source"].startswith("files in")
    assert len(verify["inputs"]["sets"]) == 2


def test_a_scalar_input_stays_a_scalar_through_the_feed_check(tmp_path: Path) -> None:
    """check_feeds casts and lays out feeds for every runtime; a 0-d input must keep its shape ()."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from infercc.onnxrt.runtime import OrtCPU

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        "scalar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    path = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with OrtCPU(path) as runtime:
        (value,) = runtime.infer({"x": np.array(3.0, dtype=np.float64)}).values()
    assert value.shape == () and value.dtype == np.float32 and float(value) == 9.0
