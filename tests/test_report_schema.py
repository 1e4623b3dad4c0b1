"""report.schema.json is generated from the report's pydantic models; the stage results it is made from are
typed models too, and the manifest keeps each stage's verdict beside its result."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError


def test_shipped_report_schema_is_generated_from_the_models() -> None:
    from infercc.report.build import SCHEMA_FILE
    from infercc.report.model import report_schema

    shipped = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert shipped == report_schema(), "infercc/report/report.schema.json is stale: run `make docs`"


def test_schema_rejects_what_the_models_reject() -> None:
    from infercc.report.build import load_schema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    stage = {"name": "export", "status": "done", "duration_s": 1.0, "notes": [], "error": None}
    section = {"type": "array", "items": schema["$defs"]["ReportStage"]}
    jsonschema.validate([stage], section)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**stage, "status": "half-done"}], section)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**stage, "surprise": 1}], section)


def test_a_result_refuses_an_undeclared_key() -> None:
    from infercc.stages.results import CalibrateResult

    figures = {
        "method": "minmax",
        "percentile": None,
        "source": "synthetic",
        "kind": "synthetic",
        "samples": 8,
        "tensors": 12,
        "reused_cache": False,
        "calibration_s": 0.1,
    }
    assert CalibrateResult(**figures).dump() == figures  # what the stage set, nothing more
    with pytest.raises(ValidationError, match="samplez"):
        CalibrateResult(**figures, samplez=8)


def test_verdict_of_a_manifest_written_before_verdicts(tmp_path) -> None:
    from infercc.pipeline.manifest import StageRecord

    old = {"name": "verify", "key": "k", "status": "done", "started": "t", "duration_s": 1.0}
    record = StageRecord.model_validate({**old, "metrics": {"failures": ["x failed"], "crashes": []}})
    assert record.verdict.failures == ["x failed"] and record.verdict.budget_final
    quantize = StageRecord.model_validate(
        {**old, "name": "quantize-int8", "metrics": {"budget_misses": ["m"]}}
    )
    assert quantize.verdict.budget_misses == ["m"] and not quantize.verdict.budget_final
