"""Bench stage: latency and throughput of every artifact on every runtime, PyTorch eager as the baseline.

For each runtime that is available here, each artifact it can run, and each batch size of the sweep:
warm-up, then `repeats` x (`iterations` or `duration_s`) timed runs (CUDA events with data on the
device on GPU; wall clock on CPU). Reported: min/mean/p50/p90/p99 latency, throughput, the spread of
the repeats' medians, peak host memory (VmHWM, reset per measurement) and device memory, file size,
and the ratio to PyTorch eager on the same device measured in the same run. The time the stage spends
outside the runtimes' own calls is measured and recorded (`overhead`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.config import BenchConfig, CompileConfig
from infercc.errors import InferccError
from infercc.machine_load import CpuSample, disturbance, load_average
from infercc.pipeline.manifest import ArtifactRecord
from infercc.pipeline.stage import RunContext, Stage, StageOutput
from infercc.runtimes.base import (
    Capability,
    Device,
    RuntimeName,
    candidate_runtimes,
    probe,
    runs_artifact,
    runtime_class,
    usable_runtimes,
)
from infercc.runtimes.isolation import IsolatedRuntime, RuntimeCrashed
from infercc.stages.results import BenchResult
from infercc.stages.verify import Clock, opened

BASELINES = {Device.CPU: RuntimeName.PYTORCH_CPU, Device.CUDA: RuntimeName.PYTORCH_CUDA}
PEERS = {Device.CPU: RuntimeName.TORCH_COMPILE_CPU, Device.CUDA: RuntimeName.TORCH_COMPILE_CUDA}
BASELINE, PEER = "pytorch", "torch.compile"  # entry names of PyTorch eager and of the torch.compile peer


def stages_for(
    config: CompileConfig,
    artifacts: list[str],
    run_configs: list[str] | None = None,
    wants: list[str] | None = None,
) -> list[Stage]:
    return [BenchStage(tuple(artifacts), tuple(run_configs or ()), tuple(wants or ()))]


def is_reference(entry: dict[str, Any]) -> bool:
    """PyTorch eager or the torch.compile peer: timed for comparison, never selected."""
    return entry["artifact"] in (BASELINE, PEER)


def runtime_device(name: str) -> Device:
    """The device runtime `name` declares it runs on."""
    return runtime_class(name).device


# --- statistics -------------------------------------------------------------------------------------


def latency_stats(repeats: list[list[float]], batch: int) -> dict[str, Any]:
    """Percentiles over every timed iteration (ms), throughput (items/s) and the spread of the repeats' medians."""
    flat = np.asarray([t for r in repeats for t in r], dtype=np.float64) * 1e3
    medians = [float(np.median(r)) * 1e3 for r in repeats if r]
    p50 = float(np.percentile(flat, 50))
    return {
        "iterations": int(flat.size),
        "repeats": len(repeats),
        "min_ms": float(flat.min()),
        "mean_ms": float(flat.mean()),
        "p50_ms": p50,
        "p90_ms": float(np.percentile(flat, 90)),
        "p99_ms": float(np.percentile(flat, 99)),
        "max_ms": float(flat.max()),
        "std_ms": float(flat.std()),
        "repeat_medians_ms": medians,
        "spread": float((max(medians) - min(medians)) / p50) if p50 > 0 else 0.0,
        "throughput": float(batch / (p50 / 1e3)) if p50 > 0 else None,
    }


