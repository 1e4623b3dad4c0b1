"""Calibration: one pass over the calibration data records every quantizable tensor's range (onnxruntime's
calibrators). The ranges go to calibration.json in onnxruntime's TensorsData format, plus an `infercc` block
that says what they were computed from, so a later run can reuse them and a changed model/data/method cannot."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from infercc.config import CalibrationMethod
from infercc.errors import StageError, UsageError
from infercc.fsutil import atomic_write_text, sha256_json
from infercc.lazy import require

CALIBRATION_FILE = "calibration.json"
CHUNK = 4  # batches collected before the calibrator reduces them (bounds memory on big models)


def ort_method(method: CalibrationMethod) -> Any:
    from onnxruntime.quantization import CalibrationMethod as OrtMethod

    return {"minmax": OrtMethod.MinMax, "entropy": OrtMethod.Entropy, "percentile": OrtMethod.Percentile}[
        method.value
    ]


def quantizable_ops() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        return next(self.batches, None)


def compute_ranges(
    model: Path,
    batches: Iterable[dict[str, Any]],
    method: CalibrationMethod,
    percentile: float,
    progress: Any = None,
) -> tuple[Any, int]:
    """Run the calibrator over every batch; returns (onnxruntime TensorsData, number of batches)."""
    require("onnxruntime", "INT8 calibration")
    from onnxruntime.quantization import create_calibrator

    extra: dict[str, Any] = {"symmetric": False}  # asymmetric ranges serve both Q/DQ forms
    if method is CalibrationMethod.percentile:
        extra["percentile"] = percentile
    iterator = iter(batches)
    seen = 0
    with tempfile.TemporaryDirectory(prefix="infercc-calib-") as tmp, _quiet():
        try:
            calibrator = create_calibrator(
                Path(model),
                quantizable_ops(),
                augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                calibrate_method=ort_method(method),
                extra_options=extra,
            )
            while chunk := list(itertools.islice(iterator, CHUNK)):
                calibrator.collect_data(_Reader(chunk))  # min/max and histograms merge across calls
                seen += len(chunk)
                if progress is not None:
                    progress(seen)
            if not seen:
                raise UsageError("The calibration data gave no batches.", hint="Point --calib at data.")
            ranges = calibrator.compute_data()
        except UsageError:
            raise
        except Exception as exc:
            raise StageError(
                f"Calibration failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                hint="Check that the calibration data matches the model's inputs.",
            ) from exc
    return ranges, seen


def cache_identity(
    model_sha256: str, data_fingerprint: str, method: CalibrationMethod, percentile: float
) -> dict[str, Any]:
    ident: dict[str, Any] = {"model_sha256": model_sha256, "data": data_fingerprint, "method": method.value}
    if method is CalibrationMethod.percentile:
        ident["percentile"] = percentile
    ident["key"] = sha256_json(ident)
    return ident


def save_cache(path: Path, ranges: Any, identity: dict[str, Any], extra: dict[str, Any]) -> None:
    from onnxruntime.quantization.calibrate import CalibrationCacheEncoder

    payload = ranges.to_dict()
    payload["infercc"] = {**identity, **extra}
    atomic_write_text(path, json.dumps(payload, cls=CalibrationCacheEncoder) + "\n")


def read_identity(path: Path) -> dict[str, Any] | None:
    """The `infercc` block of a cache file; None when missing or unreadable (then it is recomputed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ident = data.get("infercc") if isinstance(data, dict) else None
    return ident if isinstance(ident, dict) and "data" in data else None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
