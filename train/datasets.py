"""The vision data sets: every source cut into the three stages' inputs with models/preprocess.py.

    build_all(data_root) -> {"presence": Split, "face": Split, "eyes": Split}, each with train/val/test

Sources (read from ../shared/data by path, never copied into the repo):
- sample: the built-in sample camera's renders (synthetic; exact boxes and eye positions);
- crib: infant_crib_synthetic (generated images): baby-box crops = present, crops that avoid every
  baby box = not_present, face boxes from the Haar teacher (train/teacher.py) where it was trusted;
- mask: face_boxes_mask (real adult photos with face boxes): face stage only;
- mrl: mrl_eyes (real near-infrared single-eye crops), split by subject_id;
- drowsy: drowsiness_eyes_rgb (colour eye crops, no person ids, near-duplicates): train only;
- syrip, baby: the REAL infant photos (syrip_real, baby_photos), split by group: train/infant_sources.py.
Image-level sources (crib, mask) are split by image with a fixed seed; every crib image is a
different generated infant, so there is no person to leak.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from capture import sample_camera as sc
from models import preprocess as pp
from train import face_data as fd
from train import infant_sources

SPLIT_SEED = 7
SAMPLE_SEEDS = {"train": 11, "val": 12, "test": 13}
SAMPLE_COUNTS = {  # frames per eye state (None = empty bassinet); half of them infrared
    "train": {None: 1000, "open": 500, "closed": 500, "away": 250},
    "val": {None: 120, "open": 60, "closed": 60, "away": 30},
    "test": {None: 200, "open": 100, "closed": 100, "away": 50},
}
# Extra sample-camera frames for the presence stage only (train split): empty bassinets with
# skin-coloured crumpled blankets and toys are the hard negatives, and there are no real ones.
SAMPLE_PRESENCE_EXTRA = {"seed": 14, None: 1500, "open": 350, "closed": 350, "away": 300}
MRL_HELD_OUT = {"test": 6, "val": 4}  # whole subjects, drawn from those with >= 100 crops of each class
CROPS_PER_FACE = {"train": 6, "val": 1, "test": 1}
NEG_CROPS_PER_IMAGE = {"train": 3, "val": 2, "test": 2}
EYE_CROPS_PER_SAMPLE_EYE = 1  # per eye per training frame (each frame has two eyes)
# Training eye crops move by up to EYE_JITTER of their side and scale by EYE_SCALE: the tick cuts them at
# predicted eye centres, which are off by a fraction of an eye on hard frames.
EYE_JITTER, EYE_SCALE = 0.2, (0.8, 1.3)
# Face box of a sample-camera head in head-local units (x right, y down, units of head height):
# cheek to cheek and brow to chin, the convention of real face boxes (not the hair-included head box).
SAMPLE_FACE_LOCAL = (-0.38, -0.2, 0.38, 0.5)
SAMPLE_EYE_LOCAL = ((-0.19, 0.1), (0.19, 0.1))


@dataclass
class Part:
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    source: list = field(default_factory=list)
    night: list = field(default_factory=list)
    ref: list = field(default_factory=list)  # where the example came from (path or seed/index)

    def add(self, x, y, source, night, ref):
        self.x.append(x)
        self.y.append(y)
        self.source.append(source)
        self.night.append(bool(night))
        self.ref.append(str(ref))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}_x": np.stack(self.x) if self.x else np.zeros((0, 1, 1, 3), np.uint8),
            f"{prefix}_y": np.asarray(self.y, np.float32 if prefix.startswith("face") else np.int64),
            f"{prefix}_source": np.asarray(self.source),
            f"{prefix}_night": np.asarray(self.night, bool),
            f"{prefix}_ref": np.asarray(self.ref),
        }


# ---- sample camera --------------------------------------------------------------------------------
def _local_to_frame(baby, lx: float, ly: float) -> tuple[float, float]:
    t = math.radians(baby.angle)
    x, y = lx * baby.h, ly * baby.h
    return (baby.cx + x * math.cos(t) - y * math.sin(t), baby.cy + x * math.sin(t) + y * math.cos(t))


def sample_face_box(baby) -> pp.Box:
    x1, y1, x2, y2 = SAMPLE_FACE_LOCAL
    pts = [_local_to_frame(baby, x, y) for x in (x1, x2) for y in (y1, y2)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def render_with_geometry(rng: np.random.Generator, presence: bool, eyes: str | None, night: bool):
    """sample_camera.render_scene, step for step, also returning the face box and eye centres."""
    room = sc._sample_room(rng, night)
    baby = sc._sample_baby(rng) if presence else None
    extras = sc._sample_extras(rng, baby)
    img = sc._draw(room, baby, eyes if presence else None, night, extras, int(rng.integers(1 << 62)))
    if baby is None or eyes == "away":
        return img, None, None
    return img, sample_face_box(baby), [_local_to_frame(baby, *e) for e in SAMPLE_EYE_LOCAL]


def eye_geometry_fit(n: int = 300, seed: int = 99) -> dict:
    """Where the eyes fall inside the sample face box: the measurement behind pp.EYE_CENTRES."""
    rng = np.random.default_rng(seed)
    fx, fy = [[], []], [[], []]
    for i in range(n):
        _img, box, eyes = render_with_geometry(rng, True, "open", i % 2 == 0)
        w, h = box[2] - box[0], box[3] - box[1]
        for k, (ex, ey) in enumerate(eyes):
            fx[k].append((ex - box[0]) / w)
            fy[k].append((ey - box[1]) / h)
    return {
        "left": (round(float(np.mean(fx[0])), 3), round(float(np.mean(fy[0])), 3)),
        "right": (round(float(np.mean(fx[1])), 3), round(float(np.mean(fy[1])), 3)),
        "sd_x": round(float(np.std(fx[0] + fx[1])), 3),
        "sd_y": round(float(np.std(fy[0] + fy[1])), 3),
    }


def add_sample(split: str, out: dict[str, Part], limit: float = 1.0) -> None:
    rng = np.random.default_rng(SAMPLE_SEEDS[split])
    specs = [(e, i % 2 == 0) for e, n in SAMPLE_COUNTS[split].items() for i in range(max(1, int(n * limit)))]
    for i, (eyes, night) in enumerate(tqdm(specs, desc=f"sample {split}", leave=False)):
        frame, face, eye_centres = render_with_geometry(rng, eyes is not None, eyes, night)
        crop = sc.BASSINET_CROP
        out["presence"].add(pp.square_rgb(frame, crop, pp.PRESENCE_SIZE), int(eyes is not None), "sample", night, i)
        # The sample head's first eye (image left when upright) is the baby's own right eye.
        both = (eye_centres[1], eye_centres[0]) if face else None
        if eyes is not None or i % 3 == 0:
            angle = fd.training_angle(rng, 0.2) if split == "train" else 0.0
            out["face"].add(*fd.example(frame, crop, face, both, angle), "sample", night, i)
        if eyes in ("open", "closed"):
            label = int(eyes == "open")
            if split == "train":
                side = pp.eye_side(face, both)
                angle = math.degrees(math.atan2(both[0][1] - both[1][1], both[0][0] - both[1][0]))
                for c in both:
                    for _ in range(EYE_CROPS_PER_SAMPLE_EYE):
                        cx, cy = (
                            c[0] + rng.uniform(-EYE_JITTER, EYE_JITTER) * side,
                            c[1] + rng.uniform(-0.1, 0.1) * side,
                        )
                        crop_u8 = pp.upright_eye(
                            frame, (cx, cy), angle + rng.normal(0, 12), side * rng.uniform(*EYE_SCALE)
                        )
                        out["eyes"].add(crop_u8[:, :, 0], label, "sample", night, i)
            else:  # the tick's path: both eyes cut upright at their centres
                for crop_u8 in pp.eye_pair(frame, face, both):
                    out["eyes"].add(crop_u8[:, :, 0], label, "sample", night, i)


def add_sample_presence(out: dict[str, Part], limit: float = 1.0) -> None:
    rng = np.random.default_rng(SAMPLE_PRESENCE_EXTRA["seed"])
    specs = [
        (e, i % 2 == 0) for e, n in SAMPLE_PRESENCE_EXTRA.items() if e != "seed" for i in range(max(1, int(n * limit)))
    ]
    for i, (eyes, night) in enumerate(tqdm(specs, desc="sample presence extra", leave=False)):
        frame, _truth = sc.render_scene(rng, presence=eyes is not None, eyes=eyes, night=night)
        x = pp.square_rgb(frame, sc.BASSINET_CROP, pp.PRESENCE_SIZE)
        out["presence"].add(x, int(eyes is not None), "sample", night, f"extra{i}")


# ---- image sources -----------------------------------------------------------------------------
def _split_of(keys: list[str], seed: int = SPLIT_SEED, val: float = 0.15, test: float = 0.15) -> dict[str, str]:
    keys = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(keys))
    n_test, n_val = round(len(keys) * test), round(len(keys) * val)
    return {keys[j]: ("test" if r < n_test else "val" if r < n_test + n_val else "train") for r, j in enumerate(order)}


def _crop_px(img: np.ndarray, box) -> tuple[int, int, int, int]:
    return pp.crop_box(img, tuple(round(v) for v in box))


def _overlap(a, b) -> float:
    """Area of a∩b over the area of b."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-6, (b[2] - b[0]) * (b[3] - b[1]))