def rankable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two measurements can be ranked: their repeat-median ranges do not overlap."""
    lo_a, hi_a = min(a["repeat_medians_ms"]), max(a["repeat_medians_ms"])
    lo_b, hi_b = min(b["repeat_medians_ms"]), max(b["repeat_medians_ms"])
    return hi_a < lo_b or hi_b < lo_a


# --- memory --------------------------------------------------------------------------------------------


def _proc_status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int | None:
    return _proc_status("VmHWM")


def current_rss() -> int | None:
    return _proc_status("VmRSS")


# --- measuring --------------------------------------------------------------------------------------------


@dataclass
class Subject:
    """Something to time: an artifact file (or the PyTorch module) on a runtime."""

    name: str  # artifact name, or "pytorch" for the baseline
    runtime: str
    artifact: Any  # path, or the nn.Module
    size: int | None
    precision: str | None
    options: dict[str, Any]


def batch_feed(feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The feed with its first axis tiled/cut to `batch` rows."""
    out = {}
    for name, value in feed.items():
        if value.ndim == 0:
            out[name] = value
            continue
        reps = -(-batch // value.shape[0])
        out[name] = np.ascontiguousarray(np.concatenate([value] * reps, axis=0)[:batch])
    return out


def iterations_for(runtime: Any, feeds: dict[str, np.ndarray], cfg: BenchConfig, clock: Clock) -> int:
    """Warm-up, then the iterations of one timed block: `iterations`, or as many as fit `duration_s`, capped
    by `budget_s` over all repeats."""
    first = clock.call(runtime.time_infer, feeds, 1, max(cfg.warmup, 1))
    estimate = max(float(np.median(first)), 1e-6)
    iters = cfg.iterations
    if cfg.duration_s is not None:
        iters = max(int(cfg.duration_s / estimate), 1)
    if cfg.budget_s is not None:
        iters = max(min(iters, int(cfg.budget_s / cfg.repeats / estimate)), 3)
    return iters


@dataclass
class Live:
    """A subject whose runtime is open, with its report entry and its timed rounds of the current batch."""

    subject: Subject
    entry: dict[str, Any]
    runtime: Any
    rss_before: int | None
    iters: int = 0
    repeats: list[list[float]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The process the runtime computes in: its child when isolated, else this one."""
        return (self.runtime.pid if isinstance(self.runtime, IsolatedRuntime) else None) or os.getpid()


def new_entry(subject: Subject, cfg: BenchConfig) -> dict[str, Any]:
    return {
        "artifact": subject.name,
        "runtime": subject.runtime,
        "device": runtime_device(subject.runtime).value,
        "precision": subject.precision,
        "file_size": subject.size,
        "threads": cfg.threads,
        "batches": {},
        "notes": [],
        "error": None,
        **(
            {"role": "peer"}
            if subject.name == PEER
            else {"role": "baseline"}
            if subject.name == BASELINE
            else {}
        ),
    }


def bench_subjects(
    subjects: list[Subject],
    feeds_by_batch: dict[int, dict[str, np.ndarray]],
    cfg: BenchConfig,
    clock: Clock,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Every batch size of every subject, timed in interleaved rounds (A, B, C, A, B, C ...) so that whatever
    disturbs the machine hits every subject alike; each block records the process's CPU time beside its wall
    time and what other processes used meanwhile. Errors and crashes are recorded, not raised."""
    entries = [new_entry(s, cfg) for s in subjects]
    with contextlib.ExitStack() as stack:
        opened_ = [_open(stack, s, e, clock) for s, e in zip(subjects, entries, strict=True)]
        live = [item for item in opened_ if item is not None]
        for batch, feeds in feeds_by_batch.items():
            if progress:
                progress(f"batch {batch}: {len(live)} subject(s) in rounds")
            live = _time_batch(live, batch, feeds, cfg, clock)
        for item in live:
            _finish_entry(item)
    for entry in entries:
        entry.pop("_device_base", None)
    return entries


def bench_subject(
    subject: Subject,
    feeds_by_batch: dict[int, dict[str, np.ndarray]],
    cfg: BenchConfig,
    clock: Clock,
    progress: Any = None,
) -> dict[str, Any]:
    """One subject alone (scripts and tests); see bench_subjects."""
    return bench_subjects([subject], feeds_by_batch, cfg, clock, progress)[0]


def _open(stack: contextlib.ExitStack, subject: Subject, entry: dict[str, Any], clock: Clock) -> Live | None:
    rss_before = current_rss()
    reset_peak_rss()
    started = time.perf_counter()
    try:
        runtime = stack.enter_context(opened(clock, subject.runtime, subject.artifact, **subject.options))
    except InferccError as exc:
        _record_error(entry, exc)
        return None
    entry["load_s"] = round(time.perf_counter() - started, 4)
    entry["_device_base"] = _device_memory(runtime)
    if isinstance(runtime, IsolatedRuntime):  # the runtime's memory is its child's
        rss_before = runtime.rss_at_start
    return Live(subject, entry, runtime, rss_before)


def _record_error(entry: dict[str, Any], exc: InferccError) -> None:
    entry["error"] = exc.message
    if isinstance(exc, RuntimeCrashed):
        entry["crashed"] = exc.message


def _time_batch(
    live: list[Live], batch: int, feeds: dict[str, np.ndarray], cfg: BenchConfig, clock: Clock
) -> list[Live]:
    """Warm up every subject, then `repeats` rounds over all of them; returns the subjects still running."""
    timing = []
    for item in live:
        item.repeats, item.rounds = [], []
        try:
            item.iters = iterations_for(item.runtime, feeds, cfg, clock)
            timing.append(item)
        except InferccError as exc:
            _batch_error(item, batch, exc)
    for round_index in range(cfg.repeats):
        for item in list(timing):
            sample = CpuSample.start(item.pid)
            try:
                times = clock.call(item.runtime.time_infer, feeds, item.iters, 1 if round_index else 0)
            except InferccError as exc:
                _batch_error(item, batch, exc)
                timing.remove(item)
                continue
            item.rounds.append(sample.stop())
            item.repeats.append(times)
    for item in timing:
        item.entry["batches"][str(batch)] = _batch_stats(item, batch, feeds, cfg, clock)
    return [item for item in live if "crashed" not in item.entry]


def _batch_error(item: Live, batch: int, exc: InferccError) -> None:
    if isinstance(exc, RuntimeCrashed):
        _record_error(item.entry, exc)
    item.entry["batches"][str(batch)] = {"error": exc.message}


def _batch_stats(
    item: Live, batch: int, feeds: dict[str, np.ndarray], cfg: BenchConfig, clock: Clock
) -> dict[str, Any]:
    stats = latency_stats(item.repeats, batch)
    stats["rounds"] = item.rounds
    stats["disturbed"] = disturbance(item.rounds, cfg.max_foreign_load, item.entry["device"])
    if Capability.H2D_TIMING in runtime_class(item.subject.runtime).capabilities:
        h2d = clock.call(item.runtime.time_h2d, feeds, min(20, cfg.iterations))
        stats["h2d_ms"] = float(np.median(h2d) * 1e3)
    return stats


def _finish_entry(item: Live) -> None:
    entry, runtime = item.entry, item.runtime
    device_base = entry.pop("_device_base", None)
    entry["timing"] = runtime.timing
    if runtime.run_settings:  # threads, hints, precision the runtime compiled with
        entry["runtime_settings"] = dict(runtime.run_settings)
    if runtime.compile_s:
        entry["compile_s"] = {b: round(v, 3) for b, v in runtime.compile_s.items()}
    entry["notes"] += list(dict.fromkeys(runtime.notes))
    used = _device_memory(runtime)
    if used is not None:
        entry["device_memory"] = used
        entry["device_memory_delta"] = used - device_base if device_base is not None else None
    peak = runtime.peak_rss() if isinstance(runtime, IsolatedRuntime) else peak_rss()
    entry["peak_rss"] = peak
    entry["peak_rss_delta"] = (peak - item.rss_before) if (peak and item.rss_before) else None


def _device_memory(runtime: Any) -> int | None:
    try:
        return runtime.device_memory()
    except Exception:  # a diagnostic: a driver that cannot say never fails the bench
        return None


def compare_with_baseline(entries: list[dict[str, Any]]) -> None:
    """Add `speedup` (baseline p50 / p50) against PyTorch eager on the same device and batch, unless either
    measurement was disturbed: then `speedup` stays out and `disturbed` says why (no ratio from a busy machine)."""
    base, peer = _timed_by_device(entries, BASELINE), _timed_by_device(entries, PEER)
    for e in entries:
        for b, stats in e["batches"].items():
            ref = base.get((e["device"], b))
            if not ref or "p50_ms" not in stats:
                continue
            stats["baseline_p50_ms"] = ref["p50_ms"]
            why = stats.get("disturbed") or (f"baseline {ref['disturbed']}" if ref.get("disturbed") else None)
            if why:
                stats["disturbed"] = why
            else:
                stats["speedup"] = ref["p50_ms"] / stats["p50_ms"]
            compiled = peer.get((e["device"], b))
            if (
                compiled
                and e["artifact"] != PEER
                and not stats.get("disturbed")
                and not compiled.get("disturbed")
            ):
                stats["vs_compile"] = compiled["p50_ms"] / stats["p50_ms"]  # > 1: faster than torch.compile
                stats["compile_p50_ms"] = compiled["p50_ms"]


def _timed_by_device(entries: list[dict[str, Any]], artifact: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(device, batch) -> the figures of `artifact` (PyTorch eager or the torch.compile peer) where timed."""
    return {
        (e["device"], b): s
        for e in entries
        if e["artifact"] == artifact
        for b, s in e["batches"].items()
        if "p50_ms" in s
    }


def disturbed_batches(entries: list[dict[str, Any]]) -> list[str]:
    """'pytorch on pytorch-cpu batch 1: round 2: other processes used 71% ...' for every disturbed measurement."""
    return [
        f"{e['artifact']} on {e['runtime']} batch {b}: {s['disturbed']}"
        for e in entries
        for b, s in e["batches"].items()
        if s.get("disturbed")
    ]


def noise_warnings(entries: list[dict[str, Any]], max_spread: float) -> list[str]:
    """Pairs of artifacts on one runtime and batch whose repeat ranges overlap: not rankable."""
    warnings = []
    by_key: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for e in entries:
        for b, s in e["batches"].items():
            if "p50_ms" in s:
                by_key.setdefault((e["runtime"], b), []).append((e["artifact"], s))
                if s["spread"] > max_spread:
                    warnings.append(
                        f"{e['artifact']} on {e['runtime']} batch {b}: repeats spread {s['spread']:.0%} "
                        f"(> {max_spread:.0%}); figures are noisy"
                    )
    for (runtime, b), items in by_key.items():
        items.sort(key=lambda it: it[1]["p50_ms"])
        for (n1, s1), (n2, s2) in itertools.pairwise(items):
            if not rankable(s1, s2):
                warnings.append(
                    f"cannot rank {n1} ({s1['p50_ms']:.3g} ms) against {n2} ({s2['p50_ms']:.3g} ms) on "
                    f"{runtime} at batch {b}: their repeats overlap"
                )
    return warnings


def batch_sizes(cfg: BenchConfig, ranges: dict[str, Any], names: list[str]) -> list[int]:
    """The sweep for dynamic-batch models (configured, else min/opt/max batch); the opt batch otherwise."""
    opt = ranges[names[0]].opt[0] if names and ranges[names[0]].opt else 1
    dynamic = any(r.min and r.max and r.min[0] != r.max[0] for r in ranges.values())
    if not dynamic:
        return [opt]
    if cfg.batch_sizes:
        return sorted(set(cfg.batch_sizes))
    first = ranges[names[0]]
    return sorted({first.min[0], opt, first.max[0]})


class BenchStage:
    name = "bench"
    version: ClassVar[str] = "2"
    description = "Benchmark artifacts against PyTorch eager"

    def __init__(
        self, artifact_names: tuple[str, ...], run_configs: tuple[str, ...] = (), wants: tuple[str, ...] = ()
    ) -> None:
        self.artifact_names = (*artifact_names, *wants)
        self.run_configs = tuple(run_configs)  # tuned ONNX Runtime CUDA options (stages.tune)
        self.needs: tuple[str, ...] = ("reference", *artifact_names, *self.run_configs)
        self.wants = tuple(wants)  # optional: an AOTInductor package whose compile failed is left out

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "bench": ctx.config.bench.model_dump(mode="json"),
            "runtimes": candidate_runtimes(ctx.config.bench.runtimes),
        }
        if ctx.config.bench.peers and not ctx.source.is_onnx:
            settings["peer_source"] = ctx.source_hash  # the peer compiles the model itself
        return settings

    def tools(self) -> tuple[str, ...]:
        return ("onnxruntime", "onnxruntime-gpu", "numpy", "torch", "tensorrt", "tensorrt_rtx_bindings")

    def run(self, ctx: RunContext, inputs: dict[str, ArtifactRecord]) -> StageOutput:
        from infercc.stages.export import load_reference

        clock = Clock()
        cfg = ctx.config.bench
        reference = load_reference(ctx.path(inputs["reference"].path))
        feed = reference.get("opt", next(iter(reference.values())))[0]
        sizes = batch_sizes(cfg, ctx.shape_ranges, ctx.input_names)
        feeds_by_batch = {b: batch_feed(feed, b) for b in sizes}
        subjects, skipped = self._subjects(ctx, inputs)
        flops: float | None = None
        for subject in subjects:
            if subject.name == "pytorch":
                subject.artifact = clock.call(ctx.torch_module)
                if flops is None:
                    flops = clock.call(model_flops, subject.artifact, feed, ctx.input_names)
        load_before = load_average()
        entries = bench_subjects(
            subjects, feeds_by_batch, cfg, clock, lambda detail: ctx.progress(self.name, 0, None, detail)
        )
        load = {"before": load_before, "after": load_average(), "cpus": os.cpu_count()}
        compare_with_baseline(entries)
        warnings = noise_warnings(entries, cfg.max_spread)
        errors = [f"{e['artifact']} on {e['runtime']}: {e['error']}" for e in entries if e["error"]]
        overhead = clock.summary()
        disturbed = disturbed_batches(entries)
        if disturbed:
            warnings.append(
                f"the machine was busy during the bench ({disturbed[0]}); ratios are reported as 'disturbed'"
            )
        notes = [f"skipped runtime {s['runtime']}: {s['reason']}" for s in skipped] + warnings + errors
        result = BenchResult(
            batch_sizes=sizes,
            threads=cfg.threads,
            settings=cfg.model_dump(mode="json"),
            results=entries,
            skipped_runtimes=skipped,
            warnings=warnings,
            errors=errors,
            crashes=[e["crashed"] for e in entries if e.get("crashed")],
            overhead=overhead,
            flops_per_item=flops,
            timed_shapes=timed_shapes(feeds_by_batch),
            load_average=load,
            disturbed=disturbed,
            brief=_brief(entries, sizes, timed_shapes(feeds_by_batch)),
        )
        return StageOutput(result=result, notes=notes)

    def _subjects(
        self, ctx: RunContext, inputs: dict[str, ArtifactRecord]
    ) -> tuple[list[Subject], list[dict[str, str]]]:
        cfg = ctx.config.bench
        subjects: list[Subject] = []
        devices: set[Device] = set()
        usable, skipped = usable_runtimes(cfg.runtimes, "bench.runtimes")
        for runtime_name, cls in usable:
            options: dict[str, Any] = {"threads": cfg.threads}
            if Capability.CUDA_GRAPHS in cls.capabilities:
                options["cuda_graph"] = cfg.cuda_graph
            for name in self.artifact_names:
                art = inputs.get(name)
                if (
                    art is not None
                    and runs_artifact(runtime_name, cls, art)
                    and art.meta.get("loadable") is not False
                ):
                    devices.add(cls.device)
                    tuned = (
                        _tuned_options(ctx, inputs, name)
                        if runtime_name == RuntimeName.ONNXRUNTIME_CUDA
                        else {}
                    )
                    subjects.append(
                        Subject(
                            name,
                            runtime_name,
                            ctx.path(art.path),
                            art.size,
                            art.precision,
                            {**options, **tuned},
                        )
                    )
        if cfg.peers and not ctx.source.is_onnx:
            subjects += self._peers(ctx, devices, skipped)
        if cfg.baseline and not ctx.source.is_onnx:
            for device in sorted(devices):
                runtime_name = BASELINES[device]
                if not _available(runtime_name, skipped):
                    continue
                subjects.insert(
                    0,
                    Subject(
                        "pytorch",
                        runtime_name,
                        None,
                        None,
                        "fp32",
                        {"input_names": ctx.input_names, "threads": cfg.threads},
                    ),
                )
        return subjects, skipped

    def _peers(self, ctx: RunContext, devices: set[Device], skipped: list[dict[str, str]]) -> list[Subject]:
        """torch.compile on each device the artifacts run on (bench.peers)."""
        cfg = ctx.config.bench
        peers = []
        for device in sorted(devices):
            runtime_name = PEERS[device]
            if not _available(runtime_name, skipped):
                continue
            options = {
                "source": ctx.source.spec,
                "model": ctx.config.model.model_dump(mode="json"),
                "input_names": ctx.input_names,
                "compile_budget_s": cfg.peer_compile_s,
                "threads": cfg.threads,
            }
            peers.append(Subject(PEER, runtime_name, None, None, None, options))
        return peers


def _available(runtime: str, skipped: list[dict[str, str]]) -> bool:
    """Whether a reference runtime (PyTorch eager, torch.compile) runs here; if not, it is listed as skipped."""
    _, reason = probe(runtime)
    if reason:
        skipped.append({"runtime": runtime, "reason": reason})
    return not reason


def _tuned_options(ctx: RunContext, inputs: dict[str, ArtifactRecord], artifact: str) -> dict[str, Any]:
    """The provider options the tune stage chose for this artifact, as OrtCUDA keyword arguments."""
    import json

    from infercc.stages.tune import run_config_name

    record = inputs.get(run_config_name(artifact))
    if record is None:
        return {}
    chosen = json.loads(ctx.path(record.path).read_text())
    options = {k: v for k, v in chosen["provider_options"].items() if k != "enable_cuda_graph"}
    return {"provider_options": options, "cuda_graph": bool(chosen.get("cuda_graph"))}


def model_flops(module: Any, feed: dict[str, np.ndarray], input_names: list[str]) -> float | None:
    """FLOPs of one item (batch 1) of the PyTorch model, counted by torch's FlopCounterMode on CPU."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        module = module.to("cpu").eval()
        args = [torch.from_numpy(np.ascontiguousarray(feed[n][:1])) for n in input_names]
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            module(*args)
        total = counter.get_total_flops()
        return float(total) if total else None
    except Exception:
        return None


def timed_shapes(feeds_by_batch: dict[int, dict[str, np.ndarray]]) -> dict[str, dict[str, str]]:
    """batch -> input -> the shape timed (the opt shape with its first axis set to the batch)."""
    return {
        str(b): {n: "x".join(map(str, v.shape)) or "scalar" for n, v in feed.items()}
        for b, feed in feeds_by_batch.items()
    }


def _brief(entries: list[dict[str, Any]], sizes: list[int], shapes: dict[str, dict[str, str]]) -> str:
    batch = str(sizes[0])
    parts = []
    for e in entries:
        s = e["batches"].get(batch, {})
        if "p50_ms" in s:
            ratio = f" ({s['speedup']:.2f}x)" if "speedup" in s and e["artifact"] != BASELINE else ""
            ratio = " (disturbed)" if s.get("disturbed") and e["artifact"] != BASELINE else ratio
            parts.append(
                f"{e['artifact']}@{e['runtime'].replace('onnxruntime', 'ort')} {s['p50_ms']:.3g} ms{ratio}"
            )
    timed = ", ".join(f"{n} {dims}" for n, dims in shapes.get(batch, {}).items())
    swept = f"; batch sweep {', '.join(map(str, sizes))} at the same other dims" if len(sizes) > 1 else ""
    return f"{timed}{swept}: " + ", ".join(parts) if parts else "nothing timed"
