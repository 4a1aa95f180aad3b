"""How big a frame the tick agrees to decode, checked before any pixel is decoded.

A JPEG's header says how many pixels it holds; a one-bit corruption can make a 100 kB file claim 30000x30000, and
OpenCV then allocates 2.7 GB and spends 43 s decoding it (measured: 5.3 GB peak): an out-of-memory kill on a Pi, a
tick that never records its failure. A snapshot folder can also hold a multi-GB file (a video dropped by mistake,
a runaway upload) that `read_bytes` would pull into memory whole. Both are refused with a CaptureError naming the
file and the limit, so the failure counts towards the camera-down alert like any other frame the models never saw.

Pillow reads only the header (`Image.open` is lazy), which costs microseconds.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from capture.ffmpeg import CaptureError

# 8K video is 33 MP and the largest snapshot cameras sold for nurseries are 8-12 MP; 40 MP of BGR is 120 MB.
MAX_FRAME_PIXELS = 40_000_000
# A 40 MP JPEG at quality 95 is about 15 MB; PNG snapshots of that size compress to well under 50 MB.
MAX_FRAME_BYTES = 50 * 1024 * 1024


def check_file_size(path: Path, *, max_bytes: int = MAX_FRAME_BYTES) -> None:
    """Refuse a file too large to be one camera frame before reading it into memory."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror}") from exc
    if size > max_bytes:
        raise CaptureError(
            f"{path} is {size / 2**20:.0f} MB, more than a camera frame can be "
            f"(limit {max_bytes / 2**20:.0f} MB): not decoded"
        )


def check_header(
    data: bytes, what: str, *, max_pixels: int = MAX_FRAME_PIXELS, max_bytes: int = MAX_FRAME_BYTES
) -> None:
    """Refuse encoded image bytes whose size or header's pixel count is beyond one camera frame. A header Pillow
    cannot read is left to the decoder, which reports a corrupt frame in its own words."""
    if len(data) > max_bytes:
        raise CaptureError(f"{what} is {len(data) / 2**20:.0f} MB, more than a camera frame can be: not decoded")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        claimed = f"{width}x{height} pixels ({width * height / 1e6:.0f} MP"
    except Image.DecompressionBombError:  # Pillow refuses to even report a size this far beyond its own limit
        width, height = 2 * Image.MAX_IMAGE_PIXELS + 1, 1
        claimed = f"over {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} MP (Pillow's own limit"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return
    if width * height > max_pixels:
        raise CaptureError(
            f"{what} claims {claimed}, limit {max_pixels / 1e6:.0f} MP): a corrupt header or not a camera frame; "
            "not decoded"
        )
