"""The config's JSON Schema, the commented starter file and the Markdown reference, all from the models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from infercc.config import CompileConfig

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
    ]
    _section(lines, "top level", CompileConfig, "")
    _matrix_reference(lines)
    return "\n".join(lines) + "\n"


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
        sub = _submodel(field.annotation)
        default = "required" if field.is_required() else _default_text(field)
        meaning = field.description or _first_doc_line(sub)
        lines.append(
            f"| `{name}` | {_type_text(field.annotation)} | {default} | {meaning.replace('|', chr(92) + '|')} |"
        )
        if sub is not None:
            nested.append((f"{prefix}{name}", sub))
    lines.append("")
    for path, sub in nested:
        _section(lines, path, sub, path + ".")


def _first_doc_line(model: type[BaseModel] | None) -> str:
    doc = (model.__doc__ or "").strip() if model is not None else ""
    return doc.splitlines()[0] if doc else ""


def _submodel(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _type_text(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return (
        text.replace("typing.", "").replace("infercc.config.", "").replace("pathlib.", "").replace("|", "\\|")
    )


def _default_text(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if hasattr(value, "value"):
        value = value.value
    if isinstance(value, list):
        value = [getattr(v, "value", v) for v in value]
    if isinstance(value, dict):
        return "(see below)" if value else "{}"
    return f"`{value}`".replace("|", "\\|")
