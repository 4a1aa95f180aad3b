"""Retrain the vision cascade from the parent's dashboard corrections; deploy it only if it wins on held-out nights.

    python -m train.retrain [--data-dir data] [--shared ../shared/data] [--models models/weights] [--quick]
                            [--config .env] [--threads 2] [--cache DIR]
    python -m train.retrain --rollback [BACKUP_DIR]

Why: the shipped models never saw this nursery (their training data holds no real infant photo), and the
frames a parent reviewed or corrected on the dashboard are the only real ground truth of this camera. This
turns them into a better model without ever deploying a worse one:

1. Ground truth is only what a human reviewed or corrected (Store.labelled_ticks): a correction beats
   "reviewed, model right" (which confirms the model's own output); unreviewed output is never a label.
   The fallback labeller's answers (labeller/, opt-in) are training signal below both (`train_truth`): they fill
   the fields no human labelled, on training nights only; validation and held-out nights use human labels only.
2. Frames are split BY NIGHT (a tick belongs to the local date of ts - 12 h): the newest night and every
   4th night before it are held out. Consecutive frames are near-duplicates: a split by frame would test
   on the training set.
3. Per-stage examples are cut with models/preprocess.py (the tick's own code), added, weighted up, to
   train.vision's base data and trained with train.vision.fit; export and the eye threshold (chosen on
   validation people) are train.vision's own.
4. The current and the candidate cascade run the tick's code (models.cascade.Cascade) on the SAME held-out
   nights. Nothing is chosen on those nights except the verdict itself (PROMOTION_RULE).
5. A win is swapped in under the tick's lock with os.replace, after a backup to DATA/retrain/previous-*/, so
   a tick sees the old set or the new set, never half a file. Every run that trains writes
   DATA/retrain/report-<stamp>.md (+ a gallery of the worst held-out errors) and keeps its candidate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from capture.sources import bassinet_crop
from dashboard.labels import human_state, presence_truth
from dashboard.sessions import night_of  # the sleep log's night: 19:00 and 05:00 are the same night
from db.store import Store, TickRow
from lockfile import TickLock
from models import preprocess as pp
from models.cascade import MANIFEST, MODEL_FILES, OPTIONAL_FILES, Cascade, ModelError
from settings import DEFAULT_ENV_FILE, Settings, cli_settings
from train import face_data
from train.evaluate import carry_optional_stages

HOLD_OUT_EVERY = 4  # the newest night and every 4th before it are held out
VAL_MIN_NIGHTS = 6  # from this many nights on, night k % 4 == 2 (k = 0 newest) is validation (early stopping)
MIN_FRAMES, MIN_NIGHTS, MIN_HELD_OUT = 40, 2, 10
PARENT_SHARE, MAX_REPEAT = 0.3, 20  # the parent's examples are repeated to ~30% of a stage's training set
QUICK_BASE_CAP = 128  # --quick: at most this many base examples per stage and split (tests; the weights are useless)
LOCK_WAIT_S = 120.0
STAGES = ("presence", "face", "eyes")
CLASSES = {
    "presence": ("present", "not_present"),
    "face": ("face", "no_face"),
    "eyes": ("open", "closed"),
    "state": ("awake", "asleep", "unknown", "absent"),
}
SPLITS = {"all": lambda r: True, "day": lambda r: not r.frame.ir, "ir_night": lambda r: r.frame.ir}
GATES = {"presence": "macro_f1", "face": "detected_iou50", "eyes": "macro_f1"}
PROMOTION_RULE = (
    "promote only if, on the held-out nights, the candidate's presence macro F1, face detection rate "
    "(IoU >= 0.5 with the human-confirmed box) and eyes macro F1 are each not worse than the current models', "
    "AND its state accuracy (absent / awake / asleep / unknown, the tick's whole cascade) is strictly better"
)


class RetrainError(RuntimeError):
    """The retrain cannot go on; the message says why in one line."""


@dataclass(frozen=True)
class Labelled:
    """One human-labelled tick whose frame is still on disk."""

    tick_id: int
    ts: float
    ir: bool  # the tick's own infrared flag (capture/night.py)
    truth: dict  # HumanLabel.truth: only human-backed fields
    corrected: bool  # a human changed at least one field (else: reviewed, the model was right)
    tick_box: tuple | None  # the face box the tick itself found (where it put the eye regions)
    night: date
    path: Path
    crop: tuple[int, int, int, int] | None
    teacher: dict = field(default_factory=dict)  # the fallback labeller's fields (TeacherLabel.truth); training only


@dataclass(frozen=True)
class Rec:
    """One held-out answer of one model for one stage."""

    frame: Labelled
    truth: str
    pred: str
    conf: float
    iou: float | None = None
    truth_box: tuple | None = None
    pred_box: tuple | None = None


# ---- ground truth ----------------------------------------------------------------------------------
def unusable(tick: TickRow, settings: Settings) -> str | None:
    """Why a tick's frame cannot be cut (None: it can)."""
    path = settings.data_dir / tick.jpeg_path if tick.jpeg_path else None
    if tick.media_pruned:
        return "frame removed by retention"
    if path is None:
        return "no frame kept (unchanged tick)"
    if not path.is_file():
        return "frame missing on disk"
    if cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8) is None:
        return "frame unreadable"
    return None


