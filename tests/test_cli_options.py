"""Each command offers only the options it uses, typed with the config's Enums; --help is fast and honest."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import typer

from infercc.cli import app
from infercc.cli.run import RunOptions
from infercc.cli.settings import Flags, apply_flags
from infercc.config import CalibrationMethod, Exporter, Int8Route, Precision, Reference, Simplifier, Target
from tests.conftest import ROOT

PIPELINE = ["compile", "export", "simplify", "quantize", "build", "verify", "bench"]
TENSORRT_FLAGS = {
    "--workspace",
    "--timing-cache",
    "--compute-capability",
    "--builder-optimization-level",
    "--int8-route",
}
HELP_CPU_BUDGET_S = 0.5


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def _options(name: str) -> set[str]:
    return {opt for param in _command(name).params for opt in param.opts if opt.startswith("--")}


def _parse(command: str, *args: str) -> dict:
    """The config data a command's flags write (no stage runs)."""
    params = _command(command).make_context(command, list(args)).params
    data: dict = {}
    apply_flags(data, Flags.from_params(params))
    return data


def test_each_command_offers_only_the_options_of_the_stages_it_reaches():
    export = _options("export")
    assert {"--model", "--shape", "--exporter", "--opset", "--out", "--json", "--set"} <= export
    assert not export & {"--calib", "--no-bench", "--precision", "--target", "--simplifier", *TENSORRT_FLAGS}
    assert not _options("quantize") & {"--no-bench", "--reference", "--iterations", *TENSORRT_FLAGS}
    assert {"--calib", "--precision", "--target"} <= _options("quantize")
    assert _options("build") >= TENSORRT_FLAGS and "--reference" not in _options("build")
    assert {"--reference", "--load-inputs", "--seed"} <= _options("verify")
    assert not _options("verify") & {"--iterations", "--no-bench"}
    assert {"--iterations", "--batch-sizes"} <= _options("bench") and "--no-bench" not in _options("bench")
    # each command is a superset of the one before it, and compile alone skips bench
    for before, after in itertools.pairwise(PIPELINE[1:]):
        assert _options(before) <= _options(after), (before, after)
    assert _options("compile") == _options("bench") | {"--no-bench"}


def test_every_pipeline_option_reaches_flags_or_run_options():
    known = {f.name for f in fields(Flags)} | {f.name for f in fields(RunOptions)} | {"ctx"}
    for name in PIPELINE:
        params = {p.name for p in _command(name).params}
        assert params <= known, (name, params - known)


@pytest.mark.parametrize(
    ("flag", "enum"),
    [
        ("--precision", Precision),
        ("--target", Target),
        ("--exporter", Exporter),
        ("--simplifier", Simplifier),
        ("--calib-method", CalibrationMethod),
        ("--int8-route", Int8Route),
        ("--reference", Reference),
    ],
)
def test_choices_come_from_the_config_enums(cli, flag, enum):
    param = next(p for p in _command("compile").params if flag in p.opts)
    shown = param.display_type_rich(_command("compile").make_context("compile", []))  # as --help shows it
    assert all(member.value in shown for member in enum), shown
    wrong = cli("compile", flag, "no-such-choice", "--out", "unused")
    assert wrong.code == 2, wrong.text
    assert "no-such-choice" in wrong.err and all(member.value in wrong.err for member in enum), wrong.err


