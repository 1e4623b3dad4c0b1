"""Readable names for the dynamic dimensions of an exported graph.

Exporters name them after their tracer's symbols (`s34`, `unk__22`, `Addoutput_dim_0`), and shape inference
loses the link between an output's batch and the input's. infercc renames each dynamic input dimension to
`<input>_dim<axis>` (or the user's `--dim-name images:0=batch`) everywhere the symbol appears, then lets ONNX
shape inference say which output dimensions follow from the inputs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from infercc.lazy import require


def default_dim_name(input_name: str, axis: int) -> str:
    return f"{input_name}_dim{axis}"


def wanted_names(
    dynamic_axes: dict[str, list[int]], chosen: dict[str, dict[int, str]]
) -> dict[str, dict[int, str]]:
    """input -> axis -> name: the user's name where given, else `<input>_dim<axis>`."""
    return {
        name: {axis: (chosen.get(name) or {}).get(axis) or default_dim_name(name, axis) for axis in axes}
        for name, axes in dynamic_axes.items()
        if axes
    }


def name_dynamic_dims(path: Path, wanted: dict[str, dict[int, str]]) -> None:
    """Rename the graph inputs' dynamic dimensions (and every use of their symbols), then link the outputs'
    unknown dimensions to the inputs' where shape inference can. Rewrites the file in place."""
    onnx = require("onnx")
    if Path(f"{path}.data").exists():
        return  # a graph with external data is left as exported: rewriting it would copy gigabytes
    model = onnx.load(str(path), load_external_data=False)
    rename = _rename_inputs(model, wanted)
    if rename:
        _apply_renames(model, rename)
    _link_outputs(onnx, model, set(rename.values()) | _input_symbols(model))
    onnx.save(model, str(path))


def _rename_inputs(model: Any, wanted: dict[str, dict[int, str]]) -> dict[str, str]:
    rename: dict[str, str] = {}
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for axis, new in (wanted.get(graph_input.name) or {}).items():
            if axis >= len(dims) or dims[axis].HasField("dim_value"):
                continue  # the exporter fixed it: nothing dynamic to name
            old = dims[axis].dim_param
            if old and old != new:
                rename.setdefault(old, new)
            dims[axis].dim_param = new
    return rename


def _apply_renames(model: Any, rename: dict[str, str]) -> None:
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(k) for k in sorted(rename, key=len, reverse=True)) + r")\b"
    )
    for info in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: rename[m.group(1)], dim.dim_param)


def _input_symbols(model: Any) -> set[str]:
    return {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}


def _link_outputs(onnx: Any, model: Any, symbols: set[str]) -> None:
    """An output dimension that names no input symbol (`unk__0`, `s77`, an exporter's own name) takes what
    shape inference derives from the inputs: one of their symbols, an expression of them, or a number."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    for output in probe.graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception:
        return  # best effort: the graph stays as exported
    derived = {o.name: list(o.type.tensor_type.shape.dim) for o in inferred.graph.output}
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        found = derived.get(output.name) or []
        if len(found) != len(dims):
            continue
        for dim, new in zip(dims, found, strict=True):
            if dim.HasField("dim_value") or _mentions(dim.dim_param, symbols):
                continue
            if new.HasField("dim_value"):
                dim.dim_value = new.dim_value
            elif _mentions(new.dim_param, symbols):
                dim.dim_param = new.dim_param


def _mentions(expression: str, symbols: set[str]) -> bool:
    return bool(expression) and any(re.search(rf"\b{re.escape(s)}\b", expression) for s in symbols)
