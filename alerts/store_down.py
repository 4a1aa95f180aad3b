"""The one alert that cannot wait in the outbox: the database itself fails.

Every other alert waits in the database's outbox until it is delivered. When the database cannot be opened or
written (a disk full to the last byte, a corrupt file, permissions changed by an update, a USB disk that went
away), a tick can queue nothing, and the parent would hear nothing while nobody watches. So the count of such
ticks lives in a small file beside the database, `store-health.json`, and after CAMERA_DOWN_TICKS failed ticks in a
row one alert goes out directly: "BILBO cannot store anything since …". When a tick writes again: "BILBO stores
again at …". A send that fails is owed, and the next tick tries again; nothing is dropped.

A full disk: every tick that finds the file missing creates it at a fixed size, while there is room, and it is
rewritten in place, which needs no free byte. Where even that fails (the data folder gone), the alert goes out
only from a tick in the first TICK_INTERVAL_S of each hour: a limit that needs no state, so a dead disk means one
message an hour, never one a tick.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from alerts.notifiers import NotifyError, notifier_from_settings
from alerts.rules import clock, one_line
from db.store import Alert
from settings import Settings

log = logging.getLogger("bilbo.tick")

STORE = "store"  # the alerts' kind; they are never stored, the log and the phone show their captions
HEALTH_BYTES = 1024  # the file's fixed size: rewriting it in place needs no free space


@dataclass
class Health:
    """The database's failed ticks in a row, and what the parent was told about them."""

    failures: int = 0
    since_ts: float | None = None
    reason: str = ""
    alerted: bool = False  # "cannot store" was sent for this outage
    back_owed: bool = False  # the outage ended, but "stores again" could not be sent yet


def note_failure(settings: Settings, at: datetime, error: Exception | str) -> None:
    """Count a tick whose database (or data folder) failed; alert once the count reaches CAMERA_DOWN_TICKS."""
    path = settings.store_health_path
    health = read(path)
    if health.back_owed:  # down again before "stores again" got out: a new outage, told anew
        health = Health()
    ts = at.timestamp()
    reason = one_line(str(error))
    health.failures += 1
    health.since_ts = health.since_ts or ts
    health.reason = reason
    down = 0 < settings.camera_down_ticks <= health.failures and not health.alerted
    if not write(path, health):  # the count cannot be kept: the first tick of each hour speaks
        first_of_hour = at.minute * 60 + at.second < settings.tick_interval_s
        if settings.camera_down_ticks > 0 and first_of_hour:
            _send(settings, f"BILBO cannot store anything ({reason}) — BILBO is NOT watching. {_HINT}", ts)
        return
    if down:
        caption = (
            f"BILBO cannot store anything since {clock(health.since_ts)} ({health.failures} failed ticks): "
            f"{reason} — BILBO is NOT watching. {_HINT}"
        )
        if _send(settings, caption, ts):
            health.alerted = True
            write(path, health)


def note_success(settings: Settings, at: datetime) -> None:
    """A tick wrote to the database: end an outage ("stores again" if it was told), or make the file ready."""
    path = settings.store_health_path
    if not path.exists():
        write(path, Health())  # while the disk has room; a full disk later rewrites it in place
        return
    health = read(path)
    if health == Health():
        return
    if health.alerted or health.back_owed:
        since = ""
        if health.since_ts:
            since = f" It could not since {clock(health.since_ts)} ({health.failures} failed ticks)."
        caption = f"BILBO stores again at {clock(at.timestamp())} — watching again.{since}"
        if not _send(settings, caption, at.timestamp()):
            write(path, Health(health.failures, health.since_ts, health.reason, alerted=False, back_owed=True))
            return
    elif health.failures:
        log.info("the database works again after %d failed tick(s); too few to have alerted", health.failures)
    write(path, Health())


_HINT = "Run `python monitor.py --check` on the BILBO machine."


def _send(settings: Settings, caption: str, ts: float) -> bool:
    """Send one caption now, past the outbox; False (and one warning line) when it could not go."""
    named = f"{settings.camera_name}: {caption}" if settings.camera_name else caption
    alert = Alert(kind=STORE, caption=named, photo_path=None, created_ts=ts)
    notifier = notifier_from_settings(settings)
    try:
        notifier.send(alert, None)
    except NotifyError as exc:
        log.warning("database alert not sent, the next tick tries again: %s", exc)
        return False
    log.info("database alert sent via %s: %s", notifier.name, caption)
    return True


def read(path: Path) -> Health:
    """The file's state; a missing, unreadable or damaged file reads as no failures (the count starts again)."""
    try:
        raw = json.loads(path.read_bytes().rstrip(b" \n\0") or b"{}")
        return Health(**{k: raw[k] for k in asdict(Health()) if k in raw})
    except (OSError, ValueError, TypeError):
        return Health()


def write(path: Path, health: Health) -> bool:
    """Rewrite the file in place at its fixed size (no free byte needed once it exists); False if it failed."""
    body = json.dumps(asdict(health)).encode()
    if len(body) >= HEALTH_BYTES:  # only a freak reason could do this
        body = json.dumps(asdict(Health(**{**asdict(health), "reason": health.reason[:200]}))).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, body.ljust(HEALTH_BYTES - 1) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot keep the database's failure count in %s: %s", path, exc)
        return False
    return True
