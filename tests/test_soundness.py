"""Export soundness from what each exporter reports (infercc.stages.soundness): torch.export's refusal of
data-dependent control flow, its specialised dimensions, and the draft export's report get the same verdict as
the TorchScript tracer's warnings: exit 1 naming the source line, unless export.accept_trace_warnings."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import manifest, run_subprocess, zoo

BATCH_BRANCH = [
    "-m", zoo("soundness.py:batch_branch"),
    "--min-shape", "x:1x4", "--opt-shape", "x:4x4", "--max-shape", "x:8x4",
]  # fmt: skip


def _kinds(out: Path) -> set[str]:
    return {f["kind"] for f in manifest(out)["stages"]["export"]["metrics"]["soundness"]}


def test_a_branch_torch_export_refuses_fails_even_when_the_trace_is_silent(cli, tmp_path: Path) -> None:
    model = ["-m", zoo("soundness.py:hushed_branch"), "--shape", "x:2x4"]
    result = cli("export", *model, "-o", tmp_path / "a")
    assert result.code == 1, result.text
    text = " ".join(result.err.split())
    assert "The torchscript export traced past data-dependent control flow" in text
    assert "soundness.py:" in text and "if x.sum() > 0:" in text
    assert "the traced graph has no If/Loop node" in text and "Traceback" not in result.text
    assert (tmp_path / "a" / "model.rejected.onnx").is_file() and not (tmp_path / "a" / "model.onnx").exists()
    accepted = cli("export", *model, "-o", tmp_path / "b", "--set", "export.accept_trace_warnings=true")
    assert accepted.code == 0, accepted.text
    assert _kinds(tmp_path / "b") == {"data-dependent control flow"}
    notes = manifest(tmp_path / "b")["stages"]["export"]["notes"]
    assert any(n.startswith("accepted trace warning (data-dependent control flow)") for n in notes)


def test_a_scripted_branch_is_kept_as_an_if_node_and_passes(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("export", "-m", zoo("soundness.py:scripted_branch"), "--shape", "x:2x4", "-o", out)
    assert result.code == 0, result.text
    metrics = manifest(out)["stages"]["export"]["metrics"]
    assert metrics["exporter"] == "torchscript" and metrics["op_counts"].get("If") == 1
    # torch.export's refusal is recorded, but the graph holds the branch: no verdict against it
    assert _kinds(out) == {"data-dependent control flow"}


def test_a_dimension_torch_export_specialises_is_exit_1_naming_the_line(cli, tmp_path: Path) -> None:
    result = cli("export", *BATCH_BRANCH, "-o", tmp_path / "a")
    assert result.code == 1, result.text
    text = " ".join(result.err.split())
    assert "The dynamo export specialised a dimension declared dynamic" in text
    assert "input x, dimension 0: the graph is valid only for 3..8 (declared dynamic 1..8)" in text
    assert "soundness.py:" in text and "if x.shape[0] > 2:" in text and "Traceback" not in result.text
    # accepted, the narrowed graph still meets parity at the min shape, where both exporters' graphs are wrong
    accepted = cli(
        "export", *BATCH_BRANCH, "-o", tmp_path / "b", "--set", "export.accept_trace_warnings=true"
    )
    assert accepted.code == 1, accepted.text
    assert "dynamo: at the min shapes (x:1x4)" in accepted.err and "max abs error 101" in accepted.err


ONE_TO_EIGHT = ["--min-shape", "x:1x4", "--opt-shape", "x:3x4", "--max-shape", "x:8x4"]
DOWNSAMPLE = ["--min-shape", "x:1x8x6x6", "--opt-shape", "x:3x8x6x6", "--max-shape", "x:8x8x6x6"]


def test_a_batch_narrowed_only_at_a_checked_shape_is_decided_by_parity(cli, tmp_path: Path) -> None:
    """torch.export narrowed N from 1..8 to 2..8, and the only value left out, 1, is the min shape: parity ran
    there, so the graph's answer at 1 is known: right there, accepted with a note (ConvNeXt-Tiny's downsampling,
    on torch 2.11 and 2.13). A model wrong at 1 is exit 1 from the same parity check."""
    right = cli("export", "-m", zoo("soundness.py:downsample"), *DOWNSAMPLE, "-o", tmp_path / "a")
    assert right.code == 0, right.text
    stage = manifest(tmp_path / "a")["stages"]["export"]
    assert stage["metrics"]["exporter"] == "dynamo"
    (note,) = stage["notes"]
    assert "valid only for 2..8 (declared dynamic 1..8)" in note
    assert "the values outside that range (1) are shapes parity ran at (min)" in note
    (finding,) = stage["metrics"]["soundness"]
    assert finding["input"] == "x" and finding["axis"] == 0 and finding["valid"] == [2, 8]
    # with the spatial size dynamic too, batch 1 is checked at one size only: no proof, exit 1 as before
    both = ["--min-shape", "x:1x8x6x6", "--opt-shape", "x:3x8x8x8", "--max-shape", "x:8x8x8x8"]
    unproven = cli("export", "-m", zoo("soundness.py:downsample"), *both, "-o", tmp_path / "c")
    assert unproven.code == 1, unproven.text
    assert "valid only for 2..8 (declared dynamic 1..8)" in " ".join(unproven.err.split())
    wrong = cli("export", "-m", zoo("soundness.py:wrong_at_one"), *ONE_TO_EIGHT, "-o", tmp_path / "b")
    assert wrong.code == 1, wrong.text
    assert "dynamo: at the min shapes (x:1x4)" in wrong.err and "max abs error 101" in wrong.err


def test_values_the_draft_export_took_from_the_trace_are_exit_1(tmp_path: Path) -> None:
    model = ["-m", zoo("nonfinite.py:frozen_branch"), "--shape", "x:2x4", "--exporter", "dynamo"]
    result = run_subprocess(
        "export", *model, "-o", tmp_path / "a", env={"TORCH_ONNX_ENABLE_DRAFT_EXPORT": "1"}, timeout=300
    )
    assert result.code == 1, result.text
    text = " ".join(result.err.split())
    assert "(draft export)" in text and "nonfinite.py:" in text and "if x.sum() > 0:" in text
    assert "Traceback" not in result.text
