"""Which TensorRT is installed, and what it can do: the one capability table.

Three flavours share one code path; every difference between them is a field of `Capabilities`.
Detection reads package metadata only (no import), so `doctor` and `status()` stay cheap.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import asdict, dataclass
from functools import cache
from types import ModuleType
from typing import Any

from infercc.config import Flavour
from infercc.errors import UsageError
from infercc.lazy import INSTALL_HINTS, is_installed, require


@dataclass(frozen=True)
class Capabilities:
    family: str  # trt10, trt11, rtx: also the engine file's flavour slug
    label: str
    builder_precision_flags: bool  # BuilderFlag.FP16 / INT8 on a weakly typed network
    implicit_int8: bool  # IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator + calibration cache
    strong_typing_opt_in: bool  # strong typing must be requested (10); always on (11, RTX)
    timing_cache: bool  # the timing cache changes builds (RTX: API present, a no-op)
    compute_capabilities: bool  # targets chosen at build time (RTX); else the GPU it builds on
    hardware_compatibility: bool
    version_compatible: bool
    needs_gpu_to_build: bool


CAPABILITIES: dict[str, Capabilities] = {
    "trt10": Capabilities("trt10", "TensorRT", True, True, True, True, False, True, True, True),
    "trt11": Capabilities("trt11", "TensorRT", False, False, False, True, False, True, True, True),
    "rtx": Capabilities("rtx", "TensorRT-RTX", False, False, False, False, True, False, False, False),
}

# Preference order per config.build.flavour.
MODULES: dict[Flavour, tuple[str, ...]] = {
    Flavour.auto: ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"),
    Flavour.tensorrt: ("tensorrt",),
    Flavour.tensorrt_rtx: ("tensorrt_rtx", "tensorrt_rtx_bindings"),
}

# TensorRT-RTX compute-capability targets (trt.ComputeCapability members) and their CLI spellings.
RTX_TARGETS = ("SM75", "SM80", "SM86", "SM89", "SM120", "SM121")


@dataclass(frozen=True)
class FlavourInfo:
    module: str
    version: str | None
    caps: Capabilities

    @property
    def family(self) -> str:
        return self.caps.family

    @property
    def label(self) -> str:
        return f"{self.caps.label} {self.version or '(unknown version)'}"

    def load(self) -> ModuleType:
        return require(self.module, "building and running TensorRT engines")


@cache
def module_version(module: str) -> str | None:
    """Version of the distribution that provides import name `module`, from metadata (no import)."""
    try:
        dists = importlib.metadata.packages_distributions().get(module, [])
    except Exception:
        dists = []
    for dist in [*dists, module, module.replace("_", "-")]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def family_of(module: str, version: str | None) -> str | None:
    """trt10 / trt11 / rtx, or None for an unsupported TensorRT (older than 10)."""
    if module != "tensorrt":
        return "rtx"
    major = _major(version)
    if major is None or major == 10:
        return "trt10"
    return "trt11" if major >= 11 else None


def _major(version: str | None) -> int | None:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


def detect_flavours() -> list[dict[str, Any]]:
    """Every installed TensorRT module, with its family and capabilities (for `doctor`)."""
    found = []
    for module in MODULES[Flavour.auto]:
        if not is_installed(module):
            continue
        version = module_version(module)
        family = family_of(module, version)
        entry: dict[str, Any] = {
            "module": module,
            "version": version,
            "family": family,
            "supported": family is not None,
        }
        if family is not None:
            entry["capabilities"] = {
                k: v for k, v in asdict(CAPABILITIES[family]).items() if k not in ("family", "label")
            }
        else:
            entry["note"] = "TensorRT older than 10 is not supported: pip install 'tensorrt>=10'"
        found.append(entry)
    return found


def select_flavour(choice: Flavour = Flavour.auto) -> FlavourInfo | None:
    """The flavour to build with, or None when none of the wanted modules is installed."""
    for module in MODULES[choice]:
        if not is_installed(module):
            continue
        version = module_version(module)
        family = family_of(module, version)
        if family is None:
            raise UsageError(
                f"TensorRT {version} is installed; infercc needs TensorRT 10 or newer (or TensorRT-RTX).",
                hint="pip install -U 'tensorrt>=10', or pip install 'infercc[rtx]'.",
            )
        return FlavourInfo(module, version, CAPABILITIES[family])
    return None


def install_hint(choice: Flavour = Flavour.auto) -> str:
    if choice is Flavour.tensorrt:
        return INSTALL_HINTS["tensorrt"]
    if choice is Flavour.tensorrt_rtx:
        return INSTALL_HINTS["tensorrt_rtx"]
    return f"{INSTALL_HINTS['tensorrt_rtx']} (TensorRT-RTX), or {INSTALL_HINTS['tensorrt']}"


def not_installed_reason(choice: Flavour = Flavour.auto) -> str:
    wanted = {
        Flavour.auto: "TensorRT",
        Flavour.tensorrt: "TensorRT 10/11",
        Flavour.tensorrt_rtx: "TensorRT-RTX",
    }[choice]
    return f"{wanted} is not installed: {install_hint(choice)}"


def normalize_target(value: str) -> str:
    """'8.6', '86', 'sm86', 'SM_86', 'sm_86' -> 'SM86'; 'current' -> 'CURRENT'."""
    text = value.strip().upper().replace("_", "")
    if text == "CURRENT":
        return text
    text = text.removeprefix("SM")
    match = re.fullmatch(r"(\d+)\.(\d)|(\d{2,3})", text)
    if not match:
        raise UsageError(
            f"Compute capability {value!r} is not a version like 8.6 or 12.0.",
            hint="Known TensorRT-RTX targets: "
            f"{', '.join(describe_target(t) for t in RTX_TARGETS)}, or current.",
        )
    digits = f"{match.group(1)}{match.group(2)}" if match.group(1) else match.group(3)
    target = f"SM{digits}"
    if target not in RTX_TARGETS:
        raise UsageError(
            f"TensorRT-RTX cannot target compute capability {describe_target(target)} ({value!r}).",
            hint=f"Known targets: {', '.join(describe_target(t) for t in RTX_TARGETS)} (Hopper SM90 and "
            "datacenter Blackwell SM100 are not RTX targets), or current (the GPU of this machine).",
        )
    return target


def describe_target(target: str) -> str:
    """'SM86' -> '8.6'."""
    digits = target.removeprefix("SM")
    return f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() else target.lower()
