"""What a human correction may say, and what it means for a tick's state.

Validation lives here, not in the store: a bad request is answered with a 400 that says what
was wrong, before anything is written.
"""

from __future__ import annotations

from typing import Any

from db.store import HumanLabel, TickRow

PRESENCE_VALUES = ("present", "not_present")
EYE_VALUES = ("open", "closed", "not_visible")
MAX_COORD = 10_000.0
MAX_AUTHOR = 40
DEFAULT_AUTHOR = "parent"


class LabelError(ValueError):
    """A correction request is malformed; the message is shown to the person who sent it."""


def _box(value: Any) -> list[float] | None:
    if value is None:
        return None  # "there is no face to see"
    if not isinstance(value, list) or len(value) != 4:
        raise LabelError("face_box must be null or [x1, y1, x2, y2] in frame pixels")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise LabelError("face_box coordinates must be numbers")
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (0 <= x1 < x2 <= MAX_COORD and 0 <= y1 < y2 <= MAX_COORD):
        raise LabelError("face_box must have 0 <= x1 < x2 and 0 <= y1 < y2 (frame pixels)")
    return [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)]


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LabelError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def parse_correction(body: Any) -> tuple[list[tuple[str, Any]], str]:
    """{"changes": {field: value, ...}, "author": "mum"} -> ([(field, value)], author), or LabelError."""
    if not isinstance(body, dict):
        raise LabelError('send a JSON object like {"changes": {"eyes": "closed"}}')
    unknown = set(body) - {"changes", "author"}
    if unknown:
        raise LabelError(f"unknown keys {sorted(unknown)}; allowed: changes, author")
    author = body.get("author", DEFAULT_AUTHOR)
    if not isinstance(author, str) or not 0 < len(author.strip()) <= MAX_AUTHOR:
        raise LabelError(f"author must be a name of 1 to {MAX_AUTHOR} characters")
    changes = body.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise LabelError('changes must be a non-empty object, e.g. {"eyes": "closed"}')
    parsed: list[tuple[str, Any]] = []
    for field, value in changes.items():
        if field == "presence":
            parsed.append((field, _choice(field, value, PRESENCE_VALUES)))
        elif field == "eyes":
            parsed.append((field, _choice(field, value, EYE_VALUES)))
        elif field == "face_box":
            parsed.append((field, _box(value)))
        elif field == "reviewed":
            if value is not True:
                raise LabelError('reviewed can only be true ("the model was right"); use undo to take it back')
            parsed.append((field, True))
        else:
            raise LabelError(f"unknown field {field!r}; allowed: presence, eyes, face_box, reviewed")
    return parsed, author.strip()


def presence_truth(truth: dict) -> str | None:
    """Presence as a human backs it: labelled, or implied by a labelled open/closed eye (the baby is there)."""
    if truth.get("presence") in PRESENCE_VALUES:
        return truth["presence"]
    return "present" if truth.get("eyes") in ("open", "closed") else None


def human_state(truth: dict) -> str | None:
    """The state a human's labels (`HumanLabel.truth`) back, or None where they say nothing of it: the model's own
    answer is never truth. Shared by the retrain's evaluation and the wake rule backtest."""
    if presence_truth(truth) == "not_present":
        return "absent"
    eyes = truth.get("eyes")
    if eyes is None and "face_box" in truth and truth["face_box"] is None and presence_truth(truth) == "present":
        return "unknown"  # a human confirmed there is no face to see
    return {"open": "awake", "closed": "asleep", "not_visible": "unknown", "unknown": "unknown"}.get(eyes)


def effective_state(tick: TickRow, label: HumanLabel | None) -> str:
    """The state a human would give this tick: their labels where they exist, the model's elsewhere."""
    if label is None:
        return tick.state
    truth = label.truth(tick)
    if truth.get("presence") == "not_present":
        return "absent"
    eyes = truth.get("eyes")
    if eyes == "open":
        return "awake"
    if eyes == "closed":
        return "asleep"
    if eyes in ("not_visible", "unknown"):
        return "unknown"
    return tick.state


def label_json(label: HumanLabel | None) -> dict | None:
    if label is None:
        return None
    return {"corrected": label.corrected, "reviewed": label.reviewed, "last_ts": label.last_ts}
