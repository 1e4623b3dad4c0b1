"""Quantize stage: FP16 and calibrated INT8 (Q/DQ) artifacts. (Filled in by the precision work.)"""

from __future__ import annotations

from infercc.config import CompileConfig
from infercc.pipeline.stage import Stage


def stages_for(config: CompileConfig) -> tuple[list[Stage], list[str]]:
    """Stages to run for the configured precisions, and the ONNX artifact names they produce."""
    return [], []
