"""Polygraphy's JSON formats, so infercc's reference can be checked with `polygraphy run` and Polygraphy's
saved inputs can drive `infercc verify`.

Read from Polygraphy 0.53.6 (polygraphy/json/serde.py, comparator/struct.py): an array is
`{"array": base64(np.save bytes), "polygraphy_class": "ndarray"}`; `--load-inputs` takes a JSON list of feed
dicts (input name -> array), or one feed dict; `--load-outputs` takes RunResults:
`{"lst": [[runner_name, [IterationResult, ...]]], "polygraphy_class": "RunResults"}` where an IterationResult is
`{"outputs": {name: {"values": array, "polygraphy_class": "LazyArray"}}, "runtime": seconds or null,
"runner_name": ..., "polygraphy_class": "IterationResult"}`. Iteration i of the outputs belongs to feed i.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from infercc.errors import UsageError
from infercc.fsutil import atomic_write_text

TYPE_MARKER = "polygraphy_class"
LEGACY_MARKER = "polygraphy_serialized_json_type"  # Polygraphy < 0.38 wrote this key
Feeds = dict[str, np.ndarray]


def encode_array(array: np.ndarray) -> dict[str, str]:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode("ascii"), TYPE_MARKER: "ndarray"}


def decode_array(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, dict) or "array" not in value:
        raise UsageError(
            f"{where}: expected a Polygraphy-encoded array ({{'array': ..., '{TYPE_MARKER}': 'ndarray'}}).",
            hint="Write the file with polygraphy's --save-inputs / data to-input, or infercc --save-inputs.",
        )
    try:
        data = base64.b64decode(str(value["array"]).encode(), validate=True)
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (binascii.Error, ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{where}: the array does not decode ({type(exc).__name__}: {exc}).") from None
    if not isinstance(array, np.ndarray):  # an old NPZ payload: its first array
        values = list(array.values())
        if not values:
            raise UsageError(f"{where}: the array payload is empty.")
        array = values[0]
    return array


def save_inputs(path: Path, feeds: list[Feeds]) -> None:
    """Polygraphy's data-loader format (`polygraphy run --load-inputs`): a JSON list of feed dicts."""
    document = [{name: encode_array(value) for name, value in feed.items()} for feed in feeds]
    atomic_write_text(Path(path), json.dumps(document))


def save_outputs(path: Path, outputs: list[Feeds], runner_name: str = "pytorch") -> None:
    """Polygraphy's RunResults (`polygraphy run --load-outputs`): one runner, one iteration per feed."""
    iterations = [
        {
            "outputs": {
                name: {"values": encode_array(v), TYPE_MARKER: "LazyArray"} for name, v in out.items()
            },
            "runtime": None,
            "runner_name": runner_name,
            TYPE_MARKER: "IterationResult",
        }
        for out in outputs
    ]
    document = {"lst": [[runner_name, iterations]], TYPE_MARKER: "RunResults"}
    atomic_write_text(Path(path), json.dumps(document))


def load_inputs(path: Path) -> list[Feeds]:
    """The feed dicts of a Polygraphy inputs file (a list of them, or one)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Inputs file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"Inputs file {path} is not JSON: {exc}.") from None
    feeds = document if isinstance(document, list) else [document]
    loaded = []
    for i, feed in enumerate(feeds):
        if not isinstance(feed, dict) or not feed or TYPE_MARKER in feed or LEGACY_MARKER in feed:
            raise UsageError(
                f"Inputs file {path}, item {i}: expected a feed dict (input name -> array), "
                f"got {type(feed).__name__}.",
                hint="Polygraphy's --load-inputs format: a JSON list of {name: array} dicts.",
            )
        loaded.append({str(n): decode_array(v, f"{path}, item {i}, input {n}") for n, v in feed.items()})
    if not loaded:
        raise UsageError(f"Inputs file {path} holds no feed dicts.")
    return loaded
