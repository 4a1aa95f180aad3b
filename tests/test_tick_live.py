"""The tick against live local peers: GStreamer's RTSP server and a Bot API endpoint, both on 127.0.0.1."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime

import cv2

from capture.sample_camera import BASSINET_CROP, frame_at
from db.store import Store
from settings import load_settings
from tests.conftest import free_port
from tests.test_dashboard import call, serving
from tests.tick_runner import frame_files, rows, run_tick, sample_tick

CROP = ",".join(str(v) for v in BASSINET_CROP)


def test_tick_grabs_from_a_real_rtsp_camera_and_classifies(tmp_path, rtsp_server):
    served = tmp_path / "served.jpg"
    cv2.imwrite(str(served), frame_at(datetime(2026, 11, 21, 3, 0))[0])
    url = rtsp_server(served)
    data_dir = tmp_path / "data"
    result = run_tick(data_dir, "--once", BILBO_CAMERA_URL=url, BILBO_BASSINET_CROP=CROP)
    assert result.returncode == 0, result.stderr
    [row] = rows(data_dir)
    assert row.source.startswith("rtsp://127.0.0.1:")
    assert (row.state, row.night, row.presence_label) == ("asleep", True, "present")
    grabbed = cv2.imread(str(data_dir / row.jpeg_path))
    assert grabbed is not None and grabbed.shape[:2] == (360, 640)


def test_rtsp_credentials_never_reach_the_database_or_the_log(tmp_path, rtsp_server):
    served = tmp_path / "served.jpg"
    cv2.imwrite(str(served), frame_at(datetime(2026, 11, 21, 3, 0))[0])
    url = rtsp_server(served, user="parent", password="hunter2-secret")
    with_credentials = url.replace("rtsp://", "rtsp://parent:hunter2-secret@")
    data_dir = tmp_path / "data"
    result = run_tick(data_dir, "--once", BILBO_CAMERA_URL=with_credentials, BILBO_BASSINET_CROP=CROP)
    assert result.returncode == 0, result.stderr
    [row] = rows(data_dir)
    assert "hunter2-secret" not in row.source and "hunter2-secret" not in result.stderr
    assert "hunter2-secret" not in (data_dir / "ticks.jsonl").read_text()


PECULIAR_PASSWORD = "pa ss'w\"d\t@X9"  # a space, both quotes, a tab and an @: each stopped the old pattern


def test_a_password_with_spaces_quotes_and_tabs_reaches_no_log_row_backup_endpoint_or_alert(
    tmp_path, rtsp_server, bot_api
):
    """One good tick and one failed one (a wrong path: CAMERA_DOWN_TICKS=1 sends the camera alert at once), then
    every place the password could have gone: the log, every table, ticks.jsonl, the dashboard's endpoints and the
    Telegram message."""
    served = tmp_path / "served.jpg"
    cv2.imwrite(str(served), frame_at(datetime(2026, 11, 21, 3, 0))[0])
    url = rtsp_server(served, user="parent", password=PECULIAR_PASSWORD)
    camera = url.replace("rtsp://", f"rtsp://parent:{PECULIAR_PASSWORD}@")
    data_dir = tmp_path / "data"
    env = {"BILBO_BASSINET_CROP": CROP, "BILBO_CAMERA_DOWN_TICKS": "1", "BILBO_TELEGRAM_BOT_TOKEN": bot_api.token,
           "BILBO_TELEGRAM_CHAT_ID": "4242", "BILBO_TELEGRAM_BASE_URL": bot_api.base_url}  # fmt: skip
    good = run_tick(data_dir, "--once", "--at", "2026-11-21T03:00:00", BILBO_CAMERA_URL=camera, **env)
    assert good.returncode == 0, good.stderr
    down = run_tick(
        data_dir, "--once", "--at", "2026-11-21T03:04:00", BILBO_CAMERA_URL=camera.replace("/cam", "/nope"), **env
    )
    assert down.returncode == 1 and "404 Not Found" in down.stderr

    [alert] = bot_api.delivered()
    assert "404 Not Found" in alert and "/nope" in alert  # the camera alert went out, saying what failed
    with closing(sqlite3.connect(data_dir / "bilbo.sqlite3")) as db:
        tables = "\n".join(db.iterdump())  # every stored text: ticks, failures, alerts, outbox
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(data_dir)}, dashboard_port=free_port())
    endpoints = ("/api/status", "/api/timeline", "/api/ticks/1", "/api/review", "/api/metrics")
    with serving(settings) as base:
        answers = [call("GET", base + path) for path in endpoints]
    assert all(status == 200 for status, _, _ in answers), [a[:2] for a in answers]
    said = {
        "log": good.stderr + down.stderr,
        "database": tables,
        "ticks.jsonl": (data_dir / "ticks.jsonl").read_text(),
        "dashboard": "\n".join(str(body) for _, body, _ in answers),
        "Telegram": alert,
    }
    assert "rtsp://***@127.0.0.1:" in said["database"] and "rtsp://***@127.0.0.1:" in said["log"]
    for where, text in said.items():
        for piece in ("pa ss", 'w"d', "@X9", "parent:"):
            assert piece not in text, f"{piece!r} reached the {where}"


def test_camera_down_fails_the_tick_within_its_timeout_with_one_clear_line(tmp_path):
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    started = datetime.now()
    result = run_tick(tmp_path, "--once", BILBO_CAMERA_URL=url, BILBO_CAPTURE_TIMEOUT_S="5")
    assert (datetime.now() - started).total_seconds() < 15
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "tick failed" in errors[0] and "127.0.0.1" in errors[0]
    assert rows(tmp_path) == []


def test_wake_alert_reaches_telegram_and_survives_an_outage(tmp_path, bot_api):
    telegram = {
        "BILBO_TELEGRAM_BOT_TOKEN": bot_api.token,
        "BILBO_TELEGRAM_CHAT_ID": "4242",
        "BILBO_TELEGRAM_BASE_URL": bot_api.base_url,
    }
    bot_api.fail(500)
    assert sample_tick(tmp_path, "01:56", **telegram).returncode == 0
    waking = sample_tick(tmp_path, "02:00", **telegram)  # eyes open, confirmed 15 s on by the same tick: the alert
    assert waking.returncode == 0, waking.stderr
    assert "not sent, will retry" in waking.stderr
    assert bot_api.calls("sendPhoto") == [] or all(r.photo is None for r in bot_api.calls("sendPhoto"))

    # Telegram is back, but now the camera is down: the pending alert must still go out on this tick.
    bot_api.recover()
    down = run_tick(
        tmp_path,
        "--once",
        "--at",
        "2026-11-21T02:08:00",
        BILBO_CAMERA_URL=f"rtsp://127.0.0.1:{free_port()}/cam",
        BILBO_CAPTURE_TIMEOUT_S="3",
        **telegram,
    )
    assert down.returncode == 1
    [sent] = bot_api.calls("sendPhoto")
    [wake_row] = [r for r in rows(tmp_path) if r.ts == datetime(2026, 11, 21, 2, 0, 15).timestamp()]
    assert sent.chat_id == "4242" and wake_row.confirms is not None
    assert "waking" in sent.caption and "02:00" in sent.caption
    assert sent.photo == (tmp_path / wake_row.jpeg_path).read_bytes()
    assert len(frame_files(tmp_path)) == 3


def test_a_frozen_camera_stream_fails_the_tick_after_15_minutes_and_raises_the_camera_alert(tmp_path, rtsp_server):
    """GStreamer serving one still JPEG is exactly a camera whose picture froze while its stream stays up."""
    served = tmp_path / "served.jpg"
    cv2.imwrite(str(served), frame_at(datetime(2026, 11, 21, 3, 0))[0])
    url = rtsp_server(served, audio=False)
    data = tmp_path / "data"
    env = {"BILBO_CAMERA_URL": url, "BILBO_BASSINET_CROP": CROP, "BILBO_CAMERA_DOWN_TICKS": "2"}
    for hhmm in ("03:00", "03:04", "03:08", "03:12"):  # 12 minutes of a still picture: not yet frozen
        result = run_tick(data, "--once", "--at", f"2026-11-21T{hhmm}:00", **env)
        assert result.returncode == 0, result.stderr
    assert [r.diff_score for r in rows(data)][1:] == [0.0, 0.0, 0.0]  # not one grey level moved
    frozen = run_tick(data, "--once", "--at", "2026-11-21T03:16:00", **env)
    assert frozen.returncode == 1
    assert "has not changed since 03:00: its stream looks frozen (restart the camera)" in frozen.stderr
    alerted = run_tick(data, "--once", "--at", "2026-11-21T03:20:00", **env)
    assert "alert (no Telegram configured): Camera unreachable since 03:16" in alerted.stderr
    assert "looks frozen" in alerted.stderr
    assert len(rows(data)) == 4  # the frozen picture is not stored as a sleeping baby
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 2
