"""A real model over 2 GB through infercc: export (external data), simplify, verify; peak memory and wall time.

    python scripts/bench_big_model.py OUT_DIR [--layers 10] [--width 2048] [--tokens 64] [--write-docs]

The model is a GPT-2-style decoder built from torch.nn with seeded random weights (no model hub): token and
position embeddings, LAYERS pre-norm blocks (causal self-attention, 4x MLP with GELU), a final LayerNorm and an
LM head tied to the token embedding, as GPT-2 ties it. The defaults give 606 M parameters, 2.42 GB in FP32
(GPT-2 XL is 1.56 B: too large to export next to five other jobs on a 24 GB machine).

Each infercc command runs as its own process (`export`, then `simplify`, then `verify`; each finds the earlier
stages up to date), and the script samples the resident memory of that process and of all its children (the
isolation children that load the graph in ONNX Runtime) every 20 ms. It reports, per command: wall time, the
peak of the infercc process alone, and the peak of the whole process tree. With --write-docs it replaces the
"Over 2 GB" section of docs/benchmarks.md.

The factory is also usable on its own: `infercc compile --model scripts/bench_big_model.py:gpt_like ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 50257
DOCS_START = "<!-- big-model:start -->"
DOCS_END = "<!-- big-model:end -->"


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=-1)
        q, k, v = (t.reshape(batch, tokens, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))
        return x + self.down(functional.gelu(self.up(self.norm2(x))))


class GptLike(nn.Module):
    def __init__(self, layers: int, width: int, heads: int, positions: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, width)
        self.positions = nn.Embedding(positions, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(steps)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tokens.weight.T  # the LM head, tied to the token embedding


def gpt_like(layers: int = 10, width: int = 2048, heads: int = 16, positions: int = 1024) -> nn.Module:
    """Seeded random weights, small enough (std 0.02, as GPT-2 initialises) to keep activations finite."""
    torch.manual_seed(0)
    with torch.no_grad():
        model = GptLike(layers, width, heads, positions)
        for param in model.parameters():
            param.normal_(0.0, 0.02) if param.dim() > 1 else param.zero_()
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
    return model.eval()


def weight_bytes(layers: int, width: int) -> int:
    per_block = 12 * width * width + 13 * width  # qkv, proj, up, down and their biases, two LayerNorms
    return 4 * (VOCAB * width + 1024 * width + layers * per_block + 2 * width)


# --- measuring -----------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def run_measured(args: list[str]) -> dict[str, float | int | str]:
    """Run `infercc ARGS` and sample its memory until it ends: wall time, peak of the process, peak of the
    process tree (the process and every child alive at the same moment)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercc", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peaks = {"main": 0, "tree": 0}

    def sample() -> None:
        while proc.poll() is None:
            main = _rss(proc.pid)
            tree = main + sum(_rss(child) for child in _descendants(proc.pid))
            peaks["main"], peaks["tree"] = max(peaks["main"], main), max(peaks["tree"], tree)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - started
    error = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.startswith("error:")]
    return {
        "wall_s": round(wall, 1),
        "peak_main": peaks["main"],
        "peak_tree": peaks["tree"],
        "exit": proc.returncode,
        "error": error[0] if error else None,
    }


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    args.out = args.out.resolve()  # infercc runs with the project root as its folder
    weights = weight_bytes(args.layers, args.width)
    free = available_bytes()
    print(f"weights {gib(weights)}; available memory {gib(free)}")
    if free < 5 * weights:
        raise SystemExit(f"needs about {gib(5 * weights)} available to run safely; {gib(free)} is")
    spec = f"{Path(__file__).resolve()}:gpt_like"
    common = [
        "--model", spec, "--model-arg", f"layers={args.layers}", "--model-arg", f"width={args.width}",
        "--shape", f"input_ids:1x{args.tokens}", "--dtype", "input_ids:int64",
        "--val-range", f"input_ids:[0,{VOCAB}]", "--precision", "fp32", "--out", str(args.out),
        "--set", "verify.runtimes=[onnxruntime-cpu]", "--set", "verify.samples=1",
        "--set", "optimize.enabled=false", "--exporter", "dynamo",
    ]  # fmt: skip
    figures = {"export": run_measured(["export", "--force", *common])}
    figures["simplify"] = run_measured(["simplify", *common])  # over 2 GiB the stage skips onnxslim itself
    figures["verify"] = run_measured(["verify", *common])
    data = args.out / "model.onnx.data"
    result = {
        "weights_bytes": weights,
        "onnx_data_bytes": data.stat().st_size if data.exists() else None,
        "layers": args.layers,
        "width": args.width,
        "tokens": args.tokens,
        "cpus": os.cpu_count(),
        "commands": figures,
    }
    (args.out / "big_model_results.json").write_text(json.dumps(result, indent=2))
    table = markdown(result)
    print(table)
    if args.write_docs:
        write_docs(table)


def markdown(result: dict) -> str:
    weights = result["weights_bytes"]
    lines = [
        f"GPT-2-style decoder from torch.nn, {result['layers']} layers, width {result['width']}, seeded random "
        f"weights: {gib(weights)} of FP32 weights; `model.onnx.data` {gib(result['onnx_data_bytes'] or 0)}. "
        f"Input `input_ids:1x{result['tokens']}` (int64). {result['cpus']} cores.",
        "",
        "| command | wall | peak RSS, infercc | peak RSS, with its children | infercc peak / weights |",
        "|---|---:|---:|---:|---:|",
    ]
    for command, f in result["commands"].items():
        outcome = "" if f["exit"] == 0 else f" (exit {f['exit']}: {f['error']})"
        lines.append(
            f"| `infercc {command}`{outcome} | {f['wall_s']:.0f} s | {gib(f['peak_main'])} | "
            f"{gib(f['peak_tree'])} | {f['peak_main'] / weights:.2f}x |"
        )
    return "\n".join(lines)


def write_docs(table: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    start, end = text.index(DOCS_START) + len(DOCS_START), text.index(DOCS_END)
    path.write_text(text[:start] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    main()
