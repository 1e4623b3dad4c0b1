"""Regenerate infercc/report/report.schema.json from the report's pydantic models (run by `make docs`)."""

import json

from infercc.report.build import SCHEMA_FILE
from infercc.report.model import report_schema

SCHEMA_FILE.write_text(json.dumps(report_schema(), indent=2) + "\n", encoding="utf-8")
print(f"wrote {SCHEMA_FILE}")
