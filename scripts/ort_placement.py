"""Which nodes ONNX Runtime's CUDA provider leaves to the CPU, and whether a CUDA graph can be captured, per set of
provider options: the question behind "prefer_nhwc=1 inserts Memcpy nodes and refuses CUDA-graph capture".

Each option set runs in its own child process with ONNX Runtime's log at VERBOSE (severity 0), where the provider
names the nodes it places on each provider, every Memcpy it adds ("Add MemcpyFromHost after X", "Add MemcpyToHost before Y") and the nodes it could
not take ("CUDA kernel not found in registries for Op type: ..."). The optimized graph is saved, so the nodes
on each side of a Memcpy can be read back, with their op types and domains.

    python scripts/ort_placement.py OUT_DIR model.fp16.onnx [batch]
Writes OUT_DIR/<stem>.placement.json and prints a summary. Needs onnxruntime-gpu and a CUDA GPU.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

OPTION_SETS = {
    "nchw": {},
    "nhwc": {"prefer_nhwc": "1"},
}

CHILD = r"""
import json, sys
import numpy as np
import onnxruntime as ort
path, optimized, options, batch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
so = ort.SessionOptions()
so.log_severity_level = 0
so.optimized_model_filepath = optimized
result = {}
try:
    s = ort.InferenceSession(path, so, providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"])
    feeds = {}
    for i in s.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in i.shape]
        dtype = {"tensor(float16)": np.float16, "tensor(int64)": np.int64}.get(i.type, np.float32)
        feeds[i.name] = (np.random.rand(*shape) if dtype != np.int64 else np.ones(shape)).astype(dtype)
    s.run(None, feeds)
    result["plain"] = "ok"
except Exception as exc:
    result["plain"] = str(exc).splitlines()[0][:400]
so2 = ort.SessionOptions()
so2.log_severity_level = 3
try:
    g = ort.InferenceSession(path, so2, providers=[("CUDAExecutionProvider", {**options, "enable_cuda_graph": "1"}),
                                                   "CPUExecutionProvider"])
    binding = g.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
    for o in g.get_outputs():
        binding.bind_output(o.name, "cuda", 0)
    g.run_with_iobinding(binding)
    g.run_with_iobinding(binding)
    result["cuda_graph"] = "ok"
except Exception as exc:
    result["cuda_graph"] = str(exc).splitlines()[0][:400]
print("RESULT " + json.dumps(result), flush=True)
"""

PATTERNS = {
    "memcpy": re.compile(r"Add (Memcpy\w+) (after|before) (\S+) for"),
    "no_kernel": re.compile(r"CUDA kernel not found in registries for Op type: (\S+) node name: (\S*)"),
    "placed": re.compile(r"Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)"),
    "summary": re.compile(r"(\d+) Memcpy nodes are added"),
}


def cpu_placed(text: str) -> list[str]:
    """The node lines ORT lists under 'Node(s) placed on [CPUExecutionProvider]' (verbose log)."""
    nodes, inside = [], False
    for line in text.splitlines():
        if "placed on [" in line:
            inside = "CPUExecutionProvider" in line
        elif inside and "VerifyEachNodeIsAssignedToAnEp" in line:
            nodes.append(line.split("]", 1)[-1].strip() if "]" in line else line.strip())
        elif inside:
            inside = False
    return nodes[:80]


def neighbours(optimized: Path, tensors: list[str]) -> dict[str, dict[str, list[str]]]:
    """For each tensor a Memcpy moves: the nodes that produce and consume it in the optimized graph."""
    import onnx

    if not optimized.is_file():
        return {}
    graph = onnx.load(str(optimized), load_external_data=False).graph
    found: dict[str, dict[str, list[str]]] = {}
    for name in tensors:
        found[name] = {
            "producers": [
                f"{n.domain or 'ai.onnx'}:{n.op_type} {n.name}" for n in graph.node if name in n.output
            ],
            "consumers": [
                f"{n.domain or 'ai.onnx'}:{n.op_type} {n.name}" for n in graph.node if name in n.input
            ],
        }
    return found


def probe(model: Path, out: Path, label: str, options: dict[str, str], batch: int) -> dict:
    optimized = out / f"{model.stem}.{label}.optimized.onnx"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(optimized), json.dumps(options), str(batch)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    text = run.stdout + run.stderr
    result: dict = {"options": options, "returncode": run.returncode}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    memcpy = [m.groups() for m in PATTERNS["memcpy"].finditer(text)]
    result["memcpy"] = [" ".join(g) for g in memcpy]
    result["no_kernel"] = sorted({f"{op} {node}" for op, node in PATTERNS["no_kernel"].findall(text)})[:40]
    result["placed"] = PATTERNS["placed"].findall(text)
    result["around_memcpy"] = neighbours(optimized, [g[2] for g in memcpy][:20])
    result["cpu_nodes"] = cpu_placed(text)
    optimized.unlink(missing_ok=True)  # large; what matters is summarised above
    return result


def main(out: Path, model: Path, batch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {label: probe(model, out, label, options, batch) for label, options in OPTION_SETS.items()}
    (out / f"{model.stem}.placement.json").write_text(json.dumps(report, indent=1))
    for label, r in report.items():
        print(
            f"{model.name} {label}: plain {r.get('plain')}; cuda graph {r.get('cuda_graph')}; "
            f"{len(r['memcpy'])} Memcpy; no CUDA kernel: {r['no_kernel'][:8]}; CPU nodes: {r['cpu_nodes'][:12]}",
            flush=True,
        )
        for tensor, sides in list(r["around_memcpy"].items())[:8]:
            print(f"   {tensor}: {sides['producers'][:2]} -> {sides['consumers'][:3]}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 32)
