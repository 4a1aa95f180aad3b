"""Score the cascade on the REAL infant photos of one split (syrip_real, baby_photos), beside its peers.

    python -m train.evaluate_infant --data ../shared/data --weights models/weights --split val|test
        [--baseline WEIGHTS_DIR] [--report train/reports/infant.md] [--json out.json] [--limit N]

Each source is scored on its own (train/infant_data.py: group splits, the evaluation crop, the face truths):
presence on the photos and on background crops of syrip's rooms; the face box against the face truths (the
project's metric FaceTruth.holds_face, and IoU) beside BlazeFace back-256 (train/teacher_infant.json); the eye
verdict against the person labels (train/infant_eyes.json) beside the iris teacher's EAR verdict; the worst errors
on a contact sheet. `--baseline` scores a second weights folder on the same photos ("today").

numpy + OpenCV + the standard library only, no torch: it runs the exported ONNX files through the tick's own
Cascade (models/cascade.py), so the runtime venv, a CI job without torch, or a monitor box can re-score any weights
folder, and what is scored is exactly what the tick runs. Teacher outputs are read from their saved JSON files; the
teachers themselves are never run here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.cascade import Cascade
from train.infant_data import (
    BABY,
    SYRIP,
    FaceTruth,
    baby_crop,
    baby_rows,
    background_crops,
    checked_face,
    split_of,
    syrip_face,
    syrip_rows,
)
from train.infant_metrics import (
    FACE_SIZE_BINS,
    eye_points_hit,
    eye_summary,
    face_score,
    face_side_in_input,
    iris_verdict,
    matched_face,
    mean,
    peer_pick,
    rate,
    size_bin,
)

REPO = Path(__file__).resolve().parent.parent
TEACHER_FACES = REPO / "train" / "teacher_infant.json"
TEACHER_EYES = REPO / "train" / "infant_eyes.json"
DARKER_SKIN = REPO / "train" / "infant_skin.json"  # photos of babies with darker skin, picked by a person
SOURCES = (SYRIP, BABY)
BY_GROUP = {SYRIP: True, BABY: False}  # syrip: frames of one video share a group; baby_photos: a group is a photo
BACKGROUND_PER_PHOTO, BACKGROUND_SEED = 2, 7
WORST = 18  # tiles of each kind on the contact sheet
TRUTH_NOTE = (
    "Teacher outputs are never ground truth here except where a person checked them: syrip_real's face truths are "
    "its annotated keypoints; baby_photos' are BlazeFace faces a person accepted (train/teacher_infant.py); eye "
    "states are person labels (train/infant_eyes.json). BlazeFace and the iris teacher appear only as peers."
)


@dataclass
class Photo:
    key: str  # '<set>/<file>.jpg'
    source: str
    group: str
    crop: tuple[int, int, int, int]
    truths: list[FaceTruth] = field(default_factory=list)


@dataclass
class EyeFace:
    face_id: str  # '<key>#<k>'
    photo: Photo
    k: int
    label: str  # the person's face-level label: 'open' | 'closed'


# ---- inputs -----------------------------------------------------------------------------------------------------
def photos_of(data: Path, split: str, checked: dict | None, limit: int | None = None) -> list[Photo]:
    """The split's photos of each source (sorted by key, the first `limit` of each), with their face truths."""
    out: list[Photo] = []
    for source, rows in ((SYRIP, syrip_rows(data)), (BABY, baby_rows(data))):
        split_by_key = split_of(rows)
        mine = sorted((r for r in rows if split_by_key[r["key"]] == split), key=lambda r: r["key"])[:limit]
        for r in mine:
            if source == SYRIP:
                truth = syrip_face(r)
                truths = [truth] if truth is not None else []
            else:
                truths = [checked_face(e) for e in (checked or {}).get(r["key"], [])]
            out.append(Photo(r["key"], source, r["group"], baby_crop(r), truths))
    return out


