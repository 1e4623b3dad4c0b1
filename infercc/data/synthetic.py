"""Seeded synthetic inputs within each input's declared value range, and the `synthetic:` data format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infercc.config import InputSpec
from infercc.data.base import DataFormat, Feeds, Item, ModelInputs, register_format
from infercc.fsutil import sha256_json
from infercc.shapes import Shape, format_dims

if TYPE_CHECKING:
    from infercc.config import DataSource

SYNTHETIC_WARNING = (
    "calibrating INT8 on synthetic data: the ranges (and the accuracy figures) say little about real inputs; "
    "pass --calib with real data"
)


@register_format
class SyntheticData(DataFormat):
    """`synthetic: true`: seeded random batches at the opt shapes (a last resort: says little about accuracy)."""

    kind = "synthetic"
    seeded = True

    def items(self, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
        return synthetic_items(source, inputs)

    def paths(self, source: DataSource, role: str) -> list[Path]:
        return []

    def warnings(self, role: str) -> list[str]:
        return [SYNTHETIC_WARNING if role == "calibration" else "evaluating on synthetic data"]


def synthetic_feed(
    names: list[str], shapes: dict[str, Shape], specs: dict[str, InputSpec], seed: int
) -> Feeds:
    """One feed: every input at its given shape, values uniform in [low, high) from a fixed seed."""
    rng = np.random.default_rng(seed)
    feed: Feeds = {}
    for name in names:
        spec = specs.get(name) or InputSpec()
        feed[name] = _values(rng, shapes[name], spec)
    return feed


def _values(rng: np.random.Generator, shape: Shape, spec: InputSpec) -> np.ndarray:
    dtype = spec.dtype.value
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        low, high = int(np.floor(spec.low)), int(np.ceil(spec.high))
        if spec.high == 1.0 and spec.low == 0.0:
            high = 2  # default range for integer inputs: {0, 1}
        return rng.integers(low, max(high, low + 1), size=shape, dtype=dtype)
    return rng.uniform(spec.low, spec.high, size=shape).astype(dtype)


def synthetic_items(source: DataSource, inputs: ModelInputs) -> tuple[list[Item], str]:
    """`samples` seeded feeds at the opt shapes, values within each input's declared low..high."""
    shapes = {n: inputs.ranges[n].opt for n in inputs.names}

    def loader(i: int) -> Callable[[], list[Feeds]]:
        return lambda: [synthetic_feed(inputs.names, shapes, inputs.specs, seed=source.seed * 100_003 + i)]

    spec = {n: (inputs.specs.get(n) or InputSpec()).model_dump(mode="json") for n in inputs.names}
    fingerprint = sha256_json({"shapes": shapes, "specs": spec, "seed": source.seed})
    items = [Item(f"synthetic batch {i}", loader(i), f"{fingerprint}:{i}") for i in range(source.samples)]
    shown = ", ".join(f"{n}:{format_dims(s)}" for n, s in shapes.items())
    return items, f"{source.samples} seeded synthetic batches ({shown}, seed {source.seed})"
