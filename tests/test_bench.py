"""bench on a real ONNX Runtime session: sane percentiles, baseline ratios, report with plots."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from infercc.config import BenchConfig
from infercc.stages.bench import Subject, bench_subject, latency_stats, noise_warnings
from infercc.stages.verify import Clock
from tests.conftest import zoo


def test_latency_stats_percentiles() -> None:
    stats = latency_stats([[0.001] * 50 + [0.002] * 50, [0.001] * 100], batch=4)
    assert stats["iterations"] == 200 and stats["min_ms"] == pytest.approx(1.0)
    assert stats["p50_ms"] == pytest.approx(1.0) and stats["p90_ms"] == pytest.approx(2.0)
    assert stats["throughput"] == pytest.approx(4000.0)
    assert stats["spread"] == pytest.approx(0.5)


def test_noise_warning_when_repeats_overlap() -> None:
    a = {"artifact": "a", "runtime": "r", "batches": {"1": latency_stats([[0.001], [0.0012]], 1)}}
    b = {"artifact": "b", "runtime": "r", "batches": {"1": latency_stats([[0.0011], [0.0013]], 1)}}
    warnings = noise_warnings([a, b], max_spread=1.0)
    assert any("cannot rank" in w for w in warnings)


def test_bench_real_ort_session(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from infercc.config import ModelConfig
    from infercc.models.sources import load_module, parse_source

    module = load_module(parse_source(zoo("cnn.py:small_cnn")), ModelConfig(source=zoo("cnn.py:small_cnn")))
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "n"}},
        dynamo=False,
    )
    import numpy as np

    feeds = {1: {"x": np.zeros((1, 3, 32, 32), np.float32)}, 4: {"x": np.zeros((4, 3, 32, 32), np.float32)}}
    cfg = BenchConfig(warmup=2, iterations=15, repeats=2, threads=1)
    clock = Clock()
    entry = bench_subject(
        Subject("fp32", "onnxruntime-cpu", path, path.stat().st_size, "fp32", {"threads": 1}),
        feeds,
        cfg,
        clock,
    )
    assert entry["error"] is None
    for b in ("1", "4"):
        s = entry["batches"][b]
        assert s["iterations"] == 30
        assert 0 < s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
        assert s["min_ms"] <= s["mean_ms"] <= s["max_ms"]
    assert entry["batches"]["4"]["p50_ms"] > entry["batches"]["1"]["p50_ms"] * 0.8
    assert entry["peak_rss"] and entry["peak_rss"] > 10_000_000
    summary = clock.summary()
    assert summary["runtime_s"] > 0 and 0 <= summary["own_share"] < 0.5


def test_compile_ends_with_verify_bench_report(cli, tmp_path: Path) -> None:
    out = tmp_path / "c"
    result = cli(
        "compile",
        "--model",
        zoo("cnn.py:small_cnn"),
        "--min-shape",
        "x:1x3x32x32",
        "--opt-shape",
        "x:1x3x32x32",
        "--max-shape",
        "x:4x3x32x32",
        "-o",
        out,
        "--iterations",
        "5",
        "--warmup",
        "1",
        "--set",
        "bench.repeats=2",
        "--threads",
        "1",
        "-q",
    )
    assert result.code == 0, result.err
    report = json.loads((out / "report.json").read_text())
    from infercc.report import load_schema

    jsonschema.validate(report, load_schema())
    assert report["bench"]["batch_sizes"] == [1, 4]
    assert report["bench"]["timed_shapes"] == {"1": {"x": "1x3x32x32"}, "4": {"x": "4x3x32x32"}}
    (line,) = result.out.splitlines()  # -q: the result in one line
    assert line.startswith("ok: onnx, fp32, fp32-ort verified; fastest ") and line.endswith(f"; in {out}")
    bench = json.loads((out / "manifest.json").read_text())["stages"]["bench"]["metrics"]
    assert bench["brief"].startswith("x 1x3x32x32; batch sweep 1, 4 at the same other dims: ")
    names = {(r["artifact"], r["runtime"]) for r in report["bench"]["results"]}
    assert ("pytorch", "pytorch-cpu") in names and ("fp32", "onnxruntime-cpu") in names
    fp32 = next(r for r in report["bench"]["results"] if r["artifact"] == "fp32")
    eager = next(r for r in report["bench"]["results"] if r["artifact"] == "pytorch")
    timed, baseline = fp32["batches"]["1"], eager["batches"]["1"]
    # a busy machine gives no ratio, and says so: the test suite itself may be that busy machine
    assert timed.get("speedup", 0) > 0 or timed.get("disturbed") or baseline.get("disturbed"), (
        timed,
        baseline,
    )
    assert fp32["threads"] == 1
    assert report["selection"]["runtimes"][0]["chosen"] in {"fp32", "fp32-ort", "onnx"}
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 2 and "Latency vs batch" in html and "Accuracy vs speed" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    assert "| artifact |" in (out / "summary.md").read_text()
    assert report["bench"]["overhead"]["own_share"] < 0.5


def test_a_cpu_hog_makes_the_ratios_disturbed_not_numbers(cli, tmp_path: Path) -> None:
    """Real busy child processes compete for the cores while the bench rounds run interleaved: every round
    records CPU time and foreign load, and no ratio reaches the summary, the selection or the report."""
    import os
    import subprocess
    import sys

    out = tmp_path / "b"
    model = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "--exporter", "torchscript"]
    assert cli("verify", *model, "-o", out, "-q").code == 0  # everything but the bench, on a quieter machine
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        result = cli(
            "bench", *model, "-o", out, "--duration", "0.25", "--warmup", "1", "--set", "bench.repeats=2"
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.code == 0, result.text
    bench = json.loads((out / "manifest.json").read_text())["stages"]["bench"]["metrics"]
    assert bench["disturbed"] and bench["load_average"]["cpus"] == os.cpu_count()
    order = [(e["artifact"], e["runtime"]) for e in bench["results"]]
    assert order[0] == ("pytorch", "pytorch-cpu") and len(order) >= 3
    for entry in bench["results"]:
        stats = entry["batches"]["1"]
        assert stats["disturbed"] and "speedup" not in stats
        assert len(stats["rounds"]) == 2 and all(r["cpu_s"] is not None for r in stats["rounds"])
    assert max(r["foreign_share"] for e in bench["results"] for r in e["batches"]["1"]["rounds"]) > 0.25
    assert "(disturbed)" in result.out and "x)" not in result.out.split("bench")[-1]
    report = json.loads((out / "report.json").read_text())
    row = report["selection"]["runtimes"][0]
    assert row["disturbed"] and not row.get("speedup")
    assert "disturbed" in (out / "summary.md").read_text()


def test_selection_gives_no_ratio_to_a_disturbed_torch_compile_timing():
    from infercc.report import _headline

    chosen = {"artifact": "onnx", "runtime": "onnxruntime-cpu", "backend": "onnxruntime", "precision": "fp32"}
    chosen["p50_ms"] = 8.0
    entries = [
        {"artifact": "pytorch", "batches": {"1": {"p50_ms": 24.0}}},
        {
            "artifact": "torch.compile",
            "batches": {"1": {"p50_ms": 17.6, "disturbed": "round 1: other processes"}},
        },
    ]
    head = _headline("cpu", 1, chosen, entries)
    assert head["vs_compile"] is None and head["vs_eager"] == 3.0
    assert head["compile_p50_ms"] == 17.6
    assert "beats" not in head["verdict"] and "torch.compile's timing was disturbed" in head["verdict"]
    entries[1]["batches"]["1"].pop("disturbed")
    assert "beats torch.compile" in _headline("cpu", 1, chosen, entries)["verdict"]