def add_crib(data: Path, parts: dict[str, dict[str, Part]]) -> None:
    from train.teacher import load_or_run

    root = data / "images" / "infant_crib_synthetic"
    faces = load_or_run(data)
    split = _split_of(list(faces))
    for p, entries in tqdm(sorted(faces.items()), desc="crib", leave=False):
        s = split[p]
        rng = np.random.default_rng([SPLIT_SEED, int.from_bytes(p.encode()[-12:], "little") % (1 << 31)])
        img = cv2.imread(str(root / p))
        h, w = img.shape[:2]
        boxes = [b for b, _f in entries]
        for k, (box, face) in enumerate(entries):
            for _ in range(2 if s == "train" else 1):
                bw, bh = box[2] - box[0], box[3] - box[1]
                m = rng.uniform(0.05, 0.3, 4) if s == "train" else np.full(4, 0.15)
                crop = _crop_px(img, (box[0] - m[0] * bw, box[1] - m[1] * bh, box[2] + m[2] * bw, box[3] + m[3] * bh))
                parts[s]["presence"].add(pp.square_rgb(img, crop, pp.PRESENCE_SIZE), 1, "crib", False, f"{p}#{k}")
                if face is not None:
                    angle = fd.training_angle(rng, 0.2) if s == "train" else 0.0
                    parts[s]["face"].add(*fd.example(img, crop, face, None, angle), "crib", False, f"{p}#{k}")
        for j in range(NEG_CROPS_PER_IMAGE[s]):
            for _try in range(30):
                side = rng.uniform(0.2, 0.45) * min(w, h)
                x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
                crop = (x1, y1, x1 + side, y1 + side)
                if all(_overlap(b, crop) < 0.02 for b in boxes):
                    c = _crop_px(img, crop)
                    parts[s]["presence"].add(pp.square_rgb(img, c, pp.PRESENCE_SIZE), 0, "crib", False, f"{p}~{j}")
                    if j == 0:
                        parts[s]["face"].add(*fd.example(img, c, None), "crib", False, p)
                    break


