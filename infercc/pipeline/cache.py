"""A content-addressed store of finished stages that machines share (`--cache URL`, any fsspec URL).

Layout under the URL's root:

    blobs/<sha[:2]>/<sha256>        file contents, named by their own sha256 (shared by every entry)
    stages/<key[:2]>/<key>.json     one finished stage: its StageRecord (outputs with sha256 and size)
    tmp/<uuid>                      uploads in flight; renamed into place once complete

An entry is written after all its blobs, and every object is first uploaded under a temporary key and then
renamed, so a reader never sees half an entry. On download each file is hashed while it streams; a file
whose sha256 or size differs from the entry refuses the whole entry (it is deleted and the stage rebuilt).
A stage that measures this machine (verify, bench, anything not marked `portable`) is cached per host.
A cache that cannot be reached never fails a build: it is reported and the stage runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from infercc.errors import InferccError, MissingRuntimeError, UsageError
from infercc.fsutil import atomic_path, safe_child, sha256_file, sha256_json
from infercc.pipeline.manifest import CacheSummary, StageRecord

ENTRY_SCHEMA = "infercc.cache/1"
CHUNK = 1 << 20
CLOUD_EXTRA_HINT = "pip install 'infercc[cloud]' (s3fs and gcsfs, pinned by constraints.txt)"


class CacheFile(BaseModel):
    """A file an entry restores that is no stage artifact (an ONNX model's external-data file)."""

    path: str
    sha256: str
    size: int


class CacheEntry(BaseModel):
    schema_: str = Field(ENTRY_SCHEMA, alias="schema")
    key: str  # the cache key: the stage key, plus the host for stages that measure the machine
    stage_key: str
    record: StageRecord
    companions: list[CacheFile] = Field(default_factory=list)

    model_config = {"populate_by_name": True}


class RefusedEntry(Exception):
    """A downloaded file does not match the entry (damaged or tampered with); `sha` names the bad blob."""

    def __init__(self, message: str, sha: str | None = None) -> None:
        super().__init__(message)
        self.sha = sha


class CacheReadError(Exception):
    """Reading from the cache failed (network, permissions): kept apart from local write errors, which
    atomic_path turns into StageError, so an unreachable cache is a miss and never fails the build."""


def _read(src: Any) -> bytes:
    try:
        return src.read(CHUNK)
    except Exception as exc:
        raise CacheReadError(exc) from exc


@dataclass
class ArtifactCache:
    """Restore and store finished stages under an fsspec URL. `summary` counts what happened."""

    url: str
    fs: Any
    root: str
    summary: CacheSummary = field(init=False)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.summary = CacheSummary(url=self.url)

    # --- keys and paths ---------------------------------------------------------------------------

    def entry_key(self, stage: Any, key: str) -> str:
        if getattr(stage, "portable", False):
            return key
        return sha256_json({"stage_key": key, "host": host_fingerprint()})

    def _entry_path(self, entry_key: str) -> str:
        return f"{self.root}/stages/{entry_key[:2]}/{entry_key}.json"

    def _blob_path(self, sha: str) -> str:
        return f"{self.root}/blobs/{sha[:2]}/{sha}"

    # --- restore ----------------------------------------------------------------------------------

    def restore(self, stage: Any, key: str, out: Path) -> StageRecord | None:
        """Download a finished stage's outputs into `out`; None (a miss) when absent, refused or unreachable."""
        entry_key = self.entry_key(stage, key)
        try:
            entry = self._read_entry(entry_key)
            if entry is None or entry.stage_key != key or entry.record.name != stage.name:
                self.summary.misses.append(stage.name)
                return None
            self._download_all(entry, out)
        except RefusedEntry as exc:
            self._refuse(stage.name, entry_key, exc)
            return None
        except InferccError:
            raise
        except Exception as exc:
            self._unreachable(stage.name, "read", exc)
            return None
        self.summary.hits.append(stage.name)
        return entry.record

    def _read_entry(self, entry_key: str) -> CacheEntry | None:
        path = self._entry_path(entry_key)
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            entry = CacheEntry.model_validate(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            raise RefusedEntry(f"the entry is not valid ({str(exc).splitlines()[0][:120]})") from None
        if entry.schema_ != ENTRY_SCHEMA or entry.key != entry_key:
            raise RefusedEntry("the entry is filed under another key")
        return entry

    def _download_all(self, entry: CacheEntry, out: Path) -> None:
        files = [(a.path, a.sha256, a.size) for a in entry.record.outputs]
        files += [(c.path, c.sha256, c.size) for c in entry.companions]
        for rel, sha, size in files:
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise RefusedEntry(f"{rel} lies outside the output folder")
            self._download(sha, size, safe_child(out, rel), rel)

    def _download(self, sha: str, size: int, dest: Path, rel: str) -> None:
        try:
            src = self.fs.open(self._blob_path(sha), "rb")
        except FileNotFoundError:
            raise RefusedEntry(f"{rel} is missing from the cache") from None
        except Exception as exc:  # not an OSError on our side: reading the cache failed
            raise CacheReadError(exc) from exc
        digest, received = hashlib.sha256(), 0
        with src, atomic_path(dest) as tmp, open(tmp, "wb") as dst:
            while block := _read(src):
                digest.update(block)
                received += len(block)
                if received > size:
                    break
                dst.write(block)
            if received != size or digest.hexdigest() != sha:
                raise RefusedEntry(f"{rel} does not match its sha256 in the entry", sha=sha)

    def _refuse(self, stage_name: str, entry_key: str, exc: RefusedEntry) -> None:
        """Drop a damaged entry (and the blob that failed) so the rebuilt stage stores a good one."""
        self.summary.misses.append(stage_name)
        self.summary.refused.append(stage_name)
        self.warnings.append(f"cache entry for {stage_name} refused: {exc}; rebuilding the stage.")
        doomed = [self._entry_path(entry_key)] + ([self._blob_path(exc.sha)] if exc.sha else [])
        for path in doomed:
            try:
                self.fs.rm(path)
            except Exception:  # a read-only cache: the entry stays refused on every run, which is safe
                pass

    def _unreachable(self, stage_name: str, action: str, exc: Exception) -> None:
        self.summary.misses.append(stage_name)
        self.summary.errors.append(f"{stage_name}: {action}: {type(exc).__name__}: {str(exc)[:200]}")
        self.warnings.append(
            f"cache {self.url} could not be {action} for {stage_name} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); the stage runs without it."
        )

    # --- store ------------------------------------------------------------------------------------

    def store(self, stage: Any, key: str, record: StageRecord, out: Path) -> None:
        """Upload a stage that finished ("done"): blobs first, the entry last."""
        if record.status != "done":
            return
        entry_key = self.entry_key(stage, key)
        try:
            companions = _companions(out, record)
            for art in record.outputs:
                self._upload_blob(out / art.path, art.sha256, art.size)
            for extra in companions:
                self._upload_blob(out / extra.path, extra.sha256, extra.size)
            entry = CacheEntry(key=entry_key, stage_key=key, record=record, companions=companions)
            data = json.dumps(entry.model_dump(mode="json", by_alias=True), indent=1).encode()
            self._put_atomic(data, self._entry_path(entry_key))
        except InferccError:
            raise
        except Exception as exc:
            self.summary.errors.append(f"{stage.name}: write: {type(exc).__name__}: {str(exc)[:200]}")
            self.warnings.append(
                f"could not store {stage.name} in the cache {self.url} ({type(exc).__name__}); the build goes on."
            )
            return
        self.summary.stored.append(stage.name)

    def _upload_blob(self, local: Path, sha: str, size: int) -> None:
        target = self._blob_path(sha)
        try:
            if self.fs.info(target).get("size") == size:
                return  # content-addressed: already there (a damaged one is caught on download)
        except FileNotFoundError:
            pass
        if sha256_file(local) != sha:
            raise RefusedEntry(f"{local.name} changed since the stage wrote it")
        tmp = self._tmp_path()
        self.fs.put_file(str(local), tmp)
        self._rename(tmp, target)

    def _put_atomic(self, data: bytes, target: str) -> None:
        tmp = self._tmp_path()
        self.fs.pipe_file(tmp, data)
        self._rename(tmp, target)

    def _rename(self, tmp: str, target: str) -> None:
        if _is_local(self.fs):  # object stores have no folders; a local one needs the parent first
            os.makedirs(os.path.dirname(target), exist_ok=True)
        self.fs.mv(tmp, target)

    def _tmp_path(self) -> str:
        return f"{self.root}/tmp/{uuid.uuid4().hex}"


def _companions(out: Path, record: StageRecord) -> list[CacheFile]:
    """External-data files written beside ONNX outputs (model.onnx.data): not artifacts, but needed."""
    found = []
    for art in record.outputs:
        data = out / f"{art.path}.data"
        if art.kind == "onnx" and data.is_file():
            found.append(
                CacheFile(path=f"{art.path}.data", sha256=sha256_file(data), size=data.stat().st_size)
            )
    return found


def open_cache(url: str) -> ArtifactCache:
    """Open (and create, for local paths) the store at an fsspec URL; a bad URL is a usage error."""
    try:
        import fsspec
    except ImportError:
        raise MissingRuntimeError(
            "--cache needs fsspec, which is not installed.", hint="pip install fsspec"
        ) from None
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise MissingRuntimeError(
            f"--cache {url}: {str(exc).splitlines()[0]}", hint=CLOUD_EXTRA_HINT
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--cache {url}: not a usable fsspec URL ({exc}).",
            hint="Use file:///path, s3://bucket/prefix or gs://bucket/prefix.",
        ) from None
    root = root.rstrip("/")
    if _is_local(fs):
        _make_local_root(root, url)
    return ArtifactCache(url=url, fs=fs, root=root)


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _make_local_root(root: str, url: str) -> None:
    try:
        for part in ("blobs", "stages", "tmp"):
            os.makedirs(os.path.join(root, part), exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--cache {url}: cannot create {root} ({exc.strerror or exc}).",
            hint="Choose a writable folder, or an s3:// / gs:// URL.",
        ) from None


@functools.cache
def host_fingerprint() -> dict[str, Any]:
    """What makes measurements from this machine differ from another's: CPU, core count, GPUs."""
    from infercc.doctor import cpu_flags, cpu_name

    return {
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "gpus": gpu_names(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def gpu_names() -> list[str]:
    """GPU names from nvidia-smi, without importing torch; none where it is absent or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        run = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ["unknown"]
    return [line.strip() for line in run.stdout.splitlines() if line.strip()]
