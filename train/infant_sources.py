"""The real infant sources cut into the three stages' training, validation and test examples.

- syrip (syrip_real): presence positives = crops around the annotated body box with random margins; negatives =
  crops of the same rooms that touch no part of the baby (train/infant_data.background_crops); face = the
  keypoint-derived box with the eye keypoints, the crop turned by any angle in training; a baby whose eyes and nose
  are all unlabelled (face down, turned away) is a present baby without a face;
- baby (baby_photos): presence positives = the photo and crops of it that keep the face; face = the teacher boxes a
  person checked (train/teacher_infant.py);
- eyes of both: each eye whose open/closed state a person decided (train/infant_eyes.json), cut upright at its
  centre exactly as the tick cuts it (models/preprocess.upright_eye), jittered in training as the face stage's
  eye centres will be.
Validation and test use the evaluation crop (train/infant_data.baby_crop), unturned. Split by group throughout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models import preprocess as pp
from train import face_data as fd
from train import infant_data as idata

FACE_CROPS = {"train": 6, "val": 1, "test": 1}
PRESENCE_CROPS = {"train": 4, "val": 1, "test": 1}
BACKGROUND_CROPS = {"train": 4, "val": 2, "test": 2}
EYE_CROPS_PER_EYE = {"train": 4, "val": 1, "test": 1}
EYE_JITTER, EYE_SCALE, EYE_TILT_SD = 0.15, (0.8, 1.3), 12.0  # of the eye crop's side; scale range; degrees
EYE_LABELS = Path(__file__).resolve().parent / "infant_eyes.json"


def eye_labels(path: Path = EYE_LABELS) -> dict:
    """'<set>/<file>#k' -> {'left': 'open'|'closed'|'unsure', 'right': ...} decided by a person ({} if none yet)."""
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("labels", {})


def _rng(key: str, salt: int) -> np.random.Generator:
    return np.random.default_rng([salt, int.from_bytes(key.encode()[-12:], "little") % (1 << 31)])


def _random_margins(rng: np.random.Generator) -> tuple[float, float, float, float]:
    lo, hi = idata.TRAIN_MARGINS
    return tuple(float(v) for v in rng.uniform(lo, hi, 4))  # type: ignore[return-value]


def _face_inside(box: pp.Box, crop: tuple[int, int, int, int]) -> bool:
    return box[0] >= crop[0] and box[1] >= crop[1] and box[2] <= crop[2] and box[3] <= crop[3]


def add_eyes(img, face: idata.FaceTruth, labels: dict, split: str, key: str, parts, rng) -> None:
    """Each person-labelled eye of one face, cut upright at its centre (jittered in training)."""
    if face.left_eye is None or face.right_eye is None or not labels:
        return
    eyes = (face.left_eye, face.right_eye)
    angle = math.degrees(math.atan2(eyes[0][1] - eyes[1][1], eyes[0][0] - eyes[1][0]))
    side = pp.eye_side(face.box, eyes)
    for name, centre in zip(("left", "right"), eyes, strict=True):
        state = labels.get(name)
        if state not in ("open", "closed"):
            continue
        for _ in range(EYE_CROPS_PER_EYE[split]):
            c, s, a = centre, side, angle
            if split == "train":
                c = (
                    centre[0] + rng.uniform(-EYE_JITTER, EYE_JITTER) * side,
                    centre[1] + rng.uniform(-1, 1) * 0.1 * side,
                )
                s, a = side * rng.uniform(*EYE_SCALE), angle + rng.normal(0, EYE_TILT_SD)
            crop = pp.upright_eye(img, c, a, s)[:, :, 0]
            parts[split]["eyes"].add(crop, int(state == "open"), "infant", False, f"{key}|{name}")


def _photos(data: Path, rows: list[dict], salt: int, desc: str):
    """(row, key, split, its own seeded rng, the image) for each photo, in the file's order."""
    split = idata.split_of(rows)
    for row in tqdm(rows, desc=desc, leave=False):
        yield row, row["key"], split[row["key"]], _rng(row["key"], salt), cv2.imread(str(data / "images" / row["key"]))


