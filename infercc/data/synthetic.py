"""Seeded synthetic inputs within each input's declared value range."""

from __future__ import annotations

import numpy as np

from infercc.config import InputSpec
from infercc.shapes import Shape

Feeds = dict[str, np.ndarray]


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
