"""report.json, report.html and summary.md for every compile/verify/bench run. (Filled in by the report work.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_reports(out: Path, manifest: Any, config: Any) -> None:
    """Placeholder until the report work lands: writes nothing."""
    return None
