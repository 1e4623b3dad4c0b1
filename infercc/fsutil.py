"""File helpers: atomic writes, hashing, the output folder's ownership marker and its lock.

Every artifact is written to a temporary file in its final folder, fsynced, then renamed,
so a killed run never leaves a file that looks finished. Temporary files carry infercc's own
prefix and the writer's pid (`.infercc-tmp-<pid>-<name>.<random>`); cleanup removes only those,
only in folders infercc made (they hold the marker file), and only once that pid is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infercc.errors import LockedError, StageError, UsageError

TMP_PREFIX = ".infercc-tmp-"
_TMP_NAME = re.compile(r"^\.infercc-tmp-(\d+)-")
# A folder infercc created (or was told to take over with --out-force) holds this file.
OWNER_MARKER = ".infercc-owned"
# Test hook: a glob of file names whose atomic write fails with ENOSPC (simulates a full disk).
INJECT_WRITE_ERROR_ENV = "INFERCC_INJECT_WRITE_ERROR"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_regular_file(path: Path, what: str, limit: int | None = None) -> int:
    """Open `path` for reading only if it is a regular file (after links) of at most `limit` bytes.

    Device files, FIFOs and sockets are refused at once: they never end, or block, or both. The file is
    opened non-blocking (a FIFO would otherwise wait for a writer) and checked on the open descriptor.
    Returns the descriptor; the caller closes it."""
    try:
        _refuse_non_regular(path, os.stat(path).st_mode, what, limit, os.stat(path).st_size)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {what} {path}: {exc.strerror or exc}.") from None
    info = os.fstat(fd)  # the file opened may not be the one stat()ed: check again
    try:
        _refuse_non_regular(path, info.st_mode, what, limit, info.st_size)
    except UsageError:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def _refuse_non_regular(path: Path, mode: int, what: str, limit: int | None, size: int) -> None:
    problem = None
    if stat.S_ISDIR(mode):
        problem = "is a folder"
    elif not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        problem = f"is {kind}, not a regular file"
    elif limit is not None and size > limit:
        problem = f"is {format_bytes(size)}; infercc reads at most {format_bytes(limit)} for a {what.lower()}"
    if problem is not None:
        raise UsageError(f"{what} {path} {problem}.", hint="Give a regular file of a sensible size.")


def check_regular_file(path: Path, what: str, limit: int | None = None) -> int:
    """Refuse what open_regular_file refuses; return the file's size."""
    fd = open_regular_file(path, what, limit)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_regular_file(path: Path, what: str, limit: int) -> bytes:
    fd = open_regular_file(path, what, limit)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while we read it
        raise UsageError(f"{what} {path} is larger than {format_bytes(limit)}.")
    return data


def format_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


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
    make_owned_dirs(final.parent)
    try:
        tmp = new_temp_path(final)
    except OSError as exc:  # a read-only or vanished folder
        raise describe_os_error(exc, final) from exc
    try:
        _check_injected_failure(final)
        yield tmp
        _seal(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        raise describe_os_error(exc, final) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_bundle(final: Path) -> Iterator[Path]:
    """atomic_path for a file written with companions beside it (an ONNX model and its external data).

    The writer gets a path inside a fresh temporary folder (infercc's temp naming, with the marker); on
    success each companion is moved into place first and the main file last, so a relative reference
    (ONNX `location`) names the final file and a killed run never leaves a main file without its data.
    A `<final>.data` left by an earlier version of the file is removed when the new one has no companion.
    """
    final = Path(final)
    make_owned_dirs(final.parent)
    try:
        folder = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), dir=final.parent))
    except OSError as exc:  # a read-only or vanished folder
        raise describe_os_error(exc, final) from exc
    try:
        _write_marker(folder)
        _check_injected_failure(final)
        tmp = folder / final.name
        yield tmp
        companions = [p for p in sorted(folder.iterdir()) if p.name not in (final.name, OWNER_MARKER)]
        for path in [*companions, tmp]:
            _seal(path)
        for path in companions:
            os.replace(path, final.parent / path.name)
        if not companions:
            _remove_quietly(final.parent / f"{final.name}.data")
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        raise describe_os_error(exc, final) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _seal(path: Path) -> None:
    """fsync a finished temporary file and give it the permissions every artifact has."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(path, 0o666 & ~_umask())  # mkstemp makes 0600


def temp_prefix(final_name: str) -> str:
    """The name prefix of this process's temporary files for `final_name`."""
    return f"{TMP_PREFIX}{os.getpid()}-{final_name}."


def new_temp_path(final: Path, suffix: str = "") -> Path:
    """Create an empty temporary file beside `final`, named so that cleanup knows it is infercc's."""
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(final.name), suffix=suffix, dir=final.parent)
    os.close(fd)
    return Path(tmp_name)


def check_still_locked(folder: Path) -> None:
    """Inside an output folder this process holds locked, the folder must still be the one it locked
    (OutDirLock.check: a StageError when it was deleted or replaced)."""
    if _HELD:
        resolved = Path(folder).resolve()
        for lock in list(_HELD.values()):
            if resolved.is_relative_to(lock.root):
                lock.check()


