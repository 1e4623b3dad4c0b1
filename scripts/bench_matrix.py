"""Matrix overhead on the local pool: `infercc matrix --jobs 1` against the same jobs run one by one.

For each round (rounds alternate the order, so drift on a shared machine hits both sides alike):
  standalone  every job as its own `python -m infercc compile JOB.json --json`, one after another; the sum of
              their wall times is the jobs' own time
  matrix      `infercc matrix MATRIX.yaml --jobs 1` with a fresh --out; its wall time, and the jobs' times it
              measured itself (child process start to exit)
Overhead = matrix wall / sum of the jobs' own times - 1. Prints a Markdown table (for docs/benchmarks.md).

    .venv/bin/python scripts/bench_matrix.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "tests" / "zoo"
MATRIX = {
    "models": [
        {"model": {"source": f"{ZOO}/cnn.py:small_cnn"}, "inputs": {"x": {"shape": "1x3x32x32"}}},
        {"model": {"source": f"{ZOO}/dict_out.py:dict_model"}, "inputs": {"x": {"shape": "1x12"}}},
        {"model": {"source": f"{ZOO}/sensitive.py:quant_sensitive"}, "inputs": {"x": {"shape": "1x3x32x32"}}},
    ],
    "precisions": ["fp32", "fp16"],
    "targets": ["onnxruntime"],
    "defaults": {"export": {"exporter": "torchscript"}, "bench": {"iterations": 20, "repeats": 2}},
}


def standalone(jobs: list[dict], folder: Path) -> float:
    total = 0.0
    folder.mkdir(parents=True)
    for i, job in enumerate(jobs):
        config = dict(job["config"], out=str(folder / f"job{i}"))
        path = folder / f"job{i}.json"
        path.write_text(json.dumps(config))
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "infercc", "compile", str(path), "--json"], capture_output=True
        )
        total += time.perf_counter() - started
        assert run.returncode == 0, run.stderr[-2000:]
    return total


def matrix(path: Path, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "infercc", "matrix", str(path), "--jobs", "1", "-o", str(out), "--json"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    assert run.returncode == 0, run.stderr[-2000:]
    return wall, sum(j["seconds"] for j in json.loads(run.stdout)["jobs"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from infercc.matrix.spec import expand_jobs, load_matrix

    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-matrix-") as tmp:
        folder = Path(tmp)
        path = folder / "matrix.yaml"
        path.write_text(yaml.safe_dump(MATRIX))
        jobs = [j.model_dump() for j in expand_jobs(load_matrix(path), path)]
        for r in range(args.rounds):
            sides = ["standalone", "matrix"] if r % 2 == 0 else ["matrix", "standalone"]
            result: dict[str, float] = {}
            for side in sides:
                if side == "standalone":
                    result["sum"] = standalone(jobs, folder / f"s{r}")
                else:
                    result["wall"], result["inside"] = matrix(path, folder / f"m{r}")
            rows.append(result)
    print(
        f"{len(jobs)} jobs, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(
        "| round | jobs run one by one (sum) | `matrix --jobs 1` wall | jobs' own time inside the matrix | overhead vs one by one | driver overhead |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rows):
        print(
            f"| {i + 1} | {r['sum']:.1f} s | {r['wall']:.1f} s | {r['inside']:.1f} s | "
            f"{(r['wall'] / r['sum'] - 1) * 100:+.1f}% | {(r['wall'] / r['inside'] - 1) * 100:+.1f}% |"
        )
    over = statistics.median(r["wall"] / r["sum"] - 1 for r in rows) * 100
    driver = statistics.median(r["wall"] / r["inside"] - 1 for r in rows) * 100
    print(
        f"\nmedian overhead vs one by one: {over:+.1f}%; driver overhead (wall vs jobs' own time): {driver:+.1f}%"
    )


if __name__ == "__main__":
    main()
