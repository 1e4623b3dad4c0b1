"""GPU benchmark: infercc's ONNX Runtime CUDA artifacts against what a user gets without infercc, timed in the
same process: PyTorch eager FP16 and torch.compile(mode="reduce-overhead") FP16.

Models: ResNet-50, ConvNeXt-Tiny, ViT-B/16 (torchvision, random weights), BERT-base at sequence 128
(transformers BertModel from a default BertConfig, random weights), EfficientNet-Lite0 (real weights).

    python scripts/bench_gpu.py build OUT_DIR --models resnet50,...   # phase 1: infercc quantize (FP16, fused), CPU-bound
    python scripts/bench_gpu.py time OUT_DIR MODEL                   # phase 2: one model's timings, GPU alone
    python scripts/bench_gpu.py all OUT_DIR [--deadline-s S]         # both: builds in parallel, times one by one
    python scripts/bench_gpu.py resume OUT_DIR [--deadline-s S]      # times the built models not timed yet
    python scripts/bench_gpu.py report OUT_DIR                       # OUT_DIR/gpu_summary.md from the JSON files

On the lent H200 (600 s per command): building all five in parallel took 325 s (ViT-B/16 the longest), and
timing one model 1-3 min (tune + verify, the candidates, two torch.compile builds). Build in one command, then
`resume --deadline-s 400` in the next ones; write the output to a file, not through a pipe a timeout can cut.

Phase 1 runs the real pipeline (export -> simplify -> optimize-ort -> quantize-fp16 with its load check on
ORT CUDA) with FP16 inputs/outputs. Phase 2 times, per batch (1 and 32), ORT CUDA with a CUDA graph and I/O
binding under each provider-option candidate (CANDIDATES: the defaults, prefer_nhwc=1, fuse_conv_bias=1 and both;
BERT, with no convolution, only the defaults; plus the options infercc's tune stage chose), checks each
candidate's output against PyTorch FP32 (cosine >= 0.999), keeps the fastest that passes, then times the PyTorch
peers. Timing as the reference figures in the task's shared/gpu/README.md were taken: 20 warm-up runs, 3 x 100 timed runs between CUDA events, p50 of all 300, data on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("resnet50", "convnext_tiny", "vit_b_16", "bert_base", "effnet")
BATCHES = (1, 32)
CANDIDATES = {
    "default": {},
    "nhwc": {"prefer_nhwc": "1"},
    "fuse-bias": {"fuse_conv_bias": "1"},  # cuDNN frontend fuses the bias add into the convolution
    "nhwc+fuse-bias": {"prefer_nhwc": "1", "fuse_conv_bias": "1"},
}
CONV_ONLY = ("nhwc", "fuse-bias", "nhwc+fuse-bias")
MIN_COSINE = 0.999
# ResNet-50 at 224x224: 4.1 GMAC = 8.2 GFLOP per image; H200 dense FP16 tensor-core peak ~790 TFLOP/s
RESNET50_FLOP = 8.2e9
PEAK_FP16 = 790e12


def torchvision_model(arch: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(weights=None).eval()


def resnet50():
    return torchvision_model("resnet50")


def convnext_tiny():
    return torchvision_model("convnext_tiny")


def vit_b_16():
    """torchvision initialises the head of vit_b_16(weights=None) to zero (every logit 0, so no cosine or top-1
    says anything): give it random weights as a trained head would have. The timing does not change."""
    import torch

    model = torchvision_model("vit_b_16")
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def bert_base():
    import torch
    from transformers import BertConfig, BertModel

    class Bert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.m = BertModel(BertConfig(), add_pooling_layer=False).eval()

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Bert().eval()


def effnet():
    from infercc.models.examples import efficientnet_lite0

    return efficientnet_lite0()


def image_input(name: str) -> str:
    """torchvision models take `x`; the EfficientNet-Lite0 example takes `images`."""
    return "images" if name == "effnet" else "x"


def is_text(name: str) -> bool:
    return name == "bert_base"


def config_for(name: str, out: Path) -> dict:
    if is_text(name):
        inputs = {
            n: {
                "min": "1x128",
                "shape": "32x128",
                "max": "32x128",
                "dtype": "int64",
                "low": low,
                "high": high,
            }
            for n, low, high in (("input_ids", 0, 30522), ("attention_mask", 1, 2))
        }
    else:
        inputs = {
            image_input(name): {
                "min": "1x3x224x224",
                "shape": "32x3x224x224",
                "max": "32x3x224x224",
                "low": -1.0,
                "high": 1.0,
            }
        }
    source = (
        "infercc.models.examples:efficientnet_lite0"
        if name == "effnet"
        else f"{Path(__file__).resolve()}:{name}"
    )
    config = {
        "model": {"source": source, "output_names": ["out"]},
        "inputs": inputs,
        "out": str(out / name),
        "precisions": ["fp32", "fp16"],
        "quantize": {"fp16_keep_io": False},
        "verify": {"samples": 2},
    }
    return config


def build(name: str, out: Path) -> dict:
    from infercc.config import parse_config
    from infercc.pipeline.plan import Goal, execute
    from infercc.pipeline.stage import QuietEvents

    started = time.perf_counter()
    _, result = execute(parse_config(config_for(name, out)), Goal.quantize, QuietEvents())
    stages = {
        s.name: {"duration_s": s.duration_s, "notes": s.notes, "brief": (s.metrics or {}).get("brief")}
        for s in result.manifest.stages.values()
    }
    fused = (
        (result.manifest.stages.get("optimize-ort").metrics or {}).get("fused_ops")
        if "optimize-ort" in result.manifest.stages
        else None
    )
    info = {
        "model": name,
        "build_s": round(time.perf_counter() - started, 1),
        "stages": stages,
        "fused_ops": fused,
    }
    (out / name / "build.json").write_text(json.dumps(info, indent=1, default=str))
    return info


# --- timing ---------------------------------------------------------------------------------------


def cuda_time(fn, iters: int = 100, repeats: int = 3, warm: int = 20) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(warm):
            fn()
        torch.cuda.synchronize()
        times = []
        stream = torch.cuda.current_stream()
        for _ in range(repeats):
            for _ in range(iters):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                fn()
                end.record(stream)
                end.synchronize()
                times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def torch_feeds(name: str, batch: int, dtype):
    import torch

    gen = torch.Generator().manual_seed(batch)
    if is_text(name):
        ids = torch.randint(0, 30522, (batch, 128), generator=gen)
        return (ids.cuda(), torch.ones(batch, 128, dtype=torch.int64, device="cuda"))
    return ((torch.rand(batch, 3, 224, 224, generator=gen) * 2 - 1).to("cuda", dtype),)


def cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def time_ort(path: Path, names: list[str], feeds: tuple, options: dict, reference) -> dict:
    """One candidate: CUDA graph + I/O binding on PyTorch's stream; its output cosine to PyTorch FP32."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from infercc.onnxrt.runtime import OrtCUDA

    result: dict = {"options": options}
    np_feeds = {n: t.cpu().numpy() for n, t in zip(names, feeds, strict=True)}
    try:
        with OrtCUDA(path, cuda_graph=True, provider_options=options) as rt:
            out = rt.infer(np_feeds)
            result["cosine"] = cosine(next(iter(out.values())), reference)
            session = rt._graph_session(rt.check_feeds(np_feeds)) or rt.session
            result["cuda_graph"] = session is not rt.session
            binding = session.io_binding()
            keep = []
            for n, t in zip(names, feeds, strict=True):
                t = t.contiguous()
                keep.append(t)
                binding.bind_input(n, "cuda", 0, _np_dtype(t), list(t.shape), t.data_ptr())
            for o in session.get_outputs():
                shape = next(iter(out.values())).shape
                buf = torch.empty(
                    shape, dtype=torch.float16 if "16" in o.type else torch.float32, device="cuda"
                )
                keep.append(buf)
                binding.bind_output(o.name, "cuda", 0, _np_dtype(buf), list(buf.shape), buf.data_ptr())
            session.run_with_iobinding(binding)
            result["p50_ms"] = cuda_time(lambda: session.run_with_iobinding(binding))
            result["notes"] = rt.notes
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    del ort, np
    return result


