"""Alert latency, end to end, against real parts. The cry part (issue 16): from the moment a cry starts in the
stream of the RTSP test camera (tests/rtsp_server.py, one pipeline per client) to the cry alert reaching a local
Bot API (tests/bot_api_server.py), through a real `python -m listener` with the shipped model and rule. Prints the
median and 95th percentile over --trials fresh listeners, then the listener's cost while it listens: its CPU share
of one core (listener + its ffmpeg, over --listen-s seconds) and its peak RSS, and how soon a camera that was killed
and restarted is heard again. Targets: a cry alert within seconds (the tick takes up to TICK_INTERVAL_S), at most 2%
of a core and 100 MiB, a camera heard again within 30 s.

    .venv/bin/python bench/latency.py [--trials 5] [--listen-s 60] [--cry PATH]

The cry's start in wall-clock time: the stream starts when the listener connects, and the listener's first scored
window (its heartbeat's first heard_ts) ends WINDOW_S after that, so a cry QUIET_S into the stream starts at
first heard_ts - WINDOW_S + QUIET_S (to within one read of a quarter second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import wake_latency  # noqa: E402
from bench.grab import free_port  # noqa: E402
from capture.audio import AudioClip, write_wav  # noqa: E402
from listener import heartbeat  # noqa: E402
from models import audio_features as af  # noqa: E402
from models.cry import decode_8k  # noqa: E402
from settings import load_settings  # noqa: E402
from tests.bot_api_server import TEST_TOKEN, BotApiServer  # noqa: E402

QUIET_S = 12.0
SERVER = ["/usr/bin/python3", str(REPO / "tests" / "rtsp_server.py")]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def default_cry() -> Path:
    """The first held-out cry recording of the shared data set (never trained on)."""
    from train import cry_data

    clips = sorted((c for c in cry_data.index() if c.split == "test" and c.kind == "cry"), key=lambda c: c.path)
    return cry_data.AUDIO_ROOT / clips[0].path


def stream_wav(cry: Path, folder: Path) -> Path:
    """QUIET_S of a quiet room, the cry three times, then a long quiet room (the camera loops the file)."""
    samples = decode_8k(cry)
    samples = np.tile(samples, 3) * (0.3 / max(1e-6, float(np.abs(samples).max())))
    rng = np.random.default_rng(16)
    quiet = lambda s: (rng.standard_normal(int(s * 8000)) * 0.002).astype(np.float32)  # noqa: E731
    path = folder / "cry-stream.wav"
    write_wav(path, AudioClip(np.concatenate([quiet(QUIET_S), samples.astype(np.float32), quiet(120)]), 8000))
    return path


def start_camera(wav: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([*SERVER, "--port", str(port), "--unshared", "--audio-wav", str(wav)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    if proc.stdout is None or proc.stdout.readline().strip() != "READY":
        sys.exit("tests/rtsp_server.py did not start; run `bash .ci/system-deps.sh` first")
    return proc, f"rtsp://127.0.0.1:{port}/cam"


def start_listener(url: str, data_dir: Path, **settings: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env.update(BILBO_DATA_DIR=str(data_dir), BILBO_CAMERA_URL=url, PYTHONUNBUFFERED="1")
    env.update({f"BILBO_{k.upper()}": v for k, v in settings.items()})
    cmd = [sys.executable, "-m", "listener", "--config", str(data_dir / "no.env")]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def first_heard(data_dir: Path, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        beat = heartbeat.read(data_dir / "listener.json")
        if beat is not None and beat.heard_ts is not None:
            return beat.heard_ts
        time.sleep(0.05)
    raise RuntimeError("the listener heard nothing")


def one_trial(wav: Path, folder: Path) -> float:
    """Seconds from the cry's start in the stream to the alert at the Bot API."""
    camera, url = start_camera(wav)
    with BotApiServer() as api:
        listener = start_listener(url, folder, telegram_bot_token=TEST_TOKEN, telegram_chat_id="42",
                                  telegram_base_url=api.base_url)  # fmt: skip
        try:
            cry_starts = first_heard(folder) - af.WINDOW_S + QUIET_S
            deadline = time.monotonic() + 120
            while not api.calls("sendPhoto") and not api.calls("sendMessage"):
                if time.monotonic() > deadline:
                    raise RuntimeError("no cry alert within 120 s")
                time.sleep(0.02)
            return time.time() - cry_starts
        finally:
            stop(listener)
            stop(camera)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cost(wav: Path, folder: Path, listen_s: float) -> tuple[float, float, float]:
    """(CPU % of one core: listener, its ffmpeg; peak RSS MiB of the listener) over `listen_s` of listening, the cry
    and its alert (through Telegram's client, to the local Bot API) included."""
    camera, url = start_camera(wav)
    api = BotApiServer().start()
    listener = start_listener(url, folder, telegram_bot_token=TEST_TOKEN, telegram_chat_id="42",
                              telegram_base_url=api.base_url)  # fmt: skip
    try:
        first_heard(folder)
        time.sleep(2)
        pids = [listener.pid, *_children(listener.pid)]
        before, start = [_cpu_s([p]) for p in pids], time.monotonic()
        time.sleep(listen_s)
        after, wall = [_cpu_s([p]) for p in pids], time.monotonic() - start
        shares = [100 * (a - b) / wall for a, b in zip(after, before, strict=True)]
        return shares[0], sum(shares[1:]), _peak_rss_mib(listener.pid)
    finally:
        stop(listener)
        stop(camera)
        api.stop()


