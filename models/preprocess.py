"""The one place where frames become model inputs: shared by training and the tick so they cannot drift.

numpy + OpenCV only. Every model sees `normalise(uint8 RGB HxWx3)` of a square resize:
- presence: the bassinet crop, PRESENCE_SIZE square, colour (night frames are already gray);
- face: the bassinet crop, FACE_SIZE square; the box is predicted normalised to the crop;
- eyes: the face box plus EYE_MARGIN on every side, EYE_SIZE square, grayscale replicated to 3
  channels so day and infrared frames share one path.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESENCE_SIZE = 96
FACE_SIZE = 128
EYE_SIZE = 80
EYE_MARGIN = 0.10
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


def eye_box(face_box: Box, frame_shape: tuple[int, ...], margin: float = EYE_MARGIN) -> tuple[int, int, int, int]:
    """The face box grown by margin on every side, as integer pixels clipped to the frame."""
    x1, y1, x2, y2 = face_box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return crop_box(
        np.empty(frame_shape[:2], np.uint8),
        (round(x1 - mx), round(y1 - my), round(x2 + mx), round(y2 + my)),
    )


def eye_gray(frame_bgr: np.ndarray, face_box: Box) -> np.ndarray:
    """The tight face crop as EYE_SIZE x EYE_SIZE grayscale replicated to 3 channels (uint8)."""
    x1, y1, x2, y2 = eye_box(face_box, frame_bgr.shape)
    gray = cv2.cvtColor(frame_bgr[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (EYE_SIZE, EYE_SIZE), interpolation=cv2.INTER_AREA)
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