def _labelled(tick: TickRow, settings: Settings, truth: dict, corrected: bool, teacher: dict) -> Labelled:
    path, crop = settings.data_dir / str(tick.jpeg_path), bassinet_crop(settings, tick.source)
    return Labelled(
        tick.id, tick.ts, tick.night, truth, corrected, tick.face_box, night_of(tick.ts), path, crop, teacher
    )


def gather(store: Store, settings: Settings) -> tuple[list[Labelled], Counter]:
    """Every human-labelled tick whose JPEG can still be read (with its teacher label, if any), and a count of
    the others by reason."""
    teacher = {tick.id: label.truth() for tick, label in store.teacher_labelled_ticks()}
    frames, skipped = [], Counter()
    for tick, label in store.labelled_ticks():
        if why := unusable(tick, settings):
            skipped[why] += 1
        else:
            frames.append(_labelled(tick, settings, label.truth(tick), bool(label.corrected), teacher.get(tick.id, {})))
    return frames, skipped


def gather_taught(store: Store, settings: Settings, human: set[int]) -> list[Labelled]:
    """Ticks only the fallback labeller labelled (not in `human`), with a readable frame: training signal only."""
    return [
        _labelled(tick, settings, {}, False, label.truth())
        for tick, label in store.teacher_labelled_ticks()
        if tick.id not in human and unusable(tick, settings) is None
    ]


def train_truth(f: Labelled, role: str) -> dict:
    """The labels a frame trains with, field by field: human correction > human review > teacher (`f.truth` already
    puts a correction over what a review confirmed). Teacher labels are training signal only: on validation
    nights (early stopping) only humans count, and held-out frames teach nothing."""
    if role == "held_out":
        return {}
    if role != "train" or not f.teacher:
        return f.truth
    merged = {**f.teacher, **f.truth}
    if (human := presence_truth(f.truth)) is not None:
        merged["presence"] = human  # a human's "eyes closed" says the baby is there, whatever the teacher said
    return merged


def night_roles(nights: set[date]) -> dict[date, str]:
    """held_out: the newest night and every HOLD_OUT_EVERY-th before it; val: k % 4 == 2 once there are enough."""
    roles = {}
    for k, night in enumerate(sorted(nights, reverse=True)):
        if k % HOLD_OUT_EVERY == 0:
            roles[night] = "held_out"
        elif k % HOLD_OUT_EVERY == 2 and len(nights) >= VAL_MIN_NIGHTS:
            roles[night] = "val"
        else:
            roles[night] = "train"
    return roles


def too_few(frames: list[Labelled], roles: dict[date, str]) -> str | None:
    held = sum(roles[f.night] == "held_out" for f in frames)
    if len(frames) >= MIN_FRAMES and len(roles) >= MIN_NIGHTS and held >= MIN_HELD_OUT:
        return None
    return (
        f"retrain: too few human labels to hold a night out: need at least {MIN_FRAMES} labelled frames (with their "
        f"picture) over at least {MIN_NIGHTS} nights, {MIN_HELD_OUT} of them in held-out nights; have {len(frames)} "
        f"over {len(roles)} night(s), {held} held out. Review or correct more frames on the dashboard."
    )


def eye_box(f: Labelled) -> tuple | None:
    """Where the eye regions go: the human-confirmed face box, else the box the tick itself placed them in."""
    if "face_box" in f.truth:
        return f.truth["face_box"]  # None: a human said there is no face to see
    return f.tick_box


