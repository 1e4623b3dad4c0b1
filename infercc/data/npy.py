"""Folder of .npy / .npz files: one batch per file (.npz keyed by input name; .npy for single-input models)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infercc.errors import UsageError

if TYPE_CHECKING:
    from infercc.config import DataSource
    from infercc.data.sources import Feeds, Item, ModelInputs

SUFFIXES = {".npy", ".npz"}


def items(folder: Path, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
    from infercc.data.sources import Item, file_fingerprint, list_files

    files = list_files(folder, SUFFIXES, source.include, ".npy/.npz files", role)[: source.samples]
    if len(inputs.names) > 1 and any(p.suffix.lower() == ".npy" for p in files):
        first = next(p for p in files if p.suffix.lower() == ".npy")
        raise UsageError(
            f"{first}: a .npy file holds one array, but the model takes {len(inputs.names)} inputs "
            f"({', '.join(inputs.names)}).",
            hint="Save each batch as .npz keyed by input name: np.savez(path, "
            + ", ".join(f"{n}=..." for n in inputs.names)
            + ").",
        )
    return [
        Item(p.name, _loader(p, inputs), file_fingerprint(p)) for p in files
    ], f"{len(files)} files in {folder}"


def _loader(path: Path, inputs: ModelInputs):
    return lambda: [load_batch(path, inputs)]


def load_batch(path: Path, inputs: ModelInputs) -> Feeds:
    try:
        if path.suffix.lower() == ".npy":
            return {inputs.names[0]: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(
            f"Cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}.",
            hint="Write batches with np.save / np.savez (no pickled objects).",
        ) from None
