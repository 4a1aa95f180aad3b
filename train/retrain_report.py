"""The retrain's report (train/retrain.py): current vs candidate per stage and split (day / infrared night), the
promotion verdict and its reasons, the most confident wrong answers and their contact sheet. Split from the
retrain itself so each stays under ~600 lines; the retrain imports it when it writes the report."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import cv2

from models import preprocess as pp
from train.retrain import CLASSES, GATES, PARENT_SHARE, PROMOTION_RULE, SPLITS, Rec

WORST = 8  # wrong answers per stage in the report and its gallery


def worst(recs: dict[str, list[Rec]]) -> list[tuple[str, Rec]]:
    """The most confident wrong answers per stage."""
    out = []
    for stage, rs in recs.items():
        wrong = sorted((r for r in rs if r.pred != r.truth), key=lambda r: -r.conf)
        out += [(stage, r) for r in wrong[:WORST]]
    return out


def gallery(errors: list[tuple[str, str, Rec]], path: Path) -> None:
    from train.vision_report import gallery as sheet

    images, captions = [], []
    for who, _stage, r in errors:
        img = cv2.imread(str(r.frame.path))
        for box, colour in ((r.truth_box, (0, 200, 0)), (r.pred_box, (0, 0, 255))):
            if box is not None:
                cv2.rectangle(img, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), colour, 2)
        images.append(pp.square_rgb(img, r.frame.crop, 112))
        captions.append(f"{who[:4]} #{r.frame.tick_id} {r.truth[:5]}>{r.pred[:5]}")
    if images:
        sheet(images, captions, path, tile=112, cols=8)


def _row(stage: str, key: str, cur: dict, cand: dict) -> str:
    cells = [f"{cur[stage][s][key]} / {cand[stage][s][key]} (n {cur[stage][s]['n']})" for s in SPLITS]
    return f"| {stage} | {key} | " + " | ".join(cells) + " |"


def write_report(path: Path, info: dict, cur: dict, cand: dict, recs: dict, promoted: bool, why: list[str]) -> None:
    verdict = "PROMOTED: the candidate is now the shipped model" if promoted else "KEPT the current models"
    L = [
        f"# Retrain from the parent's corrections — {info['date']}",
        "",
        f"**{verdict}.** Rule: {PROMOTION_RULE}.",
        "",
        *[f"- {w}" for w in why],
        "",
        f"Current `{info['current_version']}`, candidate `{info['candidate_version']}` "
        f"({'QUICK test config: useless weights' if info['quick'] else 'FULL config'}; "
        f"kept in `{info['candidate_dir']}`).",
        f"Backup of the replaced models: `{info['backup']}` (undo: `python -m train.retrain --rollback`)."
        if promoted
        else "Nothing was replaced.",
        "",
        "## Ground truth",
        "",
        'Only frames a human reviewed ("model right": its output is the label) or corrected (the correction wins).',
        "",
        f"- labelled ticks: {info['frames']['labelled_ticks']}; used: {info['frames']['used']} "
        f"({info['frames']['corrected']} corrected, {info['frames']['reviewed_only']} reviewed only)",
        f"- fallback labeller (teacher), training nights only, never evaluated: {info['frames']['teacher_only']} "
        "frames no human labelled (on a human-labelled frame it fills only the fields no human gave)",
        *[f"- skipped, {why_}: {n}" for why_, n in info["frames"]["skipped"].items()],
        "",
        "| night (evening of) | role | frames |",
        "|---|---|---|",
        *[f"| {n} | {r['role']} | {r['frames']} |" for n, r in info["nights"].items()],
        "",
        "Training examples per stage (the parent's, repeated to weigh ~"
        f"{PARENT_SHARE:.0%} of the stage's training set, plus train.vision's base data):",
        "",
        *[f"- {k}: {json.dumps(v)}" for k, v in info["examples"].items()],
        "",
        "## Held-out nights: current / candidate",
        "",
        "Both run by the tick's code (models.cascade.Cascade, the tick's thresholds) on the same frames. Each stage is "
        "scored on its own (face and eyes given the human-confirmed inputs); `state` is the whole cascade. An eye "
        "'unknown' counts as a miss. IR = infrared night frames. Nothing was chosen on these nights: early stopping "
        "used validation data, the eye threshold validation people; the other thresholds are the tick's settings.",
        "",
        "| stage | metric | all | day | IR night |",
        "|---|---|---|---|---|",
        *[_row(s, k, cur, cand) for s, k in (*GATES.items(), ("face", "mean_iou"), ("state", "accuracy"))],
        "",
        "Per class (all held-out frames), current → candidate:",
        "",
    ]
    for stage in CLASSES:
        for c in CLASSES[stage]:
            a, b = cur[stage]["all"]["per_class"][c], cand[stage]["all"]["per_class"][c]
            L.append(
                f"- {stage} / {c} (n {a['n']}): precision {a['precision']} → {b['precision']}, "
                f"recall {a['recall']} → {b['recall']}, F1 {a['f1']} → {b['f1']}"
            )
    L += ["", "## Worst held-out errors (most confident first; tick ids as on the dashboard)", ""]
    for who in ("candidate", "current"):
        by_stage: dict[str, list[str]] = {}
        for stage, r in worst(recs[who]):
            when = datetime.fromtimestamp(r.frame.ts).strftime("%m-%d %H:%M")
            by_stage.setdefault(stage, []).append(
                f"#{r.frame.tick_id} ({when} {'IR' if r.frame.ir else 'day'}: {r.truth} → {r.pred} {r.conf:.2f})"
            )
        L += [f"- {who} {stage}: " + ", ".join(items) for stage, items in by_stage.items()] or [f"- {who}: none"]
    if info.get("gallery"):
        L += ["", f"![worst errors]({Path(info['gallery']).name}) (green: human box, red: model box)"]
    L += [
        "",
        "## Candidate on train.vision's base test split (context, not part of the rule)",
        "",
        "```",
        json.dumps(info["candidate_headline"], indent=1),
        "```",
        "",
        "## Training",
        "",
        "```",
        json.dumps(info["training"], indent=1),
        "```",
        "",
    ]
    path.write_text("\n".join(L))


def summary(info: dict, cur: dict, cand: dict, promoted: bool, why: list[str]) -> str:
    head = "PROMOTED the candidate" if promoted else "KEPT the current models"
    held = sum(r["frames"] for r in info["nights"].values() if r["role"] == "held_out")
    lines = [
        f"retrain: {head} ({info['current_version']} vs {info['candidate_version']}) on {held} held-out frames",
        f"  {'stage':9} {'metric':15} {'current':>8} {'candidate':>10}",
    ]
    for stage, key in (*GATES.items(), ("state", "accuracy")):
        lines.append(f"  {stage:9} {key:15} {cur[stage]['all'][key]!s:>8} {cand[stage]['all'][key]!s:>10}")
    lines += [f"  - {w}" for w in why]
    skipped = ", ".join(f"{n} {k}" for k, n in info["frames"]["skipped"].items()) or "none"
    lines.append(f"  labelled frames used: {info['frames']['used']} (skipped: {skipped})")
    if promoted:
        lines.append(f"  backup: {info['backup']} (undo: python -m train.retrain --rollback)")
    return "\n".join(lines)


# ---- the command ----------------------------------------------------------------------------------
