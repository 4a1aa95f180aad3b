"""The JSONL backup (data/ticks.jsonl) holds camera outages and retention's marks, and `db.rebuild` restores them.

Real `monitor.py --once` processes on the sample camera and on a camera file that is not there, real SQLite files,
real frames on disk, the real `python -m db.rebuild`. A backup that cannot be written is a real one: a folder where
ticks.jsonl should be (open() refuses it for every user, root included).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from alerts.outage import note_failed_tick
from capture.ffmpeg import CaptureError
from db import jsonl
from db.rebuild import RESTORED_NOTE, Tally, rebuild, replay, restore
from db.store import Correction, Store
from lockfile import TickLock
from retention import prune
from settings import load_settings
from tests.test_camera_health import camera_alerts, failed_tick, good_tick, telegram_env, ts
from tests.test_dashboard import tick_row
from tests.tick_runner import REPO, rows, run_tick

DAY = 86400.0


def back_up(store: Store, path: Path, records: list[dict]) -> str | None:
    """Queue then append backup lines, as the tick does after its own transaction."""
    jsonl.queue(store, path, records)
    return jsonl.write(store, path)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


def backup_warnings(stderr: str) -> list[str]:
    """Warnings about the backup (an alert with no Telegram configured is a warning too)."""
    return [line for line in warnings(stderr) if "backup" in line]


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
    assert restored == alert  # delivered (to the log) at 03:18, and the backup says so

    # The monitor goes on with the rebuilt database: the outage is still alerted once, and its end is announced.
    stderr = failed_tick(data, unplugged, "03:22")
    assert "Camera unreachable" not in stderr and len(camera_alerts(data)) == 1
    stderr = good_tick(data, "03:26")
    assert "Camera back at 03:26" in stderr
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 0 and store.pending_alerts() == []


def test_a_rebuilt_alert_that_was_never_delivered_comes_back_settled_and_says_so(tmp_path, bot_api):
    unplugged = str(tmp_path / "unplugged.jpg")
    bot_api.fail(500)  # Telegram is down for the whole outage
    good_tick(tmp_path, "03:06", **telegram_env(bot_api))
    for hhmm in ("03:10", "03:14", "03:18"):
        failed_tick(tmp_path, unplugged, hhmm, **telegram_env(bot_api))
    [alert] = camera_alerts(tmp_path)
    assert alert.sent_ts is None and alert.attempts == 1
    lose_database(tmp_path)
    assert rebuild_cli(tmp_path).returncode == 0
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        [restored] = store.alerts("camera")
        assert store.pending_alerts() == []
    assert (restored.id, restored.caption, restored.created_ts) == (alert.id, alert.caption, alert.created_ts)
    assert (restored.sent_ts, restored.last_error) == (alert.created_ts, RESTORED_NOTE)


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
            row = store.tick(store.insert_tick(row))
            assert back_up(store, backup, [jsonl.tick_record(row)]) is None  # as the tick writes its line
        for minutes in (8, 4, 0):  # a camera outage that has alerted and is still going on
            at = datetime.fromtimestamp(now - minutes * 60).astimezone()
            note_failed_tick(settings, store, at, CaptureError("camera refused the connection"))
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
        again = Tally()
        applied = replay(store, backup, again)
    assert applied == {None: 2, "capture_failure": 3, "pruned": 1} and len(again.problems) == 1
    assert (again.written, again.repeated) == ({}, 2)  # both ticks were there: nothing written, nothing counted twice
    assert dump(first) == before


# --- a backup that cannot be written -----------------------------------------------------------------------------


def ops(path: Path) -> list[str | None]:
    """The backup's lines by their "op" (None: a tick line); a bad line fails the test."""
    records = list(jsonl.read_records(path))
    assert [error for _, _, error in records if error] == []
    return [record.get("op") for _, record, _ in records]


