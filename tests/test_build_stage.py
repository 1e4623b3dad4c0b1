"""The build stage in the pipeline: `infercc compile --target tensorrt --precision fp32,fp16,int8` builds
three real TensorRT-RTX engines with sidecars, `infercc inspect` reads them, a re-run rebuilds nothing;
skip and exit-code rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infercc.config import CompileConfig, Flavour, Precision
from infercc.errors import MissingRuntimeError, UsageError
from infercc.stages import build as build_stage
from infercc.tensorrt import flavours
from tests.test_tensorrt import make_cnn

RTX = flavours.select_flavour(Flavour.tensorrt_rtx)
needs_rtx = pytest.mark.skipif(RTX is None, reason="TensorRT-RTX is not installed")
SHAPES = ["--min-shape", "x:1x3x8x8", "--opt-shape", "x:2x3x8x8", "--max-shape", "x:4x3x8x8"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from infercc.cli import main

    with pytest.raises(SystemExit) as code:
        main(args)
    out, err = capsys.readouterr()
    return int(code.value.code or 0), out, err


@needs_rtx
def test_compile_three_engines_inspect_and_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real quantize stage makes fp16 and int8-trt; the build stages turn them into engines."""
    model = make_cnn(tmp_path / "cnn.onnx")
    out = tmp_path / "out"
    args = [
        "compile",
        "--model",
        str(model),
        *SHAPES,
        "--target",
        "tensorrt",
        "--precision",
        "fp32,fp16,int8",
        "--calib",
        "synthetic",
        "--out",
        str(out),
        "--no-bench",
        "--json",
        "--timing-cache",
        str(tmp_path / "tc.cache"),
        "--set",
        "build.profiles=[{x: {min: 5x3x8x8, opt: 8x3x8x8, max: 16x3x8x8}}]",
        "--set",
        "verify.tolerances={int8: {min_cosine: 0.5}}",
    ]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    first = json.loads(stdout)
    assert {"build-fp32", "build-fp16", "build-int8"} <= set(first["ran"])
    stages = first["manifest"]["stages"]
    for p in ("fp32", "fp16", "int8"):
        engine = out / "engines" / f"model.{p}.rtx.engine"
        side = json.loads((out / "engines" / f"model.{p}.rtx.json").read_text())
        assert engine.stat().st_size == side["engine_bytes"] > 100_000
        assert (
            side["precision"] == p
            and side["flavour"]["family"] == "rtx"
            and side["flavour"]["version"] == RTX.version
        )  # type: ignore[union-attr]
        assert side["source"]["artifact"] == {"fp32": "fp32", "fp16": "fp16", "int8": "int8-trt"}[p]
        assert len(side["source"]["sha256"]) == 64 and len(side["profiles"]) == 2
        assert side["targets"]["compute_capabilities"] == ["SM80", "SM86", "SM89", "SM120", "SM121"]
        assert side["settings"]["timing_cache"]["ignored"] is True and side["build_s"] < 10
        assert side["rebuild"].startswith(f"infercc build --model {model} --min-shape x:1x3x8x8")
        record = stages[f"build-{p}"]
        assert record["outputs"][0]["name"] == f"engine-{p}" and record["outputs"][0]["kind"] == "engine"
        assert any("ignores the timing cache" in n for n in record["notes"])

    code, stdout, _ = _cli(["inspect", str(out / "engines" / "model.int8.rtx.engine"), "--json"], capsys)
    info = json.loads(stdout)
    assert (
        code == 0 and info["precision"] == "int8" and any(la["precision"] == "INT8" for la in info["layers"])
    )

    code, stdout, _ = _cli(args, capsys)
    again = json.loads(stdout)
    assert (
        code == 0
        and again["ran"] == []
        and {"build-fp32", "build-fp16", "build-int8"} <= set(again["cached"])
    )


@needs_rtx
def test_build_options_change_the_key_and_reach_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_cnn(tmp_path / "cnn.onnx", batch=1)
    out = tmp_path / "out"
    base = ["build", "--model", str(model), "--shape", "x:1x3x8x8", "--out", str(out), "--json"]
    code, stdout, err = _cli([*base, "--compute-capability", "8.6,12.0", "--workspace", "256"], capsys)
    assert code == 0, err
    side = json.loads((out / "engines" / "model.fp32.rtx.json").read_text())
    assert side["header"]["targets"] == ["SM86", "SM120"] and side["settings"]["workspace_mib"] == 256
    assert side["profiles"] == []  # a static model needs none
    code, stdout, _ = _cli([*base, "--compute-capability", "8.9"], capsys)
    assert code == 0 and "build-fp32" in json.loads(stdout)["ran"]

    code, _, err = _cli([*base, "--compute-capability", "9.0"], capsys)
    assert code == 2 and "cannot target compute capability 9.0" in err
    code, _, err = _cli(
        [*base, "--precision", "int8", "--calib", "synthetic", "--int8-route", "calibrator"], capsys
    )
    assert code == 2 and "no implicit INT8 calibration" in err and "int8-trt (model.int8.trt.onnx)" in err


def test_no_tensorrt_skips_unless_asked(tmp_path: Path) -> None:
    config = CompileConfig.model_validate({"precisions": ["fp32", "fp16"], "build": {"flavour": "tensorrt"}})
    if flavours.select_flavour(Flavour.tensorrt) is not None:
        pytest.skip("TensorRT 10/11 is installed here")
    stages, engines = build_stage.stages_for(config, ["onnx", "fp32"], explicit=False)
    assert engines == [] and [s.name for s in stages] == ["build-fp32", "build-fp16"]
    out = stages[0].run(None, {})  # type: ignore[arg-type]
    assert out.skipped and "TensorRT 10/11 is not installed: pip install 'infercc[tensorrt]'" in out.skipped
    with pytest.raises(MissingRuntimeError) as exc:
        build_stage.stages_for(config, ["onnx", "fp32"], explicit=True)
    assert exc.value.exit_code == 3 and "infercc[tensorrt]" in (exc.value.hint or "")


@needs_rtx
def test_routes_and_missing_source_artifact() -> None:
    config = CompileConfig.model_validate({"precisions": ["fp32", "fp16", "int8"]})
    stages, engines = build_stage.stages_for(config, ["onnx", "fp32"], explicit=True)
    assert engines == ["engine-fp32"]
    assert [getattr(s, "reason", None) for s in stages][1].startswith("no fp16 ONNX artifact")
    assert build_stage.route(config, Precision.int8) == ("int8-trt", False, False)
    flag = CompileConfig.model_validate({"build": {"sources": {"fp16": "fp32"}}})
    assert build_stage.route(flag, Precision.fp16) == ("fp32", True, False)
    with pytest.raises(UsageError, match="no FP16 builder flag"):
        build_stage.stages_for(
            flag.model_copy(update={"precisions": [Precision.fp16]}), ["fp32"], explicit=True
        )
    with pytest.raises(UsageError, match="built from int8-trt or fp32"):
        build_stage.route(
            CompileConfig.model_validate({"build": {"sources": {"int8": "fp16"}}}), Precision.int8
        )
