"""report.json, report.html and summary.md for every compile/verify/bench run.

report.json follows report.schema.json (generated from report/model.py by `make docs`, versioned by its `schema`
field); report.html is self-contained (inline CSS and SVG, no script, no network); summary.md suits a CI job
summary. build.py makes the report from the manifest, selection.py picks the artifacts, render.py draws them.
"""

from infercc.report.build import (
    REPORT_HTML,
    REPORT_JSON,
    SUMMARY_MD,
    build_report,
    load_schema,
    write_reports,
)
from infercc.report.model import SCHEMA_ID
from infercc.report.selection import _headline, select

__all__ = [
    "REPORT_HTML",
    "REPORT_JSON",
    "SCHEMA_ID",
    "SUMMARY_MD",
    "_headline",
    "build_report",
    "load_schema",
    "select",
    "write_reports",
]