def test_list_options_take_commas_repeats_and_any_case():
    data = _parse("compile", "--precision", "fp32,FP16", "-p", "int8", "--target", "onnxruntime,tensorrt")
    assert data["precisions"] == ["fp32", "fp16", "int8"]
    assert data["targets"] == ["onnxruntime", "tensorrt"]
    data = _parse(
        "build", "--compute-capability", "8.6,8.9", "--exporter", "TorchScript", "--int8-route", "qdq"
    )
    assert data["build"] == {"compute_capabilities": ["8.6", "8.9"], "int8_route": "qdq"}
    assert data["export"] == {"exporter": "torchscript"}
    assert _parse("bench", "--batch-sizes", "1,8", "--batch-sizes", "32")["bench"] == {
        "batch_sizes": [1, 8, 32]
    }
    assert _parse("compile", "--no-bench", "--lock-wait", "5")["bench"] == {"enabled": False}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--batch-sizes", "1,,8"], "an empty item"),
        (["bench", "--batch-sizes", "0"], "'0' is not a batch size (1 or more)"),
        (["build", "--compute-capability", "8.6,sm86"], "'sm86' is not a compute capability such as 8.6"),
        (["build", "--builder-optimization-level", "7"], "less than or equal to 5"),
        (["export", "--calib", "synthetic"], "No such option: --calib"),
        (
            ["export", "--calib", "synthetic"],
            "hint: --calib is an option of compile, quantize, build, verify, bench.",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(cli, args, message):
    result = cli(*args)
    assert result.code == 2, result.text
    assert message in result.err, result.err
    assert "Traceback" not in result.text


def test_help_shows_switches_without_placeholders_and_groups_by_concern(cli):
    text = cli("compile", "--help").out
    for panel in ("Model & inputs", "Export & simplify", "Data", "Precision & quantization", "Targets & build",
                  "Verify & bench", "Run & output"):  # fmt: skip
        assert panel in text
    assert "<bool>" not in text and "BOOLEAN" not in text
    assert re.search(r"--no-bench\s+Skip the bench stage", text), text
    export = cli("export", "--help").out
    assert "--calib" not in export and "--no-bench" not in export and "TensorRT" not in export
    init = cli("config", "init", "--help").out
    assert "Overwrite PATH if it already exists" in init and "Re-run every stage" not in init


@pytest.mark.parametrize("command", [*PIPELINE, "matrix", "inspect", "report", "doctor", "config"])
def test_help_is_fast(command):
    """A fresh interpreter prints a command's help within 0.5 s of CPU, interpreter start and imports included.
    CPU time, not wall time: a neighbour on the shared machine slows the wall clock, not the work."""
    code = (
        "import resource, time\n"
        "from infercc.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print('CPU', usage.ru_utime + usage.ru_stime)\n"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    wall = time.perf_counter() - started
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    cpu = float(proc.stdout.rsplit("CPU", 1)[1])
    assert cpu < HELP_CPU_BUDGET_S, f"infercc {command} --help took {cpu:.2f} s of CPU ({wall:.2f} s wall)"


def test_help_loads_no_config_model_or_pipeline():
    """--help reads the options' Enums from infercc.choices; the pydantic config, the pipeline and the renderer
    load only when a command runs (they are what made --help slow)."""
    code = (
        "import sys\nfrom infercc.cli import main\n"
        f"for args in (['--help'], *[[c, '--help'] for c in {PIPELINE!r}]):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('infercc')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    ).stdout
    loaded = out.rsplit("LOADED", 1)[1]
    for module in ("infercc.config", "infercc.pipeline", "infercc.cli.render", "infercc.cli.settings"):
        assert f"'{module}" not in loaded, loaded


def test_a_data_folder_is_named_by_its_flag_and_read_as_images_by_any_picture_suffix(cli, tmp_path):
    """--eval's bad value is reported as --eval; a folder of TIFFs is an image folder (the image reader's own
    suffixes decide), a folder of .npy files a tensor folder."""
    from tests.conftest import zoo

    model = ["-m", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "-o", tmp_path / "out"]
    result = cli("quantize", *model, "--precision", "int8", "--eval", tmp_path / "missing")
    assert result.code == 2 and "--eval " in result.err and "--calib" not in result.err, result.text
    tiffs, tensors = tmp_path / "tiffs", tmp_path / "tensors"
    tiffs.mkdir(), tensors.mkdir()
    (tiffs / "a.tif").write_bytes(b"II*\x00"), (tensors / "a.npy").write_bytes(b"")
    flags = Flags(calib=str(tiffs), eval_=str(tensors))
    data: dict = {"model": {"source": "m:f"}}
    apply_flags(data, flags)
    assert data["calibration"] == {"images": str(tiffs)} and data["evaluation"] == {"folder": str(tensors)}
