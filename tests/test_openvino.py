"""The openvino-cpu runtime on real OpenVINO sessions: FP32 and INT8 (Q/DQ run as INT8) verified against
PyTorch beside ONNX Runtime, its threads and hints recorded; an op it cannot run fails that pair alone,
naming the op; asking for it where OpenVINO is missing exits 3 with the install command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, manifest, zoo

pytest.importorskip("openvino")

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32"]
BOTH = "verify.runtimes=[onnxruntime-cpu,openvino-cpu]"


def _randn_folder(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        np.save(folder / f"{i:03d}.npy", rng.normal(0.5, 0.25, (1, 3, 32, 32)).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infercc.cli import main

    base = tmp_path_factory.mktemp("openvino")
    calib = _randn_folder(base / "calib", 24, seed=1)
    out = base / "out"
    args = ["verify", *CNN, "-o", str(out), "--precision", "fp32,int8", "--calib", str(calib), "-q"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--set", BOTH, "--set", "bench.threads=2"])
    assert exc.value.code == 0
    return out


def test_fp32_and_int8_verify_on_openvino_as_int8(verified: Path) -> None:
    verify = manifest(verified)["stages"]["verify"]["metrics"]
    results = {(r["artifact"], r["runtime"]): r for r in verify["results"]}
    assert {("fp32", "openvino-cpu"), ("int8", "openvino-cpu"), ("int8", "onnxruntime-cpu")} <= set(results)
    fp32 = results[("fp32", "openvino-cpu")]
    assert fp32["passed"], fp32["failures"]
    logits = next(iter(fp32["outputs"].values()))
    assert logits["cosine"] > 0.99999 and logits["max_abs"] < 1e-4
    settings = fp32["runtime_settings"]
    # FP32 is asked for explicitly: OpenVINO's CPU default is BF16 wherever the CPU has it
    assert settings["inference_precision"] == "f32" and settings["performance_hint"] == "LATENCY"
    assert settings["threads"] == 2 and settings["layer_precisions"].get("f32", 0) >= 3
    int8 = results[("int8", "openvino-cpu")]
    assert int8["passed"], int8["failures"]
    int8_layers = sum(n for p, n in int8["runtime_settings"]["layer_precisions"].items() if p in ("u8", "i8"))
    assert int8_layers >= 3  # the three convolutions (and the classifier) run on integer kernels
    assert next(iter(int8["outputs"].values()))["cosine"] > 0.99


def test_bench_records_threads_and_hint(verified: Path, cli) -> None:
    result = cli(
        "bench",
        *CNN,
        "-o",
        verified,
        "--set",
        "bench.runtimes=[onnxruntime-cpu,openvino-cpu]",
        "--set",
        "bench.iterations=5",
        "--set",
        "bench.repeats=2",
        "--set",
        "bench.threads=1",
    )
    assert result.code == 0, result.err
    entries = [
        e for e in manifest(verified)["stages"]["bench"]["metrics"]["results"] if e["artifact"] != "pytorch"
    ]
    assert {e["runtime"] for e in entries} == {"onnxruntime-cpu", "openvino-cpu"}
    for entry in entries:
        assert entry["batches"]["1"]["p50_ms"] > 0
        if entry["runtime"] == "openvino-cpu":
            assert entry["runtime_settings"]["threads"] == 1
            assert entry["runtime_settings"]["performance_hint"] == "LATENCY"
    # one pick per device across runtimes: the fastest of each runtime's own pick
    selection = json.loads((verified / "report.json").read_text())["selection"]
    per_runtime = {r["runtime"]: r for r in selection["runtimes"] if r["chosen"]}
    (cpu,) = selection["devices"]
    assert cpu["device"] == "cpu" and cpu["runtime"] in per_runtime
    assert cpu["p50_ms"] == min(r["p50_ms"] for r in per_runtime.values())
    assert {o["runtime"] for o in cpu["others"]} == set(per_runtime) - {cpu["runtime"]}


def _inverse_model(path: Path) -> Path:
    """x (1, 4, 4) -> com.microsoft.Inverse(x + 4 I): ONNX Runtime has the op, OpenVINO has no conversion."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    eye = numpy_helper.from_array((4 * np.eye(4, dtype=np.float32))[None], "eye")
    nodes = [
        helper.make_node("Add", ["x", "eye"], ["shifted"], name="shift"),
        helper.make_node("Inverse", ["shifted"], ["y"], domain="com.microsoft", name="invert"),
    ]
    graph = helper.make_graph(
        nodes,
        "inverse",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4])],
        [eye],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path))
    return path


def test_unsupported_op_fails_that_pair_naming_the_op(cli, tmp_path: Path) -> None:
    model = _inverse_model(tmp_path / "inverse.onnx")
    result = cli("verify", "--model", model, "-o", tmp_path / "out", "--set", BOTH)
    assert result.code == 1
    verify = manifest(tmp_path / "out")["stages"]["verify"]["metrics"]
    by_pair = {(r["artifact"], r["runtime"]): r for r in verify["results"]}
    assert by_pair[("fp32", "onnxruntime-cpu")]["passed"] and by_pair[("onnx", "onnxruntime-cpu")]["passed"]
    failed = by_pair[("fp32", "openvino-cpu")]
    assert not failed["passed"]
    assert "OpenVINO cannot run op com.microsoft.Inverse in model.fp32.onnx" in failed["failures"][0]
    assert "OpenVINO cannot run op com.microsoft.Inverse" in result.err


def test_missing_openvino_exits_3_with_the_install_command(tmp_path: Path) -> None:
    # a child interpreter in which `import openvino` fails, as it does where the package is not installed
    model = str(_inverse_model(tmp_path / "inverse.onnx"))
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from infercc.cli import main\n"
        f"main(['verify', '--model', {model!r}, '-o', {str(tmp_path / 'out')!r}, "
        "'--set', 'verify.runtimes=[openvino-cpu]'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "openvino-cpu" in proc.stderr and "pip install 'infercc[openvino]'" in proc.stderr
