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
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from models import preprocess as pp
from models.cascade import MANIFEST, MODEL_FILES, OPTIONAL_FILES
from models.networks import EYE_CLASSES, FACE_OUTPUTS, PRESENCE_CLASSES, WIDTH_MULT
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
        from train.vision_report import write_report

        write_report(report, manifest, results, errors)
    return manifest


def carried_stages(weights: Path) -> dict:
    """The manifest entries of the optional stages (OPTIONAL_FILES: the eye finder, trained by its own command)
    that `weights` holds with their files: kept when this module writes the three stages' manifest anew."""
    path = weights / MANIFEST
    if not path.is_file():
        return {}
    old = json.loads(path.read_text()).get("models", {})
    return {k: old[k] for k, f in OPTIONAL_FILES.items() if k in old and (weights / f).is_file()}


def carry_optional_stages(src: Path, dst: Path) -> None:
    """Copy the optional stages' files and manifest entries from the weights in src to dst, where write_manifest
    keeps them: a retrain trains the three stages and keeps the eye finder it had."""
    carried = carried_stages(src)
    if not carried:
        return
    dst.mkdir(parents=True, exist_ok=True)
    for k in carried:
        shutil.copy2(src / OPTIONAL_FILES[k], dst / OPTIONAL_FILES[k])
    (dst / MANIFEST).write_text(json.dumps({"models": carried}, indent=1) + "\n")


def weights_digest(weights: Path, files) -> str:
    """A digest of the networks' files (in cascade order): the version names the weights by their content."""
    return hashlib.sha256(b"".join((weights / f).read_bytes() for f in files)).hexdigest()[:8]


def write_manifest(weights: Path, arrays, fits, train_info, results, headline, threshold, trained) -> dict:
    """The version names the weights by their content (a digest of the stages' files) and the day they were made."""
    from train.datasets import counts

    carried = carried_stages(weights)
    digest = weights_digest(weights, [*MODEL_FILES.values(), *(OPTIONAL_FILES[k] for k in carried)])
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
            "input_size": pp.INPUT_SIZES[k],
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
        "two eyes per face, cut where the eye finder put them: the mean of their log-odds of open against the "
        "threshold (models/cascade.combine_found_eyes); without the eye finder, open if either eye is confidently "
        "open, else closed if either is confidently closed, else unknown (models/cascade.combine_eyes)"
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
        "models": {**models, **carried},
    }
    (weights / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


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
