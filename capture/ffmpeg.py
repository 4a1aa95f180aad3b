"""One frame from an RTSP camera through ffmpeg, with hard timeouts and clear errors.

Light on purpose (stdlib only; imageio_ffmpeg is imported only as a fallback): the tick imports it.
Every message that can carry a camera URL goes through `redaction.redact_text` with the URL's own secrets first.

The camera URL never appears on ffmpeg's command line, where any local user could read the password in `ps` for
the whole grab: with ffmpeg 5 or newer, `concealed` moves the URL and its input options into an ffconcat script
that ffmpeg reads on stdin (ffmpeg has no other way to take a URL, and RTSP credentials only come in the URL).
ffmpeg follows an RTSP 301/302 redirect on its own, and no option stops it: a redirect to an address the settings
do not name is detected in ffmpeg's log and the frame refused (`refused_redirect`).
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
from dataclasses import dataclass

from redaction import redact_text, redact_url, url_secrets

__all__ = ["CaptureError", "grab_rtsp", "grab_rtsp_jpeg", "redact_text", "redact_url"]  # redact_*: re-exported

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
# ffconcat's `option` directive (per-file demuxer options) and the `level` log flag: ffmpeg 5 has both. Older
# ffmpeg gets the URL on its command line, and `setup_check` says so.
CONCEALS_SINCE = 5
# What the concat input may open: the script on stdin, and what RTSP(S) over TCP needs. No file, no http.
CONCEALED_PROTOCOLS = "pipe,rtsp,rtsps,tcp,tls,udp,rtp,srtp"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


class CaptureError(RuntimeError):
    """The frame could not be captured; the message is one line, with credentials redacted."""


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


def conceals_url(ffmpeg: str) -> bool:
    """Whether this ffmpeg takes the camera URL on stdin (5 or newer) rather than on its command line."""
    return _ffmpeg_major_version(ffmpeg) >= CONCEALS_SINCE


def global_args(ffmpeg: str) -> list[str]:
    """Options for the whole call. With `level+info` every log line says its level, so errors are told apart
    from the info line that reports a redirect (`refused_redirect`)."""
    loglevel = "level+info" if conceals_url(ffmpeg) else "error"
    return ["-nostdin", "-hide_banner", "-nostats", "-loglevel", loglevel]


def rtsp_input_args(url: str, *, timeout_s: float, ffmpeg: str, tuned: bool = True, audio: bool = False) -> list[str]:
    """Everything up to and including `-i URL` (`audio`: also SETUP the audio track), as if on the command line;
    `concealed` turns it into what ffmpeg really gets."""
    # ffmpeg >= 5 calls the RTSP socket I/O timeout `-timeout`; 4.x called it `-stimeout` and used
    # `-timeout` for *listen* mode, which would make it wait for a camera to connect to us.
    timeout_opt = "-timeout" if _ffmpeg_major_version(ffmpeg) >= 5 else "-stimeout"
    args = [*global_args(ffmpeg), "-rtsp_transport", "tcp", timeout_opt, str(max(1, int(timeout_s * 1_000_000)))]
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
    """The grab as one command line, URL included (what `concealed` hides before it runs)."""
    audio = audio_path is not None and audio_s > 0
    cmd = [ffmpeg, *rtsp_input_args(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned, audio=audio)]
    cmd += video_frame_output_args()
    return cmd + (audio_output_args(audio_path, audio_s) if audio else [])


def _ffconcat_quoted(text: str) -> str:
    """One ffconcat token: in single quotes, each `'` closed, escaped and reopened (as in a shell)."""
    return "'" + text.replace("'", "'\\''") + "'"


def concealed(cmd: list[str]) -> tuple[list[str], bytes | None]:
    """(argv, stdin) that run `cmd` with its `-i URL` and that input's options moved into an ffconcat script
    read on stdin, so `ps` and /proc/PID/cmdline show no URL; `cmd` itself and no stdin for ffmpeg older than 5.
    The concat input carries the RTSP input through unchanged (same streams, same timing, measured)."""
    if not conceals_url(cmd[0]) or "-i" not in cmd:
        return cmd, None
    first, at = cmd.index("-loglevel") + 2, cmd.index("-i")
    url, options = cmd[at + 1], cmd[first:at]
    if any(c in url for c in "\r\n\0"):
        raise CaptureError(f"camera URL {redact_url(url)!r} holds a line break or NUL: it cannot be a camera's address")
    script = ["ffconcat version 1.0", f"file {_ffconcat_quoted(url)}"]
    script += [f"option {name.lstrip('-')} {value}" for name, value in zip(options[::2], options[1::2], strict=True)]
    argv = [*cmd[:first], "-protocol_whitelist", CONCEALED_PROTOCOLS, "-f", "concat", "-safe", "0", "-i", "pipe:0"]
    return [*argv, *cmd[at + 2 :]], ("\n".join(script) + "\n").encode()


def is_complete_jpeg(data: bytes) -> bool:
    """Starts with SOI and ends with EOI (trailing NUL padding allowed). A truncated JPEG fails this even
    though libjpeg would happily decode its top half and grey-fill the rest."""
    return data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\x00").endswith(b"\xff\xd9")


# ffmpeg stderr fragment (lower-case) -> what it means, in the order they are tried. A fragment matches whole
# words only: "403" must not match the port in "127.0.0.1:40379/nope: ... 404 Not Found".
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
# `-loglevel level+...` tags each line `[level]` after its `[context @ 0x...]` prefixes.
_LEVEL_TAG = re.compile(r"^(?:\[[^\]]*@[^\]]*\] )*\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_REDIRECT = re.compile(r"Status \d{3}: Redirecting to (?P<target>.+)$")


def error_lines(stderr: str) -> list[str]:
    """ffmpeg's error lines: those tagged panic/fatal/error, or every line when untagged (`-loglevel error`)."""
    lines = []
    for line in (raw.strip() for raw in stderr.splitlines()):
        tag = _LEVEL_TAG.match(line)
        if line and (tag is None or tag[1] in ("panic", "fatal", "error")):
            lines.append(line)
    return lines


