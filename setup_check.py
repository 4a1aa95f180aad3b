"""`python monitor.py --check`: is everything in place? One line per part, nothing stored, nothing sent.
`python monitor.py --test-alert`: one test message through the alert channel, so the parent sees it arrive.

What a parent runs after editing `.env` (or at 3 a.m. when something seems off): it grabs one frame from the
camera, runs the models on it, opens the database read-only, asks Telegram who the bot is (getMe: no message is
sent), connects to the MQTT broker and disconnects, and says for each part `ok`, `warn`, `FAIL` or `off` (not
configured) with the reason. Nothing is written to the database, no alert is queued, the fallback labeller and
Baby Buddy are not called. Exit 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts import store_down
from alerts.rules import clock
from capture.ffmpeg import CaptureError, conceals_url, find_ffmpeg, redact_url
from capture.night import is_infrared
from capture.sources import CapturedFrame, grab, is_camera_url
from clock_skew import clock_went_back
from db.store import DatabaseMissingError, refuse_empty_over_backup
from models.cascade import Cascade, ModelError
from models.cry import CryModel, CryModelError
from settings import Settings

MB = 1024 * 1024


@dataclass(frozen=True)
class Line:
    status: str  # ok | warn | FAIL | off
    part: str
    text: str


CropOf = Callable[[Settings], tuple[int, int, int, int] | None]


def run(settings: Settings, *, crop_of: CropOf, load_cascade: Callable[[Settings], Cascade]) -> int:
    """Check, print the report; exit code 1 when a part failed."""
    lines = check(settings, crop_of, load_cascade)
    print(report(settings, lines))
    return 1 if any(line.status == "FAIL" for line in lines) else 0


def check(settings: Settings, crop_of: CropOf, load_cascade: Callable[[Settings], Cascade]) -> list[Line]:
    """Every part, in the order a tick uses them; a part that cannot be checked says why (FAIL) and the rest go on.
    `crop_of` and `load_cascade` are the tick's own (capture.sources.bassinet_crop, models.classify.load_cascade), so
    the check uses what the tick would."""
    lines = [_data_dir(settings), *_database(settings), *_writes(settings)]
    frame, camera = _camera(settings)
    lines += [camera, *_ffmpeg(settings)]
    crop = crop_of(settings)
    if frame is not None:
        lines += [_crop(frame, crop), _models(frame, crop, lambda: load_cascade(settings))]
        lines.append(_cry(settings, frame))
    lines += [_telegram(settings), _mqtt(settings), Line(*_listener(settings))]
    lines.append(_opt_in("fallback labeller", settings.fallback_labeller_url, "FALLBACK_LABELLER_URL"))
    lines.append(_opt_in("Baby Buddy", settings.babybuddy_url, "BABYBUDDY_URL"))
    return lines


def report(settings: Settings, lines: list[Line]) -> str:
    name = f" for camera {settings.camera_name!r}" if settings.camera_name else ""
    out = [f"BILBO setup check{name}"]
    out += [f"  {line.status:<5} {line.part:<18} {line.text}" for line in lines]
    failed = [line.part for line in lines if line.status == "FAIL"]
    out.append(
        f"{len(failed)} part(s) FAILED ({', '.join(failed)}): BILBO cannot watch properly until they are fixed."
        if failed
        else "Nothing failed: BILBO can watch."
    )
    return "\n".join(out)


def _data_dir(settings: Settings) -> Line:
    where = settings.data_dir
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".check-"):
            pass
        free_mb = shutil.disk_usage(where).free / MB
    except OSError as exc:
        return Line("FAIL", "data dir", f"{where} is not writable: {exc.strerror or exc}")
    text = f"{where}: writable, {free_mb:,.0f} MB free"
    if settings.min_free_mb and free_mb < settings.min_free_mb:
        return Line("warn", "data dir", f"{text}, below MIN_FREE_MB={settings.min_free_mb}: old frames will go")
    return Line("ok", "data dir", text)


def _database(settings: Settings) -> list[Line]:
    """Opened read-only: the check must not create, migrate or lock the tick's database."""
    path = settings.db_path
    try:
        refuse_empty_over_backup(path)  # lost or moved aside: the tick will refuse to start it empty
    except DatabaseMissingError as exc:
        return [Line("FAIL", "database", str(exc))]
    if not path.exists():
        return [Line("ok", "database", f"{path}: not created yet (the first tick creates it)")]
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)  # as_uri escapes ? and #
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            # the newest tick stored, not the highest stamp: a clock that jumped back leaves stamps in the future
            count, newest = conn.execute(
                "SELECT count(*), (SELECT ts FROM ticks ORDER BY id DESC LIMIT 1) FROM ticks"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [Line("FAIL", "database", f"{path} cannot be read: {exc}")]
    lines = [Line("ok", "database", f"{path}: {count} ticks (schema v{version})")]
    if newest is None:
        lines.append(Line("warn", "timer", "no tick recorded yet: is the schedule installed? (make install-schedule)"))
        return lines
    if skew := clock_went_back(newest, time.time()):
        lines.append(Line("warn", "clock", skew))
        return lines
    age_min = (time.time() - newest) / 60
    if age_min * 60 > 2 * settings.tick_interval_s:
        text = f"newest tick is {age_min:,.0f} min old: is the schedule installed and running? (make install-schedule)"
        lines.append(Line("warn", "timer", text))
    else:
        lines.append(Line("ok", "timer", f"newest tick {age_min:.0f} min ago (one every {settings.tick_interval_s} s)"))
    return lines


def _writes(settings: Settings) -> list[Line]:
    """The newest ticks' database writes, as `alerts.store_down` counted them: a database that reads fine may still
    refuse writes (a full disk, permissions)."""
    health = store_down.read(settings.store_health_path)
    if not health.failures or health.back_owed:
        return []
    since = f" since {clock(health.since_ts)}" if health.since_ts else ""
    text = f"the last {health.failures} tick(s) could not write{since}: {health.reason}"
    return [Line("FAIL", "database writes", text)]


def _camera(settings: Settings) -> tuple[CapturedFrame | None, Line]:
    started = time.perf_counter()
    try:
        frame = grab(
            settings.camera_url,
            at=datetime.now().astimezone(),
            timeout_s=settings.capture_timeout_s,
            ffmpeg_path=settings.ffmpeg_path,
            audio_s=settings.audio_seconds,
        )
    except CaptureError as exc:
        return None, Line("FAIL", "camera", str(exc))
    seconds = time.perf_counter() - started
    height, width = frame.image.shape[:2]
    mode = "infrared night" if is_infrared(frame.image) else "colour day"
    sound = "no audio"
    if frame.audio is not None:
        sound = f"{frame.audio.seconds:.1f} s of audio at {frame.audio.dbfs:.0f} dBFS"
    return frame, Line("ok", "camera", f"{frame.source}: {width}x{height} frame in {seconds:.1f} s, {mode}, {sound}")


def _ffmpeg(settings: Settings) -> list[Line]:
    """For an RTSP camera: can `ps` show its password? ffmpeg 5 or newer takes the URL on a pipe; an older one only on
    its command line, which every local user can read while a grab runs (and its redirects go unnoticed)."""
    if not is_camera_url(settings.camera_url):
        return []
    try:
        ffmpeg = find_ffmpeg(settings.ffmpeg_path)
        concealed = conceals_url(ffmpeg)
    except CaptureError:
        return []  # the camera line already says ffmpeg is missing or broken
    if concealed:
        return [Line("ok", "ffmpeg", f"{ffmpeg}: gets the camera URL on a pipe, so `ps` never shows its password")]
    text = (
        f"{ffmpeg} is older than 5: the camera URL, password included, is on its command line, which every local "
        "user sees in `ps` while a grab runs, and a redirect to another address goes unnoticed. Install ffmpeg 5 "
        "or newer (or point FFMPEG_PATH at one)"
    )
    return [Line("warn", "ffmpeg", text)]


def _crop(frame: CapturedFrame, crop: tuple[int, int, int, int] | None) -> Line:
    height, width = frame.image.shape[:2]
    if crop is None:
        return Line("ok", "bassinet crop", f"none: the whole {width}x{height} frame is the bassinet")
    x1, y1, x2, y2 = crop
    text = f"{x1},{y1},{x2},{y2} in the {width}x{height} frame"
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        return Line("FAIL", "bassinet crop", f"BASSINET_CROP {text} reaches outside it: measure it on this frame")
    return Line("ok", "bassinet crop", text)


def _models(frame: CapturedFrame, crop: tuple[int, int, int, int] | None, load: Callable[[], Cascade]) -> Line:
    try:
        result = load().run(frame.image, crop)
    except ModelError as exc:
        return Line("FAIL", "models", str(exc))
    seen = [f"present {result.presence_conf:.2f}" if result.presence_label == "present" else "empty"]
    if result.face_conf is not None:
        seen.append(f"face {result.face_conf:.2f}")
    if result.eyes_label:
        seen.append(f"eyes {result.eyes_label} {result.eyes_conf:.2f}")
    return Line("ok", "models", f"{result.model_version}: this frame reads {result.state} ({', '.join(seen)})")


def _cry(settings: Settings, frame: CapturedFrame) -> Line:
    if frame.audio is None or len(frame.audio.samples) == 0:
        why = "AUDIO_SECONDS=0" if not settings.audio_seconds else "this camera sent no audio"
        return Line("off", "cry model", f"no audio to listen to ({why})")
    try:
        model = CryModel.load(settings.models_dir, settings.cry_threshold)
    except CryModelError as exc:
        return Line("FAIL", "cry model", str(exc))
    p = model.score(frame.audio.samples).cry_probability
    return Line("ok", "cry model", f"{model.version}: this clip {p:.2f} (a cry from {model.threshold:.2f})")


def _telegram(settings: Settings) -> Line:
    from alerts.notifiers import NotifyError, TelegramNotifier

    if not settings.telegram_bot_token:
        return Line("off", "Telegram", "TELEGRAM_BOT_TOKEN not set: alerts go to the log only")
    notifier = TelegramNotifier(
        settings.telegram_bot_token, settings.telegram_chat_id, settings.telegram_base_url, timeout_s=10
    )
    try:
        bot = notifier.check()
    except NotifyError as exc:
        return Line("FAIL", "Telegram", str(exc))
    chat = settings.telegram_chat_id
    return Line("ok", "Telegram", f"bot {bot} answers (nothing sent; chat {chat} is tried by the first alert)")


def _mqtt(settings: Settings) -> Line:
    if not settings.mqtt_host:
        return Line("off", "MQTT", "MQTT_HOST not set")
    from alerts.mqtt import MqttError, publish

    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    try:
        publish(settings, [])  # connect, log in, disconnect: nothing is published
    except MqttError as exc:
        return Line("FAIL", "MQTT", f"{where}: {exc}")
    return Line("ok", "MQTT", f"{where}: logged in (nothing published)")


def _listener(settings: Settings) -> tuple[str, str, str]:
    """The continuous cry listener's heartbeat (listener/health.py): hearing, silent and why, or off."""
    from listener import health  # only the check reads it

    status, text = health.describe(settings, time.time())
    return status, "cry listener", text


def _opt_in(part: str, url: str, key: str) -> Line:
    if not url:
        return Line("off", part, f"{key} not set")
    return Line("ok", part, f"{redact_url(url)} configured (not called by the check)")


def send_test_alert(settings: Settings) -> int:
    """Send one test message through the configured channel (Telegram, else the log), outside the outbox: it is not
    stored and not retried. Proves the chat id too, which `--check` cannot without sending."""
    from alerts.notifiers import NotifyError, notifier_from_settings
    from db.store import Alert

    notifier = notifier_from_settings(settings)
    name = f"{settings.camera_name}: " if settings.camera_name else ""
    text = f"{name}BILBO test message: alerts from this monitor reach you here. Nothing is wrong."
    try:
        notifier.send(Alert(kind="test", caption=text, photo_path=None, created_ts=time.time()), None)
    except NotifyError as exc:
        print(f"test alert NOT sent via {notifier.name}: {exc}")
        return 1
    print(f"test alert sent via {notifier.name}" + ("" if notifier.name != "log" else " (no Telegram configured)"))
    return 0
