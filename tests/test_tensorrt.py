"""TensorRT: real TensorRT-RTX engine builds (no GPU needed), readable errors, sidecars and inspection,
plus the flavour-independent logic around them (profiles, calibrator batching/cache, buffer planning)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from infercc.config import CalibrationMethod, Flavour, InputSpec
from infercc.errors import MissingRuntimeError, StageError, UsageError
from infercc.shapes import ShapeRange
from infercc.tensorrt import flavours
from infercc.tensorrt.calibrator import CalibrationCache, calibrator_base, make_calibrator, rebatch
from infercc.tensorrt.errors import build_failure
from infercc.tensorrt.profiles import choose_profile, fit_to_network, resolve_profiles

RTX = flavours.select_flavour(Flavour.tensorrt_rtx)
needs_rtx = pytest.mark.skipif(RTX is None, reason="TensorRT-RTX is not installed")

PROFILES = [
    {"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))},
    {"x": ((5, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8))},
]


# --- tiny ONNX models, made with onnx.helper (no torch) ---------------------------------------------


def make_cnn(path: Path, batch: str | int = "N", with_unique: bool = False) -> Path:
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [
        nh.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
        nh.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "b"),
        nh.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fw"),
        nh.from_array(rng.standard_normal(5).astype(np.float32), "fb"),
    ]
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        h.make_node("Relu", ["c"], ["r"], name="relu"),
        h.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        h.make_node("Flatten", ["p"], ["f"], name="flat"),
        h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc"),
    ]
    outputs = [h.make_tensor_value_info("y", T.FLOAT, [batch, 5])]
    if with_unique:
        nodes.append(h.make_node("Unique", ["y"], ["u"], name="uniq", sorted=1))
        outputs = [h.make_tensor_value_info("u", T.FLOAT, None)]
    graph = h.make_graph(
        nodes, "cnn", [h.make_tensor_value_info("x", T.FLOAT, [batch, 3, 8, 8])], outputs, inits
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def make_fp16(src: Path, dst: Path) -> Path:
    import onnx
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)
    return dst


def make_qdq(src: Path, dst: Path, quantize_bias: bool = False) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.it = iter([{"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.it, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": quantize_bias},
    )
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trt-models")
    fp32 = make_cnn(d / "cnn.onnx")
    found = {
        "fp32": fp32,
        "static": make_cnn(d / "cnn_static.onnx", batch=1),
        "fp16": make_fp16(fp32, d / "cnn.fp16.onnx"),
        "int8": make_qdq(fp32, d / "cnn.int8.trt.onnx"),
        "int8_qbias": make_qdq(fp32, d / "cnn.int8.qbias.onnx", quantize_bias=True),
        "unique": make_cnn(d / "unique.onnx", with_unique=True),
    }
    trunc = d / "trunc.onnx"
    trunc.write_bytes(fp32.read_bytes()[:200])
    found["trunc"] = trunc
    empty = d / "empty.onnx"
    empty.write_bytes(b"")
    found["empty"] = empty
    return found


def _request(**kw):  # type: ignore[no-untyped-def]
    from infercc.tensorrt.builder import BuildRequest

    return BuildRequest(**{"precision": "fp32", "profiles": PROFILES, **kw})


@pytest.fixture(scope="module")
def built(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Real TensorRT-RTX engines: fp32, fp16 and int8 Q/DQ, each with two dynamic-batch profiles."""
    if RTX is None:
        pytest.skip("TensorRT-RTX is not installed")
    from infercc.tensorrt.builder import build_engine

    d = tmp_path_factory.mktemp("trt-engines")
    return {
        p: build_engine(RTX, models[p], d / f"model.{p}.rtx.engine", _request(precision=p))
        for p in ("fp32", "fp16", "int8")
    }


# --- real builds -------------------------------------------------------------------------------------------


