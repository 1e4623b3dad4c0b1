import pytest

from infercc.errors import UsageError
from infercc.shapes import ShapeRange, parse_dims, parse_named_shapes, split_specs


def test_trtexec_and_polygraphy_forms_parse_the_same():
    assert parse_dims("1x3x224x224") == (1, 3, 224, 224)
    assert parse_dims("[1, 3, 224, 224]") == (1, 3, 224, 224)
    assert parse_dims("[]") == ()


def test_named_shapes_repeated_and_comma_separated():
    shapes = parse_named_shapes(["a:1x3", "b:[2,8],c:4"], "--shape")
    assert shapes == {"a": (1, 3), "b": (2, 8), "c": (4,)}
    assert split_specs(["x:[1,2],y:3x4"]) == ["x:[1,2]", "y:3x4"]


def test_unnamed_shape_is_kept_for_single_input_models():
    assert parse_named_shapes(["1x3x32x32"], "--shape") == {None: (1, 3, 32, 32)}


@pytest.mark.parametrize("bad", ["1x3xfoo", "1x0x2", "x:", ":1x3", "1,2"])
def test_bad_dims_are_usage_errors(bad):
    with pytest.raises(UsageError):
        parse_named_shapes([bad], "--shape")


def test_duplicate_name_is_refused():
    with pytest.raises(UsageError, match="twice"):
        parse_named_shapes(["x:1x2", "x:1x3"], "--shape")


def test_shape_range_points_and_checks():
    r = ShapeRange((1, 4), (2, 16), (4, 64))
    assert r.is_dynamic and r.dynamic_axes == [0, 1]
    assert [label for label, _ in r.points()] == ["opt", "min", "max"]
    assert r.contains((3, 10)) and not r.contains((5, 10)) and not r.contains((3,))
    with pytest.raises(UsageError, match="min <= opt <= max"):
        ShapeRange((1, 8), (1, 4), (1, 16)).validate("x")
    with pytest.raises(UsageError, match="different ranks"):
        ShapeRange((1,), (1, 4), (1, 16)).validate("x")