def explain_ffmpeg_failure(stderr: str, secrets: Sequence[str] = ()) -> str:
    """Turn ffmpeg's error lines into a short reason, falling back to the last one (redacted with `secrets`)."""
    errors = error_lines(stderr)
    lowered = "\n".join(errors).lower()
    for fragments, meaning in _STDERR_MEANINGS:
        if any(re.search(rf"\b{re.escape(fragment)}\b", lowered) for fragment in fragments):
            return meaning
    return (
        f"made ffmpeg fail: {redact_text(errors[-1], secrets)[:200]}" if errors else "made ffmpeg exit without a frame"
    )


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) an rtsp(s) URL connects to, parsed like `redact_url`: after the URL's last `@`."""
    scheme, _, rest = url.partition("://")
    authority = rest[rest.rfind("@") + 1 :].split("/", 1)[0].split("?", 1)[0]
    host, port = authority, ""
    if authority.startswith("["):  # [IPv6]:port
        host, _, tail = authority[1:].partition("]")
        port = tail.removeprefix(":")
    elif authority.count(":") == 1:
        host, port = authority.split(":")
    return host.lower(), int(port) if port.isdigit() else DEFAULT_PORTS.get(scheme.lower(), 0)


def refused_redirect(url: str, stderr: str) -> str | None:
    """The address a redirect sent ffmpeg to when it is not the configured camera's host and port (a new path on
    the same camera is fine), else None. ffmpeg logs each redirect it followed at info level."""
    for line in stderr.splitlines():
        if (match := _REDIRECT.search(line.strip())) and endpoint(match["target"]) != endpoint(url):
            return match["target"]
    return None


def start_ffmpeg(cmd: list[str]) -> tuple[subprocess.Popen, bytes | None]:
    """Start `cmd` with its URL concealed (`concealed`), in its own process group (so a timeout kills ffmpeg and
    whatever it spawned), stdout and stderr piped -> (the process, the script to write to its stdin, or None).
    Raises OSError when the binary cannot run. The tick's grab and the cry listener's stream both start here."""
    argv, script = concealed(cmd)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL if script is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return proc, script


