"""The listener's loop: keep one audio connection open, score a window a second, hand episodes to the recorder.

Whatever happens to the camera (switched off, rebooting, Wi-Fi gone, no audio track, ffmpeg killed), the loop logs
ONE line when the listener stops hearing (and another only when the reason changes), one when it hears again, and
reconnects with backoff: BACKOFF_S doubling up to BACKOFF_MAX_S (so a camera that comes back is heard within about
BACKOFF_MAX_S + the socket timeout + one window), NO_AUDIO_MAX_S for a camera that answers without audio (a
setting, not an outage: no point asking every few seconds). It never busy-loops: every path waits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from alerts.rules import clock
from capture.audio import dbfs
from capture.ffmpeg import CaptureError, find_ffmpeg
from listener import heartbeat
from listener.detector import EpisodeTracker, Windows
from listener.heartbeat import Heartbeat
from listener.recorder import Recorder
from listener.stream import AudioStream, StreamError, probe_media
from models.cry import CryModel, CryModelError
from models.cry_rule import CryRule
from redaction import redact_text, redact_url
from settings import Settings

log = logging.getLogger("bilbo.listen")

BACKOFF_S, BACKOFF_MAX_S, NO_AUDIO_MAX_S = 1.0, 10.0, 300.0
MODEL_RETRY_S = 60.0
READ_WAIT_S = 1.0
STOP_WAIT_S = 15.0  # at the end, how long queued episodes may wait for the database


@dataclass
class Outage:
    """Since when the listener has not heard the camera, and why (the reason of the last failure)."""

    since_ts: float
    reason: str
    tries: int = 1
    no_audio: bool = False  # the camera answers without an audio track (a setting, not an outage)


def listener_rule(settings: Settings, model: CryModel) -> CryRule:
    """The rule shipped with the weights (cry.json "rule"); CRY_THRESHOLD, when set, moves its threshold too, so a
    parent who raised it for fewer false alarms gets that from the listener as well."""
    rule = model.rule
    return rule if settings.cry_threshold is None else replace(rule, threshold=settings.cry_threshold)


class Listener:
    """One listener process: `run` until `stop` is set."""

    def __init__(self, settings: Settings, stop: threading.Event, look_command: list[str] | None = None) -> None:
        self.settings = settings
        self.stop = stop
        self.started_ts = time.time()
        self.recorder = Recorder(settings, look_command)
        self.windows = Windows()
        self.model: CryModel | None = None
        self.tracker: EpisodeTracker | None = None
        self.heard_ts: float | None = None
        self.state, self.reason = heartbeat.CONNECTING, ""
        self.outage: Outage | None = None
        self._beat_ts = 0.0
        self._beat_failing = False
        self.heard_in_session = False

    @property
    def what(self) -> str:
        return f"camera {redact_url(self.settings.camera_url)}"

    def run(self) -> None:
        self.recorder.start()
        try:
            self._load_model()
            delay = BACKOFF_S
            while not self.stop.is_set():
                error: Exception | None = None
                try:
                    self._session()
                except (StreamError, CaptureError) as exc:
                    error = exc
                except Exception as exc:  # a bug or a case nobody foresaw: one line, and the same backoff
                    error = StreamError(f"unexpected {type(exc).__name__}: {exc}")
                if self.tracker is not None and (end := self.tracker.break_off()):
                    self.recorder.submit(end)
                if self.stop.is_set():
                    break
                delay = BACKOFF_S if self.heard_in_session else delay  # a connection that worked: start over
                no_audio = isinstance(error, StreamError) and error.no_audio
                wait = min(delay, NO_AUDIO_MAX_S if no_audio else BACKOFF_MAX_S)
                self._lost(str(error) if error else f"{self.what} ended the stream", no_audio, wait)
                self.stop.wait(wait)
                delay = min(delay * 2, NO_AUDIO_MAX_S if no_audio else BACKOFF_MAX_S)
        finally:
            if not self.recorder.stop(STOP_WAIT_S):
                log.error("listener: stopped with cry episodes the database did not take in %.0f s", STOP_WAIT_S)
            self._beat(heartbeat.STOPPED, "the listener stopped", force=True)

    def _load_model(self) -> None:
        """The cry model, waiting MODEL_RETRY_S between tries while it cannot load (one line, then quiet)."""
        told = False
        while self.model is None and not self.stop.is_set():
            try:
                self.model = CryModel.load(self.settings.models_dir)
            except CryModelError as exc:
                if not told:
                    log.error("listener: cannot hear cries: %s (trying again every %.0f s)", exc, MODEL_RETRY_S)
                    told = True
                self._beat(heartbeat.NO_MODEL, str(exc), force=True)
                self.stop.wait(MODEL_RETRY_S)
        if self.model is not None:
            self.tracker = EpisodeTracker(listener_rule(self.settings, self.model))

    def _session(self) -> None:
        """One connection, read until it ends (StreamError) or the listener stops; `heard_in_session` says whether
        it heard at least one window."""
        settings = self.settings
        self.heard_in_session = heard = False
        ffmpeg = find_ffmpeg(settings.ffmpeg_path)
        self._beat(heartbeat.CONNECTING, self.reason, force=True)
        self.windows.reset()
        with AudioStream(settings.camera_url, ffmpeg, settings.capture_timeout_s) as stream:
            try:
                while not self.stop.is_set():
                    for window in self.windows.push(stream.read(READ_WAIT_S)):
                        self._score(window)
                        if not heard:
                            self.heard_in_session = heard = True
                            self._heard_again()
                    self._beat(heartbeat.LISTENING if heard else heartbeat.CONNECTING, "" if heard else self.reason)
            except StreamError as exc:
                if stream.bytes_read == 0:
                    raise self._explained(exc, ffmpeg) from None
                raise

    def _explained(self, error: StreamError, ffmpeg: str) -> StreamError:
        """A stream that failed before any audio: ask the camera what it carries, so a camera without an audio
        track says so instead of ffmpeg's words about a missing stream."""
        settings = self.settings
        try:
            kinds = probe_media(settings.camera_url, ffmpeg, settings.capture_timeout_s)
        except StreamError:
            return error
        if "audio" in kinds:
            return error
        return StreamError(
            f"{self.what} carries no audio track ({', '.join(sorted(kinds))} only): nothing to listen to; turn the "
            "camera's microphone on, or set LISTEN=0",
            no_audio=True,
        )

    def _score(self, window: np.ndarray) -> None:
        assert self.model is not None and self.tracker is not None
        probability = float(self.model.window_probabilities(window[None])[0])
        now = time.time()
        self.heard_ts = now
        if event := self.tracker.feed(probability, dbfs(window), now):
            self.recorder.submit(event)

    def _heard_again(self) -> None:
        if self.outage is None:
            log.info("listener: hearing %s (one window a second)", self.what)
        else:
            log.info("listener: hearing %s again (silent since %s, %d tries)", self.what, clock(self.outage.since_ts),
                     self.outage.tries)  # fmt: skip
        self.outage, self.reason = None, ""

    def _lost(self, reason: str, no_audio: bool, wait_s: float) -> None:
        """One warning when the listener stops hearing (a dropped stream followed by refused reconnects is one
        outage), and one more only if the camera turns out to answer without audio or the other way round; the tries
        in between are debug lines. The heartbeat always holds the newest reason (`--check` shows it)."""
        reason = redact_text(reason, self.settings.secrets)
        if self.outage is None:
            self.outage = Outage(time.time(), reason, no_audio=no_audio)
        else:
            self.outage.tries += 1
        if self.outage.tries == 1 or no_audio != self.outage.no_audio:
            cap = NO_AUDIO_MAX_S if no_audio else BACKOFF_MAX_S
            log.warning("listener: not hearing the camera: %s (trying again in %.0f s, then every %.0f s at most)",
                        reason, wait_s, cap)  # fmt: skip
        else:
            log.debug("listener: still not hearing the camera (try %d): %s", self.outage.tries, reason)
        self.outage.reason, self.outage.no_audio = reason, no_audio
        self.reason = reason
        self._beat(heartbeat.NO_AUDIO if no_audio else heartbeat.DOWN, reason, force=True)

    def _beat(self, state: str, reason: str = "", *, force: bool = False) -> None:
        """Rewrite the heartbeat at a change of state, and every WRITE_EVERY_S."""
        now = time.time()
        if not force and state == self.state and now - self._beat_ts < heartbeat.WRITE_EVERY_S:
            return
        self.state, self._beat_ts = state, now
        crying = self.tracker is not None and self.tracker.episode is not None
        beat = Heartbeat(os.getpid(), self.started_ts, now, state, self.heard_ts, reason, crying)
        try:
            heartbeat.write(self.settings.listener_heartbeat_path, beat)
        except OSError as exc:
            if not self._beat_failing:  # one line; the tick reports the silence it causes
                log.warning("listener: heartbeat %s not written: %s", self.settings.listener_heartbeat_path, exc)
            self._beat_failing = True
        else:
            self._beat_failing = False
