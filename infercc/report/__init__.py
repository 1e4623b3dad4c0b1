"""report.json, report.html and summary.md for every compile/verify/bench run.

report.json follows report.schema.json (shipped beside this file, versioned by its `schema` field);
report.html is self-contained (inline CSS and SVG, no script, no network); summary.md suits a CI job summary.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from infercc import __version__
from infercc.fsutil import atomic_write_json, atomic_write_text

SCHEMA_ID = "infercc.report/1"
SCHEMA_FILE = Path(__file__).with_name("report.schema.json")
REPORT_JSON, REPORT_HTML, SUMMARY_MD = "report.json", "report.html", "summary.md"
# Dense FP16 tensor throughput used for the compute floor (the GPU test machine's figure, shared/gpu/README.md).
PEAK_FP16_FLOPS = {"H100": 790e12, "H200": 790e12}


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def write_reports(out: Path, manifest: Any, config: Any) -> dict[str, Any]:
    """Write report.json (always), report.html and summary.md (unless turned off); returns the report."""
    from infercc.report.render import render_html, render_markdown

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
    return _clean(report)


def _status(verify: dict[str, Any] | None, stages: list[dict[str, Any]], manifest: Any) -> str:
    """failed (a stage failed, or verify did), budget missed (an artifact misses its accuracy budget and the
    miss is not accepted: judged by verify, else by quantize), or ok."""
    if (verify and not verify["passed"]) or any(s["status"] == "failed" for s in stages):
        return "failed"
    if verify is not None:
        missed = verify.get("budget_misses")
    else:
        missed = [m for s in manifest.stages.values() for m in s.metrics.get("budget_misses", [])]
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
    if record is None or record.status != "done":
        return None
    m = record.metrics
    return {
        "passed": bool(m.get("passed", True)),
        "reference": m.get("reference"),
        "inputs": {k: v for k, v in (m.get("inputs") or {}).items() if k in ("source", "sets")},
        "results": [
            {
                k: r.get(k)
                for k in (
                    "artifact",
                    "runtime",
                    "precision",
                    "kind",
                    "passed",
                    "outputs",
                    "tolerances",
                    "failures",
                    "budget",
                    "seconds",
                    "notes",
                )
            }
            for r in m.get("results", [])
        ],
        "skipped_runtimes": m.get("skipped_runtimes", []),
        "unverified": m.get("unverified", []),
        "failures": m.get("failures", []),
        "budget_misses": m.get("budget_misses", []),
        "overhead": m.get("overhead"),
    }


def _bench_section(record: Any) -> dict[str, Any] | None:
    if record is None or record.status != "done":
        return None
    m = record.metrics
    return {
        k: m.get(k)
        for k in (
            "batch_sizes",
            "threads",
            "settings",
            "results",
            "skipped_runtimes",
            "warnings",
            "errors",
            "overhead",
            "flops_per_item",
            "timed_shapes",
        )
    }


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
    if shutil.which("nvidia-smi"):
        try:
            run = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            return [line.strip() for line in run.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


def _accuracy(verify: dict[str, Any] | None, artifact: str, runtime: str) -> dict[str, Any] | None:
    """Worst figures over the outputs of one artifact on one runtime (or, failing that, on any runtime)."""
    if verify is None:
        return None
    results = [r for r in verify["results"] if r["artifact"] == artifact]
    same = [r for r in results if r["runtime"] == runtime]
    chosen = same or results
    if not chosen:
        return None
    r = chosen[0]
    outs = list((r.get("outputs") or {}).values())
    if not outs:
        return {
            "passed": bool(r.get("passed")),
            "runtime": r["runtime"],
            "cosine": None,
            "top1": None,
            "snr_db": None,
        }

    def worst(key: str) -> float | None:
        values = [_num(o.get(key)) for o in outs if o.get(key) is not None]
        return min(values) if values else None

    return {
        "passed": bool(r.get("passed")),
        "budget": r.get("budget"),
        "runtime": r["runtime"],
        "cosine": worst("cosine"),
        "top1": worst("top1"),
        "snr_db": worst("snr_db"),
        "max_abs": max((_num(o.get("max_abs")) or 0.0) for o in outs),
    }


def _num(value: Any) -> float | None:
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return float(value) if isinstance(value, int | float) else None


def select(verify: dict[str, Any] | None, bench: dict[str, Any] | None, config: Any) -> dict[str, Any]:
    """Per runtime: the fastest artifact within the accuracy budget, and why each other one lost."""
    cfg = config.report
    budget = {
        "cosine": cfg.accuracy_budget_cosine,
        "top1": cfg.accuracy_budget_top1,
        "snr_db": getattr(cfg, "accuracy_budget_snr_db", None),
    }
    section: dict[str, Any] = {"budget": budget, "batch": None, "runtimes": []}
    if not bench or not bench.get("results"):
        return section
    sizes = bench.get("batch_sizes") or [1]
    batch = cfg.batch if getattr(cfg, "batch", None) in sizes else sizes[0]
    if getattr(cfg, "batch", None) is None and len(sizes) > 1:
        batch = min(sizes)
    section["batch"] = batch
    runtimes: dict[str, list[dict[str, Any]]] = {}
    for r in bench["results"]:
        if not _is_reference(r):
            runtimes.setdefault(r["runtime"], []).append(r)
    for runtime, entries in runtimes.items():
        candidates, others = [], []
        for e in entries:
            stats = (e.get("batches") or {}).get(str(batch)) or {}
            acc = _accuracy(verify, e["artifact"], runtime)
            reason = _budget_miss(acc, budget)
            if e.get("error") or "p50_ms" not in stats:
                others.append(
                    {
                        "artifact": e["artifact"],
                        "reason": f"not timed: {e.get('error') or stats.get('error')}",
                    }
                )
            elif reason:
                others.append({"artifact": e["artifact"], "p50_ms": stats["p50_ms"], "reason": reason})
            else:
                candidates.append((stats["p50_ms"], e["artifact"], stats, acc))
        candidates.sort(key=lambda c: c[0])
        row: dict[str, Any] = {
            "runtime": runtime,
            "chosen": None,
            "p50_ms": None,
            "speedup": None,
            "others": others,
        }
        if candidates:
            best_ms, best, stats, acc = candidates[0]
            row.update(
                chosen=best,
                p50_ms=best_ms,
                speedup=stats.get("speedup"),
                disturbed=stats.get("disturbed"),
                accuracy=acc,
            )
            for ms, name, other_stats, _a in candidates[1:]:
                ratio = (
                    "disturbed"
                    if stats.get("disturbed") or other_stats.get("disturbed")
                    else f"{ms / best_ms:.2f}x"
                )
                others.append(
                    {
                        "artifact": name,
                        "p50_ms": ms,
                        "reason": f"within budget but slower: {ms:.3g} ms vs {best_ms:.3g} ms ({ratio})",
                    }
                )
        row["others"] = sorted(others, key=lambda o: o.get("p50_ms") or math.inf)
        row["device"] = entries[0].get("device")
        section["runtimes"].append(row)
    section["devices"] = merge_device_picks(
        select_per_device(section["runtimes"]), select_devices(verify, bench, budget, batch)
    )
    return section


def merge_device_picks(picks: list[dict[str, Any]], across: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per device: the pick over the runtimes' own picks (artifact, runtime, p50_ms, others), with
    the pick across backends beside it (chosen, ratios to eager and torch.compile, verdict, the table)."""
    by_device = {p["device"]: p for p in picks}
    merged = [{**entry, **by_device.get(entry["device"], {})} for entry in across]
    merged += [p for p in picks if p["device"] not in {e["device"] for e in across}]
    return merged