def run_ffmpeg(cmd: list[str], *, timeout_s: float, what: str, keep_partial: bool = False) -> tuple[int, bytes, str]:
    """Run ffmpeg (`concealed`: the URL on stdin) in its own process group -> (exit code, stdout, stderr). At
    `timeout_s` the whole group is killed and CaptureError raised, so nothing ever hangs; with `keep_partial` the
    output read so far is returned instead, with exit code -9 (the frame may be complete while the audio stalled)."""
    try:
        proc, script = start_ffmpeg(cmd)
    except OSError as exc:
        raise CaptureError(f"ffmpeg not found or not executable at {cmd[0]}: {exc.strerror}") from exc
    try:
        out, err = proc.communicate(input=script, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if keep_partial:
            return -9, out, err.decode("utf-8", "replace")
        raise CaptureError(f"{what} did not send a frame within {timeout_s:g} s") from None
    return proc.returncode, out, err.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Grab:
    """One camera URL as the messages show it: redacted, with the secrets to hunt in ffmpeg's words."""

    url: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return url_secrets(self.url)

    @property
    def what(self) -> str:
        return f"camera {redact_url(self.url)}"

    def error(self, reason: str) -> CaptureError:
        return CaptureError(redact_text(f"{self.what} {reason}", self.secrets))

    def debug(self, message: str, *args: object) -> None:
        log.debug(redact_text(message % args, self.secrets))

    def check_redirect(self, stderr: str) -> None:
        """Refuse a frame (or a failure) that came from an address the settings do not name."""
        if target := refused_redirect(self.url, stderr):
            raise self.error(
                f"redirected the grab to {redact_url(target)}, an address CAMERA_URL does not name: refused (ffmpeg "
                "follows RTSP redirects on its own and had connected there; if it is your camera, put it in CAMERA_URL)"
            )


def grab_rtsp_jpeg(url: str, *, timeout_s: float, ffmpeg: str, tuned: bool = True) -> bytes:
    """One frame of the camera at `url` as JPEG bytes, or CaptureError within about `timeout_s` + 1 s."""
    grab = _Grab(url)
    cmd = build_rtsp_grab_command(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned)
    start = time.monotonic()
    # ffmpeg's own socket timeout normally fires first; the process-group kill is the backstop.
    returncode, jpeg, stderr = run_ffmpeg(cmd, timeout_s=timeout_s + 1.0, what=grab.what)
    grab.check_redirect(stderr)
    if returncode != 0 or not jpeg:
        grab.debug("ffmpeg exited %s: %s", returncode, stderr.strip())
        if time.monotonic() - start >= timeout_s * 0.95:  # the socket timeout fired ("Invalid data found ...")
            raise grab.error(f"did not send a frame within {timeout_s:g} s")
        raise grab.error(explain_ffmpeg_failure(stderr, grab.secrets))
    if not is_complete_jpeg(jpeg):
        raise grab.error(f"sent a frame that is not a decodable JPEG ({len(jpeg)} bytes)")
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
    grab = _Grab(url)
    with tempfile.TemporaryDirectory(prefix="bilbo-audio-") as tmp:
        pcm_path = os.path.join(tmp, "audio.s16")
        cmd = build_rtsp_grab_command(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned, audio_path=pcm_path,
                                      audio_s=audio_s)  # fmt: skip
        start = time.monotonic()
        returncode, jpeg, stderr = run_ffmpeg(
            cmd, timeout_s=timeout_s + audio_s + 1.0, what=grab.what, keep_partial=True
        )
        grab.check_redirect(stderr)
        if _NO_AUDIO_TRACK in "\n".join(error_lines(stderr)).lower():
            log.debug("%s has no audio track; grabbing the frame alone", grab.what)
            return grab_rtsp_jpeg(url, timeout_s=timeout_s, ffmpeg=ffmpeg, tuned=tuned), None
        pcm = open(pcm_path, "rb").read() if os.path.exists(pcm_path) else b""  # noqa: SIM115
    if is_complete_jpeg(jpeg):
        if returncode != 0:
            grab.debug("ffmpeg exited %s after the frame (audio %d bytes): %s", returncode, len(pcm), stderr.strip())
        return jpeg, pcm or None
    grab.debug("ffmpeg exited %s: %s", returncode, stderr.strip())
    if returncode == -9 or time.monotonic() - start >= timeout_s * 0.95:
        raise grab.error(f"did not send a frame within {timeout_s:g} s")
    if returncode == 0 and jpeg:
        raise grab.error(f"sent a frame that is not a decodable JPEG ({len(jpeg)} bytes)")
    raise grab.error(explain_ffmpeg_failure(stderr, grab.secrets))