def comeback(wav: Path, folder: Path, downs: tuple[float, ...] = (5, 20, 40)) -> list[float]:
    """Seconds from a camera coming back (killed, down for each of `downs` seconds, restarted on its port) to the
    listener's next scored window: its backoff plus a connection plus one window to fill."""
    camera, url = start_camera(wav)
    port = url.split(":")[2].split("/")[0]
    listener = start_listener(url, folder)
    heard = []
    try:
        first_heard(folder)
        for down_s in downs:
            camera.kill()
            camera.wait()
            time.sleep(down_s)
            back = time.time()
            camera = subprocess.Popen([*SERVER, "--port", port, "--unshared", "--audio-wav", str(wav)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            while (beat := heartbeat.read(folder / "listener.json")) is None or (beat.heard_ts or 0) <= back:
                if time.time() - back > 120:
                    raise RuntimeError("the listener did not hear the camera again within 120 s")
                time.sleep(0.05)
            heard.append(beat.heard_ts - back)
    finally:
        stop(listener)
        stop(camera)
    return heard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--listen-s", type=float, default=60.0)
    parser.add_argument("--cry", type=Path, help="a cry recording (default: the first held-out one)")
    parser.add_argument("--phases", type=int, default=12, help="waking: timer phases per wake-up (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bilbo-latency-") as tmp:
        wav = stream_wav(args.cry or default_cry(), Path(tmp))
        latencies = []
        for trial in range(args.trials):
            folder = Path(tmp) / f"trial-{trial}"
            folder.mkdir()
            latencies.append(one_trial(wav, folder))
            print(f"  trial {trial + 1}: cry alert {latencies[-1]:.1f} s after the cry started", flush=True)
        p95 = wake_latency.percentile(latencies, 0.95)
        print(f"cry onset -> alert at the Bot API: median {statistics.median(latencies):.1f} s, "
              f"95th percentile {p95:.1f} s ({args.trials} trials)")  # fmt: skip
        today = today_cry_delays(load_settings(None, environ={}).tick_interval_s)
        print(f"  today's rule (the tick's {TODAY_CRY_NEEDED} of 3 five-second clips, a cry that goes on): median "
              f"{statistics.median(today):.0f} s, 95th percentile {wake_latency.percentile(today, 0.95):.0f} s "
              "(from the timer's phase; no listener)")  # fmt: skip
        folder = Path(tmp) / "cost"
        folder.mkdir()
        own, ffmpeg, rss = cost(wav, folder, args.listen_s)
        print(f"listening ({args.listen_s:.0f} s): listener {own:.2f}% + ffmpeg {ffmpeg:.2f}% = {own + ffmpeg:.2f}% "
              f"of one core (target 2%), listener peak RSS {rss:.0f} MiB (target 100 MiB)")  # fmt: skip
        folder = Path(tmp) / "comeback"
        folder.mkdir()
        back = comeback(wav, folder)
        print("camera back after 5, 20, 40 s down -> heard again after " + ", ".join(f"{s:.1f}" for s in back)
              + " s (target 30 s)")  # fmt: skip
    if args.phases:
        print(wake_latency.report(wake_latency.measure(args.phases), load_settings(None, environ={}).tick_interval_s))
    return 0


TODAY_CRY_NEEDED = 2


def today_cry_delays(interval_s: int, phases: int = 240) -> list[float]:
    """Cry onset -> alert under the tick's own rule alone (CRY_NEEDED=2 of CRY_WINDOW=3 ticks, each hearing its
    AUDIO_SECONDS clip at the tick): a cry starting `phase` seconds before a tick is first heard by that tick and
    alerts at the next one, whatever the model, so the delay is the phase plus one interval."""
    return [interval_s * k / phases + (TODAY_CRY_NEEDED - 1) * interval_s for k in range(phases)]


if __name__ == "__main__":
    sys.exit(main())
