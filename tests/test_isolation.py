"""Crash isolation with real child processes: a runtime that segfaults, aborts or is killed fails its own
artifact/runtime pair with the reason; the other pairs finish, the report is written, the exit code is 4."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from infercc.errors import StageError
from infercc.runtimes import base
from infercc.runtimes.isolation import IsolatedRuntime, RuntimeCrashed, load_check, require_loads
from tests.conftest import zoo

CNN = ["--model", zoo("cnn.py:small_cnn"), "--shape", "x:1x3x32x32", "--exporter", "torchscript"]
FEED = {"x": np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)}


pytestmark = pytest.mark.usefixtures("crashing_runtime")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.fp32.onnx and model.fp16.onnx of the zoo CNN (load-gated on ONNX Runtime only: crashing-cpu, which
    is registered here, would fail the FP16 stage's load gate, as tests/test_load_gate.py shows)."""
    from infercc.cli import main

    out = tmp_path_factory.mktemp("isolation")
    with pytest.raises(SystemExit) as exc:
        main(["quantize", *CNN, "--precision", "fp32,fp16", "-o", str(out), "-q",
              "--set", "verify.runtimes=[onnxruntime-cpu]"])  # fmt: skip
    assert exc.value.code == 0
    return out


def test_runs_in_a_child_process_with_the_runtimes_interface(built: Path) -> None:
    with IsolatedRuntime("onnxruntime-cpu", built / "model.fp32.onnx", threads=1) as runtime:
        assert runtime.pid not in (None, os.getpid())
        inputs, outputs = runtime.io_spec()
        assert [t.name for t in inputs] == ["x"] and outputs[0].shape[-1] == 10
        got = runtime.infer(FEED)
        times = runtime.time_infer(FEED, 3, 1)
        assert not hasattr(runtime, "time_h2d")  # an attribute the adapter lacks is missing here too
        assert runtime.peak_rss() > runtime.rss_at_start > 0
        pid = runtime.pid
    assert len(times) == 3 and all(t > 0 for t in times)
    from infercc.onnxrt.runtime import OrtCPU

    with OrtCPU(built / "model.fp32.onnx", threads=1) as local:
        np.testing.assert_array_equal(*got.values(), *local.infer(FEED).values())
    with pytest.raises(ProcessLookupError):  # the child is gone after exit
        os.kill(pid, 0)


def test_segfault_while_loading_is_a_crash_naming_runtime_file_and_signal(built: Path) -> None:
    with pytest.raises(RuntimeCrashed) as exc, IsolatedRuntime("crashing-cpu", built / "model.fp16.onnx"):
        pass
    assert exc.value.message == "crashing-cpu crashed loading model.fp16.onnx: SIGSEGV"
    assert exc.value.exit_code == 4


def test_abort_while_running_and_a_kill_are_crashes(built: Path) -> None:
    with IsolatedRuntime("crashing-cpu", built / "model.fp32.onnx") as runtime:
        runtime.infer(FEED)  # fine
        with pytest.raises(RuntimeCrashed, match=r"crashing-cpu crashed running model.fp32.onnx: SIGABRT"):
            runtime.infer({"x": np.full((1, 3, 32, 32), -7.0, np.float32)})
    with IsolatedRuntime("onnxruntime-cpu", built / "model.fp32.onnx") as runtime:
        os.kill(runtime.pid, signal.SIGKILL)  # what the kernel's OOM killer does
        time.sleep(0.05)
        with pytest.raises(
            RuntimeCrashed, match=r"crashed timing model.fp32.onnx: SIGKILL \(killed: out of memory\?\)"
        ):
            runtime.time_infer(FEED, 2, 0)


def test_a_runtime_error_in_the_child_keeps_its_type_and_message(built: Path) -> None:
    from infercc.errors import UsageError

    with IsolatedRuntime("onnxruntime-cpu", built / "model.fp32.onnx") as runtime:
        with pytest.raises(UsageError, match=r"Inputs do not match model\.fp32\.onnx: unknown y"):
            runtime.infer({"y": FEED["x"]})
        assert next(iter(runtime.infer(FEED).values())).shape == (1, 10)  # the child is still serving


