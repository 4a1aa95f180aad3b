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

from alerts import store_down
from alerts.mqtt import publish_state
from alerts.outage import failure_reason, note_failed_tick
from alerts.outbox import deliver_alerts
from alerts.rules import awaiting_confirmation, in_cooldown, rows_needed
from alerts.tick_alerts import raised_alerts
from capture.ffmpeg import CaptureError, redact_text
from capture.pixeldiff import CropError
from capture.sources import bassinet_crop, grab
from clock_skew import clock_went_back
from db import jsonl
from db.jsonl import write_waiting_backups
from db.store import Store, StoreError, TickRow
from labeller.fallback import label_pending
from listener import health as listener_health
from lockfile import TickLock
from models.cascade import ModelError
from models.classify import LazyCascade, LazyCryModel, classify, load_cascade, score_audio
from retention import apply_retention
from settings import DEFAULT_ENV_FILE, Settings, cli_settings

log = logging.getLogger("bilbo.tick")

NIGHT_START, NIGHT_END = "18:30", "07:30"


def tick(
    settings: Settings,
    store: Store,
    at: datetime,
    models: LazyCascade,
    cry: LazyCryModel | None = None,
    confirms: int | None = None,
) -> TickRow:
    """One tick: capture (frame + audio) → diff → cascade, cry model → store (+ alerts, same transaction) → JSONL.
    `confirms`: this is a confirmation frame of that awake tick (always classified, marked as such)."""
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
    row = classify(settings, frame, store, at, models, force=confirms is not None)  # writes the JPEG if it changed
    try:
        row = replace(row, confirms=confirms, **score_audio(settings, frame, at, cry))
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


def after_tick(step: str, run: Callable[[], object]) -> None:
    """Run one of the steps after the tick (delivery, MQTT, retention, backups, labeller). Each handles the failures
    it expects; anything else is one line here, and the steps after it still run: an alert stuck in the outbox because
    retention hit a bug is the silence this monitor exists to prevent."""
    try:
        run()
    except Exception as exc:
        log.error("%s failed this tick (the next tick tries again): %s", step, redact_text(failure_reason(exc)))


def store_tick(
    settings: Settings,
    store: Store,
    at: datetime,
    models: LazyCascade,
    cry: LazyCryModel | None,
    *,
    simulated: bool = False,
) -> TickRow | None:
    """Run the tick and log its one line; returns the newest row it stored (its last confirmation frame, if it took
    any), or None when it failed (a failed tick is recorded: an outage alerts; a database that cannot be written
    cannot record it, and counts towards `alerts.store_down`'s alert instead)."""
    try:
        row = tick(settings, store, at, models, cry)
    except StoreError as exc:
        log.error("tick failed: %s", exc)
        store_down.note_failure(settings, at, exc)
        return None
    except (CaptureError, ModelError, CropError, OSError) as exc:
        log.error("tick failed: %s", redact_text(str(exc), settings.secrets))
        note_failed_tick(settings, store, at, exc)
        return None
    except Exception as exc:  # a bug or a case nobody foresaw: still "BILBO cannot watch", never silence
        log.error("tick failed: %s", redact_text(failure_reason(exc), settings.secrets))
        note_failed_tick(settings, store, at, exc)
        return None
    log.info("tick %s", describe(row))
    store_down.note_success(settings, at)
    return confirm_waking(settings, store, row, at, models, cry, simulated=simulated)


def confirm_waking(
    settings: Settings,
    store: Store,
    first: TickRow,
    at: datetime,
    models: LazyCascade,
    cry: LazyCryModel | None,
    *,
    simulated: bool,
) -> TickRow:
    """When `first` shows eyes open and the wake rule does not hold yet, grab up to CONFIRM_FRAMES more frames
    CONFIRM_INTERVAL_S apart (ticks of their own, marked as confirming `first`) while that stays so: the rule then
    holds ~15 s after the first awake frame, and the wake alert goes out with this tick instead of the next one or
    two (4-8 minutes later). Not within the wake cooldown (no alert could come of it). `simulated`: a tick at a given
    time (--at, --night) takes its frames at `at` + n x interval without waiting. A confirmation frame that fails is
    one line; the tick itself has already succeeded and the next tick looks again. Returns the newest row stored:
    the last confirmation frame, else `first`."""
    newest = first
    if first.unchanged or in_cooldown(first.ts, store.last_alert_ts("wake"), settings.alert_cooldown_s):
        return newest
    rule = {"window": settings.wake_window, "needed": settings.wake_needed}
    for n in range(1, settings.confirm_frames + 1):
        if not awaiting_confirmation(store.recent_classified(rows_needed(settings.wake_window)), **rule):
            return newest
        if simulated:
            when = at + timedelta(seconds=n * settings.confirm_interval_s)
        else:
            time.sleep(settings.confirm_interval_s)
            when = datetime.now().astimezone()
        try:
            row = tick(settings, store, when, models, cry, confirms=first.id)
        except Exception as exc:
            log.warning(
                "waking not confirmed: frame %d of %d failed: %s",
                n,
                settings.confirm_frames,
                redact_text(failure_reason(exc), settings.secrets),
            )
            return newest
        newest = row
        log.info("tick %s (confirming %s)", describe(row), datetime.fromtimestamp(first.ts).strftime("%H:%M:%S"))
    return newest


def run_once(
    settings: Settings, at: datetime, models: LazyCascade, cry: LazyCryModel | None = None, *, simulated: bool = False
) -> int:
    """One tick on one database connection. Each step that fails logs its one line and the steps after it still
    run; only a database that cannot be opened at all ends the tick here, since no step could do anything.
    `simulated`: `at` is not now (--at, --night): confirmation frames are taken at simulated times."""
    now = at.timestamp()
    try:
        store = Store.open(settings.db_path)
    except StoreError as exc:
        log.error("tick failed: %s", exc)
        store_down.note_failure(settings, at, exc)
        return 1
    with store:  # no step leaves a transaction open: the dashboard reads and writes freely between steps
        stored = store_tick(settings, store, at, models, cry, simulated=simulated)
        # the continuous cry listener (listener/): silent for 2 minutes is reported, CAMERA_DOWN_TICKS ticks alert
        after_tick("cry listener", lambda: listener_health.check(settings, store, at))
        after_tick("alert delivery", lambda: deliver_alerts(settings, store, now))
        # MQTT, only when MQTT_HOST is set (alerts/mqtt.py opens its own connection)
        after_tick("MQTT", lambda: publish_state(settings, now, stored))
        # after a failed tick too: a full disk is a reason ticks fail
        after_tick("retention", lambda: apply_retention(settings, store, now))
        after_tick("JSONL backup", lambda: write_waiting_backups(settings, store))
    # The fallback labeller, only when FALLBACK_LABELLER_URL is set, opens its own connection once ours is closed:
    # last, so its network call (up to FALLBACK_LABELLER_TIMEOUT_S) delays nothing and holds no connection of ours.
    if stored is not None:
        after_tick("fallback labeller", lambda: label_pending(settings, now=now, crop_of=bassinet_crop))
    return 0 if stored is not None else 1


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
        failures += run_once(settings, at, models, cry, simulated=True)
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
        return run_once(settings, at, LazyCascade(settings), simulated=args.at is not None)


if __name__ == "__main__":
    sys.exit(main())
