"""TensorRT 10 implicit INT8 calibration (IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator).

TensorRT 11 and TensorRT-RTX removed implicit calibration; there INT8 comes from the Q/DQ artifact.
The calibrator is fed by the same calibration sources as the quantize stage, re-batched to the calibration
profile's opt shape, and keeps TensorRT's calibration cache in a file so a rebuild skips calibration.
Batching and the cache are plain Python (tested everywhere); only `make_calibrator` touches TensorRT and CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infercc.config import CalibrationMethod
from infercc.errors import UsageError
from infercc.fsutil import atomic_write_bytes
from infercc.shapes import Shape, format_dims

Feeds = dict[str, np.ndarray]


@dataclass
class Rebatched:
    batches: list[Feeds] = field(default_factory=list)
    samples_used: int = 0  # rows (axis-0 items) that went into full batches
    samples_dropped: int = 0  # rows left over that do not fill a batch


def rebatch(
    samples: Iterable[Mapping[str, np.ndarray]], shapes: Mapping[str, Shape], limit: int | None = None
) -> Rebatched:
    """Concatenate samples along axis 0 and cut them into batches of exactly `shapes` (calibration shapes).

    Each sample may hold any number of rows; every other dimension must match. At most `limit` batches.
    """
    names = list(shapes)
    if not names:
        raise UsageError("The network has no inputs to calibrate.")
    batch = {n: int(shapes[n][0]) if len(shapes[n]) else 1 for n in names}
    if len(set(batch.values())) != 1:
        raise UsageError(
            f"Calibration needs one batch size for all inputs; the calibration shapes give "
            f"{', '.join(f'{n}:{format_dims(shapes[n])}' for n in names)}.",
            hint="Make the opt shapes of the first profile share their first dimension.",
        )
    size = next(iter(batch.values()))
    pending: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rows = 0
    result = Rebatched()
    for index, sample in enumerate(samples):
        missing = [n for n in names if n not in sample]
        if missing:
            raise UsageError(
                f"Calibration sample {index} lacks input {', '.join(missing)} (it has {', '.join(sample)}).",
                hint="Give every model input in each calibration sample (npz keyed by input name).",
            )
        count = None
        for n in names:
            value = np.asarray(sample[n])
            if len(shapes[n]) and value.ndim == len(shapes[n]) - 1:
                value = value[None]  # a single row without its batch axis
            if value.ndim != len(shapes[n]) or tuple(value.shape[1:]) != tuple(shapes[n][1:]):
                raise UsageError(
                    f"Calibration sample {index}, input {n}: shape {format_dims(value.shape)} does "
                    "not fit the "
                    f"calibration shape {format_dims(shapes[n])} (all but the first dimension must match).",
                    hint="Calibrate at the opt shapes of the first profile (--opt-shape).",
                )
            if count is not None and value.shape[0] != count:
                raise UsageError(f"Calibration sample {index}: inputs have different first dimensions.")
            count = value.shape[0]
            pending[n].append(value)
        rows += count or 0
        while rows >= size:
            if limit is not None and len(result.batches) >= limit:
                break
            result.batches.append({n: _take(pending[n], size) for n in names})
            rows -= size
            result.samples_used += size
        if limit is not None and len(result.batches) >= limit:
            break
    result.samples_dropped = rows
    if not result.batches:
        raise UsageError(
            f"Not enough calibration data for one batch of {size} (got {rows} row(s)).",
            hint="Give more calibration samples, or calibrate at a smaller batch (--opt-shape).",
        )
    return result


def _take(parts: list[np.ndarray], size: int) -> np.ndarray:
    joined = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    head, rest = joined[:size], joined[size:]
    parts.clear()
    if len(rest):
        parts.append(rest)
    return np.ascontiguousarray(head)


class CalibrationCache:
    """TensorRT's calibration cache as a file: read before calibrating (skips it), written after."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.read_hits = 0
        self.writes = 0

    def read(self) -> bytes | None:
        if not self.path.is_file():
            return None
        data = self.path.read_bytes()
        if not data:
            return None
        self.read_hits += 1
        return data

    def write(self, data: Any) -> None:
        atomic_write_bytes(self.path, bytes(data))
        self.writes += 1


def calibrator_base(trt: Any, method: CalibrationMethod) -> Any:
    if method is CalibrationMethod.entropy:
        return trt.IInt8EntropyCalibrator2
    if method is CalibrationMethod.minmax:
        return trt.IInt8MinMaxCalibrator
    raise UsageError(
        f"TensorRT's implicit calibrator has no {method.value} method.",
        hint="Use --calib-method minmax or entropy with --int8-route calibrator, or --int8-route "
        "qdq for percentile.",
    )


def make_calibrator(
    trt: Any,
    method: CalibrationMethod,
    batches: list[Feeds],
    cache: CalibrationCache,
    to_device: Callable[[np.ndarray], Any],
) -> Any:
    """A TensorRT 10 calibrator over `batches`; `to_device` turns an array into a CUDA tensor (kept alive)."""
    base = calibrator_base(trt, method)

    class Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # required by the bindings
            self.batches = iter(batches)
            self.keep: list[Any] = []
            self.served = 0

        def get_batch_size(self) -> int:
            return 1  # explicit batch: the batch is part of each tensor's shape

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.keep = [to_device(batch[n]) for n in names]
            self.served += 1
            return [int(t.data_ptr()) for t in self.keep]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read()

        def write_calibration_cache(self, data: Any) -> None:
            cache.write(data)

    return Calibrator()


def calibration_samples(ctx: Any, shapes: Mapping[str, Shape]) -> Iterable[Mapping[str, np.ndarray]]:
    """The samples of config.calibration: the quantize stage's data sources, or seeded synthetic data."""
    source = ctx.config.calibration
    if source is None:
        raise UsageError(
            "INT8 with the implicit calibrator needs calibration data.",
            hint="Pass --calib FOLDER | module:fn | synthetic.",
        )
    if source.synthetic:
        from infercc.data.synthetic import synthetic_feed

        names = list(shapes)
        return (
            synthetic_feed(names, dict(shapes), ctx.inputs, seed=ctx.config.verify.seed + i)
            for i in range(source.samples)
        )
    try:  # the calibration readers of the quantize stage (folder / images / callable)
        from infercc.data.base import ModelInputs
        from infercc.data.sources import open_source
    except ImportError:
        raise UsageError(
            "This infercc has no calibration-data readers; only --calib synthetic works with the implicit "
            "calibrator.",
            hint="Use --calib synthetic, or --int8-route qdq.",
        ) from None
    inputs = ModelInputs(list(ctx.input_names), dict(ctx.shape_ranges), dict(ctx.inputs))
    return open_source(source, inputs, "calibration").batches(source.samples)  # type: ignore[no-any-return]
