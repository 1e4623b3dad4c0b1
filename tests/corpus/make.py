"""Bad model files for the error-corpus tests, generated on demand (binary files are not kept in git).

make_all(folder) writes every file below and returns {name: path}:
  pickled_model.pt     torch.save(whole nn.Module): weights_only=True refuses it (needs --allow-pickle)
  state_dict.pt        a good state dict of tests/zoo/cnn.py:small_cnn (not a model by itself)
  wrong_keys.pt        a state dict with other keys
  wrong_shapes.pt      small_cnn's state dict with 5 classes instead of 10
  truncated.pt         the first 600 bytes of state_dict.pt
  truncated.onnx       the first half of a valid ONNX file
  garbage.onnx         text, not protobuf
  empty.onnx           0 bytes
  invalid_graph.onnx   Add reads a tensor nothing produces (fails onnx.checker)
  future_ir.onnx       IR version 99
  custom_op.onnx       op com.acme:FancyOp, which no runtime here implements
  future_opset.onnx    default-domain opset 30 (newer than any released onnxruntime supports)
  dynamic.onnx         Relu on x: (N, 4), N dynamic
"""

from __future__ import annotations

from pathlib import Path


def _model(nodes, inputs, outputs, opsets, ir_version=8):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = ir_version
    return model


def make_all(folder: Path) -> dict[str, Path]:
    import onnx
    import torch
    from onnx import TensorProto, helper

    from tests.zoo.cnn import SmallCNN, small_cnn

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def path(name: str) -> Path:
        files[name] = folder / name
        return files[name]

    model = small_cnn()
    torch.save(model, path("pickled_model.pt"))
    torch.save(model.state_dict(), path("state_dict.pt"))
    torch.save({"foo": torch.zeros(3), "bar": torch.ones(2)}, path("wrong_keys.pt"))
    torch.save(SmallCNN(num_classes=5).state_dict(), path("wrong_shapes.pt"))
    path("truncated.pt").write_bytes(files["state_dict.pt"].read_bytes()[:600])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    relu = helper.make_node("Relu", ["x"], ["y"])
    big = _model([relu], [x], [y], [("", 17)])
    big.graph.initializer.append(helper.make_tensor("w", TensorProto.FLOAT, [256], [0.5] * 256))
    whole = big.SerializeToString()
    path("truncated.onnx").write_bytes(whole[: len(whole) // 2])
    path("garbage.onnx").write_bytes(b"this is not an ONNX file\n" * 8)
    path("empty.onnx").write_bytes(b"")
    onnx.save(
        _model([helper.make_node("Add", ["x", "missing"], ["y"])], [x], [y], [("", 17)]),
        path("invalid_graph.onnx"),
    )
    onnx.save(_model([relu], [x], [y], [("", 17)], ir_version=99), path("future_ir.onnx"))
    fancy = helper.make_node("FancyOp", ["x"], ["y"], domain="com.acme")
    onnx.save(_model([fancy], [x], [y], [("", 17), ("com.acme", 1)]), path("custom_op.onnx"))
    onnx.save(_model([relu], [x], [y], [("", 30)]), path("future_opset.onnx"))
    xd = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    yd = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    onnx.save(_model([relu], [xd], [yd], [("", 17)]), path("dynamic.onnx"))
    return files
