"""Camera health (DESIGN.md feature 20): CAMERA_DOWN_TICKS failed captures in a row send ONE "camera unreachable"
alert per outage, and a frame arriving again after it sends one "camera back" alert.

The rules as pure functions; the store on real SQLite files (a v4 database migrating included); the whole thing
through real `monitor.py --once` processes against a camera URL nobody listens on, the built-in sample camera
coming back, and the real local Bot API server (tests/bot_api_server.py) receiving the messages or failing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from alerts.rules import MAX_REASON_CHARS, camera_back_alert, camera_down_alert
from capture.sample_camera import frame_at
from db.schema import SCHEMA_VERSION
from db.store import Alert, Store, TickRow
from settings import SettingsError, load_settings
from tests.conftest import free_port
from tests.old_db import database_at_version
from tests.test_dashboard import call, dashboard_settings, serving
from tests.tick_runner import rows, run_tick

PASSWORD = "hunter2-S3cret"


def ts(hhmm: str) -> float:
    """Unix seconds of HH:MM local time on the sample night (what `--at 2026-11-21THH:MM:00` means)."""
    return datetime.fromisoformat(f"2026-11-21T{hhmm}:00").timestamp()


REFUSED = "camera rtsp://***@127.0.0.1:9/stream1 refused the connection (is the camera on and the port right?)"


# --- the rules (pure) -------------------------------------------------------------------------------------


def down(failures: int, *, down_ticks: int = 3, alerted: bool = False, reason: str = REFUSED) -> Alert | None:
    return camera_down_alert(
        failures=failures,
        since_ts=ts("02:10"),
        reason=reason,
        down_ticks=down_ticks,
        alerted=alerted,
        at_ts=ts("02:10") + (failures - 1) * 240,
    )


def test_fewer_failed_ticks_in_a_row_than_camera_down_ticks_raise_no_alert():
    assert down(1) is None
    assert down(2) is None
    assert down(4, down_ticks=5) is None


def test_exactly_camera_down_ticks_failures_raise_the_alert_a_parent_reads_at_night():
    alert = down(3)
    assert alert is not None
    assert (alert.kind, alert.photo_path, alert.created_ts) == ("camera", None, ts("02:18"))
    expected = f"Camera unreachable since 02:10 (3 ticks without a frame): {REFUSED} — BILBO is NOT watching."
    assert alert.caption == expected


def test_an_alerted_outage_never_alerts_again_however_long_it_lasts():
    assert all(down(n, alerted=True) is None for n in range(3, 2000))


def test_an_outage_past_n_that_was_not_alerted_yet_still_alerts():
    # A failure the tick could not record (database locked) or a lowered setting must not lose the alert.
    alert = down(5)
    assert alert is not None and "(5 ticks without a frame)" in alert.caption


def test_camera_down_ticks_0_never_alerts_and_1_alerts_on_the_first_failure():
    assert all(down(n, down_ticks=0) is None for n in range(1, 100))
    assert down(1, down_ticks=1) is not None


def test_a_long_multiline_reason_becomes_one_short_line():
    alert = down(3, reason="ffmpeg said:\n" + "x" * 5000)
    assert alert is not None
    assert "\n" not in alert.caption and "ffmpeg said: xxx" in alert.caption
    assert len(alert.caption) < MAX_REASON_CHARS + 120


def test_camera_back_only_after_an_outage_that_was_alerted():
    back = camera_back_alert(failures=4, since_ts=ts("02:10"), alerted=True, at_ts=ts("02:26"))
    assert back is not None
    assert (back.kind, back.photo_path, back.created_ts) == ("camera", None, ts("02:26"))
    assert back.caption == "Camera back at 02:26 — watching again. It was down since 02:10 (4 ticks without a frame)."
    assert camera_back_alert(failures=2, since_ts=ts("02:10"), alerted=False, at_ts=ts("02:26")) is None
    assert camera_back_alert(failures=0, since_ts=None, alerted=False, at_ts=ts("02:26")) is None


def simulate(ticks: str, down_ticks: int = 3) -> list[str]:
    """Feed the rules tick by tick like monitor.py does: 'x' = capture failed, '.' = a frame arrived.
    Returns one letter per tick: 'D' camera-down alert, 'B' camera-back alert, '-' nothing."""
    failures, alerted, since, out = 0, False, None, []
    for i, t in enumerate(ticks):
        at = ts("01:00") + i * 240
        if t == "x":
            since = at if failures == 0 else since
            alert = camera_down_alert(
                failures=failures + 1, since_ts=since, reason="r", down_ticks=down_ticks, alerted=alerted, at_ts=at
            )
            failures, alerted = failures + 1, alerted or alert is not None
            out.append("D" if alert else "-")
        else:
            back = camera_back_alert(failures=failures, since_ts=since, alerted=alerted, at_ts=at)
            failures, alerted, since = 0, False, None
            out.append("B" if back else "-")
    return out


def test_one_alert_per_outage_and_a_new_outage_after_recovery_alerts_again():
    assert "".join(simulate("..xxxxxxxx.xx.xxx..")) == "----D-----B-----DB-"
    assert "".join(simulate("xxxxx", down_ticks=0)) == "-----"


# --- settings ---------------------------------------------------------------------------------------------


def test_camera_down_ticks_defaults_to_3_and_a_bad_value_names_the_key():
    assert load_settings(None, environ={}).camera_down_ticks == 3
    assert load_settings(None, environ={"BILBO_CAMERA_DOWN_TICKS": "0"}).camera_down_ticks == 0
    for bad in ("-1", "three", "2.5"):
        with pytest.raises(SettingsError, match="CAMERA_DOWN_TICKS"):
            load_settings(None, environ={"BILBO_CAMERA_DOWN_TICKS": bad})


# --- the store --------------------------------------------------------------------------------------------


def tick_row(at: float) -> TickRow:
    return TickRow(at, "test", False, 9.0, True, "asleep", "present", 0.9, None, None, "closed", 0.9,
                   f"frames/{int(at)}.jpg", "test", 5.0)  # fmt: skip


def failure_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM capture_failures").fetchone()[0]


def test_the_outage_is_the_failures_since_the_newest_tick_and_a_stored_tick_ends_it(tmp_path):
    path = tmp_path / "bilbo.sqlite3"
    with Store.open(path) as store:
        assert store.camera_outage().failures == 0  # empty database: no outage
        store.add_capture_failure(ts("01:00"), "before any tick")
        store.insert_tick(tick_row(ts("01:04")))
        assert store.camera_outage().failures == 0
        store.add_capture_failure(ts("01:08"), "first")
        store.add_capture_failure(ts("01:12"), "second")
        outage = store.camera_outage()
        assert (outage.failures, outage.since_ts, outage.last_ts, outage.reason) == (
            2,
            ts("01:08"),
            ts("01:12"),
            "second",
        )
        assert not outage.alerted
        store.insert_tick(tick_row(ts("01:16")))
        assert store.camera_outage().failures == 0
    assert failure_rows(path) == 0  # the table never outlives the outage it describes


def test_a_failure_and_its_alert_are_stored_together_and_mark_the_outage_alerted(tmp_path):
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        store.add_capture_failure(ts("01:08"), "r")
        alert = Alert("camera", "Camera unreachable …", None, ts("01:12"))
        store.add_capture_failure(ts("01:12"), "r", alert)
        store.add_capture_failure(ts("01:16"), "r")
        assert store.camera_outage().alerted and store.camera_outage().failures == 3
        [pending] = store.pending_alerts()
        assert (pending.kind, pending.tick_id, pending.created_ts, pending.photo_path) == (
            "camera",
            None,
            ts("01:12"),
            None,
        )
        store.insert_tick(tick_row(ts("01:20")))
        store.add_capture_failure(ts("01:24"), "a new outage")
        assert not store.camera_outage().alerted and store.camera_outage().failures == 1


def test_a_database_from_schema_v4_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v4.sqlite3"
    conn = database_at_version(path, 4)
    conn.execute(
        "INSERT INTO ticks (ts, source, unchanged, night, state, jpeg_path, duration_ms, media_pruned_ts) "
        "VALUES (?, 'old', 0, 1, 'asleep', 'frames/a.jpg', 3.0, NULL)",
        (ts("01:00"),),
    )
    conn.execute(
        "INSERT INTO outbox (created_ts, kind, tick_id, caption, photo_path) VALUES (?, 'wake', 1, 'waking', NULL)",
        (ts("01:00"),),
    )
    conn.commit()
    conn.close()

    with Store.open(path) as store:
        [old] = store.ticks_between(0, 2e9)
        assert (old.source, old.jpeg_path, old.state) == ("old", "frames/a.jpg", "asleep")
        [pending] = store.pending_alerts()
        assert (pending.kind, pending.caption, pending.tick_id) == ("wake", "waking", old.id)
        assert store.camera_outage().failures == 0
        store.add_capture_failure(ts("01:04"), "refused")
        assert store.camera_outage().failures == 1
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# --- real ticks: monitor.py --once processes ----------------------------------------------------------------


def telegram_env(bot_api) -> dict[str, str]:
    return {
        "BILBO_TELEGRAM_BOT_TOKEN": bot_api.token,
        "BILBO_TELEGRAM_CHAT_ID": "4242",
        "BILBO_TELEGRAM_BASE_URL": bot_api.base_url,
    }


def tick_at(data_dir: Path, source: str, hhmm: str, **env: str):
    return run_tick(data_dir, "--once", "--source", source, "--at", f"2026-11-21T{hhmm}:00", **env)


def failed_tick(data_dir: Path, source: str, hhmm: str, **env: str) -> str:
    """A tick whose capture fails: exit 1 and exactly one ERROR line, as before camera health existed."""
    result = tick_at(data_dir, source, hhmm, **env)
    assert result.returncode == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if "ERROR" in line and "tick failed" in line], result.stderr
    assert sum("ERROR" in line for line in result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def good_tick(data_dir: Path, hhmm: str, **env: str) -> str:
    result = tick_at(data_dir, "sample", hhmm, **env)
    assert result.returncode == 0, result.stderr
    return result.stderr


def texts(bot_api) -> list[str]:
    return [r.text for r in bot_api.calls("sendMessage")]


def camera_alerts(data_dir: Path) -> list[Alert]:
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        return store.alerts("camera")


def test_camera_down_three_ticks_sends_one_telegram_alert_and_one_when_it_is_back(tmp_path, bot_api):
    port = free_port()
    camera = f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/stream1"
    env = telegram_env(bot_api)
    for hhmm in ("03:10", "03:14"):
        failed_tick(tmp_path, camera, hhmm, **env)
    assert texts(bot_api) == []  # two failures: a rebooting camera, not yet an outage worth waking for

    failed_tick(tmp_path, camera, "03:18", **env)
    down_text = (
        f"Camera unreachable since 03:10 (3 ticks without a frame): camera rtsp://***@127.0.0.1:{port}/stream1 "
        "refused the connection (is the camera on and the port right?) — BILBO is NOT watching."
    )
    assert texts(bot_api) == [down_text]
    assert bot_api.calls("sendMessage")[0].chat_id == "4242"

    for hhmm in ("03:22", "03:26"):
        failed_tick(tmp_path, camera, hhmm, **env)
    assert texts(bot_api) == [down_text]  # one alert per outage, however long

    good_tick(tmp_path, "03:30", **env)
    back_text = "Camera back at 03:30 — watching again. It was down since 03:10 (5 ticks without a frame)."
    assert texts(bot_api) == [down_text, back_text]
    good_tick(tmp_path, "03:34", **env)
    assert texts(bot_api) == [down_text, back_text]

    assert all(PASSWORD not in r.text and "admin" not in r.text for r in bot_api.calls("sendMessage"))
    stored = camera_alerts(tmp_path)
    assert [(a.caption, a.sent_ts) for a in stored] == [(down_text, ts("03:18")), (back_text, ts("03:30"))]
    assert len(rows(tmp_path)) == 2  # failed ticks store no tick row, as before
    assert failure_rows(tmp_path / "bilbo.sqlite3") == 0


def test_a_short_outage_is_silent_and_a_new_outage_after_recovery_alerts_again(tmp_path, bot_api):
    camera = f"rtsp://127.0.0.1:{free_port()}/stream1"
    env = {**telegram_env(bot_api), "BILBO_CAMERA_DOWN_TICKS": "2"}
    failed_tick(tmp_path, camera, "03:10", **env)
    failed_tick(tmp_path, camera, "03:14", **env)
    good_tick(tmp_path, "03:18", **env)
    failed_tick(tmp_path, camera, "03:22", **env)  # one failure: below N, nobody is told ...
    good_tick(tmp_path, "03:26", **env)  # ... so nobody is told it is back either
    failed_tick(tmp_path, camera, "03:30", **env)
    failed_tick(tmp_path, camera, "03:34", **env)
    assert [t.split(" (")[0] for t in texts(bot_api)] == [
        "Camera unreachable since 03:10",
        "Camera back at 03:18 — watching again. It was down since 03:10",
        "Camera unreachable since 03:30",
    ]


def test_the_alert_waits_in_the_outbox_while_telegram_fails_and_goes_out_on_a_later_tick(tmp_path, bot_api):
    camera = f"rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/stream1"
    env = telegram_env(bot_api)
    failed_tick(tmp_path, camera, "03:10", **env)
    failed_tick(tmp_path, camera, "03:14", **env)
    bot_api.fail(500)
    stderr = failed_tick(tmp_path, camera, "03:18", **env)
    assert "(camera) not sent, will retry next tick" in stderr
    [pending] = camera_alerts(tmp_path)
    assert pending.sent_ts is None and pending.attempts == 1 and "Internal Server Error" in pending.last_error
    assert texts(bot_api) == []

    bot_api.recover()
    failed_tick(tmp_path, camera, "03:22", **env)  # still down: delivers the queued alert, raises no second one
    [sent] = camera_alerts(tmp_path)
    assert (sent.id, sent.attempts) == (pending.id, 2) and sent.sent_ts == ts("03:22")
    assert texts(bot_api) == [pending.caption]
    assert pending.caption.startswith("Camera unreachable since 03:10 (3 ticks without a frame)")
    assert PASSWORD not in pending.caption
    failed_tick(tmp_path, camera, "03:26", **env)
    assert texts(bot_api) == [pending.caption]


def test_a_camera_that_keeps_sending_corrupt_frames_counts_as_down(tmp_path):
    _, good = cv2.imencode(".jpg", frame_at(datetime(2026, 11, 21, 3, 0))[0])
    snapshot = tmp_path / "snapshot.jpg"
    snapshot.write_bytes(good.tobytes()[: len(good) // 3])
    data_dir = tmp_path / "data"
    failed_tick(data_dir, str(snapshot), "03:10", BILBO_CAMERA_DOWN_TICKS="2")
    stderr = failed_tick(data_dir, str(snapshot), "03:14", BILBO_CAMERA_DOWN_TICKS="2")
    # No Telegram configured: the alert lands in the log (LogNotifier), one WARNING line.
    [line] = [line for line in stderr.splitlines() if "alert (no Telegram configured)" in line]
    assert f"Camera unreachable since 03:10 (2 ticks without a frame): {snapshot} is not a decodable JPEG" in line
    assert [a.sent_ts for a in camera_alerts(data_dir)] == [ts("03:14")]


def test_camera_down_ticks_0_records_the_outage_but_never_alerts(tmp_path):
    camera = str(tmp_path / "no-such-camera.jpg")
    for hhmm in ("03:10", "03:14", "03:18", "03:22"):
        failed_tick(tmp_path, camera, hhmm, BILBO_CAMERA_DOWN_TICKS="0")
    assert camera_alerts(tmp_path) == []
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        outage = store.camera_outage()
    assert (outage.failures, outage.since_ts, outage.alerted) == (4, ts("03:10"), False)
    assert "neither a camera URL" in outage.reason
    good_tick(tmp_path, "03:26", BILBO_CAMERA_DOWN_TICKS="0")
    assert camera_alerts(tmp_path) == []


def test_a_locked_database_while_the_camera_is_down_is_one_warning_and_the_alert_comes_a_tick_late(tmp_path):
    camera = f"rtsp://127.0.0.1:{free_port()}/stream1"
    failed_tick(tmp_path, camera, "03:10")  # creates the database (schema migrated) and records failure 1
    blocker = sqlite3.connect(tmp_path / "bilbo.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        stderr = failed_tick(tmp_path, camera, "03:14")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    [warning] = [line for line in stderr.splitlines() if "failed tick not recorded" in line]
    assert "WARNING" in warning and ("locked" in warning or "busy" in warning)

    failed_tick(tmp_path, camera, "03:18")  # the 03:14 failure is lost: 2 recorded so far, no alert yet
    assert camera_alerts(tmp_path) == []
    failed_tick(tmp_path, camera, "03:22")
    [alert] = camera_alerts(tmp_path)
    assert alert.caption.startswith("Camera unreachable since 03:10 (3 ticks without a frame)")


# --- the dashboard --------------------------------------------------------------------------------------------


def test_status_reports_the_current_outage_until_a_frame_arrives(tmp_path):
    settings = dashboard_settings(tmp_path)
    with serving(settings) as base:
        assert call("GET", base + "/api/status")[1]["camera"] == {
            "down": False,
            "failures": 0,
            "since_ts": None,
            "last_ts": None,
            "reason": None,
            "alerted": False,
            "camera": True,
        }
        with Store.open(settings.db_path) as store:
            store.insert_tick(tick_row(ts("03:06")))
            store.add_capture_failure(ts("03:10"), REFUSED)
            store.add_capture_failure(ts("03:14"), REFUSED)
        status = call("GET", base + "/api/status")[1]
        assert status["camera"] == {
            "down": True,
            "failures": 2,
            "since_ts": ts("03:10"),
            "last_ts": ts("03:14"),
            "reason": REFUSED,
            "alerted": False,
            "camera": True,
        }
        assert status["newest_ts"] == ts("03:06")  # the data age keeps saying how old the last frame is
        with Store.open(settings.db_path) as store:
            store.insert_tick(tick_row(ts("03:18")))
        assert call("GET", base + "/api/status")[1]["camera"]["down"] is False


def test_a_covered_lens_alerts_like_an_unplugged_camera_and_says_what_the_camera_shows(tmp_path):
    camera = tmp_path / "camera.jpg"  # a snapshot camera whose lens a toddler covered: black frames
    cv2.imwrite(str(camera), np.zeros((360, 640, 3), np.uint8))
    for hhmm in ("03:10", "03:14"):
        failed_tick(tmp_path / "data", str(camera), hhmm)
    stderr = failed_tick(tmp_path / "data", str(camera), "03:18")
    [alert] = camera_alerts(tmp_path / "data")
    assert alert.caption.startswith("Camera unreachable since 03:10 (3 ticks without a frame)")
    assert "sent a frame that shows nothing: all black" in alert.caption and "lens covered" in alert.caption
    assert "alert (no Telegram configured): Camera unreachable since 03:10" in stderr
    with Store.open(tmp_path / "data" / "bilbo.sqlite3") as store:
        assert store.count_ticks() == 0  # no black frame reached the models or the timeline as "absent"


def test_models_that_cannot_load_alert_as_bilbo_cannot_watch_and_the_fix_as_working_again(tmp_path):
    """A failed update left the weights missing: every tick fails, no camera is at fault, and the parent must know.
    (An unchanged frame does not need the models; a tick over 30 minutes after the last classified one does.)"""
    broken = {"BILBO_MODELS_DIR": str(tmp_path / "no-models")}
    good_tick(tmp_path, "01:00")
    for hhmm in ("02:00", "02:04"):
        result = tick_at(tmp_path, "sample", hhmm, **broken)
        assert result.returncode == 1 and "make weights" in result.stderr
    result = tick_at(tmp_path, "sample", "02:08", **broken)
    [alert] = camera_alerts(tmp_path)
    assert alert.caption.startswith("BILBO cannot watch since 02:00 (3 failed ticks): model manifest")
    assert "alert (no Telegram configured): BILBO cannot watch since 02:00" in result.stderr
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        outage = store.camera_outage()
    assert (outage.failures, outage.camera, outage.alerted) == (3, False, True)

    stderr = good_tick(tmp_path, "02:12")  # the weights are back
    assert "BILBO works again at 02:12 — watching again. It was down since 02:00 (3 failed ticks)." in stderr


def test_an_outage_of_the_camera_alone_still_reads_camera_back(tmp_path):
    unplugged = str(tmp_path / "unplugged.jpg")
    for hhmm in ("03:10", "03:14", "03:18"):
        failed_tick(tmp_path, unplugged, hhmm)
    assert "Camera back at 03:22" in good_tick(tmp_path, "03:22")