def load_teacher_faces(data: Path, path: Path) -> tuple[dict | None, dict | None]:
    """(BlazeFace's raw detections by key, the person-checked baby_photos faces), or Nones before the file exists."""
    if not path.is_file():
        return None, None
    from train.teacher_infant import checked_faces

    return json.loads(path.read_text())["detections"], checked_faces(data, path)


def load_eye_labels(path: Path) -> tuple[dict[str, str], dict[str, dict], dict[str, dict], float | None]:
    """({face id: person face label}, {face id: the iris teacher's EARs}, {face id: the eye centres the label was
    decided at}, its open threshold); empty before the file exists. Faces whose two eyes give no face-level label
    (face_eye_label None: both unsure, or one open and one closed) are left out."""
    if not path.is_file():
        return {}, {}, {}, None
    from train.teacher_eyes import EAR_OPEN, face_eye_label

    saved = json.loads(path.read_text())
    labels = {fid: lab for fid, e in saved.get("labels", {}).items() if (lab := face_eye_label(e)) is not None}
    return labels, saved.get("teacher", {}), saved.get("geometry", {}), float(EAR_OPEN)


def eye_faces_of(
    photos: list[Photo], labels: dict[str, str], geometry: dict[str, dict] | None = None, tol_px: float = 2.0
) -> tuple[list[EyeFace], int]:
    """The labelled faces of these photos that have a face truth (the eye stage needs its position), and how many
    were left out: no face truth, or a truth whose eyes are not where the label was decided (`geometry`, if saved:
    the face index k would point at another face, e.g. after a rejection changed checked_faces' list)."""
    by_key = {p.key: p for p in photos}
    out, left_out = [], 0
    for fid, lab in sorted(labels.items()):
        key, _, k = fid.rpartition("#")
        if key not in by_key:
            continue
        truths = by_key[key].truths
        geo = (geometry or {}).get(fid)
        if int(k) >= len(truths) or (geo and not _same_eyes(truths[int(k)], geo, tol_px)):
            left_out += 1
            continue
        out.append(EyeFace(fid, by_key[key], int(k), lab))
    return out, left_out


def _same_eyes(truth: FaceTruth, geo: dict, tol_px: float) -> bool:
    pairs = ((truth.left_eye, geo.get("left")), (truth.right_eye, geo.get("right")))
    return all(t is None or g is None or math.dist(t, g) <= tol_px for t, g in pairs)


# ---- running the cascade ------------------------------------------------------------------------------------------
def eyes_on_truth(cascade: Cascade, frame: np.ndarray, truth: FaceTruth) -> tuple[str, float, str]:
    """The eye stage alone on a true face: given the true eye centres (the infant's left, then right, as
    CascadeResult.eye_points) if the cascade can take them, else given the true face box. Returns (label,
    confidence, what it was given)."""
    points = None
    if truth.left_eye is not None and truth.right_eye is not None:
        points = (tuple(truth.left_eye), tuple(truth.right_eye))
    if points and "cut" in inspect.signature(cascade.eyes).parameters:
        return (*cascade.eyes(frame, truth.box, eye_points=points, cut="points"), "true eye points")
    return (*cascade.eyes(frame, truth.box), "true face box")


def run_all(cascades: dict[str, Cascade], data: Path, photos: list[Photo], eye_faces: list[EyeFace]) -> dict:
    """{name: {'photo': {key: cascade answer}, 'background': {key: [present, ...]}, 'given': {face id: (label,
    conf, how)}}}, every image read once for all the cascades."""
    faces_of: dict[str, list[EyeFace]] = {}
    for f in eye_faces:
        faces_of.setdefault(f.photo.key, []).append(f)
    rows = {r["key"]: r for r in syrip_rows(data)}
    out: dict[str, dict] = {n: {"photo": {}, "background": {}, "given": {}} for n in cascades}
    for p in photos:
        frame = cv2.imread(str(data / "images" / p.key))
        if frame is None:
            raise FileNotFoundError(data / "images" / p.key)
        bg = []
        if p.source == SYRIP:
            rng = np.random.default_rng([BACKGROUND_SEED, zlib.crc32(p.key.encode())])  # same crops for any subset
            bg = background_crops(rows[p.key], BACKGROUND_PER_PHOTO, rng)
        for name, c in cascades.items():
            res = c.run(frame, p.crop)
            pts = getattr(res, "eye_points", None)
            out[name]["photo"][p.key] = {
                "present": res.presence_label == "present",
                "face_box": None if res.face_box is None else [float(v) for v in res.face_box],
                "face_conf": res.face_conf,
                "eyes_label": res.eyes_label,
                "eyes_conf": res.eyes_conf,
                "eye_points": None if pts is None else [[float(v) for v in q] for q in pts],
            }
            if bg:
                out[name]["background"][p.key] = [c.presence(frame, b) >= c.presence_threshold for b in bg]
            for f in faces_of.get(p.key, []):
                out[name]["given"][f.face_id] = eyes_on_truth(c, frame, p.truths[f.k])
    return out


