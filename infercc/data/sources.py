"""Calibration and evaluation data: one interface over .npy/.npz folders, images, callables and synthetic data.

A source is a list of *items* (a file, an image, a batch) that each give one or more samples. The
evaluation set is either its own source or a held-out share of the calibration items, so accuracy is
never measured on what calibrated the ranges. Every batch is checked against the model's inputs
(names, dtypes, shapes within the declared ranges) before anything runs on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infercc.config import DataSource, InputSpec
from infercc.data.base import Feeds, Item, ModelInputs, data_format
from infercc.errors import UsageError
from infercc.fsutil import sha256_file, sha256_json
from infercc.shapes import format_dims


@dataclass
class Dataset:
    role: str  # "calibration" or "evaluation"
    kind: str  # folder, images, callable, synthetic
    description: str
    items: list[Item]
    inputs: ModelInputs
    fingerprint: str
    batch_size: int = 1
    labels: dict[str, Any] | list[int] | None = None
    warnings: list[str] = field(default_factory=list)
    _cache: list[tuple[Feeds, list[int] | None]] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def batches(self, limit: int | None = None) -> Iterator[Feeds]:
        for feed, _ in self.labelled_batches(limit):
            yield feed

    def labelled_batches(self, limit: int | None = None) -> Iterator[tuple[Feeds, list[int] | None]]:
        """Checked batches with their labels (None when no labels file was given). Loaded once, then kept."""
        if self._cache is None:
            self._cache = list(self._load())
        count = 0
        for feed, labels in self._cache:
            if limit is not None and count >= limit:
                return
            if limit is not None:
                rows = _rows(feed)
                if count + rows > limit:
                    keep = limit - count
                    feed = {n: v[:keep] for n, v in feed.items()}
                    labels = labels[:keep] if labels is not None else None
            count += _rows(feed)
            yield feed, labels

    def _load(self) -> Iterator[tuple[Feeds, list[int] | None]]:
        pending: list[tuple[Feeds, list[int] | None]] = []
        for item in self.items:
            samples = item.load()
            for i, feed in enumerate(samples):
                where = f"{self.role} data {item.key}" + (f" (sample {i})" if len(samples) > 1 else "")
                feed = check_feed(feed, self.inputs, where)
                labels = self._labels_for(item.key, _rows(feed), where)
                if self.batch_size > 1 and _rows(feed) == 1:
                    pending.append((feed, labels))
                    if len(pending) == self.batch_size:
                        yield _stack(pending)
                        pending = []
                else:
                    yield feed, labels
        if pending:
            yield _stack(pending)

    def _labels_for(self, key: str, rows: int, where: str) -> list[int] | None:
        if self.labels is None:
            return None
        if isinstance(self.labels, dict):
            value = self.labels.get(key, self.labels.get(Path(key).name))
            if value is None:
                raise UsageError(
                    f"The labels file has no entry for {key}.",
                    hint="Give every file a class in the labels file.",
                )
            values = value if isinstance(value, list) else [value] * rows
            if len(values) != rows:
                raise UsageError(
                    f"{where}: {rows} rows but {len(values)} labels.", hint="Give one label per row."
                )
            return [int(v) for v in values]
        return None

    @property
    def samples(self) -> int:
        return sum(_rows(f) for f in self.batches())


def _rows(feed: Feeds) -> int:
    first = next(iter(feed.values()))
    return int(first.shape[0]) if first.ndim else 1


def _stack(pending: list[tuple[Feeds, list[int] | None]]) -> tuple[Feeds, list[int] | None]:
    names = list(pending[0][0])
    feed = {n: np.concatenate([p[0][n] for p in pending]) for n in names}
    labels = None if pending[0][1] is None else [v for p in pending for v in (p[1] or [])]
    return feed, labels


# --- checks -------------------------------------------------------------------------------------


def folder_kind(folder: Path) -> str:
    """The data-source key for a folder: "images" when it holds a picture (infercc.data.images' suffixes),
    else "folder" (.npy/.npz files)."""
    from infercc.data.images import SUFFIXES

    return "images" if any(p.suffix.lower() in SUFFIXES for p in folder.iterdir()) else "folder"


def name_mismatch(given: dict[Any, Any], known: list[str], required: list[str]) -> str:
    """'unknown input a; missing input b' for keys of `given` not in `known` and `required` names not in it,
    or '' when the names fit."""
    unknown = sorted(str(k) for k in given if k not in known)
    missing = [n for n in required if n not in given]
    parts = ([f"unknown input {', '.join(unknown)}"] if unknown else []) + (
        [f"missing input {', '.join(missing)}"] if missing else []
    )
    return "; ".join(parts)


def check_feed(feed: Any, inputs: ModelInputs, where: str) -> Feeds:
    """A batch must name exactly the model's inputs, with their dtypes and shapes within the declared ranges."""
    if not isinstance(feed, dict):
        raise UsageError(
            f"{where}: a batch must be a dict of input name -> array, not {type(feed).__name__}.",
            hint=f"Yield {{{', '.join(repr(n) for n in inputs.names)}: array}}.",
        )
    mismatch = name_mismatch(feed, inputs.names, inputs.names)
    if mismatch:
        raise UsageError(
            f"{where}: {mismatch}; the model's inputs are {', '.join(inputs.names)}.",
            hint="Key each array by the model's input name (npz keys, dict keys).",
        )
    checked: Feeds = {}
    for name in inputs.names:
        value = feed[name]
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        spec = inputs.specs.get(name) or InputSpec()
        want = spec.dtype.value
        if value.dtype != np.dtype(want):
            raise UsageError(
                f"{where}: input {name} is {value.dtype}; the model takes {want}.",
                hint=f"Convert the data with .astype(np.{want}), or declare inputs.{name}.dtype.",
            )
        shape_range = inputs.ranges[name]
        lo, hi = shape_range.min, shape_range.max
        expected = shape_range.describe()
        if value.ndim != len(shape_range.opt):
            raise UsageError(
                f"{where}: input {name} has shape {format_dims(value.shape)} (rank {value.ndim}); the model takes rank "
                f"{len(shape_range.opt)} ({expected}).",
                hint="Include the batch dimension, e.g. 1x... for one sample.",
            )
        for axis, got in enumerate(value.shape):
            if not lo[axis] <= got <= hi[axis]:
                raise UsageError(
                    f"{where}: input {name} has shape {format_dims(value.shape)}; dimension {axis} is {got}, outside the "
                    f"declared range {lo[axis]}..{hi[axis]} ({expected}).",
                    hint="Fix the data, or declare the range with --min-shape/--max-shape.",
                )
        _require_finite(value, name, where)
        checked[name] = np.ascontiguousarray(value)
    return checked


def _require_finite(value: np.ndarray, name: str, where: str) -> None:
    """NaN/Inf in data is a usage error: calibration ranges and accuracy figures over it mean nothing."""
    if not np.issubdtype(value.dtype, np.floating) or np.isfinite(value).all():
        return
    nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
    first = [int(i) for i in np.argwhere(~np.isfinite(value))[0]]
    raise UsageError(
        f"{where}: input {name} holds {nan} NaN and {inf} Inf value(s), the first at index {first}"
        + (f" (sample {first[0]} of the batch)" if value.ndim > 1 else "")
        + ".",
        hint="Clean or drop that sample: ranges calibrated and accuracy measured on NaN/Inf mean nothing.",
    )


# --- resolution ---------------------------------------------------------------------------------


def open_source(source: DataSource, inputs: ModelInputs, role: str) -> Dataset:
    """The dataset a DataSource describes (nothing is loaded yet; files are listed and fingerprinted)."""
    fmt = data_format(source)
    items, description = fmt.items(source, inputs, role)
    batch = source.batch_size or (inputs.batch_fixed() or min(inputs.max_batch(), 8))
    dataset = Dataset(
        role=role,
        kind=fmt.kind,
        description=description,
        items=items,
        inputs=inputs,
        fingerprint="",
        batch_size=batch if fmt.batched else 1,
        warnings=fmt.warnings(role),
    )
    if source.labels is not None:
        labels = read_labels(Path(source.labels))
        if isinstance(labels, list):  # one line per item, in order (sorted files, or batches)
            if len(labels) != len(items):
                raise UsageError(
                    f"Labels file {source.labels} has {len(labels)} lines for {len(items)} {role} items.",
                    hint="Give one class index per file (sorted by name) or per batch, or a JSON map file name -> class.",
                )
            labels = {item.key: label for item, label in zip(items, labels, strict=True)}
        dataset.labels = labels
    return dataset


def _finish(dataset: Dataset, source: DataSource, extra: dict[str, Any]) -> Dataset:
    dataset.fingerprint = sha256_json(
        {
            "kind": dataset.kind,
            "items": [(i.key, i.fingerprint) for i in dataset.items],
            "source": source.model_dump(mode="json", exclude={"folder", "images", "holdout"}),
            "labels": sha256_file(Path(source.labels))
            if source.labels and Path(source.labels).is_file()
            else None,
            "batch": dataset.batch_size,
            **extra,
        }
    )
    return dataset


# The built-in example (EfficientNet-Lite0) runs INT8 out of the box: disjoint real photos shipped with
# scikit-image, with augmented views (see configs/efficientnet_lite0_int8.yaml, which spells the same out).
EXAMPLE_PHOTOS = "infercc.models.examples:sample_photos_dir"
EXAMPLE_CALIBRATION = {
    "images": EXAMPLE_PHOTOS,
    "samples": 80,
    "seed": 1,
    "include": [
        "astronaut.png",
        "retina.jpg",
        "hubble_deep_field.jpg",
        "coins.png",
        "brick.png",
        "grass.png",
        "horse.png",
        "camera.png",
        "color.png",
        "phantom.png",
    ],
}
EXAMPLE_EVALUATION = {
    "images": EXAMPLE_PHOTOS,
    "samples": 168,
    "seed": 3,
    "include": [
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "moon.png",
        "clock_motion.png",
    ],
}


def example_sources(model_source: str) -> tuple[DataSource, DataSource] | None:
    """Calibration/evaluation sources for the built-in example model; None for any other model."""
    from infercc.config import DEFAULT_MODEL
    from infercc.models.examples import EFFICIENTNET_PREPROCESS

    if model_source != DEFAULT_MODEL:
        return None
    return (
        DataSource.model_validate(
            {**EXAMPLE_CALIBRATION, "preprocess": {**EFFICIENTNET_PREPROCESS, "views": 8}}
        ),
        DataSource.model_validate(
            {**EXAMPLE_EVALUATION, "preprocess": {**EFFICIENTNET_PREPROCESS, "views": 24}}
        ),
    )


def effective_sources(config: Any) -> tuple[DataSource | None, DataSource | None]:
    """The calibration and evaluation sources a run uses: the configured ones, or for the built-in example
    model with none configured, its sample photos."""
    calibration, evaluation = config.calibration, config.evaluation
    if calibration is None and evaluation is None:
        example = example_sources(config.model.source)
        if example is not None:
            return example
    return calibration, evaluation


def resolve_datasets(
    calibration: DataSource | None, evaluation: DataSource | None, inputs: ModelInputs, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Calibration and evaluation datasets. Without an evaluation source a held-out share of the calibration
    items is used (synthetic data: another seed); without a calibration source, seeded synthetic data."""
    calib_source = calibration or DataSource(synthetic=True, samples=16, seed=seed)
    calib = open_source(calib_source, inputs, "calibration")
    if evaluation is not None:
        evaluate = open_source(evaluation, inputs, "evaluation")
        _finish(evaluate, evaluation, {})
    elif data_format(calib_source).seeded:
        eval_source = calib_source.model_copy(update={"seed": calib_source.seed + 10_007})
        evaluate = open_source(eval_source, inputs, "evaluation")
        _finish(evaluate, eval_source, {})
    else:
        held = holdout_indices(len(calib.items), calib_source.holdout)
        evaluate = Dataset(
            role="evaluation",
            kind=calib.kind,
            description=f"{len(held)} of {len(calib.items)} held out from {calib.description}",
            items=[calib.items[i] for i in held],
            inputs=inputs,
            fingerprint="",
            batch_size=calib.batch_size,
            labels=calib.labels,
        )
        if held:
            calib.items = [it for i, it in enumerate(calib.items) if i not in set(held)]
            calib.description += f" (less {len(held)} held out for evaluation)"
            _finish(evaluate, calib_source, {"held_out": True})
        else:
            evaluate.items = list(calib.items)
            evaluate.description = f"{calib.description} (too few items to hold some out)"
            evaluate.warnings.append(
                f"accuracy is measured on the calibration data itself ({len(calib.items)} item(s), nothing to hold out); "
                "give an evaluation source (--eval) for honest figures"
            )
            _finish(evaluate, calib_source, {"held_out": False})
    _finish(calib, calib_source, {})
    if not calib.items:
        raise UsageError(
            f"The calibration source has no data: {calib.description}.", hint="Point --calib at data."
        )
    if not evaluate.items:
        raise UsageError(
            f"The evaluation source has no data: {evaluate.description}.", hint="Point --eval at data."
        )
    return calib, evaluate


def holdout_indices(count: int, share: float) -> list[int]:
    """Evenly spread indices of `share` of `count` items (none when fewer than 2 items or share is 0)."""
    if count < 2 or share <= 0:
        return []
    n = min(count - 1, max(1, round(count * share)))
    step = count / n
    return sorted({min(count - 1, int(step * (i + 1)) - 1) for i in range(n)})


def read_labels(path: Path) -> dict[str, Any] | list[int]:
    if not path.is_file():
        raise UsageError(
            f"Labels file {path} does not exist.", hint="Give a file with one class index per line, or JSON."
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"Labels file {path} is not valid JSON: {exc.msg} (line {exc.lineno})."
            ) from None
        if not isinstance(data, dict):
            raise UsageError(f"Labels file {path} must map file name -> class index.")
        return data
    try:
        return [int(line.split()[0]) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise UsageError(f"Labels file {path}: every line must start with a class index.") from None


def source_paths(source: DataSource | None, role: str) -> list[Path]:
    """The files and folders a data source reads (folder, images, a file.py callable, labels), for the
    keys of the stages that read it: the runner hashes them by content (Stage.deps)."""
    if source is None:
        return []
    paths = data_format(source).paths(source, role)
    if source.labels:
        paths.append(Path(source.labels))
    return paths
