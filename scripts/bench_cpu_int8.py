"""CPU INT8 trade-off: EfficientNet-Lite0 at batch 1, every INT8 variant on ONNX Runtime and OpenVINO, against
ORT FP32, with top-1 agreement on the held-out views of configs/efficientnet_lite0_int8.yaml.

    python scripts/bench_cpu_int8.py OUT_DIR [--threads 2] [--rounds 7] [--iters 40] [--write-docs]

Runs infercc's own quantize pipeline on that config (cached in OUT_DIR), then writes the variants under study
beside it (plain INT8 without the fallback; each with empirical bias correction) and measures every
(artifact, runtime, inference precision) subject: accuracy against the FP32 graph on ORT over the 168 held-out
views, and latency in interleaved rounds (each round times every subject once, so a disturbance hits all of them;
ratios are per round, then the median). The machine is shared: the load average before and after is recorded,
and rounds whose ORT FP32 time is > 15% off its median are reported as disturbed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "efficientnet_lite0_int8.yaml"
BIAS_BATCHES = 4  # calibration batches (of up to 8 views) the bias correction measures on


@dataclass
class Subject:
    label: str
    path: Path
    runtime: str
    options: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    rounds_ms: list[float] = field(default_factory=list)


def build(out: Path, threads: int) -> tuple[Any, Any, Any]:
    """infercc's quantize pipeline on the INT8 config: (context, calibration data, evaluation data)."""
    from infercc.config import load_yaml, parse_config
    from infercc.pipeline.plan import Goal, execute
    from infercc.pipeline.stage import QuietEvents
    from infercc.stages.evaluation import datasets

    data = load_yaml(CONFIG)
    data.update(out=str(out), precisions=["fp32", "int8"])
    data.setdefault("bench", {})["threads"] = threads
    ctx, _ = execute(parse_config(data), Goal.quantize, QuietEvents())
    calib, evaluate = datasets(ctx)
    return ctx, calib, evaluate


def variants(out: Path, calib: Any, threads: int) -> dict[str, Path]:
    """The INT8 files under study, written once into OUT/variants."""
    from infercc.config import CalibrationMethod
    from infercc.quantization.bias_correction import correct_biases
    from infercc.quantization.int8 import write_qdq

    folder = out / "variants"
    folder.mkdir(exist_ok=True)
    files = {"int8 (infercc, fallback)": out / "model.int8.onnx"}
    plain = folder / "int8.plain.onnx"
    if not plain.is_file():
        write_qdq(
            out / "model.fp32.onnx",
            out / "calibration.json",
            plain,
            form="onnxruntime",
            method=CalibrationMethod.minmax,
            per_channel=True,
            exclude_nodes=[],
            exclude_ops=[],
        )
    files["int8 plain (no fallback)"] = plain
    feeds = list(calib.batches(limit=BIAS_BATCHES))
    for label, source in list(files.items()):
        corrected = folder / (source.stem + ".bc.onnx")
        if not corrected.is_file():
            info = correct_biases(out / "model.fp32.onnx", source, corrected, feeds, threads=threads)
            print(f"bias correction of {source.name}: {info}", file=sys.stderr)
        files[label + " + bias correction"] = corrected
    return files


def subjects(out: Path, files: dict[str, Path], bf16: bool) -> list[Subject]:
    fp32 = out / "model.fp32.onnx"
    found = [
        Subject("fp32", fp32, "onnxruntime-cpu"),
        Subject("fp32", fp32, "openvino-cpu", {"inference_precision": "f32"}),
    ]
    if bf16:
        found.append(Subject("fp32 @ bf16 hint", fp32, "openvino-cpu", {"inference_precision": "bf16"}))
    for label, path in files.items():
        found.append(Subject(label, path, "onnxruntime-cpu"))
        found.append(Subject(label, path, "openvino-cpu", {"inference_precision": "f32"}))
        if bf16 and "plain" not in label:
            found.append(
                Subject(label + " @ bf16 hint", path, "openvino-cpu", {"inference_precision": "bf16"})
            )
    return found


