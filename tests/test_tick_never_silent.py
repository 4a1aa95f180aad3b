"""Ways a tick used to go silent (issue 17, item 3): an error nobody foresaw, a frame too big to decode, a snapshot
stamped in the future, a crop that misses the frame, a clock that jumped back. Each must be a failed tick with one
clear line that counts towards the outage alert, or, for the clock, keep alerts and the dashboard honest and say so.

Real ticks (`monitor.py --once` processes) and the real dashboard over HTTP, except where an unforeseen error has to
be made to happen: there a step of the real in-process tick is replaced by one that raises.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

import monitor
from alerts.rules import in_cooldown
from capture.ffmpeg import CaptureError
from capture.frame_limits import MAX_FRAME_BYTES
from capture.sources import grab
from db.store import Store
from models.classify import frame_file
from settings import load_settings
from tests.test_dashboard import call, dashboard_settings, serving, tick_row
from tests.tick_runner import run_tick, sample_tick

AT = datetime(2026, 11, 21, 2, 0).astimezone()


def write_scene(path: Path, color: tuple[int, int, int]) -> Path:
    image = np.zeros((120, 160, 3), np.uint8)
    image[:] = color
    image[:, :, 1] = np.linspace(0, 255, 160, dtype=np.uint8)  # a left-to-right ramp: not a blank frame
    cv2.imwrite(str(path), image)
    return path


# --- frames too big to decode ------------------------------------------------------------------------------------


def test_a_multi_gigabyte_file_in_the_snapshot_folder_is_refused_unread(tmp_path):
    """A sparse 3 GB 'JPEG' (a video dropped by mistake): read whole, it would take the Pi's memory."""
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(3 * 1024**3)
    with pytest.raises(CaptureError, match=r"3072 MB, more than a camera frame can be"):
        grab(str(tmp_path), at=AT, timeout_s=1)
    assert huge.stat().st_size > MAX_FRAME_BYTES


def test_a_png_whose_header_claims_too_many_pixels_is_refused(tmp_path):
    path = write_scene(tmp_path / "snap.png", (30, 60, 90))
    data = bytearray(path.read_bytes())
    data[16:24] = (9000).to_bytes(4, "big") + (9000).to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # with its checksum: a well-formed header
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=r"claims 9000x9000 pixels \(81 MP, limit 40 MP\)"):
        grab(str(path), at=AT, timeout_s=1)


# --- a snapshot stamped in the future ----------------------------------------------------------------------------


def test_a_snapshot_stamped_in_the_future_does_not_hide_the_newer_uploads(tmp_path):
    now = time.time()
    future = write_scene(tmp_path / "touched.jpg", (200, 0, 0))
    os.utime(future, (now + 86400, now + 86400))  # a clock corrected backwards after this upload
    fresh = write_scene(tmp_path / "fresh.jpg", (0, 200, 0))
    os.utime(fresh, (now - 10, now - 10))
    assert grab(str(tmp_path), at=AT, timeout_s=1).source == str(fresh)


def test_a_folder_whose_every_snapshot_is_in_the_future_is_a_capture_error_naming_the_clock(tmp_path):
    future = write_scene(tmp_path / "a.jpg", (200, 0, 0))
    os.utime(future, (time.time() + 7200, time.time() + 7200))
    with pytest.raises(CaptureError, match=r"stamped in the future .* is this computer's clock wrong"):
        grab(str(tmp_path), at=AT, timeout_s=1)


# --- a crop outside the frame -------------------------------------------------------------------------------------


def test_a_bassinet_crop_outside_the_frame_is_a_failed_tick_not_an_empty_bassinet(tmp_path):
    """Set for a 1920x1080 stream, used on the sample camera's 640x360: every tick used to read 'absent'."""
    for hhmm in ("02:00", "02:04"):
        failed = sample_tick(tmp_path, hhmm, BILBO_BASSINET_CROP="1200,600,1800,1000", BILBO_CAMERA_DOWN_TICKS="2")
        assert failed.returncode == 1
        assert "BASSINET_CROP 1200,600,1800,1000 lies outside the camera's 640x360 frame" in failed.stderr
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        assert store.ticks_between(0, 1e12) == []  # no "absent" row
        [alert] = store.alerts("camera")
    assert alert.caption.startswith("BILBO cannot watch since 02:00") and "BASSINET_CROP" in alert.caption


