"""compile-inductor stages: one AOTInductor package per precision (fp32, fp16, bf16), for the run's device.

The module (cast to the precision's dtype) is exported with torch.export over the declared dynamic ranges,
compiled with `torch._inductor.aoti_compile_and_package` into model.<precision>.inductor.pt2, with a sidecar
model.<precision>.inductor.json (device, torch version, valid shapes, rebuild command), then loaded once in
a child process (infercc.runtimes.isolation) and run on the reference's opt input; a package that crashes
there is kept and marked "built, not loadable on this machine". An export or compile failure fails this stage alone
(exit 4 at the end of the run): the other targets still run and are reported.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np

from infercc.config import CompileConfig, Precision, Target
from infercc.errors import InferccError
from infercc.fsutil import atomic_write_json
from infercc.pipeline.manifest import ArtifactRecord, now_iso
from infercc.pipeline.stage import NewArtifact, RunContext, SkippedStage, Stage, StageOutput
from infercc.shapes import shape_flags
from infercc.stages.results import InductorResult

DTYPES = {Precision.fp32: "float32", Precision.fp16: "float16", Precision.bf16: "bfloat16"}


def run_device() -> str:
    """CUDA when PyTorch sees a GPU, else the CPU: packages are built for the machine that runs them."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def stages_for(config: CompileConfig) -> tuple[list[Stage], list[str]]:
    """The compile-inductor stages for target inductor, and the package artifact names they produce."""
    if Target.inductor not in config.targets:
        return [], []
    from infercc.inductor.api import require_compiler

    require_compiler()  # exit 3 before any work: torch too old, or no C++ compiler
    device = run_device()
    stages: list[Stage] = []
    names: list[str] = []
    for precision in config.precisions:
        if precision not in DTYPES:
            stages.append(SkippedInductor(precision, "AOTInductor packages are made in fp32, fp16 and bf16"))
            continue
        stages.append(CompileInductorStage(precision, device))
        names.append(f"inductor-{precision.value}")
    return stages, names


class SkippedInductor(SkippedStage):
    def __init__(self, precision: Precision, reason: str) -> None:
        super().__init__(
            f"compile-inductor-{precision.value}", f"Compile AOTInductor package ({precision.value})", reason
        )


