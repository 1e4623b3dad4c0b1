"""Folder of images, turned into model inputs by a declared preprocessing (resize, centre crop, channel
order, layout, scale/mean/std), with optional seeded augmented views (random resized crops, flips, jitter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from infercc.config import ImagePreprocess
from infercc.data.base import (
    DataFormat,
    Feeds,
    Item,
    ModelInputs,
    file_fingerprint,
    list_files,
    register_format,
)
from infercc.errors import UsageError
from infercc.fsutil import sha256_bytes, sha256_json

if TYPE_CHECKING:
    from infercc.config import DataSource

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def image_folder(value: Path | str, role: str) -> Path:
    """The folder itself, or `module:fn` returning one (e.g. infercc.models.examples:sample_photos_dir)."""
    text = str(value)
    path = Path(text)
    if path.exists() or ":" not in text or text.endswith(".py"):
        return path
    from infercc.data.callable import resolve

    try:
        folder = resolve(text)()
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{role} images {text}: the function failed: {type(exc).__name__}: {exc}") from exc
    return Path(folder)


@register_format
class ImageFolder(DataFormat):
    """`images:` a folder of images (or module:fn naming one), preprocessed as declared, stacked into batches."""

    kind = "images"
    batched = True

    def items(self, source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
        return items(source, inputs, role)

    def paths(self, source: DataSource, role: str) -> list[Path]:
        return [image_folder(source.images or ".", role)]


def items(source: DataSource, inputs: ModelInputs, role: str) -> tuple[list[Item], str]:
    if len(inputs.names) != 1:
        raise UsageError(
            f"An images source feeds single-input models; this one takes {', '.join(inputs.names)}.",
            hint="Use a folder of .npz files keyed by input name, or a callable, for multi-input models.",
        )
    if source.preprocess is None:
        flag = "calibration" if role == "calibration" else "evaluation"
        raise UsageError(
            f"The {role} images need a declared preprocessing (resize, crop, mean/std, layout).",
            hint=f"Add `{flag}: preprocess: {{resize: 256, crop: 224, mean: [...], std: [...]}}` to the config, "
            f"or --set {flag}.preprocess.mean=[123.7,116.3,103.5].",
        )
    folder = image_folder(source.images or ".", role)
    prep = source.preprocess
    files = list_files(folder, SUFFIXES, source.include, "images", role)
    per_image = prep.views
    files = files[: max(1, -(-source.samples // per_image))]
    name = inputs.names[0]
    made = [
        Item(p.name, _loader(p, prep, name, source.seed, min(per_image, source.samples)), file_fingerprint(p))
        for p in files
    ]
    views = f", {per_image} views each" if per_image > 1 else ""
    return made, f"{len(made)} images in {folder}{views} ({_describe(prep)})"


def _describe(prep: ImagePreprocess) -> str:
    return (
        f"resize {prep.resize}, crop {prep.crop}, {prep.channel_order} {prep.layout}, x{prep.scale:g}, "
        f"mean {prep.mean}, std {prep.std}"
    )


def preprocess_fingerprint(prep: ImagePreprocess) -> str:
    return sha256_json(prep.model_dump(mode="json"))


def _loader(path: Path, prep: ImagePreprocess, name: str, seed: int, views: int) -> Callable[[], list[Feeds]]:
    return lambda: [{name: array} for array in load_views(path, prep, seed, views)]


def read_rgb(path: Path) -> Any:
    """A PIL RGB image; grey, palette, 16-bit and alpha images converted (alpha composited on white)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                hi = arr.max() if arr.max() > 0 else 1.0
                im = Image.fromarray((arr / hi * 255).clip(0, 255).astype(np.uint8))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
                alpha = rgba[..., 3:4] / 255.0
                return Image.fromarray((rgba[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8))
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UsageError(
            f"Cannot read image {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}.",
            hint="Remove the file or fix it; `include:` can select the files to use.",
        ) from None


def load_views(path: Path, prep: ImagePreprocess, seed: int, views: int) -> list[np.ndarray]:
    """The plain resize + centre-crop view, then views-1 seeded augmented ones; each (1, ...) float32."""
    from PIL import Image

    image = read_rgb(path)
    out = [_to_array(_centre(image, prep), prep)]
    rng = np.random.default_rng([seed, int(sha256_bytes(path.name.encode())[:8], 16)])
    for _ in range(views - 1):
        crop = _random_resized_crop(image, rng).resize((prep.crop, prep.crop), Image.BILINEAR)
        pixels = np.asarray(crop, dtype=np.float32)
        if rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        brightness, contrast, saturation = rng.uniform(0.9, 1.1, 3)
        grey = pixels.mean(-1, keepdims=True)
        pixels = grey + (pixels - grey) * saturation
        pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
        out.append(_normalise(np.clip(pixels * brightness, 0, 255), prep))
    return out


def _centre(image: Any, prep: ImagePreprocess) -> Any:
    from PIL import Image

    width, height = image.size
    ratio = prep.resize / min(width, height)
    resized = image.resize(
        (max(prep.crop, round(width * ratio)), max(prep.crop, round(height * ratio))), Image.BILINEAR
    )
    width, height = resized.size
    left, top = (width - prep.crop) // 2, (height - prep.crop) // 2
    return resized.crop((left, top, left + prep.crop, top + prep.crop))


def _random_resized_crop(image: Any, rng: np.random.Generator) -> Any:
    width, height = image.size
    for _ in range(10):
        area = rng.uniform(0.3, 1.0) * width * height
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = round(np.sqrt(area * ratio)), round(np.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            break
    else:
        w = h = min(width, height)
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return image.crop((x0, y0, x0 + w, y0 + h))


def _to_array(image: Any, prep: ImagePreprocess) -> np.ndarray:
    return _normalise(np.asarray(image, dtype=np.float32), prep)


def _normalise(pixels: np.ndarray, prep: ImagePreprocess) -> np.ndarray:
    """HWC RGB 0..255 -> scale, mean/std per channel, channel order, layout, batch axis."""
    if prep.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(prep.mean, dtype=np.float32)
    std = np.asarray(prep.std, dtype=np.float32)
    values = (pixels * np.float32(prep.scale) - mean) / std
    if prep.layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values[None].astype(np.float32))
