"""Compile an exported program into an AOTInductor package, and the sidecar that says where it can run.

A package holds machine code for one device kind (a CPU instruction set, or a CUDA compute capability)
built by one torch version; its sidecar `model.<precision>.inductor.json` records both, the shapes the
package accepts, and the command that rebuilds it, so a package moved to another machine or torch is
refused on load with that command instead of crashing.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infercc.errors import StageError
from infercc.fsutil import atomic_path, temp_prefix
from infercc.sidecar import read_sidecar_json

SCHEMA = "infercc.inductor-package/1"


def package_filename(precision: str) -> str:
    return f"model.{precision}.inductor.pt2"


def device_identity(device: str) -> dict[str, Any]:
    """What a package's machine code is tied to on this machine (part of the stage's cache key)."""
    import torch

    if device == "cuda":
        major, minor = torch.cuda.get_device_capability(0)
        return {
            "device": "cuda",
            "gpu": torch.cuda.get_device_name(0),
            "compute_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda,
        }
    return {"device": "cpu", "machine": platform.machine(), "cpu_isa": cpu_isa()}


def cpu_isa() -> str:
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        return str(pick_vec_isa()) or "scalar"
    except Exception:
        return "unknown"


@dataclass
class CompileResult:
    seconds: float
    mode: str
    notes: list[str] = field(default_factory=list)


def compile_package(program: Any, final: Path, autotune_s: float | None) -> CompileResult:
    """aoti_compile_and_package into `final` (written atomically). With `autotune_s`, max-autotune runs in a
    child process stopped after that many seconds, and the default mode is used instead (noted)."""
    import torch

    workdir = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), dir=final.parent))
    try:
        built = workdir / "model.pt2"
        result = None
        if autotune_s:
            result = _autotuned(torch, program, workdir, built, autotune_s)
        if result is None or not built.is_file():
            notes = result.notes if result else []
            started = time.perf_counter()
            from infercc.inductor.export import quiet_torch

            try:
                with quiet_torch():
                    torch._inductor.aoti_compile_and_package(program, package_path=str(built))
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise StageError(
                    f"AOTInductor could not compile the exported model: {type(exc).__name__}: {first}",
                    hint="Run again with -v for the compiler's output; TORCH_LOGS=output_code shows the code.",
                ) from exc
            result = CompileResult(time.perf_counter() - started, "default", notes)
        with atomic_path(final) as tmp:
            shutil.move(str(built), str(tmp))
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _autotuned(torch: Any, program: Any, workdir: Path, built: Path, budget_s: float) -> CompileResult | None:
    saved = workdir / "program.pt2"
    torch.export.save(program, str(saved))
    started = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "infercc.inductor.package", str(saved), str(built)],
            capture_output=True,
            text=True,
            timeout=budget_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CompileResult(
            0.0,
            "default",
            [
                f"max-autotune did not finish within build.inductor_autotune_s ({budget_s:g} s): stopped it and "
                "compiled in the default mode"
            ],
        )
    seconds = time.perf_counter() - started
    if run.returncode != 0 or not built.is_file():
        tail = " | ".join((run.stderr or "").strip().splitlines()[-2:])[:300]
        return CompileResult(0.0, "default", [f"max-autotune failed ({tail}); compiled in the default mode"])
    return CompileResult(seconds, "max-autotune", [f"compiled with max-autotune in {seconds:.1f} s"])


# --- the sidecar and loading elsewhere ---------------------------------------------------------------------


def read_sidecar(package: Path) -> dict[str, Any]:
    return read_sidecar_json(
        package, SCHEMA, "package", "where it runs", "infercc compile ... --target inductor --force"
    )


def incompatibility(sidecar: dict[str, Any], device: str) -> str | None:
    """Why this process cannot load the package described by `sidecar` on `device`, or None."""
    import torch

    built = sidecar.get("device") or {}
    if built.get("device") != device:
        return f"it was built for {built.get('device')}, not {device}"
    if sidecar.get("torch") != torch.__version__:
        return f"it was built by torch {sidecar.get('torch')}; this is torch {torch.__version__}"
    here = device_identity(device)
    if device == "cuda" and built.get("compute_capability") != here["compute_capability"]:
        return (
            f"it was built for compute capability {built.get('compute_capability')} ({built.get('gpu')}); "
            f"this GPU is {here['compute_capability']} ({here['gpu']})"
        )
    if (
        device == "cpu"
        and built.get("cpu_isa") not in (here["cpu_isa"], "scalar", None)
        and not _isa_runs_here(built.get("cpu_isa"))
    ):
        return f"it was built for the {built.get('cpu_isa')} instruction set; this CPU has {here['cpu_isa']}"
    return None


def _isa_runs_here(isa: str | None) -> bool:
    try:
        from torch._inductor.cpu_vec_isa import valid_vec_isa_list

        return any(str(v) == isa for v in valid_vec_isa_list())
    except Exception:
        return True


def main(argv: list[str]) -> None:
    """Child: compile a saved exported program with max-autotune (bounded by the parent's timeout)."""
    import torch

    program = torch.export.load(argv[0])
    torch._inductor.aoti_compile_and_package(
        program, package_path=argv[1], inductor_configs={"max_autotune": True}
    )


if __name__ == "__main__":
    main(sys.argv[1:])
