"""A whole simulated night on the sample camera: the wake alert fires once per episode, at the right tick."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

import monitor
from capture.sample_camera import frame_at
from db.store import Store
from settings import load_settings

NIGHT = date(2026, 11, 21)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Run the demo's night once (≈200 ticks) and hand out its rows and alerts."""
    data_dir = tmp_path_factory.mktemp("night")
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(data_dir)}, camera_url="sample")
    settings.frames_dir.mkdir(parents=True)
    assert monitor.run_night(settings, NIGHT) == 0
    with Store.open(settings.db_path) as store:
        return store.ticks_between(0, 1e12), store.alerts("wake"), settings


def test_every_tick_of_the_night_is_recorded_and_each_waking_is_confirmed_within_the_tick(night):
    """The timer's ticks, plus the confirmation frames an awake frame takes (CONFIRM_INTERVAL_S apart), each marked
    with the tick it confirms."""
    rows, _, settings = night
    expected = monitor.night_times(NIGHT, settings.tick_interval_s)
    timer = [r for r in rows if r.confirms is None]
    assert [r.ts for r in timer] == [t.timestamp() for t in expected]
    confirming = [r for r in rows if r.confirms is not None]
    assert confirming  # three wakings
    by_id = {r.id: r for r in rows}
    for row in confirming:
        first = by_id[row.confirms]
        assert first.state == "awake" and first.confirms is None and not row.unchanged
        assert row.ts - first.ts in {settings.confirm_interval_s * n for n in range(1, settings.confirm_frames + 1)}


def expected_alert_times(times: list[datetime], confirm_s: float) -> list[str]:
    """From ground truth: each stretch of awake ticks alerts on its first awake tick's confirmation frame, one
    CONFIRM_INTERVAL_S later (the rule's 2 of the last 3 then hold), not a whole tick later."""
    expected, run = [], 0
    for at in times:
        run = run + 1 if frame_at(at)[1].awake else 0
        if run == 1:
            confirm = at + timedelta(seconds=confirm_s)
            assert frame_at(confirm)[1].awake  # the sample baby stays awake for minutes
            expected.append(confirm.strftime("%H:%M:%S"))
    return expected


def test_wake_alert_fires_once_per_wake_episode_on_the_frame_confirming_its_first_awake_tick(night):
    _, alerts, settings = night
    expected = expected_alert_times(monitor.night_times(NIGHT, settings.tick_interval_s), settings.confirm_interval_s)
    assert len(expected) == 3  # put down awake at 19:30, the 02:00 wake-up, the morning wake-up at 06:00
    assert [datetime.fromtimestamp(a.created_ts).strftime("%H:%M:%S") for a in alerts] == expected
    assert all(a.photo_path and a.tick_id for a in alerts)


def test_alerts_without_telegram_are_delivered_to_the_log(night):
    _, alerts, _ = night
    assert all(a.sent_ts is not None for a in alerts)


def test_cascade_agrees_with_the_sample_truth_on_classified_frames(night):
    rows, _, _ = night
    classified = [r for r in rows if not r.unchanged]
    agree = 0
    for row in classified:
        truth = frame_at(datetime.fromtimestamp(row.ts).astimezone())[1]
        expected = "absent" if not truth.presence else {"open": "awake", "closed": "asleep"}.get(truth.eyes, "unknown")
        agree += row.state == expected or (truth.eyes == "away" and row.state in {"unknown", "asleep"})
    assert agree / len(classified) >= 0.95


def test_still_stretches_are_skipped_and_night_is_flagged(night):
    rows, _, _ = night
    skipped = [r for r in rows if r.unchanged]
    assert len(skipped) > len(rows) / 2  # a sleeping baby mostly looks unchanged
    for row in rows:
        assert row.night == frame_at(datetime.fromtimestamp(row.ts).astimezone())[1].night


def test_the_demo_replays_the_newest_night_that_has_ended_never_one_still_running():
    assert monitor.last_ended_night(datetime(2026, 11, 23, 0, 54)) == date(2026, 11, 21)  # tonight is not over
    assert monitor.last_ended_night(datetime(2026, 11, 23, 7, 29)) == date(2026, 11, 21)
    assert monitor.last_ended_night(datetime(2026, 11, 23, 7, 30)) == date(2026, 11, 22)  # ended this morning
    assert monitor.last_ended_night(datetime(2026, 11, 23, 21, 0)) == date(2026, 11, 22)
    end = monitor.night_times(monitor.last_ended_night(datetime(2026, 11, 23, 0, 54)), 240)[-1]
    assert end.replace(tzinfo=None) <= datetime(2026, 11, 23, 0, 54)