def add_syrip(data: Path, parts: dict, with_eyes: bool = True) -> None:
    labels = eye_labels() if with_eyes else {}
    for row, key, s, rng, img in _photos(data, idata.syrip_rows(data), 31, "syrip"):
        h, w = img.shape[:2]
        body = idata.body_box(row)
        face = idata.syrip_face(row)
        faceless = all(not float(row[f"{k}_v"] or 0) for k in ("nose", "left_eye", "right_eye"))
        for j in range(PRESENCE_CROPS[s]):
            crop = idata.grow(body, _random_margins(rng), w, h) if s == "train" else idata.baby_crop(row)
            parts[s]["presence"].add(pp.square_rgb(img, crop, pp.PRESENCE_SIZE), 1, "syrip", False, f"{key}#{j}")
        for j, crop in enumerate(idata.background_crops(row, BACKGROUND_CROPS[s], rng)):
            parts[s]["presence"].add(pp.square_rgb(img, crop, pp.PRESENCE_SIZE), 0, "syrip", False, f"{key}~{j}")
            if j == 0:
                parts[s]["face"].add(*fd.example(img, crop, None), "syrip", False, f"{key}~{j}")
        if face is None and not faceless:
            continue  # a face partly seen but without a box: neither a face nor a no-face example
        eyes = (face.left_eye, face.right_eye) if face and face.left_eye and face.right_eye else None
        for j in range(FACE_CROPS[s]):
            if s == "train":
                crop = idata.grow(body, _random_margins(rng), w, h)
                if face is not None and not _face_inside(face.box, crop):
                    crop = idata.grow(body, (0.6,) * 4, w, h)
                x, y = fd.example(img, crop, face.box if face else None, eyes, fd.training_angle(rng))
            else:
                x, y = fd.example(img, idata.baby_crop(row), face.box if face else None, eyes)
            parts[s]["face"].add(x, y, "syrip", False, f"{key}#{j}")
        if face is not None and with_eyes:
            add_eyes(img, face, labels.get(f"{key}#0", {}), s, f"{key}#0", parts, rng)


def _crop_around(face: pp.Box, w: int, h: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random crop of a photo that keeps the whole face: 2-6 face sides wide, the face anywhere inside."""
    side = (face[2] - face[0]) * rng.uniform(2.0, 6.0)
    x1 = rng.uniform(face[2] - side, face[0])
    y1 = rng.uniform(face[3] - side, face[1])
    return idata.grow((x1, y1, x1 + side, y1 + side), (0, 0, 0, 0), w, h)


def add_baby_photos(data: Path, parts: dict, with_eyes: bool = True) -> None:
    try:
        from train.teacher_infant import checked_faces
    except ImportError:
        return
    faces = checked_faces(data)
    labels = eye_labels() if with_eyes else {}
    for _row, key, s, rng, img in _photos(data, idata.baby_rows(data), 37, "baby_photos"):
        h, w = img.shape[:2]
        parts[s]["presence"].add(pp.square_rgb(img, None, pp.PRESENCE_SIZE), 1, "baby", False, key)
        found = [idata.checked_face(f) for f in faces.get(key, [])]
        if len(found) != 1:
            continue  # no checked face (the baby may still show one), or two: not "the" face of one crop
        face = found[0]
        eyes = (face.left_eye, face.right_eye)
        for j in range(FACE_CROPS[s]):
            if s == "train":
                crop = _crop_around(face.box, w, h, rng) if j % 2 else None
                x, y = fd.example(img, crop, face.box, eyes, fd.training_angle(rng))
                if j % 2:
                    parts[s]["presence"].add(pp.square_rgb(img, crop, pp.PRESENCE_SIZE), 1, "baby", False, key)
            else:
                x, y = fd.example(img, None, face.box, eyes)
            parts[s]["face"].add(x, y, "baby", False, f"{key}#{j}")
        if with_eyes:
            add_eyes(img, face, labels.get(f"{key}#0", {}), s, f"{key}#0", parts, rng)
