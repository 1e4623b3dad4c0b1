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
    parser.add_argument(
        "--write-docs", action="store_true", help="update the cpu section of docs/benchmarks.md"
    )
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
    if args.write_docs:
        write_docs_section(args, report, rows, out)


def write_docs_section(args: argparse.Namespace, report: dict, rows: list[dict], out: dict) -> None:
    """Replace the text between the cpu markers of docs/benchmarks.md with this run's figures."""
    import os
    import platform

    env = report["environment"]
    versions = env.get("packages", {})
    verify = report.get("verify") or {}
    fails = verify.get("failures") or []
    lines = [
        "## CPU: EfficientNet-Lite0, batch 1 (`scripts/bench_cpu.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `python scripts/bench_cpu.py OUT --precisions {args.precisions} "
        f"--iterations {args.iterations} --write-docs`. Machine: {env['cpu']}, {env['cpu_count']} logical cores "
        f"({', '.join(env.get('cpu_flags') or [])}), load average at the end {os.getloadavg()[0]:.1f}; "
        f"Python {platform.python_version()}, torch {versions.get('torch')}, onnxruntime {versions.get('onnxruntime')}. "
        f"{args.threads} threads for every runtime, warm-up 10, {args.repeats} repeats; the real weights; the "
        "built-in example's calibration and evaluation photos. PyTorch eager FP32 on the same threads is the "
        "baseline, timed in the same run.",
        "",
        "| artifact | runtime | p50 ms | p90 ms | × PyTorch eager | repeat spread |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['artifact']} | {r['runtime']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['speedup'] or 1:.2f} | {r['spread']:.0%} |"
        )
    lines.append("")
    for sel in report["selection"]["runtimes"]:
        lines.append(
            f"Selection on {sel['runtime']} (budget: {report['selection'].get('budget')}): **{sel['chosen']}**, "
            f"{sel.get('speedup') or 0:.1f}× PyTorch eager. Others: "
            + "; ".join(f"{o['artifact']}: {o['reason']}" for o in sel["others"])
            + "."
        )
    vo, bo = out["verify_overhead"] or {}, out["bench_overhead"] or {}
    lines += [
        "",
        f"Verify: {'all artifacts within tolerance' if not fails else f'{len(fails)} failures'}. Time outside the "
        f"runtimes' own calls: verify {vo.get('own_share', 0):.1%} ({vo.get('own_s')} s of {vo.get('total_s')} s; "
        f"reading the evaluation photos took another {vo.get('data_s', 0)} s), bench {bo.get('own_share', 0):.2%} "
        f"({bo.get('own_s')} s of {bo.get('total_s')} s).",
    ]
    if report["bench"].get("warnings"):
        lines.append("")
        lines.append("Noise warnings from bench: " + "; ".join(report["bench"]["warnings"]) + ".")
    docs = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    text = docs.read_text()
    begin, end = "<!-- BEGIN cpu -->", "<!-- END cpu -->"
    start, stop = text.index(begin) + len(begin), text.index(end)
    docs.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[stop:])
    print(f"wrote the cpu section of {docs}")


if __name__ == "__main__":
    main()
