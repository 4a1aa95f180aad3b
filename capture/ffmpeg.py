"""One frame from an RTSP camera through ffmpeg, with hard timeouts and clear errors.

Light on purpose (stdlib only; imageio_ffmpeg is imported only as a fallback): the tick imports it.
Every message that can carry a camera URL goes through `redact_url` / `redact_text` first.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

# By default ffmpeg reads ~20 frames to estimate a frame rate we never use (4 s at 5 fps). With
# `-fpsprobesize 0` it stops probing as soon as the codec and frame size are known, and the probed packets
# are still decoded (`-fflags nobuffer` would drop them and cost one more frame; a tiny `-probesize` risks
# "unspecified size" on H.264 cameras that put no SPS in their SDP). Asking only for the video track
# saves one SETUP round trip. bench/grab.py measures it: 4.2 s -> 0.24 s against tests/rtsp_server.py.
TUNED_PROBE_ARGS = ("-fpsprobesize", "0")
VIDEO_ONLY_ARGS = ("-allowed_media_types", "video")
# Audio rides in the same ffmpeg call (one process, one RTSP connection): decoded to the camera's own
# band, 8 kHz mono 16-bit PCM, written to a temp file next to the JPEG on stdout.
AUDIO_RATE = 8000
_NO_AUDIO_TRACK = "does not contain any stream"  # ffmpeg's words when `0:a:0?` matched nothing


class CaptureError(RuntimeError):
    """The frame could not be captured; the message is one line, with credentials redacted."""


# Greedy up to the last "@" of the URL token, so a raw "@" or "/" inside a password is redacted too.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s'\"]*@")
_QUERY_SECRETS = re.compile(r"(?P<key>[?&](?:user|username|password|pwd|pass|passwd|token|auth|key)=)[^&\s]*", re.I)


def redact_text(text: str) -> str:
    """Replace `user:pass@` in every URL of `text` (and secret-looking query values) with `***@`."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _QUERY_SECRETS.sub(r"\g<key>***", text)


def redact_url(url: str) -> str:
    """`rtsp://admin:secret@cam:554/s1` -> `rtsp://***@cam:554/s1`; a URL without credentials is unchanged."""
    return redact_text(url)


def find_ffmpeg(configured: str = "") -> str:
    """The configured ffmpeg, else the one on PATH, else the static binary shipped by imageio-ffmpeg."""
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        found = shutil.which(configured)  # a bare name like "ffmpeg6" is allowed too
        if found:
            return found
        raise CaptureError(f"ffmpeg not found at the configured path {configured!r}")
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise CaptureError("ffmpeg not found: install ffmpeg or the imageio-ffmpeg package") from exc


@functools.lru_cache(maxsize=8)
def _ffmpeg_major_version(ffmpeg: str) -> int:
    """Major version of `ffmpeg` (99 when unknown, e.g. a git build): it decides the timeout option's name."""
    try:
        out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CaptureError(f"ffmpeg at {ffmpeg} cannot run: {exc}") from exc
    match = re.search(r"version\s+n?(\d+)\.", out)
    return int(match.group(1)) if match else 99


def rtsp_input_args(url: str, *, timeout_s: float, ffmpeg: str, tuned: bool = True, audio: bool = False) -> list[str]:
    """Everything up to and including `-i URL` (`audio`: also SETUP the audio track)."""
    # ffmpeg >= 5 calls the RTSP socket I/O timeout `-timeout`; 4.x called it `-stimeout` and used
    # `-timeout` for *listen* mode, which would make it wait for a camera to connect to us.
    timeout_opt = "-timeout" if _ffmpeg_major_version(ffmpeg) >= 5 else "-stimeout"
    args = ["-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp"]
    args += [timeout_opt, str(max(1, int(timeout_s * 1_000_000)))]
    if tuned:
        args += [*TUNED_PROBE_ARGS, *(() if audio else VIDEO_ONLY_ARGS)]
    return [*args, "-i", url]


def video_frame_output_args(quality: int = 3) -> list[str]:
    """One video frame as MJPEG on stdout (`audio_output_args` can follow it in the same call)."""
    return [
        "-map",
        "0:v:0",
        "-an",
        "-frames:v",
        "1",
        "-f",
        "image2pipe",
        "-c:v",
        "mjpeg",
        "-q:v",
        str(quality),
        "pipe:1",
    ]


def audio_output_args(path: str, seconds: float) -> list[str]:
    """The first audio track, if there is one (`?`), as `seconds` of 8 kHz mono s16le PCM into `path`."""
    return ["-map", "0:a:0?", "-vn", "-t", f"{seconds:g}", "-ac", "1", "-ar", str(AUDIO_RATE), "-f", "s16le", path]


def build_rtsp_grab_command(
    url: str, *, timeout_s: float, ffmpeg: str, tuned: bool = True, audio_path: str | None = None, audio_s: float = 0
) -> list[str]:
    audio = audio_path is not None and audio_s > 0
    cmd = [ffmpeg, *rtsp_input_args(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned, audio=audio)]
    cmd += video_frame_output_args()
    return cmd + (audio_output_args(audio_path, audio_s) if audio else [])


def is_complete_jpeg(data: bytes) -> bool:
    """Starts with SOI and ends with EOI (trailing NUL padding allowed). A truncated JPEG fails this even
    though libjpeg would happily decode its top half and grey-fill the rest."""
    return data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\x00").endswith(b"\xff\xd9")


