"""Folder of .npy / .npz files: one batch per file (.npz keyed by input name; .npy for single-input models)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from infercc.data.base import (
    DataFormat,
    Feeds,
    Item,
    ModelInputs,
    file_fingerprint,
    list_files,
    register_format,
)
from infercc.errors import UsageError
from infercc.fsutil import format_bytes, open_regular_file
from infercc.resources import check_bytes_fit

if TYPE_CHECKING:
    from infercc.config import DataSource

SUFFIXES = {".npy", ".npz"}


@register_format
class NpyFolder(DataFormat):
    """`folder:` a folder of .npy/.npz files, one batch per file."""

    kind = "folder"

    def items(self, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
        return items(Path(source.folder or "."), source, inputs, role)

    def paths(self, source: DataSource, role: str) -> list[Path]:
        return [Path(source.folder or ".")]


def items(folder: Path, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
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
            return {inputs.names[0]: load_npy(path)}
        return load_npz(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(
            f"Cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}.",
            hint="Write batches with np.save / np.savez (no pickled objects).",
        ) from None


def _parse_header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the .npy stream at fh (positioned at its start)."""
    start = fh.tell()
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, dtype, fh.tell() - start


def _check_header(shape: tuple[int, ...], dtype: np.dtype, where: str, data_bytes: int) -> int:
    """The array's size, checked against the bytes that follow the header."""
    if dtype.hasobject:
        raise UsageError(f"{where} holds Python objects; only plain numeric arrays are read (no pickles).")
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > data_bytes:
        raise UsageError(
            f"{where}: its header claims a {'x'.join(map(str, shape))} {dtype} array ({format_bytes(claimed)}), "
            f"but only {format_bytes(data_bytes)} of data follow it.",
            hint="The file is truncated or its header is wrong: save it again with np.save.",
        )
    return claimed


def load_npy(path: Path) -> np.ndarray:
    """np.load for a regular .npy file, refusing devices/FIFOs and headers that claim more than the file."""
    fd = open_regular_file(path, ".npy file")
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        shape, dtype, header = _parse_header(fh)
        check_bytes_fit(_check_header(shape, dtype, str(path), size - header), str(path))
        fh.seek(0)
        return np.lib.format.read_array(fh, allow_pickle=False)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read an .npz member by member, each checked by its declared size before it is decompressed
    (zipfile never inflates a member past the size its directory declares)."""
    fd = open_regular_file(path, ".npz file")
    with os.fdopen(fd, "rb") as raw, zipfile.ZipFile(raw) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        declared = sum(m.file_size for m in members)
        check_bytes_fit(declared, f"{path} (its members declare {format_bytes(declared)} uncompressed)")
        arrays = {}
        for member in members:
            with archive.open(member) as fh:
                shape, dtype, header = _parse_header(fh)
                _check_header(shape, dtype, f"{path}:{member.filename}", member.file_size - header)
            with archive.open(member) as fh:
                arrays[member.filename.removesuffix(".npy")] = np.lib.format.read_array(
                    fh, allow_pickle=False
                )
        return arrays
