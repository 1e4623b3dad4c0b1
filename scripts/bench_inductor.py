"""infercc's pick across backends against the torch.compile peer, timed in the same run on the same device.

For each model: `infercc compile --target onnxruntime,inductor` at the given batches, with the torch.compile
peer on (bench.peers), then the report's per-device selection is written as one table into
docs/benchmarks.md (between the `inductor-bench` markers), with compile times.

    python scripts/bench_inductor.py --models efficientnet_lite0 --batches 1            # the CPU target
    python scripts/bench_inductor.py --models resnet50,convnext_tiny,vit_b_16,bert_base,efficientnet_lite0 \
        --batches 1,32 --precision fp16                                                   # the GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- inductor-bench:begin -->", "<!-- inductor-bench:end -->"
IMAGE = [
    "--min-shape",
    "images:1x3x224x224",
    "--opt-shape",
    "images:1x3x224x224",
    "--max-shape",
    "images:{max}x3x224x224",
]
MODELS = {
    "efficientnet_lite0": ["-m", "infercc.models.examples:efficientnet_lite0", *IMAGE, "--val-range", "images:[-1,1]"],
    "resnet50": ["-m", "torchvision:resnet50", "--model-arg", "weights=null", *IMAGE],
    "convnext_tiny": ["-m", "torchvision:convnext_tiny", "--model-arg", "weights=null", *IMAGE],
    "vit_b_16": ["-m", "torchvision:vit_b_16", "--model-arg", "weights=null", *IMAGE],
    "bert_base": [
        "-m", f"{Path(__file__).resolve()}:bert_base",
        "--min-shape", "input_ids:1x128,attention_mask:1x128", "--opt-shape", "input_ids:1x128,attention_mask:1x128",
        "--max-shape", "input_ids:{max}x128,attention_mask:{max}x128",
        "--dtype", "input_ids:int64,attention_mask:int64", "--val-range", "input_ids:[0,30522],attention_mask:[1,2]",
    ],
}  # fmt: skip


def bert_base():
    import torch
    from transformers import BertConfig, BertModel

    class Bert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(BertConfig())

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    torch.manual_seed(0)
    return Bert().eval()


def run_model(name: str, args: argparse.Namespace) -> dict:
    out = Path(args.out) / name
    batches = [int(b) for b in args.batches.split(",")]
    cmd = [sys.executable, "-m", "infercc", "compile", *(a.format(max=max(batches)) for a in MODELS[name])]
    cmd += ["--target", "onnxruntime,inductor", "--precision", args.precision, "--out", str(out), "--json"]
    cmd += ["--batch-sizes", args.batches, "--iterations", str(args.iterations), "--set", "verify.samples=2"]
    cmd += ["--set", f"bench.peer_compile_s={args.peer_compile_s}", "--set", "bench.budget_s=20"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    print(f"{name}: exit {run.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
    if run.returncode not in (0, 1, 4):
        print(run.stderr[-3000:], flush=True)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else {}
    return {
        "model": name,
        "exit": run.returncode,
        "report": report,
        "manifest": manifest,
        "stderr": run.stderr[-600:],
    }


def rows(result: dict) -> list[str]:
    stages = result["manifest"].get("stages", {})
    compile_s = {
        n: s["metrics"].get("compile_s") for n, s in stages.items() if n.startswith("compile-inductor")
    }
    peer = next(
        (
            r
            for r in (result["report"].get("bench") or {}).get("results", [])
            if r["artifact"] == "torch.compile"
        ),
        {},
    )
    lines = []
    for d in (result["report"].get("selection") or {}).get("devices", []):
        for batch, head in d["batches"].items():
            chosen = head.get("chosen") or {}
            peer_s = (peer.get("compile_s") or {}) if peer.get("device") == d["device"] else {}
            peer_compile = next((v for k, v in peer_s.items() if k.startswith(f"{batch}x")), None)
            lines.append(
                f"| {result['model']} | {d['device']} | {batch} | "
                f"{chosen.get('artifact', '-')} on {chosen.get('runtime', '-')} | {_ms(chosen.get('p50_ms'))} | "
                f"{_ms(head.get('compile_p50_ms'))} | {_ms(head.get('eager_p50_ms'))} | {_x(head.get('vs_compile'))} | "
                f"{_x(head.get('vs_eager'))} | {_s(sum(v for v in compile_s.values() if v) or None)} | {_s(peer_compile)} |"
            )
    if not lines:
        lines.append(
            f"| {result['model']} | - | - | run failed (exit {result['exit']}): {result['stderr'][-200:]!r} | | | | | | | |"
        )
    return lines


def _ms(v: float | None) -> str:
    return f"{v:.3g}" if v else "-"


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v else "-"


def _s(v: float | None) -> str:
    return f"{v:.0f} s" if v else "-"


def write_doc(results: list[dict], args: argparse.Namespace) -> str:
    import torch

    where = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores"
    )
    table = [
        BEGIN,
        f"Measured {time.strftime('%Y-%m-%d')} on {where}, torch {torch.__version__}, precision {args.precision}, "
        f"`python scripts/bench_inductor.py --models {args.models} --batches {args.batches} --precision {args.precision}`. "
        "p50 in ms, each row from one infercc run (the artifacts, PyTorch eager and the torch.compile peer timed in "
        'the same bench stage, on the same device); "× compile" above 1 means infercc\'s pick is faster than torch.compile.',
        "",
        "| model | device | batch | infercc's pick | p50 | torch.compile p50 | eager p50 | × compile | × eager | "
        "AOTI compile | torch.compile compile |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *[line for r in results for line in rows(r)],
        "",
        *[
            f"- {r['model']}, {d['device']}: {d['verdict']}"
            for r in results
            for d in (r["report"].get("selection") or {}).get("devices", [])
        ],
        END,
    ]
    text = "\n".join(table)
    if args.write_doc:
        doc = DOC.read_text(encoding="utf-8")
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.rstrip("\n") + "\n\n## AOTInductor and the torch.compile peer\n\n" + text + "\n"
        DOC.write_text(doc, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="efficientnet_lite0")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peer-compile-s", type=float, default=600.0)
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench_inductor"))
    parser.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    args = parser.parse_args()
    results = [run_model(name, args) for name in args.models.split(",")]
    print(write_doc(results, args))
    if args.json:
        Path(args.json).write_text(
            json.dumps([{k: v for k, v in r.items() if k != "manifest"} for r in results], default=str)
        )


if __name__ == "__main__":
    main()
