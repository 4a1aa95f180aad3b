"""BILBO's tick: grab one frame, skip it if the bassinet is unchanged, classify, store, alert.

A systemd timer or launchd agent runs `python monitor.py --once` every few minutes. Each tick
is independent: if one fails it logs one line and exits non-zero, and the next tick retries.
A tick whose capture failed is recorded, so CAMERA_DOWN_TICKS failures in a row send one "camera
unreachable" alert (and a "camera back" alert when a frame arrives again). With FALLBACK_LABELLER_URL set, a
successful tick ends by sending one frame the cascade could not see to that server for a training label (labeller/).

    python monitor.py --once                      # one tick on CAMERA_URL from .env
    python monitor.py --once --source sample      # one tick on the built-in sample camera
    python monitor.py --night 2026-11-21          # a whole simulated night on the sample camera (demo)

Exit codes: 0 tick done (or another tick was running), 1 tick failed, 2 bad settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

import retention
from alerts import store_down
from alerts.mqtt import publish_state
from alerts.notifiers import notifier_from_settings
from alerts.outbox import deliver_pending
from alerts.rules import camera_back_alert, camera_down_alert, clock, combine, cry_alert, rows_needed, wake_alert
from capture.audio import write_wav
from capture.ffmpeg import CaptureError, redact_text
from capture.files import write_atomically
from capture.night import is_infrared
from capture.pixeldiff import CropError, check_crop_fits, diff_score
from capture.sources import SAMPLE_SOURCE, CapturedFrame, grab, is_camera_url
from clock_skew import clock_went_back
from db import jsonl
from db.store import Alert, Store, StoreError, TickRow
from labeller.fallback import label_pending
from lockfile import TickLock
from models.cascade import Cascade, ModelError
from models.cry import CryModel, CryModelError
from settings import DEFAULT_ENV_FILE, Settings, cli_settings

log = logging.getLogger("bilbo.tick")

# A frame that stays "unchanged" this long is classified anyway, so a stale result never lingers.
MAX_UNCHANGED_S = 1800
# A live camera's sensor noise moves some 16x16 block's mean by 0.4+ grey levels between any two frames (a still
# baby scores 0.8-1.7); a picture that moves by less than FROZEN_DIFF for FROZEN_AFTER_S is a frozen stream.
FROZEN_DIFF = 0.05
FROZEN_AFTER_S = 15 * 60
NIGHT_START, NIGHT_END = "18:30", "07:30"


class LazyCascade:
    """Loads the ONNX models on first use only: an unchanged frame never pays for them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cascade: Cascade | None = None

    def get(self) -> Cascade:
        if self._cascade is None:
            self._cascade = load_cascade(self._settings)
        return self._cascade


def load_cascade(settings: Settings) -> Cascade:
    """The shipped cascade with the configured thresholds (the tick's, and `--check`'s)."""
    return Cascade.load(
        settings.models_dir,
        presence_threshold=settings.presence_threshold,
        face_threshold=settings.face_threshold,
        eye_threshold=settings.eye_threshold,
    )


class LazyCryModel:
    """Loads the cry model the first time a tick has audio. Broken cry weights never fail the tick: the
    audio is then stored without a cry probability and the reason is logged once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: CryModel | None = None
        self._failed = False

    def get(self) -> CryModel | None:
        if self._model is None and not self._failed:
            try:
                self._model = CryModel.load(self._settings.models_dir, self._settings.cry_threshold)
            except CryModelError as exc:
                self._failed = True
                log.warning("cry detection off this tick: %s", exc)
        return self._model


def _read_reference(settings: Settings, store: Store) -> np.ndarray | None:
    """The last kept frame, or None if there is none or it cannot be read (then we classify)."""
    relative = store.last_reference_jpeg()
    if relative is None:
        return None
    return cv2.imread(str(settings.data_dir / relative), cv2.IMREAD_COLOR)


def _frame_file(at: datetime, suffix: str) -> Path:
    """Where a tick's files live, relative to the data dir: the .jpg and the kept .wav side by side."""
    return Path("frames") / at.strftime("%Y-%m-%d") / f"{at.strftime('%H%M%S')}-{int(at.timestamp())}{suffix}"


def _save_jpeg(settings: Settings, frame: CapturedFrame, at: datetime) -> str:
    """Write the JPEG whole or not at all and return its path relative to the data dir."""
    relative = _frame_file(at, ".jpg")
    write_atomically(settings.data_dir / relative, frame.jpeg)
    return str(relative)


