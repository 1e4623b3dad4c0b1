"""How every runtime times itself: one wall-clock loop, one CUDA-event loop, one CUDA-graph capture.

On the CPU a run is timed by the wall clock after a sync (a no-op for synchronous runtimes). On the GPU the
device time between two CUDA events recorded on the stream the work runs on, with the data already on the
device. A CUDA graph is captured on a side stream (or the runtime's own) after warm-up calls, so that lazy
initialisation and allocation stay out of the graph. torch is passed in: nothing here imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def time_loop(run_once: Callable[[], Any], sync: Callable[[], Any], iters: int, warmup: int) -> list[float]:
    """Seconds per run by the wall clock: `warmup` untimed runs, then `iters` runs each followed by `sync`."""
    for _ in range(warmup):
        run_once()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run_once()
        sync()
        times.append(time.perf_counter() - start)
    return times


def cuda_event_times(
    torch: Any, run_once: Callable[[], Any], iters: int, warmup: int, stream: Any = None
) -> list[float]:
    """Seconds per run between CUDA events on `stream` (default: the current stream), which the runs are
    enqueued on: `warmup` untimed runs and a device sync, then `iters` timed runs."""
    stream = stream if stream is not None else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            run_once()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            start.record(stream)
            run_once()
            end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return times


def capture_cuda_graph(
    torch: Any, run_once: Callable[[], Any], warmup: int = 1, stream: Any = None
) -> tuple[Any, Any, Any]:
    """(graph, what the captured call returned, what the last warm-up call returned): `warmup` calls on
    `stream` (default: a new side stream) flush lazy initialisation, then one call is captured there.
    Replaying the graph re-runs the captured call on the same buffers."""
    stream = stream if stream is not None else torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    warm = None
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            warm = run_once()
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        captured = run_once()
    return graph, captured, warm
