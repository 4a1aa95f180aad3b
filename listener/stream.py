"""One audio-only ffmpeg connection to the camera: 8 kHz mono 16-bit PCM on a pipe, read as it comes.

`-allowed_media_types audio` SETUPs only the audio track, so the camera never sends its video here (no bandwidth,
nothing decoded): G.711 decoding costs ffmpeg a fraction of a percent of a core. The camera URL goes to ffmpeg the
same way as the tick's grab (`capture.ffmpeg.concealed`: on stdin with ffmpeg 5+, never in `ps`), and every
message about the stream passes `redaction.redact_text` with the URL's secrets. Nothing is written to disk.

A stream ends with a `StreamError` (one line): ffmpeg exited (the camera dropped the connection, refused it, was
switched off), sent nothing for STALL_S seconds (a hung camera or network; ffmpeg's own socket timeout usually
fires first), or was redirected to an address the settings do not name. `no_audio` marks a camera that answers
but carries no audio track (told apart by `probe_media`, since a camera asked for audio it does not have answers
anything from "454 Session Not Found" to "no streams").
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import select
import signal
import subprocess
import time

import numpy as np

from capture.audio import pcm16_to_float
from capture.ffmpeg import (
    CaptureError,
    error_lines,
    explain_ffmpeg_failure,
    refused_redirect,
    rtsp_input_args,
    run_ffmpeg,
    start_ffmpeg,
)
from redaction import redact_text, redact_url, url_secrets

SAMPLE_RATE = 8000
STALL_S = 20.0  # no audio at all for this long: the stream is dead even if ffmpeg has not noticed
READ_BYTES = 4096  # a quarter second of 8 kHz s16le
STDERR_LINES = 40
_STREAM = re.compile(r"Stream #\d+:\d+\S*: (Audio|Video):")


class StreamError(RuntimeError):
    """The audio stream could not be opened or ended; one line, credentials redacted. `no_audio`: the camera
    answers but carries no audio track."""

    def __init__(self, message: str, *, no_audio: bool = False) -> None:
        super().__init__(message)
        self.no_audio = no_audio


def is_rtsp(url: str) -> bool:
    """Only an RTSP camera has a stream to listen to (`sample`, a JPEG file or a snapshot folder have none)."""
    return url.lower().startswith(("rtsp://", "rtsps://"))


def audio_command(url: str, ffmpeg: str, timeout_s: float) -> list[str]:
    """The listener's ffmpeg as one command line, URL included (`concealed` hides it before it runs)."""
    args = rtsp_input_args(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=False)
    at = args.index("-i")
    args[at:at] = ["-allowed_media_types", "audio"]
    return [ffmpeg, *args, "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"]


def probe_media(url: str, ffmpeg: str, timeout_s: float) -> set[str]:
    """The kinds of track the camera announces ({"audio", "video"}); StreamError when it cannot be asked."""
    what = f"camera {redact_url(url)}"
    try:
        _rc, _out, stderr = run_ffmpeg([ffmpeg, *rtsp_input_args(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=False)],
                                       timeout_s=timeout_s + 1.0, what=what)  # fmt: skip
    except CaptureError as exc:
        raise StreamError(str(exc)) from None
    kinds = {match[1].lower() for match in _STREAM.finditer(stderr)}
    if not kinds:
        raise StreamError(redact_text(f"{what} {explain_ffmpeg_failure(stderr, url_secrets(url))}", url_secrets(url)))
    return kinds


class AudioStream:
    """A running audio-only ffmpeg. `read` gives the samples that arrived (float32 in [-1, 1)), waiting at most
    `wait_s`; `close` kills ffmpeg's whole process group. Use as a context manager."""

    def __init__(self, url: str, ffmpeg: str, timeout_s: float) -> None:
        self.url = url
        self._secrets = url_secrets(url)
        self._cmd = audio_command(url, ffmpeg, timeout_s)
        self._proc: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._partial = b""  # an odd byte waiting for its pair
        self._last_data = time.monotonic()
        self.bytes_read = 0

    @property
    def what(self) -> str:
        return f"camera {redact_url(self.url)}"

    def open(self) -> AudioStream:
        try:
            self._proc, script = start_ffmpeg(self._cmd)
        except OSError as exc:
            raise StreamError(f"ffmpeg cannot run at {self._cmd[0]}: {exc.strerror}") from None
        if script is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(script)
                self._proc.stdin.close()
            except OSError:  # ffmpeg died at once: its stderr says why, and read() reports it
                pass
        self._last_data = time.monotonic()
        return self

    def __enter__(self) -> AudioStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def read(self, wait_s: float) -> np.ndarray:
        """The samples that arrived within `wait_s` (possibly none); StreamError when the stream is over."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None, "open() first"
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        ready, _, _ = select.select([out, err], [], [], wait_s)
        if err in ready:
            self._take_stderr(os.read(err, 4096))
        data = os.read(out, READ_BYTES) if out in ready else None
        if data == b"":  # EOF: ffmpeg exited
            self._drain_stderr()
            raise self._ended(proc.wait())
        if not data:
            if time.monotonic() - self._last_data > STALL_S:
                raise StreamError(f"{self.what} sent no audio for {STALL_S:g} s")
            return np.zeros(0, np.float32)
        self._last_data = time.monotonic()
        self.bytes_read += len(data)
        data, self._partial = self._partial + data, b""
        if len(data) % 2:
            data, self._partial = data[:-1], data[-1:]
        return pcm16_to_float(data)

    def _take_stderr(self, chunk: bytes) -> None:
        for line in chunk.decode("utf-8", "replace").splitlines():
            if line.strip():
                self._stderr.append(line)
        if target := refused_redirect(self.url, "\n".join(self._stderr)):
            self.close()
            raise StreamError(
                f"{self.what} redirected the stream to {redact_url(target)}, an address CAMERA_URL does not name: "
                "refused (if it is your camera, put that address in CAMERA_URL)"
            )

    def _drain_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        while select.select([proc.stderr], [], [], 0.2)[0]:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            self._take_stderr(chunk)

    def _ended(self, returncode: int) -> StreamError:
        stderr = "\n".join(self._stderr)
        if not error_lines(stderr) or (self.bytes_read and returncode == 0):
            heard = self.bytes_read // 2 / SAMPLE_RATE
            why = f"ended the stream after {heard:.0f} s of audio (ffmpeg exited {returncode})"
        else:
            why = explain_ffmpeg_failure(stderr, self._secrets)
        return StreamError(redact_text(f"{self.what} {why}", self._secrets))
