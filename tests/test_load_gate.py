"""The load gate (infercc.pipeline.loadcheck): every ONNX artifact a stage writes is loaded and run once on each
of its target runtimes here, in a real child process, before the stage succeeds; a failure fails that stage
with the runtime and the reason, and leaves no file under the artifact's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import manifest, zoo

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "--exporter", "torchscript"]


def _checks(stage: dict) -> list[dict]:
    return [c for art in stage["outputs"] for c in art["meta"].get("load_checks", [])]


def _checked(stage: dict) -> set[tuple[str, str, bool]]:
    return {(c["artifact"], c["runtime"], c["ok"]) for c in _checks(stage)}


@pytest.mark.usefixtures("crashing_runtime")
def test_a_runtime_crashing_on_a_new_artifact_fails_its_stage(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(
        "quantize", *CNN, "--precision", "fp32,fp16", "-o", out,
        "--set", "verify.runtimes=[onnxruntime-cpu,crashing-cpu]",
    )  # fmt: skip
    assert result.code == 4, result.text
    assert "crashing-cpu crashed loading model.fp16.onnx: SIGSEGV" in result.err
    assert "Traceback" not in result.text
    stages = manifest(out)["stages"]
    assert stages["quantize-fp16"]["status"] == "failed"
    assert "crashing-cpu crashed loading model.fp16.onnx" in stages["quantize-fp16"]["error"]
    assert not (out / "model.fp16.onnx").exists()  # nothing unloadable under the artifact's name
    # the stages before it were gated on both runtimes and passed
    assert _checked(stages["simplify"]) == {
        ("model.fp32.onnx", "onnxruntime-cpu", True),
        ("model.fp32.onnx", "crashing-cpu", True),
    }
    assert _checked(stages["export"]) == {
        ("model.onnx", "onnxruntime-cpu", True),
        ("model.onnx", "crashing-cpu", True),
    }


def test_every_written_graph_is_loaded_on_every_installed_runtime(cli, tmp_path: Path) -> None:
    from infercc.runtimes.base import probe

    wanted = {"onnxruntime-cpu", "openvino-cpu"}
    present = {name for name in wanted if not probe(name)[1]}
    out = tmp_path / "out"
    result = cli("quantize", *CNN, "--precision", "fp32,int8", "--calib", "synthetic", "-o", out, "--json")
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    assert _checked(stages["quantize-int8"]) == {("model.int8.onnx", r, True) for r in present}
    assert _checked(stages["simplify"]) == {("model.fp32.onnx", r, True) for r in present}
    checks = _checks(stages["quantize-int8"])
    assert all(list(c["outputs"].values()) == [[1, 10]] for c in checks), checks
    # a cached stage is not checked again: its artifact was checked when it was written
    again = cli("quantize", *CNN, "--precision", "fp32,int8", "--calib", "synthetic", "-o", out, "--json")
    assert again.code == 0 and "quantize-int8" in again.json()["cached"]
