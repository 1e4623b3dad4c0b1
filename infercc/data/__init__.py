"""Input feeds: seeded synthetic data from shape specs, .npy/.npz folders, images and callables.

Each format module registers itself in data.base.FORMATS when imported; importing them here makes every
format known whichever data module is used first.
"""

from infercc.data import callable as callable_data
from infercc.data import images, npy, synthetic

__all__ = ["callable_data", "images", "npy", "synthetic"]
