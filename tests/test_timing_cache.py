"""TensorRT timing caches: the user's cache (build.timing_cache) is read, never written, and enters the build's
key by content; infercc's own cache (engines/timing.<flavour>.cache) is updated by every build and stays out of
every key (it changes which tactics are timed, not what the engine computes, and every engine is verified)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infercc.config import CompileConfig, InputSpec, Precision
from infercc.models.sources import ModelSource, SourceKind
from infercc.pipeline.runner import stage_key
from infercc.pipeline.stage import QuietEvents, RunContext
from infercc.shapes import ShapeRange
from infercc.stages.build import BuildStage
from infercc.tensorrt.flavours import CAPABILITIES, FlavourInfo

TRT10 = FlavourInfo("tensorrt", "10.9.0.34", CAPABILITIES["trt10"])
RTX = FlavourInfo("tensorrt_rtx", "1.2.0", CAPABILITIES["rtx"])


def _context(tmp_path: Path, **build: object) -> RunContext:
    config = CompileConfig.model_validate({"build": build})
    return RunContext(
        config=config,
        out=tmp_path / "out",
        source=ModelSource(SourceKind.onnx, str(tmp_path / "m.onnx")),
        source_hash="0" * 64,
        input_names=["x"],
        shape_ranges={"x": ShapeRange.static((1, 3, 8, 8))},
        inputs={"x": InputSpec()},
        events=QuietEvents(),
    )


def _key(stage: BuildStage, ctx: RunContext) -> str:
    return stage_key(stage, ctx, {})


def test_the_users_cache_enters_the_key_by_content_and_infercc_s_own_never(tmp_path: Path) -> None:
    user = tmp_path / "team.cache"
    user.write_bytes(b"tactics v1")
    ctx = _context(tmp_path, timing_cache=str(user))
    stage = BuildStage(Precision.fp16, "fp16", TRT10, [], False, False)
    own = stage.timing_cache_path(ctx)
    assert own == tmp_path / "out" / "engines" / "timing.trt10.cache"
    first = _key(stage, ctx)
    assert _key(stage, ctx) == first
    user.write_bytes(b"tactics v2")  # another cache: the engine is rebuilt from it
    second = _key(stage, ctx)
    assert second != first
    own.parent.mkdir(parents=True)
    own.write_bytes(b"whatever the last build saved")  # infercc's own cache: no rebuild
    assert _key(stage, ctx) == second
    user.unlink()  # a named cache that is gone changes the key too (the build then starts from none)
    assert _key(stage, ctx) != second


def test_own_cache_can_be_switched_off_and_rtx_ignores_both(tmp_path: Path) -> None:
    user = tmp_path / "team.cache"
    user.write_bytes(b"tactics")
    off = _context(tmp_path, timing_cache=str(user), managed_timing_cache=False)
    assert BuildStage(Precision.fp32, "fp32", TRT10, [], False, False).timing_cache_path(off) is None
    rtx_stage = BuildStage(Precision.fp32, "fp32", RTX, [], False, False)
    ctx = _context(tmp_path, timing_cache=str(user))
    assert rtx_stage.timing_cache_path(ctx) is None  # RTX compiles kernels at run time: a no-op there
    before = _key(rtx_stage, ctx)
    user.write_bytes(b"other tactics")
    assert _key(rtx_stage, ctx) == before


def test_the_users_file_is_merged_in_and_never_written(tmp_path: Path) -> None:
    """With TensorRT's own timing-cache objects (TensorRT-RTX's builder config: the API is present there)."""
    from infercc.config import Flavour
    from infercc.tensorrt.builder import BuildRequest, _load_timing_cache
    from infercc.tensorrt.flavours import select_flavour

    installed = select_flavour(Flavour.tensorrt_rtx)
    if installed is None:
        pytest.skip("TensorRT-RTX is not installed")
    trt = installed.load()

    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    empty = bytes(memoryview(config.create_timing_cache(b"").serialize()))
    user, own = tmp_path / "team.cache", tmp_path / "out" / "timing.trt10.cache"
    user.write_bytes(empty)
    own.parent.mkdir()
    own.write_bytes(b"not a timing cache")  # damaged: infercc's own cache restarts empty
    notes: list[str] = []
    request = BuildRequest("fp32", timing_cache=user, managed_timing_cache=own)
    info = _load_timing_cache(trt, config, True, request, "TensorRT-RTX", notes)
    assert info["used"] and info["file"] == str(user) and info["user_bytes"] == len(empty)
    assert info["merged"] is True  # a cache from this TensorRT combines into infercc's own
    assert info["managed"] == str(own) and info["loaded_bytes"] == len("not a timing cache")
    assert config.get_timing_cache() is not None
    assert user.read_bytes() == empty  # read only
    assert notes and str(user) in notes[0]
