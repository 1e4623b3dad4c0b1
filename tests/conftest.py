"""Shared test helpers: run the CLI in-process (fast) or as a subprocess (for signals and locks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "tests" / "zoo"
INFERCC = [sys.executable, "-m", "infercc"]

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Property tests on a shared 2-core machine: a busy neighbour makes one example slow, which is not a failure.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


PIPELINE_COMMANDS = {"compile", "export", "simplify", "quantize", "build", "verify", "bench"}


def without_peer(args: list[str]) -> list[str]:
    """The torch.compile peer costs a compile per model and batch (seconds to minutes on two cores): tests
    that are not about it turn it off, as a user can (bench.peers); tests/test_inductor.py times it for real."""
    if args and args[0] in PIPELINE_COMMANDS and not any("peers" in a for a in args):
        return [*args, "--set", "bench.peers=false"]
    return args


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `infercc ARGS...` in this process through the real entry point; returns code, stdout, stderr."""
    from infercc.cli import main

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            main(without_peer([str(a) for a in args]))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    proc = subprocess.run(
        [*INFERCC, *without_peer([str(a) for a in args])],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def zoo(spec: str) -> str:
    """'cnn.py:small_cnn' -> absolute spec of a zoo model."""
    return str(ZOO / spec)


# the zoo's small CNN with a dynamic batch of 1..4
CNN_SHAPES = [
    "-m",
    zoo("cnn.py:small_cnn"),
    "--min-shape",
    "x:1x3x32x32",
    "--opt-shape",
    "x:2x3x32x32",
    "--max-shape",
    "x:4x3x32x32",
]


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def crashing_runtime():
    """ONNX Runtime CPU that segfaults loading any file named *fp16* (tests/zoo/crashing_runtime.py), registered
    as the runtime `crashing-cpu` for the test."""
    from infercc.runtimes import base

    added = "crashing-cpu" not in base.REGISTRY
    if added:
        base.register("crashing-cpu", "tests.zoo.crashing_runtime:CrashingOrt")
    yield
    if added:
        base.REGISTRY.pop("crashing-cpu")
