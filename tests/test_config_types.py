"""Runtime names in a config are checked against the runtime registry; docs/config.md names types readably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from infercc.config import BuildConfig, CompileConfig, InputSpec, QuantizeConfig, parse_config
from infercc.configdoc import markdown_reference, type_text
from infercc.errors import UsageError
from infercc.runtimes.base import REGISTRY


def _field(model, name):
    info = model.model_fields[name]
    return type_text(info.annotation, info.metadata)


def test_registered_runtime_names_pass():
    config = parse_config(
        {
            "verify": {
                "runtimes": ["onnxruntime-cpu", "openvino-cpu"],
                "runtime_tolerances": {"tensorrt": {}},
            },
            "bench": {"runtimes": ["pytorch-cpu", "torch-compile-cpu"]},
        }
    )
    assert config.verify.runtimes == ["onnxruntime-cpu", "openvino-cpu"]
    assert config.bench.runtimes == ["pytorch-cpu", "torch-compile-cpu"]


@pytest.mark.parametrize(
    ("data", "where", "guess"),
    [
        (
            {"verify": {"runtimes": ["onnxruntime-gpu"]}},
            "verify.runtimes.0",
            "did you mean 'onnxruntime-cpu'",
        ),
        ({"bench": {"runtimes": ["openvino-cpu", "foo"]}}, "bench.runtimes.1", "Known runtimes: pytorch-cpu"),
        ({"verify": {"runtime_tolerances": {"tensorrt-rtx": {}}}}, "verify.runtime_tolerances", "'tensorrt'"),
    ],
)
def test_unregistered_runtime_names_are_refused_with_the_config(data, where, guess):
    with pytest.raises(UsageError) as caught:
        parse_config(data, "infercc.yaml")
    message = caught.value.message
    assert f"infercc.yaml: {where}" in message and "Unknown runtime" in message and guess in message, message


def test_every_default_names_registered_runtimes():
    config = CompileConfig()
    assert set(config.verify.runtime_tolerances) <= set(REGISTRY)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Annotated[list[Annotated[int, Field(ge=1)]], Field()], "list[int ≥ 1]"),
        (Annotated[float, Field(gt=0, le=1)], "float in (0, 1]"),
        (Annotated[float | None, Field(ge=-1, le=1)], "float in [-1, 1] or null"),
        (Path | None, "path or null"),
        (dict[str, list[int]], "dict[str, list[int]]"),
    ],
)
def test_type_text(annotation, expected):
    assert type_text(annotation) == expected


def test_config_fields_render_without_python_internals():
    assert _field(InputSpec, "shape") == "list[int ≥ 1] or null"
    assert _field(QuantizeConfig, "percentile") == "float in (90, 100]"
    assert _field(CompileConfig, "precisions") == "list[fp32 | fp16 | int8 | bf16]"
    assert _field(BuildConfig, "optimization_level") == "int in [0, 5]"
    assert _field(BuildConfig, "sources") == "dict[fp32 | fp16 | int8 | bf16, str]"
    text = markdown_reference()
    for internal in ("Annotated", "FieldInfo", "NoneType", "typing.", "infercc.config."):
        assert internal not in text
    assert "| `runtimes` | list[runtime name] |" in text and "`onnxruntime-cpu`" in text
