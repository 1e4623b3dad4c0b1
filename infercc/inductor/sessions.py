"""What runs inside the child process (child.py): an AOTInductor package or the torch.compile peer, with the
timing both share (wall clock on CPU, CUDA events on the GPU) and CUDA-graph capture per shape for small
batches of a package."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from infercc.errors import StageError
from infercc.runtimes.timing import capture_cuda_graph, cuda_event_times, time_loop

GRAPH_MAX_BATCH = 8  # a CUDA graph is captured per shape up to this batch: launch overhead dominates there
GRAPH_MATCH_ATOL = 1e-3


class TorchSession:
    """Feeds in, numpy outputs out, on one device; subclasses say how one call is made."""

    def __init__(self, request: dict[str, Any]) -> None:
        import torch

        self.torch = torch
        self.device = request.get("device", "cpu")
        self.input_names: list[str] = list(request["input_names"])
        self.output_names: list[str] | None = request.get("output_names")
        self.input_dtypes: dict[str, str] = dict(request.get("input_dtypes") or {})
        self.notes: list[str] = []
        if request.get("threads"):
            torch.set_num_threads(int(request["threads"]))
        if self.device == "cuda" and not torch.cuda.is_available():
            raise StageError("PyTorch in the child process sees no CUDA device.")

    def info(self) -> dict[str, Any]:
        return {"torch": self.torch.__version__, "device": self.device}

    def call(self, args: list[Any]) -> Any:
        raise NotImplementedError

    def tensors(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        torch = self.torch
        args = []
        for name in self.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to(self.device)
            wanted = self.input_dtypes.get(name)
            if wanted and tensor.is_floating_point():
                tensor = tensor.to(getattr(torch, wanted))
            args.append(tensor)
        return args

    def to_numpy(self, result: Any) -> dict[str, np.ndarray]:
        from infercc.models.io import flatten_outputs

        if isinstance(result, list | tuple) and len(result) == 1:
            result = result[0]
        tensors = flatten_outputs(result, self.output_names)
        return {
            n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            for n, t in tensors.items()
        }

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        with self.torch.inference_mode():
            return {"outputs": self.to_numpy(self.call(self.tensors(feeds)))}

    def time(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> dict[str, Any]:
        args = self.tensors(feeds)
        with self.torch.inference_mode():
            run = self.runner(args)
            times = (
                cuda_event_times(self.torch, run, iters, warmup)
                if self.device == "cuda"
                else time_loop(run, lambda: None, iters, warmup)
            )
        return {"times": times, "notes": list(dict.fromkeys(self.notes))}

    def runner(self, args: list[Any]) -> Any:
        return lambda: self.call(args)


class PackageSession(TorchSession):
    """An AOTInductor .pt2 package, loaded with torch._inductor.aoti_load_package."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__(request)
        self.cuda_graph = bool(request.get("cuda_graph", True))
        self.graphs: dict[tuple[Any, ...], Any] = {}
        self.model = self.torch._inductor.aoti_load_package(str(request["path"]))

    def info(self) -> dict[str, Any]:
        metadata = {}
        try:
            metadata = dict(self.model.get_metadata())
        except Exception:
            pass
        return {**super().info(), "metadata": metadata}

    def call(self, args: list[Any]) -> Any:
        return self.model(*args)

    def runner(self, args: list[Any]) -> Any:
        batch = args[0].shape[0] if args and args[0].dim() else 1
        if self.device != "cuda" or not self.cuda_graph or batch > GRAPH_MAX_BATCH:
            return lambda: self.call(args)
        key = tuple(tuple(a.shape) for a in args)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
        graph = self.graphs[key]
        return graph.replay if graph is not None else (lambda: self.call(args))

    def _capture(self, args: list[Any]) -> Any:
        """A CUDA graph of one call on static buffers, kept only if it reproduces the eager call's outputs."""
        torch = self.torch
        try:
            static = [a.clone() for a in args]
            graph, captured, expected = capture_cuda_graph(torch, lambda: self.call(static), warmup=2)
            graph.replay()
            torch.cuda.synchronize()
            if not _same(torch, captured, expected):
                self.notes.append("CUDA graph replay did not reproduce the package's outputs; timed without")
                return None
            self.notes.append(f"CUDA graph captured per shape for batches up to {GRAPH_MAX_BATCH}")
            return graph
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.notes.append(f"CUDA graph capture failed ({type(exc).__name__}: {first}); timed without")
            return None


def _same(torch: Any, a: Any, b: Any) -> bool:
    a = a if isinstance(a, list | tuple) else [a]
    b = b if isinstance(b, list | tuple) else [b]
    return len(a) == len(b) and all(
        torch.allclose(x.float(), y.float(), atol=GRAPH_MATCH_ATOL, rtol=1e-3)
        for x, y in zip(a, b, strict=True)
    )


class PeerSession(TorchSession):
    """The user's own module under torch.compile: what they would get without infercc."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__(request)
        from infercc.config import ModelConfig
        from infercc.models.sources import load_module, parse_source

        torch = self.torch
        module = load_module(parse_source(request["source"]), ModelConfig.model_validate(request["model"]))
        dtype = getattr(torch, request.get("dtype") or "float32")
        module = module.to(self.device).to(dtype).eval()
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True
        self.mode = request["mode"]
        self.compiled = torch.compile(module, mode=self.mode, dynamic=False)
        self.warmed: set[tuple[Any, ...]] = set()

    def call(self, args: list[Any]) -> Any:
        return self.compiled(*args)

    def warm(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """The first call at this shape, which compiles; returns how long it took."""
        args = self.tensors(feeds)
        started = time.perf_counter()
        with self.torch.inference_mode():
            self.call(args)
            self.call(args)  # reduce-overhead records its CUDA graph on a later call
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        self.warmed.add(tuple(tuple(a.shape) for a in args))
        return {"compile_s": time.perf_counter() - started}


def open_session(request: dict[str, Any]) -> TorchSession:
    kind = request.pop("kind")
    if kind == "package":
        return PackageSession(request)
    if kind == "peer":
        return PeerSession(request)
    raise StageError(f"unknown child session kind {kind!r}")
