"""File helpers: atomic writes, hashing and the output-folder lock.

Every artifact is written to a temporary file in its final folder, fsynced, then renamed,
so a killed run never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infercc.errors import LockedError, StageError, UsageError

TMP_PREFIX = ".tmp-"
# Test hook: a glob of file names whose atomic write fails with ENOSPC (simulates a full disk).
INJECT_WRITE_ERROR_ENV = "INFERCC_INJECT_WRITE_ERROR"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_bytes(json.dumps(value, sort_keys=True, default=str).encode())


def _check_injected_failure(final: Path) -> None:
    pattern = os.environ.get(INJECT_WRITE_ERROR_ENV)
    if pattern and fnmatch.fnmatch(final.name, pattern):
        raise OSError(errno.ENOSPC, "No space left on device (injected)", str(final))


def describe_os_error(exc: OSError, path: Path) -> StageError | UsageError:
    """Turn a write failure into a user error that says where and what to do."""
    if exc.errno == errno.ENOSPC:
        return StageError(
            f"No space left on device while writing {path}.",
            hint="Free disk space or use --out on another disk.",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UsageError(
            f"Cannot write {path}: {exc.strerror}.", hint="Choose a writable folder with --out."
        )
    return StageError(f"Could not write {path}: {exc.strerror or exc}.")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it into place.

    Use for tools that insist on writing a path themselves (onnx.save, TensorRT).
    On any failure the temporary file is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{final.name}.", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _check_injected_failure(final)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        raise describe_os_error(exc, final) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: Path, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: Path, value: Any) -> None:
    atomic_write_text(final, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files a killed run left behind (they never count as artifacts)."""
    removed = []
    if folder.is_dir():
        for tmp in folder.rglob(f"{TMP_PREFIX}*"):
            _remove_quietly(tmp)
            removed.append(tmp)
    return removed


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and check it can be written, with a clear error otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder.", hint="Pass a folder path to --out.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a unique name: a run holding the folder's lock may be clearing stale .tmp-* files meanwhile
        fd, probe = tempfile.mkstemp(prefix=f"{TMP_PREFIX}probe.", dir=folder)
        os.close(fd)
        _remove_quietly(Path(probe))
    except OSError as exc:
        raise UsageError(
            f"Cannot write to output folder {folder}: {exc.strerror or exc}.",
            hint="Choose a writable folder with --out.",
        ) from exc
    return folder


def safe_child(root: Path, name: str) -> Path:
    """Join a user-derived name under `root`, refusing anything that would escape it."""
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root.resolve()):
        raise UsageError(
            f"Artifact name {name!r} would be written outside {root}.", hint="Use a plain file name."
        )
    return candidate


class OutDirLock:
    """An exclusive advisory lock on an output folder, so two runs never interleave writes.

    `wait` seconds: 0 refuses at once; otherwise polls until the lock frees or time runs out.
    The kernel drops the lock when the holder dies, even on SIGKILL.
    """

    FILE = ".infercc.lock"

    def __init__(self, folder: Path, wait: float = 0.0) -> None:
        self.path = Path(folder) / self.FILE
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> OutDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockedError(
                        f"Another infercc run{holder} is using {self.path.parent}.",
                        hint="Wait for it to finish, pass --lock-wait SECONDS to wait, or use another --out.",
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
