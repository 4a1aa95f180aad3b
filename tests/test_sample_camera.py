"""The built-in sample camera: deterministic, follows its schedule, and plays well with the pixel-diff skip."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from capture import sample_camera as sc
from capture.pixeldiff import diff_score

DAY = datetime(2026, 3, 14)


def at(hhmm: str, day: datetime = DAY) -> datetime:
    return day.replace(hour=int(hhmm[:2]), minute=int(hhmm[3:]))


def block_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The tick's own pixel diff (max change of 16x16 block means of the grayscale bassinet crop)."""
    return diff_score(a, b, sc.BASSINET_CROP)


def test_frame_at_is_deterministic_and_sized():
    a, ta = sc.frame_at(at("02:10"))
    b, tb = sc.frame_at(at("02:10"))
    assert a.shape == (sc.FRAME_SIZE[1], sc.FRAME_SIZE[0], 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and ta == tb
    c, _ = sc.frame_at(at("02:10") + timedelta(seconds=60))
    assert not np.array_equal(a, c)  # sensor noise is per tick


def test_frame_at_uses_own_wall_clock_and_repeats_daily():
    naive, _ = sc.frame_at(at("23:20"))
    aware, _ = sc.frame_at(at("23:20").replace(tzinfo=timezone(timedelta(hours=-7))))
    assert sc.frame_at(at("23:20"))[1] == sc.frame_at(at("23:20").replace(tzinfo=UTC))[1]
    assert sc.frame_at(at("23:20"))[1] == sc.frame_at(at("23:20", DAY + timedelta(days=9)))[1]
    assert np.array_equal(naive, aware)


@pytest.mark.parametrize(
    ("hhmm", "presence", "eyes", "night"),
    [
        ("12:00", False, None, False),
        ("19:00", False, None, False),
        ("19:45", True, "open", False),
        ("20:30", True, "closed", False),
        ("21:30", True, "closed", True),
        ("23:20", True, "away", True),
        ("00:30", True, "closed", True),
        ("02:10", True, "open", True),
        ("02:30", True, "closed", True),
        ("06:15", True, "open", True),
        ("06:45", True, "open", False),
        ("07:30", False, None, False),
    ],
)
def test_schedule_truth(hhmm, presence, eyes, night):
    _, truth = sc.frame_at(at(hhmm))
    assert (truth.presence, truth.eyes, truth.night, truth.awake) == (presence, eyes, night, eyes == "open")
    assert (truth.face_box is not None) == (eyes in ("open", "closed"))


def test_schedule_covers_the_day_without_overlap():
    minutes = [0] * 1440
    for start, end, state in sc.SCHEDULE:
        assert state in sc.STATES
        s, e = sc._minutes(start), sc._minutes(end)
        for m in range(s, e if e > s else e + 1440):
            minutes[m % 1440] += 1
    assert minutes == [1] * 1440


def test_night_frames_are_grayscale_and_day_frames_are_not():
    night, truth = sc.frame_at(at("03:00"))
    assert truth.night
    assert np.array_equal(night[:, :, 0], night[:, :, 1]) and np.array_equal(night[:, :, 1], night[:, :, 2])
    day, _ = sc.frame_at(at("20:30"))
    assert np.abs(day[:, :, 0].astype(int) - day[:, :, 2].astype(int)).mean() > 5
    img, t = sc.render_scene(np.random.default_rng(3), presence=True, eyes="open", night=True)
    assert t.night and np.array_equal(img[:, :, 0], img[:, :, 2])


@pytest.mark.parametrize("hhmm", ["12:00", "20:30", "22:00", "23:10", "01:00", "04:00"])
def test_still_stretch_stays_below_diff_threshold(hhmm):
    frames = [sc.frame_at(at(hhmm) + timedelta(minutes=k))[0] for k in range(4)]
    diffs = [block_diff(a, b) for a, b in itertools.pairwise(frames)]
    assert max(diffs) < 2.0, diffs


def test_eye_change_moves_the_diff():
    # the wake episode starts: schedule change
    assert block_diff(sc.frame_at(at("01:58"))[0], sc.frame_at(at("02:01"))[0]) > 4
    # same pose, only the eyes open: the skip must not hide it
    closed, _ = sc.frame_at(at("01:00"))
    opened, truth = sc._frame_at(at("01:00"), eyes_override="open")
    assert truth.eyes == "open" and truth.face_box == sc.frame_at(at("01:00"))[1].face_box
    assert block_diff(closed, opened) > 4
    day_closed, _ = sc.frame_at(at("20:30"))
    day_open, _ = sc._frame_at(at("20:30"), eyes_override="open")
    assert block_diff(day_closed, day_open) > 4


def test_awake_baby_moves_every_few_ticks():
    times = [at("02:01") + timedelta(minutes=k) for k in range(12)]
    boxes = {sc.frame_at(t)[1].face_box for t in times}
    assert len(boxes) >= 3


def test_render_scene_truth():
    rng = np.random.default_rng(11)
    for i in range(30):
        eyes = ["open", "closed", "away", None][i % 4]
        img, truth = sc.render_scene(rng, presence=eyes is not None, eyes=eyes, night=bool(i % 3 == 0))
        assert img.shape == (360, 640, 3)
        assert truth.presence == (eyes is not None) and truth.eyes == eyes
        if eyes in ("open", "closed"):
            x1, y1, x2, y2 = truth.face_box
            assert 45 <= y2 - y1 <= 130
            bx1, by1, bx2, by2 = sc.BASSINET_CROP
            assert bx1 <= x1 < x2 <= bx2 and by1 <= y1 < y2 <= by2
        else:
            assert truth.face_box is None
    with pytest.raises(ValueError):
        sc.render_scene(rng, presence=True, eyes=None, night=False)


def test_night_times():
    ts = sc.night_times(at("21:00"), at("21:10"), 120)
    assert ts == [at("21:00") + timedelta(minutes=2 * k) for k in range(5)]
