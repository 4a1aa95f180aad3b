"""The one place where frames become model inputs: shared by training and the tick so they cannot drift.

numpy + OpenCV only. Every model sees `normalise(uint8 RGB HxWx3)` of a square resize:
- presence: the bassinet crop, PRESENCE_SIZE square, colour (night frames are already gray);
- face: the bassinet crop, FACE_SIZE square; the box is predicted normalised to the crop;
- eyes: one eye at a time. Inside a face box the two eye regions sit at fixed face geometry
  (EYE_CENTRES, EYE_SIDE: measured on the sample camera's renders and matching the usual
  brow-to-chin face box of real photos); each region (or a whole single-eye image) becomes an
  EYE_SIZE square, grayscale replicated to 3 channels so day and infrared share one path, with a
  2nd-98th percentile contrast stretch so a dim infrared crop and a bright webcam crop look alike.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESENCE_SIZE = 96
FACE_SIZE = 128
EYE_SIZE = 64
# Eye centres as fractions of the face box (x, y), left then right in the image, and the side of the
# square eye region as a fraction of the face box width. See train/datasets.py (sample_face_box).
EYE_CENTRES = ((0.28, 0.43), (0.72, 0.43))
EYE_SIDE = 0.38
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)

Box = tuple[float, float, float, float]


def crop_box(frame: np.ndarray, crop: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """The crop clipped to the frame (the whole frame when crop is None)."""
    h, w = frame.shape[:2]
    if crop is None:
        return (0, 0, w, h)
    x1, y1, x2, y2 = (int(v) for v in crop)
    x1, y1 = max(0, min(x1, w - 1)), max(0, min(y1, h - 1))
    return (x1, y1, max(x1 + 1, min(x2, w)), max(y1 + 1, min(y2, h)))


def square_rgb(frame_bgr: np.ndarray, crop: tuple[int, int, int, int] | None, size: int) -> np.ndarray:
    """The crop resized to size x size, RGB uint8."""
    x1, y1, x2, y2 = crop_box(frame_bgr, crop)
    region = cv2.resize(frame_bgr[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(region, cv2.COLOR_BGR2RGB)


def eye_regions(face_box: Box) -> list[Box]:
    """The two square eye regions (frame pixels, unclipped) inside a face box, by fixed face geometry."""
    x1, y1, x2, y2 = face_box
    w, h = x2 - x1, y2 - y1
    half = EYE_SIDE * w / 2
    return [(x1 + fx * w - half, y1 + fy * h - half, x1 + fx * w + half, y1 + fy * h + half) for fx, fy in EYE_CENTRES]


def to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def eye_gray(image: np.ndarray, region: Box | None = None) -> np.ndarray:
    """One eye: the region (frame pixels; None = the whole image) as EYE_SIZE x EYE_SIZE x 3 uint8.

    Regions that run off the image are padded with the edge pixels, so the eye stays centred.
    """
    gray = to_gray(image)
    if region is not None:
        h, w = gray.shape
        x1, y1, x2, y2 = (round(v) for v in region)
        pad = max(0, -x1, -y1, x2 - w, y2 - h)
        if pad:
            gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
        gray = gray[y1 : max(y1 + 1, y2), x1 : max(x1 + 1, x2)]
    gray = cv2.resize(gray, (EYE_SIZE, EYE_SIZE), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(gray, (2, 98))
    if hi - lo >= 8:
        gray = np.clip((gray.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def normalise(images_u8: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W), scaled to 0..1 then (x - MEAN) / STD."""
    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def box_to_frame(box01: np.ndarray, crop: tuple[int, int, int, int]) -> Box:
    """A box normalised 0..1 to the crop -> frame pixels."""
    x1, y1, x2, y2 = crop
    bx = np.clip(np.asarray(box01, np.float64), 0.0, 1.0)
    w, h = x2 - x1, y2 - y1
    return (x1 + bx[0] * w, y1 + bx[1] * h, x1 + bx[2] * w, y1 + bx[3] * h)


def box_to_crop01(box: Box, crop: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """A frame-pixel box -> normalised 0..1 to the crop (the face model's target)."""
    x1, y1, x2, y2 = crop
    w, h = x2 - x1, y2 - y1
    return ((box[0] - x1) / w, (box[1] - y1) / h, (box[2] - x1) / w, (box[3] - y1) / h)


def with_mirror(images_u8: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) eye crops -> (2N, H, W, 3): the crops, then their left-right mirror images.

    The eye model's P(open) is the mean over a crop and its mirror (`mean_over_mirror`): an eye is an
    eye either way round, and averaging the two views steadies the verdict on glare and half-open lids.
    Chosen on the validation people (macro F1 0.951 -> 0.959, every crop); costs one more 64 px inference
    per eye, in the same batch."""
    return np.concatenate([images_u8, images_u8[:, :, ::-1]])


def mean_over_mirror(p: np.ndarray) -> np.ndarray:
    """Per-crop mean of the scores of `with_mirror`'s two halves."""
    n = len(p) // 2
    return (p[:n] + p[n:]) / 2


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
