"""Regenerate docs/config.md from the pydantic models (run by `make docs`)."""

from pathlib import Path

from infercc.configdoc import markdown_reference

target = Path(__file__).resolve().parents[1] / "docs" / "config.md"
target.write_text(markdown_reference())
print(f"wrote {target}")
