"""GPU benchmark: infercc verify + bench on ONNX Runtime CUDA (I/O binding, CUDA graphs) against PyTorch eager CUDA.

Models: EfficientNet-Lite0 (real weights, the default example) and a torchvision-free ResNet-50 (random
weights), FP32 and FP16 (FP16 I/O, every op in FP16, as in shared/gpu/README.md's reference table), at batch
1 and 32. Each model runs through the real pipeline (`compile` with bench on onnxruntime-cuda), which writes
report.json/html + summary.md; ORT CUDA without a CUDA graph is then timed too, for the reference columns.

    python scripts/bench_gpu.py OUT_DIR [--iterations 100] [--repeats 3]

Writes OUT_DIR/gpu_results.json and OUT_DIR/gpu_summary.md (plus one folder per model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# shared/gpu/README.md, median of 100 runs (ms): PyTorch eager FP32, ORT FP32, FP32+graph, FP16, FP16+graph
REFERENCE = {
    ("efficientnet_lite0", 1): {
        "pytorch": 2.84,
        "fp32": 0.77,
        "fp32+graph": 0.45,
        "fp16": 0.81,
        "fp16+graph": 0.39,
    },
    ("efficientnet_lite0", 32): {
        "pytorch": 4.17,
        "fp32": 3.39,
        "fp32+graph": 3.19,
        "fp16": 2.71,
        "fp16+graph": 2.54,
    },
    ("resnet50", 1): {"pytorch": 2.95, "fp32": 1.16, "fp32+graph": 0.91, "fp16": 1.20, "fp16+graph": 0.79},
    ("resnet50", 32): {"pytorch": 5.97, "fp32": 5.88, "fp32+graph": 5.53, "fp16": 4.16, "fp16+graph": 3.83},
}


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    """ResNet-50 (v1.5: stride in the 3x3 conv), 25.6 M parameters, ~4.1 GMAC at 224x224."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(images))), 1))


def resnet50() -> nn.Module:
    torch.manual_seed(0)
    return ResNet50().eval()


MODELS = {
    "efficientnet_lite0": "infercc.models.examples:efficientnet_lite0",
    "resnet50": f"{Path(__file__).resolve()}:resnet50",
}


def run_model(name: str, out: Path, args: argparse.Namespace) -> dict:
    from infercc.config import BenchConfig, parse_config
    from infercc.pipeline.plan import Goal, execute
    from infercc.pipeline.stage import QuietEvents
    from infercc.report import write_reports
    from infercc.stages.bench import Subject, batch_feed, bench_subject
    from infercc.stages.export import load_reference
    from infercc.stages.verify import Clock

    config = parse_config(
        {
            "model": {"source": MODELS[name], "output_names": ["logits"]},
            "inputs": {
                "images": {
                    "shape": "1x3x224x224",
                    "min": "1x3x224x224",
                    "max": "32x3x224x224",
                    "low": -1.0,
                    "high": 1.0,
                }
            },
            "out": str(out / name),
            "precisions": ["fp32", "fp16"],
            "quantize": {"fp16_keep_io": False, "fp16_block_ops": []},
            "verify": {"samples": 4},
            "bench": {
                "runtimes": ["onnxruntime-cuda"],
                "batch_sizes": [1, 32],
                "warmup": 20,
                "iterations": args.iterations,
                "repeats": args.repeats,
                "cuda_graph": True,
                "budget_s": 30,
            },
            "report": {"accuracy_budget_cosine": 0.999},
        }
    )
    t0 = time.perf_counter()
    ctx, result = execute(config, Goal.compile, QuietEvents())
    report = write_reports(ctx.out, result.manifest, ctx.config)
    pipeline_s = time.perf_counter() - t0
    # ORT CUDA without CUDA graphs, for the reference table's other columns
    arts = result.manifest.artifacts()
    feed = load_reference(ctx.path(arts["reference"].path))["opt"][0]
    feeds = {b: batch_feed(feed, b) for b in (1, 32)}
    cfg = BenchConfig(warmup=20, iterations=args.iterations, repeats=args.repeats, budget_s=30)
    clock = Clock()
    plain = [
        bench_subject(
            Subject(a, "onnxruntime-cuda", ctx.path(arts[a].path), arts[a].size, a, {"cuda_graph": False}),
            feeds,
            cfg,
            clock,
        )
        for a in ("fp32", "fp16")
    ]
    return {
        "name": name,
        "report": report,
        "no_graph": plain,
        "pipeline_s": pipeline_s,
        "stage_s": {s.name: s.duration_s for s in result.manifest.stages.values()},
        "verify_failures": report["verify"]["failures"] if report.get("verify") else None,
    }