def _np_dtype(t):
    import numpy as np
    import torch

    return {torch.float16: np.float16, torch.float32: np.float32, torch.int64: np.int64}[t.dtype]


def tune(name: str, out: Path) -> dict:
    """infercc's own tune-ort-cuda stage (provider options per artifact at the opt shape) and verify on ORT CUDA."""
    from infercc.config import parse_config
    from infercc.errors import InferccError
    from infercc.pipeline.plan import Goal, execute
    from infercc.pipeline.stage import QuietEvents

    config = config_for(name, out)
    config["verify"]["runtimes"] = ["onnxruntime-cuda"]
    config["bench"] = {"enabled": False}
    started = time.perf_counter()
    info: dict = {}
    try:
        _, result = execute(parse_config(config), Goal.verify, QuietEvents())
        stages = result.manifest.stages
        info["tune"] = (
            (stages["tune-ort-cuda"].metrics or {}).get("artifacts") if "tune-ort-cuda" in stages else None
        )
        info["verify"] = (stages["verify"].metrics or {}).get("brief") if "verify" in stages else None
    except InferccError as exc:
        info["error"] = exc.message
    info["tune_verify_s"] = round(time.perf_counter() - started, 1)
    run_config = out / name / "model.fp16.ort-cuda.json"
    if run_config.is_file():
        chosen = json.loads(run_config.read_text())
        info["fp16_options"] = {
            k: v for k, v in chosen["provider_options"].items() if k != "enable_cuda_graph"
        }
        info["fp16_chosen"] = chosen["chosen"]
    return info


