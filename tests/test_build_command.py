"""`infercc build` means TensorRT: it writes the TensorRT INT8 form and builds an engine from it."""

import json

from tests.conftest import CNN_SHAPES


def test_build_command_builds_int8_engine_without_target_flag(cli, tmp_path):
    result = cli(
        "build",
        *CNN_SHAPES,
        "--precision",
        "int8",
        "--calib",
        "synthetic",
        "--exporter",
        "torchscript",
        "-o",
        tmp_path,
        "--json",
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert "quantize-int8-trt" in doc["ran"] and "build-int8" in doc["ran"]
    sidecar = json.loads((tmp_path / "engines" / "model.int8.rtx.json").read_text())
    assert sidecar["precision"] == "int8"
    assert (tmp_path / "engines" / "model.int8.rtx.engine").stat().st_size > 10_000
    assert "verify" not in doc["manifest"]["stages"]
