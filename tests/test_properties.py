"""Property-based tests: the shape/range parser, the config loader (valid configs round-trip, invalid ones
are exit 2 without a traceback) and the comparison metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infercc.config import CompileConfig, OutputKind, load_yaml, parse_config
from infercc.errors import UsageError
from infercc.metrics import compare
from infercc.shapes import MAX_ELEMENTS, ShapeRange, format_dims, parse_dims, parse_named_shapes


def _within_limits(shape: list[int]) -> list[int]:
    """Drop trailing dimensions until the element count is one a config accepts (even with max = shape + 8)."""
    while len(shape) > 1 and math.prod(d + 8 for d in shape) > MAX_ELEMENTS:
        shape = shape[:-1]
    return shape


dims = st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=6).map(_within_limits)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,15}", fullmatch=True)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- shapes -----------------------------------------------------------------------------------------


@given(dims)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI box generates slowly
def test_dims_round_trip_in_both_notations(shape: list[int]) -> None:
    assert parse_dims(format_dims(shape)) == tuple(shape)
    assert parse_dims("[" + ", ".join(map(str, shape)) + "]") == tuple(shape)
    assert parse_dims(f"  {format_dims(shape)} ") == tuple(shape)


@given(st.lists(st.integers(1, 2**31 - 1), min_size=1, max_size=40))
def test_shapes_beyond_the_limits_are_usage_errors_never_overflows(shape: list[int]) -> None:
    text = format_dims(shape)
    try:
        parsed = parse_dims(text)
    except UsageError as exc:
        assert "far too large" in exc.message or "elements" in exc.message or "dimensions" in exc.message
        assert len(text) > 400 or len(shape) > 32 or math.prod(shape) > MAX_ELEMENTS
        return
    assert parsed == tuple(shape) and math.prod(shape) <= MAX_ELEMENTS


@given(st.text(max_size=30))
def test_any_text_parses_to_positive_dims_or_a_usage_error(text: str) -> None:
    try:
        shape = parse_dims(text)
    except UsageError as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert all(isinstance(d, int) and d >= 1 for d in shape)


@given(st.dictionaries(names, dims, min_size=1, max_size=4), st.booleans())
def test_named_shapes_round_trip(shapes: dict[str, list[int]], one_flag: bool) -> None:
    specs = [f"{name}:{format_dims(shape)}" for name, shape in shapes.items()]
    values = [",".join(specs)] if one_flag else specs
    assert parse_named_shapes(values, "--shape") == {n: tuple(s) for n, s in shapes.items()}


@given(
    st.lists(st.tuples(st.integers(1, 64), st.integers(0, 64), st.integers(0, 64)), min_size=1, max_size=5)
)
def test_ordered_ranges_validate_and_contain_their_points(axes: list[tuple[int, int, int]]) -> None:
    lo = tuple(a for a, _, _ in axes)
    opt = tuple(a + b for a, b, _ in axes)
    hi = tuple(a + b + c for a, b, c in axes)
    shape_range = ShapeRange(lo, opt, hi)
    shape_range.validate("x")
    assert all(shape_range.contains(shape) for _, shape in shape_range.points())
    assert shape_range.is_dynamic == (lo != hi)
    if lo != hi:  # swapping min and max breaks the order and is refused
        with pytest.raises(UsageError, match="min <= opt <= max"):
            ShapeRange(hi, opt, lo).validate("x")


# --- config loader ----------------------------------------------------------------------------------


def _input_spec() -> st.SearchStrategy[dict]:
    def build(shape: list[int], extra: list[int], dtype: str, low: float, span: float) -> dict:
        spec = {"dtype": dtype, "low": low, "high": low + span}
        if extra:
            spec["min"] = format_dims(shape)
            spec["max"] = format_dims([d + e for d, e in zip(shape, extra + [0] * len(shape), strict=False)])
            spec["opt"] = spec["min"]
        else:
            spec["shape"] = format_dims(shape)
        return spec

    return st.builds(
        build,
        dims,
        st.lists(st.integers(0, 8), max_size=3),
        st.sampled_from(["float32", "float16", "int64", "int32"]),
        st.floats(-100, 100, allow_nan=False),
        st.floats(0.5, 100, allow_nan=False),
    )


valid_configs = st.fixed_dictionaries(
    {},
    optional={
        "model": st.fixed_dictionaries({"source": st.sampled_from(["m.onnx", "pkg.mod:make", "a/b.py:f"])}),
        "inputs": st.dictionaries(names, _input_spec(), max_size=3),
        "precisions": st.lists(
            st.sampled_from(["fp32", "fp16", "int8"]), min_size=1, max_size=3, unique=True
        ),
        "targets": st.lists(
            st.sampled_from(["onnxruntime", "tensorrt"]), min_size=1, max_size=2, unique=True
        ),
        "export": st.fixed_dictionaries(
            {},
            optional={
                "opset": st.integers(11, 23),
                "exporter": st.sampled_from(["auto", "dynamo", "torchscript"]),
            },
        ),
        "verify": st.fixed_dictionaries(
            {}, optional={"samples": st.integers(1, 16), "seed": st.integers(0, 2**31)}
        ),
        "lock_wait_s": st.floats(0, 1e4, allow_nan=False),
    },
)


@FAST
@given(data=valid_configs)
def test_valid_configs_round_trip_through_yaml(data: dict, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config = parse_config(load_yaml(path), str(path))
    dumped = config.model_dump(mode="json")
    path.write_text(yaml.safe_dump(dumped))
    again = parse_config(load_yaml(path), str(path))
    assert again == config
    assert again.model_dump(mode="json") == dumped


_SECTIONS = ["model", "inputs", "export", "verify", "quantize", "bench", "report", "build", "simplify"]


@st.composite
def invalid_configs(draw: st.DrawFn) -> tuple[dict, str]:
    """A valid config with one thing broken: an unknown key, a wrong type or an out-of-range value."""
    data = draw(valid_configs)
    kind = draw(
        st.sampled_from(["unknown_top", "unknown_nested", "wrong_type", "bad_enum", "bad_shape", "range"])
    )
    if kind == "unknown_top":
        data[draw(st.sampled_from(["precison", "targts", "inptus", "zzz"]))] = 1
    elif kind == "unknown_nested":
        data.setdefault(draw(st.sampled_from(_SECTIONS)), {})["no_such_key"] = draw(st.integers())
    elif kind == "wrong_type":
        data.setdefault("verify", {})["samples"] = draw(st.sampled_from(["many", [1], {"a": 1}, -3]))
    elif kind == "bad_enum":
        data["precisions"] = [draw(st.sampled_from(["fp64", "int4", "FP 16", ""]))]
    elif kind == "bad_shape":
        data["inputs"] = {"x": {"shape": draw(st.sampled_from(["1x0", "axb", "1x-3", "[1,2", "0"]))}}
    else:
        data.setdefault("export", {})["opset"] = draw(st.sampled_from([0, 5, 99, "new"]))
    return data, kind


@FAST
@given(case=invalid_configs())
def test_invalid_configs_exit_2_in_one_line_each_without_traceback(case, cli, tmp_path_factory) -> None:
    data, _ = case
    folder = tmp_path_factory.mktemp("bad")
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("compile", path, "--out", folder / "out")
    assert result.code == 2, result.text
    assert result.err.startswith("error: Invalid configuration:") and f"{path}:" in result.err
    assert "Traceback" not in result.text and "internal error" not in result.text
    assert not (folder / "out").exists()


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_any_yaml_text_loads_or_is_a_usage_error(text: str, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        data = load_yaml(path)
    except UsageError:
        return
    try:
        assert isinstance(parse_config(data), CompileConfig)
    except UsageError as exc:
        assert exc.message.startswith("Invalid configuration")


# --- metrics ------------------------------------------------------------------------------------------

arrays = st.integers(1, 64).flatmap(
    lambda n: st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=n, max_size=n)
)


@given(arrays)
def test_identity_has_zero_error_and_cosine_one(values: list[float]) -> None:
    a = np.asarray(values, dtype=np.float32)
    m = compare(a, a.copy())
    assert m.max_abs == 0 and m.mean_abs == 0 and m.max_rel == 0
    assert m.cosine == pytest.approx(1.0)
    assert m.passed
    two_d = np.asarray(values * 2, dtype=np.float32).reshape(2, -1)
    if two_d.shape[-1] >= 2:
        # declared: rows that happen to be unit-length would otherwise be judged an embedding (no top-k)
        assert compare(two_d, two_d.copy(), kind=OutputKind.classification).top1 == 1.0


@given(arrays, st.data())
def test_error_metrics_are_symmetric(values: list[float], data: st.DataObject) -> None:
    a = np.asarray(values, dtype=np.float32)
    noise = data.draw(
        st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=a.size, max_size=a.size)
    )
    b = a + np.asarray(noise, dtype=np.float32)
    ab, ba = compare(a, b), compare(b, a)
    assert ab.max_abs == ba.max_abs and ab.mean_abs == pytest.approx(ba.mean_abs)
    assert math.isclose(ab.cosine, ba.cosine, rel_tol=1e-9, abs_tol=1e-12)
    assert -1.0 <= ab.cosine <= 1.0


def test_shape_mismatch_is_a_failure_not_a_crash() -> None:
    m = compare(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not m.passed and "differs from reference" in m.failures[0]


@given(valid_configs)
@settings(max_examples=20, deadline=None)
def test_config_values_are_data_never_code(data: dict) -> None:
    """Strings that look like code stay strings."""
    data = {
        **data,
        "model": {"source": "__import__('os').system('echo PWNED')", "kwargs": {"x": "!!python/eval 1"}},
    }
    config = parse_config(data)
    assert config.model.kwargs == {"x": "!!python/eval 1"}
    assert Path(config.out) == Path("artifacts")
