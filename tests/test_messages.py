"""What users read: fallback reasons in full, named dynamic dimensions, -q, logs without wrapping."""

from __future__ import annotations

import pytest

from tests.conftest import CNN_SHAPES, manifest, zoo


def _graph_dims(path) -> dict[str, list]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.input, *model.graph.output)
    }


def test_fallback_reason_is_the_cause_and_dims_take_the_users_names(cli, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "export", "-m", zoo("branchy.py:make"), "--min-shape", "x:1x6", "--opt-shape", "x:2x6",
        "--max-shape", "x:4x6", "--dim-name", "x:0=batch", "--out", out,
        "--set", "export.accept_trace_warnings=true",  # the traced fallback froze branchy's `if` (else exit 1)
    )  # fmt: skip
    assert result.code == 0, result.text
    export = manifest(out)["stages"]["export"]["metrics"]
    assert export["exporter"] == "torchscript"
    (reason,) = export["fallback_reasons"]
    # the cause and where it is, not torch's "This is step 1/3 ... Next steps:" preamble
    assert reason.startswith("dynamo exporter failed: torch.export failed: GuardOnDataDependentSymNode: ")
    assert "(at branchy.py:" in reason and "Next steps" not in reason
    assert reason in result.out  # the stage line says it, not only the manifest
    assert _graph_dims(out / "model.onnx") == {"x": ["batch", 6], "output": ["batch", 3]}


def test_quiet_prints_one_line_and_default_dim_names_link_outputs(cli, tmp_path):
    out = tmp_path / "q"
    result = cli("compile", *CNN_SHAPES, "--no-bench", "--out", out, "-q")
    assert result.code == 0, result.text
    assert result.out.splitlines() == [f"ok: onnx, fp32, fp32-ort verified; in {out}"]
    for name in ("model.onnx", "model.fp32.onnx"):
        assert _graph_dims(out / name) == {"x": ["x_dim0", 3, 32, 32], "output": ["x_dim0", 10]}
    # output that is not a terminal: Markdown rows, nothing wrapped or boxed
    again = cli("verify", out)
    assert "| artifact | size | nodes | verify (worst output) | built in |" in again.out
    assert "┃" not in again.out and "━" not in again.out
    assert any(line.startswith("| fp32 |") and "ok cos" in line for line in again.out.splitlines())


def test_dim_name_for_a_static_axis_is_a_usage_error(cli, tmp_path):
    result = cli("export", *CNN_SHAPES, "--dim-name", "x:1=channels", "--out", tmp_path / "s")
    assert result.code == 2
    assert "dimension 1 of x is static" in result.err


@pytest.mark.parametrize("spec", ["x:batch", "x:0=", "x:0=1abc"])
def test_dim_name_syntax(cli, tmp_path, spec):
    result = cli("export", *CNN_SHAPES, "--dim-name", spec, "--out", tmp_path / "s")
    assert result.code == 2 and "expected NAME:AXIS=LABEL" in result.err


def test_doctor_has_no_python_dicts(cli):
    result = cli("doctor")
    assert result.code == 0
    assert "{" not in result.out and "TensorRT flavour: rtx" in result.out
