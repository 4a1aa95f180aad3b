"""The whole tick, run as the timer runs it: `python monitor.py --once` in a real process.

Real sample camera, real ONNX models, real SQLite, real files. Faults are injected by breaking
the real thing (a truncated JPEG, an empty models dir, a locked database), never by mocking.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime

import cv2

from capture.sample_camera import frame_at
from lockfile import TickLock
from tests.tick_runner import REPO, frame_files, rows, run_tick, sample_tick


def test_one_sample_tick_stores_row_frame_and_backup_line(tmp_path):
    result = sample_tick(tmp_path, "03:00")
    assert result.returncode == 0, result.stderr
    [row] = rows(tmp_path)
    assert (row.state, row.night, row.unchanged, row.presence_label) == ("asleep", True, False, "present")
    assert row.eyes_label == "closed" and row.face_box is not None
    assert row.model_version and row.duration_ms > 0
    assert (tmp_path / row.jpeg_path).is_file()
    assert cv2.imread(str(tmp_path / row.jpeg_path)).shape == (360, 640, 3)
    [line] = (tmp_path / "ticks.jsonl").read_text().splitlines()
    assert json.loads(line)["id"] == row.id and json.loads(line)["state"] == "asleep"
    assert "asleep" in result.stderr and "night" in result.stderr


def test_tick_process_never_imports_torch_or_flask(tmp_path):
    code = (
        "import sys, monitor;"
        f"rc = monitor.main(['--once', '--source', 'sample', '--config', '{tmp_path}/no.env']);"
        "bad = [m for m in ('torch', 'torchvision', 'flask') if m in sys.modules];"
        "print('HEAVY', bad); sys.exit(rc)"
    )
    env = {**os.environ, "BILBO_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_unchanged_frame_skips_the_models_and_reuses_the_result(tmp_path):
    assert sample_tick(tmp_path, "03:00").returncode == 0
    # Remove the models: the second tick can only succeed if it never needs them.
    result = sample_tick(tmp_path, "03:04", BILBO_MODELS_DIR=str(tmp_path / "no-models"))
    assert result.returncode == 0, result.stderr
    first, second = rows(tmp_path)
    assert second.unchanged and second.diff_score < 2.0
    assert (second.state, second.eyes_label, second.face_box) == (first.state, first.eyes_label, first.face_box)
    assert second.jpeg_path is None and len(frame_files(tmp_path)) == 1
    assert "unchanged" in result.stderr


def test_a_second_tick_exits_quietly_while_one_is_running(tmp_path):
    lock = TickLock(tmp_path / "monitor.lock")
    (tmp_path / "frames").mkdir()
    assert lock.acquire()
    try:
        result = sample_tick(tmp_path, "03:00")
    finally:
        lock.release()
    assert result.returncode == 0
    assert "another tick is still running" in result.stderr
    assert not (tmp_path / "bilbo.sqlite3").exists()


def test_bad_setting_exits_2_with_one_line_naming_the_key(tmp_path):
    result = run_tick(tmp_path, "--once", BILBO_EYE_THRESHOLD="very")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "EYE_THRESHOLD" in result.stderr


def test_corrupt_jpeg_is_a_clear_error_with_no_row_and_the_next_tick_recovers(tmp_path):
    _, good = cv2.imencode(".jpg", frame_at(datetime(2026, 11, 21, 3, 0))[0])
    camera_file = tmp_path / "snapshot.jpg"
    camera_file.write_bytes(good.tobytes()[: len(good) // 3])
    data_dir = tmp_path / "data"
    failed = run_tick(data_dir, "--once", "--source", str(camera_file))
    assert failed.returncode == 1
    error_lines = [line for line in failed.stderr.splitlines() if "ERROR" in line]
    assert len(error_lines) == 1 and "JPEG" in error_lines[0]
    assert rows(data_dir) == [] and frame_files(data_dir) == []

    camera_file.write_bytes(good.tobytes())
    assert run_tick(data_dir, "--once", "--source", str(camera_file)).returncode == 0
    assert len(rows(data_dir)) == 1


def test_missing_weights_is_a_clear_error_with_no_row_and_recovery(tmp_path):
    failed = sample_tick(tmp_path, "03:00", BILBO_MODELS_DIR=str(tmp_path / "no-models"))
    assert failed.returncode == 1
    assert "no-models" in failed.stderr and "make weights" in failed.stderr
    assert rows(tmp_path) == [] and frame_files(tmp_path) == []
    assert sample_tick(tmp_path, "03:00").returncode == 0
    assert len(rows(tmp_path)) == 1


def test_unusable_data_dir_is_a_clear_error(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = sample_tick(not_a_dir / "data", "03:00")
    assert result.returncode == 1
    assert "data dir" in result.stderr and "not usable" in result.stderr


def test_locked_database_loses_nothing_and_the_next_tick_recovers(tmp_path):
    assert sample_tick(tmp_path, "01:44").returncode == 0
    blocker = sqlite3.connect(tmp_path / "bilbo.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        failed = sample_tick(tmp_path, "01:48")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert failed.returncode == 1
    assert "busy" in failed.stderr or "locked" in failed.stderr
    assert len(rows(tmp_path)) == 1 and len(frame_files(tmp_path)) == 1  # no orphan JPEG
    assert sample_tick(tmp_path, "01:52").returncode == 0
    assert len(rows(tmp_path)) == 2


def audited_tick(data_dir, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, int]:
    """`monitor.main(args)` in a real process that counts the SQLite connections it opens (a Python audit hook)."""
    code = (
        "import sys, monitor; opened = [];"
        "sys.addaudithook(lambda event, args: opened.append(args) if event == 'sqlite3.connect' else None);"
        f"rc = monitor.main({['--once', '--config', f'{data_dir}/no.env', *args]!r});"
        "print('OPENED', len(opened)); sys.exit(rc)"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    full_env.update({"BILBO_DATA_DIR": str(data_dir), **env})
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=60
    )
    [count] = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("OPENED")]
    return result, count


def test_one_tick_opens_one_database_connection_for_all_its_steps(tmp_path):
    assert sample_tick(tmp_path, "03:00").returncode == 0  # a frame for retention to remove (RETENTION_DAYS=1 below)
    stored, opened = audited_tick(
        tmp_path, "--source", "sample", "--at", "2026-11-23T03:00:00", BILBO_RETENTION_DAYS="1"
    )
    assert stored.returncode == 0, stored.stderr
    assert opened == 1
    first, _ = rows(tmp_path)
    assert first.media_pruned  # classify, insert and retention all ran on that one connection

    # A failed capture: recording it, raising and delivering the camera alert, and retention, on one connection.
    missing = str(tmp_path / "unplugged.jpg")
    failed, opened = audited_tick(
        tmp_path, "--source", missing, "--at", "2026-11-23T03:04:00", BILBO_CAMERA_DOWN_TICKS="1"
    )
    assert failed.returncode == 1
    assert opened == 1
    assert "Camera unreachable since 03:04" in failed.stderr  # raised, stored and sent (to the log) this tick


def test_a_database_that_cannot_be_opened_is_one_error_line_and_the_next_tick_recovers(tmp_path):
    (tmp_path / "bilbo.sqlite3").mkdir()  # sqlite cannot open a folder, whoever runs the tests
    failed = sample_tick(tmp_path, "03:00")
    assert failed.returncode == 1
    [line] = [line for line in failed.stderr.splitlines() if "ERROR" in line or "WARNING" in line]
    assert "tick failed" in line and "cannot be opened" in line
    assert frame_files(tmp_path) == []
    (tmp_path / "bilbo.sqlite3").rmdir()
    assert sample_tick(tmp_path, "03:04").returncode == 0
    assert len(rows(tmp_path)) == 1
