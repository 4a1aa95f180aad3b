"""The records BILBO stores, as the rest of the code sees them: ticks, alerts, outages, human corrections,
the fallback labeller's labels and the cry listener's episodes. Plain dataclasses; no SQL here (db/store.py and
the query modules beside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TickRow:
    """One tick's outcome, as stored. `id` is None until inserted."""

    ts: float
    source: str
    unchanged: bool
    diff_score: float | None
    night: bool
    state: str
    presence_label: str | None
    presence_conf: float | None
    face_box: tuple[float, float, float, float] | None
    face_conf: float | None
    eyes_label: str | None
    eyes_conf: float | None
    jpeg_path: str | None
    model_version: str | None
    duration_ms: float
    id: int | None = None
    # The camera's audio (migration 3); None when the source has no audio or audio is off.
    cry_probability: float | None = None
    dbfs: float | None = None  # RMS loudness of the clip, dB re full scale
    audio_s: float | None = None  # seconds of audio actually recorded
    audio_path: str | None = None  # .wav beside the JPEG, relative to the data dir; only with KEEP_AUDIO
    # When retention (retention.py, migration 4) deleted the JPEG/.wav; the paths above stay as history.
    media_pruned_ts: float | None = None
    # A confirmation frame (migration 10): the id of the awake tick it confirms, grabbed by that same tick.
    confirms: int | None = None

    @property
    def media_pruned(self) -> bool:
        return self.media_pruned_ts is not None

    def to_json(self) -> dict:
        data = asdict(self)
        data["face_box"] = list(self.face_box) if self.face_box else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> TickRow:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("face_box") is not None:
            values["face_box"] = tuple(values["face_box"])
        return cls(**values)


@dataclass(frozen=True)
class Alert:
    """An alert to deliver; lives in the outbox until a notifier confirms it was sent."""

    kind: str
    caption: str
    photo_path: str | None
    created_ts: float
    tick_id: int | None = None
    id: int | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_ts: float | None = None
    unconfirmed: int = 0  # tries whose answer was lost after sending (alerts.outbox: it may have arrived)


@dataclass(frozen=True)
class CaptureFailure:
    """A tick that failed (no row in `ticks`), and the "camera unreachable" / "BILBO cannot watch" alert it raised."""

    ts: float
    reason: str  # the error message, credentials redacted
    alert: Alert | None = None
    id: int | None = None
    camera: bool = True  # the camera gave no usable frame; False: BILBO itself failed (models, disk)


@dataclass(frozen=True)
class CameraOutage:
    """The capture failures since the newest stored tick: the camera outage going on now (failures 0: none)."""

    failures: int  # ticks in a row whose capture failed
    since_ts: float | None  # the first of them
    last_ts: float | None  # the newest of them
    reason: str | None  # the newest failure's reason (credentials redacted)
    alerted: bool  # the "camera unreachable" alert of this outage is in the outbox
    camera: bool = True  # every failure of it was the camera's (False: BILBO itself failed at least once)


CORRECTION_FIELDS = ("presence", "eyes", "face_box", "reviewed")


@dataclass(frozen=True)
class Correction:
    """One human statement about one field of one tick. `value` is decoded JSON."""

    tick_id: int
    field: str
    value: Any
    author: str
    created_ts: float
    id: int | None = None
    undone_ts: float | None = None


@dataclass(frozen=True)
class HumanLabel:
    """What the humans currently say about a tick: the newest not-undone correction per field.

    'reviewed' means "the model was right": it confirms every field nobody corrected.
    """

    tick_id: int
    corrected: dict[str, Any]
    reviewed: bool
    last_ts: float

    def truth(self, tick: TickRow) -> dict[str, Any]:
        """The human-backed value of each field we know; a field absent from the dict is unlabelled."""
        known: dict[str, Any] = {}
        if self.reviewed:
            known = {"presence": tick.presence_label, "eyes": tick.eyes_label, "face_box": tick.face_box}
        known.update(self.corrected)
        if known.get("face_box") is not None:
            known["face_box"] = tuple(known["face_box"])
        return known


def fold_labels(corrections: Sequence[Correction]) -> dict[int, HumanLabel]:
    """Oldest-first not-undone corrections -> one HumanLabel per tick (the newest per field wins)."""
    labels: dict[int, HumanLabel] = {}
    for c in corrections:
        current = labels.get(c.tick_id) or HumanLabel(c.tick_id, {}, False, c.created_ts)
        corrected = dict(current.corrected)
        if c.field != "reviewed":
            corrected[c.field] = c.value
        labels[c.tick_id] = HumanLabel(
            c.tick_id, corrected, current.reviewed or c.field == "reviewed", max(current.last_ts, c.created_ts)
        )
    return labels


@dataclass(frozen=True)
class TeacherLabel:
    """One call to the fallback labeller (labeller/) about one tick's frame.

    `error` None: a teacher label, in the vocabulary of human corrections. It is training signal only (below
    any human in train.retrain), never an alert and never evaluation. Otherwise a failed attempt, kept so the
    labeller knows when to give up on the frame and the dashboard can say why there is no label."""

    tick_id: int
    ts: float  # when the call was made
    labeller: str  # the server's base URL, credentials redacted
    model: str
    presence: str | None = None  # present | not_present
    eyes: str | None = None  # open | closed | not_visible
    raw: str | None = None  # the answer as received, trimmed
    error: str | None = None
    disagrees: bool = False  # a label whose state differs from the tick's (the review queue puts these first)
    id: int | None = None

    @property
    def state(self) -> str | None:
        """The tick state the teacher's answer means; None for a failed call."""
        if self.error is not None:
            return None
        if self.presence == "not_present":
            return "absent"
        return {"open": "awake", "closed": "asleep"}.get(self.eyes or "", "unknown")

    def truth(self) -> dict[str, Any]:
        """The fields it labels, shaped like HumanLabel.truth ({} for a failed call)."""
        return {} if self.error is not None else {"presence": self.presence, "eyes": self.eyes}


def newest_teacher_label(history: Sequence[TeacherLabel]) -> TeacherLabel | None:
    """The newest call of a tick's history (oldest first) that gave a label; None if none did."""
    return next((t for t in reversed(history) if t.error is None), None)


@dataclass(frozen=True)
class CryEpisode:
    """One cry episode the listener heard, as stored; `end_ts` None while it goes on, `alert_id` None when a
    cooldown kept it quiet."""

    start_ts: float
    onset_ts: float
    last_ts: float
    peak_probability: float
    peak_dbfs: float
    background_dbfs: float | None = None
    end_ts: float | None = None
    alert_id: int | None = None
    id: int | None = None
