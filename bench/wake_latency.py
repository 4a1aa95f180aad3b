"""Waking latency (issue 16, item 3): from the moment the sample baby opens its eyes to the wake alert, with the tick on
its timer (TICK_INTERVAL_S) and a simulated clock, for the tick that confirms a waking within itself (CONFIRM_FRAMES
frames CONFIRM_INTERVAL_S apart) and for today's rule alone (2 of the last 3 timer ticks, CONFIRM_FRAMES=0).

The eyes open at a fixed time (the sample night's wake-ups at 02:00 and 06:00); the timer's phase against that moment
is what varies, over --phases evenly spread offsets, so each rule's median and 95th percentile are over where in the
interval a waking falls. Every tick is the real one (monitor.run_once: the sample camera's frame, the ONNX cascade,
SQLite, the wake rule, the outbox), in-process, one fresh data dir per run.

    .venv/bin/python bench/wake_latency.py [--phases 12]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import monitor  # noqa: E402
from db.store import Store  # noqa: E402
from models.classify import LazyCascade, LazyCryModel  # noqa: E402
from settings import Settings, load_settings  # noqa: E402

WAKE_UPS = ("02:00", "06:00")  # the sample night's wake-ups (capture/sample_camera.py SCHEDULE)
NIGHT = "2026-11-21"
LOOK_S = 20 * 60  # the alert must come within this; a run without one counts as that (and is reported)


def alert_delay_s(settings: Settings, eyes_open: datetime, phase_s: float, models: LazyCascade) -> float | None:
    """Run the timer's ticks, the first three intervals minus `phase_s` before `eyes_open`, on a fresh
    data dir and return seconds from `eyes_open` to the first wake alert, None if none came within LOOK_S."""
    interval = settings.tick_interval_s
    with tempfile.TemporaryDirectory(prefix="bilbo-wake-") as tmp:
        run = replace(settings, data_dir=Path(tmp))
        run.frames_dir.mkdir(parents=True)
        cry = LazyCryModel(run)
        at = eyes_open - timedelta(seconds=3 * interval - phase_s)  # a few asleep ticks first
        while at <= eyes_open + timedelta(seconds=LOOK_S):
            monitor.run_once(run, at, models, cry, simulated=True)
            with Store.open(run.db_path) as store:
                wakes = [a for a in store.alerts("wake") if a.created_ts >= eyes_open.timestamp()]
            if wakes:
                return wakes[0].created_ts - eyes_open.timestamp()
            at += timedelta(seconds=interval)
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(phases: int) -> dict[str, list[float]]:
    """Delays (s) per rule over every wake-up x phase."""
    logging.getLogger("bilbo").setLevel(logging.ERROR)  # the log notifier's alert lines are WARNING
    base = load_settings(None, environ={}, camera_url="sample")
    models = LazyCascade(base)
    rules = {"confirm in tick (new)": base, "2 of 3 ticks (today)": replace(base, confirm_frames=0)}
    delays: dict[str, list[float]] = {name: [] for name in rules}
    for name, settings in rules.items():
        for wake in WAKE_UPS:
            eyes_open = datetime.fromisoformat(f"{NIGHT}T{wake}:00").astimezone()
            for k in range(phases):
                delay = alert_delay_s(settings, eyes_open, k * settings.tick_interval_s / phases, models)
                if delay is None:
                    print(f"  {name}: no alert within {LOOK_S // 60} min of {wake} (phase {k})")
                delays[name].append(LOOK_S if delay is None else delay)
    return delays


def report(delays: dict[str, list[float]], interval_s: int) -> str:
    lines = [f"waking: eyes open -> wake alert, tick every {interval_s} s, {len(next(iter(delays.values())))} runs"]
    today = statistics.median(delays["2 of 3 ticks (today)"])
    for name, values in delays.items():
        median, p95 = statistics.median(values), percentile(values, 0.95)
        lines.append(f"  {name:<24} median {median:6.0f} s   p95 {p95:6.0f} s   ({today / median:.1f}x faster)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", type=int, default=12, help="timer phases per wake-up (default 12)")
    args = parser.parse_args()
    delays = measure(args.phases)
    print(report(delays, load_settings(None, environ={}).tick_interval_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