def listen(settings: Settings, frame: CapturedFrame, at: datetime, cry: LazyCryModel) -> dict:
    """The tick's audio fields: cry probability, loudness, clip length, and the kept .wav (KEEP_AUDIO)."""
    clip = frame.audio
    if clip is None or len(clip.samples) == 0:
        return {}
    model = cry.get()
    fields = {
        "cry_probability": model.score(clip.samples).cry_probability if model else None,
        "dbfs": clip.dbfs,
        "audio_s": clip.seconds,
    }
    if settings.keep_audio:
        relative = _frame_file(at, ".wav")
        write_wav(settings.data_dir / relative, clip)
        fields["audio_path"] = str(relative)
    return fields


def bassinet_crop(settings: Settings, source: str | None = None) -> tuple[int, int, int, int] | None:
    """The configured crop; the sample camera knows where its own bassinet is. `source`: where a stored frame
    came from (a tick's `source`; train/retrain.py asks for old frames), by default the configured CAMERA_URL."""
    sample = settings.camera_url == "sample" if source is None else source.startswith(SAMPLE_SOURCE)
    if settings.bassinet_crop is None and sample:
        from capture.sample_camera import BASSINET_CROP  # only the demo camera needs it

        return BASSINET_CROP
    return settings.bassinet_crop


def check_not_frozen(frame: CapturedFrame, score: float | None, store: Store, now: float) -> None:
    """Raise CaptureError when a camera's picture has not moved for FROZEN_AFTER_S: some cameras keep streaming
    their last image when their sensor or encoder hangs, and the monitor would report a sleeping baby for ever. Only
    for RTSP cameras: a JPEG file (the demo, a test) is still by design."""
    if score is None or score >= FROZEN_DIFF or not is_camera_url(frame.source):
        return
    since = store.last_moving_ts(FROZEN_DIFF)
    if since is not None and now - since >= FROZEN_AFTER_S:
        raise CaptureError(
            f"the picture from camera {frame.source} has not changed since {clock(since)}: "
            "its stream looks frozen (restart the camera)"
        )


def classify(settings: Settings, frame: CapturedFrame, store: Store, at: datetime, models: LazyCascade) -> TickRow:
    """Build the tick's row: reuse the last result when the frame is unchanged, else run the cascade."""
    started = time.perf_counter()
    reference = _read_reference(settings, store)
    crop = bassinet_crop(settings)
    check_crop_fits(frame.image, crop)  # a crop outside the frame is a failed tick, never an empty bassinet
    score = None if reference is None else diff_score(reference, frame.image, crop)
    check_not_frozen(frame, score, store, at.timestamp())
    previous = store.last_classified()
    unchanged = (
        score is not None
        and score < settings.diff_threshold
        and previous is not None
        and at.timestamp() - previous.ts < MAX_UNCHANGED_S
    )
    night = is_infrared(frame.image)
    if unchanged:
        fields = {
            "state": previous.state,
            "presence_label": previous.presence_label,
            "presence_conf": previous.presence_conf,
            "face_box": previous.face_box,
            "face_conf": previous.face_conf,
            "eyes_label": previous.eyes_label,
            "eyes_conf": previous.eyes_conf,
            "model_version": previous.model_version,
        }
    else:
        result = models.get().run(frame.image, crop)
        fields = {
            "state": result.state,
            "presence_label": result.presence_label,
            "presence_conf": result.presence_conf,
            "face_box": result.face_box,
            "face_conf": result.face_conf,
            "eyes_label": result.eyes_label,
            "eyes_conf": result.eyes_conf,
            "model_version": result.model_version,
        }
    keep = not unchanged or settings.keep_unchanged_jpeg
    return TickRow(
        ts=at.timestamp(),
        source=frame.source,
        unchanged=unchanged,
        diff_score=score,
        night=night,
        jpeg_path=_save_jpeg(settings, frame, at) if keep else None,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        **fields,
    )


