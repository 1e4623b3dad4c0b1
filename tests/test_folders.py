"""An output folder as the argument: verify/bench/inspect/report reuse the config its manifest records,
and artifacts written by another config are labelled as such, never as 'no runtime here'."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CNN_SHAPES, manifest

pytestmark = pytest.mark.xdist_group("folders")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The zoo CNN compiled once at FP32 and FP16 (no bench), shared by the tests of this module."""
    from infercc.cli import main

    out = tmp_path_factory.mktemp("folder") / "out"
    try:
        main(["compile", *CNN_SHAPES, "--precision", "fp32,fp16", "--no-bench", "--out", str(out), "-q"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def test_verify_a_folder_reuses_its_config(cli, compiled):
    result = cli("verify", compiled)
    assert result.code == 0, result.text
    assert "up to date" in result.out and "stage(s) ran" in result.out
    assert "fp16" in result.out and "from another config" not in result.out
    # flags override the recorded config: a new seed re-runs verify only
    seeded = cli("verify", compiled, "--seed", "3", "-q")
    assert seeded.code == 0, seeded.text
    stages = manifest(compiled)["stages"]
    assert stages["verify"]["metrics"]["inputs"]["sets"]
    assert manifest(compiled)["config"]["verify"]["seed"] == 3


def test_out_without_config_uses_the_recorded_one_and_says_so(cli, compiled):
    result = cli("verify", "--out", compiled)
    assert result.code == 0, result.text
    assert f"using the config recorded in {compiled / 'manifest.json'}" in result.out
    assert "efficientnet" not in result.text.lower()


def test_builtin_example_is_never_silent(tmp_path):
    from infercc.cli.settings import Flags, load_settings

    notes: list[str] = []
    config = load_settings(None, Flags(out=tmp_path / "new"), notes)
    assert config.model.source.endswith(":efficientnet_lite0")
    assert notes == [
        f"no config, folder or --model given: using the built-in EfficientNet-Lite0 example in {tmp_path / 'new'}"
    ]


def test_omitted_opt_shape_is_stated(tmp_path):
    from infercc.cli.settings import Flags, load_settings

    notes: list[str] = []
    flags = Flags(model="m.py:f", min_shape=["x:1x3x8x8"], max_shape=["x:4x3x8x8"], out=tmp_path)
    load_settings(None, flags, notes)
    assert notes == [
        "x: no --opt-shape given; optimising for the max shape 4x3x8x8 (pass --opt-shape x:DIMS to choose)"
    ]


def test_folder_without_manifest_is_a_usage_error(cli, tmp_path):
    result = cli("verify", tmp_path)
    assert result.code == 2
    assert "folder without manifest.json" in result.err
    assert cli("report", tmp_path).code == 2
    assert cli("inspect", tmp_path).code == 2


def test_inspect_and_report_a_folder(cli, compiled):
    inspected = cli("inspect", compiled)
    assert inspected.code == 0, inspected.text
    for name in (
        "model.fp32.onnx",
        "model.fp16.onnx",
        "reference.npz",
        "x: 1x3x32x32 .. 2x3x32x32 .. 4x3x32x32",
    ):
        assert name in inspected.out
    assert "{" not in inspected.out
    as_json = cli("inspect", compiled, "--json").json()
    assert {a["name"] for a in as_json["artifacts"]} >= {"onnx", "fp32", "fp16"}
    (compiled / "report.html").unlink()
    written = cli("report", compiled)
    assert written.code == 0, written.text
    assert (compiled / "report.html").is_file()
    assert json.loads((compiled / "report.json").read_text())["status"] == "ok"


def test_another_config_in_the_same_folder_is_labelled(cli, compiled, tmp_path):
    import shutil

    out = tmp_path / "mixed"
    shutil.copytree(compiled, out)
    # the same model at FP32 only, into the folder that also holds the FP16 artifact
    result = cli("compile", *CNN_SHAPES, "--precision", "fp32", "--no-bench", "--out", out)
    assert result.code == 0, result.text
    row = next(line for line in result.out.splitlines() if line.startswith("fp16"))
    assert "from another config" in row and "no runtime here" not in result.out
    assert "fp16: from another config" in result.out
    report = json.loads((out / "report.json").read_text())
    flags = {a["name"]: a.get("from_other_config", False) for a in report["artifacts"]}
    assert flags["fp16"] is True and flags["fp32"] is False
    # back to the first config: fp16 is its own again
    again = cli("compile", *CNN_SHAPES, "--precision", "fp32,fp16", "--no-bench", "--out", out)
    assert again.code == 0 and "from another config" not in again.out