@needs_rtx
def test_builds_fp32_fp16_int8_engines_with_two_profiles(built: dict[str, object]) -> None:
    for precision, result in built.items():
        assert result.engine.is_file(), precision  # type: ignore[attr-defined]
        assert result.size == result.engine.stat().st_size > 100_000  # type: ignore[attr-defined]
        assert len(result.profiles) == 2  # type: ignore[attr-defined]
        assert result.header["version"] == RTX.version  # type: ignore[attr-defined, union-attr]
        assert result.header["declared_size"] == result.size  # type: ignore[attr-defined]
        assert result.header["targets"] == ["SM80", "SM86", "SM89", "SM120", "SM121"]  # type: ignore[attr-defined]
        assert result.network["inputs"][0]["shape"] == [-1, 3, 8, 8]  # type: ignore[attr-defined]
        assert result.seconds < 10  # type: ignore[attr-defined]
    dtypes = {p: {layer["precision"] for layer in r.network["layers"]} for p, r in built.items()}  # type: ignore[attr-defined]
    assert "HALF" in dtypes["fp16"] and "HALF" not in dtypes["fp32"]
    assert "INT8" in dtypes["int8"] and "INT8" not in dtypes["fp16"]
    assert any(layer["type"] == "DEQUANTIZE" for layer in built["int8"].network["layers"])  # type: ignore[attr-defined]


@needs_rtx
def test_engine_is_deterministic_and_one_profile_is_smaller(
    models: dict[str, Path], tmp_path: Path, built: dict[str, object]
) -> None:
    from infercc.tensorrt.builder import build_engine

    one = build_engine(RTX, models["fp32"], tmp_path / "one.engine", _request(profiles=PROFILES[:1]))  # type: ignore[arg-type]
    assert one.size < built["fp32"].size  # type: ignore[attr-defined]
    again = build_engine(RTX, models["fp32"], tmp_path / "again.engine", _request())  # type: ignore[arg-type]
    assert again.sha256 == built["fp32"].sha256  # type: ignore[attr-defined]


