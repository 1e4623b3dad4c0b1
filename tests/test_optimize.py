"""Graph-optimization stage for ONNX Runtime on real dynamo exports: attention fused on a BERT-like block with
parity kept; a pattern no fuser matches is left as it is and reported, never an error."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from infercc.stages.export import load_reference
from tests.conftest import manifest, zoo

TOKENS = [
    "--shape",
    "input_ids:2x16,attention_mask:2x16",
    "--dtype",
    "input_ids:int64,attention_mask:int64",
    "--val-range",
    "input_ids:[0,100],attention_mask:[1,2]",
]


def test_bert_block_gets_attention_fused_and_keeps_parity(tmp_path, cli):
    out = tmp_path / "out"
    result = cli("quantize", "-m", zoo("bert_block.py:bert_block"), *TOKENS, "-o", out, "--precision", "fp16")
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    metrics = stages["optimize-ort"]["metrics"]
    assert metrics["fused_ops"]["MultiHeadAttention"] == 2
    assert metrics["fused_ops"]["SkipLayerNormalization"] == 4
    assert not metrics["errors"] and "Softmax" not in metrics["left"]
    assert all(o["passed"] for shape in metrics["parity"].values() for o in shape.values())
    fused = onnx.load(str(out / "model.fp32.ort.onnx"))
    ops = Counter((n.domain, n.op_type) for n in fused.graph.node)
    assert ops[("com.microsoft", "MultiHeadAttention")] == 2 and not ops[("", "Softmax")]
    # the fused graph runs in ORT CPU and matches PyTorch; FP16 is built from it
    session = ort.InferenceSession(str(out / "model.fp32.ort.onnx"), providers=["CPUExecutionProvider"])
    feeds, expected = load_reference(out / "reference.npz")["opt"]
    (value,) = session.run(None, feeds)
    np.testing.assert_allclose(value, next(iter(expected.values())), atol=1e-4, rtol=1e-3)
    assert stages["quantize-fp16"]["metrics"]["source"] == "fp32-ort"
    assert stages["quantize-fp16"]["metrics"]["accuracy"]["cosine"] >= 0.999


@pytest.mark.parametrize(
    ("spec", "shapes", "softmax"),
    [
        ("transformer.py:mha_encoder", TOKENS, 2),  # TransformerEncoderLayer with a padding mask
        ("packed_attention.py:masked", ["--min-shape", "x:1x10x32", "--opt-shape", "x:2x10x32"], 1),  # causal
    ],
)
def test_unfusable_attention_is_left_alone_and_reported(tmp_path, cli, spec, shapes, softmax):
    """Masked attention is no pattern the rules know (packed_attention included): the chain stays as it is,
    said in the stage's notes, and the graph still runs."""
    out = tmp_path / "out"
    result = cli("quantize", "-m", zoo(spec), *shapes, "-o", out, "--precision", "fp32")
    assert result.code == 0, result.text
    stage = manifest(out)["stages"]["optimize-ort"]
    assert not {"Attention", "MultiHeadAttention"} & set(stage["metrics"]["fused_ops"])
    assert stage["metrics"]["applied"]["packed_attention"] == {}
    assert stage["metrics"]["left"]["Softmax"] == softmax
    assert f"attention not fused: {softmax} Softmax left as MatMul/Softmax chains" in stage["notes"]
    ort.InferenceSession(str(out / "model.fp32.ort.onnx"), providers=["CPUExecutionProvider"])


def test_a_fused_graph_is_verified_only_on_onnx_runtime(tmp_path, cli):
    """com.microsoft ops are ONNX Runtime's own: OpenVINO is not asked to run the fused graph or its FP16 form,
    and still verifies the plain FP32 graph."""
    out = tmp_path / "out"
    result = cli(
        "verify", "-m", zoo("bert_block.py:bert_block"), *TOKENS, "-o", out, "--precision", "fp32,fp16",
        "--set", "verify.runtimes=[onnxruntime-cpu,openvino-cpu]",
    )  # fmt: skip
    assert result.code == 0, result.text
    pairs = {(r["artifact"], r["runtime"]) for r in manifest(out)["stages"]["verify"]["metrics"]["results"]}
    assert {("fp32-ort", "onnxruntime-cpu"), ("fp16", "onnxruntime-cpu"), ("fp32", "openvino-cpu")} <= pairs
    assert ("fp32-ort", "openvino-cpu") not in pairs and ("fp16", "openvino-cpu") not in pairs


