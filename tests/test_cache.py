"""The shared stage cache (--cache URL): restore on a key match, sha256 checks, refusal and rebuild, reporting."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import CNN_SHAPES, manifest

CNN = [*CNN_SHAPES, "--exporter", "torchscript", "--precision", "fp32,fp16", "--no-bench"]
EXPORT = [*CNN_SHAPES, "--exporter", "torchscript"]  # export takes no precision or bench flags


def _compile(cli, out: Path, cache: Path, *extra: str):
    result = cli("compile", *CNN, "-o", out, "--cache", f"file://{cache}", "--json", *extra)
    assert result.code == 0, result.err
    return result.json()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A cache filled by one real compile, and that compile's output folder."""
    from infercc.cli import main

    root = tmp_path_factory.mktemp("cache")
    out, cache = root / "first", root / "store"
    try:
        main(["compile", *CNN, "-o", str(out), "--cache", f"file://{cache}", "-q"])
    except SystemExit as exc:
        assert exc.code == 0
    return out, cache


def _artifact_hashes(out: Path) -> dict[str, str]:
    return {a["path"]: a["sha256"] for s in manifest(out)["stages"].values() for a in s["outputs"]}


def test_first_run_misses_and_stores_every_stage(seeded):
    out, cache = seeded
    summary = manifest(out)["cache"]
    stages = list(manifest(out)["stages"])
    assert summary["url"] == f"file://{cache}"
    assert summary["hits"] == [] and summary["misses"] == stages and summary["stored"] == stages
    assert len(list((cache / "stages").rglob("*.json"))) == len(stages)
    blobs = {p.name for p in (cache / "blobs").rglob("*") if p.is_file()}
    assert set(_artifact_hashes(out).values()) <= blobs
    assert not list((cache / "tmp").iterdir())  # every upload was renamed into place


def test_fresh_out_takes_every_stage_from_the_cache(seeded, cli, tmp_path):
    out, cache = seeded
    doc = _compile(cli, tmp_path / "second", cache)
    stages = list(manifest(out)["stages"])
    assert doc["ran"] == [] and doc["cached"] == [] and doc["restored"] == stages
    assert doc["cache"] == {"hits": len(stages), "misses": 0, "refused": 0}
    assert _artifact_hashes(tmp_path / "second") == _artifact_hashes(out)
    for path, sha in _artifact_hashes(out).items():
        from infercc.fsutil import sha256_file

        assert sha256_file(tmp_path / "second" / path) == sha
    assert (tmp_path / "second" / "report.json").is_file()
    # the terminal says where each stage came from and counts hits and misses
    human = cli("compile", *CNN, "-o", tmp_path / "third", "--cache", f"file://{cache}")
    assert human.code == 0
    assert "export" in human.out and "from the cache" in human.out
    assert f"{len(stages)} hit(s), 0 miss(es)" in human.out


def test_damaged_entry_is_refused_and_rebuilt(seeded, cli, tmp_path):
    out, cache = seeded
    sha = next(a["sha256"] for a in manifest(out)["stages"]["simplify"]["outputs"])
    blob = cache / "blobs" / sha[:2] / sha
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    blob.write_bytes(bytes(data))

    doc = _compile(cli, tmp_path / "damaged", cache)
    assert doc["cache"]["refused"] == 1 and doc["cache"]["misses"] == 1
    assert doc["ran"] == ["simplify"]  # downstream stages get the same input sha256, so they still hit
    assert "simplify" not in doc["restored"] and "export" in doc["restored"]
    cached_summary = doc["manifest"]["cache"]
    assert cached_summary["refused"] == ["simplify"] and cached_summary["stored"] == ["simplify"]
    assert _artifact_hashes(tmp_path / "damaged")["model.fp32.onnx"] == sha  # rebuilt, not the damaged bytes
    # the store healed: the next fresh run takes everything from it again
    again = _compile(cli, tmp_path / "healed", cache)
    assert again["cache"]["misses"] == 0 and again["ran"] == []


def test_refusal_is_reported_on_the_terminal(seeded, cli, tmp_path):
    _out, cache = seeded
    entry = next((cache / "stages").rglob("*.json"))
    saved = entry.read_bytes()
    try:
        entry.write_text("{not json")
        result = cli("compile", *CNN, "-o", tmp_path / "o", "--cache", f"file://{cache}")
        assert result.code == 0
        assert "cache entry for" in result.out and "refused" in result.out and "rebuilding" in result.out
    finally:
        if not entry.exists():
            entry.write_bytes(saved)


def test_host_bound_stages_are_keyed_by_the_machine():
    from infercc.pipeline.cache import ArtifactCache, host_fingerprint
    from infercc.stages.export import ExportStage
    from infercc.stages.verify import VerifyStage

    cache = ArtifactCache(url="memory://x", fs=None, root="x")
    key = "ab" * 32
    assert cache.entry_key(ExportStage(), key) == key
    assert cache.entry_key(VerifyStage(("fp32",)), key) != key
    assert host_fingerprint()["cpu_count"]


def test_no_cache_by_default(cli, tmp_path):
    result = cli("export", *EXPORT, "-o", tmp_path / "o", "--json")
    assert result.code == 0
    assert result.json()["cache"] is None and result.json()["manifest"]["cache"] is None


def test_bad_cache_urls_are_usage_or_missing_package_errors(cli, tmp_path):
    result = cli("export", *EXPORT, "-o", tmp_path / "o", "--cache", "nosuchproto://bucket/x")
    assert result.code == 2 and "--cache nosuchproto://bucket/x" in result.err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = cli("export", *EXPORT, "-o", tmp_path / "o", "--cache", f"file://{a_file}/sub")
    assert result.code == 2 and "cannot create" in result.err
    if importlib.util.find_spec("s3fs") is None:
        result = cli("export", *EXPORT, "-o", tmp_path / "o", "--cache", "s3://bucket/prefix")
        assert result.code == 3 and "infercc[cloud]" in result.err


def test_cache_entry_is_plain_json_with_the_stage_record(seeded):
    out, cache = seeded
    key = manifest(out)["stages"]["export"]["key"]
    entry = json.loads((cache / "stages" / key[:2] / f"{key}.json").read_text())
    assert entry["schema"] == "infercc.cache/1" and entry["stage_key"] == key
    assert entry["record"]["outputs"][0]["path"] == "model.onnx"


def test_entry_whose_file_is_missing_is_refused_and_rebuilt(seeded, cli, tmp_path):
    out, cache = seeded
    sha = next(
        a["sha256"] for a in manifest(out)["stages"]["export"]["outputs"] if a["path"] == "reference.npz"
    )
    (cache / "blobs" / sha[:2] / sha).unlink()
    result = cli("compile", *CNN, "-o", tmp_path / "o", "--cache", f"file://{cache}", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["ran"][0] == "export" and doc["cache"]["refused"] == 1
    assert "cache entry for export refused: reference.npz is missing from the cache" in result.err
    again = _compile(cli, tmp_path / "healed", cache)  # the rebuilt stage was stored again
    assert again["cache"]["misses"] == 0 and again["ran"] == []
