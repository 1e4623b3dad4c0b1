"""Build stage: TensorRT engines from ONNX artifacts. (Filled in by the TensorRT work.)"""

from __future__ import annotations

from infercc.config import CompileConfig
from infercc.pipeline.stage import Stage


def stages_for(config: CompileConfig, onnx_artifacts: list[str], explicit: bool) -> tuple[list[Stage], list[str]]:
    """Stages to run for target tensorrt, and the engine artifact names they produce."""
    return [], []
