"""Whether this CPU computes in BF16: AMX-BF16 or AVX512-BF16 in /proc/cpuinfo, and OpenVINO's own answer
(the CPU plugin's OPTIMIZATION_CAPABILITIES) when OpenVINO is installed.

`INFERCC_CPU_BF16=off` makes infercc treat the CPU as one without BF16 (to produce the artifacts a
machine without BF16 would, or to test that path); any other value, or none, means detect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from infercc.lazy import is_installed

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
OVERRIDE = "INFERCC_CPU_BF16"


@dataclass(frozen=True)
class Bf16Support:
    available: bool
    reason: str  # why not, or what provides it
    flags: tuple[str, ...] = ()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's feature flags ('flags' on x86); empty where the file is unreadable."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        return set()
    return set()


def openvino_capabilities() -> list[str] | None:
    """OpenVINO CPU plugin's OPTIMIZATION_CAPABILITIES, e.g. ['FP32', 'BF16', 'INT8', ...]; None without it."""
    if not is_installed("openvino"):
        return None
    import openvino as ov

    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def bf16_support() -> Bf16Support:
    if os.environ.get(OVERRIDE, "").strip().lower() in ("off", "0", "no", "false"):
        return Bf16Support(False, f"BF16 turned off by {OVERRIDE}={os.environ[OVERRIDE]}")
    flags = tuple(f for f in BF16_FLAGS if f in cpu_flags())
    if not flags:
        return Bf16Support(False, "this CPU has neither AMX-BF16 nor AVX512-BF16 (/proc/cpuinfo flags)")
    capabilities = openvino_capabilities()
    if capabilities is not None and "BF16" not in capabilities:
        return Bf16Support(
            False,
            f"OpenVINO's CPU plugin does not offer BF16 here (capabilities: {', '.join(capabilities)})",
            flags,
        )
    return Bf16Support(True, f"CPU flags {', '.join(flags)}", flags)
