"""Face-stage examples: a crop letterboxed as the tick does (models/preprocess.letterbox), optionally turned, with its
FACE_TARGET vector (found, centre, size, both eyes, eyes known) in the model's input pixels.

Babies lie at any angle, and the old face stage failed most on faces that were not upright, so training turns whole
crops (the face, its eyes and the background together) by any angle; the box of a turned face is the box of the
ellipse inscribed in the face box, turned (a turned square face does not fill the corners of its new bounding box).
Training only; numpy + OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models import preprocess as pp

Point = tuple[float, float]
NO_FACE = np.zeros(len(pp.FACE_TARGET), np.float32)


def target(lb: pp.Letterbox, box: pp.Box | None, eyes: tuple[Point, Point] | None) -> np.ndarray:
    """FACE_TARGET in input pixels for a face box and its (left, right) eyes in frame pixels (eyes may be None)."""
    if box is None:
        return NO_FACE.copy()
    (x1, y1), (x2, y2) = lb.to_input(box[0], box[1]), lb.to_input(box[2], box[3])
    y = [1.0, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0, 0.0, 0.0, 0.0, 0.0]
    if eyes is not None:
        (lx, ly), (rx, ry) = lb.to_input(*eyes[0]), lb.to_input(*eyes[1])
        y[5:10] = [lx, ly, rx, ry, 1.0]
    return np.asarray(y, np.float32)


def rotate(x_rgb: np.ndarray, y: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn an input image and its target about the image centre (grey fill, like the letterbox bands)."""
    if abs(angle_deg) < 1e-6:
        return x_rgb, y
    size = x_rgb.shape[0]
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle_deg, 1.0)
    out = cv2.warpAffine(
        x_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(pp.FACE_PAD,) * 3
    )
    y = y.copy()
    if y[0] < 0.5:
        return out, y

    def turn(px: float, py: float) -> tuple[float, float]:
        v = m @ np.array([px, py, 1.0])
        return float(v[0]), float(v[1])

    y[1:3] = turn(y[1], y[2])
    t = math.radians(angle_deg)
    a, b = y[3] / 2, y[4] / 2
    y[3] = 2 * math.sqrt((a * math.cos(t)) ** 2 + (b * math.sin(t)) ** 2)
    y[4] = 2 * math.sqrt((a * math.sin(t)) ** 2 + (b * math.cos(t)) ** 2)
    if y[9] > 0.5:
        y[5:7] = turn(y[5], y[6])
        y[7:9] = turn(y[7], y[8])
    return out, y


def example(
    img_bgr: np.ndarray,
    crop: tuple[int, int, int, int] | None,
    box: pp.Box | None,
    eyes: tuple[Point, Point] | None = None,
    angle_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(FACE_SIZE RGB uint8 input, FACE_TARGET) for a crop of a frame; the face must lie inside the crop. A turn
    that would carry the face's centre out of the input is not made."""
    x, lb = pp.letterbox(img_bgr, crop, pp.FACE_SIZE)
    y = target(lb, box, eyes)
    xr, yr = rotate(x, y, angle_deg)
    margin = 0.05 * pp.FACE_SIZE
    if yr[0] > 0.5 and not (margin <= yr[1] <= pp.FACE_SIZE - margin and margin <= yr[2] <= pp.FACE_SIZE - margin):
        return x, y
    return xr, yr


def training_angle(rng: np.random.Generator, any_angle: float = 0.5, small_sd: float = 12.0) -> float:
    """Any angle with probability any_angle (a baby lying across the bassinet), else a small tilt."""
    return float(rng.uniform(-180, 180)) if rng.random() < any_angle else float(rng.normal(0, small_sd))


def decoded_box(y: np.ndarray) -> pp.Box:
    """The face box (input pixels) of a FACE_TARGET or decoded vector."""
    return (y[1] - y[3] / 2, y[2] - y[4] / 2, y[1] + y[3] / 2, y[2] + y[4] / 2)
