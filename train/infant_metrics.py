"""The scores of the real-infant evaluation (train/evaluate_infant.py), each with its 95% interval.

- a rate (share of photos called present, faces held, verdicts given) with a bootstrap over whole groups where the
  items of one group are not independent (syrip_real: frames of one video), else a Wilson interval (baby_photos,
  whose groups are single photos);
- a mean (IoU) with a bootstrap over groups (a group may be a single photo);
- the eye verdict: macro F1 over open/closed on the faces given a verdict, coverage, and accuracy over every
  labelled face (no verdict counts as wrong);
- the peers' picks: BlazeFace's most confident detection inside the evaluation crop, the iris teacher's EAR verdict.

numpy + OpenCV + the standard library only (no torch), so it runs in the runtime venv.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models import preprocess as pp
from train.infant_data import Box, FaceTruth, Point
from train.intervals import bootstrap, wilson

EYE_CLASSES = ("open", "closed")
EYE_POINT_TOLERANCE = 0.25  # a predicted eye centre counts when within this fraction of the true eye distance


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _span(lo_hi: tuple[float, float] | None) -> list[float] | None:
    return None if lo_hi is None else [round(float(lo_hi[0]), 4), round(float(lo_hi[1]), 4)]


def rate(hits: Sequence[bool], groups: Sequence[str], *, by_group: bool) -> dict:
    """{'value', 'interval', 'n', 'groups'} of the share of True; the interval by a group bootstrap or by Wilson."""
    x = np.asarray(hits, bool)
    if not len(x):
        return {"value": None, "interval": None, "n": 0, "groups": 0}
    if by_group:
        lo_hi = bootstrap(lambda idx: float(x[idx].mean()), np.asarray(groups))
    else:
        lo_hi = wilson(int(x.sum()), len(x))
    return {"value": _r(x.mean()), "interval": _span(lo_hi), "n": len(x), "groups": len(set(groups))}


def mean(values: Sequence[float], groups: Sequence[str]) -> dict:
    """{'value', 'interval', 'n', 'groups'} of the mean, with a bootstrap over whole groups."""
    x = np.asarray(values, float)
    if not len(x):
        return {"value": None, "interval": None, "n": 0, "groups": 0}
    lo_hi = bootstrap(lambda idx: float(x[idx].mean()), np.asarray(groups))
    return {"value": _r(x.mean()), "interval": _span(lo_hi), "n": len(x), "groups": len(set(groups))}


# ---- face -----------------------------------------------------------------------------------------------------
# Face sizes in the face stage's input (the crop letterboxed to pp.FACE_SIZE), in pixels: where the face stage loses
# faces. Measured on the shipped cascade: validation baby_photos held 0.64 of faces under 30 px, 1.00 of those over 45.
FACE_SIZE_BINS = (("under 30 px", 0.0, 30.0), ("30-45 px", 30.0, 45.0), ("45 px and over", 45.0, float("inf")))


def face_side_in_input(truths: Sequence[FaceTruth], crop: tuple[int, int, int, int]) -> float:
    """The largest true face's longer side in the face stage's input: the letterbox scales the crop's longer side to
    pp.FACE_SIZE."""
    crop_side = max(crop[2] - crop[0], crop[3] - crop[1])
    return max(max(t.box[2] - t.box[0], t.box[3] - t.box[1]) for t in truths) / crop_side * pp.FACE_SIZE


def size_bin(side: float) -> str:
    return next(name for name, lo, hi in FACE_SIZE_BINS if lo <= side < hi)


def face_score(truths: Sequence[FaceTruth], box: Box | None) -> tuple[bool, float]:
    """(the box holds a true face, its best IoU with a true face box; 0 without a box). A photo with several
    faces is one item: the cascade gives one face, and any baby's face is a right answer."""
    if box is None or not truths:
        return False, 0.0
    return any(t.holds_face(box) for t in truths), max(pp.iou(box, t.box) for t in truths)


