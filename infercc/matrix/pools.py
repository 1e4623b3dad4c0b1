"""Where matrix jobs run: a local pool bounded by the cores and GPUs, or a Ray cluster (`--ray ADDRESS`).

Both take a list of jobs and call `events.job_started` / `events.job_finished` as they go; both return one
JobResult per job, a failed one for a job that could not run (no GPU of its type, worker lost for good).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from infercc.errors import MissingRuntimeError, UsageError
from infercc.matrix.spec import Job
from infercc.matrix.worker import JobResult, run_job

CLUSTER_EXTRA_HINT = "pip install -c constraints.txt 'infercc[cluster]'"
LOOPBACK = ("127.0.0.1", "localhost")


class MatrixEvents(Protocol):
    def job_started(self, job: Job) -> None: ...

    def job_finished(self, result: JobResult) -> None: ...


def not_run(job: Job, why: str, exit_code: int = 4) -> JobResult:
    return JobResult(
        id=job.id,
        model=job.model,
        target=job.target,
        precision=job.precision,
        gpu=job.gpu,
        status="failed",
        exit_code=exit_code,
        error=why,
        out=str(job.out),
        attempts=0,
    )


def _accelerator(gpu: str) -> str:
    return f"accelerator_type:{gpu}"


# --- local ------------------------------------------------------------------------------------------


class LocalPool:
    """Threads that each run one job's child process at a time; GPU jobs take a matching local GPU."""

    def __init__(self, workers: int | None, cpus_per_job: float, retries: int) -> None:
        self.workers = workers
        self.cpus_per_job = cpus_per_job
        self.retries = retries
        self._children: list[subprocess.Popen[str]] = []
        self._lock = threading.Lock()
        self._gpus: dict[str, queue.Queue[int]] = {}

    def size(self, jobs: list[Job]) -> int:
        cores = os.cpu_count() or 1
        return max(1, min(len(jobs), self.workers or int(cores // self.cpus_per_job) or 1))

    def run(self, jobs: list[Job], cache: str | None, events: MatrixEvents) -> list[JobResult]:
        from infercc.pipeline.cache import host_fingerprint

        names = host_fingerprint()["gpus"]
        results: dict[str, JobResult] = {}
        threads = self._threads_per_job(jobs)
        with ThreadPoolExecutor(max_workers=self.size(jobs), thread_name_prefix="infercc-job") as pool:
            futures: dict[Future[JobResult], Job] = {
                pool.submit(self._run_one, job, cache, names, threads, events): job for job in jobs
            }
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        result = future.result()
                        results[result.id] = result
                        events.job_finished(result)
            except BaseException:
                for future in futures:
                    future.cancel()
                self._stop_children()
                raise
        return [results[job.id] for job in jobs]

    def _threads_per_job(self, jobs: list[Job]) -> str:
        cores = os.cpu_count() or 1
        return str(max(1, cores // self.size(jobs)))

    def _run_one(
        self, job: Job, cache: str | None, gpu_names: list[str], threads: str, events: MatrixEvents
    ) -> JobResult:
        env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
        device = None
        if job.gpu:
            matching = [i for i, name in enumerate(gpu_names) if job.gpu.lower() in name.lower()]
            if not matching:
                have = ", ".join(gpu_names) or "none"
                return not_run(
                    job, f"needs a {job.gpu} GPU; this machine has {have}. Run it with --ray ADDRESS."
                )
            device = self._gpu_queue(job.gpu, matching).get()
            env["CUDA_VISIBLE_DEVICES"] = str(device)
        try:
            events.job_started(job)
            return self._attempts(job, cache, env)
        finally:
            if device is not None and job.gpu:
                self._gpus[job.gpu].put(device)

    def _gpu_queue(self, gpu: str, indices: list[int]) -> queue.Queue[int]:
        with self._lock:
            if gpu not in self._gpus:
                self._gpus[gpu] = queue.Queue()
                for index in indices:
                    self._gpus[gpu].put(index)
            return self._gpus[gpu]

    def _attempts(self, job: Job, cache: str | None, env: dict[str, str]) -> JobResult:
        """Run the job; a child killed by a signal other than an interrupt is run again (it resumes)."""
        attempt = 0
        while True:
            attempt += 1
            result = JobResult.model_validate(run_job(job.model_dump(), cache, env, self._keep))
            result.attempts = attempt
            code = result.exit_code or 0
            interrupted = code in (-signal.SIGINT, -signal.SIGTERM, 130)
            if code >= 0 or interrupted or attempt > self.retries:
                return result

    def _keep(self, child: subprocess.Popen[str]) -> None:
        with self._lock:
            self._children = [c for c in self._children if c.poll() is None] + [child]

    def _stop_children(self) -> None:
        with self._lock:
            for child in self._children:
                if child.poll() is None:
                    child.terminate()


# --- Ray --------------------------------------------------------------------------------------------


class RayPool:
    """Each job a Ray task on an existing cluster; a job with a GPU type asks for accelerator_type:<gpu>.

    Ray runs a task again when its worker dies (max_retries); the job resumes from its finished stages.
    """

    def __init__(self, address: str, cpus_per_job: float, retries: int) -> None:
        self.address = address
        self.cpus_per_job = cpus_per_job
        self.retries = retries

    def run(self, jobs: list[Job], cache: str | None, events: MatrixEvents) -> list[JobResult]:
        if self._loopback():
            # Ray otherwise swaps 127.0.0.1 for the machine's address (and listens there); read at import
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = _import_ray()
        # Ray's driver prints cluster messages ("a worker died ...") to sys.stdout: keep stdout for --json
        with contextlib.redirect_stdout(sys.stderr):
            self._connect(ray)
            try:
                return self._run(ray, jobs, cache, events)
            finally:
                ray.shutdown()

    def _loopback(self) -> bool:
        return self.address.rsplit(":", 1)[0] in LOOPBACK

    def _probe(self) -> None:
        """Fail in seconds, not after Ray's minutes of retries, when nothing listens at the address."""
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            return  # "auto", or a ray:// client address: Ray resolves it
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise UsageError(
                f"--ray {self.address}: cannot connect to a Ray cluster ({exc.strerror or exc}).",
                hint="Start one with `ray start --head --node-ip-address=127.0.0.1`, or give the address "
                "`ray status` shows on the head node.",
            ) from None

    def _connect(self, ray: Any) -> None:
        self._probe()
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self._loopback():
            options["_node_ip_address"] = "127.0.0.1"  # a local cluster: nothing listens beyond loopback
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"--ray {self.address}: cannot connect to a Ray cluster ({str(exc).splitlines()[0][:200]}).",
                hint="Start one with `ray start --head --node-ip-address=127.0.0.1`, or give the address "
                "`ray status` shows on the head node.",
            ) from None

    def _run(self, ray: Any, jobs: list[Job], cache: str | None, events: MatrixEvents) -> list[JobResult]:
        available = ray.cluster_resources()
        remote = ray.remote(run_job)
        pending: dict[Any, Job] = {}
        results: dict[str, JobResult] = {}
        for job in jobs:
            if job.gpu and _accelerator(job.gpu) not in available:
                results[job.id] = not_run(job, f"no node of the Ray cluster has {_accelerator(job.gpu)}.")
                events.job_finished(results[job.id])
                continue
            pending[self._submit(remote, job, cache)] = job
            events.job_started(job)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    results[job.id] = self._collect(ray, ref, job)
                    events.job_finished(results[job.id])
        except BaseException:  # interrupted: the cluster must not go on running jobs nobody waits for
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return [results[job.id] for job in jobs]

    def _submit(self, remote: Any, job: Job, cache: str | None) -> Any:
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_job,
            "max_retries": self.retries,
            "retry_exceptions": False,
            "name": f"infercc {job.id}",
        }
        if job.gpu:
            options.update(num_gpus=1, resources={_accelerator(job.gpu): 0.001})
        threads = str(max(1, int(self.cpus_per_job)))
        return remote.options(**options).remote(job.model_dump(), cache, {"OMP_NUM_THREADS": threads})

    def _collect(self, ray: Any, ref: Any, job: Job) -> JobResult:
        try:
            return JobResult.model_validate(ray.get(ref)).model_copy(update={"attempts": None})
        except Exception as exc:  # the worker died on every attempt, or the task could not run
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            return not_run(
                job, f"Ray task failed after {self.retries + 1} attempt(s): {type(exc).__name__}: {first}"
            )


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingRuntimeError(
            "--ray needs Ray, which is not installed.", hint=CLUSTER_EXTRA_HINT
        ) from None
    return ray
