"""The openvino-cpu runtime: an ONNX artifact compiled by OpenVINO Runtime for its CPU plugin.

Q/DQ (INT8) graphs run as INT8 (OpenVINO folds QuantizeLinear/DequantizeLinear into integer kernels). The
inference precision is always set, never left to the plugin's default (which is BF16 on CPUs with AMX): f32,
or bf16 for a BF16 artifact (an ONNX graph whose metadata asks for it, see `INFERENCE_PRECISION_KEY`).
The threads, performance hint, streams and inference precision OpenVINO actually compiled with are read back
into `run_settings`, which verify and bench record.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infercc.errors import UsageError
from infercc.lazy import is_installed, require, version_of
from infercc.openvino.errors import explain_openvino_error
from infercc.runtimes.base import (
    Capability,
    Device,
    RuntimeBase,
    RuntimeName,
    RuntimeStatus,
    TensorSpec,
    check_feeds,
)
from infercc.runtimes.timing import time_loop

INSTALL = "pip install 'infercc[openvino]'"
# ONNX metadata_props key of a graph meant to run at a lower inference precision ("bf16")
INFERENCE_PRECISION_KEY = "infercc.inference_precision"
_OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "f64": "float64",
    "i64": "int64",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
    "boolean": "bool",
}


# layers of OpenVINO's executable graph that do the arithmetic (not reorders, constants or reshapes)
_COMPUTE_LAYERS = {"Convolution", "Deconvolution", "FullyConnected", "MatMul", "Gemm", "RNNCell", "RNNSeq"}


def onnx_facts(path: Path) -> tuple[str, list[str]]:
    """The inference precision the ONNX file's metadata asks for ('bf16', else 'f32') and its output names
    (OpenVINO may name an output port after the node that feeds it, e.g. a Cast the FP16 converter added)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return props.get(INFERENCE_PRECISION_KEY, "f32"), [o.name for o in model.graph.output]