def raised_alerts(settings: Settings, store: Store, row: TickRow, cry: LazyCryModel) -> list[Alert]:
    """The alerts this tick's row raises: wake (2 of 3), cry, both as one message, and "camera back" when it ends
    an outage. They are stored with the row, in its transaction."""
    alerts = []
    if not row.unchanged:
        recent = [*store.recent_classified(rows_needed(settings.wake_window) - 1), row]
        alert = wake_alert(
            recent,
            window=settings.wake_window,
            needed=settings.wake_needed,
            last_alert_ts=store.last_alert_ts("wake"),
            cooldown_s=settings.alert_cooldown_s,
            photo_path=row.jpeg_path,
        )
        alerts = [alert] if alert else []
    model = cry.get() if row.cry_probability is not None else None
    if model is not None:
        crying = cry_alert(
            [*store.recent_ticks(settings.cry_window - 1), row],
            threshold=model.threshold,
            window=settings.cry_window,
            needed=settings.cry_needed,
            last_alert_ts=store.last_alert_ts("cry"),
            cooldown_s=settings.cry_cooldown_s,
            photo_path=row.jpeg_path or store.last_reference_jpeg(),
        )
        alerts += [crying] if crying else []
    outage = store.camera_outage()  # the outage this tick's frame ends (failures 0: there was none)
    back = camera_back_alert(
        failures=outage.failures,
        since_ts=outage.since_ts,
        alerted=outage.alerted,
        at_ts=row.ts,
        camera=outage.camera,
    )
    return [*combine(alerts), *([back] if back else [])]


def tick(
    settings: Settings, store: Store, at: datetime, models: LazyCascade, cry: LazyCryModel | None = None
) -> TickRow:
    """One tick: capture (frame + audio) → diff → cascade, cry model → store (+ alerts, same transaction) → JSONL."""
    started = time.perf_counter()
    cry = cry or LazyCryModel(settings)
    if skew := clock_went_back(getattr(store.last_tick(), "ts", None), at.timestamp()):
        log.warning("%s", skew)
    frame = grab(
        settings.camera_url,
        at=at,
        timeout_s=settings.capture_timeout_s,
        ffmpeg_path=settings.ffmpeg_path,
        audio_s=settings.audio_seconds,
    )
    row = classify(settings, frame, store, at, models)  # writes the JPEG when the frame changed
    try:
        row = replace(row, **listen(settings, frame, at, cry))
        row = replace(row, duration_ms=(time.perf_counter() - started) * 1000.0)
        alerts = raised_alerts(settings, store, row, cry)
        with store.atomic():  # the row, its alerts and its backup line land together
            row = replace(row, id=store.insert_tick(row, alerts))
            jsonl.queue(store, settings.jsonl_path, [jsonl.tick_record(row, store.alerts_of_tick(row.id))])
    except BaseException:  # no row will point at this tick's files: remove them (a full disk, a locked database)
        for kept in (row.jpeg_path, row.audio_path):
            if kept:
                (settings.data_dir / kept).unlink(missing_ok=True)
        raise
    if problem := jsonl.write(store, settings.jsonl_path):
        log.warning("tick stored, but %s", problem)
    return row


def describe(row: TickRow) -> str:
    """The one log line a parent reads at 3 a.m."""
    when = datetime.fromtimestamp(row.ts).strftime("%H:%M")
    mode = "night" if row.night else "day"
    heard = ""
    if row.audio_s is not None:
        cry = "cry ?" if row.cry_probability is None else f"cry {row.cry_probability:.2f}"
        heard = f", {cry} {row.dbfs:.0f} dBFS"
    if row.unchanged:
        return (
            f"{when} {mode}: unchanged (diff {row.diff_score:.1f}), still {row.state}{heard} [{row.duration_ms:.0f} ms]"
        )
    parts = [f"present {row.presence_conf:.2f}" if row.presence_label == "present" else "empty"]
    if row.face_conf is not None:
        parts.append(f"face {row.face_conf:.2f}")
    if row.eyes_label:
        parts.append(f"eyes {row.eyes_label} {row.eyes_conf:.2f}")
    return f"{when} {mode}: {row.state} ({', '.join(parts)}){heard} [{row.duration_ms:.0f} ms]"


EXPECTED_FAILURES = (CaptureError, ModelError, CropError, OSError, StoreError)


def failure_reason(error: BaseException) -> str:
    """The failure as one line: its own words when it is one the tick expects, else its type first, so an unexpected
    error (a MemoryError has no message at all) still says what happened."""
    if isinstance(error, EXPECTED_FAILURES):
        return str(error)
    return f"unexpected {type(error).__name__}" + (f": {error}" if str(error) else "")