def end_to_end(answer: dict, face: EyeFace) -> str | None:
    """The cascade's verdict for one labelled face: its eye label when its face box is about that face."""
    if answer["face_box"] is None or matched_face(face.photo.truths, answer["face_box"]) != face.k:
        return None
    return answer["eyes_label"]


# ---- scores ---------------------------------------------------------------------------------------------------
def darker_skinned(path: Path = DARKER_SKIN) -> frozenset[str]:
    """The keys of the photos a person picked as babies with darker skin (train/infant_skin.json says how)."""
    return frozenset(json.loads(path.read_text())["darker_skin"]) if path.is_file() else frozenset()


def score(run: dict, photos: list[Photo], eye_faces: list[EyeFace], darker: frozenset[str] = frozenset()) -> dict:
    """One cascade's presence, face and eye scores by source; presence and face held also on the photos of babies
    with darker skin (`darker`), apart, because an average over all photos hid that presence missed two of them."""
    res: dict = {"presence": {}, "face": {}, "eyes": {}}
    for s in SOURCES:
        mine = [p for p in photos if p.source == s]
        if not mine:
            continue
        res["presence"][s] = rate(
            [run["photo"][p.key]["present"] for p in mine], [p.group for p in mine], by_group=BY_GROUP[s]
        )
        with_face = [p for p in mine if p.truths]
        if with_face:
            scored = [face_score(p.truths, run["photo"][p.key]["face_box"]) for p in with_face]
            groups = [p.group for p in with_face]
            bins = [size_bin(face_side_in_input(p.truths, p.crop)) for p in with_face]
            res["face"][s] = {
                "hit": rate([h for h, _ in scored], groups, by_group=BY_GROUP[s]),
                "iou": mean([v for _, v in scored], groups),
                "hit_by_size": {
                    name: rate(
                        [h for (h, _), b in zip(scored, bins, strict=True) if b == name],
                        [g for g, b in zip(groups, bins, strict=True) if b == name],
                        by_group=BY_GROUP[s],
                    )
                    for name, _lo, _hi in FACE_SIZE_BINS
                },
            }
            if any(run["photo"][p.key]["eye_points"] is not None for p in with_face):
                hits = [any(eye_points_hit(t, run["photo"][p.key]["eye_points"]) for t in p.truths) for p in with_face]
                res["face"][s]["eye_points"] = rate(hits, groups, by_group=BY_GROUP[s])
        faces = [f for f in eye_faces if f.photo.source == s]
        if faces:
            truth, groups = [f.label for f in faces], [f.photo.group for f in faces]
            given = [run["given"][f.face_id] for f in faces]
            res["eyes"][s] = {
                "end_to_end": eye_summary(
                    [end_to_end(run["photo"][f.photo.key], f) for f in faces], truth, groups, by_group=BY_GROUP[s]
                ),
                "eye_stage_on_truth": eye_summary([g[0] for g in given], truth, groups, by_group=BY_GROUP[s]),
                "eye_stage_given": given[0][2],
            }
    bg = [(p, v) for p in photos for v in run["background"].get(p.key, [])]
    if bg:
        res["presence"]["background"] = rate([v for _, v in bg], [p.group for p, _ in bg], by_group=True)
    darker_photos = [p for p in photos if p.key in darker]  # any source, so groups are bootstrapped whole
    if darker_photos:
        res["presence"]["darker_skin"] = rate(
            [run["photo"][p.key]["present"] for p in darker_photos], [p.group for p in darker_photos], by_group=True
        )
    with_face = [p for p in darker_photos if p.truths]
    if with_face:  # end to end, as for each source: a photo called not present has no box
        held = [face_score(p.truths, run["photo"][p.key]["face_box"])[0] for p in with_face]
        res["face"]["darker_skin"] = {"hit": rate(held, [p.group for p in with_face], by_group=True)}
    return res


