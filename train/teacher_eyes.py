"""Per-eye open/closed labels for REAL infant faces: proposed by a teacher, decided by a person.

Why: the monitor's eye stage was only ever scored on generated faces. To know how it does on real infants (and to
train on them) we need eye-state ground truth for real photos, and neither syrip_real nor baby_photos has any. The
teacher is MediaPipe's iris landmark model (`mediapipe/modules/iris_landmark/iris_landmark.tflite` from the
mediapipe==0.10.21 wheel, converted once to ONNX with tflite2onnx and run by onnxruntime; nothing is downloaded at
run time). It sees one 64x64 RGB eye crop in [0, 1], cut as MediaPipe cuts it: a square centred on the eye, rotated
so the line between the two eyes is horizontal (babies lie at any angle), the infant's left eye mirrored to look like
a right one. From its 71-point eye contour an eye aspect ratio (EAR) is computed and compared with EAR_OPEN. The
teacher only proposes: a person looked at every face on the contact sheets and decided each eye open / closed /
unsure ("can't tell" - hidden, too small, blurred, turned away, in shadow - stays unsure, never guessed). Those
decisions, the teacher's EARs and the crop geometry are kept in train/infant_eyes.json (data, no code).

    python -m train.teacher_eyes --data ../shared/data --run [--source syrip_real|baby_photos|all]

needs the teacher venv (onnxruntime; tflite2onnx + mediapipe only to make artifacts/teachers/iris_landmark.onnx) and
writes the teacher's EARs and geometry into train/infant_eyes.json (keeping the person's labels) and the contact
sheets into artifacts/sheets/eyes_<source>_NN.png. `load_eye_labels`, `face_eye_label` and `upright_eye_crop` need only
numpy/cv2/json, so the evaluation and the training data use the very same crops without the teacher installed.

Geometry (chosen by looking at the teacher's contour on the crops): the crop side is CROP_K x the distance between
the two eye points (MediaPipe: 2.3 x the eye-corner distance, an infant's eye being about half the inter-eye
distance wide), but at least FACE_K x the face-box side where one is known (faces turned sideways bring the eyes
close together in the image).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
LABELS_PATH = Path("train/infant_eyes.json")
ONNX_PATH = REPO / "artifacts" / "teachers" / "iris_landmark.onnx"
SHEET_DIR = REPO / "artifacts" / "sheets"
TFLITE_REL = "mediapipe/modules/iris_landmark/iris_landmark.tflite"
EYE_STATES = ("open", "closed", "unsure")
CROP_K = 0.9  # crop side / distance between the two eye points
FACE_K = 0.22  # ... but at least this x the face box side (a sideways face has its eyes close together)
MIN_SIDE = 6.0  # px: below this there is nothing to see
EAR_OPEN = 0.20  # teacher: open if EAR > EAR_OPEN; best balanced agreement with the person's labels (both sources)
MODEL_PX = 64
TILE_CTX = 128  # contact sheet: context view
TILE_EYE = 64  # contact sheet: each eye crop
# The first 16 of the model's 71 contour points outline the eye (MediaPipe's face-mesh eye contour): 0 and 8 are the
# corners, 1-7 the lower lid and 9-15 the upper lid, both from corner 0 towards corner 8; i and i + 8 face each other.
CORNERS = (0, 8)
LID_PAIRS = ((2, 10), (3, 11), (4, 12), (5, 13), (6, 14))
Point = tuple[float, float]


# ---------------------------------------------------------------- crops (no teacher needed)
def eye_line_angle(eye_xy: Point, other_eye_xy: Point, eye: str | None = None) -> float:
    """Degrees (counter-clockwise, image coordinates as cv2.getRotationMatrix2D takes them) that turn the eye line
    horizontal. With `eye` ("left"/"right", the infant's own) the face ends up upright: the infant's right eye on the
    image's left, as in a frontal photo. Without it, the smallest turn (|angle| <= 90) - right for roughly upright
    faces only."""
    dx, dy = other_eye_xy[0] - eye_xy[0], other_eye_xy[1] - eye_xy[1]
    if eye == "left":  # vector right eye -> left eye must point to +x
        dx, dy = -dx, -dy
    angle = math.degrees(math.atan2(dy, dx))
    if eye is None:
        if angle > 90:
            angle -= 180
        elif angle <= -90:
            angle += 180
    return angle


def warp_square(image: np.ndarray, center: Point, angle_deg: float, side: float, out_px: int) -> np.ndarray:
    """The square of `side` image pixels centred on `center`, turned by `angle_deg`, resampled to out_px x out_px
    (borders replicated)."""
    scale = out_px / side
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), angle_deg, scale)
    m[0, 2] += out_px / 2 - center[0]
    m[1, 2] += out_px / 2 - center[1]
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.warpAffine(image, m, (out_px, out_px), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def upright_eye_crop(
    image_bgr: np.ndarray,
    eye_xy: Point,
    other_eye_xy: Point,
    side: float,
    *,
    eye: str | None = None,
    out_px: int | None = None,
) -> np.ndarray:
    """BGR crop (same channels as the input) of the square of `side` px centred on `eye_xy`, turned so the line to
    `other_eye_xy` is horizontal: `eye` = "left"/"right" (the infant's own, as keyed in infant_eyes.json's geometry)
    makes the face upright whatever way the baby lies; None takes the smallest turn. The crop is side x side pixels
    (rounded) unless `out_px` asks for another size. Not mirrored: the teacher mirrors the left eye itself. This is
    the cut the labels were decided on (train/infant_eyes.json "geometry")."""
    px = out_px or max(1, round(side))
    return warp_square(image_bgr, eye_xy, eye_line_angle(eye_xy, other_eye_xy, eye), side, px)


def crop_side(left: Point, right: Point, face_side: float | None = None) -> float:
    """Eye-crop side for one face: CROP_K x the inter-eye distance, at least FACE_K x the face box side."""
    side = CROP_K * math.dist(left, right)
    if face_side:
        side = max(side, FACE_K * face_side)
    return side


# ---------------------------------------------------------------- labels (no teacher needed)
def load_eye_labels(path: Path = LABELS_PATH) -> dict:
    """train/infant_eyes.json: {"about", "labels": {key: {"left", "right"}}, "teacher": {key: {"left_ear",
    "right_ear"}}, "geometry": {key: {"left": [x, y], "right": [x, y], "side": s}}}; key = "<folder>/<file>#<face>".
    A relative path is taken from the repository root."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    with open(path) as f:
        return json.load(f)


def face_eye_label(entry: dict | None) -> str | None:
    """One face's state from its two person-labelled eyes: "open" if both open or one open and the other unsure,
    "closed" likewise, None if mixed (one open, one closed), both unsure or no entry."""
    if not entry:
        return None
    states = {entry.get("left", "unsure"), entry.get("right", "unsure")} - {"unsure"}
    return states.pop() if len(states) == 1 else None


# ---------------------------------------------------------------- faces
def syrip_faces(data: Path) -> list[dict]:
    """One face per syrip_real photo: its eye keypoints (v >= 1) and face box side (where the box exists)."""
    with open(data / "images" / "syrip_real" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    faces = []
    for r in rows:
        eyes = {
            k: (float(r[f"{k}_eye_x"]), float(r[f"{k}_eye_y"])) if float(r[f"{k}_eye_v"] or 0) >= 1 else None
            for k in ("left", "right")
        }
        face_side = float(r["face_x2"]) - float(r["face_x1"]) if r["face_x1"] else None
        faces.append(
            {
                "key": f"syrip_real/{r['path']}#0",
                "file": f"syrip_real/{r['path']}",
                "eyes": eyes,
                "face_side": face_side,
            }
        )
    return faces


def baby_photo_faces(data: Path) -> list[dict]:
    """The faces train.teacher_infant accepted in baby_photos, k = index in checked_faces' list."""
    from train import teacher_infant

    faces = []
    for path, found in sorted(teacher_infant.checked_faces(data).items()):
        if not path.startswith("baby_photos/"):
            continue
        for k, face in enumerate(found):
            box = face.get("box")
            face_side = max(box[2] - box[0], box[3] - box[1]) if box else None
            eyes = {e: tuple(map(float, face["eyes"][e])) for e in ("left", "right")}
            faces.append({"key": f"{path}#{k}", "file": path, "eyes": eyes, "face_side": face_side})
    return faces


def face_geometry(face: dict) -> dict | None:
    """{"left": [x, y], "right": [x, y], "side": s} for the crops, or None when both eyes are not placed."""
    left, right = face["eyes"]["left"], face["eyes"]["right"]
    if left is None or right is None:
        return None
    side = crop_side(left, right, face["face_side"])
    if side < MIN_SIDE:
        return None
    return {"left": [round(v, 1) for v in left], "right": [round(v, 1) for v in right], "side": round(side, 1)}


# ---------------------------------------------------------------- teacher
def convert_to_onnx(onnx_path: Path = ONNX_PATH) -> Path:
    """iris_landmark.tflite from the installed mediapipe wheel -> ONNX (tflite2onnx), once."""
    if onnx_path.exists():
        return onnx_path
    import importlib.util

    import tflite2onnx

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mediapipe==0.10.21 is not installed (pip install --no-deps mediapipe==0.10.21)")
    tflite = Path(next(iter(spec.submodule_search_locations))).parent / TFLITE_REL
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tflite2onnx.convert(str(tflite), str(onnx_path))
    return onnx_path


class IrisTeacher:
    """MediaPipe's iris landmark model on one eye: input 1x3x64x64 RGB in [0, 1] (NCHW after tflite2onnx); outputs
    `output_eyes_contours_and_brows` (71 x (x, y, z) in crop pixels) and `output_iris` (5 x (x, y, z))."""

    def __init__(self, onnx_path: Path = ONNX_PATH) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def contour(self, image_bgr: np.ndarray, eye_xy: Point, other_xy: Point, side: float, eye: str) -> np.ndarray:
        """71 x 2 contour points in the upright, unmirrored 64-px crop's pixels."""
        crop = upright_eye_crop(image_bgr, eye_xy, other_xy, side, eye=eye, out_px=MODEL_PX)
        if eye == "left":  # the model sees right-looking eyes (MediaPipe mirrors the other one)
            crop = crop[:, ::-1]
        x = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        out = self.session.run(["output_eyes_contours_and_brows"], {self.input: x.transpose(2, 0, 1)[None]})[0]
        pts = out.reshape(71, 3)[:, :2].copy()
        if eye == "left":
            pts[:, 0] = MODEL_PX - pts[:, 0]
        return pts


def eye_aspect_ratio(pts: np.ndarray) -> float:
    """Mean distance between facing upper/lower lid points / corner distance (the first 16 contour points)."""
    width = float(np.linalg.norm(pts[CORNERS[0]] - pts[CORNERS[1]]))
    gaps = [float(np.linalg.norm(pts[a] - pts[b])) for a, b in LID_PAIRS]
    return float(np.mean(gaps)) / max(width, 1e-6)


def teacher_verdict(ear: float | None) -> str:
    return "?" if ear is None else "open" if ear > EAR_OPEN else "closed"


# ---------------------------------------------------------------- contact sheets
def _text(img: np.ndarray, text: str, org: tuple[int, int], color=(255, 255, 255), scale: float = 0.38) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def face_tile(image: np.ndarray, geo: dict, ears: dict, tile_id: str, contours: dict | None = None) -> np.ndarray:
    """One face: an upright context view (TILE_CTX px) and, stacked beside it, the infant's right eye (top) and left
    eye (bottom), TILE_EYE px each; the teacher's EARs printed small above (green open, orange closed). `contours`
    (eye -> 71x2 in 64-px crop pixels) draws the teacher's eye outline, for checking the geometry only (the
    labelling sheets are drawn without it)."""
    c, t = TILE_CTX, TILE_EYE
    tile = np.full((c + 14, c + 4 + t, 3), 40, np.uint8)
    left, right, side = geo["left"], geo["right"], geo["side"]
    mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    tile[14:, :c] = warp_square(image, mid, eye_line_angle(right, left, "right"), side * 3.5, c)
    x = len(tile_id) * 8 + 6
    _text(tile, tile_id, (2, 11), (255, 255, 0))
    for i, (eye, other) in enumerate((("right", left), ("left", right))):
        crop = upright_eye_crop(image, geo[eye], other, side, eye=eye, out_px=t)
        if contours and contours.get(eye) is not None:
            pts = contours[eye][:16] * (t / MODEL_PX)
            cv2.polylines(crop, [np.round(pts).astype(np.int32)], True, (0, 255, 0), 1, cv2.LINE_AA)
        tile[14 + i * t : 14 + (i + 1) * t, c + 4 :] = crop
        ear = ears.get(f"{eye}_ear")
        verdict = teacher_verdict(ear)
        color = (120, 255, 120) if verdict == "open" else (120, 160, 255) if verdict == "closed" else (200, 200, 200)
        text = f"{eye[0].upper()}{'-' if ear is None else f'{ear:.2f}'[1:]}"
        _text(tile, text, (x, 11), color)
        x += 48
    return tile


def write_sheets(tiles: list[np.ndarray], prefix: str, per_sheet: int = 40, cols: int = 5) -> list[Path]:
    SHEET_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, start in enumerate(range(0, len(tiles), per_sheet)):
        chunk = tiles[start : start + per_sheet]
        h, w = chunk[0].shape[:2]
        rows = math.ceil(len(chunk) / cols)
        sheet = np.full((rows * (h + 4), cols * (w + 4), 3), 255, np.uint8)
        for i, tile in enumerate(chunk):
            r, c = divmod(i, cols)
            sheet[r * (h + 4) : r * (h + 4) + h, c * (w + 4) : c * (w + 4) + w] = tile
        path = SHEET_DIR / f"{prefix}_{n:02d}.png"
        cv2.imwrite(str(path), sheet)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- run
def run(data: Path, source: str, out: Path = LABELS_PATH, contours_sheet: bool = False) -> dict:
    """Teacher EARs + geometry for every face of `source`, merged into `out` (person labels kept); sheets written."""
    teacher = IrisTeacher(convert_to_onnx())
    faces = syrip_faces(data) if source == "syrip_real" else baby_photo_faces(data)
    labels = load_eye_labels(out) if (REPO / out).exists() or Path(out).exists() else {}
    labels["about"] = ABOUT
    for k in ("labels", "teacher", "geometry"):
        labels.setdefault(k, {})
    tiles, ids = [], []
    for n, face in enumerate(faces):
        geo = face_geometry(face)
        key = face["key"]
        if geo is None:
            labels["teacher"][key] = {"left_ear": None, "right_ear": None}
            continue
        image = cv2.imread(str(data / "images" / face["file"]))
        ears, contours = {}, {}
        for eye, other in (("left", "right"), ("right", "left")):
            pts = teacher.contour(image, geo[eye], geo[other], geo["side"], eye)
            contours[eye] = pts
            ears[f"{eye}_ear"] = round(eye_aspect_ratio(pts), 3)
        labels["teacher"][key] = ears
        labels["geometry"][key] = geo
        tile_id = f"{source[0].upper()}{n:03d}"
        ids.append((tile_id, key))
        tiles.append(face_tile(image, geo, ears, tile_id, contours if contours_sheet else None))
    prefix = f"eyes_{source}" + ("_contours" if contours_sheet else "")
    write_sheets(tiles, prefix)
    with open(SHEET_DIR / f"{prefix}_ids.json", "w") as f:
        json.dump(dict(ids), f, indent=0)
    _save(labels, out)
    return labels


def _save(labels: dict, out: Path) -> None:
    """Write the labels file with one face per line (readable diffs), sections sorted by key."""
    path = out if Path(out).is_absolute() else REPO / out
    lines = ["{", f' "about": {json.dumps(labels["about"])},']
    sections = [k for k in ("labels", "teacher", "geometry", "notes") if k in labels]
    for i, k in enumerate(sections):
        items = sorted(labels[k].items())
        lines.append(f' "{k}": {{')
        lines += [
            f"  {json.dumps(key)}: {json.dumps(v)}" + ("," if j < len(items) - 1 else "")
            for j, (key, v) in enumerate(items)
        ]
        lines.append(" }" + ("," if i < len(sections) - 1 else ""))
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


ABOUT = (
    "Per-eye open/closed/unsure labels for REAL infant faces; key '<folder>/<file>#<face index>' (syrip_real: one face "
    "per photo; baby_photos: index in train.teacher_infant.checked_faces' list); left/right are the infant's own. "
    "'labels' were decided by a person looking at contact sheets of upright eye crops with a face view (train/"
    "teacher_eyes.py), zooming in where in doubt. 'unsure' = could not tell: eye hidden or turned away (the far eye of "
    "a face in profile), too small (crop side under ~12 px), blurred, heavy noise, shadow, eyes cast down with lowered "
    "lids (awake, looking down), smiling/crying squints where a slit may remain, or a crop not on the eye (keypoints "
    "off). Eyes squeezed shut (crying, laughing crescents, sleeping) are 'closed'. 'teacher' = eye aspect ratio from "
    "MediaPipe's iris landmark model on the same crop (open if > 0.20, chosen on these labels), a proposal only. "
    "'geometry' = eye centres and crop side in stored image pixels: upright_eye_crop(image, geo[eye], geo[other], "
    "side, eye=eye) reproduces the crop; faces without geometry were too small to crop and are unsure. 'notes' marks "
    "doll photos (baby_photos holds a few; not real infants, labelled unsure). Images are not redistributable (see "
    "each folder's SOURCE.md)."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--run", action="store_true", help="run the teacher and write the sheets (teacher venv)")
    ap.add_argument("--source", choices=("syrip_real", "baby_photos", "all"), default="all")
    ap.add_argument("--contours", action="store_true", help="draw the teacher's eye outline (geometry check)")
    args = ap.parse_args(argv)
    if not args.run:
        ap.print_help()
        return 0
    sources = ("syrip_real", "baby_photos") if args.source == "all" else (args.source,)
    for source in sources:
        labels = run(args.data, source, contours_sheet=args.contours)
        ears = [v for k, e in labels["teacher"].items() if k.startswith(source) for v in e.values() if v is not None]
        print(f"{source}: {len(ears)} eyes with a teacher EAR; open (> {EAR_OPEN}): {sum(e > EAR_OPEN for e in ears)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
