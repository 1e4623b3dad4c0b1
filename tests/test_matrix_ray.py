"""`infercc matrix --ray` on a real Ray head started here on 127.0.0.1 with 2 CPUs.

The head runs in its own process group, so teardown stops exactly the processes it started and checks
that none is left. Tiny models, the TorchScript exporter and a tiny bench keep the jobs short.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import INFERCC, ROOT, ZOO

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

RAY = str(Path(sys.executable).with_name("ray"))
MODELS = [
    {"model": {"source": f"{ZOO}/cnn.py:small_cnn"}, "inputs": {"x": {"shape": "1x3x32x32"}}},
    {"model": {"source": f"{ZOO}/dict_out.py:dict_model"}, "inputs": {"x": {"shape": "1x12"}}},
    {"model": {"source": f"{ZOO}/sensitive.py:quant_sensitive"}, "inputs": {"x": {"shape": "1x3x32x32"}}},
]
TINY_BENCH = {
    "iterations": 3,
    "warmup": 1,
    "repeats": 1,
    "budget_s": 0.5,
    "peers": False,
}  # no torch.compile peer: a compile per job
SLOW = {
    "model": {"source": f"{ROOT}/tests/corpus/models/slow.py:slow_cnn"},
    "inputs": {"x": {"shape": "1x3x32x32"}},
}
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """State, parent pid and process group of a live process (None if gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (Ray workers get their own process groups, so walk the tree)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _stop(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@pytest.fixture(scope="module")
def ray_head():
    temp = tempfile.mkdtemp(prefix="icc-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    address = f"127.0.0.1:{_free_port()}"
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - kept open while the head runs
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={address.split(':')[1]}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **RAY_ENV, "INFERCC_TEST_SLEEP": "0.4"},
    )
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (Path(temp) / "head.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, (Path(temp) / "head.log").read_text()[
                -2000:
            ]
            time.sleep(0.5)
        yield address, head.pid
    finally:
        started = _descendants(head.pid) | {head.pid}  # every process this head started, and only those
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            _stop({pid for pid in started if _stat(pid) is not None}, sig)
            deadline = time.monotonic() + wait
            while any(_stat(pid) is not None for pid in started) and time.monotonic() < deadline:
                time.sleep(0.2)
        head.wait(timeout=10)
        log.close()
        left = [pid for pid in started if _stat(pid) is not None]
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


def _matrix(folder: Path, **body) -> Path:
    path = folder / "matrix.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _run(*args, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INFERCC, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **RAY_ENV},
    )


def _listening_beyond_loopback() -> list[str]:
    """TCP listeners of this machine's Ray processes on any address but loopback."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    return [
        line
        for line in out.splitlines()
        if ("ray" in line or "gcs_server" in line) and "127.0.0.1" not in line
    ]


def test_matrix_on_ray_then_every_stage_from_the_cache(ray_head, tmp_path):
    import json

    ray_head, _ = ray_head
    cache = f"file://{tmp_path / 'cache'}"
    path = _matrix(
        tmp_path,
        models=MODELS,
        precisions=["fp32", "fp16"],
        targets=["onnxruntime"],
        defaults={"export": {"exporter": "torchscript"}, "bench": TINY_BENCH, "verify": {"samples": 1}},
    )
    first = _run("matrix", path, "--ray", ray_head, "--cache", cache, "-o", tmp_path / "a", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    doc = json.loads(first.stdout)
    assert doc["backend"] == f"ray {ray_head}" and len(doc["jobs"]) == 6
    assert all(j["status"] == "ok" and j["verify_passed"] for j in doc["jobs"])
    assert {j["model"] for j in doc["jobs"]} == {"small_cnn", "dict_model", "quant_sensitive"}
    assert doc["cache"]["misses"] > 0
    for cell in doc["cells"]:  # rows models, columns targets: the selected artifact, speed-up, accuracy
        assert cell["status"] == "ok" and cell["selected"]["artifact"] in ("onnx", "fp32", "fp32-ort", "fp16")
        # no ratio when a busy machine disturbed the timing (the bench stage's verdict); the time is always there
        speedup = cell["selected"]["speedup"]
        assert cell["selected"]["p50_ms"] > 0 and (speedup is None or speedup > 0)
        assert cell["selected"]["accuracy"]["cosine"] > 0.99
        assert Path(cell["selected"]["path"]).is_file()
    assert (tmp_path / "a" / "matrix.html").read_text().count("<tr>") >= 4
    assert not _listening_beyond_loopback()

    second = _run("matrix", path, "--ray", ray_head, "--cache", cache, "-o", tmp_path / "b", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert all(j["ran"] == [] and j["cached"] == [] and j["restored"] for j in again["jobs"])
    total = sum(len(j["restored"]) for j in again["jobs"])
    assert again["cache"] == {"hits": total, "misses": 0, "refused": 0}
    for job in again["jobs"]:
        assert (Path(job["out"]) / "model.fp32.onnx").is_file() and str(tmp_path / "b") in job["out"]


def test_killed_worker_has_its_job_retried(ray_head, tmp_path):
    import json

    ray_head, head_pid = ray_head
    path = _matrix(
        tmp_path,
        models=[SLOW],
        precisions=["fp32"],
        retries=2,
        defaults={
            "export": {"exporter": "torchscript"},
            "bench": {"enabled": False},
            "verify": {"samples": 1},
        },
    )
    matrix = subprocess.Popen(
        [*INFERCC, "matrix", str(path), "--ray", ray_head, "-o", str(tmp_path / "m"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **RAY_ENV},
    )
    try:
        child, worker = _wait_for_job_child(head_pid, timeout=120)
        time.sleep(2.0)  # mid-job: the slow model's export is running
        assert not (tmp_path / "m" / "matrix.json").exists()
        os.kill(worker, signal.SIGKILL)  # the Ray worker running the task
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the job's process outlived its killed worker"
        stdout, stderr = matrix.communicate(timeout=300)
    finally:
        if matrix.poll() is None:
            matrix.kill()
            matrix.wait()
    assert matrix.returncode == 0, stderr[-3000:]
    (job,) = json.loads(stdout)["jobs"]
    assert job["status"] == "ok" and job["pid"] != worker
    assert "export" in job["ran"] and job["verify_passed"] is True


def test_gpu_type_no_node_has_is_a_failed_cell(ray_head, tmp_path):
    import json

    ray_head, _ = ray_head
    path = _matrix(tmp_path, models=[MODELS[0]], precisions=["fp32"], targets=["tensorrt@H100"])
    result = _run("matrix", path, "--ray", ray_head, "-o", tmp_path / "m", "--json", timeout=120)
    assert result.returncode == 4
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["status"] == "failed" and "accelerator_type:H100" in job["error"]


def _wait_for_job_child(head_pid: int, timeout: float) -> tuple[int, int]:
    """The job's child process (infercc.matrix.child) whose parent is a worker of this Ray head."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"infercc.matrix.child" in argv:
                    stat = (entry / "stat").read_text()
                    parent = int(stat[stat.rindex(")") + 2 :].split()[1])
                    if parent in _descendants(head_pid):
                        return int(entry.name), parent
        time.sleep(0.2)
    raise AssertionError("no job process appeared")


def _alive(pid: int) -> bool:
    return _stat(pid) is not None
