"""Real infant photos (../shared/data/images/syrip_real and baby_photos): rows, group splits, crops and truths.

One place for how the real infant sets are split and cut, so training (train/datasets.py) and the evaluation
(train/evaluate_infant.py) cannot drift:

- splits are by `group` (a source video or a single web image), 70/15/15 with a fixed seed, never by photo;
- the crop the cascade sees is "a crop around the baby, as a parent's bassinet crop would be": syrip's annotated
  body box grown by BABY_MARGIN on every side (training draws the margin from TRAIN_MARGINS instead), baby_photos'
  whole photo (the baby fills most of it and there is no body box);
- a face truth is the face box plus the eye and nose points: syrip's keypoints (the box derived from them),
  baby_photos' teacher boxes that a person checked (train/teacher_infant.py);
- background crops (presence negatives from real rooms) are squares of a syrip photo that overlap no part of the
  baby's body box.

numpy + OpenCV + the standard library only (no torch), so the evaluation runs in the runtime venv too.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 21
VAL, TEST = 0.15, 0.15
BABY_MARGIN = 0.15  # evaluation crop: body box + 15% of its size on each side
TRAIN_MARGINS = (0.03, 0.6)  # training crops: margins drawn from this range (a parent's crop is never exact)
BACKGROUND_MIN_SIDE = 0.25  # background crops: at least this fraction of the photo's short side
SYRIP, BABY = "syrip_real", "baby_photos"
Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class FaceTruth:
    """One face: its box (syrip convention, ears included), the infant's own left and right eye and the nose.

    A point is None where it was not labelled; `visible` says which of them were seen (COCO v=2)."""

    box: Box
    left_eye: Point | None
    right_eye: Point | None
    nose: Point | None
    visible: tuple[bool, bool, bool] = (True, True, True)

    def holds_face(self, pred: Box | None, max_area_ratio: float = 2.0) -> bool:
        """The project's face metric: the box contains both eyes and the nose, and its area is at most
        `max_area_ratio` times the truth box's (twice the face's size; DESIGN.md § 7)."""
        if pred is None or None in (self.left_eye, self.right_eye, self.nose):
            return False
        x1, y1, x2, y2 = pred
        inside = all(x1 <= p[0] <= x2 and y1 <= p[1] <= y2 for p in (self.left_eye, self.right_eye, self.nose))
        area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        truth_area = (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])
        return inside and area <= max_area_ratio * truth_area


def _float(row: dict, key: str) -> float | None:
    v = row.get(key, "")
    return float(v) if v not in ("", None) else None


def _rows(data: Path, name: str) -> list[dict]:
    with open(data / "images" / name / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["key"] = f"{name}/{r['path']}"
    return rows


def syrip_rows(data: Path) -> list[dict]:
    """syrip_real/labels.csv, one dict a photo, with `key` = 'syrip_real/<file>'."""
    return _rows(data, SYRIP)


def baby_rows(data: Path) -> list[dict]:
    """baby_photos/labels.csv, one dict a photo, with `key` = 'baby_photos/<file>'."""
    return _rows(data, BABY)


def group_split(groups: list[str], seed: int = SPLIT_SEED) -> dict[str, str]:
    """group -> 'train' | 'val' | 'test' (70/15/15 of the groups, seeded; sorted first, so order does not matter)."""
    keys = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(keys))
    n_test, n_val = round(len(keys) * TEST), round(len(keys) * VAL)
    return {keys[j]: ("test" if r < n_test else "val" if r < n_test + n_val else "train") for r, j in enumerate(order)}


def split_of(rows: list[dict]) -> dict[str, str]:
    """photo key -> split, through its group."""
    by_group = group_split([r["group"] for r in rows])
    return {r["key"]: by_group[r["group"]] for r in rows}


def body_box(row: dict) -> Box | None:
    vals = [_float(row, f"body_{k}") for k in ("x1", "y1", "x2", "y2")]
    return None if None in vals else tuple(vals)  # type: ignore[return-value]


def grow(box: Box, margins: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by a fraction of its width/height on each side (left, top, right, bottom), clipped, in ints."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    gx1, gy1 = max(0, round(x1 - margins[0] * w)), max(0, round(y1 - margins[1] * h))
    gx2, gy2 = min(width, round(x2 + margins[2] * w)), min(height, round(y2 + margins[3] * h))
    return (gx1, gy1, max(gx1 + 1, gx2), max(gy1 + 1, gy2))


def baby_crop(row: dict) -> tuple[int, int, int, int]:
    """The evaluation crop: syrip's body box + BABY_MARGIN, or baby_photos' whole photo."""
    w, h = int(row["width"]), int(row["height"])
    box = body_box(row)
    if box is None:
        return (0, 0, w, h)
    return grow(box, (BABY_MARGIN,) * 4, w, h)


def syrip_face(row: dict) -> FaceTruth | None:
    """The face truth of a syrip photo, or None when it has no derived face box (a face keypoint unseen)."""
    box = [_float(row, f"face_{k}") for k in ("x1", "y1", "x2", "y2")]
    if None in box:
        return None

    def point(name: str) -> Point | None:
        x, y, v = _float(row, f"{name}_x"), _float(row, f"{name}_y"), _float(row, f"{name}_v")
        return None if x is None or y is None or not v else (x, y)

    vis = tuple((_float(row, f"{n}_v") or 0) >= 2 for n in ("left_eye", "right_eye", "nose"))
    return FaceTruth(tuple(box), point("left_eye"), point("right_eye"), point("nose"), vis)  # type: ignore[arg-type]


def checked_face(entry: dict) -> FaceTruth:
    """A person-checked teacher face (train/teacher_infant.checked_faces' entry) as a FaceTruth."""
    eyes = entry["eyes"]
    return FaceTruth(
        tuple(entry["box"]),
        tuple(eyes["left"]),
        tuple(eyes["right"]),
        tuple(entry["nose"]),  # type: ignore[arg-type]
    )


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def background_crops(row: dict, n: int, rng: np.random.Generator, tries: int = 60) -> list[tuple[int, int, int, int]]:
    """Up to n square crops of a syrip photo that touch no part of the baby's body box (presence negatives)."""
    box = body_box(row)
    if box is None:
        return []
    w, h = int(row["width"]), int(row["height"])
    short = min(w, h)
    out: list[tuple[int, int, int, int]] = []
    for _ in range(tries):
        if len(out) >= n:
            break
        side = rng.uniform(BACKGROUND_MIN_SIDE, 0.7) * short
        x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        crop = tuple(round(v) for v in (x1, y1, x1 + side, y1 + side))
        if not _overlaps(crop, box):  # type: ignore[arg-type]
            out.append(crop)  # type: ignore[arg-type]
    return out
