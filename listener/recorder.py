"""The listener's hands: episodes into the database, the cry alert out at once, the Crying entity on MQTT.

A thread of its own, fed through a queue, so the audio loop never waits: a database locked by another writer (the
dashboard, a tick, `db.rebuild`), a slow Telegram or a camera slow to give its snapshot would otherwise stall the
pipe ffmpeg writes into, and audio would be lost. Events are applied in order; one the database refuses is tried
again (RETRY_S, doubling up to RETRY_MAX_S) until it lands, so an alert waits for the lock but is never dropped.

At an onset: the newest snapshot (the tick's frame when it is under SNAPSHOT_MAX_AGE_S old, else one fresh frame
grabbed now, kept under frames/listener/ and pruned after RETENTION_DAYS), then the episode row and its cry alert
in one transaction (no alert within CRY_COOLDOWN_S of the last cry alert, the tick's included), then
`alerts.outbox.deliver_pending` at once, then MQTT. What delivery cannot send stays in the outbox for the next tick.
Delivery is at-least-once, like the tick's: a tick delivering in the same second may send the alert twice.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from alerts.outbox import deliver_alerts
from alerts.rules import CRY, clock, in_cooldown
from capture.ffmpeg import CaptureError, find_ffmpeg, grab_rtsp_jpeg
from capture.files import write_atomically
from db import jsonl
from db.store import Alert, Store, StoreError
from listener.detector import End, Event, Onset, Progress
from redaction import redact_text
from settings import Settings

log = logging.getLogger("bilbo.listen")

RETRY_S, RETRY_MAX_S = 1.0, 10.0
BUSY_TIMEOUT_S = 2.0  # the database's own wait for a lock, each try
SNAPSHOT_MAX_AGE_S = 60.0
SNAPSHOT_TIMEOUT_S = 10.0
SNAPSHOT_DIR = Path("frames") / "listener"
_STOP = object()
T = TypeVar("T")


def cry_caption(onset: Onset) -> str:
    """What the parent reads: crying, since when, how sure and how loud (over the room when known)."""
    episode = onset.episode
    over = ""
    if episode.background_dbfs is not None:
        over = f", {episode.peak_dbfs - episode.background_dbfs:.0f} dB over the room"
    return (
        f"Baby is crying (heard since {clock(episode.start_ts)}: cry {episode.peak_probability:.0%}, "
        f"{episode.peak_dbfs:.0f} dBFS{over}) — {clock(episode.onset_ts)}"
    )


class Recorder(threading.Thread):
    """Applies the tracker's events in order, in the background. `submit` from the audio loop; `stop` at the end."""

    def __init__(self, settings: Settings, look_command: list[str] | None = None) -> None:
        super().__init__(name="bilbo-listen-recorder", daemon=True)
        self.settings = settings
        # A cry's onset also starts a tick (`monitor.py --once`): it looks at the baby now, and an awake frame makes it
        # confirm the waking within itself (CONFIRM_FRAMES), instead of waiting for the timer. None: no such look.
        self._look_command = look_command
        self._look: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._episode_id: int | None = None
        self.applied = 0  # events written (tests and the heartbeat read it)

    def submit(self, event: Event) -> None:
        self._events.put(event)

    def stop(self, timeout_s: float) -> bool:
        """Apply what is queued (trying for at most `timeout_s`), then end; False when events were left unwritten."""
        self._events.put(_STOP)
        self.join(timeout_s)
        self._stopping.set()
        self.join(1.0)
        return not self.is_alive() and self._events.empty()

    @property
    def waiting(self) -> int:
        return self._events.qsize()

    def run(self) -> None:
        backup = self.settings.jsonl_path
        if closed := self._with_store("the start", lambda store: store.close_open_episodes(backup)):
            log.info("listener: closed %d cry episode(s) a previous listener left open", closed)
        while (event := self._events.get()) is not _STOP:
            try:
                self._handle(event)
            except Exception as exc:  # a bug must not end the thread: the next events still go in
                log.error("listener: %s not recorded: unexpected %s: %s", type(event).__name__, type(exc).__name__, exc)

    def _with_store(self, what: str, write: Callable[[Store], T]) -> T | None:
        """`write(store)` on a fresh connection, tried again (RETRY_S doubling to RETRY_MAX_S) while the database
        refuses it; one warning line when it has to wait, one info line when it got through. None when stopping."""
        delay, told = RETRY_S, False
        while True:
            try:
                with Store.open(self.settings.db_path, busy_timeout_s=BUSY_TIMEOUT_S) as store:
                    result = write(store)
                    if problem := jsonl.write(store, self.settings.jsonl_path):  # the backup line waits in the db
                        log.warning("listener: %s stored, but %s", what, problem)
                break
            except StoreError as exc:
                if self._stopping.is_set():
                    log.error("listener: stopping with %s not recorded: %s", what, exc)
                    return None
                if not told:
                    log.warning("listener: %s waits for the database (trying again): %s", what, exc)
                    told = True
                self._stopping.wait(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        if told:
            log.info("listener: the database took %s", what)
        return result

    def _handle(self, event: Event) -> None:
        photo = self._snapshot(event.episode.onset_ts) if isinstance(event, Onset) else None
        what = {Onset: "a cry onset", Progress: "a cry episode's progress", End: "a cry episode's end"}[type(event)]
        if self._with_store(what, lambda store: self._apply(store, event, photo)) is None:
            return
        self.applied += 1
        if isinstance(event, Onset):
            self._deliver()
            self._look_at_the_baby()
        if isinstance(event, Onset | End):
            self._publish(event)

    def _apply(self, store: Store, event: Event, photo: str | None) -> bool:
        if isinstance(event, Onset):
            episode = event.episode
            alert = None
            if not in_cooldown(episode.onset_ts, store.last_alert_ts(CRY), self.settings.cry_cooldown_s):
                alert = Alert(kind=CRY, caption=cry_caption(event), photo_path=photo, created_ts=episode.onset_ts)
            stored = store.start_episode(episode, alert, self.settings.jsonl_path)
            self._episode_id = stored.id
            cooldown = self.settings.cry_cooldown_s
            quiet = "" if alert else f" (no alert: a cry alert went out within CRY_COOLDOWN_S={cooldown})"
            log.info("listener: crying since %s (cry %.2f, %.0f dBFS)%s", clock(episode.start_ts),
                     episode.peak_probability, episode.peak_dbfs, quiet)  # fmt: skip
        elif self._episode_id is not None:
            store.update_episode(replace(event.episode, id=self._episode_id), self.settings.jsonl_path)
            if isinstance(event, End):
                self._episode_id = None
                log.info("listener: crying stopped at %s (since %s)", clock(event.episode.end_ts or 0),
                         clock(event.episode.start_ts))  # fmt: skip
        return True

    def _snapshot(self, at: float) -> str | None:
        """The picture for a cry alert: the tick's newest frame when it is fresh, else one grabbed now, else the
        newest frame there is (None: none at all). A snapshot problem is one warning, never a lost alert."""
        settings = self.settings
        newest = None
        try:
            with Store.open(settings.db_path, busy_timeout_s=BUSY_TIMEOUT_S) as store:
                last, newest = store.last_tick(), store.last_reference_jpeg()
            if last is not None and 0 <= at - last.ts <= SNAPSHOT_MAX_AGE_S:
                return last.jpeg_path or newest
        except StoreError as exc:
            log.warning("listener: newest snapshot unknown (%s); grabbing one", exc)
        try:
            ffmpeg = find_ffmpeg(settings.ffmpeg_path)
            jpeg = grab_rtsp_jpeg(settings.camera_url, timeout_s=min(settings.capture_timeout_s, SNAPSHOT_TIMEOUT_S),
                                  ffmpeg=ffmpeg)  # fmt: skip
            relative = SNAPSHOT_DIR / f"{datetime.fromtimestamp(at).strftime('%Y-%m-%d-%H%M%S')}-{int(at)}.jpg"
            write_atomically(settings.data_dir / relative, jpeg)
        except (CaptureError, OSError) as exc:
            log.warning("listener: no fresh snapshot for the cry alert (%s)", redact_text(str(exc), settings.secrets))
            return newest
        prune_snapshots(settings.data_dir / SNAPSHOT_DIR, settings.retention_days, time.time())
        return str(relative)

    def _look_at_the_baby(self) -> None:
        """Start one tick of the monitor's own (its lock keeps it from overlapping the timer's: the later one exits
        quietly), without waiting for it; its log lines go where the listener's go. One at a time."""
        if self._look_command is None or self.settings.confirm_frames == 0:
            return
        if self._look is not None and self._look.poll() is None:
            return
        try:
            self._look = subprocess.Popen(self._look_command, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.warning("listener: could not start a tick to look at the baby: %s", exc)
            return
        log.info("listener: started a tick to look at the baby (a waking is confirmed within it)")

    def _deliver(self) -> None:
        settings = self.settings
        try:
            with Store.open(settings.db_path, busy_timeout_s=BUSY_TIMEOUT_S) as store:
                deliver_alerts(settings, store, time.time())  # as the tick does: its "alert_sent" line backed up too
        except StoreError as exc:
            log.warning("listener: cry alert queued; the next tick delivers it (%s)", exc)

    def _publish(self, event: Onset | End) -> None:
        if not self.settings.mqtt_enabled:
            return
        from alerts.mqtt import publish_crying

        publish_crying(self.settings, crying=isinstance(event, Onset), episode=event.episode, at=time.time())


def prune_snapshots(folder: Path, retention_days: int, now: float) -> None:
    """The listener's own snapshots follow RETENTION_DAYS like the tick's frames (0: kept)."""
    if retention_days <= 0:
        return
    for path in folder.glob("*.jpg"):
        try:
            if now - path.stat().st_mtime > retention_days * 86400:
                path.unlink()
        except OSError:
            continue