# ffmpeg stderr fragment (lower-case) -> what it means, in the order they are tried.
_STDERR_MEANINGS: Sequence[tuple[tuple[str, ...], str]] = (
    (("connection refused",), "refused the connection (is the camera on and the port right?)"),
    (("401", "unauthorized"), "rejected the user name or password (401 Unauthorized)"),
    (("403", "forbidden"), "refused access to the stream (403 Forbidden)"),
    (("404", "not found"), "has no stream at this path (404 Not Found)"),
    (("timed out", "timeout"), "did not answer in time"),
    (("no route to host", "network is unreachable", "host is unreachable"), "is unreachable on the network"),
    (
        ("name or service not known", "temporary failure in name resolution", "failed to resolve"),
        "has a host name that does not resolve",
    ),
    (
        ("matches no streams", "does not contain any stream", "could not find codec parameters"),
        "sent no usable video stream",
    ),
)


def explain_ffmpeg_failure(stderr: str) -> str:
    """Turn ffmpeg's stderr into a short reason, falling back to its last line (redacted)."""
    lowered = stderr.lower()
    for fragments, meaning in _STDERR_MEANINGS:
        if any(fragment in lowered for fragment in fragments):
            return meaning
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"made ffmpeg fail: {redact_text(lines[-1])[:200]}" if lines else "made ffmpeg exit without a frame"


def run_ffmpeg(cmd: list[str], *, timeout_s: float, what: str, keep_partial: bool = False) -> tuple[int, bytes, str]:
    """Run ffmpeg in its own process group -> (exit code, stdout, stderr). At `timeout_s` the whole group
    is killed and CaptureError raised, so nothing ever hangs; with `keep_partial` the output read so far
    is returned instead, with exit code -9 (the frame may be complete while the audio stalled)."""
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        raise CaptureError(f"ffmpeg not found or not executable at {cmd[0]}: {exc.strerror}") from exc
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if keep_partial:
            return -9, out, err.decode("utf-8", "replace")
        raise CaptureError(f"{what} did not send a frame within {timeout_s:g} s") from None
    return proc.returncode, out, err.decode("utf-8", "replace")


def grab_rtsp_jpeg(url: str, *, timeout_s: float, ffmpeg: str, tuned: bool = True) -> bytes:
    """One frame of the camera at `url` as JPEG bytes, or CaptureError within about `timeout_s` + 1 s."""
    what = f"camera {redact_url(url)}"
    cmd = build_rtsp_grab_command(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned)
    start = time.monotonic()
    # ffmpeg's own socket timeout normally fires first; the process-group kill is the backstop.
    returncode, jpeg, stderr = run_ffmpeg(cmd, timeout_s=timeout_s + 1.0, what=what)
    if returncode != 0 or not jpeg:
        log.debug("ffmpeg exited %s: %s", returncode, redact_text(stderr.strip()))
        if time.monotonic() - start >= timeout_s * 0.95:  # the socket timeout fired ("Invalid data found ...")
            raise CaptureError(f"{what} did not send a frame within {timeout_s:g} s")
        raise CaptureError(f"{what} {explain_ffmpeg_failure(stderr)}")
    if not is_complete_jpeg(jpeg):
        raise CaptureError(f"{what} sent a frame that is not a decodable JPEG ({len(jpeg)} bytes)")
    return jpeg


def grab_rtsp(
    url: str, *, timeout_s: float, ffmpeg: str, audio_s: float = 0, tuned: bool = True
) -> tuple[bytes, bytes | None]:
    """One frame as JPEG plus up to `audio_s` seconds of the audio track as 8 kHz mono s16le PCM, from one
    ffmpeg process on one RTSP connection. PCM is None when `audio_s` is 0 or the stream has no audio (then
    ffmpeg refuses the empty audio output and the frame is grabbed again, video only). A frame that arrived
    while the audio stalled is kept, with whatever audio came."""
    if audio_s <= 0:
        return grab_rtsp_jpeg(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned), None
    what = f"camera {redact_url(url)}"
    with tempfile.TemporaryDirectory(prefix="bilbo-audio-") as tmp:
        pcm_path = os.path.join(tmp, "audio.s16")
        cmd = build_rtsp_grab_command(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned, audio_path=pcm_path,
                                      audio_s=audio_s)  # fmt: skip
        start = time.monotonic()
        returncode, jpeg, stderr = run_ffmpeg(cmd, timeout_s=timeout_s + audio_s + 1.0, what=what, keep_partial=True)
        if _NO_AUDIO_TRACK in stderr.lower():
            log.debug("%s has no audio track; grabbing the frame alone", what)
            return grab_rtsp_jpeg(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned), None
        pcm = open(pcm_path, "rb").read() if os.path.exists(pcm_path) else b""  # noqa: SIM115
    if is_complete_jpeg(jpeg):
        if returncode != 0:
            log.debug("ffmpeg exited %s after the frame (audio %d bytes): %s", returncode, len(pcm),
                      redact_text(stderr.strip()))  # fmt: skip
        return jpeg, pcm or None
    log.debug("ffmpeg exited %s: %s", returncode, redact_text(stderr.strip()))
    if returncode == -9 or time.monotonic() - start >= timeout_s * 0.95:
        raise CaptureError(f"{what} did not send a frame within {timeout_s:g} s")
    if returncode == 0 and jpeg:
        raise CaptureError(f"{what} sent a frame that is not a decodable JPEG ({len(jpeg)} bytes)")
    raise CaptureError(f"{what} {explain_ffmpeg_failure(stderr)}")
