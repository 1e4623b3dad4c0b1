"""What every data format shares: the types a source is made of, the registry of formats, listing files.

A format (npy.py, images.py, callable.py, synthetic.py) turns a DataSource into *items* (a file, an image, a
batch), each loaded only when asked; it registers itself here under the DataSource key that selects it
(`folder`, `images`, `callable`, `synthetic`). data.sources opens a source through its format, checks every
batch and holds evaluation data out; it knows no format by name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from infercc.errors import UsageError
from infercc.fsutil import sha256_file
from infercc.shapes import ShapeRange

if TYPE_CHECKING:
    from infercc.config import DataSource, InputSpec

Feeds = dict[str, np.ndarray]


@dataclass
class ModelInputs:
    """What every batch must match."""

    names: list[str]
    ranges: dict[str, ShapeRange]
    specs: dict[str, InputSpec]

    def max_batch(self) -> int:
        """Largest first-axis size every input allows (1 when an input fixes it)."""
        sizes = [self.ranges[n].max[0] if self.ranges[n].max else 1 for n in self.names]
        return max(1, min(sizes)) if sizes else 1

    def batch_fixed(self) -> int | None:
        for name in self.names:
            r = self.ranges[name]
            if r.min and r.min[0] == r.max[0]:
                return r.min[0]
        return None


@dataclass
class Item:
    """One unit of a source: loads to a list of samples (each a Feeds of batch 1 or more)."""

    key: str  # file name or batch index
    load: Callable[[], list[Feeds]]
    fingerprint: str = ""


@runtime_checkable
class DataFormat(Protocol):
    """A format subclasses this (for its defaults) and is registered with @register_format."""

    kind: ClassVar[str]  # the DataSource key that selects this format
    batched: ClassVar[bool] = (
        False  # samples come one by one and are stacked into batches of source.batch_size
    )
    seeded: ClassVar[bool] = (
        False  # made from the seed: evaluation data comes from another seed, none held out
    )

    def items(self, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
        """The source's items (nothing loaded yet) and a description of them for the report."""
        ...

    def paths(self, source: DataSource, role: str) -> list[Path]:
        """The files and folders the source reads: stages that read it hash them into their keys."""
        ...

    def warnings(self, role: str) -> list[str]:
        """What the report must say about data of this format (synthetic data says little about accuracy)."""
        return []


FORMATS: dict[str, DataFormat] = {}
F = TypeVar("F", bound=type)


def register_format(cls: F) -> F:
    """Class decorator: one instance of the format, registered under its `kind` (which must be new)."""
    fmt = cls()
    if fmt.kind in FORMATS:
        raise ValueError(f"data format {fmt.kind!r} is registered twice")
    FORMATS[fmt.kind] = fmt
    return cls


def data_format(source: DataSource) -> DataFormat:
    return FORMATS[source.kind]


def file_fingerprint(path: Path) -> str:
    return sha256_file(path)


def list_files(folder: Path, suffixes: set[str], include: list[str], what: str, role: str) -> list[Path]:
    """Sorted files of `folder` with one of `suffixes`, filtered by `include` globs; clear errors otherwise."""
    flag = "--calib" if role == "calibration" else "--eval"
    if not folder.exists():
        raise UsageError(
            f"The {role} folder {folder} does not exist.", hint=f"Pass an existing folder to {flag}."
        )
    if not folder.is_dir():
        raise UsageError(f"The {role} source {folder} is not a folder.", hint=f"Pass a folder to {flag}.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if include:
        files = [p for p in files if any(fnmatch.fnmatch(p.name, pat) for pat in include)]
        missing = [
            pat for pat in include if not any(c in pat for c in "*?[") and not (folder / pat).is_file()
        ]
        if missing:
            raise UsageError(
                f"{role} include: {', '.join(missing)} not found in {folder}.", hint="Fix `include`."
            )
    if not files:
        raise UsageError(
            f"The {role} folder {folder} holds no {what} ({', '.join(sorted(suffixes))})"
            + (f" matching {', '.join(include)}" if include else "")
            + ".",
            hint=f"Put {what} in it, or pass another folder to {flag}.",
        )
    return files
