"""Where does loading an AOTInductor package crash? One probe per hypothesis, each in its own process.

Compiles a tiny package per device (cpu, and cuda when present; PROBE_DEVICES=cpu,cuda overrides), then loads
it in fresh child processes:
  package         torch._inductor.aoti_load_package (the documented path; crashes on the GPU image)
  dlopen          ctypes.CDLL of the package's model .so after `import torch` (static initialisers, linking)
  runner          torch._C._aoti.AOTIModelContainerRunnerCpu/Cuda on the extracted .so (skips the package loader)
  package-omp     the package path with the system's libgomp preloaded (two OpenMP runtimes?)
  loader-index-0  the package loader with an explicit device index 0
  constants-apart when `package` crashed: a package compiled with its weights outside the .so
and records the exit status, the signal, faulthandler's Python frames and what ldd says the .so links (with a
debugger present, a native backtrace of the crash).

    python scripts/aoti_load_probe.py OUT_DIR
Writes OUT_DIR/aoti_probe.json and prints a summary. Used once on the H200 image (docs/inductor.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

LOAD = {
    "package": """
        import torch
        m = torch._inductor.aoti_load_package(PKG)
        x = torch.ones(2, 16, device=DEV)
        print("OUT", float(m(x).float().sum()))
    """,
    "dlopen": """
        import ctypes, torch
        ctypes.CDLL(SO, mode=ctypes.RTLD_GLOBAL)
        print("OUT dlopen ok")
    """,
    "runner": """
        import torch
        cls = torch._C._aoti.AOTIModelContainerRunnerCuda if DEV == "cuda" else torch._C._aoti.AOTIModelContainerRunnerCpu
        r = cls(SO, 1) if DEV == "cpu" else cls(SO, 1, "cuda")
        out = r.run([torch.ones(2, 16, device=DEV)])
        print("OUT", float(out[0].float().sum()))
    """,
    # the package loader itself, with an explicit device index (-1: the package's own; 0: the first device)
    "loader-index-0": """
        import torch
        r = torch._C._aoti.AOTIModelPackageLoader(PKG, "model", False, 1, 0)
        out = r.run([torch.ones(2, 16, device=DEV)])
        print("OUT", float(out[0].float().sum()))
    """,
}


def compile_package(device: str, folder: Path, configs: dict | None = None, tag: str = "") -> Path:
    import torch

    model = (
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        .to(device)
        .eval()
    )
    program = torch.export.export(model, (torch.ones(2, 16, device=device),))
    return Path(
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(folder / f"tiny_{device}{tag}.pt2"), inductor_configs=configs or {}
        )
    )


def extract_so(package: Path, folder: Path) -> Path:
    target = folder / f"x_{package.stem}"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(target)
    return next(p for p in target.rglob("*.so"))


def probe(name: str, code: str, device: str, package: Path, so: Path, env: dict[str, str]) -> dict:
    script = f"PKG = {str(package)!r}\nSO = {str(so)!r}\nDEV = {device!r}\n" + textwrap.dedent(code)
    run = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=False,
    )
    lines = (run.stdout + run.stderr).strip().splitlines()
    return {
        "probe": name,
        "device": device,
        "returncode": run.returncode,
        "ok": run.returncode == 0,
        "out": [ln for ln in lines if ln.startswith("OUT")][:2],
        "tail": lines[-12:],
    }


def debugger() -> str | None:
    """gdb, or cuda-gdb (the GPU image has no gdb; cuda-gdb debugs host-only programs too)."""
    return shutil.which("gdb") or shutil.which("cuda-gdb")


def backtrace(device: str, package: Path, so: Path) -> dict:
    """The native stack of the crash, when the documented load path crashes."""
    script = Path(f"/tmp/aoti_probe/load_{device}.py")
    script.write_text(
        f"PKG = {str(package)!r}\nSO = {str(so)!r}\nDEV = {device!r}\n" + textwrap.dedent(LOAD["package"])
    )
    run = subprocess.run(
        [
            str(debugger()),
            "-batch",
            "-ex",
            "set pagination off",
            "-ex",
            "run",
            "-ex",
            "bt 30",
            "-ex",
            "info sharedlibrary",
            "--args",
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    text = run.stdout + run.stderr
    lines = [ln for ln in text.splitlines() if ln.startswith("#") or "SIG" in ln or "aoti" in ln.lower()]
    Path(f"/tmp/aoti_probe/gdb_{device}.log").write_text(text)
    return {
        "probe": f"{Path(str(debugger())).name}-backtrace",
        "device": device,
        "returncode": run.returncode,
        "ok": False,
        "out": [],
        "tail": lines[:40],
    }


def environment(so_paths: list[Path]) -> dict:
    import torch

    info: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "python": sys.version.split()[0],
        "config": torch.__config__.show().splitlines()[:12],
        "gcc": (
            shutil.which("g++")
            and subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
        ),
        "debugger": debugger(),
        "tmp": subprocess.run(
            ["sh", "-c", "mount | grep -E ' /tmp | / ' | head -3"], capture_output=True, text=True
        ).stdout.strip(),
        "ldd": {},
    }
    for so in so_paths:
        out = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
        info["ldd"][so.name] = [
            ln.strip()
            for ln in out.splitlines()
            if "not found" in ln or "gomp" in ln or "stdc++" in ln or "torch" in ln
        ]
    return info


def main(out: Path) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/aoti_probe")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    devices = os.environ.get("PROBE_DEVICES", "cpu,cuda" if torch.cuda.is_available() else "cpu").split(",")
    results, sos = [], []
    gomp = subprocess.run(
        ["sh", "-c", "ldconfig -p | grep -m1 'libgomp.so.1 ' | awk '{print $NF}'"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    for device in devices:
        package = compile_package(device, work)
        so = extract_so(package, work)
        sos.append(so)
        for name, code in LOAD.items():
            results.append(probe(name, code, device, package, so, {}))
            print(json.dumps(results[-1])[:600], flush=True)
        if gomp:
            results.append(probe("package-omp", LOAD["package"], device, package, so, {"LD_PRELOAD": gomp}))
            print(json.dumps(results[-1])[:600], flush=True)
        crashed = next(
            (r for r in results if r["device"] == device and r["probe"] == "package" and not r["ok"]), None
        )
        if crashed and debugger():
            results.append(backtrace(device, package, so))
            print("\n".join(results[-1]["tail"]), flush=True)
        if (
            crashed
        ):  # one workaround: weights outside the .so (the container loads constants when it is created)
            apart = compile_package(device, work, {"aot_inductor.package_constants_in_so": False}, "_apart")
            results.append(
                probe("constants-apart", LOAD["package"], device, apart, extract_so(apart, work), {})
            )
            print(json.dumps(results[-1])[:600], flush=True)
    report = {"environment": environment(sos), "results": results}
    (out / "aoti_probe.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["environment"], indent=1)[:3000])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
