"""Where the GPU time goes: CUDA kernels of infercc's ORT CUDA FP16 artifact against torch.compile's, per kernel.

torch.profiler records every CUDA kernel launched in the process through CUPTI, ONNX Runtime's included, so both
sides are measured the same way. Neither side uses a CUDA graph here (its replay hides the kernels); the sums are
GPU time per call, not latency.

    python scripts/profile_gpu.py OUT MODEL [--batch 32] [--top 20]

OUT is a `scripts/bench_gpu.py build` folder; MODEL one of its models. The ORT session uses the provider options
infercc's tune stage recorded (`model.fp16.ort-cuda.json`) when there is one. Writes OUT/MODEL/profile.<batch>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def kernels(fn, runs: int = 10) -> tuple[float, list[tuple[str, float, int]]]:
    """GPU time per call in ms and (kernel, ms per call, launches per call), largest first."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    rows = []
    for event in prof.key_averages():
        gpu_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
        if gpu_us and event.device_type.name == "CUDA":
            rows.append((event.key[:110], gpu_us / 1e3 / runs, event.count // runs))
    rows.sort(key=lambda r: -r[1])
    return sum(r[1] for r in rows), rows


def ort_fn(path: Path, names: list[str], feeds: tuple, options: dict, optimized: Path | None = None):
    """ORT CUDA with I/O binding; `optimized`: where ORT saves the graph it runs (its op counts are printed)."""
    from collections import Counter

    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(
        str(path), so, providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    )
    if optimized is not None and optimized.is_file():
        ops = Counter(
            f"{n.domain}:{n.op_type}" for n in onnx.load(str(optimized), load_external_data=False).graph.node
        )
        print("ORT's optimized graph:", dict(ops.most_common()))
    binding = session.io_binding()
    types = {torch.float16: np.float16, torch.float32: np.float32, torch.int64: np.int64}
    for name, tensor in zip(names, feeds, strict=True):
        binding.bind_input(name, "cuda", 0, types[tensor.dtype], list(tensor.shape), tensor.data_ptr())
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda")
    return lambda: session.run_with_iobinding(binding)


def main() -> None:
    import bench_gpu
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--artifact", default="model.fp16.onnx")
    parser.add_argument(
        "--options", type=json.loads, help="ORT CUDA provider options (JSON), over the recorded ones"
    )
    parser.add_argument("--no-peer", action="store_true", help="ORT only (no torch.compile)")
    args = parser.parse_args()
    folder = args.out / args.model
    run_config = folder / (Path(args.artifact).stem + ".ort-cuda.json")
    options = {}
    if run_config.is_file():
        options = json.loads(run_config.read_text()).get("provider_options", {})
        options = {k: v for k, v in options.items() if k != "enable_cuda_graph"}
    if args.options is not None:
        options = args.options
    names = (
        ["input_ids", "attention_mask"]
        if bench_gpu.is_text(args.model)
        else [bench_gpu.image_input(args.model)]
    )
    feeds = bench_gpu.torch_feeds(args.model, args.batch, torch.float16)
    result = {"model": args.model, "batch": args.batch, "options": options}
    optimized = folder / f"ort-optimized.{args.batch}.onnx"
    sides = {"ort": ort_fn(folder / args.artifact, names, feeds, options, optimized)}
    torch.backends.cudnn.benchmark = True
    with torch.inference_mode():
        if not args.no_peer:
            half = getattr(bench_gpu, args.model)().cuda().eval().half()
            compiled = torch.compile(half, mode="default", dynamic=False)
            compiled(*feeds)
            sides["torch.compile"] = lambda: compiled(*feeds)
        for side, fn in sides.items():
            total, rows = kernels(fn)
            result[side] = {"gpu_ms": total, "kernels": rows[: args.top]}
            print(
                f"== {args.model} b{args.batch} {side}: {total:.3f} ms of GPU time per call {options if side == 'ort' else ''}"
            )
            for name, ms, count in rows[: args.top]:
                print(f"  {ms:8.4f} ms  x{count:<4d} {name}")
    (folder / f"profile.{args.batch}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