def time_model(name: str, out: Path) -> dict:
    import torch

    tuned = tune(name, out)
    print(name, "tune", json.dumps(tuned, default=str)[:2000], flush=True)
    torch.backends.cudnn.benchmark = True
    model = globals()[name]().cuda().eval()
    folder = out / name
    fp16 = folder / "model.fp16.onnx"
    res: dict = {"model": name, "gpu": torch.cuda.get_device_name(0), "batches": {}, "infercc_tune": tuned}
    trials = {k: v for k, v in CANDIDATES.items() if k not in CONV_ONLY or name != "bert_base"}
    if tuned.get("fp16_options") is not None:
        trials["tuned"] = tuned["fp16_options"]
    names = ["input_ids", "attention_mask"] if is_text(name) else [image_input(name)]
    for batch in BATCHES:
        row: dict = {}
        with torch.inference_mode():
            reference = model(*torch_feeds(name, batch, torch.float32)).float().cpu().numpy()
        ort_feeds = torch_feeds(name, batch, torch.float16)
        cands = {k: time_ort(fp16, names, ort_feeds, v, reference) for k, v in trials.items()}
        passing = {k: c for k, c in cands.items() if c.get("p50_ms") and c.get("cosine", 0) >= MIN_COSINE}
        row["candidates"] = cands
        row["selected"] = min(passing, key=lambda k: passing[k]["p50_ms"]) if passing else None
        row["infercc_ms"] = passing[row["selected"]]["p50_ms"] if passing else None
        fp32_feeds = torch_feeds(name, batch, torch.float32)
        row["eager_fp32_ms"] = cuda_time(lambda f=fp32_feeds: model(*f), iters=50)
        res["batches"][str(batch)] = row
        print(name, batch, json.dumps(row, default=str), flush=True)
    half = model.half()
    for batch in BATCHES:
        row = res["batches"][str(batch)]
        feeds = torch_feeds(name, batch, torch.float16)
        row["eager_fp16_ms"] = cuda_time(lambda f=feeds: half(*f))
        torch._dynamo.reset()
        compiled = torch.compile(half, mode="reduce-overhead", dynamic=False)
        t0 = time.time()
        with torch.inference_mode():
            compiled(*feeds)
            torch.cuda.synchronize()
        row["compile_s"] = round(time.time() - t0, 1)
        row["compile_fp16_ms"] = cuda_time(lambda c=compiled, f=feeds: c(*f))
        if row["infercc_ms"]:
            row["ratio_to_compile"] = row["infercc_ms"] / row["compile_fp16_ms"]
        print(name, batch, "peers", row["eager_fp16_ms"], row["compile_fp16_ms"], flush=True)
    if name == "resnet50" and res["batches"]["32"].get("infercc_ms"):
        floor_ms = 32 * RESNET50_FLOP / PEAK_FP16 * 1e3
        res["compute_floor"] = {"floor_ms": floor_ms, "ratio": res["batches"]["32"]["infercc_ms"] / floor_ms}
    (folder / "timing.json").write_text(json.dumps(res, indent=1, default=str))
    return res


# --- report ---------------------------------------------------------------------------------------


