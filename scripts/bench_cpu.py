"""CPU benchmark: EfficientNet-Lite0 at batch 1, every ONNX Runtime artifact vs PyTorch eager FP32 on the same threads.

    python scripts/bench_cpu.py OUT_DIR [--threads 2] [--precisions fp32,int8] [--iterations 50]

Runs the real pipeline (compile: export, simplify, quantize, verify, bench) and prints the bench table, the
speed-up of the fastest artifact within the accuracy budget, and the time verify/bench spent outside the
runtimes' own calls. Writes OUT_DIR/cpu_results.json and the usual report files in OUT_DIR.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from infercc.config import parse_config
    from infercc.models.examples import EFFICIENTNET_LITE0_CONFIG
    from infercc.pipeline.plan import Goal, execute
    from infercc.pipeline.stage import QuietEvents
    from infercc.report import write_reports

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = copy.deepcopy(EFFICIENTNET_LITE0_CONFIG)
    data.update(
        out=str(args.out),
        precisions=args.precisions.split(","),
        inputs={"images": {"shape": "1x3x224x224", "low": -1.0, "high": 1.0}},
        bench={
            "threads": args.threads,
            "iterations": args.iterations,
            "repeats": args.repeats,
            "warmup": 10,
            "runtimes": ["onnxruntime-cpu"],
            "budget_s": 20,
        },
    )
    config = parse_config(data)
    t0 = time.perf_counter()
    ctx, result = execute(config, Goal.compile, QuietEvents())
    report = write_reports(ctx.out, result.manifest, ctx.config)
    bench = report["bench"]
    rows = []
    for e in bench["results"]:
        s = e["batches"].get("1", {})
        rows.append(
            {
                "artifact": e["artifact"],
                "runtime": e["runtime"],
                "p50_ms": s.get("p50_ms"),
                "p90_ms": s.get("p90_ms"),
                "spread": s.get("spread"),
                "speedup": s.get("speedup"),
                "file_size": e.get("file_size"),
                "peak_rss": e.get("peak_rss"),
            }
        )
        print(
            f"{e['artifact']:>8} {e['runtime']:>16}  p50 {s.get('p50_ms', float('nan')):8.3f} ms  "
            f"x{s.get('speedup') or 1:5.2f}  spread {s.get('spread', 0):.1%}"
        )
    for r in report["selection"]["runtimes"]:
        print(f"selected on {r['runtime']}: {r['chosen']} ({r.get('speedup') or 0:.2f}x PyTorch eager)")
        for o in r["others"]:
            print(f"  {o['artifact']}: {o['reason']}")
    print("verify overhead:", (report["verify"] or {}).get("overhead"), "bench overhead:", bench["overhead"])
    print("warnings:", bench.get("warnings"))
    out = {
        "machine": report["environment"]["cpu"],
        "threads": args.threads,
        "rows": rows,
        "selection": report["selection"],
        "verify_overhead": (report["verify"] or {}).get("overhead"),
        "bench_overhead": bench["overhead"],
        "verify_failures": (report["verify"] or {}).get("failures"),
        "total_s": time.perf_counter() - t0,
    }
    (args.out / "cpu_results.json").write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
