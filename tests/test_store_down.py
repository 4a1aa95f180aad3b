"""A database that cannot be written still reaches the parent's phone (alerts/store_down.py).

Real `monitor.py --once` processes, a real corrupt database file, a real disk full to the last byte (a tmpfs; skipped
where mounting is not allowed), a data folder that is not a folder, and the real local Bot API server
(tests/bot_api_server.py) receiving the messages or failing.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_backup import rebuild_cli
from tests.test_camera_health import telegram_env, texts
from tests.test_faults import SMALL_DISK, fill, small_disk  # noqa: F401 - small_disk is a fixture
from tests.tick_runner import rows, run_tick, sample_tick

HINT = "Run `python monitor.py --check` on the BILBO machine."


def back(at: str, since: str, failures: int) -> str:
    return f"BILBO stores again at {at} — watching again. It could not since {since} ({failures} failed ticks)."


def failed(data: Path, hhmm: str, **env: str) -> str:
    result = sample_tick(data, hhmm, **env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert sum(" ERROR " in line for line in result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def stored(data: Path, hhmm: str, **env: str) -> str:
    result = sample_tick(data, hhmm, **env)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_corrupt_database_alerts_once_after_three_ticks_retries_a_failed_send_and_says_when_it_stores_again(
    tmp_path, bot_api
):
    env = telegram_env(bot_api)
    stored(tmp_path, "01:00", **env)
    db = tmp_path / "bilbo.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database " * 200)  # a bad SD-card sector, a stray copy

    failed(tmp_path, "01:04", **env)
    failed(tmp_path, "01:08", **env)
    assert texts(bot_api) == []  # two failures may be a lock held by the dashboard: not yet news

    bot_api.fail(500)
    log = failed(tmp_path, "01:12", **env)
    assert "database alert not sent, the next tick tries again" in log
    assert texts(bot_api) == []
    bot_api.recover()
    failed(tmp_path, "01:16", **env)
    [down] = texts(bot_api)
    assert down.startswith("BILBO cannot store anything since 01:04 (4 failed ticks): ")
    assert "not a database" in down and down.endswith(f"BILBO is NOT watching. {HINT}")
    failed(tmp_path, "01:20", **env)
    assert texts(bot_api) == [down]  # one per outage, however long

    db.unlink()  # the parent moves the bad file away and rebuilds it from the backup, as the failure line says
    failed(tmp_path, "01:22", **env)  # the backup has a line: the tick refuses to start an empty database over it
    assert rebuild_cli(tmp_path).returncode == 0
    stored(tmp_path, "01:24", **env)
    assert texts(bot_api) == [down, back("01:24", "01:04", 6)]
    stored(tmp_path, "01:28", **env)
    assert len(texts(bot_api)) == 2
    assert len(rows(tmp_path)) == 3  # the 01:00 tick came back from the backup


def test_a_stores_again_message_that_could_not_be_sent_is_sent_by_the_next_tick(tmp_path, bot_api):
    env = {**telegram_env(bot_api), "BILBO_CAMERA_DOWN_TICKS": "1"}
    stored(tmp_path, "01:00", **env)
    db = tmp_path / "bilbo.sqlite3"
    for extra in ("", "-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.mkdir()  # a folder where the database should be
    failed(tmp_path, "01:04", **env)
    assert [t.split(" (")[0] for t in texts(bot_api)] == ["BILBO cannot store anything since 01:04"]
    db.rmdir()
    assert rebuild_cli(tmp_path).returncode == 0  # the parent restores it from the backup, as told
    bot_api.fail(500)
    stored(tmp_path, "01:08", **env)
    bot_api.recover()
    assert len(texts(bot_api)) == 1
    stored(tmp_path, "01:12", **env)
    assert texts(bot_api)[1:] == [back("01:12", "01:04", 1)]
    stored(tmp_path, "01:16", **env)
    assert len(texts(bot_api)) == 2


def test_fewer_failed_ticks_than_camera_down_ticks_end_silently(tmp_path, bot_api):
    env = telegram_env(bot_api)
    stored(tmp_path, "01:00", **env)
    db = tmp_path / "bilbo.sqlite3"
    for extra in ("", "-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.mkdir()
    failed(tmp_path, "01:04", **env)
    failed(tmp_path, "01:08", **env)
    check = run_tick(tmp_path, "--check", "--source", "sample")
    assert check.returncode == 1
    [line] = [line for line in check.stdout.splitlines() if line.startswith("  ") and "database writes" in line]
    assert line.split()[0] == "FAIL" and "the last 2 tick(s) could not write since 01:04: " in line, check.stdout
    db.rmdir()
    assert rebuild_cli(tmp_path).returncode == 0  # the parent restores it from the backup, as told
    log = stored(tmp_path, "01:12", **env)
    assert "the database works again after 2 failed tick(s)" in log
    assert texts(bot_api) == []
    assert len(rows(tmp_path)) == 2  # the restored 01:00 tick and this one


def test_a_data_folder_that_cannot_be_used_alerts_from_the_first_tick_of_each_hour_only(tmp_path, bot_api):
    env = telegram_env(bot_api)
    data = tmp_path / "data"
    data.write_text("a file where the data folder should be (a USB disk that did not mount)")
    for hhmm in ("01:05", "01:09", "01:13", "01:57"):
        failed(data, hhmm, **env)
    assert texts(bot_api) == []  # no count can be kept there, and none of these is an hour's first tick
    failed(data, "02:01", **env)
    [down] = texts(bot_api)
    assert down.startswith("BILBO cannot store anything (data dir not usable: ")
    assert down.endswith(f"BILBO is NOT watching. {HINT}")
    failed(data, "02:05", **env)
    assert len(texts(bot_api)) == 1


def test_a_disk_full_to_the_last_byte_still_alerts_and_says_when_it_stores_again(small_disk, bot_api):  # noqa: F811
    env = {**telegram_env(bot_api), **SMALL_DISK}
    data = small_disk / "data"
    stored(data, "02:00", **env)
    assert (data / "store-health.json").stat().st_size == 1024  # made while there is room
    filler = fill(small_disk)
    for hhmm in ("02:04", "02:08", "02:12", "02:16"):
        failed(data, hhmm, **env)
    [down] = texts(bot_api)
    assert down.startswith("BILBO cannot store anything since 02:04 (3 failed ticks): ")
    assert "full" in down or "No space left" in down

    filler.unlink()
    stored(data, "02:20", **env)
    assert texts(bot_api)[1:] == [back("02:20", "02:04", 4)]
    assert len(rows(data)) == 2