def test_capture_failures_whose_backup_lines_cannot_be_written_wait_and_the_next_tick_writes_them_in_order(tmp_path):
    backup = tmp_path / "ticks.jsonl"
    backup.mkdir()  # a folder in the way: open() refuses it for every user, root included
    unplugged = str(tmp_path / "unplugged.jpg")
    [warning] = warnings(failed_tick(tmp_path, unplugged, "03:10"))
    assert "failed tick recorded, but its JSONL backup line waits in the database for a later tick" in warning
    assert "ticks.jsonl: Is a directory" in warning
    failed_tick(tmp_path, unplugged, "03:14")
    failed_tick(tmp_path, unplugged, "03:18")
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        outage = store.camera_outage()
        assert store.backup_waiting() == {backup: 4}  # three failures and the camera alert's delivery
    assert (outage.failures, outage.since_ts, outage.alerted) == (3, ts("03:10"), True)  # the alert still went out

    backup.rmdir()  # the disk is back
    assert backup_warnings(good_tick(tmp_path, "03:22")) == []
    # The order they were committed in; the 03:22 frame raised "camera back", delivered (to the log) at once.
    assert ops(backup) == ["capture_failure"] * 3 + ["alert_sent", None, "alert_sent"]
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        assert store.backup_waiting() == {}
        alerts = store.alerts("camera")
    lose_database(tmp_path)
    result = rebuild_cli(tmp_path)
    assert result.returncode == 0 and "with 1 ticks" in result.stdout and "0 bad lines" in result.stdout, result
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        assert store.alerts("camera") == alerts and len(alerts) == 2  # down and back, each with its delivery
        assert store.camera_outage().failures == 0


def test_retention_marks_whose_backup_line_cannot_be_written_wait_and_a_rebuild_still_knows_the_frame_is_gone(
    tmp_path,
):
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-01T03:00:00").returncode == 0
    backup, aside = tmp_path / "ticks.jsonl", tmp_path / "ticks.jsonl.aside"
    backup.rename(aside)
    backup.mkdir()
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    old, new = rows(tmp_path)
    assert old.media_pruned_ts == datetime(2026, 11, 21, 3, 0).timestamp() and not (tmp_path / old.jpeg_path).exists()
    assert new.media_pruned_ts is None
    tick_warning, retention_warning = warnings(result.stderr)  # one for the tick's own line, one for the marks
    assert "tick stored, but its JSONL backup line waits in the database for a later tick" in tick_warning
    assert "retention: 1 row(s) marked pruned in the database but not yet in the JSONL backup" in retention_warning
    assert "ticks.jsonl: Is a directory" in retention_warning

    backup.rmdir()
    aside.rename(backup)
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:04:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0 and backup_warnings(result.stderr) == [], result.stderr
    assert ops(backup) == [None, None, "pruned", None]
    live = rows(tmp_path)
    lose_database(tmp_path)
    assert rebuild_cli(tmp_path).returncode == 0
    assert rows(tmp_path) == live  # every field: the old frame is known to be gone


def test_a_correction_whose_backup_line_cannot_be_written_waits_and_the_next_tick_writes_it(tmp_path):
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00").returncode == 0
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path)})
    settings.corrections_jsonl_path.mkdir()
    [tick] = rows(tmp_path)
    with Store.open(settings.db_path) as store:
        store.add_corrections(tick.id, [("eyes", "open")], "mum", now=10.0)
        problem = back_up(store, settings.corrections_jsonl_path, jsonl.correction_records(store.corrections(1)))
        assert problem is not None and "waits in the database" in problem and "Is a directory" in problem
        undone = store.undo_last_decision(tick.id, now=20.0)
        assert back_up(store, settings.corrections_jsonl_path, [jsonl.undo_record(undone, 20.0)])
        store.add_corrections(tick.id, [("presence", "present")], "dad", now=30.0)
        added = jsonl.correction_records(store.corrections(tick.id)[1:])
        assert back_up(store, settings.corrections_jsonl_path, added)
        assert store.backup_waiting() == {settings.corrections_jsonl_path: 3}

    settings.corrections_jsonl_path.rmdir()
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:04:00")
    assert result.returncode == 0 and backup_warnings(result.stderr) == [], result.stderr
    assert ops(settings.corrections_jsonl_path) == ["add", "undo", "add"]
    with Store.open(settings.db_path) as store:
        assert store.backup_waiting() == {}
        label = store.human_label(tick.id)
    lose_database(tmp_path)
    assert rebuild_cli(tmp_path).returncode == 0
    with Store.open(settings.db_path) as store:
        assert store.human_label(tick.id) == label and label.corrected == {"presence": "present"}


