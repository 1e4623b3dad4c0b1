"""Would ONNX Runtime's offline-optimized graph help as the artifact? Session creation and latency of an infercc
ONNX artifact as written, against the graph ONNX Runtime saves after its own optimizations
(SessionOptions.optimized_model_filepath), loaded with its optimizations off.

    python scripts/ort_offline.py ARTIFACT.onnx [...] [--provider cpu|cuda] [--level extended|all] [--batch 1]

Prints, per artifact, the median of 5 session creations and of 50 runs for each form. `extended` keeps the saved
graph portable across machines of the same provider; `all` adds layout changes for this machine's hardware.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

LEVELS = {"extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
TYPES = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _feeds(session, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in spec.shape]
        dtype = TYPES.get(spec.type, np.float32)
        feeds[spec.name] = (
            rng.integers(0, 2, shape).astype(dtype)
            if dtype in (np.int64, np.int32)
            else (rng.standard_normal(shape).astype(dtype))
        )
    return feeds


def _measure(ort, path: Path, level, providers: list, batch: int) -> tuple[float, float]:
    def create():
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        return ort.InferenceSession(str(path), options, providers=providers)

    starts = []
    for _ in range(5):
        t = time.perf_counter()
        session = create()
        starts.append(time.perf_counter() - t)
    feeds = _feeds(session, batch)
    for _ in range(5):
        session.run(None, feeds)
    runs = []
    for _ in range(50):
        t = time.perf_counter()
        session.run(None, feeds)
        runs.append(time.perf_counter() - t)
    return statistics.median(starts) * 1e3, statistics.median(runs) * 1e3


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--level", choices=list(LEVELS), default="extended")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if args.provider == "cuda"
        else ["CPUExecutionProvider"]
    )
    level = getattr(ort.GraphOptimizationLevel, LEVELS[args.level])
    print("| artifact | form | session creation ms | run p50 ms |\n|---|---|---:|---:|")
    for path in args.artifacts:
        with tempfile.TemporaryDirectory() as scratch:
            saved = Path(scratch) / "optimized.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = level
            options.optimized_model_filepath = str(saved)
            ort.InferenceSession(str(path), options, providers=providers)
            rows = {
                "as written, ORT optimizes at load": _measure(
                    ort, path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, providers, args.batch
                ),
                f"ORT-optimized offline ({args.level}), loaded as is": _measure(
                    ort, saved, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, providers, args.batch
                ),
            }
        for form, (start_ms, run_ms) in rows.items():
            print(f"| {path} | {form} | {start_ms:.1f} | {run_ms:.2f} |")


if __name__ == "__main__":
    main()
