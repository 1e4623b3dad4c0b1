"""The report's selection: per runtime and per device, the fastest artifact within the accuracy budget, and why
each other candidate lost; across backends, the verdict against PyTorch eager and torch.compile."""

from __future__ import annotations

import math
from typing import Any


def accuracy_of(verify: dict[str, Any] | None, artifact: str, runtime: str) -> dict[str, Any] | None:
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
        "snr_db": cfg.accuracy_budget_snr_db,
    }
    section: dict[str, Any] = {"budget": budget, "batch": None, "runtimes": []}
    if not bench or not bench.get("results"):
        return section
    sizes = bench.get("batch_sizes") or [1]
    batch = cfg.batch if cfg.batch in sizes else min(sizes)
    section["batch"] = batch
    runtimes: dict[str, list[dict[str, Any]]] = {}
    for r in bench["results"]:
        if not _is_reference(r):
            runtimes.setdefault(r["runtime"], []).append(r)
    for runtime, entries in runtimes.items():
        candidates, others = [], []
        for e in entries:
            stats = (e.get("batches") or {}).get(str(batch)) or {}
            acc = accuracy_of(verify, e["artifact"], runtime)
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
        miss = _budget_miss(accuracy_of(verify, e["artifact"], e["runtime"]), budget)
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
