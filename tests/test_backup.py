"""The JSONL backup (data/ticks.jsonl) holds camera outages and retention's marks, and `db.rebuild` restores them.

Real `monitor.py --once` processes on the sample camera and on a camera file that is not there, real SQLite files,
real frames on disk, the real `python -m db.rebuild`. A backup that cannot be written is a real one: a folder where
ticks.jsonl should be (open() refuses it for every user, root included).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from capture.ffmpeg import CaptureError
from db import jsonl
from db.rebuild import RESTORED_NOTE, rebuild, replay
from db.store import Store
from monitor import note_capture_failure
from retention import prune
from settings import load_settings
from tests.test_camera_health import camera_alerts, failed_tick, good_tick, ts
from tests.test_dashboard import tick_row
from tests.tick_runner import REPO, rows, run_tick

DAY = 86400.0


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


def rebuild_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m db.rebuild` as a parent would run it, the paths from BILBO_DATA_DIR unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env["BILBO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "db.rebuild", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def lose_database(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"bilbo.sqlite3{suffix}").unlink(missing_ok=True)


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --- camera outages ----------------------------------------------------------------------------------------------


def test_a_database_rebuilt_during_an_outage_has_the_same_outage_and_never_alerts_it_twice(tmp_path):
    unplugged = str(tmp_path / "unplugged.jpg")
    data = tmp_path / "data"
    good_tick(data, "03:06")
    for hhmm in ("03:10", "03:14", "03:18"):  # the third one alerts (CAMERA_DOWN_TICKS=3) and the log delivers it
        failed_tick(data, unplugged, hhmm)
    with Store.open(data / "bilbo.sqlite3") as store:
        outage, [alert] = store.camera_outage(), store.alerts("camera")
    assert (outage.failures, outage.since_ts, outage.alerted) == (3, ts("03:10"), True)

    lose_database(data)
    result = rebuild_cli(data)
    assert result.returncode == 0, result.stderr
    assert "with 1 ticks" in result.stdout and "0 bad lines" in result.stdout
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.camera_outage() == outage
        [restored] = store.alerts("camera")
        assert store.pending_alerts() == []  # restored settled: the rebuild sends nothing old
    assert (restored.id, restored.caption, restored.created_ts) == (alert.id, alert.caption, alert.created_ts)
    assert restored.last_error == RESTORED_NOTE

    # The monitor goes on with the rebuilt database: the outage is still alerted once, and its end is announced.
    stderr = failed_tick(data, unplugged, "03:22")
    assert "Camera unreachable" not in stderr and len(camera_alerts(data)) == 1
    stderr = good_tick(data, "03:26")
    assert "Camera back at 03:26" in stderr
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 0 and store.pending_alerts() == []


def test_a_database_rebuilt_after_an_outage_ended_has_no_outage(tmp_path):
    unplugged = str(tmp_path / "unplugged.jpg")
    good_tick(tmp_path, "03:06")
    for hhmm in ("03:10", "03:14"):
        failed_tick(tmp_path, unplugged, hhmm)
    good_tick(tmp_path, "03:18")
    rebuilt = tmp_path / "rebuilt.sqlite3"
    imported, problems = rebuild(tmp_path / "ticks.jsonl", rebuilt)
    assert (imported, problems) == (2, [])
    with Store.open(tmp_path / "bilbo.sqlite3") as live, Store.open(rebuilt) as store:
        assert store.camera_outage() == live.camera_outage()
        assert store.camera_outage().failures == 0
    assert failure_rows(rebuilt) == failure_rows(tmp_path / "bilbo.sqlite3") == []  # the frame at 03:18 ended it


def failure_rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, ts, reason, alert_id FROM capture_failures ORDER BY id").fetchall()
    finally:
        conn.close()


# --- retention's marks -------------------------------------------------------------------------------------------


def test_a_database_rebuilt_after_retention_knows_which_frames_are_gone(tmp_path):
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-01T03:00:00").returncode == 0
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    old, new = rows(tmp_path)
    assert old.media_pruned and not (tmp_path / old.jpeg_path).exists()

    rebuilt = tmp_path / "rebuilt.sqlite3"
    assert rebuild(tmp_path / "ticks.jsonl", rebuilt) == (2, [])
    with Store.open(rebuilt) as store:
        assert store.ticks_between(0, 2e9) == [old, new]  # every field, media_pruned_ts included
        assert [t.id for t, _ in store.review_queue(10)] == [new.id]  # the deleted frame is not offered for review
        assert [p["has_jpeg"] for p in store.timeline_points(0, 2e9)] == [False, True]


# --- rebuilding is repeatable ------------------------------------------------------------------------------------


def test_rebuilding_twice_gives_the_same_database_and_replaying_the_backup_again_changes_nothing(tmp_path):
    now = datetime(2026, 11, 21, 3, 0).timestamp()
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path)}, retention_days=7, min_free_mb=0)
    backup = settings.jsonl_path
    (tmp_path / "frames").mkdir()
    with Store.open(settings.db_path) as store:
        for at, frame in ((now - 10 * DAY, "frames/old.jpg"), (now - 600, "frames/new.jpg")):
            (tmp_path / frame).write_bytes(b"jpeg")
            row = tick_row(at, frame)
            jsonl.append(backup, store.tick(store.insert_tick(row)))  # as the tick writes its line
        for minutes in (8, 4, 0):  # a camera outage that has alerted and is still going on
            at = datetime.fromtimestamp(now - minutes * 60).astimezone()
            note_capture_failure(settings, store, at, CaptureError("camera refused the connection"))
        report = prune(store, tmp_path, settings, now)
        assert report.ticks_marked == 1 and report.problem(settings) is None
        live_outage = store.camera_outage()
    assert live_outage.failures == 3 and live_outage.alerted
    with open(backup, "a") as handle:
        handle.write('{"op": "capture_failure", "ts": 17')  # power cut mid-line
    lines = len(backup.read_text().splitlines())

    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    for path in (first, second):
        imported, problems = rebuild(backup, path)
        assert imported == 2
        assert len(problems) == 1 and f":{lines}: skipped" in problems[0]
    assert dump(first) == dump(second)
    with Store.open(first) as store:
        assert store.camera_outage() == live_outage
        assert [t.media_pruned_ts for t in store.ticks_between(0, 2e9)] == [now, None]
        before = dump(first)
        again: list[str] = []
        applied = replay(store, backup, again)
    assert applied == {None: 2, "capture_failure": 3, "pruned": 1} and len(again) == 1
    assert dump(first) == before


# --- a backup that cannot be written -----------------------------------------------------------------------------


def test_a_capture_failure_whose_backup_line_cannot_be_written_is_still_stored_with_one_warning(tmp_path):
    (tmp_path / "ticks.jsonl").mkdir()
    unplugged = str(tmp_path / "unplugged.jpg")
    stderr = failed_tick(tmp_path, unplugged, "03:10")
    [warning] = warnings(stderr)
    assert "capture failure recorded, but its JSONL backup line was not written" in warning
    assert "ticks.jsonl" in warning and "not recorded" not in warning
    failed_tick(tmp_path, unplugged, "03:14")
    failed_tick(tmp_path, unplugged, "03:18")
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        outage = store.camera_outage()
    assert (outage.failures, outage.since_ts, outage.alerted) == (3, ts("03:10"), True)  # the alert still went out


def test_retention_marks_whose_backup_line_cannot_be_written_are_still_stored_with_one_warning(tmp_path):
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-01T03:00:00").returncode == 0
    (tmp_path / "ticks.jsonl").unlink()
    (tmp_path / "ticks.jsonl").mkdir()
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    old, new = rows(tmp_path)
    assert old.media_pruned_ts == datetime(2026, 11, 21, 3, 0).timestamp() and not (tmp_path / old.jpeg_path).exists()
    assert new.media_pruned_ts is None
    tick_warning, retention_warning = warnings(result.stderr)  # one for the tick's own line, one for the marks
    assert "tick stored, but the JSONL backup line was not written" in tick_warning
    assert "retention: 1 row(s) marked pruned in the database but not in the JSONL backup" in retention_warning
    assert "ticks.jsonl: Is a directory" in retention_warning
