"""`monitor.py --check`: a real process checking the real parts (sample camera or a missing one, the shipped models,
a real SQLite file, the local Bot API server, a real mosquitto), one line each, and storing or sending nothing."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import datetime

from tests.conftest import free_port
from tests.test_mqtt import broker  # noqa: F401 - the real mosquitto fixture
from tests.tick_runner import run_tick, sample_tick


def check(data_dir, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run_tick(data_dir, "--check", *args, **env)


def line_of(result: subprocess.CompletedProcess, part: str) -> str:
    [line] = [line for line in result.stdout.splitlines() if line[8:].startswith(part)]
    return line


def test_a_working_setup_passes_and_the_check_stores_nothing(tmp_path):
    result = check(tmp_path, "--source", "sample")
    assert result.returncode == 0, result.stdout + result.stderr
    assert line_of(result, "camera").startswith("  ok    camera") and "640x360 frame" in line_of(result, "camera")
    assert line_of(result, "models").startswith("  ok") and "this frame reads" in line_of(result, "models")
    assert line_of(result, "bassinet crop").startswith("  ok")
    assert "not created yet" in line_of(result, "database")
    telegram = line_of(result, "Telegram")
    assert telegram.startswith("  off") and "alerts go to the log only" in telegram
    assert result.stdout.rstrip().endswith("Nothing failed: BILBO can watch.")
    assert not (tmp_path / "bilbo.sqlite3").exists() and not (tmp_path / "frames").exists()


def test_a_monitor_that_stopped_ticking_is_a_warning_and_the_database_is_left_as_it_was(tmp_path):
    assert sample_tick(tmp_path, "03:00").returncode == 0  # a tick long ago: the timer is not running
    before = (tmp_path / "bilbo.sqlite3").read_bytes()
    result = check(tmp_path, "--source", "sample")
    assert result.returncode == 0
    assert "1 ticks (schema v" in line_of(result, "database")
    assert line_of(result, "timer").startswith("  warn") and "is the schedule installed and running?" in result.stdout
    assert (tmp_path / "bilbo.sqlite3").read_bytes() == before

    now = datetime.now().astimezone().isoformat(timespec="seconds")
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", now).returncode == 0
    assert line_of(check(tmp_path, "--source", "sample"), "timer").startswith("  ok    timer")


def test_every_broken_part_is_named_with_its_reason_and_the_check_fails(tmp_path, bot_api, broker):  # noqa: F811
    mq = broker(users={"bilbo": "right"})
    env = {
        "BILBO_TELEGRAM_BOT_TOKEN": bot_api.token,
        "BILBO_TELEGRAM_CHAT_ID": "4242",
        "BILBO_TELEGRAM_BASE_URL": bot_api.base_url,
        "BILBO_MQTT_HOST": "127.0.0.1",
        "BILBO_MQTT_PORT": str(mq.port),
        "BILBO_MQTT_USERNAME": "bilbo",
        "BILBO_MQTT_PASSWORD": "wrong",
    }
    result = check(tmp_path, "--source", str(tmp_path / "unplugged.jpg"), **env)
    assert result.returncode == 1
    assert line_of(result, "camera").startswith("  FAIL  camera") and "unplugged.jpg" in line_of(result, "camera")
    assert line_of(result, "Telegram").startswith("  ok") and "answers (nothing sent" in line_of(result, "Telegram")
    assert bot_api.calls("getMe") and not bot_api.calls("sendMessage") and not bot_api.calls("sendPhoto")
    mqtt = line_of(result, "MQTT")
    assert mqtt.startswith("  FAIL  MQTT") and "refused the connection" in mqtt and "wrong" not in result.stdout
    assert "2 part(s) FAILED (camera, MQTT)" in result.stdout

    bot_api.fail(401, "Unauthorized")
    env["BILBO_MQTT_PASSWORD"] = "right"
    result = check(tmp_path, "--source", "sample", BILBO_BASSINET_CROP="0,0,900,900", **env)
    assert line_of(result, "Telegram").startswith("  FAIL") and "rejected the bot token" in line_of(result, "Telegram")
    assert bot_api.token not in result.stdout
    assert line_of(result, "MQTT").startswith("  ok    MQTT")
    crop = line_of(result, "bassinet crop")
    assert crop.startswith("  FAIL") and "0,0,900,900 in the 640x360 frame reaches outside it" in crop


def test_an_mqtt_broker_that_is_not_there_is_a_clear_failure(tmp_path):
    result = check(tmp_path, "--source", "sample", BILBO_MQTT_HOST="127.0.0.1", BILBO_MQTT_PORT=str(free_port()))
    assert result.returncode == 1
    assert line_of(result, "MQTT").startswith("  FAIL") and "cannot connect" in line_of(result, "MQTT")


def test_a_database_locked_by_a_tick_is_still_read(tmp_path):
    assert sample_tick(tmp_path, "03:00").returncode == 0
    writer = sqlite3.connect(tmp_path / "bilbo.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a tick in the middle of its write
    try:
        result = check(tmp_path, "--source", "sample")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "1 ticks" in line_of(result, "database")


def test_a_test_alert_reaches_the_chat_named_by_the_camera_and_is_not_stored(tmp_path, bot_api):
    env = {
        "BILBO_TELEGRAM_BOT_TOKEN": bot_api.token,
        "BILBO_TELEGRAM_CHAT_ID": "4242",
        "BILBO_TELEGRAM_BASE_URL": bot_api.base_url,
        "BILBO_CAMERA_NAME": "Ada",
    }
    result = run_tick(tmp_path, "--test-alert", **env)
    assert result.returncode == 0 and "test alert sent via telegram" in result.stdout
    [sent] = bot_api.calls("sendMessage")
    assert sent.chat_id == "4242" and sent.text.startswith("Ada: BILBO test message")
    assert not (tmp_path / "bilbo.sqlite3").exists()  # not an alert of the night: nothing stored, nothing retried

    bot_api.fail(400, "Bad Request: chat not found")  # a wrong TELEGRAM_CHAT_ID
    result = run_tick(tmp_path, "--test-alert", **env)
    assert result.returncode == 1
    assert "test alert NOT sent via telegram" in result.stdout and "Chat not found" in result.stdout


def test_a_database_moved_aside_while_its_backup_has_lines_fails_the_check_with_the_rebuild_command(tmp_path):
    assert sample_tick(tmp_path, "03:00").returncode == 0
    (tmp_path / "bilbo.sqlite3").rename(tmp_path / "bilbo.sqlite3.old")
    result = check(tmp_path, "--source", "sample")
    assert result.returncode == 1
    database = line_of(result, "database")
    assert database.startswith("  FAIL") and "is missing and its backup ticks.jsonl is not empty" in database
    assert "python -m db.rebuild" in database
    assert not (tmp_path / "bilbo.sqlite3").exists()