def test_a_waiting_line_is_warned_about_every_tick_until_it_is_written(tmp_path):
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00").returncode == 0
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path)})
    settings.teacher_jsonl_path.mkdir()
    with Store.open(settings.db_path) as store:
        assert back_up(store, settings.teacher_jsonl_path, [{"op": "teacher", "id": 1}])
    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:04:00")
    [warning] = backup_warnings(result.stderr)
    assert "1 JSONL backup line(s) still wait in the database" in warning and "teacher_labels.jsonl" in warning


# --- appending lines ---------------------------------------------------------------------------------------------


def test_a_line_after_a_line_torn_by_a_power_cut_is_not_swallowed_by_it(tmp_path):
    backup = tmp_path / "ticks.jsonl"
    backup.write_text('{"op":"pruned","ids":[1],"ts":1.0}\n{"ts": 4.0, "sour')  # power cut mid-line
    jsonl.append_lines(backup, ['{"op":"pruned","ids":[2],"ts":2.0}'])
    records = list(jsonl.read_records(backup))
    assert [r for _, r, _ in records] == [
        {"op": "pruned", "ids": [1], "ts": 1.0},
        None,
        {"op": "pruned", "ids": [2], "ts": 2.0},
    ]


APPEND_PAST_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from db import jsonl
path = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 40, resource.RLIM_INFINITY))
try:
    jsonl.append_lines(path, ['{"op":"pruned","ids":[2],"ts":2.0}', '{"op":"pruned","ids":[3],"ts":3.0}'])
except OSError as exc:
    print(exc.strerror)
"""


def test_an_append_that_fails_half_way_leaves_the_file_as_it_was(tmp_path):
    """A real partial write: the kernel accepts the first 40 bytes and refuses the rest (a file size limit)."""
    backup = tmp_path / "ticks.jsonl"
    before = '{"op":"pruned","ids":[1],"ts":1.0}\n'
    backup.write_text(before)
    result = subprocess.run(
        [sys.executable, "-c", APPEND_PAST_A_FILE_SIZE_LIMIT, str(backup)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0 and "too large" in result.stdout.lower(), result
    assert backup.read_text() == before


# --- repeated lines, ids taken twice, the tick's lock (issue 17, items 1 and 7) -----------------------------------


def correction_of(tick_id: int, field: str, value: object, at: float) -> Correction:
    return Correction(tick_id=tick_id, field=field, value=value, author="parent", created_ts=at)


def label(store: Store, backup: Path, tick_id: int, value: str, at: float) -> None:
    """A parent's correction, stored and backed up as the dashboard does it."""
    [correction_id] = store.add_corrections(tick_id, [("eyes", value)], "parent", at)
    stored = replace(correction_of(tick_id, "eyes", value, at), id=correction_id)
    assert back_up(store, backup, jsonl.correction_records([stored])) is None


def test_a_line_appended_twice_is_written_once_and_the_rebuild_counts_the_rows_it_wrote(tmp_path):
    """A tick killed between appending its line and clearing it from the database appends it again next time."""
    data = tmp_path / "data"
    good_tick(data, "03:00")
    good_tick(data, "03:20")
    backup = data / "ticks.jsonl"
    first_line = backup.read_text().splitlines()[0]
    with open(backup, "a") as handle:
        handle.write(first_line + "\n")  # the repeat
    with Store.open(data / "bilbo.sqlite3") as store:
        label(store, data / "corrections.jsonl", 1, "open", ts("03:30"))
    lines = (data / "corrections.jsonl").read_text()
    (data / "corrections.jsonl").write_text(lines + lines)
    live = rows(data)

    lose_database(data)
    result = rebuild_cli(data)
    assert result.returncode == 0, result.stderr
    assert f"with 2 ticks, 1 corrections and 0 teacher labels from {backup}" in result.stdout, result.stdout
    assert "0 bad lines skipped, 2 repeated lines changed nothing, 0 records not imported" in result.stdout
    assert result.stderr == ""
    assert rows(data) == live


