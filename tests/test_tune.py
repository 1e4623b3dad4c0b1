"""ONNX Runtime CUDA provider tuning: which option sets a graph gets, where the run config goes, and that a
machine without the CUDA provider plans no tuning (it has nothing to measure)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from infercc.config import parse_config
from infercc.stages.tune import _label, candidates, planned, run_config_file
from tests.conftest import manifest, zoo


def _graph(op: str) -> onnx.ModelProto:
    if op == "Conv":
        node = helper.make_node("Conv", ["x", "w"], ["y"])
        w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    else:
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1], [1.0])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], [w]))


def test_candidates_follow_the_graph_and_precision():
    conv_fp32 = candidates(_graph("Conv"), fp32=True)
    assert {(c["prefer_nhwc"], c.get("fuse_conv_bias", "0"), c["use_tf32"]) for c in conv_fp32} == {
        (layout, fuse, tf32) for layout, fuse in (("0", "0"), ("1", "0"), ("1", "1")) for tf32 in ("0", "1")
    }
    assert len(conv_fp32) == 6
    assert conv_fp32[0] == {"prefer_nhwc": "0", "cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": "1"}
    assert _label(conv_fp32[-1]) == "nhwc+fuse-bias+no-tf32"
    # FP16: TF32 does not apply; no convolution: no layout choice
    assert candidates(_graph("MatMul"), fp32=False) == [
        {"prefer_nhwc": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}
    ]
    assert run_config_file("model.fp16.onnx") == "model.fp16.ort-cuda.json"


def test_no_cuda_provider_plans_no_tuning(tmp_path, cli):
    import onnxruntime as ort

    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this test is for CPU-only machines
    assert not planned(parse_config({"model": {"source": "x.py:f"}}))
    out = tmp_path / "out"
    result = cli("verify", "-m", zoo("fp16_cases.py:layer_norm"), "--shape", "x:2x16", "-o", out)
    assert result.code == 0, result.text
    stages = manifest(out)["stages"]
    assert "tune-ort-cuda" not in stages and "verify" in stages
    assert not list(out.glob("*.ort-cuda.json"))


def test_cuda_graph_sessions_fix_the_named_dimensions_so_shape_arithmetic_folds(tmp_path):
    """A CUDA graph replays one shape: its session fixes each named input dimension to the fed size, and ONNX
    Runtime then folds Shape -> Gather -> Range into constants (nodes the CUDA provider leaves on the CPU, whose
    Memcpy nodes refuse capture with prefer_nhwc=1). Shown on the CPU provider, with the optimized graph saved."""
    import numpy as np
    import onnxruntime as ort

    from infercc.onnxrt.runtime import fixed_dimensions, free_dimensions

    const = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Range", ["start", "n", "step"], ["rows"]),
        helper.make_node("Cast", ["rows"], ["rows_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["rows_f", "one"], ["column"]),
        helper.make_node("Add", ["x", "column"], ["y"]),
    ]
    scalars = [
        helper.make_tensor(n, TensorProto.INT64, [], [v]) for n, v in (("zero", 0), ("start", 0), ("step", 1))
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [*scalars, const("one", [1])],
    )
    path = tmp_path / "rows.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"x": np.zeros((3, 4), np.float32)}
    assert free_dimensions(plain, feeds) == {"batch": 3}
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "fixed.onnx")
    fixed = ort.InferenceSession(
        str(path), fixed_dimensions(options, plain, feeds), providers=["CPUExecutionProvider"]
    )
    (y,) = fixed.run(None, feeds)
    np.testing.assert_array_equal(y[:, 0], [0.0, 1.0, 2.0])
    folded = {n.op_type for n in onnx.load(str(tmp_path / "fixed.onnx")).graph.node}
    assert not folded & {"Shape", "Gather", "Range"}, folded
