"""The torch.compile peer's child process: it loads the user's module, compiles it and answers infer /
time requests over a pipe. Unlike infercc.runtimes.isolation (which runs artifact files), every call here
can carry a timeout, because compiling is what must be bounded (bench.peer_compile_s): past it the child is
killed. A segfault or abort in the child is reported with its signal, and the run goes on.

Parent:  ChildSession(label).open(request) -> reply;  .call(request, timeout) -> reply;  .close()
Child:   python -m infercc.inductor.child READ_FD WRITE_FD
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import Any

from infercc.errors import InferccError, StageError

STARTUP_TIMEOUT_S = 600.0


def signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class ChildSession:
    """One child process holding one loaded session. Every failure becomes a StageError naming `label`."""

    def __init__(self, label: str, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: _Duplex | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the session; closed in close())

    def open(self, request: dict[str, Any], timeout: float | None = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infercc.inductor.child", str(child_read), str(child_write)],
            pass_fds=(child_read, child_write),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **(self.env or {})},
        )
        os.close(child_read)
        os.close(child_write)
        self.conn = _Duplex(parent_read, parent_write)
        return self.call({"op": "open", **request}, timeout, doing="loading")

    def call(self, request: dict[str, Any], timeout: float | None = None, doing: str = "running") -> Any:
        assert self.conn is not None and self.proc is not None
        try:
            self.conn.send(request)
            if not self.conn.poll(timeout):
                self.kill()
                raise StageError(f"{self.label} did not finish {doing} within {timeout:g} s; stopped it.")
            reply = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise StageError(self._death(doing)) from None
        if reply.get("error"):
            raise StageError(f"{self.label} failed {doing}: {reply['error']}")
        return reply

    def _death(self, doing: str) -> str:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode or -9
        tail = self.log_tail()
        return f"{self.label} crashed {doing}: {signal_name(code)}" + (
            f" (last output: {tail})" if tail else ""
        )

    def log_tail(self, lines: int = 2) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:])[:400]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.conn is not None and self.proc is not None and self.proc.poll() is None:
            try:
                self.conn.send({"op": "close"})
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._log.close()


class _Duplex:
    """Two one-way pipe ends as one connection (multiprocessing's pickled, length-prefixed messages)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.reader = Connection(read_fd, writable=False)
        self.writer = Connection(write_fd, readable=False)

    def send(self, obj: Any) -> None:
        self.writer.send(obj)

    def recv(self) -> Any:
        return self.reader.recv()

    def poll(self, timeout: float | None) -> bool:
        return self.reader.poll(timeout)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


# --- the child's side ------------------------------------------------------------------------------------


def serve(conn: _Duplex) -> None:
    from infercc.inductor.sessions import open_session

    session: Any = None
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        op = request.pop("op")
        if op == "close":
            return
        try:
            if op == "open":
                session = open_session(request)
                reply: dict[str, Any] = {"info": session.info()}
            else:
                reply = getattr(session, op)(**request)
        except InferccError as exc:
            reply = {"error": exc.message}
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:400]
            reply = {"error": f"{type(exc).__name__}: {first}"}
        conn.send(reply)


def main(argv: list[str]) -> None:
    conn = _Duplex(int(argv[0]), int(argv[1]))
    try:
        serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