def select_per_device(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per device: the fastest artifact within the budget over every runtime of that device (e.g. INT8 on
    openvino-cpu against INT8 on onnxruntime-cpu), and the runner-up per runtime with its ratio."""
    devices: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("chosen"):
            devices.setdefault(row.get("device") or "cpu", []).append(row)
    picks = []
    for device, chosen in sorted(devices.items()):
        chosen.sort(key=lambda r: r["p50_ms"])
        best = chosen[0]
        picks.append(
            {
                "device": device,
                "artifact": best["chosen"],
                "runtime": best["runtime"],
                "p50_ms": best["p50_ms"],
                "speedup": best.get("speedup"),
                "others": [
                    {
                        "artifact": r["chosen"],
                        "runtime": r["runtime"],
                        "p50_ms": r["p50_ms"],
                        "reason": f"slower: {r['p50_ms']:.3g} ms ({r['p50_ms'] / best['p50_ms']:.2f}x)",
                    }
                    for r in chosen[1:]
                ],
            }
        )
    return picks


# --- selection across backends, per device ------------------------------------------------------------------

BACKENDS = (("onnxruntime", "onnxruntime"), ("tensorrt", "tensorrt"), ("inductor", "inductor"))


def _is_reference(entry: dict[str, Any]) -> bool:
    """PyTorch eager and the torch.compile peer are timed for comparison, never selected."""
    return entry["artifact"] in ("pytorch", "torch.compile") or entry.get("role") in ("baseline", "peer")


def backend_of(runtime: str) -> str:
    return next((b for prefix, b in BACKENDS if runtime.startswith(prefix)), runtime)


def select_devices(
    verify: dict[str, Any] | None, bench: dict[str, Any], budget: dict[str, Any], batch: int
) -> list[dict[str, Any]]:
    """Per device: at every benched batch, the fastest artifact of any backend within the accuracy budget, a
    backend x precision x batch table saying why each other candidate lost, and the chosen one's ratio to
    PyTorch eager and to torch.compile on that device."""
    devices: dict[str, list[dict[str, Any]]] = {}
    for r in bench["results"]:
        devices.setdefault(r.get("device") or "cpu", []).append(r)
    sections = []
    for device, entries in sorted(devices.items()):
        candidates = [e for e in entries if not _is_reference(e)]
        if not candidates:
            continue
        rows: list[dict[str, Any]] = []
        per_batch: dict[str, dict[str, Any]] = {}
        for b in [str(x) for x in bench.get("batch_sizes") or [batch]]:
            chosen, table = _pick(verify, candidates, budget, b)
            rows += table
            per_batch[b] = _headline(device, int(b), chosen, entries)
        head = per_batch.get(str(batch)) or next(iter(per_batch.values()))
        sections.append({"device": device, **head, "batches": per_batch, "table": rows})
    return sections


def _pick(
    verify: dict[str, Any] | None, candidates: list[dict[str, Any]], budget: dict[str, Any], batch: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    rows, ok = [], []
    for e in candidates:
        stats = (e.get("batches") or {}).get(batch) or {}
        row = {
            "backend": backend_of(e["runtime"]),
            "precision": e.get("precision") or "fp32",
            "batch": int(batch),
            "artifact": e["artifact"],
            "runtime": e["runtime"],
            "p50_ms": stats.get("p50_ms"),
            "vs_eager": stats.get("speedup"),
            "vs_compile": stats.get("vs_compile"),
        }
        miss = _budget_miss(_accuracy(verify, e["artifact"], e["runtime"]), budget)
        if e.get("error") or "p50_ms" not in stats:
            row["reason"] = f"not timed: {e.get('error') or stats.get('error') or 'no figure at this batch'}"
        elif miss:
            row["reason"] = miss
        else:
            ok.append(row)
        rows.append(row)
    ok.sort(key=lambda r: r["p50_ms"])
    if ok:
        best = ok[0]
        best["chosen"] = True
        best["reason"] = "fastest within the accuracy budget"
        for r in ok[1:]:
            r["reason"] = (
                f"within budget but slower: {r['p50_ms']:.3g} ms vs {best['p50_ms']:.3g} ms "
                f"({best['artifact']} on {best['runtime']}, {r['p50_ms'] / best['p50_ms']:.2f}x)"
            )
    return (ok[0] if ok else None), sorted(
        rows, key=lambda r: r["p50_ms"] if r["p50_ms"] is not None else math.inf
    )


def _headline(
    device: str, batch: int, chosen: dict[str, Any] | None, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chosen artifact with its ratios, and the verdict against torch.compile in plain words."""

    def stats_of(name: str) -> dict[str, Any]:
        e = next((e for e in entries if e["artifact"] == name), None)
        return ((e or {}).get("batches") or {}).get(str(batch), {})

    # a disturbed measurement gives no ratio: the reference's p50 is kept for reading, never divided
    eager_stats, compiled_stats = stats_of("pytorch"), stats_of("torch.compile")
    eager = None if eager_stats.get("disturbed") else eager_stats.get("p50_ms")
    compiled = None if compiled_stats.get("disturbed") else compiled_stats.get("p50_ms")
    head: dict[str, Any] = {
        "batch": batch,
        "chosen": None,
        "eager_p50_ms": eager_stats.get("p50_ms"),
        "compile_p50_ms": compiled_stats.get("p50_ms"),
        "vs_eager": None,
        "vs_compile": None,
    }
    if chosen is None:
        head["verdict"] = f"no artifact on {device} is within the accuracy budget at batch {batch}" + (
            f"; torch.compile runs at {compiled:.3g} ms" if compiled else ""
        )
        return head
    ms = chosen["p50_ms"]
    head.update(
        chosen={k: chosen[k] for k in ("artifact", "runtime", "backend", "precision", "p50_ms")},
        vs_eager=eager / ms if eager else None,
        vs_compile=compiled / ms if compiled else None,
    )
    name = f"{chosen['artifact']} on {chosen['runtime']}"
    if compiled is None:
        why = (
            f"torch.compile's timing was disturbed: {compiled_stats['disturbed']}"
            if compiled_stats.get("disturbed")
            else "torch.compile not timed"
        )
        head["verdict"] = f"{name} is the fastest artifact on {device} at batch {batch} ({why})"
    elif compiled < ms:
        head["verdict"] = (
            f"torch.compile is faster than every artifact infercc built for {device} at batch {batch}: "
            f"{compiled:.3g} ms against {ms:.3g} ms for the best, {name} ({ms / compiled:.2f}x slower). "
            "On this device, running the model under torch.compile beats deploying any of these artifacts."
        )
    else:
        head["verdict"] = (
            f"{name} beats torch.compile on {device} at batch {batch}: {ms:.3g} ms against {compiled:.3g} ms "
            f"({compiled / ms:.2f}x)"
        )
    return head


def _budget_miss(acc: dict[str, Any] | None, budget: dict[str, Any]) -> str | None:
    if acc is None:
        return "not verified: accuracy unknown"
    if not acc["passed"]:
        return "failed verification (see verify failures)"
    own = acc.get("budget")
    if own and not own.get("met", True):  # the artifact's own budget, accepted or not
        return f"outside its accuracy budget: {'; '.join(own['misses'])}" + (
            " (accepted by quantize.accept_budget_miss)" if own.get("accepted") else ""
        )
    for key, label in (("cosine", "cosine"), ("top1", "top-1 agreement"), ("snr_db", "SNR dB")):
        limit = budget.get(key)
        value = acc.get(key)
        if limit is not None and value is not None and value < limit:
            return f"outside the accuracy budget: {label} {value:.6g} < {limit:g}"
    return None


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
