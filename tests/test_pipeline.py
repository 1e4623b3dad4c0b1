"""End to end on real tiny models: export, simplify, verify, caching, manifest, JSON output."""

import json

import numpy as np
import onnx
import pytest

from tests.conftest import CNN_SHAPES, manifest, zoo

# token inputs with a dynamic batch and sequence length (the zoo's transformer encoders)
TOKENS = [
    "--min-shape",
    "input_ids:1x4,attention_mask:1x4",
    "--opt-shape",
    "input_ids:2x16,attention_mask:2x16",
    "--max-shape",
    "input_ids:4x48,attention_mask:4x48",
    "--dtype",
    "input_ids:int64,attention_mask:int64",
    "--val-range",
    "input_ids:[0,100],attention_mask:[1,2]",  # a row masked out entirely gives NaN in PyTorch itself (exit 4)
]
CNN = [
    *CNN_SHAPES,
    "--exporter",
    "torchscript",
    "--no-bench",
]


@pytest.fixture(scope="module")
def cnn_out(tmp_path_factory):
    from infercc.cli import main

    out = tmp_path_factory.mktemp("cnn")
    try:
        main(["compile", *CNN, "-o", str(out), "-q"])
    except SystemExit as exc:
        assert exc.code == 0
    return out


def test_compile_writes_artifacts_and_manifest(cnn_out):
    data = manifest(cnn_out)
    assert data["schema"] == "infercc.manifest/1"
    assert set(data["stages"]) >= {"export", "simplify", "verify"}
    export = data["stages"]["export"]
    assert export["status"] == "done" and export["metrics"]["exporter"] == "torchscript"
    assert set(export["metrics"]["shapes_checked"]) == {"opt", "min", "max"}
    assert data["source"]["input_names"] == ["x"]
    assert data["versions"]["onnxruntime"]
    for stage in data["stages"].values():
        for art in stage["outputs"]:
            assert (cnn_out / art["path"]).stat().st_size == art["size"]
            assert len(art["sha256"]) == 64
    model = onnx.load(str(cnn_out / "model.fp32.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    verify = data["stages"]["verify"]["metrics"]
    assert verify["passed"] is True
    result = next(r for r in verify["results"] if r["artifact"] == "fp32")
    assert result["points"]["max"]["output"]["max_abs"] < 1e-4
    assert result["points"]["max"]["output"]["cosine"] > 0.99999


def test_reference_holds_inputs_and_outputs_at_every_shape(cnn_out):
    with np.load(cnn_out / "reference.npz") as ref:
        assert ref["min/input/x"].shape == (1, 3, 32, 32)
        assert ref["max/input/x"].shape == (4, 3, 32, 32)
        assert ref["opt/output/output"].shape == (2, 10)


def test_rerun_skips_every_stage_and_change_reruns_only_downstream(cli, cnn_out):
    again = cli("compile", *CNN, "-o", cnn_out, "--json")
    assert again.code == 0
    doc = again.json()
    assert doc["ran"] == [] and set(doc["cached"]) >= {"export", "simplify", "verify"}
    changed = cli("compile", *CNN, "-o", cnn_out, "--simplifier", "none", "--json")
    doc = changed.json()
    assert "export" in doc["cached"] and doc["ran"] == ["simplify", "optimize-ort", "verify"]
    forced = cli("compile", *CNN, "-o", cnn_out, "--simplifier", "none", "--force", "--json")
    assert set(forced.json()["ran"]) >= {"export", "simplify", "verify"}


def test_edited_artifact_is_detected_and_rebuilt(cli, tmp_path):
    out = tmp_path / "o"
    assert cli("compile", *CNN, "-o", out, "-q").code == 0
    (out / "model.fp32.onnx").write_bytes(b"garbage")
    again = cli("compile", *CNN, "-o", out, "--json")
    assert again.code == 0
    assert "does not match" in again.err or "changed size" in again.err
    assert "simplify" in again.json()["ran"]
    onnx.checker.check_model(str(out / "model.fp32.onnx"))


def test_two_inputs_two_outputs(cli, tmp_path):
    result = cli(
        "compile",
        "-m",
        zoo("two_io.py:two_in_two_out"),
        "--shape",
        "image:2x3x16x16,features:2x8",
        "--exporter",
        "torchscript",
        "--no-bench",
        "-o",
        tmp_path,
        "--json",
    )
    assert result.code == 0, result.err
    io = result.json()["manifest"]["stages"]["export"]["metrics"]["io"]
    assert [n for n, v in io.items() if v["io"] == "input"] == ["image", "features"]
    assert [n for n, v in io.items() if v["io"] == "output"] == ["output_0", "output_1"]


def test_dict_outputs_are_named_by_key(cli, tmp_path):
    result = cli(
        "export",
        "-m",
        zoo("dict_out.py:dict_model"),
        "--shape",
        "x:2x12",
        "--exporter",
        "torchscript",
        "-o",
        tmp_path,
        "--json",
    )
    assert result.code == 0, result.err
    io = result.json()["manifest"]["stages"]["export"]["metrics"]["io"]
    outputs = [n for n, v in io.items() if v["io"] == "output"]
    assert outputs == ["scores", "probs"]


def test_transformer_with_dynamic_sequence_checks_every_shape(cli, tmp_path):
    result = cli(
        "compile",
        "-m",
        zoo("transformer.py:tiny_encoder"),
        *TOKENS,
        "--exporter",
        "torchscript",
        "--no-bench",
        "-o",
        tmp_path,
        "--json",
    )
    assert result.code == 0, result.err
    stages = result.json()["manifest"]["stages"]
    parity = stages["export"]["metrics"]["parity"]
    assert set(parity) == {"opt", "min", "max"}
    assert parity["max"]["shapes"] == "input_ids:4x48, attention_mask:4x48"
    assert parity["max"]["outputs"]["output"]["max_abs"] < 1e-4


def test_recurrent_models_export_with_dynamic_time(cli, tmp_path):
    for spec, shapes in (
        ("recurrent.py:gru_tagger", ("x:1x5x16", "x:2x20x16", "x:3x40x16")),
        ("recurrent.py:lstm_audio", ("mel:1x5x40", "mel:2x20x40", "mel:3x40x40")),
    ):
        out = tmp_path / spec.split(":")[1]
        result = cli(
            "export",
            "-m",
            zoo(spec),
            "--min-shape",
            shapes[0],
            "--opt-shape",
            shapes[1],
            "--max-shape",
            shapes[2],
            "--exporter",
            "torchscript",
            "-o",
            out,
            "--json",
        )
        assert result.code == 0, f"{spec}: {result.err}"


def test_dynamo_exporter_is_tried_first(cli, tmp_path):
    result = cli("export", "-m", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "-o", tmp_path, "--json")
    assert result.code == 0, result.err
    metrics = result.json()["manifest"]["stages"]["export"]["metrics"]
    assert metrics["exporter"] in ("dynamo", "torchscript")
    if metrics["exporter"] == "torchscript":  # a fallback must say why
        assert metrics["fallback_reasons"]


def test_onnx_source_skips_export(cli, cnn_out, tmp_path):
    result = cli(
        "compile",
        "-m",
        cnn_out / "model.fp32.onnx",
        "--shape",
        "x:3x3x32x32",
        "--no-bench",
        "-o",
        tmp_path,
        "--json",
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["manifest"]["stages"]["export"]["metrics"]["exporter"] == "none"
    assert doc["manifest"]["stages"]["verify"]["metrics"]["passed"]


def test_inspect_onnx(cli, cnn_out):
    result = cli("inspect", cnn_out / "model.fp32.onnx", "--json")
    assert result.code == 0
    info = result.json()
    assert info["kind"] == "onnx" and info["io"]["x"]["dims"][1:] == [3, 32, 32]
    assert info["op_counts"]["Conv"] >= 2 and info["parameters"] > 1000
    human = cli("inspect", cnn_out / "model.fp32.onnx")
    assert "Conv" in human.out and "parameters" in human.out


def test_json_mode_keeps_stdout_machine_readable(cli, cnn_out):
    result = cli("compile", *CNN, "-o", cnn_out, "--json")
    json.loads(result.out)  # nothing but one JSON document
    assert "up to date" in result.err


def test_baked_sequence_length_is_reported_not_verified(cli, tmp_path):
    """nn.MultiheadAttention exported by TorchScript fixes the traced sequence length in a Reshape."""
    result = cli(
        "export",
        "-m",
        zoo("transformer.py:mha_attention"),
        *TOKENS,
        "--exporter",
        "torchscript",
        "-o",
        tmp_path,
    )
    assert result.code == 1
    assert "does not match PyTorch" in result.err
    assert "Reshape node" in result.err and "input_ids dimension 1 (16)" in result.err
    assert "Traceback" not in result.text
    assert (tmp_path / "model.rejected.onnx").is_file() and not (tmp_path / "model.onnx").exists()
    stage = manifest(tmp_path)["stages"]["export"]
    assert stage["status"] == "failed"


def test_optional_forward_inputs_are_used_when_declared(cli, tmp_path):
    spec = zoo("optional.py:optional_inputs")
    plain = cli(
        "export", "-m", spec, "--shape", "x:2x6", "--exporter", "torchscript", "-o", tmp_path / "a", "--json"
    )
    assert plain.code == 0, plain.err
    assert manifest(tmp_path / "a")["source"]["input_names"] == ["x"]
    masked = cli(
        "export", "-m", spec, "--shape", "x:2x6,mask:2x4", "--exporter", "torchscript", "-o", tmp_path / "b"
    )
    assert masked.code == 0, masked.err
    assert manifest(tmp_path / "b")["source"]["input_names"] == ["x", "mask"]
    gap = cli("export", "-m", spec, "--shape", "x:2x6,scale:[]", "-o", tmp_path / "c")
    assert gap.code == 2 and "comes after mask" in gap.err
