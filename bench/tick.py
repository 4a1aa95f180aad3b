"""Cold-process tick benchmark: `monitor.py --once` (ONNX Runtime) vs the same tick with torch inference.

Each run is a fresh process on a fresh data dir (so the pixel diff never skips the models) on one
sample-camera JPEG of a present, awake baby at night: all three stages run. Prints the median wall
time and peak RSS of each, and the ratios. Nothing here is asserted; the figures are for the
issue notes and for regressions you can see.

    .venv/bin/python bench/tick.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capture.sample_camera import frame_at  # noqa: E402


def run_cold(command: list[str], data_dir: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env["BILBO_DATA_DIR"] = str(data_dir)
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(command)}\n{stderr}")
    return wall, usage.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def measure(name: str, command: list[str], runs: int, scratch: Path) -> tuple[float, float]:
    walls, rss = [], []
    for i in range(runs):
        wall, peak = run_cold(command, scratch / f"{name}-{i}")
        walls.append(wall)
        rss.append(peak)
    wall_median, rss_median = statistics.median(walls), statistics.median(rss)
    print(f"{name:<18} median wall {wall_median * 1000:8.0f} ms   peak RSS {rss_median:6.0f} MiB   ({runs} runs)")
    return wall_median, rss_median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="skip the torch baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        jpeg = scratch / "frame.jpg"
        cv2.imwrite(str(jpeg), frame_at(datetime(2026, 1, 1, 2, 10))[0])
        python = sys.executable
        onnx = measure(
            "tick (ONNX)",
            [python, str(REPO / "monitor.py"), "--once", "--source", str(jpeg), "--config", "/nonexistent.env"],
            args.runs,
            scratch,
        )
        print("target: < 300 ms wall, < 100 MiB RSS")
        if args.no_torch:
            return
        torch_tick = measure(
            "tick (torch)", [python, str(REPO / "bench" / "torch_tick.py"), str(jpeg)], args.runs, scratch
        )
        print(
            f"ONNX tick is {torch_tick[0] / onnx[0]:.1f}x faster and uses {torch_tick[1] / onnx[1]:.1f}x less memory "
            "than the torch tick (target: >= 10x faster)"
        )


if __name__ == "__main__":
    main()