class OpenVINOCPU(RuntimeBase):
    """OpenVINO Runtime, CPU plugin, one infer request, latency hint unless told otherwise."""

    name: ClassVar[str] = RuntimeName.OPENVINO_CPU
    artifact_kinds: ClassVar[tuple[str, ...]] = ("onnx", "onnx-bf16")
    device: ClassVar[Device] = Device.CPU
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DYNAMIC_SHAPES, Capability.INT8, Capability.BF16}
    )

    def __init__(
        self,
        artifact: Path,
        threads: int | None = None,
        performance_hint: str = "LATENCY",
        inference_precision: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(artifact)
        self.threads = threads
        self.performance_hint = performance_hint
        self.inference_precision = inference_precision
        self.compiled: Any = None
        self.request: Any = None
        self.output_names: list[str] = []

    @classmethod
    def status(cls) -> RuntimeStatus:
        if not is_installed("openvino"):
            return RuntimeStatus(cls.name, False, f"openvino is not installed: {INSTALL}")
        return RuntimeStatus(cls.name, True, version=version_of("openvino"))

    def _compile_config(self, asked_in_file: str) -> dict[str, Any]:
        precision = self.inference_precision or asked_in_file
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": self.performance_hint,
            "INFERENCE_PRECISION_HINT": precision,
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def __enter__(self) -> OpenVINOCPU:
        from infercc.errors import MissingRuntimeError

        if not is_installed("openvino"):
            raise MissingRuntimeError("openvino-cpu needs OpenVINO, which is not installed.", hint=INSTALL)
        ov = require("openvino", "the openvino-cpu runtime")
        if not self.path.is_file():
            raise UsageError(f"ONNX file {self.path} does not exist.")
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:
            raise explain_openvino_error(exc, self.path, "reading") from exc
        try:
            asked_in_file, onnx_outputs = onnx_facts(self.path)
        except Exception as exc:
            raise explain_openvino_error(exc, self.path, "reading") from exc
        config = self._compile_config(asked_in_file)
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise explain_openvino_error(exc, self.path, "compiling") from exc
        self.request = self.compiled.create_infer_request()
        self.output_names = [
            _port_name(port, onnx_outputs[i] if i < len(onnx_outputs) else None)
            for i, port in enumerate(self.compiled.outputs)
        ]
        self.run_settings = self._read_back(config)
        return self

    def _read_back(self, asked: dict[str, Any]) -> dict[str, Any]:
        """What OpenVINO compiled with (it may adjust a hint), beside what was asked."""

        def prop(key: str) -> Any:
            try:
                value = self.compiled.get_property(key)
            except Exception:
                return None
            if hasattr(value, "get_type_name"):  # an element type: 'f32', 'bf16'
                return value.get_type_name()
            return value if isinstance(value, int | float | bool) else str(value)

        return {
            "device": "CPU",
            "version": version_of("openvino"),
            "asked": {k: v for k, v in asked.items()},
            "inference_precision": prop("INFERENCE_PRECISION_HINT"),
            "performance_hint": prop("PERFORMANCE_HINT"),
            "threads": prop("INFERENCE_NUM_THREADS"),
            "streams": prop("NUM_STREAMS"),
            "layer_precisions": self._layer_precisions(),
        }

    def _layer_precisions(self) -> dict[str, int]:
        """How many compute layers of the compiled graph run in each precision ('u8': 3, 'f32': 2): proof that a
        Q/DQ graph runs as INT8 and a BF16 one as BF16."""
        counts: dict[str, int] = {}
        try:
            ops = self.compiled.get_runtime_model().get_ordered_ops()
            for op in ops:
                info = op.get_rt_info()
                if info["layerType"].astype(str) in _COMPUTE_LAYERS:
                    precision = info["runtimePrecision"].astype(str)
                    counts[precision] = counts.get(precision, 0) + 1
        except Exception:  # the runtime model is a diagnostic: never fail a run over it
            return {}
        return dict(sorted(counts.items()))

    def __exit__(self, *exc: object) -> None:
        self.request = None
        self.compiled = None

    def io_spec(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        def spec(port: Any) -> TensorSpec:
            shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            dtype = _OV_TYPES.get(port.get_element_type().get_type_name(), "float32")
            return TensorSpec(_input_name(port, self.path), dtype, shape)

        outputs = [spec(p) for p in self.compiled.outputs]
        outputs = [TensorSpec(n, o.dtype, o.shape) for n, o in zip(self.output_names, outputs, strict=True)]
        return [spec(p) for p in self.compiled.inputs], outputs

    def _checked(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return check_feeds(feeds, self.io_spec()[0], self.path.name)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        checked = self._checked(feeds)
        try:
            self.request.infer(checked)
        except Exception as exc:
            raise explain_openvino_error(exc, self.path, "running") from exc
        return {
            name: np.array(self.request.get_tensor(port).data, copy=True)
            for name, port in zip(self.output_names, self.compiled.outputs, strict=True)
        }

    def time_infer(self, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> list[float]:
        checked = self._checked(feeds)
        return time_loop(lambda: self.request.infer(checked), lambda: None, iters, warmup)


def _port_name(port: Any, onnx_name: str | None) -> str:
    """The ONNX graph's name for an output port (OpenVINO keeps the graph's output order, but its
    `get_any_name()` may be another name of the same tensor)."""
    return onnx_name or port.get_any_name()


def _input_name(port: Any, path: Path) -> str:
    """The ONNX graph's name for a port: OpenVINO folds an input Cast (FP16 graphs with FP32 I/O) into the
    Parameter, whose `get_any_name()` may then be the Cast's output name."""
    names = port.get_names()
    graph_inputs = _graph_inputs(str(path), path.stat().st_mtime_ns)
    return next((n for n in graph_inputs if n in names), port.get_any_name())


@functools.cache
def _graph_inputs(path: str, mtime_ns: int) -> tuple[str, ...]:  # the time: a rewritten file is read again
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return tuple(i.name for i in graph.input if i.name not in initializers)