def score_peers(
    photos: list[Photo], eye_faces: list[EyeFace], dets: dict | None, ears: dict, thr: float | None
) -> dict:
    """BlazeFace's face scores and the iris teacher's eye scores on the same photos and faces (None when missing)."""
    out: dict = {"blazeface": None, "iris": None, "iris_threshold": thr}
    if dets is not None:
        out["blazeface"] = {}
        for s in SOURCES:
            mine = [p for p in photos if p.source == s and p.truths]
            if not mine:
                continue
            picks = [peer_pick(dets.get(p.key, []), p.crop) for p in mine]
            scored = [face_score(p.truths, None if d is None else d["box"]) for p, d in zip(mine, picks, strict=True)]
            pts = [None if d is None else (d["keypoints"]["left_eye"], d["keypoints"]["right_eye"]) for d in picks]
            groups = [p.group for p in mine]
            out["blazeface"][s] = {
                "hit": rate([h for h, _ in scored], groups, by_group=BY_GROUP[s]),
                "iou": mean([v for _, v in scored], groups),
                "eye_points": rate(
                    [any(eye_points_hit(t, q) for t in p.truths) for p, q in zip(mine, pts, strict=True)],
                    groups,
                    by_group=BY_GROUP[s],
                ),
            }
    if thr is not None and eye_faces:
        out["iris"] = {}
        for s in SOURCES:
            faces = [f for f in eye_faces if f.photo.source == s]
            if faces:
                out["iris"][s] = eye_summary(
                    [iris_verdict(ears.get(f.face_id), thr) for f in faces],
                    [f.label for f in faces],
                    [f.photo.group for f in faces],
                    by_group=BY_GROUP[s],
                )
    return out


def _floats(v) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


def worst(run: dict, photos: list[Photo], eye_faces: list[EyeFace], dets: dict | None) -> dict:
    """The face misses (largest truth faces first) and the most confident wrong eye verdicts, as drawable entries."""

    def area(box) -> float:
        return (box[2] - box[0]) * (box[3] - box[1])

    misses = []
    for p in photos:
        a = run["photo"][p.key]
        hit, iou = face_score(p.truths, a["face_box"])
        if not p.truths or hit:
            continue
        t = max(p.truths, key=lambda t: area(t.box))
        if a["face_box"] is None:
            what = "called not present" if not a["present"] else f"no face box (p {a['face_conf']:.2f})"
        else:
            ratio = area(a["face_box"]) / area(t.box)
            what = f"box misses eyes/nose, IoU {iou:.2f}" if ratio <= 2 else f"box {ratio:.1f}x face, IoU {iou:.2f}"
        pick = peer_pick(dets.get(p.key, []), p.crop) if dets is not None else None
        misses.append(
            {
                "key": p.key,
                "what": what,
                "size": round(float(area(t.box)), 1),
                "truth": _floats(t.box),
                "box": a["face_box"],
                "peer": None if pick is None else _floats(pick["box"]),
                "truth_points": [_floats(q) for q in (t.left_eye, t.right_eye, t.nose)],
                "points": a["eye_points"],
            }
        )
    misses.sort(key=lambda m: -m["size"])
    wrong = []
    for f in eye_faces:
        a = run["photo"][f.photo.key]
        said = end_to_end(a, f)
        if said in ("open", "closed") and said != f.label:
            t = f.photo.truths[f.k]
            wrong.append(
                {
                    "key": f.face_id,
                    "what": f"said {said} {a['eyes_conf']:.2f}, person: {f.label}",
                    "conf": a["eyes_conf"],
                    "truth": _floats(t.box),
                    "box": a["face_box"],
                    "peer": None,
                    "truth_points": [_floats(q) for q in (t.left_eye, t.right_eye, t.nose)],
                    "points": a["eye_points"],
                }
            )
    wrong.sort(key=lambda w: -w["conf"])
    return {"face": misses[:WORST], "eyes": wrong[:WORST]}