def test_attention_is_fused_with_a_dynamic_batch(tmp_path, cli):
    """With a dynamic batch the simplified export reshapes through -1 dimensions, which ONNX's shape inference
    leaves as unrelated unknowns; named from the inputs' dimensions, query, key and value share their batch
    again and attention fuses. The fused graph keeps its dynamic batch: it runs and matches at 1, 2 and 4."""
    out = tmp_path / "out"
    shapes = ["--min-shape", "input_ids:1x16,attention_mask:1x16", "--opt-shape"]
    shapes += ["input_ids:2x16,attention_mask:2x16", "--max-shape", "input_ids:4x16,attention_mask:4x16"]
    result = cli(
        "quantize",
        "-m",
        zoo("bert_block.py:bert_block"),
        *TOKENS[2:],
        *shapes,
        "-o",
        out,
        "--precision",
        "fp32",
    )
    assert result.code == 0, result.text
    metrics = manifest(out)["stages"]["optimize-ort"]["metrics"]
    assert metrics["fused_ops"]["MultiHeadAttention"] == 2 and "Softmax" not in metrics["left"]
    points = metrics["parity"]
    assert set(points) == {"min", "opt", "max"}
    assert all(o["passed"] for shape in points.values() for o in shape.values())
    session = ort.InferenceSession(str(out / "model.fp32.ort.onnx"), providers=["CPUExecutionProvider"])
    for name, (feeds, expected) in load_reference(out / "reference.npz").items():
        (value,) = session.run(None, feeds)
        assert value.shape[0] == feeds["input_ids"].shape[0], name
        np.testing.assert_allclose(value, next(iter(expected.values())), atol=1e-4, rtol=1e-3)


def test_incomplete_shape_inference_writes_nothing_in_the_current_folder(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference saves sym_shape_infer_temp.onnx into the current folder when it
    cannot finish (here: an op of an unknown domain); the user's folder must stay untouched."""
    from onnx import TensorProto, helper

    from infercc.graphopt import named_dims

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Mystery", ["x"], ["t"], domain="my.custom"),
        helper.make_node("Relu", ["t"], ["y"]),
    ]
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("my.custom", 1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets)
    monkeypatch.chdir(tmp_path)
    assert named_dims(model) is model  # best effort: unchanged when inference is incomplete
    assert list(tmp_path.iterdir()) == []


PACKED_SHAPES = ["--min-shape", "x:1x10x32", "--opt-shape", "x:2x10x32", "--max-shape", "x:4x10x32"]


