"""The bad-input corpus: every case exits with its documented code, says what is wrong in words a user
can act on, and never shows a traceback (unless -v).

Configs live in tests/corpus/configs/*.yaml; each starts with `# expect: CODE | words | ...` (run as real
CLI subprocesses: config handling never imports torch, so they are quick). Model, shape, ONNX and
environment cases are the table below, run through the real entry point in-process (torch loads once);
bad model files come from tests/corpus/make.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_subprocess

CONFIGS = ROOT / "tests" / "corpus" / "configs"
CNN = "tests/zoo/cnn.py:small_cnn"
BAD = "tests/zoo/bad.py"
NO_HEADER = {  # files that cannot carry an `# expect:` line
    "empty.yaml": (2, ["is empty", "infercc config init"]),
    "not_utf8.yaml": (2, ["not UTF-8"]),
}


def _expectation(path: Path) -> tuple[int, list[str]]:
    if path.name in NO_HEADER:
        return NO_HEADER[path.name]
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name} needs an '# expect: CODE | words' first line"
    code, *words = (part.strip() for part in first.removeprefix("# expect:").split("|"))
    return int(code), words


def assert_clean(text: str) -> None:
    assert "Traceback" not in text, text
    assert "internal error" not in text, text


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_corpus(path: Path, tmp_path: Path) -> None:
    code, words = _expectation(path)
    result = run_subprocess("compile", path.relative_to(ROOT), "--out", tmp_path / "out", timeout=120)
    assert result.code == code, result.text
    for word in words:
        assert word in result.err, f"{word!r} not in:\n{result.err}"
    assert_clean(result.text)
    assert "INFERCC-PWNED" not in result.text  # YAML tags are never constructed, let alone run
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_verbose_shows_the_traceback_and_the_same_message(tmp_path: Path) -> None:
    result = run_subprocess("compile", CONFIGS / "wrong_type.yaml", "--out", tmp_path, "-v", timeout=120)
    assert result.code == 2
    assert "Traceback" in result.err and "verify.samples" in result.err


def test_usage_errors_of_the_command_line_exit_2(tmp_path: Path) -> None:
    for args, words in (
        (["compile", "--no-such-flag"], ["No such option"]),
        (["compile", "--opset", "abc"], ["--opset"]),
        (["no-such-command"], ["No such command"]),
        (["compile", "no/such/config.yaml"], ["does not exist", "config init"]),
        (["compile", "--model", CNN, "--set", "verify.samples"], ["expected dotted.key=VALUE"]),
        (["compile", "--model", CNN, "--set", "verify.smaples=3"], ["did you mean 'samples'"]),
        (["compile", "--model", CNN, "--set", "verify.samples=[1"], ["not valid YAML"]),
        (
            ["compile", "--model", CNN, "--precision", "fp64"],
            ["--precision", "'fp64' is not one of fp32, fp16"],
        ),
        (["compile", "--model", CNN, "--lock-wait", "-1"], ["lock_wait_s"]),
        (["compile", "--model", CNN, "--model-arg", "novalue"], ["expected KEY=VALUE"]),
        (["compile", "--model", CNN, "--calib", "/no/such/folder"], ["--calib", "not a folder"]),
        (["inspect", "/no/such/file.onnx"], ["does not exist"]),
    ):
        result = (
            run_subprocess(*args, "--out", tmp_path, timeout=120)
            if args[0] == "compile"
            else run_subprocess(*args)
        )
        assert result.code == 2, (args, result.text)
        for word in words:
            assert word in result.err, (args, word, result.err)
        assert_clean(result.text)


def test_messages_that_quote_user_input_are_printed_verbatim(tmp_path: Path) -> None:
    """Brackets in paths/values are not console markup (they used to crash the error printer)."""
    result = run_subprocess("export", "--model", "/tmp/[/x]/m.py:f", "--out", tmp_path, timeout=120)
    assert result.code == 2 and "[/x]" in result.err, result.text
    assert_clean(result.text)
    result = run_subprocess("export", "--model", CNN, "--shape", "x:[/b]", "--out", tmp_path, timeout=120)
    assert result.code == 2 and "Cannot read --shape x" in result.err, result.text
    assert_clean(result.text)


# --- model sources, shapes, ONNX files, environment: in-process through infercc.cli.main ---------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.corpus.make import make_all

    return make_all(tmp_path_factory.mktemp("corpus"))


CASES = [
    # id, args ({f[name]} = a generated bad file), exit code, words that must appear
    ("missing_model_file", ["--model", "no/such/model.py:make"], 2, ["no/such/model.py does not exist"]),
    ("missing_onnx", ["--model", "no_such.onnx"], 2, ["no_such.onnx does not exist"]),
    ("py_without_factory", ["--model", f"{BAD}"], 2, ["name the factory function"]),
    ("factory_missing", ["--model", "tests/zoo/cnn.py:nope"], 2, ["no function 'nope'", "small_cnn"]),
    (
        "factory_not_module",
        ["--model", f"{BAD}:not_a_module"],
        2,
        ["returned a int", "not a torch.nn.Module"],
    ),
    ("factory_raises", ["--model", f"{BAD}:raises"], 2, ["raised ValueError: boom", "-v"]),
    (
        "factory_bad_kwarg",
        ["--model", CNN, "--model-arg", "bogus=1", "--shape", "x:1x3x32x32"],
        2,
        ["unexpected keyword argument 'bogus'", "--model-arg"],
    ),
    (
        "import_calls_exit_0",
        ["--model", "tests/corpus/models/exits_on_import.py:make", "--shape", "x:1x4"],
        2,
        ["exits_on_import.py called sys.exit(0) while being imported"],
    ),
    (
        "factory_calls_exit_0",
        ["--model", f"{BAD}:exits_in_factory", "--shape", "x:1x4"],
        2,
        ["exits_in_factory called sys.exit(0) while building the model"],
    ),
    (
        "factory_exit_3_is_not_missing_runtime",
        ["--model", f"{BAD}:exits_with_3", "--shape", "x:1x4"],
        2,
        ["called sys.exit(3)"],
    ),
    (
        "forward_calls_exit_0",
        ["--model", f"{BAD}:exits_in_forward", "--shape", "x:1x4"],
        2,
        ["forward called sys.exit(0) while running on the"],
    ),
    ("forward_returns_none", ["--model", f"{BAD}:returns_none", "--shape", "x:1x4"], 2, ["returned None"]),
    (
        "source_is_stdlib_shell",
        ["--model", "subprocess:getoutput", "--model-arg", "cmd=touch INFERCC-PWNED", "--shape", "x:1x4"],
        2,
        ["'subprocess', a module of the Python standard library"],
    ),
    ("source_is_stdlib_dotted", ["--model", "os.path:join", "--shape", "x:1x4"], 2, ["standard library"]),
    ("source_is_infercc", ["--model", "infercc.cli:main", "--shape", "x:1x4"], 2, ["part of infercc itself"]),
    (
        "source_is_stdlib_file",
        ["--model", f"{__import__('subprocess').__file__}:getoutput", "--shape", "x:1x4"],
        2,
        ["a file of the Python standard library"],
    ),
    (
        "module_missing",
        ["--model", "no_such_pkg.models:make"],
        2,
        ["Cannot find Python module 'no_such_pkg.models'"],
    ),
    (
        "forward_fails",
        ["--model", f"{BAD}:bad_forward", "--shape", "x:1x8"],
        2,
        ["forward pass failed", "x:1x8", "mat1 and mat2"],
    ),
    ("wrong_rank_pytorch", ["--model", CNN, "--shape", "x:1x3x32"], 2, ["forward pass failed", "x:1x3x32"]),
    (
        "weights_missing",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", "no_such.pt"],
        2,
        ["no_such.pt does not exist"],
    ),
    (
        "weights_wrong_keys",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", "{f[wrong_keys.pt]}"],
        2,
        ["does not match the model", "missing key(s)", "unexpected key(s): foo, bar"],
    ),
    (
        "weights_wrong_shapes",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", "{f[wrong_shapes.pt]}"],
        2,
        ["does not match the model", "fc.weight is 5x64 in the file, 10x64 in the model"],
    ),
    (
        "weights_truncated",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", "{f[truncated.pt]}"],
        2,
        ["truncated or corrupt"],
    ),
    (
        "weights_python_source",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", CNN.split(":")[0]],
        2,
        ["is Python source, not a state dict saved with torch.save", "--model file.py:factory"],
    ),
    (
        "weights_pickled",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--weights", "{f[pickled_model.pt]}"],
        2,
        ["weights_only=True refuses", "--allow-pickle", "SmallCNN"],
    ),
    (
        "model_pickled",
        ["--model", "{f[pickled_model.pt]}", "--shape", "x:1x3x32x32"],
        2,
        ["needs full unpickling to rebuild tests.zoo.cnn.SmallCNN", "arbitrary code", "--allow-pickle"],
    ),
    (
        "model_is_state_dict",
        ["--model", "{f[state_dict.pt]}", "--shape", "x:1x3x32x32"],
        2,
        ["holds a state dict, not a model", "--weights"],
    ),
    (
        "model_truncated",
        ["--model", "{f[truncated.pt]}", "--shape", "x:1x3x32x32"],
        2,
        ["truncated or corrupt"],
    ),
    (
        "shape_not_an_input",
        ["--model", CNN, "--shape", "y:1x3x32x32"],
        2,
        ["'y' is not an input", "inputs are: x"],
    ),
    ("shape_missing", ["--model", CNN], 2, ["Input x has no shape", "--shape x:"]),
    (
        "shape_unreadable",
        ["--model", CNN, "--shape", "x:1x3xAx32"],
        2,
        ["Cannot read --shape x", "1x3x224x224"],
    ),
    ("shape_empty_name", ["--model", CNN, "--shape", ":1x3x32x32"], 2, ["input name before ':' is empty"]),
    (
        "shape_twice",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--shape", "x:2x3x32x32"],
        2,
        ["gives input x twice"],
    ),
    (
        "shape_min_above_max",
        ["--model", CNN, "--min-shape", "x:4x3x32x32", "--max-shape", "x:1x3x32x32"],
        2,
        ["inputs.x", "min <= opt <= max"],
    ),
    (
        "shape_rank_differs",
        ["--model", CNN, "--shape", "x:1x3x32x32", "--min-shape", "x:1x3x32"],
        2,
        ["different ranks"],
    ),
    ("onnx_dynamic_without_shape", ["--model", "{f[dynamic.onnx]}"], 2, ["dynamic dimension", "--shape x:"]),
    (
        "onnx_wrong_rank",
        ["--model", "{f[dynamic.onnx]}", "--shape", "x:2x4x5"],
        2,
        ["has rank 3", "declares rank 2 (Nx4)", "--shape x:1x4"],
    ),
    (
        "onnx_fixed_dim_changed",
        ["--model", "{f[dynamic.onnx]}", "--shape", "x:2x5"],
        2,
        ["dimension 1", "fixes it at 4"],
    ),
    ("onnx_not_an_input", ["--model", "{f[dynamic.onnx]}", "--shape", "z:2x4"], 2, ["'z' is not an input"]),
    (
        "onnx_truncated",
        ["--model", "{f[truncated.onnx]}"],
        2,
        ["not a readable ONNX file", "truncated or corrupt"],
    ),
    ("onnx_garbage", ["--model", "{f[garbage.onnx]}"], 2, ["garbage.onnx", "ONNX"]),
    ("onnx_empty", ["--model", "{f[empty.onnx]}"], 2, ["empty.onnx is empty (0 bytes)"]),
    (
        "onnx_invalid_graph",
        ["--model", "{f[invalid_graph.onnx]}"],
        2,
        ["not a valid ONNX graph", "'missing'", "infercc inspect"],
    ),
    ("onnx_future_ir", ["--model", "{f[future_ir.onnx]}"], 2, ["not a valid ONNX graph", "ir_version 99"]),
    ("onnx_unknown_op", ["--model", "{f[custom_op.onnx]}"], 4, ["has no op com.acme:FancyOp"]),
    (
        "onnx_future_opset",
        ["--model", "{f[future_opset.onnx]}"],
        4,
        ["does not support opset 30", "--opset", "upgrade onnxruntime"],
    ),
    (
        "runtime_not_installed",
        ["--model", "{f[dynamic.onnx]}", "--shape", "x:2x4", "--set", "verify.runtimes=[onnxruntime-cuda]"],
        3,
        ["onnxruntime-cuda", "pip install 'infercc[gpu]'"],
    ),
    (
        "runtime_unknown",
        ["--model", "{f[dynamic.onnx]}", "--shape", "x:2x4", "--set", "verify.runtimes=[foo]"],
        2,
        ["Unknown runtime 'foo'", "onnxruntime-cpu"],
    ),
]


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_model_shape_onnx_environment_corpus(
    cli, bad_files, tmp_path, monkeypatch, args, code, words
) -> None:
    monkeypatch.chdir(ROOT)
    args = [a.format(f=bad_files) for a in args]
    goal = "compile" if code in (3, 4) or "verify.runtimes" in " ".join(args) else "export"
    result = cli(goal, *args, "--out", tmp_path / "out", "--no-bench" if goal == "compile" else "-q")
    assert result.code == code, result.text
    for word in words:
        assert word in result.err, f"{word!r} not in:\n{result.err}"
    assert_clean(result.text)
    manifest = tmp_path / "out" / "manifest.json"
    if manifest.exists():  # whatever was recorded is consistent: no stage marked done without its files
        import json

        for stage in json.loads(manifest.read_text())["stages"].values():
            for art in stage["outputs"] if stage["status"] == "done" else []:
                assert (tmp_path / "out" / art["path"]).is_file()


def test_sys_argv_is_the_model_file_during_import(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    model = ROOT / "tests" / "corpus" / "models" / "argv_at_import.py"
    result = cli("export", "--model", f"{model}:make", "--shape", "x:1x4", "--out", tmp_path, "-q")
    assert result.code == 0, result.text
    assert_clean(result.text)


def test_exit_in_user_code_through_a_real_subprocess_with_json(tmp_path: Path) -> None:
    """sys.exit(0) in a model file: exit 2, and --json still prints its error document."""
    model = "tests/corpus/models/exits_on_import.py:make"
    result = run_subprocess("export", "--model", model, "--shape", "x:1x4", "--out", tmp_path, "--json")
    assert result.code == 2, result.text
    document = result.json()
    assert document["status"] == "error" and "called sys.exit(0) while being imported" in document["error"]
    assert_clean(result.text)


def test_a_config_naming_a_shell_runs_nothing(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    marker = tmp_path / "PWNED"
    config.write_text(
        f"model:\n  source: subprocess:getoutput\n  kwargs:\n    cmd: touch {marker}\ninputs:\n  x:\n    shape: 1x4\n"
    )
    result = run_subprocess("compile", config, "--out", tmp_path / "out", timeout=120)
    assert result.code == 2 and "standard library" in result.err, result.text
    assert not marker.exists()
    assert_clean(result.text)


def test_model_errors_through_a_real_subprocess(tmp_path: Path) -> None:
    """The same messages from the installed entry point (no in-process state)."""
    result = run_subprocess("export", "--model", f"{BAD}:raises", "--out", tmp_path, timeout=240)
    assert result.code == 2 and "raised ValueError: boom" in result.err
    assert_clean(result.text)


def test_allow_pickle_warns_and_loads(cli, bad_files, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = cli(
        "export",
        "--model",
        bad_files["pickled_model.pt"],
        "--allow-pickle",
        "--shape",
        "x:1x3x32x32",
        "--out",
        tmp_path,
        "--exporter",
        "torchscript",
    )
    assert result.code == 0, result.text
    assert "--allow-pickle" in result.out and "runs any code" in result.out


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, words in (
        (blocker, ["exists and is not a folder"]),
        (blocker / "sub", ["Cannot write to output folder"]),
    ):
        result = run_subprocess(
            "compile", "--model", CNN, "--shape", "x:1x3x32x32", "--out", out, timeout=120
        )
        assert result.code == 2, result.text
        for word in words:
            assert word in result.err
        assert_clean(result.text)
