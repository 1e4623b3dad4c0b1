"""infercc owns its output folder: it creates it with a marker, refuses a user's folder (unless --out-force),
never writes into /, home or a parent of the current folder, and cleans up only its own dead temporaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infercc.errors import UsageError
from infercc.fsutil import (
    OWNER_MARKER,
    OutDirLock,
    atomic_write_text,
    claim_out_dir,
    remove_stale_temporaries,
)
from tests.conftest import ROOT, run_subprocess

CNN = ["--model", "tests/zoo/cnn.py:small_cnn", "--shape", "x:1x3x32x32"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_new_folder_gets_the_marker(tmp_path: Path) -> None:
    out = claim_out_dir(tmp_path / "a" / "b")
    assert (out / OWNER_MARKER).is_file() and (tmp_path / "a" / OWNER_MARKER).is_file()
    assert not (tmp_path / OWNER_MARKER).exists()  # existed before: not infercc's


def test_a_users_non_empty_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="did not write") as info:
        claim_out_dir(tmp_path)
    assert "--out-force" in (info.value.hint or "")
    assert not (tmp_path / OWNER_MARKER).exists()
    claim_out_dir(tmp_path, force=True)
    assert (tmp_path / OWNER_MARKER).is_file() and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("which", ["root", "home", "parent"])
def test_never_root_home_or_a_parent_of_the_current_folder(tmp_path, monkeypatch, which) -> None:
    home = tmp_path / "home"
    work = home / "project" / "src"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    folder = {"root": Path("/"), "home": home, "parent": work.parent}[which]
    before = sorted(p.name for p in folder.iterdir())
    for force in (False, True):  # --out-force does not lift this
        with pytest.raises(UsageError, match="folder of its own"):
            claim_out_dir(folder, force=force)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_cleanup_removes_only_dead_infercc_temporaries_in_owned_folders(tmp_path: Path) -> None:
    out = claim_out_dir(tmp_path / "out")
    dead, alive = dead_pid(), os.getpid()
    stale = out / f".infercc-tmp-{dead}-model.onnx.abc"
    running = out / f".infercc-tmp-{alive}-model.onnx.def"
    users = [
        out / ".tmp-important-notes.txt",
        out / ".infercc-tmp-notes.txt",  # no pid: not infercc's naming
        out / "src" / "deep" / f".infercc-tmp-{dead}-draft.py",  # user subfolder (no marker)
        out / "src" / "deep" / ".tmp-draft-v2.py",
    ]
    atomic_write_text(out / "made" / "report.txt", "x")  # a subfolder infercc made
    owned_stale = out / "made" / f".infercc-tmp-{dead}-report.txt.x"
    for path in [stale, running, owned_stale, *users]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data")
    removed = remove_stale_temporaries(out)
    assert sorted(removed) == sorted([stale, owned_stale])
    assert running.exists() and all(p.read_text() == "data" for p in users)


def test_cleanup_does_nothing_in_a_folder_without_the_marker(tmp_path: Path) -> None:
    victim = tmp_path / f".infercc-tmp-{dead_pid()}-x"
    victim.write_text("data")
    assert remove_stale_temporaries(tmp_path) == [] and victim.exists()


def test_lock_file_that_is_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / OutDirLock.FILE).mkdir()
    with pytest.raises(UsageError, match="lock file"), OutDirLock(tmp_path):
        pass


def test_cli_refuses_a_project_folder_and_keeps_every_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / ".tmp-important-notes.txt").write_text("notes")
    (project / "src" / "deep" / ".tmp-draft-v2.py").write_text("draft")
    (project / f".infercc-tmp-{dead_pid()}-lookalike").write_text("mine")
    before = snapshot(project)
    result = run_subprocess("export", *CNN, "--out", project, timeout=120)
    assert result.code == 2, result.text
    assert "infercc did not write" in result.err and "--out-force" in result.err
    assert "Traceback" not in result.text
    assert snapshot(project) == before


def test_cli_out_force_writes_beside_user_files_and_deletes_none(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / ".tmp-important-notes.txt").write_text("notes")
    (project / "src" / "deep" / ".tmp-draft-v2.py").write_text("draft")
    (project / "src" / "deep" / f".infercc-tmp-{dead_pid()}-x").write_text("user's")
    before = snapshot(project)
    result = run_subprocess(
        "export", *CNN, "--exporter", "torchscript", "--out", project, "--out-force", timeout=240
    )
    assert result.code == 0, result.text
    after = snapshot(project)
    assert {k: after[k] for k in before} == before
    assert (project / "model.onnx").is_file() and (project / OWNER_MARKER).is_file()


def test_cli_refuses_slash_and_home_before_writing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for out in ("/", str(home)):
        result = run_subprocess("export", *CNN, "--out", out, env={"HOME": str(home)}, timeout=120)
        assert result.code == 2, result.text
        assert "folder of its own" in result.err
    assert list(home.iterdir()) == []
    assert not Path("/", OWNER_MARKER).exists()
    assert ROOT.is_dir()
