"""`python -m models.cascade`: run the shipped cascade on image files (same backend and preprocessing as the tick).

    python -m models.cascade [--stage all|presence|face|eyes] [--crop x1,y1,x2,y2] PATH... --json

One JSON object per image and line: {"path", "presence": {"label", "confidence"}, "face": {"box", "confidence",
"eyes"}, "eyes": {"label", "confidence"}, "night"}; face.eyes is the infant's [left, right] eye centre. Boxes
are in the input image's pixels. A stage that did not run is null (e.g. face and eyes for --stage
presence); a stage the cascade stopped before (no baby, no face) reports box null / eyes "unknown"
with confidence null. --stage eyes treats each image as one eye crop and runs only the eye classifier. No torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from capture.night import is_infrared
from models import preprocess as pp
from models.cascade import Cascade, ModelError, verdict

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights"


def _crop(text: str) -> tuple[int, int, int, int]:
    try:
        x1, y1, x2, y2 = (int(float(v)) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--crop must be x1,y1,x2,y2") from exc
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError("--crop needs x2 > x1 and y2 > y1")
    return (x1, y1, x2, y2)


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def classify(c: Cascade, path: Path, stage: str, crop) -> dict:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return {"path": str(path), "error": "cannot read image"}
    out: dict = {"path": str(path), "presence": None, "face": None, "eyes": None, "night": is_infrared(img)}
    if stage == "eyes":
        label, conf = verdict(float(c.eye_probs([pp.eye_gray(img)])[0]), c.eye_threshold)
        out["eyes"] = {"label": label, "confidence": _r(conf)}
        return out
    box = pp.crop_box(img, crop)
    p = c.presence(img, box)
    present = p >= c.presence_threshold
    out["presence"] = {"label": "present" if present else "not_present", "confidence": _r(p if present else 1 - p)}
    if stage == "presence":
        return out
    face_box, face_conf, eye_points = c.find_face(img, box) if present else (None, None, None)
    found = face_conf is not None and face_conf >= c.face_threshold
    out["face"] = {
        "box": [_r(v) for v in face_box] if found else None,
        "confidence": _r(face_conf),
        "eyes": [[_r(v) for v in p] for p in eye_points] if found else None,
    }
    if stage == "face":
        return out
    label, conf = c.eyes(img, face_box, eye_points) if found else ("unknown", None)
    out["eyes"] = {"label": label, "confidence": _r(conf)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.cascade", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ap.add_argument("--stage", choices=("all", "presence", "face", "eyes"), default="all")
    ap.add_argument("--crop", type=_crop, default=None, help="bassinet crop x1,y1,x2,y2 (default: whole image)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line (default: a short text line)")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    args = ap.parse_args(argv)
    try:
        c = Cascade.load(args.weights)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.paths:
        r = classify(c, path, args.stage, args.crop)
        failed += "error" in r
        if args.json:
            print(json.dumps(r), flush=True)
        elif "error" in r:
            print(f"{path}: error: {r['error']}")
        else:
            parts = [f"{k}={v['label']}({v['confidence']})" for k, v in r.items() if k in ("presence", "eyes") and v]
            if r["face"] is not None:
                parts.append(f"face={r['face']['box']}")
            print(f"{path}: {' '.join(parts)} night={r['night']}")
    return 1 if failed else 0