def summarise(results: list[dict], gpu: str) -> tuple[dict, str]:
    rows, lines = (
        [],
        [
            f"# GPU benchmark on {gpu}",
            "",
            "| model | batch | config | infercc p50 ms | reference ms | infercc / reference | × eager (same run) |",
            "|---|---:|---|---:|---:|---:|---:|",
        ],
    )
    for r in results:
        bench = r["report"]["bench"]
        by = {}
        for e in bench["results"]:
            key = (
                "pytorch"
                if e["artifact"] == "pytorch"
                else e["artifact"] + ("+graph" if "graph" in e.get("timing", "") else "+graph?")
            )
            by[key] = e
        for e in r["no_graph"]:
            by[e["artifact"]] = e
        for batch in (1, 32):
            ref = REFERENCE[(r["name"], batch)]
            base = by.get("pytorch", {}).get("batches", {}).get(str(batch), {}).get("p50_ms")
            for key in ("pytorch", "fp32", "fp32+graph", "fp16", "fp16+graph"):
                e = by.get(key) or by.get(key + "?")
                s = (e or {}).get("batches", {}).get(str(batch), {}) if e else {}
                p50 = s.get("p50_ms")
                row = {
                    "model": r["name"],
                    "batch": batch,
                    "config": key,
                    "p50_ms": p50,
                    "reference_ms": ref[key],
                    "ratio_to_reference": p50 / ref[key] if p50 else None,
                    "speedup_vs_eager": base / p50 if p50 and base else None,
                    "spread": s.get("spread"),
                    "p90_ms": s.get("p90_ms"),
                    "p99_ms": s.get("p99_ms"),
                    "timing": (e or {}).get("timing"),
                    "notes": (e or {}).get("notes"),
                }
                rows.append(row)
                f = lambda v, d=3: "-" if v is None else f"{v:.{d}g}"  # noqa: E731
                lines.append(
                    f"| {r['name']} | {batch} | {key} | {f(p50)} | {ref[key]} | {f(row['ratio_to_reference'])} | "
                    f"{f(row['speedup_vs_eager'])} |"
                )
    lines.append("")
    for r in results:
        floor = r["report"].get("compute_floor") or {}
        for e in floor.get("entries", []):
            if e["batch"] == 32 and e["artifact"] == "fp16":
                lines.append(
                    f"- {r['name']} FP16 batch 32: {e['p50_ms']:.3f} ms vs compute floor {e['floor_ms']:.3f} ms "
                    f"({e['ratio']:.1f}x the floor; {floor['flops_per_item'] / 1e9:.2f} GFLOP/item at "
                    f"{floor['peak_flops'] / 1e12:.0f} TFLOP/s)"
                )
        b, v = r["report"]["bench"]["overhead"], (r["report"].get("verify") or {}).get("overhead") or {}
        lines.append(
            f"- {r['name']}: bench {b['total_s']:.1f} s ({b['own_share']:.1%} outside runtime calls), "
            f"verify {v.get('total_s', 0):.1f} s ({v.get('own_share', 0):.1%} outside runtime calls); "
            f"verify failures: {len(r['verify_failures'] or [])}; skipped runtimes: "
            f"{[s['runtime'] for s in r['report']['verify']['skipped_runtimes']]}"
        )
        for note in {n for e in r["report"]["bench"]["results"] + r["no_graph"] for n in e.get("notes", [])}:
            lines.append(f"  - note: {note}")
    return {"gpu": gpu, "rows": rows}, "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="efficientnet_lite0,resnet50")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    results = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        results.append(run_model(name, args.out, args))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    data, md = summarise(results, gpu)
    data["runs"] = [{k: v for k, v in r.items() if k != "report"} for r in results]
    (args.out / "gpu_results.json").write_text(json.dumps(data, indent=1, default=str))
    (args.out / "gpu_summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