@pytest.mark.parametrize(("factory", "fused"), [("batch_first", 2), ("seq_first", 1)])
def test_packed_qkv_attention_becomes_one_attention_node(tmp_path, cli, factory, fused):
    """nn.MultiheadAttention (ViT's attention) has one packed in-projection, which onnxscript's and ONNX Runtime's
    rules do not match: infercc's packed_attention rule turns each into com.microsoft Attention + the output
    projection, with the biases kept, for both batch layouts; parity holds at min, opt and max, the FP16 form is
    built from it, and every written graph runs in ONNX Runtime CPU."""
    out = tmp_path / "out"
    spec = zoo(f"packed_attention.py:{factory}")
    result = cli("quantize", "-m", spec, *PACKED_SHAPES, "-o", out, "--precision", "fp32,fp16")
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    metrics = stages["optimize-ort"]["metrics"]
    assert metrics["applied"]["packed_attention"] == {"PackedQkvAttention": fused}
    assert metrics["fused_ops"]["Attention"] == fused and "Softmax" not in metrics["left"]
    assert set(metrics["parity"]) == {"min", "opt", "max"}
    assert all(o["passed"] for shape in metrics["parity"].values() for o in shape.values())
    graph = onnx.load(str(out / "model.fp32.ort.onnx")).graph
    ops = Counter((n.domain, n.op_type) for n in graph.node)
    assert ops[("com.microsoft", "Attention")] == fused and not ops[("", "Softmax")]
    assert stages["quantize-fp16"]["metrics"]["source"] == "fp32-ort"
    assert stages["quantize-fp16"]["metrics"]["accuracy"]["cosine"] >= 0.999
    for artifact in ("model.fp32.ort.onnx", "model.fp16.onnx"):
        session = ort.InferenceSession(str(out / artifact), providers=["CPUExecutionProvider"])
        for name, (feeds, expected) in load_reference(out / "reference.npz").items():
            fed = {
                k: v.astype(np.float16) if session.get_inputs()[0].type == "tensor(float16)" else v
                for k, v in feeds.items()
            }
            (value,) = session.run(None, fed)
            tolerance = 2e-2 if "fp16" in artifact else 1e-4
            np.testing.assert_allclose(
                value, next(iter(expected.values())), atol=tolerance, rtol=tolerance, err_msg=name
            )


def test_relu6_between_convolutions_becomes_hardsigmoid_in_the_fp16_graph_for_onnx_runtime(tmp_path, cli):
    """ONNX Runtime CUDA's Clip kernel is slow: in the FP16 graph built for ONNX Runtime, a ReLU6 between
    convolutions becomes HardSigmoid with the bound moved into the convolutions' weights (exact in real
    arithmetic); the ReLU6 read by the pooling stays a Clip, and the FP32 graphs keep theirs. Activations pass 6
    here, so a wrong bound would show in the outputs."""
    from infercc.relu6 import relu6_as_hardsigmoid

    out = tmp_path / "out"
    shapes = ["--min-shape", "x:1x3x32x32", "--opt-shape", "x:2x3x32x32", "--max-shape", "x:4x3x32x32"]
    result = cli("quantize", "-m", zoo("cnn.py:relu6_cnn"), *shapes, "-o", out, "--precision", "fp32,fp16")
    assert result.code == 0, result.text
    stage = manifest(out)["stages"]["quantize-fp16"]
    assert "2 ReLU6 between convolutions written as HardSigmoid for ONNX Runtime" in stage["notes"]
    assert stage["metrics"]["accuracy"]["cosine"] >= 0.999
    fp16_ops = Counter(n.op_type for n in onnx.load(str(out / "model.fp16.onnx")).graph.node)
    assert fp16_ops["HardSigmoid"] == 2 and fp16_ops["Clip"] == 1
    fused = onnx.load(str(out / "model.fp32.ort.onnx"))
    assert Counter(n.op_type for n in fused.graph.node)["Clip"] == 3
    # the rewrite in FP32 matches PyTorch as closely as the graph it came from
    rewritten, counts = relu6_as_hardsigmoid(fused)
    assert counts == {"ReluSixAsHardSigmoid": 2}
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    for name, (feeds, expected) in load_reference(out / "reference.npz").items():
        (value,) = session.run(None, feeds)
        np.testing.assert_allclose(value, next(iter(expected.values())), atol=1e-4, rtol=1e-3, err_msg=name)
    # the stem's ReLU6 does clamp at 6 on these inputs: the rewrite is tested where it matters
    clip = next(n for n in fused.graph.node if n.op_type == "Clip")
    fused.graph.output.append(onnx.helper.make_tensor_value_info(clip.input[0], onnx.TensorProto.FLOAT, None))
    feeds = load_reference(out / "reference.npz")["opt"][0]
    probe = ort.InferenceSession(fused.SerializeToString(), providers=["CPUExecutionProvider"])
    pre_clip = probe.run([clip.input[0]], feeds)[0]
    assert pre_clip.max() > 6 and pre_clip.min() < 0
