"""The config's JSON Schema, the commented starter file and the Markdown reference, all from the models."""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infercc.config import CompileConfig, Described, nested_model

STARTER = """\
# infercc config: `infercc compile infercc.yaml`. Flags override these values.
# Every key: `infercc config schema` (JSON Schema) or docs/config.md.

model:
  # file.py:factory, package.module:factory, model.onnx, model.pt (TorchScript), model.pt2, torchvision:NAME, timm:NAME
  source: infercc.models.examples:efficientnet_lite0
  kwargs: {}            # keyword arguments for the factory
  weights: null         # optional state dict, loaded with weights_only=True
  output_names: [logits]

inputs:                 # one entry per forward() argument
  images:
    shape: 1x3x224x224  # the opt shape (TensorRT profile opt)
    min: 1x3x224x224    # dynamic range: smallest ...
    max: 8x3x224x224    # ... and largest shape
    dtype: float32
    low: -1.0           # seeded synthetic values are uniform in [low, high)
    high: 1.0

out: artifacts/efficientnet_lite0
precisions: [fp32]      # fp32, fp16, int8
targets: [onnxruntime]  # onnxruntime, tensorrt

export:
  exporter: auto        # auto = dynamo, falling back to TorchScript (the reason is recorded)
  opset: 18

simplify:
  tool: onnxslim        # onnxslim, onnxsim, none

verify:
  reference: pytorch    # pytorch or onnx
  seed: 0
"""


def starter_yaml() -> str:
    return STARTER


def json_schema() -> dict[str, Any]:
    schema = CompileConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "infercc config"
    return schema


def markdown_reference() -> str:
    """docs/config.md: one table per section, from the field descriptions."""
    lines = [
        "# Config reference",
        "",
        "Generated from `infercc/config.py` (`python scripts/gen_config_doc.py`).",
        "",
        f"A runtime name (`verify.runtimes`, `bench.runtimes`, `verify.runtime_tolerances`) is one of {_runtimes()}.",
        "",
    ]
    _section(lines, "top level", CompileConfig, "")
    _matrix_reference(lines)
    return "\n".join(lines) + "\n"


def _runtimes() -> str:
    from infercc.runtimes.base import REGISTRY

    return ", ".join(f"`{name}`" for name in REGISTRY)


def _matrix_reference(lines: list[str]) -> None:
    """The matrix file of `infercc matrix` (infercc/matrix/spec.py)."""
    from infercc.matrix.spec import MatrixConfig

    lines += [
        "# Matrix file reference (`infercc matrix MATRIX.yaml`)",
        "",
        "Generated from `infercc/matrix/spec.py`. Each model entry is a compile config as above (inline, or the "
        "path of a file); each job is that config with `defaults` under it and one precision and one target "
        "from the axes. Guide: [cluster.md](cluster.md).",
        "",
    ]
    _section(lines, "matrix", MatrixConfig, "")


def _section(lines: list[str], title: str, model: type[BaseModel], prefix: str) -> None:
    lines += [
        f"## `{prefix.rstrip('.') or title}`",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        sub = nested_model(field.annotation)
        default = "required" if field.is_required() else _default_text(field)
        meaning = field.description or _first_doc_line(sub)
        kind = type_text(field.annotation, field.metadata)
        lines.append(f"| `{name}` | {_cell(kind)} | {default} | {_cell(meaning)} |")
        if sub is not None:
            nested.append((f"{prefix}{name}", sub))
    lines.append("")
    for path, sub in nested:
        _section(lines, path, sub, path + ".")


def _first_doc_line(model: type[BaseModel] | None) -> str:
    doc = (model.__doc__ or "").strip() if model is not None else ""
    return doc.splitlines()[0] if doc else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# the int32 ceiling of a shape dimension: a limit of the format, not a setting a reader chooses
_UNSTATED_BOUND = 2**31 - 1


def type_text(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A readable type: `list[int ≥ 1]`, `float in (0, 1]`, `fp32 | fp16`, `path or null`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:  # Annotated[int, Field(ge=1)]: the constraints sit in the metadata
        return type_text(args[0], [*annotation.__metadata__, *metadata])
    described = next((m.text for m in metadata if isinstance(m, Described)), None)
    if described is not None:
        return described
    if origin in (typing.Union, types.UnionType):
        shown = [type_text(arg, metadata) for arg in args if arg is not type(None)]
        return " or ".join(shown) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list[{type_text(args[0])}]"
    if origin is dict:
        return f"dict[{type_text(args[0])}, {type_text(args[1])}]"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(str(member.value) for member in annotation)
    if annotation in (int, float):
        return annotation.__name__ + _bounds_text(metadata)
    names = {Path: "path", Any: "any"}
    return names.get(annotation) or getattr(annotation, "__name__", None) or str(annotation)


def _bounds_text(metadata: list[Any] | tuple[Any, ...]) -> str:
    """` ≥ 1`, ` > 0`, ` in (0, 1]` from pydantic's constraints (Field(ge=..., lt=...))."""
    constraints = [c for m in metadata for c in (m.metadata if isinstance(m, FieldInfo) else [m])]
    low = next(((c.ge, "[") for c in constraints if isinstance(c, annotated_types.Ge)), None)
    low = low or next(((c.gt, "(") for c in constraints if isinstance(c, annotated_types.Gt)), None)
    high = next(((c.le, "]") for c in constraints if isinstance(c, annotated_types.Le)), None)
    high = high or next(((c.lt, ")") for c in constraints if isinstance(c, annotated_types.Lt)), None)
    if high is not None and high[0] >= _UNSTATED_BOUND:
        high = None
    if low is not None and high is not None:
        return f" in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
    if low is not None:
        return f" {'≥' if low[1] == '[' else '>'} {low[0]:g}"
    if high is not None:
        return f" {'≤' if high[1] == ']' else '<'} {high[0]:g}"
    return ""


def _default_text(field: Any) -> str:
    """The default as it would be written in the YAML file: `null`, `false`, `[fp32]`."""
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, dict):
        return "(see below)" if value else "{}"
    if isinstance(value, list):
        return "`[" + ", ".join(_yaml_scalar(v) for v in value) + "]`"
    return f"`{_yaml_scalar(value)}`".replace("|", "\\|")


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value.value if isinstance(value, Enum) else value)