class CompileInductorStage:
    version: ClassVar[str] = "1"
    needs: tuple[str, ...] = ("reference",)

    def __init__(self, precision: Precision, device: str) -> None:
        self.precision = precision
        self.device = device
        self.name = f"compile-inductor-{precision.value}"
        self.description = f"Compile AOTInductor package ({precision.value}, {device})"

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        from infercc.inductor.package import device_identity

        cfg = ctx.config
        return {
            "precision": self.precision.value,
            "dtype": DTYPES[self.precision],
            "device": device_identity(self.device),  # the machine code targets this device
            "source": ctx.source_hash,
            "shapes": {n: ctx.shape_ranges[n].describe() for n in ctx.input_names},
            "inputs": {n: ctx.inputs[n].model_dump(mode="json") for n in ctx.input_names},
            "output_names": cfg.model.output_names,
            "autotune_s": cfg.build.inductor_autotune_s,
        }

    def tools(self) -> tuple[str, ...]:
        return ("torch",)

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        try:
            return self._run(ctx, inputs)
        except InferccError as exc:  # this target fails; the others go on (exit 4 at the end)
            return StageOutput(error=exc)

    def _run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.inductor.api import require_aoti
        from infercc.inductor.export import export_program
        from infercc.inductor.package import compile_package, package_filename

        torch = require_aoti()
        p = self.precision.value
        ctx.progress(self.name, 0, 3, "torch.export")
        module = (
            copy.deepcopy(ctx.torch_module())
            .to(self.device)
            .to(getattr(torch, DTYPES[self.precision]))
            .eval()
        )
        exported = export_program(
            module,
            ctx.input_names,
            ctx.shape_ranges,
            ctx.inputs,
            self.device,
            getattr(torch, DTYPES[self.precision]),
        )
        del module
        ctx.progress(self.name, 1, 3, "aoti_compile_and_package")
        filename = package_filename(p)
        compiled = compile_package(exported.program, ctx.path(filename), ctx.config.build.inductor_autotune_s)
        sidecar = self._sidecar(ctx, filename, exported, compiled)
        sidecar_rel = filename.removesuffix(".pt2") + ".json"
        atomic_write_json(ctx.path(sidecar_rel), sidecar)
        ctx.progress(self.name, 2, 3, "load check")
        check = load_check(ctx, ctx.path(filename), self.device, inputs["reference"])
        notes = [s.describe() for s in exported.specialized] + compiled.notes
        if check.get("error"):
            notes.append(f"built, not loadable on this machine: {check['error']}")
        for warning in [s.describe() for s in exported.specialized] + notes[len(exported.specialized) :]:
            ctx.events.warn(f"{self.name}: {warning}")
        meta = {
            "device": self.device,
            "torch": torch.__version__,
            "valid_shapes": exported.valid,
            "specialized": [s.to_json() for s in exported.specialized],
            "loadable": not check.get("error"),
            "load_error": check.get("error"),
            "sidecar": sidecar_rel,
        }
        size = ctx.path(filename).stat().st_size
        return StageOutput(
            artifacts=[
                NewArtifact(f"inductor-{p}", filename, "inductor", self.precision, "inductor", meta=meta),
                NewArtifact(f"inductor-{p}-sidecar", sidecar_rel, "sidecar", self.precision, "inductor"),
            ],
            result=InductorResult(
                brief=f"AOTInductor {self.device}, {size / 1024:.0f} KB, export {exported.seconds:.1f} s, "
                f"compile {compiled.seconds:.1f} s ({compiled.mode})"
                + (f"; {len(exported.specialized)} dimension(s) specialised" if exported.specialized else "")
                + ("; not loadable here" if check.get("error") else ""),
                device=self.device,
                export_s=round(exported.seconds, 3),
                compile_s=round(compiled.seconds, 3),
                mode=compiled.mode,
                package_bytes=size,
                valid_shapes=exported.valid,
                specialized=[s.to_json() for s in exported.specialized],
                load_check=check,
            ),
            notes=notes,
        )

    def _sidecar(self, ctx: RunContext, filename: str, exported: Any, compiled: Any) -> dict[str, Any]:
        import torch

        from infercc.inductor.package import SCHEMA, device_identity

        return {
            "schema": SCHEMA,
            "package": filename,
            "precision": self.precision.value,
            "dtype": DTYPES[self.precision],
            "torch": torch.__version__,
            "device": device_identity(self.device),
            "input_names": ctx.input_names,
            "output_names": ctx.config.model.output_names,
            "input_dtypes": exported.input_dtypes,
            "valid_shapes": exported.valid,
            "specialized": [s.to_json() for s in exported.specialized],
            "mode": compiled.mode,
            "export_s": round(exported.seconds, 3),
            "compile_s": round(compiled.seconds, 3),
            "built": now_iso(),
            "rebuild": rebuild_command(ctx, self.precision.value),
        }


def load_check(ctx: RunContext, path: Any, device: str, reference: ArtifactRecord) -> dict[str, Any]:
    """Load the package in a child process and run the reference's opt input (when the package accepts
    it): {'max_abs': ...} or {'error': why it could not load or run}."""
    from infercc.inductor.export import within
    from infercc.inductor.package import read_sidecar
    from infercc.runtimes.isolation import IsolatedRuntime
    from infercc.stages.export import load_reference

    points = load_reference(ctx.path(reference.path))
    feeds, expected = points.get("opt", next(iter(points.values())))
    try:
        with IsolatedRuntime(f"inductor-{device}", path, threads=ctx.config.bench.threads) as runtime:
            if within(read_sidecar(path).get("valid_shapes") or {}, feeds):
                return {"loaded": True, "ran": False}
            outputs = runtime.infer(feeds)
    except InferccError as exc:
        return {"error": exc.message}
    errors = [
        float(np.max(np.abs(outputs[n].astype(np.float64) - expected[n].astype(np.float64))))
        for n in expected
        if n in outputs and outputs[n].shape == expected[n].shape
    ]
    return {"loaded": True, "ran": True, "max_abs": max(errors) if errors else None}


def rebuild_command(ctx: RunContext, precision: str) -> str:
    """The command that rebuilds this package on the machine that will run it."""
    parts = ["infercc", "compile", "--model", ctx.source.spec]
    parts += shape_flags(ctx.input_names, ctx.shape_ranges)
    parts += ["--precision", precision, "--target", "inductor", "--out", str(ctx.out), "--force"]
    return " ".join(parts)