def after_tick(step: str, run: Callable[[], object]) -> None:
    """Run one of the steps after the tick (delivery, MQTT, retention, backups, labeller). Each handles the failures
    it expects; anything else is one line here, and the steps after it still run: an alert stuck in the outbox because
    retention hit a bug is the silence this monitor exists to prevent."""
    try:
        run()
    except Exception as exc:
        log.error("%s failed this tick (the next tick tries again): %s", step, redact_text(failure_reason(exc)))


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
        log.warning("failed tick not recorded: %s", exc)
        store_down.note_failure(settings, at, exc)
        return
    store_down.note_success(settings, at)
    if problem := jsonl.write(store, settings.jsonl_path):
        log.warning("failed tick recorded, but %s", problem)


def deliver_alerts(settings: Settings, store: Store, now: float) -> None:
    """Send what is in the outbox; runs after every tick, failed or not, so outages never drop alerts."""
    try:
        delivery = deliver_pending(
            store,
            notifier_from_settings(settings),
            settings.data_dir,
            now=now,
            log=log,
            camera_name=settings.camera_name,
            on_sent=lambda alert: jsonl.queue(store, settings.jsonl_path, [jsonl.alert_sent_record(alert)]),
        )
    except StoreError as exc:
        log.error("alerts not delivered this tick (will retry): %s", exc)
        return
    if delivery.sent and (problem := jsonl.write(store, settings.jsonl_path)):
        log.warning("alert delivered, but %s", problem)


def apply_retention(settings: Settings, store: Store, now: float) -> None:
    """Delete old frames/clips (RETENTION_DAYS, MIN_FREE_MB); a problem is one warning, never a failed tick."""
    try:
        report = retention.prune(store, settings.data_dir, settings, now)
    except (OSError, StoreError) as exc:
        log.warning("retention did not finish this tick (the next tick tries again): %s", exc)
        return
    if report.removed_files:
        log.info("retention: %s", report.summary(settings))
    if report.orphans_removed:
        log.info("retention: removed %d file(s) no tick points at (left by a killed tick)", report.orphans_removed)
    if problem := report.problem(settings):
        log.warning("retention: %s", problem)


def store_tick(settings: Settings, store: Store, at: datetime, models: LazyCascade, cry: LazyCryModel | None) -> int:
    """Run the tick and log its one line; 0 stored, 1 failed (a failed tick is recorded: an outage alerts; a
    database that cannot be written cannot record it, and counts towards `alerts.store_down`'s alert instead)."""
    try:
        row = tick(settings, store, at, models, cry)
    except StoreError as exc:
        log.error("tick failed: %s", exc)
        store_down.note_failure(settings, at, exc)
        return 1
    except (CaptureError, ModelError, CropError, OSError) as exc:
        log.error("tick failed: %s", redact_text(str(exc), settings.secrets))
        note_failed_tick(settings, store, at, exc)
        return 1
    except Exception as exc:  # a bug or a case nobody foresaw: still "BILBO cannot watch", never silence
        log.error("tick failed: %s", redact_text(failure_reason(exc), settings.secrets))
        note_failed_tick(settings, store, at, exc)
        return 1
    log.info("tick %s", describe(row))
    store_down.note_success(settings, at)
    return 0


def write_waiting_backups(settings: Settings, store: Store) -> None:
    """Append the JSONL backup lines that earlier appends could not write (a correction's, say, when the disk was
    full), so every backup catches up within a tick of the disk coming back; still failing is one warning. The
    tick's own backup line has already tried ticks.jsonl (and warned), so that file is left to it."""
    try:
        problems = jsonl.write_waiting(store, skip=settings.jsonl_path)
    except StoreError as exc:
        problems = [f"JSONL backup lines waiting in the database were not written this tick: {exc}"]
    for problem in problems:
        log.warning("%s", problem)


