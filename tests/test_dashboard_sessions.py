"""Sleep sessions derived from tick states (pure function)."""

from __future__ import annotations

from dashboard.sessions import SleepSession, sleep_sessions

STEP = 240.0


def night(*stretches: tuple[str, int]) -> list[tuple[float, str]]:
    """Consecutive ticks: ("asleep", 3) = three asleep ticks, STEP seconds apart, starting at 0."""
    points, ts = [], 0.0
    for state, count in stretches:
        for _ in range(count):
            points.append((ts, state))
            ts += STEP
    return points


def test_short_wake_inside_sleep_counts_as_a_wakeup_not_a_new_session():
    sessions = sleep_sessions(night(("awake", 2), ("asleep", 10), ("awake", 3), ("asleep", 10), ("absent", 2)), STEP)
    assert sessions == [
        SleepSession(2 * STEP, 25 * STEP, wakeups=1, ongoing=False, awake_s=3 * STEP, longest_stretch_s=10 * STEP)
    ]
    assert sessions[0].duration_s == 23 * STEP
    assert sessions[0].asleep_s == 20 * STEP


def test_long_wake_ends_the_session_at_the_moment_of_waking():
    sessions = sleep_sessions(night(("asleep", 10), ("awake", 11), ("asleep", 5)), STEP, max_wake_s=10 * STEP)
    assert [(s.start_ts, s.end_ts, s.wakeups) for s in sessions] == [(0.0, 10 * STEP, 0), (21 * STEP, 26 * STEP, 0)]
    assert sessions[1].ongoing


def test_taken_out_of_the_bassinet_ends_the_session_without_a_wakeup():
    sessions = sleep_sessions(night(("asleep", 4), ("absent", 3), ("asleep", 2)), STEP)
    assert [(s.start_ts, s.end_ts, s.wakeups) for s in sessions] == [(0.0, 4 * STEP, 0), (7 * STEP, 9 * STEP, 0)]


def test_unknown_frames_neither_end_sleep_nor_count_as_waking():
    sessions = sleep_sessions(night(("asleep", 3), ("unknown", 5), ("asleep", 3)), STEP)
    assert [(s.start_ts, s.end_ts, s.wakeups) for s in sessions] == [(0.0, 11 * STEP, 0)]


def test_a_gap_in_the_data_ends_the_session_at_the_last_sleep_seen():
    points = [(0.0, "asleep"), (STEP, "asleep"), (20 * STEP, "asleep"), (21 * STEP, "asleep")]
    sessions = sleep_sessions(points, STEP)
    assert [(s.start_ts, s.end_ts) for s in sessions] == [(0.0, 2 * STEP), (20 * STEP, 22 * STEP)]


def test_no_sleep_means_no_session():
    assert sleep_sessions(night(("absent", 3), ("awake", 4)), STEP) == []
    assert sleep_sessions([], STEP) == []


def test_longest_stretch_is_the_longest_sleep_between_wakeups_not_the_whole_session():
    sessions = sleep_sessions(
        night(("asleep", 3), ("awake", 1), ("asleep", 8), ("awake", 2), ("asleep", 5), ("absent", 1)), STEP
    )
    [s] = sessions
    assert (s.wakeups, s.awake_s, s.longest_stretch_s) == (2, 3 * STEP, 8 * STEP)
    assert s.asleep_s == 16 * STEP and s.duration_s == 19 * STEP


def test_a_session_ended_by_a_long_wake_keeps_only_its_sleep_in_the_longest_stretch():
    sessions = sleep_sessions(night(("asleep", 6), ("awake", 11)), STEP, max_wake_s=10 * STEP)
    assert [(s.duration_s, s.awake_s, s.longest_stretch_s) for s in sessions] == [(6 * STEP, 0.0, 6 * STEP)]


def test_session_json_carries_sleep_awake_and_longest_stretch_for_the_page():
    [s] = sleep_sessions(night(("asleep", 4), ("awake", 1), ("asleep", 2)), STEP)
    data = s.to_json()
    assert data["ongoing"] is True and data["wakeups"] == 1
    assert (data["duration_s"], data["asleep_s"], data["awake_s"]) == (7 * STEP, 6 * STEP, STEP)
    assert data["longest_stretch_s"] == 4 * STEP
