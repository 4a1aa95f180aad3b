"""Is this an infrared night frame? IR cameras switch to grayscale, so colour saturation collapses.

JPEG compression leaves a little chroma noise on a grayscale frame, so the test is a small
mean channel spread rather than exact equality.
"""

from __future__ import annotations

import numpy as np

GRAYSCALE_SPREAD = 4.0


def is_infrared(image: np.ndarray) -> bool:
    """True when the mean spread between colour channels is below GRAYSCALE_SPREAD (0-255)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    small = image[::4, ::4].astype(np.int16)
    spread = np.abs(small[..., 0] - small[..., 1]) + np.abs(small[..., 1] - small[..., 2])
    return float(spread.mean()) < GRAYSCALE_SPREAD
