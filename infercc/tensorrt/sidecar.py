"""The JSON sidecar written next to every engine, the plan header, and the checks made before loading one.

An engine can be deserialized only by the same TensorRT version on a supported GPU, so everything a user
wants to know about it (flavour, targets, profiles, I/O, layers, what it was built from) is recorded at build
time in `<engine>.json`. Loading checks the sidecar first so a mismatch is a clear message with the command
that rebuilds the engine, never a bare failure.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from infercc.errors import MissingRuntimeError, UsageError
from infercc.fsutil import sha256_file
from infercc.sidecar import read_sidecar_json
from infercc.tensorrt.flavours import RTX_TARGETS, FlavourInfo, describe_target

SCHEMA = "infercc.engine/1"
RTX_MAGIC = b"vtrt"
RTX_HEADER_SIZE = 64
# TensorRT-RTX 1.x plan header, compute-capability bitmask (observed with 1.7; undocumented).
_CC_BITS = {1: "SM75", 2: "SM80", 4: "SM86", 8: "SM89", 16: "SM120", 32: "SM121"}
RTX_DEFAULT_TARGETS = ["SM80", "SM86", "SM89", "SM120", "SM121"]


def read_header(data: bytes) -> dict[str, Any]:
    """Decode a TensorRT-RTX plan header (magic, declared size, version, target mask); {} for other plans."""
    if len(data) < RTX_HEADER_SIZE or data[:4] != RTX_MAGIC:
        return {}
    size = struct.unpack_from("<Q", data, 16)[0]
    version = ".".join(str(b) for b in data[24:28])
    mask = struct.unpack_from("<Q", data, 32)[0]
    weights = struct.unpack_from("<Q", data, 56)[0]
    return {
        "format": "tensorrt-rtx plan",
        "declared_size": size,
        "version": version,
        "target_mask": mask,
        "targets": [t for bit, t in _CC_BITS.items() if mask & bit],
        "weights_bytes": weights,
    }


def read_header_file(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return read_header(fh.read(RTX_HEADER_SIZE))


def load_sidecar(engine: Path) -> dict[str, Any]:
    """Read and check an engine's sidecar and the engine file against it; clear errors for every mismatch."""
    engine = Path(engine)
    if not engine.is_file():
        raise UsageError(f"Engine {engine} does not exist.")
    data = read_sidecar_json(
        engine, SCHEMA, "engine", "how it was built", "infercc build ... --target tensorrt --force"
    )
    size = engine.stat().st_size
    expected = int(data.get("engine_bytes") or 0)
    header = read_header_file(engine)
    declared = header.get("declared_size")
    if size < expected or (declared is not None and size < declared) or size == 0:
        raise UsageError(
            f"Engine {engine.name} is truncated: {size:,} bytes, built as {max(expected, declared or 0):,}.",
            hint=f"Rebuild it: {data.get('rebuild') or 'infercc build ... --force'}",
        )
    if data.get("engine_sha256") and sha256_file(engine) != data["engine_sha256"]:
        raise UsageError(
            f"Engine {engine.name} does not match its sidecar (the file changed after the build).",
            hint=f"Rebuild it: {data.get('rebuild') or 'infercc build ... --force'}",
        )
    if header and data.get("flavour", {}).get("version") and header["version"] != data["flavour"]["version"]:
        raise UsageError(
            f"Engine {engine.name} is a TensorRT-RTX {header['version']} plan but its sidecar says "
            f"{data['flavour']['version']}: they do not belong together.",
            hint=f"Rebuild it: {data.get('rebuild') or 'infercc build ... --force'}",
        )
    return data


def version_problem(sidecar: dict[str, Any], flavour: FlavourInfo | None) -> str | None:
    """Why the installed TensorRT cannot load this engine, or None."""
    built = sidecar.get("flavour", {})
    built_label = f"{built.get('label', 'TensorRT')}"
    if flavour is None:
        return f"it was built with {built_label}, which is not installed here"
    if flavour.family != built.get("family") or flavour.version != built.get("version"):
        return (
            f"it was built with {built_label} ({built.get('module')}); this machine has "
            f"{flavour.label} ({flavour.module})"
        )
    return None


def gpu_problem(sidecar: dict[str, Any], capability: tuple[int, int], gpu_name: str) -> str | None:
    """Why this GPU cannot run the engine, or None."""
    here = f"SM{capability[0]}{capability[1]}"
    family = sidecar.get("flavour", {}).get("family")
    targets = sidecar.get("targets", {})
    if family == "rtx":
        wanted = targets.get("compute_capabilities") or RTX_DEFAULT_TARGETS
        if here not in RTX_TARGETS:
            return (
                f"{gpu_name} (compute capability {describe_target(here)}) is not a TensorRT-RTX GPU "
                f"(RTX targets: {', '.join(describe_target(t) for t in RTX_TARGETS)})"
            )
        if "CURRENT" not in wanted and here not in wanted:
            return (
                f"the engine targets compute capability {', '.join(describe_target(t) for t in wanted)}; "
                f"{gpu_name} is {describe_target(here)}"
            )
        return None
    built_cc = targets.get("gpu_compute_capability")
    if (
        built_cc
        and built_cc != describe_target(here)
        and targets.get("hardware_compatibility", "none") == "none"
    ):
        return (
            f"the engine was built for {targets.get('gpu') or 'another GPU'} (compute capability "
            f"{built_cc}); "
            f"{gpu_name} is {describe_target(here)}"
        )
    return None


def cannot_load(engine: Path, sidecar: dict[str, Any], problem: str) -> MissingRuntimeError:
    return MissingRuntimeError(
        f"Engine {Path(engine).name} cannot run here: {problem}.",
        hint="Rebuild it on this machine: "
        f"{sidecar.get('rebuild') or 'infercc build ... --target tensorrt --force'}",
    )