# ---- examples -------------------------------------------------------------------------------------
def examples(frame: np.ndarray, f: Labelled) -> dict[str, list[tuple[np.ndarray, object]]]:
    """Per-stage (input, target) pairs of one labelled frame, cut exactly as the tick cuts them."""
    out: dict[str, list] = {s: [] for s in STAGES}
    crop = pp.crop_box(frame, f.crop)
    presence = presence_truth(f.truth)
    if presence is not None:
        out["presence"].append((pp.square_rgb(frame, crop, pp.PRESENCE_SIZE), int(presence == "present")))
    if presence == "not_present" or (presence == "present" and "face_box" in f.truth):
        box = f.truth.get("face_box") if presence == "present" else None
        out["face"].append(face_data.example(frame, crop, box))  # a human's box carries no eye centres
    eyes, box = f.truth.get("eyes"), eye_box(f)
    if presence != "not_present" and eyes in CLASSES["eyes"] and box is not None:
        for region in pp.eye_regions(box):
            out["eyes"].append((pp.eye_gray(frame, region)[:, :, 0], int(eyes == "open")))
    return out


def parent_arrays(frames: list[Labelled], roles: dict[date, str]) -> dict[str, np.ndarray]:
    """'{stage}_{train|val}_{x|y}' arrays of the parent's frames on training and validation nights."""
    parts: dict[str, list] = {}
    for f in tqdm(frames, desc="examples", leave=False):
        role = roles.get(f.night, "train")  # a night that only the teacher labelled can only train
        truth = train_truth(f, role)
        if not truth:
            continue
        for stage, pairs in examples(cv2.imread(str(f.path)), replace(f, truth=truth)).items():
            for x, y in pairs:
                parts.setdefault(f"{stage}_{role}_x", []).append(x)
                parts.setdefault(f"{stage}_{role}_y", []).append(y)
    return {
        k: np.stack(v) if k.endswith("_x") else np.asarray(v, np.float32 if k.startswith("face") else np.int64)
        for k, v in parts.items()
    }


def cap_base(base: dict[str, np.ndarray], cap: int) -> dict[str, np.ndarray]:
    """Every k-th example of each stage/split (all its arrays alike), at most `cap` of them."""
    out = {}
    for key, arr in base.items():
        stage, split = key.split("_")[:2]
        out[key] = arr[:: max(1, math.ceil(len(base[f"{stage}_{split}_y"]) / cap))]
    return out


def repeat_factor(n_base: int, n_parent: int) -> int:
    if n_parent == 0:
        return 0
    return int(min(MAX_REPEAT, max(1, math.ceil(PARENT_SHARE / (1 - PARENT_SHARE) * n_base / n_parent))))


# ---- training -------------------------------------------------------------------------------------
def train_candidate(base: dict, parent: dict, out_dir: Path, shared: Path, quick: bool, threads: int) -> dict:
    """train.vision's loop on base + the parent's examples; exported and scored by train.vision; its manifest."""
    import torch

    from train import vision

    cfg = vision.QUICK if quick else vision.FULL
    torch.set_num_threads(threads)
    started, models, fits = time.time(), {}, {}
    for kind in STAGES:
        xb, yb = base[f"{kind}_train_x"], base[f"{kind}_train_y"]
        xp, yp = parent.get(f"{kind}_train_x", xb[:0]), parent.get(f"{kind}_train_y", yb[:0])
        r = repeat_factor(len(xb), len(xp))
        xva = np.concatenate([base[f"{kind}_val_x"], parent.get(f"{kind}_val_x", xb[:0])])
        yva = np.concatenate([base[f"{kind}_val_y"], parent.get(f"{kind}_val_y", yb[:0])])
        print(f"retrain: {kind}: {len(xb)} base + {len(xp)} parent examples x{r}, {len(xva)} validation", flush=True)
        xtr = np.concatenate([xb, *([xp] * r)])
        ytr = np.concatenate([yb, *([yp] * r)])
        models[kind], fits[kind] = vision.fit_stage(kind, xtr, ytr, xva, yva, cfg["epochs"][kind], cfg["patience"])
        fits[kind]["parent_examples"] = {"train": len(xp), "repeat": r, "val": len(xva) - len(base[f"{kind}_val_x"])}
    train_info = {
        "wall_time_s": round(time.time() - started, 1),
        "torch_threads": threads,
        "torch_version": torch.__version__,
        "init": "from scratch (random init, no download)",
        "seed": vision.SEED,
        "quick": quick,
        "epochs": cfg["epochs"],
        "patience": cfg["patience"],
        "augmentation": vision.AUG,
        "parent_share": PARENT_SHARE,
    }
    print("retrain: exporting the candidate and scoring it on the base test split", flush=True)
    return vision.export_and_evaluate(models, fits, base, out_dir, train_info, None, shared)


