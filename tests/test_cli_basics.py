"""The CLI surface: help is fast and imports nothing heavy, config commands, doctor, inspect."""

import json
import subprocess
import sys

import pytest

from infercc.cli import app

COMMANDS = [
    "compile",
    "export",
    "simplify",
    "quantize",
    "build",
    "verify",
    "bench",
    "inspect",
    "report",
    "doctor",
    "config",
]


def test_help_imports_no_heavy_module():
    code = (
        "import sys; from infercc.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"for cmd in {COMMANDS!r}:\n"
        "    try:\n        main([cmd, '--help'])\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'tensorrt', 'tensorrt_rtx_bindings', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(cli, command):
    result = cli(command, "--help")
    assert result.code == 0
    assert "Usage" in result.out


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("infercc ")


def test_unknown_option_is_a_usage_error(cli):
    result = cli("compile", "--no-such-flag")
    assert result.code == 2
    assert "No such option" in result.text
    assert "Traceback" not in result.text


def test_config_init_and_schema(cli, tmp_path):
    target = tmp_path / "infercc.yaml"
    assert cli("config", "init", target).code == 0
    assert "source: infercc.models.examples:efficientnet_lite0" in target.read_text()
    again = cli("config", "init", target)
    assert again.code == 2 and "already exists" in again.err
    schema = cli("config", "schema")
    assert schema.code == 0
    data = json.loads(schema.out)
    assert {"model", "inputs", "precisions", "export", "verify"} <= set(data["properties"])


def test_doctor_lists_runtimes(cli):
    result = cli("doctor", "--json")
    assert result.code == 0
    info = result.json()
    runtimes = {r["name"]: r for r in info["runtimes"]}
    assert runtimes["onnxruntime-cpu"]["available"] is True
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]
    assert runtimes["onnxruntime-cuda"]["available"] is False and runtimes["onnxruntime-cuda"]["reason"]
    human = cli("doctor")
    assert "onnxruntime-cpu" in human.out


def test_typer_app_lists_all_commands():
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {
        g.name for g in app.registered_groups
    }
    assert set(COMMANDS) <= names


def test_json_on_a_failed_verify_is_one_document_with_the_error(cli, tmp_path):
    from tests.conftest import CNN_SHAPES

    strict = ["--set", "verify.tolerances.fp32.atol=0", "--set", "verify.tolerances.fp32.rtol=0"]
    args = ["verify", *CNN_SHAPES, "--exporter", "torchscript", *strict, "-o", tmp_path / "out", "--json"]
    result = cli(*args)
    assert result.code == 1, result.text
    document = json.loads(result.out)  # exactly one JSON document: json.loads refuses trailing data
    assert document["status"] == "failed" and document["exit_code"] == 1
    assert "verification failure" in document["error"] and document["failures"]
