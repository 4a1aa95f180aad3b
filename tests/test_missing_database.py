"""Fault suite: the database file moved aside (or lost) while the timer runs (issue 17, item 1).

Real `monitor.py --once` processes on the sample camera, the real dashboard over HTTP, the local Bot API server
(tests/bot_api_server.py) for the phone, the real `python -m db.rebuild`. What must hold: no tick and no dashboard
request starts an empty database over a backup that has lines (one clear line saying how to rebuild instead, counted
towards the "cannot store" alert), no frame is lost, and the rebuilt database carries on with ids of its own.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from db import jsonl
from db.store import BACKUP_NAMES, Store
from settings import load_settings
from tests.test_backup import rebuild_cli
from tests.test_camera_health import telegram_env, texts
from tests.test_dashboard import call, csrf_of, dashboard_settings, serving
from tests.tick_runner import frame_files, rows, sample_tick

FILES = ("bilbo.sqlite3", "bilbo.sqlite3-wal", "bilbo.sqlite3-shm")


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def move_aside(data: Path, to: Path) -> None:
    """What db.rebuild's own message asks a parent to do: move the database (and what SQLite keeps beside it) away."""
    to.mkdir()
    for name in FILES:
        if (data / name).exists():
            shutil.move(data / name, to / name)


def ids_in(backup: Path) -> list[int]:
    """The ids of the backup's tick lines."""
    return [record["id"] for _, record, _ in jsonl.read_records(backup) if record and "op" not in record]


def test_the_backup_files_store_py_guards_are_the_ones_settings_names():
    settings = load_settings(None, environ={"BILBO_DATA_DIR": "/srv/bilbo"})
    backups = {settings.jsonl_path, settings.corrections_jsonl_path, settings.teacher_jsonl_path}
    assert backups == {settings.db_path.parent / name for name in BACKUP_NAMES}


def test_a_database_moved_aside_while_the_timer_runs_is_never_started_empty_and_comes_back_whole(tmp_path, bot_api):
    data = tmp_path / "data"
    # One frame per tick: the 02:00 waking takes no confirmation frames here (they have their own tests).
    env = {**telegram_env(bot_api), "BILBO_CAMERA_DOWN_TICKS": "2", "BILBO_CONFIRM_FRAMES": "0"}
    for hhmm in ("02:00", "02:20", "02:40"):  # 20 minutes apart: the baby moves, each tick keeps its frame
        assert sample_tick(data, hhmm, **env).returncode == 0
    live, frames = rows(data), frame_files(data)
    assert len(frames) == 3
    an_hour_ago = time.time() - 3600  # as old as the night's frames are: retention's sweep would take any no row names
    for frame in frames:
        os.utime(frame, (an_hour_ago, an_hour_ago))
    settings = dashboard_settings(data)
    with serving(settings) as base:
        csrf = {"X-CSRF-Token": csrf_of(base)}
        labelled = f"/api/ticks/{live[0].id}/corrections"
        status, _, _ = call("POST", base + labelled, {"changes": {"eyes": "open"}}, csrf)  # kept forever
        assert status == 201
        backups = {name: (data / name).read_bytes() for name in BACKUP_NAMES if (data / name).exists()}
        assert set(backups) == {"ticks.jsonl", "corrections.jsonl"}

        move_aside(data, tmp_path / "aside")

        # The timer goes on: each tick fails with one line saying how to rebuild, and creates nothing.
        for hhmm in ("03:00", "03:04"):
            failed = sample_tick(data, hhmm, **env)
            assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
            [line] = errors(failed.stderr)
            assert "tick failed: database" in line and "is missing and its backup ticks.jsonl is not empty" in line, (
                line
            )
            assert "python -m db.rebuild" in line
            assert not any((data / name).exists() for name in FILES)
        # ... counted like a camera outage: CAMERA_DOWN_TICKS such ticks in a row tell the phone.
        [told] = [text for text in texts(bot_api) if "cannot store anything" in text]
        assert "since 03:00 (2 failed ticks)" in told and "db.rebuild" in told
        # The dashboard answers with the same line and creates nothing either, a parent's label included.
        status, answer, _ = call("GET", base + "/api/status")
        assert status == 503 and "db.rebuild" in answer["error"], answer
        status, answer, _ = call("POST", base + labelled, {"changes": {"eyes": "closed"}}, csrf)
        assert status == 503 and "db.rebuild" in answer["error"], answer
        assert not any((data / name).exists() for name in FILES)
        # Nothing was lost or added meanwhile: every frame is there, and no line took an id twice.
        assert frame_files(data) == frames
        assert {name: (data / name).read_bytes() for name in backups} == backups

        rebuilt = rebuild_cli(data)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "with 3 ticks, 1 corrections and 0 teacher labels" in rebuilt.stdout, rebuilt.stdout
        assert "0 bad lines skipped, 0 repeated lines changed nothing, 0 records not imported" in rebuilt.stdout
        assert rows(data) == live
        with Store.open(data / "bilbo.sqlite3") as store:
            assert store.human_label(live[0].id).corrected == {"eyes": "open"}
        status, _, _ = call("GET", base + "/api/status")
        assert status == 200

    after = sample_tick(data, "03:08", **env)
    assert after.returncode == 0, after.stderr
    assert any("stores again at 03:08" in text for text in texts(bot_api))
    assert [row.id for row in rows(data)] == [*(row.id for row in live), live[-1].id + 1]
    assert ids_in(data / "ticks.jsonl") == [row.id for row in rows(data)]  # one line per id, none reused
    assert set(frames) <= set(frame_files(data))
