"""Polygraphy interop for real: Polygraphy's own CLI checks infercc's reference, and infercc verifies on
inputs that Polygraphy saved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CNN_SHAPES, manifest

POLYGRAPHY = Path(sys.executable).with_name("polygraphy")
pytestmark = [
    pytest.mark.xdist_group("polygraphy"),
    pytest.mark.skipif(not POLYGRAPHY.exists(), reason="polygraphy (the dev extra) is not installed"),
]


def polygraphy(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(POLYGRAPHY), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from infercc.cli import main

    root = tmp_path_factory.mktemp("pg")
    out = root / "out"
    try:
        main(["simplify", *CNN_SHAPES, "--out", str(out), "-q",
              "--save-inputs", str(root / "inputs.json"), "--save-outputs", str(root / "reference.json")])  # fmt: skip
    except SystemExit as exc:
        assert exc.code in (0, None)
    return root, out


def test_polygraphy_reads_infercc_files_and_agrees(saved):
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    from infercc.stages.export import load_reference

    root, out = saved
    reference = load_reference(out / "reference.npz")
    feeds = load_json(str(root / "inputs.json"))
    results = RunResults.load(str(root / "reference.json"))
    assert [name for name, _ in results.items()] == ["pytorch"]
    iterations = results["pytorch"]
    assert len(feeds) == len(iterations) == len(reference) == 3
    for feed, iteration, (ref_feed, ref_out) in zip(feeds, iterations, reference.values(), strict=True):
        np.testing.assert_array_equal(feed["x"], ref_feed["x"])
        np.testing.assert_array_equal(iteration["output"], ref_out["output"])

    run = polygraphy("run", out / "model.fp32.onnx", "--onnxrt", "--load-inputs", root / "inputs.json",
                     "--load-outputs", root / "reference.json", "--atol", "1e-4", "--rtol", "1e-3")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASSED" in run.stdout + run.stderr


def test_polygraphy_fails_against_a_wrong_reference(saved, tmp_path):
    from infercc.data.polygraphy import save_outputs
    from infercc.stages.export import load_reference

    root, out = saved
    wrong = [
        {k: v * 1.5 + 0.1 for k, v in outs.items()}
        for _, outs in load_reference(out / "reference.npz").values()
    ]
    save_outputs(tmp_path / "wrong.json", wrong)
    run = polygraphy("run", out / "model.fp32.onnx", "--onnxrt", "--load-inputs", root / "inputs.json",
                     "--load-outputs", tmp_path / "wrong.json", "--atol", "1e-4", "--rtol", "1e-3")  # fmt: skip
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


def test_infercc_verifies_on_inputs_polygraphy_saved(saved, cli, tmp_path):
    _, out = saved
    pg_inputs = tmp_path / "pg_inputs.json"
    made = polygraphy("run", out / "model.fp32.onnx", "--onnxrt", "--input-shapes", "x:[3,3,32,32]",
                      "--iterations", "2", "--save-inputs", pg_inputs)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    result = cli("verify", out, "--load-inputs", pg_inputs)
    assert result.code == 0, result.text
    verify = manifest(out)["stages"]["verify"]["metrics"]
    assert verify["inputs"]["source"] == f"Polygraphy inputs {pg_inputs}"
    assert verify["inputs"]["sets"] == ["polygraphy#0", "polygraphy#1"]  # Polygraphy's two iterations
    assert verify["passed"] and {r["artifact"] for r in verify["results"]} >= {"onnx", "fp32"}


def test_load_inputs_errors(saved, cli, tmp_path):
    _, out = saved
    bad = tmp_path / "bad.json"
    bad.write_text('[{"y": {"array": "AAAA", "polygraphy_class": "ndarray"}}]')
    result = cli("verify", out, "--load-inputs", bad)
    assert result.code == 2 and "does not decode" in result.err
    from infercc.data.polygraphy import save_inputs

    save_inputs(tmp_path / "big.json", [{"x": np.zeros((9, 3, 32, 32), np.float32)}])
    result = cli("verify", out, "--load-inputs", tmp_path / "big.json")
    assert result.code == 2 and "outside the model's range" in result.err
    save_inputs(tmp_path / "named.json", [{"y": np.zeros((1, 3, 32, 32), np.float32)}])
    result = cli("verify", out, "--load-inputs", tmp_path / "named.json")
    assert result.code == 2 and "the model takes x" in result.err
