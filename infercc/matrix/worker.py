"""Run one matrix job: `infercc compile` in a child process, read back its JSON and report.

The same function runs in a local pool thread and inside a Ray task. The child dies with its parent
(PR_SET_PDEATHSIG), so a killed worker never leaves a job running that holds the job's --out lock; the
job's retry then resumes from the stages that finished.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from infercc.errors import ExitCode

LOG_TAIL = 4000


class JobResult(BaseModel):
    """What one job did: one row of `infercc matrix --json`."""

    id: str
    model: str
    target: str
    precision: str
    gpu: str | None = None
    status: (
        str  # ok, or failed (exit_code says why: 1 verification, 2-4 as for compile, <0 killed by a signal)
    )
    exit_code: int | None = None
    error: str | None = None
    seconds: float = 0.0  # the job's own wall time, child process start to exit
    out: str
    host: str | None = None
    pid: int | None = None  # the worker process that ran the child (a retry shows another)
    attempts: int | None = 1  # local pool: runs of the job; Ray retries on its own and does not say (None)
    ran: list[str] = Field(default_factory=list)
    cached: list[str] = Field(default_factory=list)
    restored: list[str] = Field(default_factory=list)
    cache: dict[str, int] | None = None
    verify_passed: bool | None = None
    selection: list[dict[str, Any]] = Field(default_factory=list)  # report.json selection rows (chosen only)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)  # name, path, precision, verified
    log_tail: str = ""
    resumed: bool = False  # finished in an earlier matrix run with the same config; not run again


def run_job(
    job: dict[str, Any],
    cache: str | None,
    env: dict[str, str] | None = None,
    on_spawn: Callable[[subprocess.Popen[str]], None] | None = None,
) -> dict[str, Any]:
    """Run a job (a Job dump) to completion in a child process; returns a JobResult dump.

    `on_spawn` receives the child (the local pool keeps it, to stop it when the matrix is interrupted)."""
    from infercc.matrix.spec import Job

    spec = Job.model_validate(job)
    with tempfile.TemporaryDirectory(prefix="infercc-job-") as tmp:
        config_path = Path(tmp) / "job.json"
        config_path.write_text(json.dumps(spec.config))
        command = [
            sys.executable,
            "-m",
            "infercc.matrix.child",
            str(os.getpid()),
            "compile",
            str(config_path),
        ]
        command += ["--json"] + (["--cache", cache] if cache else [])
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=spec.cwd if Path(spec.cwd).is_dir() else None,
            env={**os.environ, **(env or {})},
        )
        if on_spawn is not None:
            on_spawn(proc)
        stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - started
    return _result(spec, proc.returncode, stdout, stderr, seconds).model_dump(mode="json")


def _result(spec: Any, code: int, stdout: str, stderr: str, seconds: float) -> JobResult:
    doc = _json_doc(stdout)
    result = JobResult(
        id=spec.id,
        model=spec.model,
        target=spec.target,
        precision=spec.precision,
        gpu=spec.gpu,
        status=_status(code),
        exit_code=code,
        seconds=round(seconds, 3),
        out=str(spec.out),
        host=socket.gethostname(),
        pid=os.getpid(),
        log_tail=stderr[-LOG_TAIL:],
    )
    if code < 0:
        result.error = f"the job's process was killed by {signal.Signals(-code).name}"
    elif doc.get("status") == "error":
        result.error = doc.get("error")
    elif code != 0:
        result.error = doc.get("failures", [None])[0] if doc.get("failures") else _last_line(stderr)
    for key in ("ran", "cached", "restored"):
        setattr(result, key, list(doc.get(key) or []))
    result.cache = doc.get("cache")
    _read_report(result, spec.out / "report.json")
    return result


def _status(code: int) -> str:
    return "ok" if code == ExitCode.OK else "failed"


def _json_doc(stdout: str) -> dict[str, Any]:
    """The run's document: the first JSON value on stdout (a failed verification adds an error document)."""
    try:
        doc, _ = json.JSONDecoder().raw_decode(stdout.lstrip())
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _last_line(text: str) -> str | None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _read_report(result: JobResult, path: Path) -> None:
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    verify = report.get("verify") or {}
    result.verify_passed = verify.get("passed") if verify else None
    passed: dict[str, bool] = {}
    for r in verify.get("results") or []:
        passed[r["artifact"]] = passed.get(r["artifact"], True) and bool(r.get("passed"))
    result.artifacts = [
        {
            "name": a["name"],
            "path": a["path"],
            "precision": a.get("precision"),
            "verified": passed.get(a["name"]),
        }
        for a in report.get("artifacts") or []
    ]
    rows = (report.get("selection") or {}).get("runtimes") or []
    result.selection = [
        {k: row.get(k) for k in ("runtime", "chosen", "p50_ms", "speedup", "accuracy")}
        for row in rows
        if row.get("chosen")
    ]
