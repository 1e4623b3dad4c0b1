"""How much of the machine a timed block really got: the timed process's CPU time beside its wall time, and
the CPU time every other process on the machine used meanwhile (Linux /proc; elsewhere figures are None).

A ratio of two latencies means something only when neither measurement was starved. Two signs that one was:
the timed process ran for much less CPU time than wall time (it waited for a core), or other processes used a
large share of the machine's cores during the block (they competed for them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# a CPU-bound process that got less than this share of one core during a block was starved
MIN_CPU_PER_WALL = 0.8


def process_cpu_s(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU seconds of a process, all its threads (from /proc/PID/stat); with `reaped_children`,
    also what its children that have exited and been waited for used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if reaped_children:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of a process and all its descendants, live or reaped: a runtime that works in a grandchild
    (the torch.compile peer's session under its isolation child) must not count its own work as other processes'."""
    total = process_cpu_s(pid, reaped_children=True)
    if total is None:
        return None
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        total += process_cpu_s(child, reaped_children=True) or 0.0
        todo.extend(children.get(child, []))
    return total


def subject_cpu_s(pid: int) -> float | None:
    """A timed subject's CPU seconds: its process tree when it runs in a child of this process (its work may be in
    a grandchild), only this process when it runs here (this process's other children are not its work)."""
    return process_cpu_s(pid) if pid == os.getpid() else tree_cpu_s(pid)


def machine_busy_s() -> float | None:
    """CPU seconds every core of the machine spent busy since boot (from /proc/stat: all but idle and iowait)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


@dataclass
class CpuSample:
    """Started before a timed block of process `pid` (the runtime's process, maybe a child of this one)."""

    pid: int
    wall: float
    cpu: float | None
    own: float | None  # this process (when the runtime runs in a child, this one only waits)
    busy: float | None

    @classmethod
    def start(cls, pid: int) -> CpuSample:
        own = process_cpu_s(os.getpid()) if pid != os.getpid() else 0.0
        return cls(pid, time.perf_counter(), subject_cpu_s(pid), own, machine_busy_s())

    def stop(self) -> dict[str, Any]:
        """wall_s, cpu_s (the timed process), foreign_share (the share of all cores that other processes used)."""
        wall = time.perf_counter() - self.wall
        busy, cpu = machine_busy_s(), subject_cpu_s(self.pid)
        own = process_cpu_s(os.getpid()) if self.pid != os.getpid() else 0.0
        figures: dict[str, Any] = {"wall_s": round(wall, 6), "cpu_s": None, "foreign_share": None}
        if cpu is None or self.cpu is None:
            return figures
        cpu_used = cpu - self.cpu
        figures["cpu_s"] = round(cpu_used, 4)
        if busy is not None and self.busy is not None and own is not None and self.own is not None:
            foreign = (busy - self.busy) - cpu_used - (own - self.own)
            figures["foreign_share"] = round(max(foreign, 0.0) / (wall * (os.cpu_count() or 1)), 4)
        return figures


def disturbance(rounds: list[dict[str, Any]], max_foreign: float, device: str) -> str | None:
    """Why a subject's timed rounds were disturbed, or None. Tick-sized blocks (under 0.1 s) are too short for
    CPU accounting and are not judged on their CPU time."""
    for i, r in enumerate(rounds):
        share = r.get("foreign_share")
        if share is not None and r["wall_s"] >= 0.1 and share > max_foreign:
            return f"round {i + 1}: other processes used {share:.0%} of the machine's cores (> {max_foreign:.0%})"
        cpu = r.get("cpu_s")
        if (
            device == "cpu"
            and cpu is not None
            and r["wall_s"] >= 0.1
            and cpu < MIN_CPU_PER_WALL * r["wall_s"]
        ):
            return (
                f"round {i + 1}: the timed process ran {cpu:.3g} s of CPU in {r['wall_s']:.3g} s "
                f"(< {MIN_CPU_PER_WALL:.0%}: it waited for a core)"
            )
    return None
