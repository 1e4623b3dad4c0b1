"""One accuracy budget per artifact: quantize, verify and the report's selection judge INT8 by the same
budget; a miss is exit 1 with report status "budget missed" unless quantize.accept_budget_miss, and a missed
artifact is never selected as within budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import manifest, zoo

SENSITIVE = ["-m", zoo("sensitive.py:quant_sensitive"), "--shape", "x:1x3x32x32", "--exporter", "torchscript"]


def _folder(path: Path, files: int, seed: int) -> Path:
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(files):
        np.save(path / f"{i:03d}.npy", rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("budget")
    _folder(base / "calib", 8, seed=1)
    _folder(base / "eval", 16, seed=2)
    return base


def _args(data: Path, out: Path, *more: str) -> list[str | Path]:
    return [
        "compile", *SENSITIVE, "-o", out, "--precision", "fp32,int8", "--calib", data / "calib",
        "--eval", data / "eval", "--set", "quantize.int8_budget_top1=0.9",
        "--set", "quantize.fallback_max_steps=0",  # plain INT8 of this model misses any sensible budget
        # tolerances loose enough to pass: the budget alone decides
        "--set", "verify.tolerances.int8.min_cosine=0", "--set", "verify.tolerances.int8.min_top1=0",
        "--iterations", "3", "--warmup", "1", "--set", "bench.repeats=1", *more,
    ]  # fmt: skip


def test_a_missed_budget_is_exit_1_and_never_selected(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(*_args(data, out))
    assert result.code == 1, result.text
    err = " ".join(result.err.split())
    assert (
        "accuracy budget missed: int8 on onnxruntime-cpu misses its accuracy budget: top-1 agreement" in err
    )
    stages = manifest(out)["stages"]
    quantized = stages["quantize-int8"]["metrics"]["budget"]
    verified = next(r for r in stages["verify"]["metrics"]["results"] if r["artifact"] == "int8")["budget"]
    assert quantized["top1"] == verified["top1"] == 0.9 and not quantized["met"] and not verified["met"]
    assert verified["top1_measured"] < 0.9
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "budget missed"
    row = report["selection"]["runtimes"][0]
    assert row["chosen"] in {"fp32", "fp32-ort", "onnx"}
    lost = {o["artifact"]: o["reason"] for o in row["others"]}
    assert lost["int8"].startswith("outside its accuracy budget: top-1 agreement")


def test_an_accepted_miss_exits_0_but_is_still_not_within_budget(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(*_args(data, out, "--set", "quantize.accept_budget_miss=true"))
    assert result.code == 0, result.text
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"
    lost = {o["artifact"]: o["reason"] for o in report["selection"]["runtimes"][0]["others"]}
    assert "accepted by quantize.accept_budget_miss" in lost["int8"]
    assert any(
        "(accepted: quantize.accept_budget_miss)" in n
        for n in manifest(out)["stages"]["quantize-int8"]["notes"]
    )