def run_once(settings: Settings, at: datetime, models: LazyCascade, cry: LazyCryModel | None = None) -> int:
    """One tick on one database connection. Each step that fails logs its one line and the steps after it still
    run; only a database that cannot be opened at all ends the tick here, since no step could do anything."""
    now = at.timestamp()
    try:
        store = Store.open(settings.db_path)
    except StoreError as exc:
        log.error("tick failed: %s", exc)
        store_down.note_failure(settings, at, exc)
        return 1
    with store:  # no step leaves a transaction open: the dashboard reads and writes freely between steps
        code = store_tick(settings, store, at, models, cry)
        after_tick("alert delivery", lambda: deliver_alerts(settings, store, now))
        # MQTT, only when MQTT_HOST is set (alerts/mqtt.py opens its own connection)
        after_tick("MQTT", lambda: publish_state(settings, at=now))
        # after a failed tick too: a full disk is a reason ticks fail
        after_tick("retention", lambda: apply_retention(settings, store, now))
        after_tick("JSONL backup", lambda: write_waiting_backups(settings, store))
    # The fallback labeller, only when FALLBACK_LABELLER_URL is set, opens its own connection once ours is closed:
    # last, so its network call (up to FALLBACK_LABELLER_TIMEOUT_S) delays nothing and holds no connection of ours.
    if code == 0:
        after_tick("fallback labeller", lambda: label_pending(settings, now=now, crop_of=bassinet_crop))
    return code


def night_times(night_of: date, interval_s: int) -> list[datetime]:
    """Tick times from NIGHT_START on `night_of` to NIGHT_END the next morning, local time."""
    start = datetime.combine(night_of, datetime.strptime(NIGHT_START, "%H:%M").time()).astimezone()
    end = datetime.combine(night_of + timedelta(days=1), datetime.strptime(NIGHT_END, "%H:%M").time()).astimezone()
    count = int((end - start).total_seconds() // interval_s) + 1
    return [start + timedelta(seconds=i * interval_s) for i in range(count)]


def run_night(settings: Settings, night_of: date) -> int:
    """Replay a whole night on the sample camera with a simulated clock (the demo)."""
    models, cry = LazyCascade(settings), LazyCryModel(settings)
    failures = 0
    times = night_times(night_of, settings.tick_interval_s)
    for at in times:
        failures += run_once(settings, at, models, cry)
    log.info("simulated night of %s: %d ticks, %d failed", night_of, len(times), failures)
    return 1 if failures else 0


def last_ended_night(now: datetime) -> date:
    """The evening of the newest night that is over (ended at NIGHT_END): before 07:30 that is the night
    before the one in progress, so a demo at 1 a.m. replays a whole past night, not one running into the future."""
    ended_today = now.time() >= datetime.strptime(NIGHT_END, "%H:%M").time()
    return now.date() - timedelta(days=1 if ended_today else 2)


def _night_date(raw: str) -> date:
    """'last' is the newest night that has ended (`last_ended_night`)."""
    return last_ended_night(datetime.now()) if raw == "last" else date.fromisoformat(raw)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--once", action="store_true", help="run one tick and exit")
    what.add_argument(
        "--check", action="store_true", help="check every part once (camera, models, database, alerts); store nothing"
    )
    what.add_argument("--test-alert", action="store_true", help="send one test message through the alert channel")
    what.add_argument(
        "--night", type=_night_date, metavar="YYYY-MM-DD|last", help="simulate a whole night on the sample camera"
    )
    parser.add_argument("--source", help="override CAMERA_URL: rtsp://..., a JPEG file or folder, or 'sample'")
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    parser.add_argument("--at", type=datetime.fromisoformat, help="pretend the tick happens at this time (tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {"camera_url": "sample" if args.night else args.source} if (args.night or args.source) else {}
    if (settings := cli_settings("bilbo", args.config, **overrides)) is None:
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    if args.test_alert:
        import setup_check  # not needed by the tick itself

        return setup_check.send_test_alert(settings)
    if args.check:
        import setup_check

        return setup_check.run(settings, crop_of=bassinet_crop, load_cascade=load_cascade)
    at = (args.at or datetime.now()).astimezone()
    try:
        settings.frames_dir.mkdir(parents=True, exist_ok=True)
        lock = TickLock(settings.lock_path)
        acquired = lock.acquire()
    except OSError as exc:
        log.error("tick failed: data dir %s is not usable: %s", settings.data_dir, exc)
        store_down.note_failure(settings, at, f"data dir not usable: {exc}")
        return 1
    if not acquired:
        log.info("another tick is still running (lock %s); this one exits", settings.lock_path)
        return 0
    with lock:
        if args.night:
            return run_night(settings, args.night)
        return run_once(settings, at, LazyCascade(settings))


if __name__ == "__main__":
    sys.exit(main())