# ---- held-out evaluation (the tick's code path) ---------------------------------------------------
def load_cascade(models_dir: Path, settings: Settings) -> Cascade:
    return Cascade.load(
        models_dir,
        presence_threshold=settings.presence_threshold,
        face_threshold=settings.face_threshold,
        eye_threshold=settings.eye_threshold,
    )


def answers(cascade: Cascade, frames: list[Labelled]) -> dict[str, list[Rec]]:
    """Each stage on its own (given the human's inputs), and the whole cascade's state, on every held-out frame."""
    recs: dict[str, list[Rec]] = {s: [] for s in CLASSES}
    for f in tqdm(frames, desc=f"held-out {cascade.version}", leave=False):
        img = cv2.imread(str(f.path))
        crop = pp.crop_box(img, f.crop)
        presence = presence_truth(f.truth)
        if presence is not None:
            p = cascade.presence(img, crop)
            pred = "present" if p >= cascade.presence_threshold else "not_present"
            recs["presence"].append(Rec(f, presence, pred, p if pred == "present" else 1 - p))
        if presence == "present" and "face_box" in f.truth:
            box, conf = cascade.face(img, crop)
            found = conf >= cascade.face_threshold and box[2] - box[0] >= 4 and box[3] - box[1] >= 4
            t = f.truth["face_box"]
            iou = None if t is None else (pp.iou(box, t) if found else 0.0)
            pred = "face" if found and (t is None or iou >= 0.5) else "no_face"
            conf = conf if found else 1 - conf
            recs["face"].append(Rec(f, "no_face" if t is None else "face", pred, conf, iou, t, box if found else None))
        ebox = eye_box(f)
        if presence != "not_present" and f.truth.get("eyes") in CLASSES["eyes"] and ebox is not None:
            label, conf = cascade.eyes(img, ebox)
            recs["eyes"].append(Rec(f, f.truth["eyes"], label, conf, truth_box=ebox))
        if (state := human_state(f.truth)) is not None:
            r = cascade.run(img, f.crop)
            conf = r.eyes_conf if r.eyes_conf is not None else r.presence_conf
            recs["state"].append(Rec(f, state, r.state, conf, truth_box=f.truth.get("face_box"), pred_box=r.face_box))
    return recs


def scores(recs: list[Rec], classes: tuple[str, ...]) -> dict:
    """Per class precision / recall / F1 with counts; 'unknown' answers count as misses, never as a class."""
    from train.evaluate import classification

    out = classification([r.pred for r in recs], [r.truth for r in recs], classes, labels=classes)
    faces = [r for r in recs if r.truth == "face"]
    if "face" in classes:
        out["detected_iou50"] = round(float(np.mean([r.pred == "face" for r in faces])), 4) if faces else None
        out["mean_iou"] = round(float(np.mean([r.iou for r in faces])), 4) if faces else None
    return out


def metrics(recs: dict[str, list[Rec]]) -> dict:
    """{stage: {all|day|ir_night: scores}}."""
    return {
        stage: {split: scores([r for r in rs if keep(r)], CLASSES[stage]) for split, keep in SPLITS.items()}
        for stage, rs in recs.items()
    }


def decide(cur: dict, cand: dict) -> tuple[bool, list[str]]:
    """PROMOTION_RULE, with one line per comparison."""
    win, why = True, []
    for stage, key in GATES.items():
        a, b = cur[stage]["all"][key], cand[stage]["all"][key]
        if a is None:
            why.append(f"{stage}: no held-out frame labelled for this stage, not compared")
        elif b < a:
            win = False
            why.append(f"{stage} {key} {b} is worse than the current {a}")
        else:
            why.append(f"{stage} {key} {b} is not worse than the current {a}")
    a, b = cur["state"]["all"]["accuracy"], cand["state"]["all"]["accuracy"]
    if a is None:
        win = False
        why.append("no held-out frame has a human state (absent / awake / asleep / unknown) to compare on")
    elif b <= a:
        win = False
        why.append(f"state accuracy {b} is not better than the current {a}")
    else:
        why.append(f"state accuracy {b} beats the current {a}")
    return win, why


