"""The JSON sidecar infercc writes beside every built artifact (TensorRT engines, AOTInductor packages): where
it lives and how it is read back, with one clear error for each way it can be missing or wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infercc.errors import UsageError


def sidecar_path(artifact: Path) -> Path:
    return Path(artifact).with_suffix(".json")


def read_sidecar_json(artifact: Path, schema: str, what: str, tells: str, rebuild: str) -> dict[str, Any]:
    """The sidecar of `artifact` (a `what`: "engine", "package"), checked to be JSON of `schema`. `tells` says
    what infercc learns from it ("how it was built"); `rebuild` is the command that makes a new one."""
    side = sidecar_path(artifact)
    if not side.is_file():
        raise UsageError(
            f"{Path(artifact).name} has no sidecar ({side.name}), so infercc cannot tell {tells}.",
            hint=f"Keep the .json written beside each {what}, or rebuild: {rebuild}",
        )
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"Sidecar {side} is not readable JSON ({exc}).", hint=f"Rebuild the {what} with --force."
        ) from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise UsageError(f"{side} is not an infercc {what} sidecar (schema {schema}).")
    return data
