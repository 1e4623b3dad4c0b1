"""Building report.json from the manifest (the stages' typed results) and writing the three report files."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from infercc import __version__
from infercc.fsutil import atomic_write_json, atomic_write_text
from infercc.report.model import SCHEMA_ID, BenchSection, Report, ReportInputs, VerifyPair, VerifySection
from infercc.report.render import render_html, render_markdown
from infercc.report.selection import select
from infercc.stages.results import BenchResult, VerifyResult

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")
REPORT_JSON, REPORT_HTML, SUMMARY_MD = "report.json", "report.html", "summary.md"
# Dense FP16 tensor throughput used for the compute floor (the GPU test machine's figure, shared/gpu/README.md).
PEAK_FP16_FLOPS = {"H100": 790e12, "H200": 790e12}


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def write_reports(out: Path, manifest: Any, config: Any) -> dict[str, Any]:
    """Write report.json (always), report.html and summary.md (unless turned off); returns the report."""
    report = build_report(Path(out), manifest, config)
    atomic_write_json(Path(out) / REPORT_JSON, report)
    if getattr(config.report, "html", True):
        atomic_write_text(Path(out) / REPORT_HTML, render_html(report))
    if getattr(config.report, "markdown", True):
        atomic_write_text(Path(out) / SUMMARY_MD, render_markdown(report))
    return report


# --- building the report --------------------------------------------------------------------------------


def build_report(out: Path, manifest: Any, config: Any) -> dict[str, Any]:
    from infercc.pipeline.manifest import now_iso

    stages = [
        {
            "name": s.name,
            "status": s.status,
            "duration_s": s.duration_s,
            "started": s.started,
            "notes": list(s.notes),
            "error": s.error,
        }
        for s in manifest.stages.values()
    ]
    foreign = set(manifest.foreign_artifacts())
    artifacts = [
        {
            "name": a.name,
            "path": a.path,
            "kind": a.kind,
            "precision": a.precision,
            "target": a.target,
            "size": a.size,
            "sha256": a.sha256,
            **({"from_other_config": True} if a.name in foreign else {}),
            **_package_marks(a),
        }
        for a in manifest.artifacts().values()
        if a.kind in ("onnx", "onnx-bf16", "engine", "inductor")
    ]
    verify = _verify_section(manifest.stages.get("verify"))
    bench = _bench_section(manifest.stages.get("bench"))
    environment = _environment(bench)
    report = {
        "schema": SCHEMA_ID,
        "infercc_version": __version__,
        "created": now_iso(),
        "out": str(out),
        "model": {
            "source": manifest.source.get("spec"),
            "input_names": manifest.source.get("input_names"),
            "shapes": manifest.source.get("shapes"),
        },
        "environment": environment,
        "stages": stages,
        "artifacts": artifacts,
        "verify": verify,
        "bench": bench,
        "selection": select(verify, bench, config),
        "compute_floor": compute_floor(bench, environment),
        "status": _status(verify, stages, manifest),
    }
    return Report.model_validate(_clean(report)).model_dump(mode="json", by_alias=True, exclude_unset=True)


def _status(verify: dict[str, Any] | None, stages: list[dict[str, Any]], manifest: Any) -> str:
    """failed (a stage failed, a runtime crashed in one, or verify failed), budget missed (an artifact misses its accuracy budget and the
    miss is not accepted: judged by verify, else by quantize), or ok."""
    if (verify and not verify["passed"]) or any(s["status"] == "failed" for s in stages):
        return "failed"
    if any(s.verdict.crashes for s in manifest.stages.values()):
        return "failed"
    if verify is not None:
        missed = verify["budget_misses"]
    else:
        missed = [m for s in manifest.stages.values() for m in s.verdict.budget_misses]
    return "budget missed" if missed else "ok"


def _package_marks(artifact: Any) -> dict[str, Any]:
    """What the report marks on an AOTInductor package: the shapes it is valid for when torch.export
    specialised a dimension declared dynamic, and whether it loads on this machine."""
    meta = artifact.meta or {}
    marks: dict[str, Any] = {}
    if meta.get("specialized"):
        marks["specialized"] = [s.get("message") for s in meta["specialized"]]
        marks["valid_shapes"] = meta.get("valid_shapes")
    if meta.get("loadable") is False:
        marks["not_loadable"] = meta.get("load_error")
    if meta.get("device"):
        marks["device"] = meta["device"]
    return marks


def _verify_section(record: Any) -> dict[str, Any] | None:
    result = VerifyResult.read(record)
    if result is None:
        return None
    section = VerifySection(
        passed=result.passed,
        reference=result.reference,
        inputs=ReportInputs(source=result.inputs.source, sets=result.inputs.sets),
        results=[VerifyPair.model_validate(r.model_dump(include=PAIR_FIELDS)) for r in result.results],
        skipped_runtimes=result.skipped_runtimes,
        unverified=result.unverified,
        failures=result.failures,
        budget_misses=result.budget_misses,
        overhead=result.overhead,
    )
    return section.model_dump(mode="json")


PAIR_FIELDS = set(VerifyPair.model_fields)


def _bench_section(record: Any) -> dict[str, Any] | None:
    result = BenchResult.read(record)
    if result is None:
        return None
    fields = set(BenchSection.model_fields)
    # entries keep only the keys their measurement set (an untimed batch has only its error)
    return BenchSection.model_validate(result.model_dump(include=fields, exclude_unset=True)).model_dump(
        mode="json", exclude_unset=True
    )


def _environment(bench: dict[str, Any] | None) -> dict[str, Any]:
    from infercc.doctor import environment

    env = environment()
    env["gpus"] = _gpus(bool(bench and any(r.get("device") == "cuda" for r in bench.get("results") or [])))
    return env


def _gpus(used_cuda: bool) -> list[str]:
    if "torch" in sys.modules or used_cuda:
        try:
            from infercc.doctor import _gpus as torch_gpus

            return torch_gpus()
        except Exception:
            return []
    from infercc.pipeline.cache import gpu_names

    return [name for name in gpu_names() if name != "unknown"]  # nvidia-smi failed: no name to report


def compute_floor(bench: dict[str, Any] | None, environment: dict[str, Any]) -> dict[str, Any] | None:
    """Latency floor from the model's FLOPs and the GPU's FP16 peak, and each CUDA figure's distance to it."""
    if not bench or not bench.get("flops_per_item"):
        return None
    gpu = next(iter(environment.get("gpus") or []), "")
    peak = next((v for k, v in PEAK_FP16_FLOPS.items() if k in gpu), None)
    if peak is None:
        return {
            "flops_per_item": bench["flops_per_item"],
            "peak_flops": None,
            "gpu": gpu or None,
            "entries": [],
        }
    entries = []
    for r in bench["results"]:
        if r.get("device") != "cuda":
            continue
        for b, s in (r.get("batches") or {}).items():
            if "p50_ms" in s:
                floor_ms = bench["flops_per_item"] * int(b) / peak * 1e3
                entries.append(
                    {
                        "artifact": r["artifact"],
                        "runtime": r["runtime"],
                        "batch": int(b),
                        "p50_ms": s["p50_ms"],
                        "floor_ms": floor_ms,
                        "ratio": s["p50_ms"] / floor_ms,
                    }
                )
    return {"flops_per_item": bench["flops_per_item"], "peak_flops": peak, "gpu": gpu, "entries": entries}


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become strings ("inf") or null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            return str(value)
    return value
