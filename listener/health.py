"""The tick's side of the listener: is anybody hearing cries between ticks?

The listener is a long-running process, and a long-running process can die, hang, or run on without audio (the
camera dropped its microphone, rebooted into another stream, went away). Nobody would notice: the tick's own
5 seconds still hear some crying. So every tick reads the listener's heartbeat (`listener.heartbeat`), logs one
warning while it has been silent for SILENT_AFTER_S, and counts those ticks in `listener-health.json` (written by
the tick only; the heartbeat is the listener's). After CAMERA_DOWN_TICKS such ticks ONE alert says that cries are no
longer heard between ticks, and when the listener hears again, one says so: the camera-down alert's pattern, through
the same outbox. Ticks while the camera itself is down do not count: its own alert already says nobody watches.

Only where a listener has run: no heartbeat file means none was installed (a camera without audio), and LISTEN=0
or a camera that is not RTSP turns all of it off.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from alerts.rules import clock, one_line
from db.store import Alert, Store
from listener import heartbeat
from listener.stream import is_rtsp
from settings import Settings

log = logging.getLogger("bilbo.tick")

LISTENER = "listener"  # the alerts' kind


@dataclass
class Silence:
    """Ticks in a row that found the listener silent, and whether the parent was told."""

    ticks: int = 0
    since_ts: float | None = None
    reason: str = ""
    alerted: bool = False


def applies(settings: Settings) -> bool:
    return settings.listen and is_rtsp(settings.camera_url)


def check(settings: Settings, store: Store, at: datetime) -> Alert | None:
    """One tick's look at the listener (after the tick's row, before delivery): log it when silent, count, and
    queue the "no longer heard" / "heard again" alert when due. Returns the alert it queued, if any. Raises
    StoreError when the alert cannot be queued (the count is then not advanced: the next tick tries again)."""
    if not applies(settings) or (beat := heartbeat.read(settings.listener_heartbeat_path)) is None:
        return None
    path, now = settings.listener_health_path, at.timestamp()
    silence = read(path)
    since = beat.silent_since(now)
    if since is None:
        if silence == Silence():
            return None
        alert = None
        if silence.alerted:
            caption = f"Cries heard again at {clock(now)}: the cry listener hears the camera again."
            if silence.since_ts is not None:
                caption += f" It was silent since {clock(silence.since_ts)}."
            alert = store.queue_listener_alert(Alert(kind=LISTENER, caption=caption, photo_path=None, created_ts=now))
        write(path, Silence())
        return alert
    reason = one_line(beat.why_silent(now))
    log.warning("the cry listener has heard nothing since %s: %s", clock(since), reason)
    if store.camera_outage().failures:
        return None
    silence = Silence(silence.ticks + 1, since, reason, silence.alerted)
    alert = None
    if 0 < settings.camera_down_ticks <= silence.ticks and not silence.alerted:
        minutes = settings.tick_interval_s / 60
        caption = (
            f"Cries are no longer heard between ticks since {clock(since)} ({reason}). Until the listener hears "
            f"again, BILBO hears crying only at its ticks ({settings.audio_seconds:g} s every {minutes:g} min)."
        )
        alert = store.queue_listener_alert(Alert(kind=LISTENER, caption=caption, photo_path=None, created_ts=now))
        silence.alerted = True
    write(path, silence)
    return alert


def describe(settings: Settings, now: float) -> tuple[str, str]:
    """`--check`'s (status, text) about the listener: ok, warn (silent) or off."""
    if not settings.listen:
        return "off", "LISTEN=0 (the tick still hears its own clip)"
    if not is_rtsp(settings.camera_url):
        return "off", "the camera is not an RTSP camera: no stream to listen to"
    beat = heartbeat.read(settings.listener_heartbeat_path)
    if beat is None:
        return "off", (
            f"not running here (no heartbeat {settings.listener_heartbeat_path.name}): make install-schedule installs "
            "it when the camera carries audio"
        )
    if (since := beat.silent_since(now)) is not None:
        return "warn", f"heard nothing since {clock(since)}: {one_line(beat.why_silent(now))}"
    heard = "nothing yet" if beat.heard_ts is None else f"heard {max(0.0, now - beat.heard_ts):.0f} s ago"
    crying = ", crying now" if beat.crying else ""
    return "ok", f"{beat.state}, {heard} (running since {clock(beat.started_ts)}){crying}"


def read(path: Path) -> Silence:
    """The tick's count; a missing or damaged file reads as no silence (the count starts again)."""
    try:
        raw = json.loads(path.read_text())
        return Silence(**{k: raw[k] for k in asdict(Silence()) if k in raw})
    except (OSError, ValueError, TypeError):
        return Silence()


def write(path: Path, silence: Silence) -> None:
    """Replace the count whole; a failure is one warning (the count then restarts, the alert may come later)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(asdict(silence)) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep the cry listener's silence count in %s: %s", path, exc)
