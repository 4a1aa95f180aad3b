"""The markdown report and the contact sheet of worst errors of train/evaluate_infant.py.

numpy + OpenCV + the standard library only (no torch), like the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models import preprocess as pp
from train.infant_data import BABY, SYRIP, Box
from train.infant_metrics import EYE_POINT_TOLERANCE

SOURCES = (SYRIP, BABY)
FACE_HELD = "face held (box holds eyes + nose, <= 2x the face)"  # the metric's name in every row that reports it
TILE, CAPTION_CHARS = 200, 34
GREEN, RED, BLUE, YELLOW = (0, 190, 0), (0, 0, 230), (230, 90, 0), (0, 220, 230)
INTERVALS_NOTE = (
    "95% intervals (train/intervals.py): syrip_real by a bootstrap over whole groups (source videos: frames of one "
    "video are not independent); baby_photos by Wilson for rates and a bootstrap over photos for means and macro "
    "F1 (each of its groups is one photo)."
)
PEER_NOTE = (
    "BlazeFace (back-256, train/teacher_infant.json: its most confident detection whose centre lies inside the "
    "evaluation crop, raw box) is a fair peer on syrip_real only: baby_photos' face truths ARE BlazeFace faces a "
    "person accepted, so there its box holds the truth's eyes and nose by construction and faces it missed are not "
    "in the truth at all. The iris peer calls a face open when the larger EAR of its eyes is above the threshold "
    "of train/teacher_eyes.py (EAR_OPEN, chosen there for the best agreement with these very person labels, every "
    "split: its numbers are optimistic); its coverage is the share of faces with an EAR."
)


# ---- contact sheet --------------------------------------------------------------------------------------------
def face_tile(
    frame_bgr: np.ndarray,
    focus: Box,
    boxes: Sequence[tuple[Sequence[float] | None, tuple[int, int, int]]],
    points: Sequence[tuple[Sequence[float] | None, tuple[int, int, int]]] = (),
    margin: float = 0.6,
    tile: int = TILE,
) -> np.ndarray:
    """A tile x tile cut of the frame around `focus` (grown by `margin` of its size on each side, white beyond the
    frame), with the boxes and points (frame pixels) drawn in their BGR colours at the tile's scale."""
    x1, y1, x2, y2 = focus
    h, w = frame_bgr.shape[:2]
    half = max(4.0, min(max(x2 - x1, y2 - y1) * (1 + 2 * margin), max(h, w)) / 2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    k = tile / (2 * half)  # frame pixels -> tile pixels
    m = np.array([[k, 0, tile / 2 - k * cx], [0, k, tile / 2 - k * cy]], np.float64)
    img = cv2.warpAffine(frame_bgr, m, (tile, tile), flags=cv2.INTER_AREA, borderValue=(255, 255, 255))

    def at(x: float, y: float) -> tuple[int, int]:
        return round(k * (x - cx) + tile / 2), round(k * (y - cy) + tile / 2)

    for box, colour in boxes:
        if box is not None:
            cv2.rectangle(img, at(box[0], box[1]), at(box[2], box[3]), colour, 1, cv2.LINE_AA)
    for pt, colour in points:
        if pt is not None:
            cv2.circle(img, at(pt[0], pt[1]), 2, colour, -1, cv2.LINE_AA)
    return img


def contact_sheet(tiles: Sequence[np.ndarray], captions: Sequence[str], path: Path, cols: int = 6) -> None:
    """Square BGR tiles in a grid, each captioned below on up to two lines ('|' splits them), like
    train/evaluate.gallery (which cannot be imported without torch)."""
    tile = tiles[0].shape[0] if tiles else TILE
    rows = max(1, (len(tiles) + cols - 1) // cols)
    cap_h = 28
    sheet = np.full((rows * (tile + cap_h), cols * tile, 3), 255, np.uint8)
    for i, (im, cap) in enumerate(zip(tiles, captions, strict=True)):
        r, c = divmod(i, cols)
        y0, x0 = r * (tile + cap_h), c * tile
        sheet[y0 : y0 + tile, x0 : x0 + tile] = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
        for j, line in enumerate(cap.split("|")[:2]):
            cv2.putText(
                sheet,
                line[:CAPTION_CHARS],
                (x0 + 2, y0 + tile + 11 + 12 * j),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.33,
                (0, 0, 200),
                1,
                cv2.LINE_AA,
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)


def error_sheet(worst: dict, data: Path, path: Path) -> int:
    """The worst face misses, then the most confident wrong eye verdicts, drawn on their photos; returns the tiles."""
    tiles, captions = [], []
    for kind in ("face", "eyes"):
        for e in worst.get(kind, []):
            frame = cv2.imread(str(data / "images" / e["key"].split("#")[0]))
            tp = e["truth_points"]
            pts = [(p, GREEN) for p in tp] + [(p, YELLOW) for p in (e["points"] or [])]
            tiles.append(face_tile(frame, e["truth"], [(e["truth"], GREEN), (e["peer"], BLUE), (e["box"], RED)], pts))
            captions.append(f"{e['key'].replace('_real', '').replace('_photos', '')}|{e['what']}")
    if tiles:
        contact_sheet(tiles, captions, path)
    return len(tiles)


# ---- markdown -------------------------------------------------------------------------------------------------
def _v(x: dict | None, key: str = "value") -> str:
    v = None if x is None else x.get(key)
    return "n/a" if v is None else f"{v:.3f}"


def _ci(x: dict | None) -> str:
    iv = None if x is None else x.get("interval")
    return "" if iv is None else f"{iv[0]:.3f}–{iv[1]:.3f}"


def _n(x: dict | None, groups: bool = True) -> str:
    if x is None:
        return ""
    return f"{x['n']} ({x['groups']} groups)" if groups and "groups" in x else str(x["n"])


def _dig(d: dict | None, *keys: str) -> dict | None:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def score_rows(result: dict) -> list[str]:
    """The table rows: stage | source | metric | ours | 95% | peer | peer 95% | [today | today 95% |] n."""
    today = result.get("today") is not None
    rows = []

    def row(stage: str, source: str, metric: str, path: tuple[str, ...], peer: tuple[str, ...] | None = None) -> None:
        ours = _dig(result, *path)
        p = _dig(result, "peer", *peer) if peer else None
        cells = [stage, source, metric, _v(ours), _ci(ours), _v(p) if peer else "", _ci(p) if peer else ""]
        if today:
            t = _dig(result["today"], *path)
            cells += [_v(t), _ci(t)]
        rows.append("| " + " | ".join([*cells, _n(ours)]) + " |")

    for s in SOURCES:
        if s in result["presence"]:
            row("presence", s, "photos called present", ("presence", s))
    if "background" in result["presence"]:
        row(
            "presence",
            "syrip_real rooms",
            "background crops called present (lower is better)",
            ("presence", "background"),
        )
    if "darker_skin" in result["presence"]:
        row("presence", "babies with darker skin", "photos called present", ("presence", "darker_skin"))
    for s in SOURCES:
        if s not in result["face"]:
            rows.append("| " + " | ".join(["face", s, "n/a: no face truths yet"] + [""] * (7 if today else 5)) + " |")
            continue
        row("face", s, FACE_HELD, ("face", s, "hit"), ("blazeface", s, "hit"))
        row("face", s, "mean IoU with the truth box (0 without a box)", ("face", s, "iou"), ("blazeface", s, "iou"))
        if "eye_points" in result["face"][s]:
            row(
                "face",
                s,
                f"both eye centres within {EYE_POINT_TOLERANCE} x eye distance",
                ("face", s, "eye_points"),
                ("blazeface", s, "eye_points"),
            )
    if "darker_skin" in result["face"]:
        row("face", "babies with darker skin", FACE_HELD, ("face", "darker_skin", "hit"))
    for s in SOURCES:
        e = result["eyes"].get(s)
        if e is None:
            continue
        for part, what, peer in (("end_to_end", "end to end", "iris"), ("eye_stage_on_truth", None, None)):
            label = what or f"eye stage alone on the {e['eye_stage_given']}"
            for metric, name in (
                ("macro_f1", "macro F1 on verdicts"),
                ("coverage", "coverage"),
                ("accuracy", "accuracy, all labelled faces"),
            ):
                row("eyes", s, f"{label}: {name}", ("eyes", s, part, metric), (peer, s, metric) if peer else None)
    return rows


def size_rows(result: dict) -> list[str]:
    """Face held by the face's size in the face stage's input: a small face is where the face stage loses faces."""
    by_source = {s: _dig(result["face"], s, "hit_by_size") for s in SOURCES}
    names = next((list(v) for v in by_source.values() if v), [])
    if not names:
        return []
    # The bins are measured in the shipped face stage's input (train/infant_metrics.py), whatever side the face stage
    # scored here runs at, so two face stages are compared on the same faces per bin.
    own = result.get("face_size", pp.FACE_SIZE)
    scored_at = "" if own == pp.FACE_SIZE else f"; the face stage scored here runs at {own} px"
    L = [
        "Face held by the true face's size in the face stage's input (the crop letterboxed to "
        f"{pp.FACE_SIZE} px{scored_at}; value, 95% interval, n):",
        "",
        "| source | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for s, bins in by_source.items():
        if bins:
            cells = (f"{_v(bins[n])} ({_ci(bins[n])}, n {_n(bins[n], False)})" if bins[n]["n"] else "–" for n in names)
            L.append(f"| {s} | " + " | ".join(cells) + " |")
    return [*L, ""]


def markdown(result: dict, sheet: Path | None) -> str:
    today = result.get("today") is not None
    head = "| stage | source | metric | ours | 95% interval | peer (BlazeFace / iris) | peer 95% |"
    head += " today | today 95% |" if today else ""
    c = result["counts"]
    L = [
        f"# Real infant photos ({result['split']} split): cascade vs peers",
        "",
        f"Weights `{result['weights']}` (ours)" + (f"; today = `{result['baseline']}`" if today else "") + ". "
        f"Split **{result['split']}** of train/infant_data.py (by group: a source video or a single web photo)"
        + (f", only the first {result['limit']} photos of each source" if result.get("limit") else "")
        + ". "
        "Produced by `python -m train.evaluate_infant`, running the exported ONNX files through models/cascade.py.",
        "",
        f"**{result['truth_note']}**",
        "",
        *([f"Not there yet: {', '.join(result['missing'])}.", ""] if result["missing"] else []),
        "| source | photos | groups | photos with a face truth | faces | eye-labelled faces | background crops |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {s} | {c[s]['photos']} | {c[s]['groups']} | {c[s]['photos_with_face_truth']} | {c[s]['faces']} | "
            f"{c[s]['eye_labelled_faces']} | {c[s].get('background_crops', '')} |"
            for s in SOURCES
        ),
        "",
        head + " n |",
        "|" + "---|" * (head.count("|")),
        *score_rows(result),
        "",
    ]
    L += size_rows(result)
    if not result["eyes"]:
        L += ["No person eye labels yet: no eye scores.", ""]
    thr = result["peer"].get("iris_threshold")
    L += [
        INTERVALS_NOTE,
        "",
        PEER_NOTE + (f" Threshold: {thr}." if thr is not None else ""),
        "",
        "A photo with several faces counts once: the cascade gives one face and any baby's face is a right answer; "
        "its eye verdict is scored against the face its box overlaps most. No verdict ('unknown', no face, not "
        "present) lowers coverage and counts as wrong in accuracy. "
        f"{c['eye_labels_without_face_truth']} labelled faces without a matching face truth are left out.",
        "",
    ]
    L += ["## Worst errors", ""]
    if sheet is not None:
        L += [
            f"![worst errors]({sheet.name}) (green: truth box and eye/nose points; red: ours; blue: BlazeFace; "
            "yellow: our eye points)",
            "",
        ]
    for kind, title in (("face", "Face misses, largest faces first"), ("eyes", "Most confident wrong eye verdicts")):
        L.append(f"{title}:")
        none = "- none" if kind == "face" or result["eyes"] else "- no person eye labels yet"
        L += [f"- `{e['key']}`: {e['what']}" for e in result["worst"].get(kind, [])[:5]] or [none]
        L.append("")
    return "\n".join(L)


def write_report(result: dict, data: Path, report: Path) -> None:
    """The markdown report at `report` and its contact sheet beside it (<stem>_errors.png)."""
    report.parent.mkdir(parents=True, exist_ok=True)
    sheet = report.with_name(f"{report.stem}_errors.png")
    drawn = error_sheet(result["worst"], Path(data), sheet)
    report.write_text(markdown(result, sheet if drawn else None))