# ---- promotion ------------------------------------------------------------------------------------
def unique_dir(parent: Path, name: str) -> Path:
    path, n = parent / name, 1
    while path.exists():
        n += 1
        path = parent / f"{name}-{n}"
    return path


@contextlib.contextmanager
def tick_lock(settings: Settings, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the tick's own lock (monitor.py): no tick loads models while the files are swapped."""
    lock = TickLock(settings.lock_path)
    waiting = f"retrain: waiting for the running tick to finish (lock {settings.lock_path})"
    try:
        lock.wait(wait_s, on_wait=lambda: print(waiting, flush=True))
    except TimeoutError:
        raise RetrainError(f"a tick held {settings.lock_path} for {wait_s:.0f} s; nothing was swapped") from None
    try:
        yield
    finally:
        lock.release()


def install(settings: Settings, onnx_dir: Path, manifest: dict, backup_prefix: str = "previous") -> Path:
    """Back the current weights up, then swap in onnx_dir's files and `manifest` atomically; returns the backup."""
    models_dir = settings.models_dir
    backup = unique_dir(settings.data_dir / "retrain", f"{backup_prefix}-{datetime.now():%Y%m%d-%H%M%S}")
    backup.mkdir(parents=True)
    optional = [f for f in OPTIONAL_FILES.values() if (models_dir / f).is_file() or (onnx_dir / f).is_file()]
    for name in (*MODEL_FILES.values(), *optional, MANIFEST):
        if (models_dir / name).is_file():
            shutil.copy2(models_dir / name, backup / name)
    incoming = [f for f in optional if (onnx_dir / f).is_file()]
    staged = {name: models_dir / f".{name}.incoming" for name in (*MODEL_FILES.values(), *incoming, MANIFEST)}
    try:
        for name, tmp in staged.items():  # whole files next to their targets (same filesystem), flushed to disk
            is_manifest = name == MANIFEST
            data = (json.dumps(manifest, indent=1) + "\n").encode() if is_manifest else (onnx_dir / name).read_bytes()
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        with tick_lock(settings):
            for name, tmp in staged.items():  # the manifest last
                os.replace(tmp, models_dir / name)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return backup


def rollback(settings: Settings, source: Path | None) -> int:
    """Put back the newest previous-* (what the last promotion replaced), or `source`, with the same atomic swap.

    What it replaces goes to rolled-back-*, so running it twice is harmless and `--rollback that-folder` undoes it."""
    backups = sorted((settings.data_dir / "retrain").glob("previous-*"))
    src = source or (backups[-1] if backups else None)
    if src is None or not all((src / n).is_file() for n in (*MODEL_FILES.values(), MANIFEST)):
        where = src or settings.data_dir / "retrain" / "previous-*"
        print(f"retrain: no complete backup to roll back to ({where})", file=sys.stderr)
        return 2
    manifest = json.loads((src / MANIFEST).read_text())
    saved = install(settings, src, manifest, backup_prefix="rolled-back")
    print(f"retrain: rolled {settings.models_dir} back to {manifest['version']} from {src}; the replaced set: {saved}")
    return 0


def retrain(settings: Settings, shared: Path, quick: bool, threads: int, cache: Path | None) -> int:
    from train.retrain_report import gallery, summary, worst, write_report  # it imports this module

    if not settings.db_path.is_file():
        print(f"retrain: no database at {settings.db_path}: run the monitor and label frames first", file=sys.stderr)
        return 2
    with Store.open(settings.db_path) as store:
        frames, skipped = gather(store, settings)
        taught = gather_taught(store, settings, {f.tick_id for f in frames})
    roles = night_roles({f.night for f in frames})
    if (problem := too_few(frames, roles)) is not None:
        print(problem, file=sys.stderr)
        return 2
    try:  # the weights to beat must load before 40 minutes of training, not after
        current = load_cascade(settings.models_dir, settings)
    except ModelError as exc:
        raise RetrainError(str(exc)) from None
    from train import datasets

    started = time.time()

    out = settings.data_dir / "retrain"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    cand_dir = unique_dir(out, f"candidate-{stamp}")
    held = [f for f in frames if roles[f.night] == "held_out"]
    print(f"retrain: {len(frames)} labelled frames over {len(roles)} nights, {len(held)} held out", flush=True)
    taught = [f for f in taught if roles.get(f.night, "train") == "train"]
    if taught:
        print(f"retrain: plus {len(taught)} frames only the fallback labeller labelled, for training", flush=True)
    parent = parent_arrays(frames + taught, roles)
    print("retrain: loading train.vision's base data from", shared, flush=True)
    base = datasets.load_or_build(shared, cache, 0.05 if quick else 1.0)
    base = cap_base(base, QUICK_BASE_CAP) if quick else base
    carry_optional_stages(settings.models_dir, cand_dir)  # the eye finder is not retrained: the candidate keeps it
    cand_manifest = train_candidate(base, parent, cand_dir, shared, quick, threads)
    cand_manifest["version"] = cand_manifest["version"].replace("vision-", "retrain-", 1)

    print(f"retrain: scoring the current and the candidate models on {len(held)} held-out frames", flush=True)
    recs = {"current": answers(current, held)}
    recs["candidate"] = answers(load_cascade(cand_dir, settings), held)
    cur, cand = metrics(recs["current"]), metrics(recs["candidate"])
    promoted, why = decide(cur, cand)

    report = unique_dir(out, f"report-{stamp}.md")
    used = Counter(roles[f.night] for f in frames)
    info = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": quick,
        "current_version": current.version,
        "candidate_version": cand_manifest["version"],
        "candidate_dir": str(cand_dir),
        "frames": {
            "labelled_ticks": len(frames) + sum(skipped.values()),
            "used": len(frames),
            "corrected": sum(f.corrected for f in frames),
            "reviewed_only": sum(not f.corrected for f in frames),
            "teacher_only": len(taught),  # fallback labeller, training nights only; not counted in "used"
            "per_role": dict(used),
            "skipped": dict(skipped),
        },
        "nights": {str(n): {"role": roles[n], "frames": sum(f.night == n for f in frames)} for n in sorted(roles)},
        "examples": {k: cand_manifest["models"][k]["training"]["parent_examples"] for k in MODEL_FILES},
        "candidate_headline": cand_manifest["headline"],
        "training": cand_manifest["training"],
        "gallery": str(report.with_name(report.stem + "-errors.png")),
    }
    cand_manifest["command"] = "python -m train.retrain" + (" --quick" if quick else "")
    cand_manifest["trained_on"] += f"; plus {len(frames) - len(held)} frames of this nursery labelled by a human"
    cand_manifest["retrain"] = {
        "version": cand_manifest["version"],
        "date": info["date"],
        "previous_version": current.version,
        "human_labelled_frames": info["frames"],
        "nights": info["nights"],
        "rule": PROMOTION_RULE,
        "promoted": promoted,
        "why": why,
        "held_out": {"current": cur, "candidate": cand},
        "report": str(report),
    }
    (cand_dir / MANIFEST).write_text(json.dumps(cand_manifest, indent=1) + "\n")
    if promoted:
        info["backup"] = str(install(settings, cand_dir, cand_manifest))
    errors = [(who, stage, r) for who in ("candidate", "current") for stage, r in worst(recs[who])]
    gallery(errors, Path(info["gallery"]))
    if not errors:
        info["gallery"] = None
    write_report(report, info, cur, cand, recs, promoted, why)
    print(summary(info, cur, cand, promoted, why))
    print(f"retrain: done in {(time.time() - started) / 60:.1f} min; report {report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="BILBO's data dir (default: DATA_DIR, i.e. data/)")
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"), help="train.vision's base data sets")
    ap.add_argument("--models", type=Path, default=None, help="the weights to beat and replace (default: MODELS_DIR)")
    ap.add_argument("--quick", action="store_true", help="train.vision's QUICK config: tiny, for tests")
    ap.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="folder of train.vision's cut data (built if missing)")
    ap.add_argument(
        "--rollback", nargs="?", const="", default=None, metavar="BACKUP_DIR",
        help="put back the models the newest (or the given) promotion replaced, and exit",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if (settings := cli_settings("retrain", args.config)) is None:
        return 2
    settings = replace(
        settings,
        data_dir=(args.data_dir or settings.data_dir).resolve(),
        models_dir=(args.models or settings.models_dir).resolve(),
    )
    try:
        if args.rollback is not None:
            return rollback(settings, Path(args.rollback) if args.rollback else None)
        return retrain(settings, args.shared, args.quick, args.threads, args.cache)
    except RetrainError as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
