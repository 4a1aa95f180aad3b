"""Face-box teacher for infant_crib_synthetic: OpenCV's haarcascade_frontalface_alt2 (ships in the
opencv-python-headless 4.x wheel) run inside each baby box.

    python -m train.teacher [--data ../shared/data] [--sheet train/reports/teacher_faces.jpg]

A detection is kept only when it passes sanity checks (wholly inside the baby box, 8-60% of the
box's short side, the largest hit with at least MIN_NEIGHBORS votes); the rest of the images get
no face box and are used for presence only. The contact sheet shows every kept box so a person
can look at them (the one shipped was inspected; see train/reports/vision.md).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

MIN_NEIGHBORS = 5
MIN_FRAC, MAX_FRAC = 0.08, 0.6
# Detections rejected after looking at the contact sheet (path -> what the box was really on).
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


def teacher_faces(data: Path) -> dict[str, list[tuple]]:
    """path -> list of (baby_box, face_box or None), one entry per annotated baby."""
    cascade = _cascade()
    out: dict[str, list[tuple]] = {}
    gray_cache: dict[str, np.ndarray] = {}
    for row in baby_rows(data):
        if row["label"] != "baby":
            continue
        p = row["path"]
        if p not in gray_cache:
            img = cv2.imread(str(data / "images" / "infant_crib_synthetic" / p), cv2.IMREAD_GRAYSCALE)
            gray_cache = {p: img}
        box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        face = None if p in REJECTED else faces_in_box(cascade, gray_cache[p], box)
        out.setdefault(p, []).append((box, face))
    return out


SAVED = Path(__file__).resolve().parent / "teacher_faces.json"


def load_or_run(data: Path) -> dict[str, list[tuple]]:
    """The teacher's boxes from train/teacher_faces.json (written by `python -m train.teacher`), else a fresh run.

    The saved file lets the training run where OpenCV has no CascadeClassifier (opencv 5.0)."""
    if SAVED.is_file():
        saved = json.loads(SAVED.read_text())
        return {p: [(tuple(b), tuple(f) if f else None) for b, f in v] for p, v in saved.items()}
    return teacher_faces(data)


def contact_sheet(data: Path, faces: dict[str, list[tuple]], path: Path, tile: int = 128) -> int:
    tiles = []
    for p, entries in sorted(faces.items()):
        for _box, face in entries:
            if face is None:
                continue
            img = cv2.imread(str(data / "images" / "infant_crib_synthetic" / p))
            x1, y1, x2, y2 = face
            m = (x2 - x1) * 0.6
            c = img[max(0, int(y1 - m)) : int(y2 + m), max(0, int(x1 - m)) : int(x2 + m)].copy()
            ox, oy = max(0, int(x1 - m)), max(0, int(y1 - m))
            cv2.rectangle(c, (int(x1) - ox, int(y1) - oy), (int(x2) - ox, int(y2) - oy), (0, 255, 0), 2)
            c = cv2.resize(c, (tile, tile))
            cv2.putText(c, Path(p).stem[-8:], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1)
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
    args = ap.parse_args(argv)
    faces = teacher_faces(args.data)
    SAVED.write_text(json.dumps(faces, indent=0) + "\n")
    n = contact_sheet(args.data, faces, args.sheet)
    print(f"{n} teacher face boxes on {sum(len(v) for v in faces.values())} babies; sheet {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
