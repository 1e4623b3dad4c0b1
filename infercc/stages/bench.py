"""Bench stage: latency and throughput of every artifact on every runtime. (Filled in by the bench work.)"""

from __future__ import annotations

from infercc.config import CompileConfig
from infercc.pipeline.stage import Stage


def stages_for(config: CompileConfig, artifacts: list[str]) -> list[Stage]:
    return []
