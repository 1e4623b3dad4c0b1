"""Signals and concurrency, with real child processes: SIGINT and SIGTERM while verify's runtime children are
alive, two runs started at the same moment on one --out, and an --out deleted or made read-only mid-run.

Each case asserts the exit code and the message, no traceback, no half-written file under a final name, that
every process the run started is gone, that the lock is free afterwards, and that the next run resumes.
The model is tests/corpus/models/slow.py, whose forward sleeps INFERCC_TEST_SLEEP seconds (verify calls it for
every input set without a stored reference, so verify is long enough to interrupt).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_robustness import (
    INTERRUPTED,
    artifact_hashes,
    no_temporaries,
    rerun,
    stage_status,
    start,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("signals")  # kept together: they time a shared 2-core machine


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren: the fork server and the runtime children)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except (OSError, ValueError):
                continue
            todo += sorted(children - found)
            found |= children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def all_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    """The pids still alive after waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


def test_sigterm_mid_verify_stops_every_child_frees_the_lock_and_resumes(tmp_path: Path) -> None:
    """(SIGINT mid-export: tests/test_robustness.py; SIGTERM is what a scheduler sends, here with children alive.)"""
    out = tmp_path / "out"
    proc = start(out, 0.3)
    wait_for(lambda: stage_status(out).get("simplify") == "done", proc)
    wait_for(lambda: len(descendants(proc.pid)) > 0, proc)  # the fork server, or a runtime's child
    time.sleep(0.5)
    started = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert stderr.strip().splitlines()[-1] == f"error: {INTERRUPTED}"
    assert "Traceback" not in stdout + stderr
    assert all_gone(started) == set(), "processes the interrupted run started are still running"
    assert no_temporaries(out)
    assert stage_status(out).get("verify") != "done"
    # the lock is free: a run that refuses to wait starts at once, and resumes after the finished stages
    document = rerun(out, "--lock-wait", "0")
    assert "verify" in document["ran"] and {"export", "simplify"} <= set(document["cached"])
    artifact_hashes(out)  # every recorded artifact is there and hashes as recorded


def test_two_runs_started_together_one_runs_the_other_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = [start(out, 0.2) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in runs]
    results = [(p.pid, p.returncode, so, se) for p, (so, se) in zip(runs, outputs, strict=True)]
    codes = sorted(code for _, code, _, _ in results)
    assert codes == [0, 2], [(code, err[-500:]) for _, code, _, err in results]
    winner = next(pid for pid, code, _, _ in results if code == 0)
    refused = next(err for _, code, _, err in results if code == 2)
    assert f"Another infercc run (pid {winner}) is using {out}" in refused
    assert "--lock-wait" in refused and "Traceback" not in refused
    assert no_temporaries(out)
    artifact_hashes(out)


def test_out_deleted_mid_run_stops_with_a_message_and_recreates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(out, 0.3)
    wait_for(lambda: stage_status(out).get("simplify") == "done", proc)
    for _ in range(50):  # the run may add a file while the folder is being removed (ENOTEMPTY): remove again
        try:
            shutil.rmtree(out)
            break
        except OSError:
            time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 4, stdout + stderr
    assert f"The output folder {out} was deleted while this run was writing into it" in stderr
    assert "Traceback" not in stdout + stderr
    assert not out.exists()  # nothing written into a folder that another run may now own
    document = rerun(out)
    assert "export" in document["ran"]


def _read_only(folder: Path) -> None:
    if os.geteuid() == 0:  # root writes through permissions: a read-only bind mount instead
        if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
            pytest.skip("root without mount: cannot make a folder read-only")
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder), str(folder)], check=True)
    else:
        folder.chmod(0o555)


def _writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.chmod(0o755)


def test_out_made_read_only_mid_run_is_exit_2_and_the_next_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(out, 0.3)
    try:
        wait_for(lambda: stage_status(out).get("simplify") == "done", proc)
        _read_only(out)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _writable(out)
    assert proc.returncode == 2, stdout + stderr
    assert f"Cannot write {out}/" in stderr and (
        "Read-only file system" in stderr or "Permission denied" in stderr
    )
    assert "Traceback" not in stdout + stderr
    assert stage_status(out).get("simplify") == "done"
    document = rerun(out)
    assert {"export", "simplify"} <= set(document["cached"]) and "verify" in document["ran"]
    assert no_temporaries(out)
