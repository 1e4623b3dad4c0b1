"""Runtime sessions in a child process, so a crashing runtime fails one check instead of ending infercc.

A runtime that segfaults, aborts or is killed for memory while it loads or runs an artifact takes its whole
process with it. `IsolatedRuntime` runs any registered runtime (load, io_spec, infer, time_infer, and any other
attribute an adapter has) in a child process of its own, one per artifact and runtime; when the child dies,
the call raises `RuntimeCrashed` ("onnxruntime-cpu crashed loading model.fp16.onnx: SIGSEGV") and the caller
records a failed pair while the other pairs go on.

Children come from a fork server (multiprocessing's "forkserver"): one clean, single-threaded helper process,
started on first use with numpy and ONNX Runtime already imported, forks each child. A child therefore
starts in a few milliseconds without re-importing ONNX Runtime (as "spawn" would), and without inheriting
the parent's torch/ORT thread pools, locks or CUDA context (as a plain fork of this multi-threaded process
would, which can deadlock the child or break CUDA in it).

`load_check` / `require_loads` prove that a written artifact loads and runs one inference on given runtimes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import os
import signal
import sys
import traceback
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infercc.errors import InferccError, StageError

START_METHOD = "forkserver"
# Imported once by the fork server so that every child has them for free.
PRELOAD = ("numpy", "onnxruntime", "infercc.runtimes.base", "infercc.onnxrt.runtime")
CLOSE_TIMEOUT_S = 10.0
PHASES = {"open": "loading", "infer": "running", "time_infer": "timing"}


class RuntimeCrashed(StageError):
    """The child process running a runtime died (a signal or an exit without an answer): exit 4."""

    def __init__(self, runtime: str, artifact: str, phase: str, how: str) -> None:
        super().__init__(
            f"{runtime} crashed {phase} {artifact}: {how}",
            hint="The runtime itself failed (not infercc); try another runtime, precision or opset, "
            "or run with -v to see the runtime's own output.",
        )
        self.runtime, self.artifact, self.phase, self.how = runtime, artifact, phase, how


def describe_exit(exitcode: int | None) -> str:
    """'SIGSEGV', 'SIGKILL (killed: out of memory?)', 'exited with code 3', for a child's exit code."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"{name} (killed: out of memory?)" if name == "SIGKILL" else name
    return f"exited with code {exitcode}"


def proc_status_bytes(pid: int, key: str) -> int | None:
    """A memory figure (VmRSS, VmHWM) of a process from /proc, in bytes; None where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@functools.cache
def _mp_context() -> Any:
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        context.set_forkserver_preload(list(PRELOAD))  # a missing module is skipped by the server
    return context


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start children without re-running the caller's main script in them: multiprocessing would import it
    (as __mp_main__) in every child, which costs the script's imports and breaks scripts without a
    `if __name__ == "__main__"` guard. A child needs nothing from it: its target lives in this module."""
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


# --- the child ---------------------------------------------------------------------------------------


def _serve(conn: Any, target: str, artifact: str, options: dict[str, Any]) -> None:
    """Child process: open the runtime (its registry target, "module:Class"), then answer (method, args)
    requests until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    rss_at_start = proc_status_bytes(os.getpid(), "VmRSS")
    try:
        module_name, class_name = target.split(":")
        runtime = getattr(importlib.import_module(module_name), class_name)(Path(artifact), **options)
        runtime.__enter__()
    except BaseException as exc:
        conn.send(_failure(exc))
        return
    conn.send(("ok", rss_at_start))
    try:
        while True:
            try:
                method, args = conn.recv()
            except EOFError:  # the parent is gone
                return
            if method == "close":
                break
            conn.send(_answer(runtime, method, args))
    finally:
        runtime.__exit__(None, None, None)


def _answer(runtime: Any, method: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        if method == "getattr":
            value = getattr(runtime, args[0])
            return ("ok", ("method", None) if callable(value) else ("value", value))
        return ("ok", getattr(runtime, method)(*args))
    except BaseException as exc:
        return _failure(exc)


def _failure(exc: BaseException) -> tuple[str, Any]:
    if isinstance(exc, InferccError | AttributeError):
        return ("error", exc)
    return ("bug", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


# --- the parent's handle --------------------------------------------------------------------------------


class IsolatedRuntime:
    """A registered runtime running in its own child process, with the same interface as the runtime."""

    def __init__(self, name: str, artifact: Path | str, **options: Any) -> None:
        self.name = name
        self.artifact = Path(artifact)
        self.options = options
        self._process: Any = None
        self._conn: Any = None
        self.rss_at_start: int | None = None  # the child's resident memory before it loaded the artifact

    def __enter__(self) -> IsolatedRuntime:
        from infercc.runtimes.base import registry_target

        target = registry_target(self.name)  # resolved here, so runtimes registered at run time work too
        context = _mp_context()
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, target, str(self.artifact), self.options),
            name=f"infercc {self.name} {self.artifact.name}",
            daemon=True,
        )
        with _main_module_hidden():
            self._process.start()
        child.close()  # only the child holds its end now, so its death reads as EOF here
        self._conn = parent
        try:
            self.rss_at_start = self._receive("open")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send(("close", ()))
            except (OSError, EOFError):
                pass
        self._stop()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.join(CLOSE_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process.close()
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def peak_rss(self) -> int | None:
        """The child's peak resident memory so far (bytes): what loading and running the artifact took."""
        return proc_status_bytes(self.pid, "VmHWM") if self.pid else None

    def _call(self, method: str, *args: Any) -> Any:
        if self._conn is None:
            raise StageError(f"{self.name} on {self.artifact.name} is not open.")
        try:
            self._conn.send((method, args))
        except (OSError, EOFError):
            pass  # the child is already gone: _receive says how
        return self._receive(method)

    def _receive(self, method: str) -> Any:
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(CLOSE_TIMEOUT_S)
            exitcode = self._process.exitcode
            raise RuntimeCrashed(
                self.name, self.artifact.name, PHASES.get(method, f"in {method} on"), describe_exit(exitcode)
            ) from None
        if status == "ok":
            return payload
        if status == "error":
            raise payload
        raise RuntimeError(f"{self.name} on {self.artifact.name} failed in {method}: {payload}")

    def io_spec(self) -> Any:
        return self._call("io_spec")

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call("infer", feeds)

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        return self._call("time_infer", feeds, iters, warmup)

    def __getattr__(self, attr: str) -> Any:
        """Anything else an adapter offers (timing, notes, device_memory, time_h2d ...), from the child."""
        if attr.startswith("_") or self.__dict__.get("_conn") is None:
            raise AttributeError(attr)
        kind, value = self._call("getattr", attr)
        if kind == "value":
            return value
        return functools.partial(self._call, attr)


