"""Has the bassinet changed since the last kept frame? If not, the tick skips the models.

The score is the largest change of any 16x16 block's mean brightness in the bassinet crop,
not the whole-frame mean: eyes opening move a few hundred pixels of a 640x360 frame, which a
global mean would average away, while per-pixel sensor noise averages out inside a block.
"""

from __future__ import annotations

import cv2
import numpy as np

BLOCK = 16


def crop_to(image: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """The bassinet region (clipped to the image), or the whole image when no crop is set."""
    if crop is None:
        return image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = crop
    x1, x2 = max(0, min(x1, w - 1)), max(1, min(x2, w))
    y1, y2 = max(0, min(y1, h - 1)), max(1, min(y2, h))
    return image[y1:y2, x1:x2]


# A crop that keeps less than this share of its area inside the frame is not the bassinet any more.
MIN_CROP_INSIDE = 0.5


class CropError(ValueError):
    """BASSINET_CROP does not fit the camera's frame: the models would look at the wrong place (or nothing)."""


def check_crop_fits(image: np.ndarray, crop: tuple[int, int, int, int] | None) -> None:
    """Raise CropError when the configured crop lies (mostly) outside the frame: a crop set for a 1920x1080 stream on a
    camera that switched to 640x360 would otherwise read "absent" on every tick, an empty bassinet that is really a
    monitor looking at nothing. Clipping a crop that overhangs the edge a little stays allowed."""
    if crop is None:
        return
    h, w = image.shape[:2]
    x1, y1, x2, y2 = crop
    area = max(0, x2 - x1) * max(0, y2 - y1)
    inside = max(0, min(x2, w) - max(x1, 0)) * max(0, min(y2, h) - max(y1, 0))
    if area == 0 or inside < MIN_CROP_INSIDE * area:
        raise CropError(
            f"BASSINET_CROP {x1},{y1},{x2},{y2} lies {'outside' if inside == 0 else 'mostly outside'} the camera's "
            f"{w}x{h} frame (did the camera switch to a smaller stream?): set it again from a frame of this stream"
        )


def _block_means(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = gray.shape
    bh, bw = max(1, h // BLOCK), max(1, w // BLOCK)
    return cv2.resize(gray.astype(np.float32), (bw, bh), interpolation=cv2.INTER_AREA)


def diff_score(reference: np.ndarray, current: np.ndarray, crop: tuple[int, int, int, int] | None) -> float:
    """Max absolute change of 16x16 block means (0-255). A resolution change counts as fully changed."""
    ref, cur = crop_to(reference, crop), crop_to(current, crop)
    if ref.shape[:2] != cur.shape[:2]:
        return 255.0
    return float(np.abs(_block_means(ref) - _block_means(cur)).max())