def evaluate(
    data: Path,
    weights: Path,
    split: str,
    baseline: Path | None = None,
    *,
    limit: int | None = None,
    teacher_faces: Path = TEACHER_FACES,
    teacher_eyes: Path = TEACHER_EYES,
) -> dict:
    """Every score of the split, as a JSON-able dict for the report and the model manifest. `limit`: only the first
    N photos of each source (quick checks)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be val or test, not {split!r}")
    data = Path(data)
    dets, checked = load_teacher_faces(data, Path(teacher_faces))
    labels, ears, geometry, thr = load_eye_labels(Path(teacher_eyes))
    photos = photos_of(data, split, checked, limit)
    eye_faces, unplaced = eye_faces_of(photos, labels, geometry)
    cascades = {"ours": Cascade.load(Path(weights))}
    if baseline is not None:
        cascades["today"] = Cascade.load(Path(baseline))
    runs = run_all(cascades, data, photos, eye_faces)
    counts = {}
    for s in SOURCES:
        mine = [p for p in photos if p.source == s]
        counts[s] = {
            "photos": len(mine),
            "groups": len({p.group for p in mine}),
            "photos_with_face_truth": sum(bool(p.truths) for p in mine),
            "faces": sum(len(p.truths) for p in mine),
            "eye_labelled_faces": sum(f.photo.source == s for f in eye_faces),
        }
    counts[SYRIP]["background_crops"] = sum(len(v) for v in runs["ours"]["background"].values())
    darker = darker_skinned()
    counts["darker_skin_photos"] = sum(p.key in darker for p in photos)
    counts["eye_labels_without_face_truth"] = unplaced
    result = {
        "split": split,
        "weights": cascades["ours"].version,
        "face_size": cascades["ours"].face_size,
        "baseline": cascades["today"].version if baseline is not None else None,
        "limit": limit,
        "truth_note": TRUTH_NOTE,
        "counts": counts,
        **score(runs["ours"], photos, eye_faces, darker),
        "peer": score_peers(photos, eye_faces, dets, ears, thr),
        "today": score(runs["today"], photos, eye_faces, darker) if baseline is not None else None,
        "worst": worst(runs["ours"], photos, eye_faces, dets),
        "missing": [
            *([] if dets is not None else [f"{Path(teacher_faces).name} (BlazeFace peer, baby_photos face truths)"]),
            *([] if labels else [f"{Path(teacher_eyes).name} (person eye labels, iris peer)"]),
        ],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    from train.infant_report import write_report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--weights", type=Path, default=REPO / "models" / "weights")
    ap.add_argument("--split", choices=("val", "test"), required=True)
    ap.add_argument("--baseline", type=Path, default=None, help="another weights folder, scored alike ('today')")
    ap.add_argument("--report", type=Path, default=None, help="markdown report; the contact sheet goes beside it")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of each source")
    ap.add_argument("--teacher-faces", type=Path, default=TEACHER_FACES, help="BlazeFace detections (JSON)")
    ap.add_argument("--teacher-eyes", type=Path, default=TEACHER_EYES, help="person eye labels + iris EARs (JSON)")
    args = ap.parse_args(argv)
    result = evaluate(
        args.data,
        args.weights,
        args.split,
        args.baseline,
        limit=args.limit,
        teacher_faces=args.teacher_faces,
        teacher_eyes=args.teacher_eyes,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.report:
        write_report(result, args.data, args.report)
    print(json.dumps({k: result[k] for k in ("split", "weights", "counts", "presence", "face")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
