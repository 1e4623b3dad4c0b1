"""The AOTInductor target, the inductor-cpu runtime and the torch.compile peer, for real on the CPU.

An AOTInductor compile takes ~20+ s on two cores, so the tests share two compiled packages: a dynamic-batch
MLP compiled, verified and benched with the torch.compile peer (module fixture), and a model whose time axis
torch.export specialises. Everything else (bad input) stops before compiling.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from tests.conftest import manifest, zoo

pytestmark = pytest.mark.xdist_group("inductor")

MLP = ["-m", zoo("inductor_cases.py:tiny_mlp"), "--min-shape", "x:1x16", "--opt-shape", "x:2x16"]
MLP += ["--max-shape", "x:4x16"]


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """tiny_mlp, batch 1..4, compiled for onnxruntime and inductor, verified and benched (batch 1 and 4)
    with the torch.compile peer; then run again to show the package comes from the cache."""
    from infercc.cli import main

    out = tmp_path_factory.mktemp("mlp")
    args = [*MLP, "--target", "onnxruntime,inductor", "--out", str(out), "--json", "--batch-sizes", "1,4"]
    args += ["--iterations", "20", "--warmup", "2"]

    def run() -> tuple[int, dict]:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            try:
                main(["compile", *args])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        return code, json.loads(buffer.getvalue())

    first = run()
    second = run()
    return {"out": out, "first": first, "second": second}


def test_inductor_package_is_built_verified_and_benched_beside_onnx(mlp_run):
    out = mlp_run["out"]
    code, doc = mlp_run["first"]
    assert code == 0, doc
    assert "compile-inductor-fp32" in doc["ran"]
    package = out / "model.fp32.inductor.pt2"
    assert package.is_file() and package.stat().st_size > 10_000
    sidecar = json.loads((out / "model.fp32.inductor.json").read_text())
    import torch

    assert sidecar["torch"] == torch.__version__ and sidecar["device"]["device"] == "cpu"
    assert sidecar["valid_shapes"] == {"x": [[1, 4], [16, 16]]}
    assert "--target inductor" in sidecar["rebuild"]
    verify = manifest(out)["stages"]["verify"]["metrics"]
    ours = [r for r in verify["results"] if r["artifact"] == "inductor-fp32"]
    assert [r["runtime"] for r in ours] == ["inductor-cpu"]
    assert ours[0]["passed"] and ours[0]["outputs"]["output"]["cosine"] > 0.99999
    # the dynamic batch: verified at the min, opt and max batch of the declared range
    shapes = verify["inputs"]["shapes"]
    assert {shapes[label]["x"][0] for label in ("min", "opt", "max")} == {1, 2, 4}


def test_bench_times_the_torch_compile_peer_and_every_ratio_names_it(mlp_run):
    out = mlp_run["out"]
    bench = manifest(out)["stages"]["bench"]["metrics"]
    peer = next(r for r in bench["results"] if r["artifact"] == "torch.compile")
    assert peer["runtime"] == "torch-compile-cpu" and peer["error"] is None
    assert set(peer["compile_s"]) == {"1x16", "4x16"} and all(s > 0 for s in peer["compile_s"].values())
    package = next(r for r in bench["results"] if r["artifact"] == "inductor-fp32")
    for batch in ("1", "4"):
        stats, compiled = package["batches"][batch], peer["batches"][batch]
        if stats.get("disturbed") or compiled.get("disturbed"):  # a busy machine gives no ratio, by design
            assert "vs_compile" not in stats
            continue
        assert stats["vs_compile"] == pytest.approx(compiled["p50_ms"] / stats["p50_ms"])
    report = json.loads((out / "report.json").read_text())
    import jsonschema

    from infercc.report import load_schema

    jsonschema.validate(report, load_schema())
    (cpu,) = report["selection"]["devices"]
    assert cpu["device"] == "cpu" and cpu["chosen"] is not None
    batch1 = str(cpu["batch"])
    if peer["batches"][batch1].get("disturbed"):  # no ratio from a disturbed timing, and the verdict says why
        assert cpu["vs_compile"] is None and "torch.compile's timing was disturbed" in cpu["verdict"]
    else:
        assert cpu["vs_compile"] == pytest.approx(cpu["compile_p50_ms"] / cpu["chosen"]["p50_ms"])
        faster = cpu["compile_p50_ms"] < cpu["chosen"]["p50_ms"]
        assert ("torch.compile is faster than every artifact" in cpu["verdict"]) == faster
    eager = next(r for r in bench["results"] if r["artifact"] == "pytorch")
    if not eager["batches"][batch1].get("disturbed"):
        assert cpu["vs_eager"] == pytest.approx(cpu["eager_p50_ms"] / cpu["chosen"]["p50_ms"])
    # the backend x precision x batch table: every candidate at every batch, each loser with its reason
    table = cpu["table"]
    assert {(r["backend"], r["batch"]) for r in table} >= {("onnxruntime", 1), ("inductor", 4)}
    assert sum(1 for r in table if r.get("chosen")) == 2  # one per batch
    assert all(r["reason"] for r in table)
    summary = (out / "summary.md").read_text()
    assert "× torch.compile" in summary and "Selection on cpu" in summary
    assert "torch.compile on torch-compile-cpu compiled input 1x16" in summary


def test_rerun_takes_the_package_from_the_cache(mlp_run):
    code, doc = mlp_run["second"]
    assert code == 0
    assert "compile-inductor-fp32" in doc["cached"] and not doc["ran"]


def test_package_for_another_torch_is_refused_with_the_rebuild_command(mlp_run, tmp_path):
    from infercc.errors import MissingRuntimeError
    from infercc.runtimes.base import get_runtime

    package = tmp_path / "model.fp32.inductor.pt2"
    shutil.copy(mlp_run["out"] / "model.fp32.inductor.pt2", package)
    sidecar = json.loads((mlp_run["out"] / "model.fp32.inductor.json").read_text())
    sidecar["torch"] = "2.0.0"
    (tmp_path / "model.fp32.inductor.json").write_text(json.dumps(sidecar))
    with pytest.raises(MissingRuntimeError) as info, get_runtime("inductor-cpu", package):
        pass
    assert "built by torch 2.0.0" in info.value.message
    assert info.value.hint and "--target inductor" in info.value.hint and "--force" in info.value.hint


def test_a_shape_outside_the_package_is_refused_and_a_crash_is_a_failed_call(mlp_run):
    import numpy as np

    from infercc.errors import StageError
    from infercc.runtimes.isolation import RuntimeCrashed, open_runtime

    with open_runtime("inductor-cpu", mlp_run["out"] / "model.fp32.inductor.pt2") as runtime:
        out = runtime.infer({"x": np.ones((3, 16), np.float32)})
        assert out["output"].shape == (3, 4)
        with pytest.raises(StageError, match=r"dimension 0 is 5; the package accepts 1..4"):
            runtime.infer({"x": np.ones((5, 16), np.float32)})
        os.kill(runtime.pid, signal.SIGSEGV)
        with pytest.raises(
            RuntimeCrashed, match=r"inductor-cpu crashed running model\.fp32\.inductor\.pt2: SIGSEGV"
        ):
            runtime.infer({"x": np.ones((2, 16), np.float32)})


def test_specialised_dimension_is_named_and_verified_only_where_valid(cli, tmp_path):
    out = tmp_path / "fast"
    result = cli(
        "compile",
        "-m",
        zoo("inductor_cases.py:fast_path"),
        "--min-shape",
        "x:2x4x8",
        "--opt-shape",
        "x:2x8x8",
        "--max-shape",
        "x:2x12x8",
        "--target",
        "onnxruntime,inductor",
        "--out",
        out,
        "--no-bench",
        "--set",
        "export.accept_trace_warnings=true",  # the TorchScript ONNX export traces the same shape branch
    )
    assert result.code == 0, result.text
    said = "torch.export specialised input x, dimension 1 to 8 (declared dynamic 4..12)"
    assert said in result.text
    package = manifest(out)["stages"]["compile-inductor-fp32"]["outputs"][0]
    assert package["meta"]["valid_shapes"]["x"][1] == [8, 8]
    verify = manifest(out)["stages"]["verify"]["metrics"]
    (ours,) = [r for r in verify["results"] if r["artifact"] == "inductor-fp32"]
    assert (
        ours["passed"]
        and "min" not in ours["points"]
        and "max" not in ours["points"]
        and "opt" in ours["points"]
    )
    assert "verified only where the package is valid" in ours["notes"][0]
    report = json.loads((out / "report.json").read_text())
    marked = next(a for a in report["artifacts"] if a["name"] == "inductor-fp32")
    assert said in marked["specialized"][0]
    assert "valid only on some shapes" in (out / "summary.md").read_text()


def test_model_torch_export_cannot_handle_exits_4_and_onnx_targets_still_finish(cli, tmp_path):
    out = tmp_path / "gate"
    result = cli(
        "compile", "-m", zoo("inductor_cases.py:scripted_gate"), "--shape", "x:2x8", "--target",
        "onnxruntime,inductor", "--out", out, "--no-bench",
        # the ONNX path traces the data-dependent branch (exit 1 on its own): accepted here, the subject is inductor
        "--set", "export.accept_trace_warnings=true",
    )  # fmt: skip
    assert result.code == 4, result.text
    assert "torch.export could not export the model for target inductor" in result.err
    assert "data-dependent expression" in result.err
    assert "inductor_cases.py:" in result.err and "if bool(x.sum() > 0):" in result.err
    assert "def forward(" not in result.text  # torch's graph dump stays out of the one-line error
    stages = manifest(out)["stages"]
    assert stages["compile-inductor-fp32"]["status"] == "failed"
    assert stages["verify"]["status"] == "done"
    assert {r["artifact"] for r in stages["verify"]["metrics"]["results"]} == {"onnx", "fp32", "fp32-ort"}
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["verify"]["passed"]


def test_max_autotune_over_its_budget_falls_back_to_the_default_mode(tmp_path):
    """build.inductor_autotune_s: a max-autotune compile that outlasts its budget is stopped, the package is
    compiled in the default mode instead, the note says so, and the package it writes loads and matches eager."""
    import time

    import torch

    from infercc.inductor.package import compile_package
    from tests.zoo.inductor_cases import tiny_mlp

    model = tiny_mlp().eval()
    x = torch.randn(2, 16)
    program = torch.export.export(model, (x,))
    started = time.perf_counter()
    result = compile_package(program, tmp_path / "model.fp32.inductor.pt2", autotune_s=1.0)
    assert time.perf_counter() - started < 600
    assert result.mode == "default"
    assert result.notes == [
        "max-autotune did not finish within build.inductor_autotune_s (1 s): stopped it and compiled in the "
        "default mode"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp32.inductor.pt2"]  # no work folder left
    loaded = torch._inductor.aoti_load_package(str(tmp_path / "model.fp32.inductor.pt2"))
    torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=1e-5)


def test_torch_without_the_aoti_api_exits_3_naming_the_version(cli, tmp_path, monkeypatch):
    import torch._inductor

    monkeypatch.delattr(torch._inductor, "aoti_compile_and_package")
    result = cli("compile", *MLP, "--target", "inductor", "--out", tmp_path / "o")
    assert result.code == 3, result.text
    assert "needs torch >= 2.6" in result.err and "aoti_compile_and_package" in result.err
    assert not (tmp_path / "o" / "model.onnx").exists()


def test_no_cpp_compiler_exits_3_naming_what_to_install(cli, tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-compiler++",))
    monkeypatch.delenv("CXX", raising=False)
    result = cli("compile", *MLP, "--target", "inductor", "--out", tmp_path / "o")
    assert result.code == 3, result.text
    assert "needs a C++ compiler" in result.err and "apt-get install g++" in result.err


def test_peer_compile_time_is_bounded(tmp_path):
    """A compile budget too small to compile anything stops the child and says which setting bounds it."""
    import numpy as np

    from infercc.errors import StageError
    from infercc.runtimes.base import get_runtime

    options = {"source": zoo("inductor_cases.py:tiny_mlp"), "model": {}, "input_names": ["x"]}
    bounded = pytest.raises(StageError, match=r"did not finish compiling within 0.5 s.*bench.peer_compile_s")
    with get_runtime("torch-compile-cpu", None, compile_budget_s=0.5, **options) as peer, bounded:
        peer.time_infer({"x": np.ones((2, 16), np.float32)}, 3, 1)
