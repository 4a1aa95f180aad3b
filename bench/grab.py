"""Time one-frame RTSP grabs: ffmpeg's default probing vs the tuned options in capture/ffmpeg.py.

    .venv/bin/python bench/grab.py [-n 10] [--fps 5] [--no-audio]

Starts tests/rtsp_server.py (GStreamer, run by /usr/bin/python3; `bash .ci/system-deps.sh` installs it)
serving a 640x480 still, then alternates default and tuned grabs and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

from capture.ffmpeg import find_ffmpeg, grab_rtsp_jpeg  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(jpeg: Path, fps: int, audio: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = ["/usr/bin/python3", str(REPO_DIR / "tests" / "rtsp_server.py"), "--port", str(port), "--jpeg", str(jpeg)]
    cmd += ["--fps", str(fps)] + ([] if audio else ["--no-audio"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "READY":
        proc.kill()
        sys.exit("tests/rtsp_server.py did not start; run `bash .ci/system-deps.sh` first")
    return proc, f"rtsp://127.0.0.1:{port}/cam"


def timed_grab(url: str, ffmpeg: str, tuned: bool) -> float:
    start = time.monotonic()
    jpeg = grab_rtsp_jpeg(url, timeout_s=20, ffmpeg=ffmpeg, tuned=tuned)
    elapsed = time.monotonic() - start
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="grabs per variant (default 10)")
    parser.add_argument("--fps", type=int, default=5, help="frame rate of the test stream (default 5)")
    parser.add_argument("--no-audio", action="store_true", help="serve video only")
    args = parser.parse_args()

    ffmpeg = find_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = Path(tmp) / "still.jpg"
        img = np.full((480, 640, 3), 90, np.uint8)
        cv2.circle(img, (320, 240), 120, (200, 180, 160), -1)
        cv2.imwrite(str(jpeg), img)
        proc, url = start_server(jpeg, args.fps, not args.no_audio)
        try:
            timed_grab(url, ffmpeg, tuned=True)  # warm-up: the shared media pipeline is built on first use
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.n):
                for tuned in (False, True):
                    times[tuned].append(timed_grab(url, ffmpeg, tuned))
        finally:
            proc.terminate()
            proc.wait(timeout=5)

    audio = "no audio" if args.no_audio else "with G.711 audio track"
    print(f"ffmpeg: {ffmpeg}")
    print(f"stream: 640x480 MJPEG/RTP at {args.fps} fps, {audio}; {args.n} grabs per variant")
    default, tuned = statistics.median(times[False]), statistics.median(times[True])
    print(f"default probing: median {default:.3f} s  (min {min(times[False]):.3f}, max {max(times[False]):.3f})")
    print(f"tuned:           median {tuned:.3f} s  (min {min(times[True]):.3f}, max {max(times[True]):.3f})")
    print(f"ratio default/tuned: {default / tuned:.1f}x")


if __name__ == "__main__":
    main()