def test_a_record_whose_id_holds_a_different_record_is_counted_and_reported_never_dropped_silently(tmp_path):
    """What a database started empty over its backup did: its ticks and corrections took ids already in the files."""
    backup, corrections = tmp_path / "ticks.jsonl", tmp_path / "corrections.jsonl"
    (tmp_path / "frames").mkdir()
    with Store.open(tmp_path / "bilbo.sqlite3") as first:
        for hhmm in ("03:00", "03:04"):
            row = first.tick(first.insert_tick(tick_row(ts(hhmm), None)))
            assert back_up(first, backup, [jsonl.tick_record(row)]) is None
        label(first, corrections, 1, "open", ts("03:05"))
        originals = first.ticks_between(0, 2e9), first.corrections(1)
    started_empty = tmp_path / "elsewhere" / "bilbo.sqlite3"
    started_empty.parent.mkdir()
    with Store.open(started_empty) as second:  # its ids start at 1 again, and its lines go to the same files
        row = second.tick(second.insert_tick(tick_row(ts("05:00"), None, state="awake")))
        assert row.id == 1 and back_up(second, backup, [jsonl.tick_record(row)]) is None
        label(second, corrections, 1, "closed", ts("05:01"))

    lose_database(tmp_path)
    result = rebuild_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "with 2 ticks, 1 corrections and 0 teacher labels" in result.stdout, result.stdout
    assert "0 bad lines skipped, 0 repeated lines changed nothing, 2 records not imported" in result.stdout
    reported = result.stderr.splitlines()
    assert f"{backup}:3: not imported (ticks id 1 already holds a different record" in reported[0], reported
    assert f"{corrections}:2: not imported (corrections id 1 already holds a different record" in reported[1]
    assert "2 records were not imported" in reported[2] and len(reported) == 3
    with Store.open(tmp_path / "bilbo.sqlite3") as store:  # the first of each id is kept, whole
        assert (store.ticks_between(0, 2e9), store.corrections(1)) == originals


REBUILD_THAT_PAUSES = """
import sys, time
from pathlib import Path
from db import rebuild
started, go = Path(sys.argv[1]), Path(sys.argv[2])
original = rebuild.replay
def paused(*args):
    started.touch()
    while not go.exists():
        time.sleep(0.05)
    return original(*args)
rebuild.replay = paused
sys.exit(rebuild.main(sys.argv[3:]))
"""


