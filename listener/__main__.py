"""`python -m listener`: the continuous cry listener as a service; `--probe` for the install scripts.

Exit codes: 0 stopped, or nothing to do (LISTEN=0, a camera that is not RTSP, another listener on this data dir:
the service is not restarted); 2 bad settings. `--probe`: 0 install a listener for this camera, 1 do not.
`--forget`: the installers, when a camera gets no listener, remove its heartbeat so the tick stops expecting one.
"""

from __future__ import annotations

import os

# numpy's OpenBLAS keeps its worker threads spinning after every matrix product (the log-mel's filterbank): once a
# second, for a process that runs all night, that was 6% of a core instead of 0.6% (bench/latency.py). One thread
# is all a 5 s window needs; it must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from capture.ffmpeg import CaptureError, find_ffmpeg  # noqa: E402
from listener.service import Listener  # noqa: E402
from listener.stream import StreamError, is_rtsp, probe_media  # noqa: E402
from lockfile import TickLock  # noqa: E402
from redaction import redact_url  # noqa: E402
from settings import DEFAULT_ENV_FILE, Settings, cli_settings  # noqa: E402

log = logging.getLogger("bilbo.listen")


def probe(settings: Settings) -> int:
    """One line for the installer: whether this camera gets a listener (0) or not (1), and why."""
    if not settings.listen:
        print("off: LISTEN=0")
        return 1
    if not is_rtsp(settings.camera_url):
        print(f"off: CAMERA_URL {redact_url(settings.camera_url)!r} is not an RTSP camera (no stream to listen to)")
        return 1
    try:
        kinds = probe_media(settings.camera_url, find_ffmpeg(settings.ffmpeg_path), settings.capture_timeout_s)
    except (StreamError, CaptureError) as exc:
        print(f"on: could not ask the camera whether it carries audio ({exc}); installing the listener anyway")
        return 0
    if "audio" in kinds:
        print("on: the camera carries audio")
        return 0
    print("off: the camera carries no audio track (turn its microphone on and install again to listen)")
    return 1


def forget(settings: Settings) -> int:
    """For the installers, when a camera gets no listener: remove its heartbeat, so the tick stops expecting one
    (a heartbeat left by a listener that was uninstalled would read as a listener gone silent)."""
    for path in (settings.listener_heartbeat_path, settings.listener_health_path):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            print(f"bilbo-listen: cannot remove {path}: {exc.strerror}", file=sys.stderr)
            return 1
    return 0


def look_command(config: Path) -> list[str]:
    """The tick the listener starts on a cry's onset: the monitor's own, with the listener's settings file (and its
    BILBO_* environment, inherited)."""
    return [sys.executable, str(Path(__file__).resolve().parents[1] / "monitor.py"), "--once", "--config", str(config)]


def serve(settings: Settings, config: Path = DEFAULT_ENV_FILE) -> int:
    """Run the listener until SIGTERM or SIGINT. A cry's onset starts a tick with the same settings file."""
    if not settings.listen:
        log.info("listener: off (LISTEN=0); the tick still hears %g s of audio per tick", settings.audio_seconds)
        return 0
    if not is_rtsp(settings.camera_url):
        log.info("listener: off: camera %s is not an RTSP camera, there is no stream to listen to",
                 redact_url(settings.camera_url))  # fmt: skip
        return 0
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = TickLock(settings.listener_lock_path)
    if not lock.acquire():
        log.info("listener: another listener already runs for %s (lock %s); this one exits",
                 settings.data_dir, settings.listener_lock_path)  # fmt: skip
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with lock:
        Listener(settings, stop, look_command(config)).run()
    log.info("listener: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--probe", action="store_true", help="say whether this camera gets a listener; exit 0 if so")
    what.add_argument("--forget", action="store_true", help="remove the heartbeat of an uninstalled listener")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo-listen", args.config)) is None:
        return 2
    if args.probe:
        return probe(settings)
    if args.forget:
        return forget(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    return serve(settings, args.config)


if __name__ == "__main__":
    sys.exit(main())
