"""Several weights folders side by side on one split of the real infant photos, in counts, not rates.

    python -m train.compare_infant --split val models/weights artifacts/seed1 artifacts/variant [--limit N]

Why counts: on the validation groups (42 syrip and 78 baby_photos faces, 56 person-labelled faces for the eyes) one
face or eye is 1-2 points of a rate, and the shipped face stage's own recipe trained again landed up to 3 faces and
7 eye verdicts from it (README, "How much of a validation difference is the training run itself"). Put a variant
beside the shipped weights AND a retrain of the shipped recipe, so its difference can be read against that spread.
Each folder runs through the whole cascade exactly as train/evaluate_infant.py scores it (same photos, crops,
truths); this only tabulates. No torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.evaluate_infant import REPO, TEACHER_EYES, TEACHER_FACES, evaluate
from train.infant_data import BABY, SYRIP

COLUMNS = (
    ("faces held, syrip", ("face", SYRIP, "hit")),
    ("faces held, baby_photos", ("face", BABY, "hit")),
    ("eye verdicts right, syrip", ("eyes", SYRIP, "end_to_end", "accuracy")),
    ("eye verdicts right, baby_photos", ("eyes", BABY, "end_to_end", "accuracy")),
    ("called present, syrip", ("presence", SYRIP)),
    ("called present, baby_photos", ("presence", BABY)),
    ("room crops called present", ("presence", "background")),
    ("babies with darker skin called present", ("presence", "darker_skin")),
    ("faces held, babies with darker skin", ("face", "darker_skin", "hit")),
)


def count(result: dict, path: tuple[str, ...]) -> str:
    """'k / n' for a rate of the evaluation's result (its value is k / n, rounded to 4 places), '–' where absent."""
    node = result
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not node.get("n"):
        return "–"
    return f"{round(node['value'] * node['n'])} / {node['n']}"


def table(results: list[tuple[str, dict]]) -> str:
    """Markdown: one row per (weights folder, its evaluation), named by its path and version; one column per count."""
    lines = [
        "| weights | " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for folder, result in results:
        cells = [count(result, path) for _, path in COLUMNS]
        lines.append(f"| {folder} ({result['weights']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path, nargs="+", help="weights folders (each with its manifest.json)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of each source")
    ap.add_argument("--teacher-faces", type=Path, default=TEACHER_FACES, help="BlazeFace detections (JSON)")
    ap.add_argument("--teacher-eyes", type=Path, default=TEACHER_EYES, help="person eye labels + iris EARs (JSON)")
    args = ap.parse_args(argv)
    results = [
        (
            str(folder),
            evaluate(
                args.data,
                folder,
                args.split,
                limit=args.limit,
                teacher_faces=args.teacher_faces,
                teacher_eyes=args.teacher_eyes,
            ),
        )
        for folder in args.weights
    ]
    print(f"{args.split} split, train/evaluate_infant.py's scores as counts (k / n):\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
