"""Per-class precision/recall of the model, on human-reviewed or corrected frames only.

Model outputs that nobody looked at are not ground truth, so they never enter these numbers.
Results are split day vs infrared night because night is a different distribution. A class
with nothing to measure reports None (shown as "no reviewed frames yet"), never 0%.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from db.store import HumanLabel, TickRow

PRESENCE_CLASSES = ("present", "not_present")
EYE_CLASSES = ("open", "closed")


def per_class(pairs: Sequence[tuple[str | None, str]], classes: Iterable[str]) -> dict[str, dict]:
    """(predicted, true) pairs -> {class: precision, recall, support (true count), predicted count}."""
    result = {}
    for cls in classes:
        tp = sum(1 for p, t in pairs if p == cls and t == cls)
        predicted = sum(1 for p, _ in pairs if p == cls)
        support = sum(1 for _, t in pairs if t == cls)
        result[cls] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / support if support else None,
            "support": support,
            "predicted": predicted,
        }
    return result


def _split(labelled: Sequence[tuple[TickRow, HumanLabel]]) -> dict:
    presence, eyes = [], []
    for tick, label in labelled:
        truth = label.truth(tick)
        if truth.get("presence") in PRESENCE_CLASSES:
            presence.append((tick.presence_label, truth["presence"]))
        if truth.get("presence") != "not_present" and truth.get("eyes") in EYE_CLASSES:
            eyes.append((tick.eyes_label, truth["eyes"]))  # 'unknown'/None predictions count as misses
    return {
        "frames": len(labelled),
        "presence": per_class(presence, PRESENCE_CLASSES),
        "eyes": per_class(eyes, EYE_CLASSES),
    }


def model_metrics(labelled: Sequence[tuple[TickRow, HumanLabel]]) -> dict:
    """{"reviewed_frames": n, "splits": {"all"|"day"|"night": {frames, presence: {...}, eyes: {...}}}}."""
    return {
        "reviewed_frames": len(labelled),
        "splits": {
            "all": _split(labelled),
            "day": _split([pair for pair in labelled if not pair[0].night]),
            "night": _split([pair for pair in labelled if pair[0].night]),
        },
    }
