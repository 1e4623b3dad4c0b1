"""Nothing lost, nothing half-written: runs killed mid-stage, two runs on one --out, edited or truncated
artifacts and manifests, full disks. Real CLI subprocesses on a tiny model (tests/corpus/models/slow.py,
whose forward sleeps INFERCC_TEST_SLEEP seconds so that the export stage is long enough to interrupt).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import INFERCC, ROOT, run_subprocess

MODEL = ["--model", "tests/corpus/models/slow.py:slow_cnn", "--shape", "x:1x3x32x32"]
ARGS = [*MODEL, "--exporter", "torchscript", "--no-bench"]
INTERRUPTED = "interrupted; finished stages are kept and the next run resumes from there."


def compile_args(out: Path, *extra: str) -> list[str]:
    return ["compile", *ARGS, "--out", str(out), *extra]


def start(out: Path, sleep: float, *extra: str) -> subprocess.Popen[str]:
    """A compile in the background; SIGINT restored to its default (CI shells may start us ignoring it)."""
    return subprocess.Popen(
        [*INFERCC, *compile_args(out, *extra)],
        cwd=ROOT,
        env={**os.environ, "INFERCC_TEST_SLEEP": str(sleep)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(predicate, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before the awaited moment:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run to reach the awaited moment")
        time.sleep(0.01)


def in_export(out: Path) -> bool:
    return any(out.glob(".infercc-tmp-*-model.onnx.*"))


def stage_status(out: Path) -> dict[str, str]:
    try:
        stages = json.loads((out / "manifest.json").read_text())["stages"]
    except (OSError, ValueError):
        return {}
    return {name: record["status"] for name, record in stages.items()}


def artifact_hashes(out: Path) -> dict[str, str]:
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    hashes = {
        art["name"]: art["sha256"]
        for record in stages.values()
        if record["status"] == "done"
        for art in record["outputs"]
    }
    for name, digest in hashes.items():  # the manifest matches the files
        path = next(out / a["path"] for r in stages.values() for a in r["outputs"] if a["name"] == name)
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
    return hashes


def no_temporaries(out: Path) -> bool:
    return not any(p.name.startswith(".infercc-tmp-") for p in out.rglob("*"))


def rerun(out: Path, *extra: str) -> dict:
    result = run_subprocess(
        *compile_args(out, "--json", *extra), env={"INFERCC_TEST_SLEEP": "0"}, timeout=300
    )
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    return result.json()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Artifact sha256s of an uninterrupted run."""
    out = tmp_path_factory.mktemp("baseline")
    document = rerun(out)
    assert set(document["ran"]) >= {"export", "simplify", "verify"}
    return artifact_hashes(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_export_exits_130_cleanly_and_resumes(tmp_path, baseline, sig) -> None:
    out = tmp_path / "out"
    proc = start(out, 0.5)
    wait_for(lambda: in_export(out), proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert stderr.strip().splitlines()[-1] == f"error: {INTERRUPTED}"
    assert "Traceback" not in stdout + stderr
    assert no_temporaries(out)  # the half-written model.onnx was removed
    assert stage_status(out).get("export") != "done"
    assert not (out / "model.onnx").exists()
    document = rerun(out)
    assert "export" in document["ran"]
    assert artifact_hashes(out) == baseline


def test_sigkill_mid_export_leaves_nothing_that_looks_finished(tmp_path, baseline) -> None:
    out = tmp_path / "out"
    proc = start(out, 0.5)
    wait_for(lambda: in_export(out), proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.onnx").exists() and in_export(
        out
    )  # only a .infercc-tmp- file, never the final name
    # the kernel dropped the lock: the next run starts at once, removes the stale file and finishes
    document = rerun(out)
    assert "export" in document["ran"]
    assert no_temporaries(out)
    assert artifact_hashes(out) == baseline


def test_sigkill_after_export_resumes_from_the_last_completed_stage(tmp_path, baseline) -> None:
    out = tmp_path / "out"
    proc = start(out, 0.2)
    wait_for(lambda: stage_status(out).get("export") == "done", proc)
    proc.kill()  # within the following stage (simplify)
    proc.communicate(timeout=60)
    document = rerun(out)
    assert "export" in document["cached"], document
    assert "verify" in document["ran"]
    assert artifact_hashes(out) == baseline


def test_second_run_on_the_same_out_refuses_or_waits(tmp_path, baseline) -> None:
    out = tmp_path / "out"
    first = start(out, 0.7)
    try:
        wait_for(lambda: in_export(out), first)
        refused = run_subprocess(*compile_args(out), timeout=120)
        assert refused.code == 2, refused.text
        assert f"Another infercc run (pid {first.pid}) is using" in refused.err
        assert "--lock-wait" in refused.err and "Traceback" not in refused.text
        waited = run_subprocess(*compile_args(out, "--lock-wait", "0.5"), timeout=120)
        assert waited.code == 2 and "Another infercc run" in waited.err
        # a waiting run starts once the first finishes, and finds everything up to date
        document = rerun(out, "--lock-wait", "300")
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stdout + stderr
    assert document["ran"] == [] and set(document["cached"]) >= {"export", "simplify", "verify"}
    assert artifact_hashes(out) == baseline


def test_edited_truncated_or_damaged_files_are_detected_and_rebuilt(
    tmp_path, baseline, cli, monkeypatch
) -> None:
    monkeypatch.chdir(ROOT)  # in-process through the real entry point: torch loads once for all five runs
    out = tmp_path / "out"

    def run() -> tuple[dict, str]:
        result = cli(*compile_args(out, "--json"))
        assert result.code == 0, result.text
        assert "Traceback" not in result.text
        return result.json(), result.err

    run()
    (out / "model.fp32.onnx").write_bytes((out / "model.fp32.onnx").read_bytes()[:100])
    document, err = run()
    assert "warning: simplify: model.fp32.onnx changed size" in err
    assert document["ran"][0] == "simplify" and "export" in document["cached"]

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"]["export"]["outputs"][0]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    document, err = run()
    assert "does not match its recorded sha256" in err and "export" in document["ran"]

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"]["simplify"]["outputs"][0]["path"] = "../../outside.onnx"
    (out / "manifest.json").write_text(json.dumps(manifest))
    document, err = run()
    assert "outside the output folder" in err and "simplify" in document["ran"]

    (out / "manifest.json").write_text((out / "manifest.json").read_text()[:200])
    document, err = run()
    assert "manifest.json is damaged" in err and "export" in document["ran"]
    assert artifact_hashes(out) == baseline


@pytest.mark.parametrize("victim", ["model.fp32.onnx", "manifest.json"])
def test_disk_full_while_writing(tmp_path, baseline, cli, monkeypatch, victim) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    monkeypatch.setenv("INFERCC_INJECT_WRITE_ERROR", victim)
    result = cli(*compile_args(out))
    assert result.code == 4, result.text
    assert f"No space left on device while writing {out / victim}" in result.err
    assert "Free disk space" in result.err and "Traceback" not in result.text
    assert no_temporaries(out)
    if victim == "model.fp32.onnx":
        assert stage_status(out) == {"export": "done", "simplify": "failed"}
    monkeypatch.delenv("INFERCC_INJECT_WRITE_ERROR")
    assert cli(*compile_args(out)).code == 0
    assert artifact_hashes(out) == baseline


def _can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    ok = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(target)], capture_output=True
    )
    return ok.returncode == 0


def test_a_really_full_disk(tmp_path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        out = disk / "out"
        args = ["compile", "--model", "tests/zoo/cnn.py:small_cnn", "--shape", "x:1x3x32x32", "--out", out]
        result = run_subprocess(*args, "--exporter", "torchscript", "--no-bench", timeout=300)
        assert result.code == 4, result.text
        assert "No space left on device while writing" in result.err and "Traceback" not in result.text
        assert no_temporaries(out)
        if (out / "manifest.json").exists():
            artifact_hashes(out)  # every stage recorded as done has its complete files
    finally:
        subprocess.run(["umount", str(disk)], check=False)
