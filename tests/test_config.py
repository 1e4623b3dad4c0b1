import json
from pathlib import Path

import pytest
import yaml

from infercc.config import CompileConfig, Precision, load_yaml, parse_config
from infercc.configdoc import json_schema, markdown_reference, starter_yaml
from infercc.errors import UsageError
from infercc.models.examples import EFFICIENTNET_LITE0_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_documented():
    config = CompileConfig()
    assert config.precisions == [Precision.fp32]
    schema = json_schema()
    assert schema["title"] == "infercc config"
    # every field of every section carries a description (editor completion shows it)
    undocumented = []
    for name, definition in schema.get("$defs", {}).items():
        for field, spec in definition.get("properties", {}).items():
            if "description" not in spec:
                undocumented.append(f"{name}.{field}")
    assert len(undocumented) < 15, undocumented


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(UsageError) as err:
        parse_config({"model": {"sorce": "x.onnx"}})
    assert "model.sorce: unknown key; did you mean 'source'?" in str(err.value)
    with pytest.raises(UsageError, match="precisons: unknown key; did you mean 'precisions'"):
        parse_config({"precisons": ["fp16"]})


def test_wrong_type_and_bad_enum_name_the_key():
    with pytest.raises(UsageError, match=r"export\.opset"):
        parse_config({"export": {"opset": "eighteen"}})
    with pytest.raises(UsageError, match=r"precisions\.0"):
        parse_config({"precisions": ["fp8"]})


def test_min_above_max_is_refused():
    with pytest.raises(UsageError, match="min <= opt <= max"):
        parse_config({"inputs": {"x": {"min": "4x3", "max": "1x3"}}})


def test_yaml_errors_give_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  source: [unclosed\n")
    with pytest.raises(UsageError) as err:
        load_yaml(path)
    assert f"{path}:" in err.value.message and "YAML syntax error" in err.value.message
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UsageError, match="is empty"):
        load_yaml(empty)


def test_starter_and_example_configs_validate():
    parse_config(yaml.safe_load(starter_yaml()))
    shipped = yaml.safe_load((ROOT / "configs" / "efficientnet_lite0.yaml").read_text())
    parse_config(shipped)
    # the YAML example and the built-in default describe the same job
    builtin = parse_config(json.loads(json.dumps(EFFICIENTNET_LITE0_CONFIG)))
    assert parse_config(shipped).inputs == builtin.inputs
    assert parse_config(shipped).model.source == builtin.model.source


def test_config_reference_is_up_to_date():
    doc = (ROOT / "docs" / "config.md").read_text()
    assert doc == markdown_reference(), "docs/config.md is stale: run `make docs`"


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"expands to [\d,]{11} values through its aliases"):
        load_yaml(path)