def matched_face(truths: Sequence[FaceTruth], box: Box | None) -> int | None:
    """Which true face a predicted box is about: the largest IoU, ties (no overlap) to the largest face."""
    if box is None or not truths:
        return None

    def area(t: FaceTruth) -> float:
        return (t.box[2] - t.box[0]) * (t.box[3] - t.box[1])

    return max(range(len(truths)), key=lambda i: (pp.iou(box, truths[i].box), area(truths[i])))


def eye_points_hit(truth: FaceTruth, points: Sequence[Point] | None, tol: float = EYE_POINT_TOLERANCE) -> bool:
    """The predicted (left, right) eye centres, the infant's own as CascadeResult.eye_points, each lie within `tol` x
    the true eye distance of the same true eye (swapped eyes miss: the eye stage turns the face upright by them)."""
    if points is None or truth.left_eye is None or truth.right_eye is None:
        return False
    a, b = np.asarray(truth.left_eye, float), np.asarray(truth.right_eye, float)
    limit = tol * float(np.linalg.norm(a - b))
    return all(np.linalg.norm(np.asarray(p, float) - t) <= limit for p, t in zip(points, (a, b), strict=True))


def peer_pick(detections: Sequence[dict], crop: tuple[int, int, int, int]) -> dict | None:
    """The peer's answer for a photo: its most confident detection whose box centre lies inside the crop."""
    x1, y1, x2, y2 = crop

    def inside(d: dict) -> bool:
        cx, cy = (d["box"][0] + d["box"][2]) / 2, (d["box"][1] + d["box"][3]) / 2
        return x1 <= cx <= x2 and y1 <= cy <= y2

    return max((d for d in detections if inside(d)), key=lambda d: d["score"], default=None)


# ---- eyes -----------------------------------------------------------------------------------------------------
def macro_f1(pred: Sequence[str | None], truth: Sequence[str]) -> float | None:
    """Mean F1 of open and closed over the classes the truth holds (None when it holds neither). A prediction that
    is neither (unknown, no face) is a miss for its true class; pass only the covered faces for F1 on verdicts."""
    p, y = np.asarray(pred, object), np.asarray(truth, object)
    f1s = []
    for c in EYE_CLASSES:
        support = int((y == c).sum())
        if not support:
            continue
        tp, said = int(((p == c) & (y == c)).sum()), int((p == c).sum())
        prec, rec = (tp / said if said else 0.0), tp / support
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(f1s)) if f1s else None


def eye_summary(pred: Sequence[str | None], truth: Sequence[str], groups: Sequence[str], *, by_group: bool) -> dict:
    """Macro F1 on the covered faces (bootstrap over groups), coverage and accuracy over every labelled face
    (group bootstrap or Wilson), and the confusion counts {truth: {said: n}}."""
    p, y, g = np.asarray(pred, object), np.asarray(truth, object), np.asarray(groups)
    covered = np.isin(p, EYE_CLASSES)

    def f1(idx: np.ndarray) -> float:
        m = covered[idx]
        return macro_f1(p[idx][m], y[idx][m]) or 0.0

    f1_value = macro_f1(p[covered], y[covered])
    said = [*EYE_CLASSES, "unknown", "no face"]
    shown = np.array(["no face" if v is None else v for v in p], object)
    return {
        "macro_f1": {
            "value": _r(f1_value),
            "interval": _span(bootstrap(f1, g)) if covered.any() else None,
            "n": int(covered.sum()),
        },
        "coverage": rate(covered, g, by_group=by_group),
        "accuracy": rate(p == y, g, by_group=by_group),
        "confusion": {t: {s: int(((y == t) & (shown == s)).sum()) for s in said} for t in EYE_CLASSES},
    }


def iris_verdict(ears: dict | None, threshold: float) -> str | None:
    """The iris teacher's face verdict: open if the larger EAR of the face's eyes is above the threshold, else
    closed; None when neither eye has an EAR."""
    values = [v for v in (ears or {}).values() if v is not None]
    if not values:
        return None
    return "open" if max(values) > threshold else "closed"