def start_rebuild(data_dir: Path, script: str | None = None, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env["BILBO_DATA_DIR"] = str(data_dir)
    command = ["-c", script, *args] if script else ["-m", "db.rebuild"]
    return subprocess.Popen(
        [sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )


def test_the_rebuild_waits_for_a_running_tick(tmp_path):
    good_tick(tmp_path, "03:00")
    live = rows(tmp_path)
    lose_database(tmp_path)
    tick = TickLock(tmp_path / "monitor.lock")
    assert tick.acquire()  # a tick is running
    rebuilding = start_rebuild(tmp_path)
    try:
        assert rebuilding.stdout.readline().startswith("waiting for the running tick to finish (lock ")
        time.sleep(0.5)
        assert not (tmp_path / "bilbo.sqlite3").exists() and rebuilding.poll() is None
    finally:
        tick.release()  # the tick ends
    out, err = rebuilding.communicate(timeout=60)
    assert rebuilding.returncode == 0 and "with 1 ticks" in out, err
    assert rows(tmp_path) == live


def test_a_tick_during_a_rebuild_waits_its_turn_and_never_sees_half_a_database(tmp_path):
    good_tick(tmp_path, "03:00")
    good_tick(tmp_path, "03:20")
    live = rows(tmp_path)
    lose_database(tmp_path)
    started, go = tmp_path / "started", tmp_path / "go"
    rebuilding = start_rebuild(tmp_path, REBUILD_THAT_PAUSES, str(started), str(go))
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and rebuilding.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), rebuilding.communicate(timeout=5)
        during = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:40:00")
        assert during.returncode == 0 and "another tick is still running" in during.stderr, during.stderr
        assert not (tmp_path / "bilbo.sqlite3").exists()  # what is being built lies under another name
    finally:
        go.touch()
    out, err = rebuilding.communicate(timeout=60)
    assert rebuilding.returncode == 0 and "with 2 ticks" in out, err
    assert rows(tmp_path) == live and not list(tmp_path.glob(".bilbo.sqlite3.rebuilding*"))
    good_tick(tmp_path, "03:44")  # the next tick goes on with the rebuilt database, the next id
    assert [r.id for r in rows(tmp_path)] == [*(r.id for r in live), live[-1].id + 1]


def test_the_rebuild_refuses_a_wal_file_left_by_the_database_that_was_moved_aside(tmp_path):
    good_tick(tmp_path, "03:00")
    lose_database(tmp_path)
    (tmp_path / "bilbo.sqlite3-wal").write_bytes(b"old pages")  # SQLite would replay these into the new file
    result = rebuild_cli(tmp_path)
    assert result.returncode == 1 and "bilbo.sqlite3-wal of the old database is still there" in result.stderr
    assert not (tmp_path / "bilbo.sqlite3").exists()


def test_a_rebuild_that_cannot_get_the_tick_lock_in_time_changes_nothing(tmp_path):
    good_tick(tmp_path, "03:00")
    lose_database(tmp_path)
    tick = TickLock(tmp_path / "monitor.lock")
    assert tick.acquire()  # a tick that hangs
    try:
        with pytest.raises(TimeoutError, match=r"a tick still holds .*monitor\.lock after 0 s"):
            restore(tmp_path / "ticks.jsonl", tmp_path / "bilbo.sqlite3", lock_path=tick.path, lock_wait_s=0.3)
    finally:
        tick.release()
    assert sorted(p.name for p in tmp_path.iterdir() if "sqlite3" in p.name) == []


def test_the_cry_listeners_episodes_and_their_alert_come_back_from_the_backup(tmp_path):
    """The listener writes an episode's start (with its cry alert) and its end to ticks.jsonl in the same transaction
    as the rows, not its progress; one a killed listener left open is closed at the next start, backed up too. A
    database rebuilt from the backup has the episodes as they ended, and their alert settled (never sent again)."""
    from db.store import Alert, CryEpisode

    db, backup = tmp_path / "bilbo.sqlite3", tmp_path / "ticks.jsonl"
    with Store.open(db) as store:
        first = store.start_episode(
            CryEpisode(start_ts=1100.0, onset_ts=1103.0, last_ts=1103.0, peak_probability=0.8, peak_dbfs=-30.0),
            Alert("cry", "Baby is crying", None, 1103.0),
            backup,
        )
        store.update_episode(replace(first, last_ts=1150.0, peak_probability=0.95), backup)  # progress: no line
        store.update_episode(replace(first, last_ts=1160.0, end_ts=1190.0, peak_probability=0.97), backup)
        killed = store.start_episode(
            CryEpisode(start_ts=1300.0, onset_ts=1302.0, last_ts=1302.0, peak_probability=0.9, peak_dbfs=-25.0),
            None,
            backup,
        )
        store.update_episode(replace(killed, last_ts=1320.0), backup)  # then the listener was killed
        assert store.close_open_episodes(backup) == 1  # the next listener's start
        assert jsonl.write(store, backup) is None
        live = store.episodes_between(0, 1e12)
    lines = [json.loads(line) for line in backup.read_text().splitlines()]
    assert [line.get("op") for line in lines] == ["cry_episode"] * 4  # two starts, two ends; no progress lines

    rebuilt = tmp_path / "rebuilt.sqlite3"
    assert rebuild(backup, rebuilt) == (0, [])  # no tick lines here: the listener's lines alone
    with Store.open(rebuilt) as store:
        assert store.episodes_between(0, 1e12) == live
        assert [(e.end_ts, e.last_ts) for e in live] == [(1190.0, 1160.0), (1320.0, 1320.0)]
        [alert] = store.alerts("cry")
    assert alert.id == live[0].alert_id and alert.sent_ts is not None and alert.last_error == RESTORED_NOTE
