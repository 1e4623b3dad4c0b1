"""Files a stage reads enter its key by content (Stage.deps): editing one re-runs the stage, touching
nothing keeps it up to date."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import manifest, zoo

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "--exporter", "torchscript"]


def _write_inputs(folder: Path, scale: float) -> None:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        np.save(folder / f"s{i}.npy", (rng.random((1, 3, 32, 32)) * scale).astype(np.float32))


def test_editing_a_verify_input_file_reruns_verify(cli, tmp_path: Path) -> None:
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    _write_inputs(inputs, 1.0)
    args = ["verify", *CNN, "-o", out, "--inputs", inputs, "--json"]
    assert cli(*args).code == 0
    first = manifest(out)["stages"]["verify"]
    assert "verify" in cli(*args).json()["cached"]
    _write_inputs(inputs, 2.0)  # same names, same sizes, new contents
    result = cli(*args)
    assert result.code == 0, result.err
    assert "verify" in result.json()["ran"] and "export" in result.json()["cached"]
    assert manifest(out)["stages"]["verify"]["key"] != first["key"]


def test_editing_an_evaluation_labels_file_reruns_verify(cli, tmp_path: Path) -> None:
    data, out = tmp_path / "eval", tmp_path / "out"
    _write_inputs(data, 1.0)
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n2\n")
    args = ["verify", *CNN, "-o", out, "--eval", data, "--set", f"evaluation.labels={labels}", "--json"]
    assert cli(*args).code == 0
    assert "verify" in cli(*args).json()["cached"]
    labels.write_text("3\n2\n")
    assert "verify" in cli(*args).json()["ran"]
