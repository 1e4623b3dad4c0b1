"""`infercc matrix` on the local pool: expansion, a failing model as a failed cell, resume, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ZOO

CNN = {"model": {"source": f"{ZOO}/cnn.py:small_cnn"}, "inputs": {"x": {"shape": "1x3x32x32"}}}
DICT = {"model": {"source": f"{ZOO}/dict_out.py:dict_model"}, "inputs": {"x": {"shape": "1x12"}}}
BROKEN = {"name": "broken", "model": {"source": f"{ZOO}/bad.py:raises"}, "inputs": {"x": {"shape": "1x8"}}}
FAST = {"export": {"exporter": "torchscript"}, "bench": {"enabled": False}}


def write_matrix(folder: Path, **body) -> Path:
    path = folder / "matrix.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_expansion_crosses_models_precisions_and_targets(tmp_path):
    from infercc.matrix.spec import expand_jobs, load_matrix

    config = tmp_path / "cnn.yaml"
    config.write_text(
        yaml.safe_dump({**CNN, "precisions": ["fp32", "fp16", "int8"], "calibration": {"synthetic": True}})
    )
    path = write_matrix(
        tmp_path,
        models=["cnn.yaml", DICT],
        precisions=["fp32", "fp16"],
        targets=["onnxruntime", "tensorrt@H100"],
        defaults=FAST,
        out=str(tmp_path / "m"),
    )
    jobs = expand_jobs(load_matrix(path), path)
    assert [j.id for j in jobs] == [
        f"{m}/{t}/{p}"
        for m in ("cnn", "dict_model")
        for t in ("onnxruntime", "tensorrt@H100")
        for p in ("fp32", "fp16")
    ]
    job = jobs[3]
    assert (
        job.gpu == "H100" and job.config["targets"] == ["tensorrt"] and job.config["precisions"] == ["fp16"]
    )
    assert job.config["export"]["exporter"] == "torchscript" and job.config["bench"]["enabled"] is False
    assert job.config["calibration"]["synthetic"] is True  # the model's own config keys stay
    assert Path(job.config["out"]) == tmp_path / "m" / "jobs" / "cnn" / "tensorrt@H100" / "fp16"
    assert len({j.fingerprint for j in jobs}) == len(jobs)


def test_axes_default_to_each_config_own_lists(tmp_path):
    from infercc.matrix.spec import expand_jobs, load_matrix

    path = write_matrix(tmp_path, models=[{**CNN, "precisions": ["fp32", "fp16"]}])
    (job,) = expand_jobs(load_matrix(path), path)
    assert job.id == "small_cnn/onnxruntime/fp32+fp16"


def test_one_failing_model_is_a_failed_cell_and_the_rest_finish(cli, tmp_path):
    out = tmp_path / "m"
    path = write_matrix(tmp_path, models=[CNN, BROKEN], precisions=["fp32"], defaults=FAST, out=str(out))
    result = cli("matrix", path, "--json")
    assert result.code == 4, result.err
    doc = result.json()
    assert doc["status"] == "failed" and doc["exit_code"] == 4
    rows = {j["id"]: j for j in doc["jobs"]}
    ok, broken = rows["small_cnn/onnxruntime/fp32"], rows["broken/onnxruntime/fp32"]
    assert ok["status"] == "ok" and ok["exit_code"] == 0 and ok["verify_passed"] is True
    assert set(ok["ran"]) >= {"export", "simplify", "verify"}
    assert broken["status"] == "failed" and broken["exit_code"] == 2 and "boom" in broken["error"]
    cells = {c["model"]: c for c in doc["cells"]}
    assert cells["broken"]["status"] == "failed" and cells["small_cnn"]["status"] == "ok"
    assert doc["cache"] == {"hits": 0, "misses": 0, "refused": 0}
    summary = json.loads((out / "matrix.json").read_text())
    assert summary["models"] == ["small_cnn", "broken"] and summary["targets"] == ["onnxruntime"]
    page = (out / "matrix.html").read_text()
    assert "broken/onnxruntime/fp32" in page and "boom" in page
    assert "1 of 2 job(s) failed: broken/onnxruntime/fp32" in result.err

    # resume: the job that finished is not run again; the failed one is
    again = cli("matrix", path, "--json")
    rows = {j["id"]: j for j in again.json()["jobs"]}
    assert rows["small_cnn/onnxruntime/fp32"]["resumed"] is True
    assert rows["broken/onnxruntime/fp32"]["resumed"] is False and again.code == 4


def test_gpu_job_without_such_a_gpu_fails_its_cell(cli, tmp_path):
    path = write_matrix(
        tmp_path, models=[CNN], precisions=["fp32"], targets=["tensorrt@H100"], out=str(tmp_path / "m")
    )
    result = cli("matrix", path, "--json")
    assert result.code == 4
    (row,) = result.json()["jobs"]
    assert row["status"] == "failed" and "needs a H100 GPU" in row["error"] and "--ray" in row["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"models": []}, "models"),
        ({"models": [CNN], "precisions": ["fp8"]}, "precisions.0"),
        ({"models": [CNN], "targets": ["tensorrt@H 100"]}, "targets.0"),
        ({"models": [CNN], "target": ["onnxruntime"]}, "unknown key"),
        ({"models": [{**CNN, "inptus": {}}]}, "inptus"),
        ({"models": ["missing.yaml"]}, "does not exist"),
    ],
)
def test_bad_matrix_files_are_usage_errors(cli, tmp_path, body, message):
    result = cli("matrix", write_matrix(tmp_path, **body), "-o", tmp_path / "m")
    assert result.code == 2, result.err
    assert message in result.err
    assert not (tmp_path / "m" / "jobs").exists()  # no job ran


def test_ray_address_without_a_cluster_is_a_usage_error(cli, tmp_path):
    pytest.importorskip("ray")
    path = write_matrix(tmp_path, models=[CNN], precisions=["fp32"], out=str(tmp_path / "m"))
    result = cli("matrix", path, "--ray", "127.0.0.1:1")
    assert result.code == 2 and "cannot connect to a Ray cluster" in result.err


def test_a_job_failing_only_verification_exits_1(cli, tmp_path):
    strict = {"verify": {"tolerances": {"fp32": {"atol": 0, "rtol": 0, "min_cosine": 1.0}}}}
    path = write_matrix(
        tmp_path, models=[{**CNN, **strict}], precisions=["fp32"], defaults=FAST, out=str(tmp_path / "m")
    )
    result = cli("matrix", path, "--json")
    assert result.code == 1, result.err
    (row,) = result.json()["jobs"]
    assert row["status"] == "failed" and row["exit_code"] == 1 and row["verify_passed"] is False
    assert (
        "outside atol 0" in row["error"] and row["ran"]
    )  # the job's own document was read despite the failure
