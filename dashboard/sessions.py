"""Sleep sessions of a night, derived from the tick states (a pure function: easy to test, no I/O).

A session starts at the first asleep tick. Short awake stretches that end asleep again are
wake-ups inside the session; it ends when the baby is taken out (absent), stays awake longer
than `max_wake_s`, or the data stops for longer than `max_gap_s` (the monitor was down: we do
not invent sleep we did not see). 'unknown' and skipped ticks neither end nor extend a wake.

Each session also carries its awake time (the wake-ups inside it) and its longest stretch of
uninterrupted sleep: what a sleep log asks for ("slept 9 h, longest 4 h 40 min, woke 3 times").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock

MAX_WAKE_S = 40 * 60
# A night runs from this local time to the same time the next day: 19:00 and 05:00 are the same night, and an
# afternoon nap belongs to the night that follows it. The sleep log's files and the retrain's night split share it.
NIGHT_BOUNDARY = clock(12)


def night_of(ts: float) -> date:
    """The night a moment belongs to, named by its evening's date."""
    return (datetime.fromtimestamp(ts) - timedelta(hours=NIGHT_BOUNDARY.hour)).date()


@dataclass(frozen=True)
class SleepSession:
    start_ts: float
    end_ts: float
    wakeups: int
    ongoing: bool  # the data ends inside this session
    awake_s: float = 0.0  # time inside the session spent in its wake-ups
    longest_stretch_s: float = 0.0  # the longest sleep between two wake-ups (or the session's edges)

    @property
    def duration_s(self) -> float:
        return self.end_ts - self.start_ts

    @property
    def asleep_s(self) -> float:
        return self.duration_s - self.awake_s

    def to_json(self) -> dict:
        return {
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "duration_s": self.duration_s,
            "asleep_s": self.asleep_s,
            "awake_s": self.awake_s,
            "longest_stretch_s": self.longest_stretch_s,
            "wakeups": self.wakeups,
            "ongoing": self.ongoing,
        }


def sleep_sessions(
    points: Sequence[tuple[float, str]],
    interval_s: float,
    *,
    max_wake_s: float = MAX_WAKE_S,
    max_gap_s: float | None = None,
) -> list[SleepSession]:
    """`points` are (ts, state) in time order; states are asleep | awake | absent | unknown."""
    max_gap_s = 3 * interval_s if max_gap_s is None else max_gap_s
    sessions: list[SleepSession] = []
    start: float | None = None
    last_asleep = awake_since = prev_ts = stretch_start = awake_s = longest = 0.0
    wakeups = 0
    woke = False

    def close(end: float, ongoing: bool = False) -> None:
        nonlocal start
        if start is not None:
            stretch = 0.0 if woke else end - stretch_start  # a closing wake already ended the last stretch
            sessions.append(SleepSession(start, end, wakeups, ongoing, awake_s, max(longest, stretch)))
        start = None

    for ts, state in points:
        if start is not None and ts - prev_ts > max_gap_s:
            close(awake_since if woke else last_asleep + interval_s)
        prev_ts = ts
        if start is None:
            if state == "asleep":
                start = last_asleep = stretch_start = ts
                wakeups, woke, awake_s, longest = 0, False, 0.0, 0.0
            continue
        if state == "asleep":
            if woke:
                wakeups += 1
                awake_s += ts - awake_since
                stretch_start = ts
            woke, last_asleep = False, ts
        elif state == "awake":
            if not woke:
                woke, awake_since = True, ts
                longest = max(longest, ts - stretch_start)
            elif ts - awake_since >= max_wake_s:
                close(awake_since)
        elif state == "absent":
            close(awake_since if woke else ts)
    if start is not None:
        close(awake_since if woke else prev_ts + interval_s, ongoing=not woke)
    return sessions
