"""A model file that calls sys.exit(0) at import time (infercc must not exit 0 because of it)."""

import sys

sys.exit(0)


def make():  # pragma: no cover - never reached
    raise AssertionError
