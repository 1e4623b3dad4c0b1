"""The matrix file (`infercc matrix MATRIX.yaml`) and its expansion into jobs.

models x precisions x targets: each model entry is a compile config (inline, the same keys as a config
file) or the path of one; each job is that config with one precision and one target, in its own --out.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from infercc.config import (
    Precision,
    Strict,
    Target,
    load_yaml_document,
    parse_config,
    resolve_relative_paths,
)
from infercc.errors import UsageError
from infercc.fsutil import sha256_json

MATRIX_NAME_KEY = "name"  # the one key a model entry may hold beyond a config file's: its row label


def _target_entry(value: Any) -> Any:
    if isinstance(value, str) and "@" in value:
        target, gpu = value.split("@", 1)
        return {"target": target.strip(), "gpu": gpu.strip()}
    if isinstance(value, str):
        return {"target": value.strip()}
    return value


class TargetSpec(Strict):
    """A column of the matrix: a target, optionally on a GPU type (`tensorrt@H100`)."""

    target: Target = Field(description="What the job builds for, as a config's `targets` entry.")
    gpu: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="GPU type the job needs, e.g. H100. With --ray the job requests the Ray resource "
        "accelerator_type:<gpu>; locally it needs a GPU whose name contains it.",
    )

    @property
    def label(self) -> str:
        return f"{self.target.value}@{self.gpu}" if self.gpu else self.target.value


class MatrixConfig(Strict):
    """A matrix file: models x precisions x targets, one compile job per combination."""

    models: list[str | dict[str, Any]] = Field(
        description="Rows: each a compile config file path (relative to the matrix file) or an inline config "
        "(the same keys as a config file, plus an optional `name` for the row label).",
        min_length=1,
    )
    precisions: list[Precision] | None = Field(
        None, description="Crossed with every model: one job per precision (default: each config's own list)."
    )
    targets: list[TargetSpec] | None = Field(
        None,
        description="Columns, crossed with every model: a target, or TARGET@GPU (e.g. tensorrt@H100; or a "
        "mapping {target, gpu}). Default: each config's own targets.",
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Config keys applied to every job under the model's own (e.g. bench: {enabled: false}).",
    )
    out: Path = Field(
        Path("matrix"), description="Output folder: jobs/<model>/<target>/<precision>, matrix.json/html."
    )
    cache: str | None = Field(None, description="Shared stage cache URL (as --cache; the flag wins).")
    retries: int = Field(
        1, ge=0, le=10, description="Times a job whose worker died (killed, lost node) is run again."
    )
    cpus_per_job: float = Field(
        1.0, gt=0, description="CPUs one job takes (Ray: num_cpus; locally: threads)."
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _short_targets(cls, values: Any) -> Any:
        return [_target_entry(v) for v in values] if isinstance(values, list) else values

    @field_validator("precisions", "targets")
    @classmethod
    def _no_repeats(cls, values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        keys = [v.label if isinstance(v, TargetSpec) else str(v) for v in values]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        if not values:
            raise ValueError("needs at least one entry (or leave the key out)")
        return values


def job_count(matrix: MatrixConfig) -> int:
    """How many jobs expand_jobs makes, without validating their configs."""
    return len(matrix.models) * len(matrix.precisions or [None]) * len(matrix.targets or [None])


class Job(BaseModel):
    """One cell of one precision: a complete compile config with its own output folder."""

    id: str  # model/target/precision
    model: str
    target: str  # the column label (target or target@gpu)
    precision: str  # one precision, or "+"-joined when the config's own list is kept
    gpu: str | None = None
    config: dict[str, Any]  # CompileConfig dump, out included
    cwd: str  # where relative paths in the config mean something
    fingerprint: str  # sha256 of the config: a finished job with the same one is not run again

    @property
    def out(self) -> Path:
        return Path(self.config["out"])


def load_matrix(path: Path) -> MatrixConfig:
    data, _ = load_yaml_document(path)
    try:
        return MatrixConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(map(str, e['loc'])) or '(top level)'}: {_message(e)}" for e in exc.errors()
        ]
        raise UsageError("Invalid matrix file:\n  " + "\n  ".join(lines)) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown key (known: {', '.join(MatrixConfig.model_fields)})"
    return str(error["msg"]).removeprefix("Value error, ")


def expand_jobs(matrix: MatrixConfig, matrix_path: Path, out: Path | None = None) -> list[Job]:
    """Every job of the matrix, each config validated now (a bad entry stops the matrix before any job)."""
    root = (out or matrix.out).resolve()
    base = matrix_path.resolve().parent
    jobs: list[Job] = []
    names: set[str] = set()
    for index, entry in enumerate(matrix.models):
        data, name, origin = _model_entry(entry, index, base)
        name = _unique(name, names)
        data = _deep_merge(copy.deepcopy(matrix.defaults), data)
        precisions = [[p.value] for p in matrix.precisions] if matrix.precisions else [None]
        targets = matrix.targets or [None]
        for target in targets:
            for precision in precisions:
                jobs.append(_job(data, name, origin, target, precision, root))
    return jobs


def _model_entry(entry: str | dict[str, Any], index: int, base: Path) -> tuple[dict[str, Any], str, str]:
    if isinstance(entry, str):
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        data, _ = load_yaml_document(path)
        resolve_relative_paths(data, path.parent)
        return data, _safe_name(path.stem), str(path)
    data = copy.deepcopy(entry)
    name = data.pop(MATRIX_NAME_KEY, None)
    source = str((data.get("model") or {}).get("source") or "model")
    return data, _safe_name(str(name) if name else _name_from_source(source)), f"models[{index}]"


def _name_from_source(source: str) -> str:
    file_part, _, factory = source.rpartition(":") if ":" in source else (source, "", "")
    return factory or Path(file_part or source).stem


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _job(
    data: dict[str, Any],
    name: str,
    origin: str,
    target: TargetSpec | None,
    precision: list[str] | None,
    root: Path,
) -> Job:
    data = copy.deepcopy(data)
    if precision is not None:
        data["precisions"] = precision
    if target is not None:
        data["targets"] = [target.target.value]
    config = parse_config(data, origin)
    label = target.label if target is not None else "+".join(t.value for t in config.targets)
    prec = "+".join(p.value for p in config.precisions)
    config.out = root / "jobs" / name / label / prec
    config.model.source = _absolute_source(config.model.source)
    dump = config.model_dump(mode="json")
    return Job(
        id=f"{name}/{label}/{prec}",
        model=name,
        target=label,
        precision=prec,
        gpu=target.gpu if target is not None else None,
        config=dump,
        cwd=str(Path.cwd()),
        fingerprint=sha256_json(dump),
    )


def _absolute_source(spec: str) -> str:
    """A model file named relative to the current folder, made absolute so any worker finds it."""
    file_part, sep, factory = spec.rpartition(":") if re.search(r"\.\w+:", spec) else (spec, "", "")
    path = Path(file_part)
    if not path.is_absolute() and path.suffix and path.exists():
        return str(path.resolve()) + (sep + factory if sep else "")
    return spec