def report(out: Path) -> str:
    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}g}"

    lines = [
        "| model | batch | eager FP32 | eager FP16 | torch.compile FP16 | infercc ORT CUDA FP16 | options | infercc / compile | cosine | fused |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    notes = []
    for name in MODELS:
        tpath, bpath = out / name / "timing.json", out / name / "build.json"
        build_info = json.loads(bpath.read_text()) if bpath.is_file() else {}
        if not tpath.is_file():
            lines.append(f"| {name} | - | not timed | | | | | | | |")
            continue
        t = json.loads(tpath.read_text())
        fused = ", ".join(f"{n} {op}" for op, n in sorted((build_info.get("fused_ops") or {}).items())) or "-"
        for batch, row in t["batches"].items():
            sel = row.get("selected")
            cos = row["candidates"][sel]["cosine"] if sel else None
            lines.append(
                f"| {name} | {batch} | {f(row.get('eager_fp32_ms'))} | {f(row.get('eager_fp16_ms'))} | "
                f"{f(row.get('compile_fp16_ms'))} | {f(row.get('infercc_ms'))} | {sel or 'none passed'} | "
                f"{f(row.get('ratio_to_compile'))} | {f(cos, 6)} | {fused} |"
            )
            for k, c in row["candidates"].items():
                if c.get("error") or c.get("notes"):
                    notes.append(
                        f"- {name} batch {batch} {k}: {c.get('error') or '; '.join(c['notes'])[:300]}"
                    )
        tuned = t.get("infercc_tune") or {}
        notes.append(
            f"- {name}: infercc tune-ort-cuda chose {tuned.get('fp16_chosen')} for model.fp16.onnx "
            f"(all artifacts: {json.dumps(tuned.get('tune'), default=str)[:400]}); verify on ORT CUDA: "
            f"{tuned.get('verify') or tuned.get('error')}; tune+verify {tuned.get('tune_verify_s')} s; "
            f"build {build_info.get('build_s')} s"
        )
        if t.get("compute_floor"):
            cf = t["compute_floor"]
            notes.append(
                f"- resnet50 FP16 batch 32: {cf['ratio']:.1f}x the compute floor ({cf['floor_ms']:.3f} ms)"
            )
        for stage, s in (build_info.get("stages") or {}).items():
            for note in s.get("notes") or []:
                notes.append(f"- {name} {stage}: {note[:300]}")
    text = "\n".join([*lines, "", *notes]) + "\n"
    (out / "gpu_summary.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["build", "time", "all", "resume", "report"])
    parser.add_argument("out", type=Path)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=1e9,
        help="`all`, `resume`: time no new model after this many seconds (one model takes 1-3 min)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    started = time.perf_counter()
    if args.command == "build":
        for name in models if not args.model else [args.model]:
            print(json.dumps(build(name, args.out), default=str), flush=True)
    elif args.command == "time":
        time_model(args.model, args.out)
    elif args.command == "report":
        print(report(args.out))
    elif args.command == "resume":  # time every built model that has no timing yet
        me = [sys.executable, str(Path(__file__).resolve())]
        for name in models:
            if (args.out / name / "build.json").is_file() and not (args.out / name / "timing.json").is_file():
                if time.perf_counter() - started > args.deadline_s:
                    print(f"not timed (over --deadline-s): {name}; run `resume` next", flush=True)
                    continue
                print(f"timed {name}: exit {subprocess.call([*me, 'time', str(args.out), name])}", flush=True)
        print(report(args.out))
    else:
        me = [sys.executable, str(Path(__file__).resolve())]
        env = {**os.environ, "CUDA_MODULE_LOADING": "LAZY"}
        builds = []
        for name in models:
            with open(args.out / f"{name}.build.log", "w") as log:
                builds.append(
                    subprocess.Popen(
                        [*me, "build", str(args.out), name], stdout=log, stderr=subprocess.STDOUT, env=env
                    )
                )
        for name, proc in zip(models, builds, strict=True):  # all built before any timing: no CPU contention
            proc.wait()
            print(f"built {name}: exit {proc.returncode}", flush=True)
        for name, proc in zip(models, builds, strict=True):
            if time.perf_counter() - started > args.deadline_s:
                print(f"not timed (over --deadline-s): {name}; run `resume` next", flush=True)
                continue
            if proc.returncode == 0:
                code = subprocess.call([*me, "time", str(args.out), name], env=env)
                print(f"timed {name}: exit {code}", flush=True)
        print(report(args.out))


if __name__ == "__main__":
    main()