def test_load_check_proves_an_artifact_loads_and_runs(built: Path) -> None:
    ok, crashed, skipped = load_check(
        built / "model.fp16.onnx", ["onnxruntime-cpu", "crashing-cpu", "onnxruntime-cuda"], FEED
    )
    assert ok.ok and list(ok.outputs.values()) == [[1, 10]] and ok.non_finite == ()
    assert crashed.crashed and not crashed.ok and "SIGSEGV" in crashed.reason
    assert skipped.skipped and "CUDA" in skipped.reason
    with pytest.raises(StageError, match=r"crashing-cpu crashed loading model\.fp16\.onnx: SIGSEGV"):
        require_loads(built / "model.fp16.onnx", ["onnxruntime-cpu", "crashing-cpu"], FEED)
    assert [r.ok for r in require_loads(built / "model.fp32.onnx", ["crashing-cpu"], FEED)] == [True]


def test_verify_with_a_crashing_runtime_finishes_other_pairs_writes_report_exits_4(cli, built: Path) -> None:
    result = cli(
        "verify", *CNN, "--precision", "fp32,fp16", "-o", built,
        "--set", "verify.runtimes=[onnxruntime-cpu,crashing-cpu]",
    )  # fmt: skip
    assert result.code == 4, result.text
    assert "crashing-cpu crashed loading model.fp16.onnx: SIGSEGV" in result.err
    assert "✗ verify" in result.text  # the stage finished, but its line must not read as a pass
    metrics = json.loads((built / "manifest.json").read_text())["stages"]["verify"]["metrics"]
    assert metrics["crashes"] == ["crashing-cpu crashed loading model.fp16.onnx: SIGSEGV"]
    passed = {(r["artifact"], r["runtime"]): r["passed"] for r in metrics["results"]}
    assert passed == {
        ("onnx", "onnxruntime-cpu"): True,
        ("fp32", "onnxruntime-cpu"): True,
        ("fp32-ort", "onnxruntime-cpu"): True,
        ("fp16", "onnxruntime-cpu"): True,
        ("onnx", "crashing-cpu"): True,
        ("fp32", "crashing-cpu"): True,
        ("fp32-ort", "crashing-cpu"): True,
        ("fp16", "crashing-cpu"): False,
    }
    report = json.loads((built / "report.json").read_text())
    assert report["status"] == "failed"
    again = cli(
        "verify", *CNN, "--precision", "fp32,fp16", "-o", built, "--json",
        "--set", "verify.runtimes=[onnxruntime-cpu,crashing-cpu]",
    )  # fmt: skip
    assert again.code == 4 and again.json()["status"] == "failed" and again.json()["exit_code"] == 4
    crashed = [r for r in report["verify"]["results"] if r["runtime"] == "crashing-cpu" and not r["passed"]]
    assert crashed[0]["failures"] == ["crashing-cpu crashed loading model.fp16.onnx: SIGSEGV"]


def test_an_artifact_that_crashes_the_accuracy_check_fails_the_stage(built: Path, monkeypatch) -> None:
    """Quantize measures accuracy in a child process too: a crash there is exit 4 with the reason."""
    from infercc.quantization import accuracy

    class Batches:
        def labelled_batches(self, limit=None):
            yield {"x": np.full((1, 3, 32, 32), -7.0, np.float32)}, None

    monkeypatch.setitem(base.REGISTRY, "onnxruntime-cpu", "tests.zoo.crashing_runtime:CrashingOrt")
    with pytest.raises(RuntimeCrashed, match=r"onnxruntime-cpu crashed running model\.fp32\.onnx: SIGABRT"):
        accuracy.run_model(built / "model.fp32.onnx", Batches())