def measure_accuracy(subject: Subject, evaluate: Any, reference: Any, threads: int) -> None:
    from infercc.quantization.accuracy import Outputs, accuracy
    from infercc.runtimes.base import get_runtime

    values: dict[str, list[np.ndarray]] = {}
    with get_runtime(subject.runtime, subject.path, threads=threads, **subject.options) as runtime:
        for feed in evaluate.batches():
            for name, value in runtime.infer(feed).items():
                values.setdefault(name, []).append(value)
    outputs = Outputs({n: np.concatenate(v) for n, v in values.items()}, None, [])
    subject.figures = accuracy(outputs, reference)


def time_rounds(
    found: list[Subject], feed: dict[str, np.ndarray], threads: int, rounds: int, iters: int
) -> None:
    from infercc.runtimes.base import get_runtime

    opened = []
    for subject in found:
        runtime = get_runtime(subject.runtime, subject.path, threads=threads, **subject.options)
        opened.append(runtime.__enter__())
    try:
        for rt in opened:
            rt.time_infer(feed, 3, 10)
        for _ in range(rounds):
            for subject, rt in zip(found, opened, strict=True):
                subject.rounds_ms.append(float(np.median(rt.time_infer(feed, iters, 2))) * 1e3)
    finally:
        for rt in opened:
            rt.__exit__(None, None, None)


def table(found: list[Subject]) -> tuple[list[str], list[str]]:
    base = np.asarray(found[0].rounds_ms)
    disturbed = [i for i, ms in enumerate(base) if abs(ms / np.median(base) - 1) > 0.15]
    rows = []
    for s in found:
        ms = np.asarray(s.rounds_ms)
        ratio = float(np.median(base / ms))
        top1 = s.figures.get("top1")
        rows.append(
            f"| {s.label} | {s.runtime} | {np.median(ms):.2f} | {ratio:.2f}x | "
            f"{'-' if top1 is None else f'{top1:.1%}'} | {s.figures.get('cosine', float('nan')):.4f} | "
            f"{(ms.max() - ms.min()) / np.median(ms):.0%} |"
        )
    notes = [f"rounds disturbed (ORT FP32 > 15% off its median): {len(disturbed)} of {len(base)}"]
    return rows, notes


def write_docs(text: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    current = docs.read_text()
    begin, end = "<!-- BEGIN cpu-int8 -->", "<!-- END cpu-int8 -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    docs.write_text(current)


def main() -> None:
    from infercc.openvino.capability import bf16_support, cpu_flags
    from infercc.quantization.accuracy import run_model

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    _ctx, calib, evaluate = build(args.out, args.threads)
    files = variants(args.out, calib, args.threads)
    found = subjects(args.out, files, bf16_support().available)
    reference = run_model(args.out / "model.fp32.onnx", evaluate, threads=args.threads)
    for s in found:
        measure_accuracy(s, evaluate, reference, args.threads)
        print(
            f"{s.label} on {s.runtime}: top-1 {s.figures['top1']:.2%} cos {s.figures['cosine']:.4f}",
            file=sys.stderr,
        )
    feed = {n: v[:1] for n, v in next(iter(evaluate.batches())).items()}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    time_rounds(found, feed, args.threads, args.rounds, args.iters)
    rows, notes = table(found)
    load_after = os.getloadavg()
    flags = sorted(
        f for f in cpu_flags() if f in {"amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f"}
    )
    text = "\n".join(
        [
            "## CPU INT8 trade-off: EfficientNet-Lite0, batch 1 (`scripts/bench_cpu_int8.py`)",
            "",
            f"Measured {started} by `python scripts/bench_cpu_int8.py OUT --threads {args.threads} --rounds "
            f"{args.rounds} --iters {args.iters} --write-docs`. Machine: {platform.processor() or 'x86-64'} "
            f"({_cpu_name()}), {os.cpu_count()} logical cores, flags {', '.join(flags)}; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (a shared machine: other jobs ran alongside). "
            f"{args.threads} threads for every runtime; p50 = median of {args.rounds} interleaved rounds of "
            f"{args.iters} runs; 'vs ORT FP32' = median over rounds of the per-round ratio. Top-1 agreement and "
            f"cosine against the FP32 graph on ORT over {reference.values[next(iter(reference.values))].shape[0]} "
            "held-out views (configs/efficientnet_lite0_int8.yaml).",
            "",
            "| artifact | runtime | p50 ms | vs ORT FP32 | top-1 agreement | cosine | round spread |",
            "|---|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *[f"- {n}" for n in notes],
        ]
    )
    print(text)
    if args.write_docs:
        write_docs(text)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
