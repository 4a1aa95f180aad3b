"""A tick that failed: say why in one line, record it, and raise the outage's one alert when CAMERA_DOWN_TICKS
failures are in a row (`alerts.rules.camera_down_alert`); a database that cannot record it counts towards
`alerts.store_down` instead."""

from __future__ import annotations

import logging
from datetime import datetime

from alerts import store_down
from alerts.rules import camera_down_alert
from capture.ffmpeg import CaptureError, redact_text
from capture.pixeldiff import CropError
from db import jsonl
from db.store import Store, StoreError
from models.cascade import ModelError
from settings import Settings

tick_log = logging.getLogger("bilbo.tick")  # the tick's steps log as the tick

EXPECTED_FAILURES = (CaptureError, ModelError, CropError, OSError, StoreError)


def failure_reason(error: BaseException) -> str:
    """The failure as one line: its own words when it is one the tick expects, else its type first, so an unexpected
    error (a MemoryError has no message at all) still says what happened."""
    if isinstance(error, EXPECTED_FAILURES):
        return str(error)
    return f"unexpected {type(error).__name__}" + (f": {error}" if str(error) else "")


def note_failed_tick(settings: Settings, store: Store, at: datetime, error: Exception) -> None:
    """Record a tick that failed, and queue the outage's one alert when this failure makes CAMERA_DOWN_TICKS in a
    row (`alerts.rules.camera_down_alert`); `deliver_alerts` then sends it.

    Every CaptureError counts, a corrupt, blank or frozen frame and a missing ffmpeg included, not only a refused,
    hanging or password-rejecting camera: what matters to the parent is that no frame reached the models. So do
    BILBO's own failures (models that cannot load, a disk that cannot take the frame: ModelError, OSError), which
    leave the baby just as unwatched; their alert says "BILBO cannot watch" instead of "Camera unreachable". One
    failed tick does not alert (it takes N in a row). A database that cannot record the failure (locked, disk full)
    is one warning line, never a crash, and counts towards `alerts.store_down`'s alert instead: the tick has already
    failed and logged why. So is a failure to append its JSONL backup line after the commit (the line then waits in
    the database for a later tick).
    """
    camera = isinstance(error, CaptureError)
    ts = at.timestamp()
    reason = redact_text(failure_reason(error), settings.secrets)  # capture/ redacts too; every configured secret
    try:
        outage = store.camera_outage()
        alert = camera_down_alert(
            failures=outage.failures + 1,
            since_ts=ts if outage.since_ts is None else outage.since_ts,
            reason=reason,
            down_ticks=settings.camera_down_ticks,
            alerted=outage.alerted,
            at_ts=ts,
            camera=camera,
        )
        with store.atomic():
            failure = store.add_capture_failure(ts, reason, alert, camera=camera)
            jsonl.queue(store, settings.jsonl_path, [jsonl.capture_failure_record(failure)])
    except StoreError as exc:
        tick_log.warning("failed tick not recorded: %s", exc)
        store_down.note_failure(settings, at, exc)
        return
    store_down.note_success(settings, at)
    if problem := jsonl.write(store, settings.jsonl_path):
        tick_log.warning("failed tick recorded, but %s", problem)