def test_a_crop_overhanging_the_edge_a_little_still_works(tmp_path):
    done = sample_tick(tmp_path, "02:00", BILBO_BASSINET_CROP="100,40,700,380")  # 640x360: a few pixels over
    assert done.returncode == 0, done.stderr


# --- an error nobody foresaw --------------------------------------------------------------------------------------


class ExplodingCascade:
    """The models' stand-in for an unforeseen failure: loading them runs out of memory."""

    def get(self):
        raise MemoryError


def test_an_unexpected_error_is_a_failed_tick_with_its_type_and_the_steps_after_it_still_run(tmp_path, caplog):
    """A MemoryError (no message at all) used to escape the tick: no failure recorded, never a camera-down alert,
    and delivery, MQTT, retention and backups skipped. Here the second failure raises the 'cannot watch' alert and
    the same tick delivers it (to the log: no Telegram configured)."""
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path), "BILBO_CAMERA_DOWN_TICKS": "2"})
    settings = settings.__class__(**{**settings.__dict__, "camera_url": "sample"})
    settings.frames_dir.mkdir(parents=True)
    caplog.set_level(logging.INFO, logger="bilbo")
    codes = [monitor.run_once(settings, AT + timedelta(minutes=4 * i), ExplodingCascade()) for i in range(2)]
    assert codes == [1, 1]
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick failed")]
    assert failures == ["tick failed: unexpected MemoryError"] * 2
    with Store.open(settings.db_path) as store:
        [alert] = store.alerts("camera")
    assert "BILBO cannot watch since 02:00" in alert.caption and "unexpected MemoryError" in alert.caption
    assert alert.sent_ts is not None  # delivery ran after the failed tick


def test_a_step_after_the_tick_that_raises_does_not_stop_the_steps_after_it(tmp_path, caplog, monkeypatch):
    """MQTT publishing hits a bug: one line names the step, and retention still runs (it sweeps a file no tick
    points at, left by a killed tick) and the tick still counts as done."""
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path)})
    settings = settings.__class__(**{**settings.__dict__, "camera_url": "sample"})
    orphan = settings.data_dir / frame_file(AT - timedelta(minutes=30), ".jpg")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a killed tick")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))

    def broken_publish(*_args, **_kwargs):
        raise KeyError("state")

    monkeypatch.setattr(monitor, "publish_state", broken_publish)
    caplog.set_level(logging.INFO, logger="bilbo")
    assert monitor.run_once(settings, AT, monitor.LazyCascade(settings)) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert "MQTT failed this tick (the next tick tries again): unexpected KeyError: 'state'" in lines
    assert not orphan.exists()


# --- a clock that jumped back ---------------------------------------------------------------------------------------


def test_an_alert_stamped_in_the_future_does_not_silence_the_next_one():
    assert in_cooldown(1000.0, 900.0, 600.0)  # ten seconds after: the same episode
    assert not in_cooldown(1000.0, 300.0, 600.0)  # the cooldown has passed
    assert not in_cooldown(1000.0, 1000.0 + 4 * 3600, 600.0)  # stamped four hours ahead: the clock jumped back
    assert not in_cooldown(1000.0, None, 600.0)


def test_the_dashboard_calls_a_future_stamped_newest_tick_stale_and_says_the_clock_went_back(tmp_path):
    """The newest tick stamped an hour ahead used to read as 'fresh' for an hour: a silent monitor looked healthy."""
    settings = dashboard_settings(tmp_path)
    with Store.open(settings.db_path) as store:
        store.insert_tick(tick_row(time.time() + 3600, None))
    with serving(settings) as base:
        status = call("GET", base + "/api/status")[1]
        assert status["stale"] is True and 3500 < status["clock_skew_s"] < 3700
        with Store.open(settings.db_path) as store:  # the clock corrected: the next tick is the newest
            store.insert_tick(tick_row(time.time() - 30, None))
        status = call("GET", base + "/api/status")[1]
        assert status["stale"] is False and status["clock_skew_s"] == 0 and 29 <= status["data_age_s"] < 60


def test_check_says_the_clock_went_back(tmp_path):
    ahead = (datetime.now() + timedelta(hours=3)).astimezone().isoformat(timespec="seconds")
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", ahead).returncode == 0
    result = run_tick(tmp_path, "--check", "--source", "sample")
    [line] = [line for line in result.stdout.splitlines() if line[8:].startswith("clock")]
    assert line.startswith("  warn") and "the clock went back" in line and "3.0 h after now" in line