def make_owned_dirs(folder: Path) -> None:
    """mkdir -p, leaving the ownership marker in each folder this call creates (and only those), in a folder
    that is still the one this process locked (check_still_locked)."""
    check_still_locked(folder)
    missing = []
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    Path(folder).mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _write_marker(created)


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
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # never a real writer: leave such a file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def is_stale_temporary(path: Path) -> bool:
    """An infercc temporary file whose writer is gone (a plain file or link; a folder only when it holds
    infercc's marker, as atomic_bundle's folders do)."""
    match = _TMP_NAME.match(path.name)
    if match is None:
        return False
    if path.is_dir() and not path.is_symlink() and not (path / OWNER_MARKER).is_file():
        return False
    return not pid_alive(int(match.group(1)))


def owned_folders(root: Path) -> Iterator[Path]:
    """`root` and the subfolders infercc made under it (those with the marker), never through links."""
    yield root
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.is_symlink() and (child / OWNER_MARKER).is_file():
            yield from owned_folders(child)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files a killed infercc run left behind (they never count as artifacts).

    Only `.infercc-tmp-<pid>-*` files of dead processes, only in folders infercc owns: a user's file is
    never touched, whatever its name."""
    removed = []
    folder = Path(folder)
    if not (folder / OWNER_MARKER).is_file():
        return removed
    for owned in owned_folders(folder):
        for entry in sorted(owned.iterdir()):
            if is_stale_temporary(entry):
                _remove_quietly(entry)
                removed.append(entry)
    return removed


def _write_marker(folder: Path) -> None:
    from infercc import __version__

    text = json.dumps({"created_by": "infercc", "version": __version__}) + "\n"
    tmp = Path(folder) / f"{temp_prefix(OWNER_MARKER)}marker"
    tmp.write_text(text)
    os.replace(tmp, Path(folder) / OWNER_MARKER)


def _refuse_special_folder(folder: Path) -> None:
    """Never the filesystem root, the home folder or a folder that holds the current folder."""
    resolved = folder.resolve()
    home = Path(os.path.expanduser("~")).resolve()
    cwd = Path.cwd().resolve()
    what = None
    if resolved == resolved.parent:
        what = "the filesystem root"
    elif resolved == home:
        what = "your home folder"
    elif resolved != cwd and cwd.is_relative_to(resolved):
        what = "a parent of the current folder"
    if what is not None:
        raise UsageError(
            f"--out {folder} is {what}; infercc writes only into a folder of its own.",
            hint="Pass a new folder, e.g. --out artifacts/.",
        )


def claim_out_dir(folder: Path, force: bool = False) -> Path:
    """Make `folder` infercc's: create it with the marker, or accept it when it already has the marker
    or is empty. A non-empty folder without the marker is the user's: refused unless `force`."""
    folder = Path(folder)
    _refuse_special_folder(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder.", hint="Pass a folder path to --out.")
    try:
        if folder.is_dir() and not (folder / OWNER_MARKER).is_file():
            if any(folder.iterdir()) and not force:
                raise UsageError(
                    f"--out {folder} already holds files that infercc did not write (it has no {OWNER_MARKER}).",
                    hint="Pass a new or empty folder, or --out-force to let infercc write there "
                    "(it never deletes files it did not create).",
                )
            _write_marker(folder)
        else:
            make_owned_dirs(folder)
    except OSError as exc:
        raise UsageError(
            f"Cannot write to output folder {folder}: {exc.strerror or exc}.",
            hint="Choose a writable folder with --out.",
        ) from exc
    return folder


def ensure_writable_dir(folder: Path, force: bool = False) -> Path:
    """Claim `folder` (see claim_out_dir) and check it can be written, with a clear error otherwise."""
    folder = claim_out_dir(folder, force)
    try:
        _remove_quietly(new_temp_path(folder / "probe"))
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
        self.folder = Path(folder)
        self.root = self.folder.resolve()
        self.path = self.folder / self.FILE
        self.wait = wait
        self._fd: int | None = None

    def check(self) -> None:
        """Stop when the locked folder was deleted (or replaced) meanwhile: writing on would recreate it beside
        a run that may now own the new one, with a manifest naming files that are gone."""
        if self._fd is None:
            return
        try:
            same = os.path.samestat(os.stat(self.path), os.fstat(self._fd))
        except OSError:
            same = False
        if not same:
            raise StageError(
                f"The output folder {self.folder} was deleted while this run was writing into it; stopped.",
                hint="Run again to rebuild it (finished stages elsewhere are not affected); give each run its own "
                "--out, and do not delete a folder a run is using.",
            )

    def __enter__(self) -> OutDirLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise UsageError(
                f"Cannot use the lock file {self.path}: {exc.strerror or exc}.",
                hint=f"It must be a plain file infercc can write; remove or rename what is there ({self.FILE}).",
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(
                f"The lock file {self.path} is not a plain file.",
                hint=f"Remove or rename {self.path}; infercc recreates it.",
            )
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
        _HELD[id(self)] = self
        return self

    def __exit__(self, *exc: object) -> None:
        _HELD.pop(id(self), None)
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# The output folders this process holds locked (OutDirLock), so that every write into one first checks that the
# folder is still the locked one. It mirrors what the kernel holds for this process, nothing more.
_HELD: dict[int, OutDirLock] = {}


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def human_size(size: Any) -> str:
    """A byte count for people: 512 B, 17.9 MB; "-" when there is none."""
    if not isinstance(size, int | float):
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