def open_runtime(name: str, artifact: Any, isolate: bool | None = None, **options: Any) -> Any:
    """A runtime for `artifact`, not yet entered: in a child process for artifact files (the default), in
    this process for an in-memory object such as the PyTorch module (which may not survive pickling)."""
    if isolate is None:
        isolate = isinstance(artifact, str | Path)
    if isolate:
        return IsolatedRuntime(name, artifact, **options)
    from infercc.runtimes.base import get_runtime

    return get_runtime(name, artifact, **options)


# --- load checks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadCheck:
    """Whether an artifact loaded and ran one inference on one runtime."""

    runtime: str
    artifact: str
    ok: bool
    reason: str = ""  # why it failed, or why it was skipped
    skipped: bool = False  # the runtime is not available here
    crashed: bool = False
    outputs: dict[str, list[int]] = field(default_factory=dict)  # output name -> shape
    non_finite: tuple[str, ...] = ()  # outputs holding NaN or Inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "artifact": self.artifact,
            "ok": self.ok,
            "reason": self.reason,
            "skipped": self.skipped,
            "crashed": self.crashed,
            "outputs": self.outputs,
            "non_finite": list(self.non_finite),
        }


def load_check(
    artifact: Path, runtimes: Iterable[str], feeds: dict[str, np.ndarray] | None, **options: Any
) -> list[LoadCheck]:
    """Load `artifact` on each runtime in a child process and run `feeds` through it once (or only load it
    when `feeds` is None). Runtimes not available here are reported as skipped; nothing is raised."""
    from infercc.runtimes.base import probe

    results = []
    for name in runtimes:
        _, why_not = probe(name)
        if why_not:
            results.append(LoadCheck(name, artifact.name, False, why_not, skipped=True))
            continue
        results.append(_check_one(name, Path(artifact), feeds, options))
    return results


def _check_one(
    name: str, artifact: Path, feeds: dict[str, np.ndarray] | None, options: dict[str, Any]
) -> LoadCheck:
    try:
        with IsolatedRuntime(name, artifact, **options) as runtime:
            outputs = runtime.infer(feeds) if feeds is not None else {}
    except RuntimeCrashed as exc:
        return LoadCheck(name, artifact.name, False, exc.message, crashed=True)
    except InferccError as exc:
        return LoadCheck(name, artifact.name, False, f"{name} failed on {artifact.name}: {exc.message}")
    shapes = {n: list(np.shape(v)) for n, v in outputs.items()}
    bad = tuple(
        n
        for n, v in outputs.items()
        if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all()
    )
    return LoadCheck(name, artifact.name, True, outputs=shapes, non_finite=bad)


def require_loads(
    artifact: Path, runtimes: Iterable[str], feeds: dict[str, np.ndarray] | None, **options: Any
) -> list[LoadCheck]:
    """`load_check`, raising StageError (exit 4) naming every runtime the artifact failed on."""
    results = load_check(artifact, runtimes, feeds, **options)
    failed = [r for r in results if not r.ok and not r.skipped]
    if failed:
        raise StageError(
            "; ".join(r.reason for r in failed),
            hint="The artifact was written but does not load or run there; it is not used.",
        )
    return results


__all__ = [
    "IsolatedRuntime",
    "LoadCheck",
    "RuntimeCrashed",
    "describe_exit",
    "load_check",
    "open_runtime",
    "require_loads",
]
