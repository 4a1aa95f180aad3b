"""The fallback labeller's turn in a tick: ask the teacher about ONE frame the cascade could not see, keep the answer.

Off unless FALLBACK_LABELLER_URL is set; then nothing here runs. When on, `label_pending` runs once per tick, after
the tick's row, its alerts and its MQTT state are done, so a slow or broken server can delay nothing that matters
tonight. It makes at most one call (bounded by FALLBACK_LABELLER_TIMEOUT_S, at most FALLBACK_LABELLER_MAX_PER_HOUR
an hour), about the oldest frame of the last WINDOW_S that `needs_teacher` picks, has no human or teacher label
yet and still has its JPEG. Every call is stored (db.store.TeacherLabel, and a line in data/teacher_labels.jsonl):
a label, or a failure that leaves the frame pending for a later tick, until MAX_ATTEMPTS failures give up on it.

Only the bassinet crop ever leaves (the README's promise): a camera with no crop (BASSINET_CROP empty) sends nothing,
rather than the whole room, and each tick that would have sent says so in one warning.

The labels are training signal only (train.retrain, below any human label): the alert rules, the tick's state and
every evaluation read the cascade and the humans, never this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2

from db import jsonl
from db.store import Store, StoreError, TeacherLabel, TickRow
from labeller.client import LabellerError, ask
from models import preprocess as pp
from settings import Settings

Crop = tuple[int, int, int, int]
CropOf = Callable[[Settings, str], Crop | None]  # capture.sources.bassinet_crop: (settings, a tick's source) -> crop
log = logging.getLogger("bilbo.labeller")

WINDOW_S = 24 * 3600  # older frames are no longer asked about (the nursery has moved on; retention nears)
MAX_ATTEMPTS = 3  # failed calls about one frame before it is given up
UNSURE_PRESENCE = 0.75  # a presence answer below this confidence (either way) counts as not seen


def needs_teacher(row: TickRow) -> bool:
    """The rule for "the cascade cannot see this frame": the models ran on a frame that is still kept, and either
    presence was unsure (confidence below UNSURE_PRESENCE, present or not) or the baby is there but the state is
    unknown (no face box found, or the eye verdict below its threshold). An unchanged tick has no new picture."""
    if row.unchanged or row.jpeg_path is None or row.media_pruned:
        return False
    if row.presence_conf is not None and row.presence_conf < UNSURE_PRESENCE:
        return True
    return row.presence_label == "present" and row.state == "unknown"


def next_frame(store: Store, data_dir: Path, now: float) -> TickRow | None:
    """The oldest frame still worth a call: a candidate of the store that needs_teacher and whose JPEG exists."""
    for row in store.teacher_candidates(now - WINDOW_S, MAX_ATTEMPTS):
        if needs_teacher(row) and (data_dir / str(row.jpeg_path)).is_file():
            return row
    return None


def image_to_send(path: Path, crop: Crop) -> bytes:
    """The JPEG the server sees: only the bassinet crop (the rest of the room stays home), re-encoded. Raises
    OSError for a frame that cannot be read."""
    img = cv2.imread(str(path))
    if img is None:
        raise OSError(f"{path}: not a readable JPEG")
    x1, y1, x2, y2 = pp.crop_box(img, crop)  # the tick's clip rule: never an empty picture
    ok, buf = cv2.imencode(".jpg", img[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OSError(f"{path}: the bassinet crop could not be encoded")
    return buf.tobytes()


def label_pending(settings: Settings, now: float, crop_of: CropOf) -> TeacherLabel | None:
    """One call about one pending frame, stored; None when off, capped or nothing is pending. Never raises for
    the server or the database: a problem is one warning line and the tick stays a success."""
    if not settings.fallback_labeller_enabled:
        return None
    try:
        with Store.open(settings.db_path) as store:
            return _label_one(settings, store, now, crop_of)
    except (StoreError, OSError) as exc:
        log.warning("fallback labeller: skipped this tick (a later tick tries again): %s", exc)
        return None


def _label_one(settings: Settings, store: Store, now: float, crop_of: CropOf) -> TeacherLabel | None:
    calls = store.teacher_calls_since(now - 3600)
    if calls >= settings.fallback_labeller_max_per_hour:
        log.info("fallback labeller: %d calls in the last hour (FALLBACK_LABELLER_MAX_PER_HOUR): none this tick", calls)
        return None
    row = next_frame(store, settings.data_dir, now)
    if row is None:
        return None
    url, model = settings.fallback_labeller_url, settings.fallback_labeller_model  # no credentials (settings.py)
    crop = crop_of(settings, row.source)
    if crop is None:  # no attempt is stored: setting the crop later lets the frame go
        log.warning(
            "fallback labeller: nothing sent: no BASSINET_CROP is set, and only the bassinet crop may leave "
            "(set BASSINET_CROP=x1,y1,x2,y2, or empty FALLBACK_LABELLER_URL to turn the labeller off)"
        )
        return None
    jpeg = image_to_send(settings.data_dir / str(row.jpeg_path), crop)
    attempt = len(store.teacher_history(row.id)) + 1
    log.info(
        "fallback labeller: sending the bassinet crop of tick %d (%d kB) to %s, model %s",
        row.id,
        len(jpeg) // 1000,
        url,
        model,
    )
    try:
        answer = ask(url, model, settings.fallback_labeller_api_key, jpeg, settings.fallback_labeller_timeout_s)
        label = TeacherLabel(row.id, now, url, model, answer.presence, answer.eyes, answer.raw)
        label = replace(label, disagrees=label.state != row.state)
        said = f"{label.state} ({label.presence}, eyes {label.eyes}), the cascade {row.state}"
        log.info("fallback labeller: says tick %d is %s (a training label only)", row.id, said)
    except LabellerError as exc:
        label = TeacherLabel(row.id, now, url, model, raw=exc.raw, error=str(exc))
        then = "giving up on this frame" if attempt >= MAX_ATTEMPTS else "a later tick retries"
        tries = f"attempt {attempt} of {MAX_ATTEMPTS}, {then}"
        log.warning("fallback labeller: no label for tick %d (%s): %s", row.id, tries, exc)
    with store.atomic():
        label = replace(label, id=store.add_teacher_label(label))
        jsonl.queue(store, settings.teacher_jsonl_path, [jsonl.teacher_record(label)])
    if problem := jsonl.write(store, settings.teacher_jsonl_path):
        log.warning("fallback labeller: stored, but %s", problem)
    return label