@needs_rtx
def test_static_model_needs_no_profile_and_compute_capability_targets(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from infercc.tensorrt.builder import build_engine

    static = [{"x": ((1, 3, 8, 8),) * 3}]
    result = build_engine(
        RTX,
        models["static"],
        tmp_path / "s.engine",  # type: ignore[arg-type]
        _request(profiles=static, compute_capabilities=["SM86", "SM120"]),
    )
    assert result.profiles == []
    assert result.header["targets"] == ["SM86", "SM120"]
    assert result.targets["compute_capabilities"] == ["SM86", "SM120"]


@needs_rtx
def test_timing_cache_is_said_to_be_ignored_by_rtx(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    cache = tmp_path / "timing.cache"
    result = build_engine(
        RTX,
        models["static"],
        tmp_path / "t.engine",  # type: ignore[arg-type]
        _request(profiles=[], timing_cache=cache),
    )
    assert result.timing_cache == {"used": False, "file": str(cache), "ignored": True}
    assert any("ignores the timing cache" in n for n in result.notes)
    assert not cache.exists()


# --- readable errors from real parser/builder runs ------------------------------------------------------


@needs_rtx
def test_unsupported_op_names_node_op_and_inputs(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(StageError) as exc:
        build_engine(RTX, models["unique"], tmp_path / "u.engine", _request())  # type: ignore[arg-type]
    msg = exc.value.message
    assert "node 'uniq' (Unique, inputs y)" in msg and "not supported" in msg
    assert "Replace or remove the Unique op" in (exc.value.hint or "")
    assert not (tmp_path / "u.engine").exists()


@needs_rtx
def test_int32_bias_dequantize_hint(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(StageError) as exc:
        build_engine(RTX, models["int8_qbias"], tmp_path / "q.engine", _request(precision="int8"))  # type: ignore[arg-type]
    assert "(DequantizeLinear, inputs b_quantized" in exc.value.message
    assert "Int32" in exc.value.message and "cudaError" not in exc.value.message
    assert "QuantizeBias=False" in (exc.value.hint or "")


@needs_rtx
def test_dynamic_dim_without_profile(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(UsageError) as exc:
        build_engine(RTX, models["fp32"], tmp_path / "d.engine", _request(profiles=[]))  # type: ignore[arg-type]
    assert "Input x has a dynamic dimension and no optimization profile" in exc.value.message
    assert "--min-shape x:" in (exc.value.hint or "")


@needs_rtx
def test_profile_changing_a_fixed_dim(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    bad = [{"x": ((1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 16, 16))}]
    with pytest.raises(UsageError, match=r"dimension 2 is fixed at 8 in the ONNX graph \(\?x3x8x8\)"):
        build_engine(RTX, models["fp32"], tmp_path / "f.engine", _request(profiles=bad))  # type: ignore[arg-type]


@needs_rtx
@pytest.mark.parametrize(("name", "text"), [("trunc", "not a readable ONNX file"), ("empty", "no outputs")])
def test_broken_onnx_files(models: dict[str, Path], tmp_path: Path, name: str, text: str) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(UsageError, match=text):
        build_engine(RTX, models[name], tmp_path / "b.engine", _request())  # type: ignore[arg-type]


@needs_rtx
def test_turing_target_rejects_fp32_gemm_with_hint(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(UsageError) as exc:
        build_engine(RTX, models["fp32"], tmp_path / "t.engine", _request(compute_capabilities=["SM75"]))  # type: ignore[arg-type]
    assert "FP32 GEMM is not supported" in exc.value.message and "Turing" in (exc.value.hint or "")


@needs_rtx
def test_current_target_without_gpu(models: dict[str, Path], tmp_path: Path) -> None:
    from infercc.tensorrt.builder import build_engine

    with pytest.raises(UsageError) as exc:
        build_engine(
            RTX,
            models["static"],
            tmp_path / "c.engine",
            _request(profiles=[], compute_capabilities=["CURRENT"]),
        )  # type: ignore[arg-type]
    assert "needs a visible GPU" in (exc.value.hint or "")


@needs_rtx
@pytest.mark.parametrize(
    ("kw", "text", "hint"),
    [
        ({"builder_fp16": True}, "no FP16 builder flag", "model.fp16.onnx"),
        ({"calibration": "x"}, "no implicit INT8 calibration", "int8-trt (model.int8.trt.onnx)"),
        ({"version_compatible": True}, "cannot build version-compatible", "version_compatible false"),
    ],
)
def test_requests_rtx_cannot_honour(kw: dict[str, object], text: str, hint: str) -> None:
    from infercc.tensorrt.builder import Calibration, check_request

    if "calibration" in kw:
        kw = {"calibration": Calibration(None)}
    with pytest.raises(UsageError) as exc:
        check_request(RTX, _request(**kw))  # type: ignore[arg-type]
    assert text in exc.value.message and hint in (exc.value.hint or "")


def test_builder_log_messages_map_to_hints() -> None:
    no_profile = (
        "IBuilder::buildSerializedNetwork: Error Code 4: API Usage Error (Network has dynamic or shape "
        "inputs, but no optimization profile has been defined. In validate at "
        "/_src/optimizer/api/network.cpp:4023)"
    )
    err = build_failure([no_profile], Path("m.onnx"), "TensorRT-RTX 1.7")
    assert isinstance(err, UsageError)
    assert err.message.endswith(
        "Network has dynamic or shape inputs, but no optimization profile has been defined."
    )
    assert "--min-shape" in (err.hint or "")
    other = build_failure(["something odd"], Path("m.onnx"), "X")
    assert isinstance(other, StageError) and "something odd" in other.message


# --- sidecar, inspect, runtime checks ----------------------------------------------------------------------


def _engine_with_sidecar(result: object, folder: Path, precision: str) -> Path:
    from infercc.fsutil import atomic_write_json
    from infercc.tensorrt.profiles import profiles_to_json
    from infercc.tensorrt.sidecar import SCHEMA

    engine = folder / f"model.{precision}.rtx.engine"
    shutil.copyfile(result.engine, engine)  # type: ignore[attr-defined]
    atomic_write_json(
        engine.with_suffix(".json"),
        {
            "schema": SCHEMA,
            "engine": engine.name,
            "engine_bytes": result.size,
            "engine_sha256": result.sha256,  # type: ignore[attr-defined]
            "precision": precision,
            "flavour": {
                "module": RTX.module,
                "family": "rtx",
                "version": RTX.version,  # type: ignore[union-attr]
                "label": RTX.label,
            },  # type: ignore[union-attr]
            "targets": result.targets,
            "profiles": profiles_to_json(result.profiles),
            "network": result.network,  # type: ignore[attr-defined]
            "source": {"path": "model.onnx", "sha256": "0" * 64},
            "rebuild": "infercc build --force",
        },
    )
    return engine


@needs_rtx
def test_inspect_from_sidecar_and_json(built: dict[str, object], tmp_path: Path) -> None:
    from infercc.tensorrt.engine_info import inspect_engine

    engine = _engine_with_sidecar(built["int8"], tmp_path, "int8")
    info = inspect_engine(engine)
    assert info["listing_source"].startswith("sidecar")
    assert [t["name"] for t in info["inputs"]] == ["x"] and info["outputs"][0]["name"] == "y"
    assert info["profiles_text"] == ["x 1x3x8x8..2x3x8x8..4x3x8x8", "x 5x3x8x8..8x3x8x8..16x3x8x8"]
    assert any(layer["precision"] == "INT8" for layer in info["layers"])
    assert info["loadable_here"] is True or "GPU" in str(info["problem"])


@needs_rtx
def test_inspect_cli_and_errors(
    built: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infercc.cli import main

    engine = _engine_with_sidecar(built["fp16"], tmp_path, "fp16")
    with pytest.raises(SystemExit) as code:
        main(["inspect", str(engine), "--json"])
    assert code.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "engine" and data["precision"] == "fp16" and len(data["profiles"]) == 2

    with pytest.raises(SystemExit) as code:
        main(["inspect", str(engine)])
    out = capsys.readouterr().out
    assert (
        code.value.code == 0
        and "profile 1: x 5x3x8x8..8x3x8x8..16x3x8x8" in out
        and "listing from: sidecar" in out
    )
    layer_count = len(data["layers"])
    assert f"{layer_count} layers: " in out and "(--layers lists them)" in out  # a summary, not the list
    assert data["layers"][-1]["name"][:40] not in out
    with pytest.raises(SystemExit) as code:
        main(["inspect", str(engine), "--layers"])
    listed = capsys.readouterr().out
    assert code.value.code == 0 and data["layers"][-1]["name"][:40] in listed

    truncated = tmp_path / "cut" / engine.name
    truncated.parent.mkdir()
    truncated.write_bytes(engine.read_bytes()[:5000])
    shutil.copyfile(engine.with_suffix(".json"), truncated.with_suffix(".json"))
    with pytest.raises(SystemExit) as code:
        main(["inspect", str(truncated)])
    assert code.value.code == 2 and "is truncated: 5,000 bytes" in capsys.readouterr().err

    engine.with_suffix(".json").unlink()
    with pytest.raises(SystemExit) as code:
        main(["inspect", str(engine)])
    assert code.value.code == 2 and "has no sidecar" in capsys.readouterr().err


@needs_rtx
def test_engine_from_another_version(built: dict[str, object], tmp_path: Path) -> None:
    from infercc.fsutil import sha256_file
    from infercc.tensorrt.engine_info import inspect_engine
    from infercc.tensorrt.runtime import TensorRTRuntime

    engine = _engine_with_sidecar(built["fp32"], tmp_path, "fp32")
    data = bytearray(engine.read_bytes())
    data[24:28] = bytes([1, 6, 0, 9])  # the plan header's version bytes
    engine.write_bytes(bytes(data))
    side = json.loads(engine.with_suffix(".json").read_text())
    side["flavour"]["version"], side["flavour"]["label"] = "1.6.0.9", "TensorRT-RTX 1.6.0.9"
    side["engine_sha256"] = sha256_file(engine)
    engine.with_suffix(".json").write_text(json.dumps(side))

    info = inspect_engine(engine)
    assert info["loadable_here"] is False and "built with TensorRT-RTX 1.6.0.9" in info["problem"]
    with pytest.raises(MissingRuntimeError) as exc, TensorRTRuntime(engine):
        pass
    assert "cannot run here: it was built with TensorRT-RTX 1.6.0.9" in exc.value.message
    assert exc.value.hint == "Rebuild it on this machine: infercc build --force"

    side["flavour"]["version"] = RTX.version  # type: ignore[union-attr]
    engine.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(UsageError, match="do not belong together"):
        inspect_engine(engine)


@needs_rtx
def test_runtime_status_and_load_without_gpu(built: dict[str, object], tmp_path: Path) -> None:
    from infercc.tensorrt.runtime import TensorRTRuntime, gpu_visible

    if gpu_visible():
        pytest.skip("a GPU is visible")
    status = TensorRTRuntime.status()
    assert (
        not status.available
        and "no NVIDIA GPU is visible" in status.reason
        and "building works" in status.reason
    )
    engine = _engine_with_sidecar(built["fp32"], tmp_path, "fp32")
    with pytest.raises(MissingRuntimeError, match="no CUDA GPU is visible"), TensorRTRuntime(engine):
        pass


def test_gpu_problem_messages() -> None:
    from infercc.tensorrt.sidecar import gpu_problem

    rtx = {"flavour": {"family": "rtx"}, "targets": {"compute_capabilities": ["SM86"]}}
    assert "H100 (compute capability 9.0) is not a TensorRT-RTX GPU" in gpu_problem(rtx, (9, 0), "H100")  # type: ignore[operator]
    assert "targets compute capability 8.6; RTX 4090 is 8.9" in gpu_problem(rtx, (8, 9), "RTX 4090")  # type: ignore[operator]
    assert gpu_problem(rtx, (8, 6), "A10") is None
    trt10 = {"flavour": {"family": "trt10"}, "targets": {"gpu": "A100", "gpu_compute_capability": "8.0"}}
    assert "built for A100" in gpu_problem(trt10, (9, 0), "H100")  # type: ignore[operator]


# --- flavour detection and the capability table ----------------------------------------------------------


def test_flavour_families_and_targets() -> None:
    assert flavours.family_of("tensorrt", "10.13.3.9") == "trt10"
    assert flavours.family_of("tensorrt", "11.0.0") == "trt11"
    assert flavours.family_of("tensorrt", "8.6.1") is None
    assert flavours.family_of("tensorrt_rtx_bindings", "1.7.1.116") == "rtx"
    caps = flavours.CAPABILITIES
    assert caps["trt10"].implicit_int8 and not caps["trt11"].implicit_int8 and not caps["rtx"].implicit_int8
    assert (
        caps["rtx"].compute_capabilities
        and not caps["rtx"].timing_cache
        and not caps["rtx"].needs_gpu_to_build
    )
    assert [flavours.normalize_target(v) for v in ("8.6", "sm_120", "SM89", "121", "current")] == [
        "SM86",
        "SM120",
        "SM89",
        "SM121",
        "CURRENT",
    ]
    with pytest.raises(UsageError, match=r"cannot target compute capability 9\.0"):
        flavours.normalize_target("9.0")
    with pytest.raises(UsageError, match="not a version"):
        flavours.normalize_target("ampere")
    if RTX is not None:
        found = {f["module"]: f for f in flavours.detect_flavours()}
        assert (
            found[RTX.module]["family"] == "rtx" and found[RTX.module]["capabilities"]["compute_capabilities"]
        )
        assert flavours.select_flavour(Flavour.auto) is not None


# --- profiles --------------------------------------------------------------------------------------------


def test_resolve_profiles_from_ranges_and_config() -> None:
    ranges = {"x": ShapeRange((1, 3), (2, 3), (4, 3)), "k": ShapeRange.static((1, 8))}
    extra = [{"x": InputSpec(min=[5, 3], opt=[8, 3], max=[16, 3])}]
    profiles = resolve_profiles(["x", "k"], ranges, extra)
    assert profiles[1] == {"x": ((5, 3), (8, 3), (16, 3)), "k": ((1, 8),) * 3}
    with pytest.raises(UsageError, match=r"build.profiles\[0\] does not give dynamic input x"):
        resolve_profiles(["x", "k"], ranges, [{"k": InputSpec(shape=[1, 8])}])
    with pytest.raises(UsageError, match="names z, which the model does not take"):
        resolve_profiles(["x", "k"], ranges, [{"z": InputSpec(shape=[1])}])


def test_fit_to_network() -> None:
    profiles = resolve_profiles(
        ["x", "k"], {"x": ShapeRange((1, 3), (2, 3), (4, 3)), "k": ShapeRange.static((1, 8))}, []
    )
    assert fit_to_network(profiles, {"x": [-1, 3], "k": [1, 8]}) == [{"x": ((1, 3), (2, 3), (4, 3))}]
    static = resolve_profiles(["k"], {"k": ShapeRange.static((1, 8))}, [])
    assert fit_to_network(static, {"k": [1, 8]}) == []  # a static network needs no profile
    with pytest.raises(UsageError, match=r"input x dimension 0 is fixed at 4 in the ONNX graph \(4x3\)"):
        fit_to_network(profiles, {"x": [4, 3], "k": [1, 8]})
    with pytest.raises(UsageError, match="rank 3 in the ONNX graph"):
        fit_to_network(profiles, {"x": [-1, 3, 1], "k": [1, 8]})


def test_choose_profile() -> None:
    assert choose_profile(PROFILES, {"x": (3, 3, 8, 8)}) == 0
    assert choose_profile(PROFILES, {"x": (9, 3, 8, 8)}) == 1
    assert choose_profile([], {"x": (9, 3, 8, 8)}) == 0
    with pytest.raises(UsageError, match=r"accepts x:32x3x8x8 \(profile 0: x 1x3x8x8..4x3x8x8; profile 1"):
        choose_profile(PROFILES, {"x": (32, 3, 8, 8)})


# --- buffer planning ---------------------------------------------------------------------------------------


def test_buffer_pool_reuses_and_grows() -> None:
    from infercc.tensorrt.runtime import BufferPool

    allocs: list[int] = []

    def allocate(numel: int, dtype: str) -> np.ndarray:
        allocs.append(numel)
        return np.zeros(numel, dtype=dtype)

    pool = BufferPool(allocate, lambda flat, n, shape: flat[:n].reshape(shape))
    a = pool.get("x", (4, 3), "float32")
    gen = pool.generation
    b = pool.get("x", (2, 3), "float32")  # smaller: same storage, no new allocation
    assert b.shape == (2, 3) and np.shares_memory(a, b) and pool.generation == gen and allocs == [12]
    pool.get("x", (8, 3), "float32")  # bigger: reallocated, graphs must be recaptured
    assert allocs == [12, 24] and pool.generation == gen + 1
    pool.get("x", (8, 3), "float16")
    assert allocs == [12, 24, 24] and pool.get("s", (), "float32").shape == ()


# --- calibrator batching and cache -------------------------------------------------------------------------


def test_rebatch_to_calibration_shape() -> None:
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)} for _ in range(9)]
    samples.append({"x": rng.standard_normal((3, 4, 4)).astype(np.float32)})  # one row without batch axis
    result = rebatch(samples, {"x": (4, 3, 4, 4)})
    assert len(result.batches) == 2 and result.samples_used == 8 and result.samples_dropped == 2
    assert np.array_equal(result.batches[1]["x"][0], samples[4]["x"][0])
    assert result.batches[0]["x"].flags["C_CONTIGUOUS"]
    assert len(rebatch(samples, {"x": (2, 3, 4, 4)}, limit=3).batches) == 3
    with pytest.raises(UsageError, match="does not fit the calibration shape 4x3x4x4"):
        rebatch([{"x": np.zeros((1, 3, 5, 5))}], {"x": (4, 3, 4, 4)})
    with pytest.raises(UsageError, match="lacks input x"):
        rebatch([{"y": np.zeros((1, 3, 4, 4))}], {"x": (4, 3, 4, 4)})
    with pytest.raises(UsageError, match="Not enough calibration data for one batch of 4"):
        rebatch(samples[:2], {"x": (4, 3, 4, 4)})


def test_calibrator_protocol_and_cache_file(tmp_path: Path) -> None:
    import torch

    class Base:  # stands in for trt.IInt8MinMaxCalibrator, whose __init__ must be called
        def __init__(self) -> None:
            self.base_init = True

    trt = SimpleNamespace(IInt8MinMaxCalibrator=Base, IInt8EntropyCalibrator2=type("E", (), {}))
    assert calibrator_base(trt, CalibrationMethod.entropy) is trt.IInt8EntropyCalibrator2
    with pytest.raises(UsageError, match="no percentile method"):
        calibrator_base(trt, CalibrationMethod.percentile)
    batches = rebatch([{"x": np.ones((2, 3), np.float32) * i} for i in range(4)], {"x": (2, 3)}).batches
    cache = CalibrationCache(tmp_path / "engines" / "model.int8.calib.cache")
    calib = make_calibrator(trt, CalibrationMethod.minmax, batches, cache, torch.from_numpy)
    assert calib.base_init and calib.get_batch_size() == 1
    ptrs = [calib.get_batch(["x"]) for _ in range(5)]
    assert all(isinstance(p, list) and len(p) == 1 for p in ptrs[:4]) and ptrs[4] is None
    assert calib.keep[0][0, 0].item() == 3.0
    assert calib.read_calibration_cache() is None
    calib.write_calibration_cache(memoryview(b"TRT-1001-MinMaxCalibration\nx: 3c010a14\n"))
    assert cache.path.read_bytes().startswith(b"TRT-1001") and cache.writes == 1
    assert calib.read_calibration_cache() == cache.path.read_bytes() and cache.read_hits == 1
