"""The one place where frames become model inputs: shared by training and the tick so they cannot drift.

numpy + OpenCV only. Every model sees `normalise(uint8 RGB HxWx3)` of a square resize:
- presence: the bassinet crop, PRESENCE_SIZE square, colour (night frames are already gray);
- face: the bassinet crop letterboxed (aspect kept, grey padding) into a FACE_SIZE square; the model gives dense
  maps on a FACE_STRIDE grid (face-centre heat map, centre offset, box size, both eye centres) that
  `decode_face` turns into one face box and its two eyes in frame pixels;
- eyes: one eye at a time. Inside a face box the two eye regions sit at fixed face geometry
  (EYE_CENTRES, EYE_SIDE: measured on the sample camera's renders and matching the usual
  brow-to-chin face box of real photos); each region (or a whole single-eye image) becomes an
  EYE_SIZE square, grayscale replicated to 3 channels so day and infrared share one path, with a
  2nd-98th percentile contrast stretch so a dim infrared crop and a bright webcam crop look alike.
  Where the face stage gives the eye centres, each eye is cut where it is and turned upright along the line
  between the eyes (`upright_eye`): a baby lies at any angle, and an eye on its side looks like neither class.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESENCE_SIZE = 96
FACE_SIZE = 192
FACE_STRIDE = 16
FACE_PAD = 128  # grey of the letterbox bands
# Face target / decoded face, in letterboxed input pixels: found (0/1), centre, size, the infant's own left and
# right eye centres, and whether the eyes are known (adult-face boxes and human corrections carry no eyes).
FACE_TARGET = ("found", "cx", "cy", "w", "h", "left_x", "left_y", "right_x", "right_y", "eyes_known")
# Dense face maps (channels): heat-map logit, centre offset within the cell (x, y, in cells), log of the box size
# over the input size (w, h), eye offsets from the centre in box widths (left x, y, right x, y).
FACE_MAPS = ("heat", "off_x", "off_y", "log_w", "log_h", "left_dx", "left_dy", "right_dx", "right_dy")
# An eye crop cut at an eye centre: its side is EYE_SIDE_IOD x the distance between the eyes (an adult MRL crop
# holds the eye in about 3/4 of its width, and an eye is about half the inter-ocular distance wide), and never
# below EYE_SIDE_MIN_FACE x the face box's side (a face seen from the side has its eyes close together).
EYE_SIDE_IOD = 0.7
EYE_SIDE_MIN_FACE = 0.16
EYE_SIZE = 64
# Eye centres as fractions of the face box (x, y), left then right in the image, and the side of the
# square eye region as a fraction of the face box width. See train/datasets.py (sample_face_box).
EYE_CENTRES = ((0.28, 0.43), (0.72, 0.43))
EYE_SIDE = 0.38
# The eye-point stage (models/cascade.py): a square of POINTS_SPAN face sides around the face box's centre, as a
# POINTS_SIZE RGB input; the network gives one heat map per point of POINTS on a POINTS_STRIDE grid, read by their
# soft-argmax (`decode_points`). 1.3 face sides keep both eyes inside while the face box's centre is off by up to 0.4
# of its side. Measured on the validation groups: 96 px of 1.6 face sides put a real infant's eyes ~1.5 grid cells
# apart, and after 4 epochs had both eyes within a quarter eye distance on syrip 0.10 / baby_photos 0.18 of the
# inputs, against 0.31 / 0.43 with 128 px of 1.3 sides.
POINTS_SIZE = 128
POINTS_STRIDE = 8
POINTS_SPAN = 1.3
POINTS = ("left_eye", "right_eye", "nose")  # the infant's own left and right eye
# Each network's square input side. A manifest records the side each network was trained at; the cascade refuses a
# presence, eye or eye-finder network made for another side than this code cuts (ONNX Runtime would fail every
# tick) and runs the face network at the side its manifest names.
INPUT_SIZES = {"presence": PRESENCE_SIZE, "face": FACE_SIZE, "eyes": EYE_SIZE, "points": POINTS_SIZE}
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


class Letterbox:
    """A crop placed, aspect kept, in the middle of a size x size square: frame <-> input pixel mapping."""

    def __init__(self, crop: tuple[int, int, int, int], size: int):
        x1, y1, x2, y2 = crop
        self.crop, self.size = crop, size
        self.scale = size / max(x2 - x1, y2 - y1)
        self.ox = (size - (x2 - x1) * self.scale) / 2 - x1 * self.scale
        self.oy = (size - (y2 - y1) * self.scale) / 2 - y1 * self.scale

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        return (x * self.scale + self.ox, y * self.scale + self.oy)

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.ox) / self.scale, (y - self.oy) / self.scale)


def letterbox(frame_bgr: np.ndarray, crop: tuple[int, int, int, int] | None, size: int) -> tuple[np.ndarray, Letterbox]:
    """The crop, aspect kept, centred in a grey size x size square (RGB uint8), and its mapping."""
    box = crop_box(frame_bgr, crop)
    lb = Letterbox(box, size)
    x1, y1, x2, y2 = box
    w, h = max(1, round((x2 - x1) * lb.scale)), max(1, round((y2 - y1) * lb.scale))
    region = cv2.resize(frame_bgr[y1:y2, x1:x2], (min(w, size), min(h, size)), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), FACE_PAD, np.uint8)
    top, left = (size - region.shape[0]) // 2, (size - region.shape[1]) // 2
    out[top : top + region.shape[0], left : left + region.shape[1]] = region
    lb.ox, lb.oy = left - x1 * lb.scale, top - y1 * lb.scale  # the rounding of the pasted region, exactly
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB), lb


def decode_face(maps: np.ndarray, size: int = FACE_SIZE) -> tuple[float, np.ndarray]:
    """Dense face maps (len(FACE_MAPS), H, W) -> (face probability, FACE_TARGET vector in input pixels) at the
    most confident cell."""
    heat = maps[0]
    iy, ix = np.unravel_index(int(np.argmax(heat)), heat.shape)
    stride = size / heat.shape[1]
    v = maps[:, iy, ix].astype(np.float64)
    cx, cy = (ix + 0.5 + v[1]) * stride, (iy + 0.5 + v[2]) * stride
    w, h = np.exp(np.clip(v[3:5], -6, 1)) * size
    eyes = (cx + v[5] * w, cy + v[6] * w, cx + v[7] * w, cy + v[8] * w)
    p = float(1.0 / (1.0 + np.exp(-float(v[0]))))
    return p, np.array([1.0, cx, cy, w, h, *eyes, 1.0])


def face_in_frame(target: np.ndarray, lb: Letterbox) -> tuple[Box, tuple[tuple[float, float], tuple[float, float]]]:
    """A FACE_TARGET vector (input pixels) -> (face box, (left eye, right eye)) in frame pixels."""
    _f, cx, cy, w, h, lx, ly, rx, ry = (float(v) for v in target[:9])
    a, b = lb.to_frame(cx - w / 2, cy - h / 2), lb.to_frame(cx + w / 2, cy + h / 2)
    return (a[0], a[1], b[0], b[1]), (lb.to_frame(lx, ly), lb.to_frame(rx, ry))


def eye_side(face_box: Box, eyes: tuple[tuple[float, float], tuple[float, float]]) -> float:
    (lx, ly), (rx, ry) = eyes
    face_side = max(face_box[2] - face_box[0], face_box[3] - face_box[1])
    return max(EYE_SIDE_IOD * float(np.hypot(lx - rx, ly - ry)), EYE_SIDE_MIN_FACE * face_side, 2.0)


def upright_eye(image: np.ndarray, eye: tuple[float, float], angle_deg: float, side: float) -> np.ndarray:
    """One eye cut at its centre and turned so that a line at angle_deg (image degrees, y down: the line from the
    infant's right eye to its left eye) is horizontal, i.e. the face reads upright; side x side frame pixels ->
    EYE_SIZE x EYE_SIZE x 3 uint8 gray with eye_gray's contrast stretch."""
    gray = to_gray(image)
    m = square_warp(eye, side, EYE_SIZE, angle_deg)
    interp = cv2.INTER_AREA if side > EYE_SIZE else cv2.INTER_LINEAR
    crop = cv2.warpAffine(gray, m, (EYE_SIZE, EYE_SIZE), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return eye_gray(crop)


def eye_pair(image: np.ndarray, face_box: Box, eyes: tuple[tuple[float, float], tuple[float, float]]) -> list:
    """Both eyes (left, right) cut upright at their centres (upright_eye), for the eye stage."""
    (lx, ly), (rx, ry) = eyes
    angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
    side = eye_side(face_box, eyes)
    return [upright_eye(image, e, angle, side) for e in eyes]


def square_warp(centre: tuple[float, float], side: float, size: int, angle_deg: float = 0.0) -> np.ndarray:
    """The 2x3 affine map from frame pixels to a size x size input: a square of `side` frame pixels about `centre`,
    turned by angle_deg (an eye turned upright; a face turned in training, never by the tick)."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle_deg), size / max(side, 1e-3))
    m[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    return m


def warp_rgb(frame_bgr: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The frame through the affine map m into a size x size RGB uint8 image (grey outside the frame)."""
    interp = cv2.INTER_AREA if abs(float(np.linalg.det(m[:, :2]))) < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(
        frame_bgr, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(FACE_PAD,) * 3
    )
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def points_input(frame_bgr: np.ndarray, face_box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(POINTS_SIZE RGB uint8 input, its frame -> input map) for the eye-point stage: the face box's surroundings."""
    x1, y1, x2, y2 = face_box
    m = square_warp(((x1 + x2) / 2, (y1 + y2) / 2), POINTS_SPAN * max(x2 - x1, y2 - y1, 2.0), POINTS_SIZE)
    return warp_rgb(frame_bgr, m, POINTS_SIZE), m


def soft_argmax(maps: np.ndarray, stride: float = POINTS_STRIDE) -> np.ndarray:
    """(P, H, W) heat-map logits -> (P, 2) expected x, y in input pixels (cell centres, softmax weights)."""
    p, h, w = maps.shape
    z = maps.reshape(p, -1).astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    z = (z / z.sum(axis=1, keepdims=True)).reshape(p, h, w)
    xs, ys = (np.arange(w) + 0.5) * stride, (np.arange(h) + 0.5) * stride
    return np.stack([(z.sum(axis=1) * xs).sum(axis=1), (z.sum(axis=2) * ys).sum(axis=1)], axis=1)


def decode_points(maps: np.ndarray, m: np.ndarray) -> list[tuple[float, float]]:
    """Eye-point heat maps of one input -> each point of POINTS in frame pixels (m: points_input's map)."""
    inv = cv2.invertAffineTransform(m)
    xy = soft_argmax(maps)
    return [(float(inv[0] @ (x, y, 1.0)), float(inv[1] @ (x, y, 1.0))) for x, y in xy]


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