def add_mask(data: Path, parts: dict[str, dict[str, Part]]) -> None:
    root = data / "images" / "face_boxes_mask"
    with open(root / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    by_img: dict[str, list] = {}
    for r in rows:
        by_img.setdefault(r["path"], []).append(tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2")))
    split = _split_of(list(by_img))
    for p, faces in tqdm(sorted(by_img.items()), desc="mask", leave=False):
        s = split[p]
        rng = np.random.default_rng([SPLIT_SEED + 1, int.from_bytes(p.encode()[-12:], "little") % (1 << 31)])
        img = cv2.imread(str(root / p))
        for k, face in enumerate(faces):
            fw, fh = face[2] - face[0], face[3] - face[1]
            made = 0
            for _try in range(40):
                if made >= CROPS_PER_FACE[s]:
                    break
                frac = rng.uniform(0.2, 0.6) if s == "train" else 0.35 + 0.1 * _try / 40
                side = max(fw, fh) / frac
                ox, oy = (rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)) if s == "train" else (0.5, 0.5)
                cx1, cy1 = face[0] - ox * (side - fw), face[1] - oy * (side - fh)
                crop = _crop_px(img, (cx1, cy1, cx1 + side, cy1 + side))
                if _overlap(crop, face) < 0.98:
                    continue  # the face must lie wholly inside
                if any(_overlap(crop, o) > 0.3 for j, o in enumerate(faces) if j != k):
                    continue  # a second face in view would make "the" face ambiguous
                angle = fd.training_angle(rng, 0.0) if s == "train" else 0.0
                parts[s]["face"].add(*fd.example(img, crop, face, None, angle), "mask", False, f"{p}#{k}")
                made += 1


def mrl_subject_split(data: Path) -> dict[str, str]:
    with open(data / "images" / "mrl_eyes" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["subject_id"], {"open": 0, "closed": 0})[r["label"]] += 1
    eligible = sorted(s for s, c in counts.items() if min(c.values()) >= 100)
    pick = np.random.default_rng(SPLIT_SEED).permutation(eligible)
    n_test, n_val = MRL_HELD_OUT["test"], MRL_HELD_OUT["val"]
    split = {s: "train" for s in counts}
    split.update({s: "test" for s in pick[:n_test]})
    split.update({s: "val" for s in pick[n_test : n_test + n_val]})
    return split


def add_eyes(data: Path, parts: dict[str, dict[str, Part]], limit: float = 1.0) -> None:
    root = data / "images" / "mrl_eyes"
    split = mrl_subject_split(data)
    with open(root / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    step = max(1, round(1 / limit))
    for r in tqdm(rows[::step], desc="mrl", leave=False):
        img = cv2.imread(str(root / r["path"]), cv2.IMREAD_GRAYSCALE)
        ref = f"{r['path']}|{r['subject_id']}|glasses={r['glasses']}|refl={r['reflections']}"
        parts[split[r["subject_id"]]]["eyes"].add(pp.eye_gray(img)[:, :, 0], int(r["label"] == "open"), "mrl", 1, ref)
    root = data / "images" / "drowsiness_eyes_rgb"
    with open(root / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    for r in tqdm(rows[::step], desc="drowsy", leave=False):
        img = cv2.imread(str(root / r["path"]))
        parts["train"]["eyes"].add(pp.eye_gray(img)[:, :, 0], int(r["label"] == "open"), "drowsy", 0, r["path"])


SOURCES = ("sample", "sample_presence", "crib", "mask", "eyes_real", "syrip", "baby")


def build_source(name: str, data: Path, limit: float = 1.0) -> dict[str, np.ndarray]:
    """One source's train/val/test arrays, keyed '{stage}_{split}_{x|y|source|night|ref}'."""
    parts = {s: {k: Part() for k in ("presence", "face", "eyes")} for s in ("train", "val", "test")}
    if name == "sample":
        for s in parts:
            add_sample(s, parts[s], limit)
    elif name == "sample_presence":
        add_sample_presence(parts["train"], limit)
    elif name == "crib":
        add_crib(data, parts)
    elif name == "mask":
        add_mask(data, parts)
    elif name == "syrip":
        infant_sources.add_syrip(data, parts)
    elif name == "baby":
        infant_sources.add_baby_photos(data, parts)
    else:
        add_eyes(data, parts, limit)
    out: dict[str, np.ndarray] = {}
    for s, stages in parts.items():
        for stage, part in stages.items():
            if part.x:
                out.update(part.arrays(f"{stage}_{s}"))
    return out


def _merge(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = sorted({k for c in chunks for k in c})
    return {k: np.concatenate([c[k] for c in chunks if k in c]) for k in keys}


def _cut_at_input_sizes(arrays: dict[str, np.ndarray]) -> bool:
    """Whether a cached source's inputs have the sides the code cuts now (a cache outlives a change of them)."""
    return all(
        len(arrays[key]) == 0 or arrays[key].shape[1] == pp.INPUT_SIZES[key.split("_")[0]]
        for key in arrays
        if key.endswith("_x")
    )


def load_or_build(data: Path, cache: Path | None = None, limit: float = 1.0) -> dict[str, np.ndarray]:
    """Every stage's train/val/test arrays, from cache_dir/{source}.npz where present (built and
    saved there otherwise). limit < 1 keeps a fraction of the sample camera and eye sets (quick runs)."""
    chunks = []
    for name in SOURCES:
        limited = limit != 1.0 and name in ("sample", "sample_presence", "eyes_real")
        path = cache / f"{name}{f'-{limit}' if limited else ''}.npz" if cache is not None else None
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                cached = {k: z[k] for k in z.files}
            if _cut_at_input_sizes(cached):
                chunks.append(cached)
                continue
            print(f"{path} was cut at other input sizes than models/preprocess.py's: rebuilding it")
        arrays = build_source(name, data, limit)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **arrays)
        chunks.append(arrays)
    return _merge(chunks)


def counts(arrays: dict[str, np.ndarray]) -> dict:
    """{stage: {split: {source: {label: n}}}} for the manifest and the report."""
    out: dict = {}
    for key in arrays:
        if not key.endswith("_source"):
            continue
        stage, split = key.split("_")[:2]
        src, y = arrays[key], arrays[f"{stage}_{split}_y"]
        lab = (y[:, 0] > 0.5).astype(int) if y.ndim == 2 else y
        names = ("no_face", "face") if stage == "face" else ("closed", "open") if stage == "eyes" else None
        names = names or ("not_present", "present")
        for s in sorted(set(src.tolist())):
            m = src == s
            out.setdefault(stage, {}).setdefault(split, {})[s] = {
                n: int((lab[m] == i).sum()) for i, n in enumerate(names)
            }
    return out
