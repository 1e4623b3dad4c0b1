"""Run a matrix: expand the jobs, skip those an earlier run finished, run the rest, write the summary.

Resume: `matrix-state.json` in --out records every finished job with its config's sha256. A job that
finished ok with the same config is not run again (unless --force); any other job runs, and itself resumes
from the stages its --out already holds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from infercc.errors import ExitCode
from infercc.fsutil import OutDirLock, atomic_write_json, ensure_writable_dir
from infercc.matrix.pools import LocalPool, MatrixEvents, RayPool
from infercc.matrix.spec import Job, MatrixConfig, expand_jobs
from infercc.matrix.worker import JobResult

STATE_FILE = "matrix-state.json"


class MatrixRun(BaseModel):
    """Everything one `infercc matrix` run did; the JSON document and the summary are built from it."""

    out: str
    backend: str  # local (N workers) or ray ADDRESS
    cache_url: str | None = None
    jobs: list[JobResult] = Field(default_factory=list)
    wall_s: float = 0.0  # the matrix command, from expansion to the last job's result

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status != "ok"]

    def cache_counts(self) -> dict[str, int]:
        counts = {"hits": 0, "misses": 0, "refused": 0}
        for job in self.jobs:
            if job.resumed:
                continue
            for key in counts:
                counts[key] += (job.cache or {}).get(key, 0)
        return counts

    def exit_code(self) -> int:
        """0 every job ok; 1 the failing jobs all failed verification only; 4 any other failure."""
        if not self.failed:
            return ExitCode.OK
        if all(j.exit_code == ExitCode.VERIFY_FAILED for j in self.failed):
            return ExitCode.VERIFY_FAILED
        return ExitCode.STAGE_FAILED


def run_matrix(
    matrix: MatrixConfig,
    matrix_path: Path,
    events: MatrixEvents,
    out: Path | None = None,
    cache: str | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    force: bool = False,
) -> MatrixRun:
    started = time.perf_counter()
    jobs = expand_jobs(matrix, matrix_path, out)
    root = ensure_writable_dir((out or matrix.out).resolve())
    cache = cache or matrix.cache
    if cache:
        from infercc.pipeline.cache import open_cache

        open_cache(cache)  # a bad URL stops the matrix here, not in every job
    with OutDirLock(root):
        finished = {} if force else _finished_jobs(root)
        todo = [j for j in jobs if finished.get(j.id, (None, None))[0] != j.fingerprint]
        if ray_address:
            pool: LocalPool | RayPool = RayPool(ray_address, matrix.cpus_per_job, matrix.retries)
            backend = f"ray {ray_address}"
        else:
            pool = LocalPool(workers, matrix.cpus_per_job, matrix.retries)
            backend = f"local ({pool.size(todo or jobs)} worker(s))"
        state = _State(root, finished)
        results = pool.run(todo, cache, _Recording(events, state, {j.id: j for j in todo})) if todo else []
        by_id = {r.id: r for r in results}
        for job in jobs:
            if job.id not in by_id:
                by_id[job.id] = finished[job.id][1].model_copy(update={"resumed": True})
        run = MatrixRun(out=str(root), backend=backend, cache_url=cache, jobs=[by_id[j.id] for j in jobs])
        run.wall_s = round(time.perf_counter() - started, 3)
        from infercc.matrix.summary import write_summary

        write_summary(root, run)
    return run


class _State:
    """matrix-state.json, rewritten (atomically) after every finished job."""

    def __init__(self, root: Path, finished: dict[str, tuple[str, JobResult]]) -> None:
        self.path = root / STATE_FILE
        self.entries: dict[str, dict[str, Any]] = {
            job_id: {"fingerprint": fp, "result": r.model_dump(mode="json")}
            for job_id, (fp, r) in finished.items()
        }

    def record(self, job: Job, result: JobResult) -> None:
        if result.status == "ok":
            self.entries[job.id] = {"fingerprint": job.fingerprint, "result": result.model_dump(mode="json")}
        else:
            self.entries.pop(job.id, None)
        atomic_write_json(self.path, {"schema": "infercc.matrix-state/1", "jobs": self.entries})


def _finished_jobs(root: Path) -> dict[str, tuple[str, JobResult]]:
    try:
        data = json.loads((root / STATE_FILE).read_text())
        return {
            job_id: (entry["fingerprint"], JobResult.model_validate(entry["result"]))
            for job_id, entry in data["jobs"].items()
            if Path(entry["result"]["out"], "manifest.json").is_file()
        }
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValidationError):
        return {}


class _Recording:
    """Passes events on and records each finished job, so an interrupted matrix resumes."""

    def __init__(self, events: MatrixEvents, state: _State, jobs: dict[str, Job]) -> None:
        self.events, self.state, self.jobs = events, state, jobs

    def job_started(self, job: Job) -> None:
        self.events.job_started(job)

    def job_finished(self, result: JobResult) -> None:
        self.state.record(self.jobs[result.id], result)
        self.events.job_finished(result)
