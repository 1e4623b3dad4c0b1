"""Calibration/evaluation data sources: .npy/.npz folders, images, callables, synthetic; checks and splits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from infercc.config import DataSource, InputSpec
from infercc.data.base import ModelInputs
from infercc.data.sources import holdout_indices, resolve_datasets
from infercc.data.synthetic import SYNTHETIC_WARNING
from infercc.errors import UsageError
from infercc.shapes import ShapeRange

ONE = ModelInputs(["x"], {"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}, {"x": InputSpec()})
TWO = ModelInputs(
    ["image", "features"],
    {
        "image": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8)),
        "features": ShapeRange((1, 4), (1, 4), (4, 4)),
    },
    {"image": InputSpec(), "features": InputSpec()},
)
PREP = {"resize": 8, "crop": 8, "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0]}


def _npy_folder(path, count=5, shape=(2, 3, 8, 8), dtype=np.float32):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        np.save(path / f"b{i:02d}.npy", rng.standard_normal(shape).astype(dtype))
    return path


def _images(path, count=4, size=(12, 10)):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path / f"img{i}.png")
    Image.fromarray(rng.integers(0, 255, size[::-1], dtype=np.uint8)).save(path / "grey.jpg")  # grey -> RGB
    return path


def test_npy_folder_with_holdout(tmp_path):
    folder = _npy_folder(tmp_path / "calib")
    calib, evaluate = resolve_datasets(DataSource(folder=folder), None, ONE)
    assert [i.key for i in evaluate.items] == ["b04.npy"]  # 20% of 5 files held out
    assert [i.key for i in calib.items] == ["b00.npy", "b01.npy", "b02.npy", "b03.npy"]
    batches = list(calib.batches())
    assert len(batches) == 4 and batches[0]["x"].shape == (2, 3, 8, 8)
    assert calib.fingerprint != evaluate.fingerprint
    # the fingerprint follows the data: rewrite one file and it changes
    before = calib.fingerprint
    np.save(folder / "b01.npy", np.zeros((2, 3, 8, 8), np.float32))
    assert resolve_datasets(DataSource(folder=folder), None, ONE)[0].fingerprint != before


def test_npz_keyed_by_input_name_and_eval_source(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    for i in range(3):
        np.savez(
            folder / f"{i}.npz", image=np.ones((3, 3, 8, 8), np.float32), features=np.ones((3, 4), np.float32)
        )
    calib, evaluate = resolve_datasets(DataSource(folder=folder), DataSource(synthetic=True, samples=2), TWO)
    assert len(calib.items) == 3 and evaluate.kind == "synthetic"
    (batch,) = list(calib.batches())[:1]
    assert set(batch) == {"image", "features"} and batch["features"].shape == (3, 4)


def test_images_with_views_and_labels(tmp_path):
    folder = _images(tmp_path / "imgs")
    labels = tmp_path / "labels.txt"
    labels.write_text("3\n1\n4\n1\n5\n")  # one per file, sorted: grey.jpg img0..img3
    source = DataSource(images=folder, preprocess={**PREP, "views": 3}, labels=labels, holdout=0.4)
    calib, evaluate = resolve_datasets(source, None, ONE)
    assert len(calib.items) == 3 and len(evaluate.items) == 2
    rows = [(feed["x"], lab) for feed, lab in calib.labelled_batches()]
    xs = np.concatenate([r[0] for r in rows])
    assert xs.shape == (9, 3, 8, 8) and xs.dtype == np.float32  # 3 images x 3 views, batched up to 4
    assert xs.min() >= -1.0 and xs.max() <= 1.0
    assert [v for r in rows for v in r[1]][:3] == [3, 3, 3]  # grey.jpg's views carry its label
    assert not np.allclose(xs[0], xs[1])  # augmented views differ from the centre crop
    again = np.concatenate([f["x"] for f in resolve_datasets(source, None, ONE)[0].batches()])
    np.testing.assert_array_equal(xs, again)  # seeded


def test_images_bgr_nhwc_layout(tmp_path):
    folder = _images(tmp_path / "imgs", count=1)
    nhwc = ModelInputs(["x"], {"x": ShapeRange((1, 8, 8, 3), (1, 8, 8, 3), (1, 8, 8, 3))}, {"x": InputSpec()})
    source = DataSource(
        images=folder, preprocess={**PREP, "layout": "NHWC", "channel_order": "BGR"}, holdout=0
    )
    calib, _ = resolve_datasets(source, None, nhwc)
    assert next(calib.batches())["x"].shape == (1, 8, 8, 3)


def test_callable_source(tmp_path):
    module = tmp_path / "mydata.py"
    module.write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(10):\n"
        "        yield {'x': rng.standard_normal((2, 3, 8, 8)).astype(np.float32)}\n"
    )
    calib, evaluate = resolve_datasets(DataSource(callable=f"{module}:batches", samples=6), None, ONE)
    assert len(calib.items) == 5 and len(evaluate.items) == 1
    before = calib.fingerprint
    module.write_text(module.read_text().replace("range(10)", "range(12)"))
    assert (
        resolve_datasets(DataSource(callable=f"{module}:batches", samples=6), None, ONE)[0].fingerprint
        != before
    )


def test_synthetic_source_warns_and_uses_another_seed_for_evaluation():
    calib, evaluate = resolve_datasets(None, None, ONE)
    assert calib.kind == "synthetic" and SYNTHETIC_WARNING in calib.warnings
    a, b = next(calib.batches())["x"], next(evaluate.batches())["x"]
    assert a.shape == (1, 3, 8, 8) and not np.allclose(a, b)


def test_holdout_indices():
    assert holdout_indices(1, 0.2) == [] and holdout_indices(10, 0) == []
    assert holdout_indices(10, 0.2) == [4, 9]
    assert len(holdout_indices(3, 0.9)) == 2  # never everything


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((2, 3, 9, 8), np.float32, "dimension 2 is 9, outside the declared range 8..8"),
        ((2, 3, 8), np.float32, "rank 3"),
        ((6, 3, 8, 8), np.float32, "dimension 0 is 6, outside the declared range 1..4"),
        ((2, 3, 8, 8), np.float64, "input x is float64; the model takes float32"),
    ],
)
def test_bad_arrays_are_usage_errors(tmp_path, shape, dtype, message):
    folder = _npy_folder(tmp_path / "bad", count=1, shape=shape, dtype=dtype)
    calib, _ = resolve_datasets(DataSource(folder=folder), None, ONE)
    with pytest.raises(UsageError) as info:
        list(calib.batches())
    assert message in info.value.message and "b00.npy" in info.value.message


def test_wrong_input_name(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(folder / "a.npz", image=np.ones((1, 3, 8, 8), np.float32), extra=np.ones((1, 4), np.float32))
    calib, _ = resolve_datasets(DataSource(folder=folder), None, TWO)
    with pytest.raises(UsageError, match="unknown input extra; missing input features"):
        list(calib.batches())
    with pytest.raises(UsageError, match=r"a \.npy file holds one array"):
        resolve_datasets(DataSource(folder=_npy_folder(tmp_path / "n", count=1)), None, TWO)


def test_empty_folder_missing_folder_unreadable_image_and_no_preprocess(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"holds no \.npy/\.npz files"):
        resolve_datasets(DataSource(folder=tmp_path / "empty"), None, ONE)
    with pytest.raises(UsageError, match="does not exist"):
        resolve_datasets(DataSource(folder=tmp_path / "nope"), None, ONE)
    folder = _images(tmp_path / "imgs", count=1)
    (folder / "broken.png").write_bytes(b"not a png at all")
    calib, _ = resolve_datasets(DataSource(images=folder, preprocess=PREP, holdout=0), None, ONE)
    with pytest.raises(UsageError, match=r"Cannot read image .*broken\.png"):
        list(calib.batches())
    with pytest.raises(UsageError, match="need a declared preprocessing"):
        resolve_datasets(DataSource(images=folder), None, ONE)


def test_callable_errors(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def nothing():\n    return []\ndef notdict():\n    yield [1, 2]\n")
    with pytest.raises(UsageError, match="yielded no batches"):
        resolve_datasets(DataSource(callable=f"{module}:nothing"), None, ONE)
    calib, _ = resolve_datasets(DataSource(callable=f"{module}:notdict", holdout=0), None, ONE)
    with pytest.raises(UsageError, match="must be a dict of input name -> array, not list"):
        list(calib.batches())
    with pytest.raises(UsageError, match="has no callable missing"):
        resolve_datasets(DataSource(callable=f"{module}:missing"), None, ONE)
