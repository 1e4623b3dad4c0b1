"""FP16 on the architectures that broke the old converter: every written graph loads in ONNX Runtime CPU and
stays within cosine 0.999 of PyTorch FP32; load failures fall back node by node in a child process."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from infercc.stages.export import load_reference
from tests.conftest import manifest, zoo

CASES = {
    "output feeds a node": ["-m", zoo("fp16_cases.py:output_feeds_node"), "--shape", "x:2x16"],
    "reduction after a Cast": [
        "-m",
        zoo("fp16_cases.py:masked_mean"),
        "--shape",
        "x:2x12x16,mask:2x12",
        "--dtype",
        "mask:int64",
        "--val-range",
        "mask:[0,2]",
    ],
    "ReduceMean": ["-m", zoo("fp16_cases.py:reduce_mean"), "--shape", "x:2x8x16"],
    "LayerNorm": ["-m", zoo("fp16_cases.py:layer_norm"), "--shape", "x:2x16"],
    "attention": [
        "-m",
        zoo("transformer.py:mha_encoder"),
        "--shape",
        "input_ids:2x16,attention_mask:2x16",
        "--dtype",
        "input_ids:int64,attention_mask:int64",
        "--val-range",
        "input_ids:[0,100],attention_mask:[1,2]",
    ],
    "tiny encoder": [
        "-m",
        zoo("transformer.py:tiny_encoder"),
        "--shape",
        "input_ids:2x16,attention_mask:2x16",
        "--dtype",
        "input_ids:int64,attention_mask:int64",
        "--val-range",
        "input_ids:[0,100],attention_mask:[1,2]",
    ],
    "CNN": ["-m", zoo("cnn.py:small_cnn"), "--shape", "x:2x3x32x32"],
    "quantization-sensitive CNN": ["-m", zoo("sensitive.py:quant_sensitive"), "--shape", "x:2x3x32x32"],
    "two inputs, two outputs": [
        "-m",
        zoo("two_io.py:two_in_two_out"),
        "--shape",
        "image:2x3x16x16,features:2x8",
    ],
    "dict output": ["-m", zoo("dict_out.py:dict_model"), "--shape", "x:2x12"],
    "LSTM": ["-m", zoo("recurrent.py:lstm_audio"), "--shape", "mel:2x20x40"],
    "GRU": ["-m", zoo("recurrent.py:gru_tagger"), "--shape", "x:2x20x16"],
}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


@pytest.mark.parametrize("case", list(CASES))
def test_fp16_loads_and_matches_pytorch(case, tmp_path, cli):
    out = tmp_path / "out"
    result = cli("quantize", *CASES[case], "-o", out, "--precision", "fp16")
    assert result.code == 0, result.text
    fp16 = out / "model.fp16.onnx"
    model = onnx.load(str(fp16))
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer), "no FP16 weights"
    session = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    feeds, expected_outputs = load_reference(out / "reference.npz")["opt"]
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(names, feeds), strict=True):
        expected = expected_outputs[name]
        assert np.isfinite(value).all()
        assert _cosine(value, expected) >= 0.999, (case, name)
    metrics = manifest(out)["stages"]["quantize-fp16"]["metrics"]
    assert metrics["converter"] == "onnxruntime.transformers.float16"
    assert metrics["load_checked_on"] == ["onnxruntime-cpu"]
    assert metrics["accuracy"]["cosine"] >= 0.999


def test_load_check_names_the_node_an_unloadable_graph_breaks_at(tmp_path):
    """A graph ONNX Runtime refuses: the child-process check reports the runtime and the node to keep in FP32."""
    from infercc.quantization.fp16 import load_failures, node_in_error

    weight = helper.make_tensor("w", TensorProto.FLOAT16, [4], np.ones(4, np.float16).tobytes(), raw=True)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="mixed_add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    failures = load_failures(path, ["onnxruntime-cpu"], {"x": np.zeros((1, 4), np.float32)})
    assert [f["runtime"] for f in failures] == ["onnxruntime-cpu"]
    assert node_in_error(failures[0]["raw"] + failures[0]["error"], {"mixed_add"}) == "mixed_add"
    good = tmp_path / "good.onnx"
    graph.initializer[0].CopyFrom(helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0] * 4))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(good))
    assert load_failures(good, ["onnxruntime-cpu"], {"x": np.zeros((1, 4), np.float32)}) == []


def test_a_node_the_runtime_refuses_in_fp16_is_kept_fp32_and_the_graph_converted_again(tmp_path, cli):
    """End to end: ONNX defines Celu for float32 only, so the first FP16 graph does not load in ONNX Runtime
    (checked in a child process). The stage names the node, keeps it in FP32, converts again, and writes a
    graph that loads and matches PyTorch; no temporary file is left and the note names no temporary file."""
    out = tmp_path / "out"
    result = cli(
        "quantize",
        "-m",
        zoo("fp16_cases.py:celu_head"),
        "--shape",
        "x:2x16",
        "-o",
        out,
        "--precision",
        "fp16",
    )
    assert result.code == 0, result.text
    (celu,) = [n.name for n in onnx.load(str(out / "model.fp32.onnx")).graph.node if n.op_type == "Celu"]
    stage = manifest(out)["stages"]["quantize-fp16"]
    (blocked,) = stage["metrics"]["auto_blocked"]
    assert (blocked["node"], blocked["op_type"], blocked["reason"]) == (celu, "Celu", "load")
    assert "operator (Celu)" in blocked["error"] and "is invalid" in blocked["error"]
    note = "FP16 graph failed to load (onnxruntime-cpu: Type Error: Type 'tensor(float16)' of input parameter"
    assert stage["notes"][0].startswith(note), stage["notes"]
    assert stage["notes"][0].endswith(f"kept {celu} (Celu) in FP32 and converted again")
    assert "infercc-tmp" not in result.text and not list(out.glob(".infercc-tmp-*"))
    model = onnx.load(str(out / "model.fp16.onnx"))
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert TensorProto.FLOAT16 in types.values()
    (kept,) = [n for n in model.graph.node if n.op_type == "Celu"]
    producers = {o: n for n in model.graph.node for o in n.output}
    assert producers[kept.input[0]].op_type == "Cast"  # FP16 in, cast up to FP32 for the kept node
    session = ort.InferenceSession(str(out / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    feeds, expected = load_reference(out / "reference.npz")["opt"]
    (value,) = session.run(None, feeds)
    assert _cosine(value, next(iter(expected.values()))) >= 0.999


def test_a_vit_in_fp16_with_a_dynamic_batch_loads_on_onnx_runtime_cpu(tmp_path, cli):
    """ONNX Runtime's CPU layout pass (NchwcTransformer) segfaults building the session of this FP16 graph (as
    on ViT-B/16, which took the FP16 stage down): infercc's onnxruntime-cpu runs FP16 graphs without that pass,
    so the stage's load check, the accuracy check and verify pass. A default session still crashes (checked in
    a child): when an ONNX Runtime upgrade fixes it, this test says the workaround can go. The attention stays
    unfused here (the graph that crashes: with its attention fused into one Attention node it no longer does)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    shapes = ["--min-shape", "x:1x3x32x32", "--opt-shape", "x:2x3x32x32", "--max-shape", "x:4x3x32x32"]
    shapes += ["--set", "optimize.fusers=[onnxscript,ort_transformers]"]
    result = cli("verify", "-m", zoo("vit.py:small_vit"), *shapes, "-o", out, "--precision", "fp16")
    assert result.code == 0, result.text
    results = manifest(out)["stages"]["verify"]["metrics"]["results"]
    assert {(r["artifact"], r["runtime"], r["passed"]) for r in results} >= {
        ("fp16", "onnxruntime-cpu", True)
    }
    fp16 = out / "model.fp16.onnx"
    session = ort.InferenceSession(
        str(fp16), providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]
    )
    for name, (feeds, expected) in load_reference(out / "reference.npz").items():
        (value,) = session.run(None, feeds)
        assert _cosine(value, next(iter(expected.values()))) >= 0.999, name
    default = (
        f"import onnxruntime as ort; ort.InferenceSession({str(fp16)!r}, providers=['CPUExecutionProvider'])"
    )
    assert subprocess.run([sys.executable, "-c", default], capture_output=True).returncode == -11
