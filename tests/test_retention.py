"""Retention (retention.py): old frames and clips go, labelled frames and the pixel-diff reference stay.

Real SQLite files, real files on disk, the real dashboard over HTTP and real `monitor.py --once` processes
with a simulated clock. Faults are made by breaking the real thing (a frame path that is a folder, a database
trigger that refuses the update), never by mocking.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

import retention
from db import jsonl
from db.schema import SCHEMA_VERSION
from db.store import Alert, Store, TeacherLabel, TickRow
from settings import Settings, SettingsError, load_settings
from tests.old_db import database_at_version
from tests.test_dashboard import call, csrf_of, dashboard_settings, serving, tick_row
from tests.tick_runner import rows, run_tick

DAY = 86400.0
NOW = datetime(2026, 11, 21, 3, 0).timestamp()
MB = 1024 * 1024


def settings_for(data_dir: Path, **overrides) -> Settings:
    return load_settings(None, environ={"BILBO_DATA_DIR": str(data_dir)}, **overrides)


def kept_tick(store: Store, data_dir: Path, ts: float, *, wav: bool = False, jpeg: bool = True, size: int = 100) -> int:
    """A tick with its files really on disk, laid out as the tick lays them out (frames/YYYY-MM-DD/...)."""
    at = datetime.fromtimestamp(ts)
    stem = Path("frames") / at.strftime("%Y-%m-%d") / f"{at.strftime('%H%M%S')}-{int(ts)}"
    paths = {}
    for suffix, wanted in ((".jpg", jpeg), (".wav", wav)):
        if wanted:
            (data_dir / stem).parent.mkdir(parents=True, exist_ok=True)
            (data_dir / stem).with_suffix(suffix).write_bytes(b"x" * size)
            paths[suffix] = str(stem.with_suffix(suffix))
    row = tick_row(ts, paths.get(".jpg"))
    return store.insert_tick(TickRow(**{**row.__dict__, "audio_path": paths.get(".wav")}))


def files_of(store: Store, data_dir: Path, tick_id: int) -> list[Path]:
    row = store.tick(tick_id)
    return [data_dir / p for p in (row.jpeg_path, row.audio_path) if p]


def present(paths: list[Path]) -> list[bool]:
    return [p.exists() for p in paths]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bilbo.sqlite3") as opened:
        yield opened


# --- age ---------------------------------------------------------------------------------------------------


def test_frames_and_clips_older_than_retention_days_are_deleted_and_marked_recent_ones_kept(tmp_path, store):
    old_with_wav = kept_tick(store, tmp_path, NOW - 40 * DAY, wav=True, size=300)
    old = kept_tick(store, tmp_path, NOW - 31 * DAY, size=200)
    recent = kept_tick(store, tmp_path, NOW - 29 * DAY)
    newest = kept_tick(store, tmp_path, NOW - 3600)
    old_files = files_of(store, tmp_path, old_with_wav) + files_of(store, tmp_path, old)

    report = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)

    assert present(old_files) == [False, False, False]
    assert (report.removed_by_age, report.freed_bytes, report.ticks_marked) == (3, 300 + 300 + 200, 2)
    assert report.summary(settings_for(tmp_path, retention_days=30)) == (
        f"removed 3 frames/clips ({800 / MB:.1f} MB) older than 30 days"
    )
    assert report.problem(settings_for(tmp_path)) is None
    for tick_id in (old_with_wav, old):
        row = store.tick(tick_id)
        assert row.media_pruned_ts == NOW and row.jpeg_path is not None  # the path stays as history
    assert store.tick(old_with_wav).audio_path is not None
    for tick_id in (recent, newest):
        assert store.tick(tick_id).media_pruned_ts is None and all(present(files_of(store, tmp_path, tick_id)))
    assert not old_files[0].parent.exists() and not old_files[2].parent.exists()  # empty day folders removed
    assert (tmp_path / "frames").is_dir()
    again = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW + 60)
    assert (again.removed_files, again.ticks_marked) == (0, 0)
    assert store.tick(old).media_pruned_ts == NOW  # marked once, not re-stamped


def test_retention_days_0_keeps_every_frame(tmp_path, store):
    ancient = kept_tick(store, tmp_path, NOW - 3000 * DAY, wav=True)
    kept_tick(store, tmp_path, NOW)
    report = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=0, min_free_mb=0), NOW)
    assert report.removed_files == 0 and all(present(files_of(store, tmp_path, ancient)))
    assert store.tick(ancient).media_pruned_ts is None


def test_labelled_old_frames_are_kept_even_when_the_decision_was_undone(tmp_path, store):
    reviewed = kept_tick(store, tmp_path, NOW - 90 * DAY)
    corrected = kept_tick(store, tmp_path, NOW - 89 * DAY, wav=True)
    undone = kept_tick(store, tmp_path, NOW - 88 * DAY)
    unlabelled = kept_tick(store, tmp_path, NOW - 87 * DAY)
    kept_tick(store, tmp_path, NOW)
    store.add_corrections(reviewed, [("reviewed", True)], "mum", now=NOW - 80 * DAY)
    store.add_corrections(corrected, [("eyes", "open"), ("face_box", [1, 2, 30, 40])], "dad", now=NOW - 80 * DAY)
    store.add_corrections(undone, [("presence", "not_present")], "mum", now=NOW - 80 * DAY)
    store.undo_last_decision(undone, now=NOW - 79 * DAY)

    retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)

    for tick_id in (reviewed, corrected, undone):
        assert all(present(files_of(store, tmp_path, tick_id))) and store.tick(tick_id).media_pruned_ts is None
    assert present(files_of(store, tmp_path, unlabelled)) == [False]
    assert [t.id for t, _ in store.labelled_ticks()] == [reviewed, corrected]


def test_frames_the_fallback_labeller_labelled_outlive_retention_days_but_go_when_the_disk_runs_low(tmp_path, store):
    labelled = kept_tick(store, tmp_path, NOW - 60 * DAY)
    failed_call = kept_tick(store, tmp_path, NOW - 59 * DAY)
    kept_tick(store, tmp_path, NOW)
    store.add_teacher_label(TeacherLabel(labelled, NOW - 60 * DAY, "http://lan:11434", "m", presence="present"))
    store.add_teacher_label(TeacherLabel(failed_call, NOW - 59 * DAY, "http://lan:11434", "m", error="timed out"))

    retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)

    assert all(present(files_of(store, tmp_path, labelled))) and store.tick(labelled).media_pruned_ts is None
    assert present(files_of(store, tmp_path, failed_call)) == [False]  # a failed call is no label
    short = settings_for(tmp_path, retention_days=30, min_free_mb=10**9)  # far more than any disk has
    assert retention.prune(store, tmp_path, short, NOW + 240).removed_by_disk == 1
    assert present(files_of(store, tmp_path, labelled)) == [False] and store.tick(labelled).media_pruned_ts


def test_the_newest_kept_jpeg_is_never_pruned_even_when_every_tick_is_old(tmp_path, store):
    """The monitor was off for two months: the next tick still needs its pixel-diff reference."""
    older = kept_tick(store, tmp_path, NOW - 70 * DAY)
    reference = kept_tick(store, tmp_path, NOW - 60 * DAY)
    clip_only = kept_tick(store, tmp_path, NOW - 59 * DAY, jpeg=False, wav=True)  # unchanged frame, KEEP_AUDIO
    assert store.last_reference_jpeg() == store.tick(reference).jpeg_path

    retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)

    assert present(files_of(store, tmp_path, reference)) == [True] and store.tick(reference).media_pruned_ts is None
    assert present(files_of(store, tmp_path, older)) == [False]
    assert present(files_of(store, tmp_path, clip_only)) == [False] and store.tick(clip_only).media_pruned_ts == NOW
    assert store.last_reference_jpeg() == store.tick(reference).jpeg_path


def test_the_snapshot_of_an_unsent_alert_is_kept_until_the_alert_is_sent(tmp_path, store):
    """Telegram was down for days: the outbox still retries the alert, and it must still have its photo."""
    snapshot = kept_tick(store, tmp_path, NOW - 40 * DAY)
    photo = store.tick(snapshot).jpeg_path
    store.insert_tick(tick_row(NOW - 40 * DAY + 240, None), [Alert("cry", "crying", photo, NOW - 40 * DAY + 240)])
    kept_tick(store, tmp_path, NOW)
    settings = settings_for(tmp_path, retention_days=30, min_free_mb=0)

    retention.prune(store, tmp_path, settings, NOW)
    assert present(files_of(store, tmp_path, snapshot)) == [True] and store.tick(snapshot).media_pruned_ts is None

    [pending] = store.pending_alerts()
    store.mark_sent(pending.id, NOW + 1)
    retention.prune(store, tmp_path, settings, NOW + 2)
    assert present(files_of(store, tmp_path, snapshot)) == [False] and store.tick(snapshot).media_pruned_ts == NOW + 2


def test_files_already_missing_are_marked_without_a_failure(tmp_path, store):
    """A pass that crashed after deleting but before marking: the next pass finds no file and marks the row."""
    gone = kept_tick(store, tmp_path, NOW - 40 * DAY, wav=True)
    for path in files_of(store, tmp_path, gone):
        path.unlink()
    half = kept_tick(store, tmp_path, NOW - 39 * DAY, wav=True)
    files_of(store, tmp_path, half)[0].unlink()
    kept_tick(store, tmp_path, NOW)

    report = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)

    assert report.failed == [] and report.removed_files == 1 and report.ticks_marked == 2
    assert store.tick(gone).media_pruned_ts == NOW and store.tick(half).media_pruned_ts == NOW
    assert present(files_of(store, tmp_path, half)) == [False, False]


def test_a_file_that_cannot_be_removed_is_kept_unmarked_and_the_rest_still_go(tmp_path, store):
    stuck = kept_tick(store, tmp_path, NOW - 50 * DAY)
    [jpeg] = files_of(store, tmp_path, stuck)
    jpeg.unlink()
    (jpeg / "inside").mkdir(parents=True)  # a folder where the frame should be: unlink fails, even for root
    later = kept_tick(store, tmp_path, NOW - 40 * DAY)
    outside = store.insert_tick(tick_row(NOW - 45 * DAY, "../outside-retention.jpg"))
    (tmp_path.parent / "outside-retention.jpg").write_bytes(b"not ours")
    kept_tick(store, tmp_path, NOW)

    both_walks = settings_for(tmp_path, retention_days=30, min_free_mb=10**9)  # the disk walk retries nothing stuck
    report = retention.prune(store, tmp_path, both_walks, NOW)

    assert jpeg.is_dir() and store.tick(stuck).media_pruned_ts is None
    assert (tmp_path.parent / "outside-retention.jpg").read_bytes() == b"not ours" and store.tick(
        outside
    ).media_pruned_ts is None
    assert present(files_of(store, tmp_path, later)) == [False] and store.tick(later).media_pruned_ts == NOW
    assert len(report.failed) == 2 and report.failed[0].startswith(store.tick(stuck).jpeg_path)
    assert "outside the data dir" in report.failed[1]
    assert "2 file(s) could not be removed" in report.problem(settings_for(tmp_path))


# --- disk space --------------------------------------------------------------------------------------------


def test_low_disk_prunes_oldest_first_within_a_bounded_pass_until_nothing_prunable_is_left(tmp_path, store):
    count = retention.MAX_FILES_PER_PASS + 5
    store.insert_ticks([tick_row(NOW - DAY + i, f"frames/d/{i}.jpg") for i in range(count)])
    (tmp_path / "frames" / "d").mkdir(parents=True)
    for i in range(count):
        (tmp_path / "frames" / "d" / f"{i}.jpg").write_bytes(b"x")
    labelled = kept_tick(store, tmp_path, NOW - 2 * DAY)
    store.add_corrections(labelled, [("reviewed", True)], "mum", now=NOW)
    reference = kept_tick(store, tmp_path, NOW)
    impossible = settings_for(tmp_path, retention_days=0, min_free_mb=10**9)  # far more than any disk has

    first = retention.prune(store, tmp_path, impossible, NOW)

    left = sorted(int(p.stem) for p in (tmp_path / "frames" / "d").glob("*.jpg"))
    assert left == list(range(retention.MAX_FILES_PER_PASS, count))  # the oldest went first, one bounded pass
    assert first.removed_by_disk == retention.MAX_FILES_PER_PASS and first.low_disk and first.hit_bound
    assert "the next tick removes more" in first.problem(impossible)
    second = retention.prune(store, tmp_path, impossible, NOW + 240)
    assert second.removed_by_disk == 5 and second.low_disk and not (tmp_path / "frames" / "d").exists()
    assert "nothing more may be removed" in second.problem(impossible)
    third = retention.prune(store, tmp_path, impossible, NOW + 480)
    assert third.removed_files == 0 and third.ticks_marked == 0 and third.low_disk
    assert all(present(files_of(store, tmp_path, labelled) + files_of(store, tmp_path, reference)))
    assert store.prunable_media(None, 10) == []


def test_low_disk_pruning_stops_once_enough_space_is_free(tmp_path, store):
    big = kept_tick(store, tmp_path, NOW - 3 * DAY)
    [big_file] = files_of(store, tmp_path, big)
    with open(big_file, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, 64 * MB)  # real blocks, so deleting it frees 64 MB
    smaller = [kept_tick(store, tmp_path, NOW - 2 * DAY + i) for i in range(3)]
    kept_tick(store, tmp_path, NOW)
    # 32 MB above today's free space: only removing the big (oldest) frame gets there, with 32 MB to spare
    # for whatever else writes to this disk meanwhile.
    wanted = int(shutil.disk_usage(tmp_path).free / MB) + 32

    report = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=0, min_free_mb=wanted), NOW)

    assert not big_file.exists() and store.tick(big).media_pruned_ts == NOW
    assert all(present([f for t in smaller for f in files_of(store, tmp_path, t)]))
    assert report.removed_by_disk == 1 and report.freed_bytes == 64 * MB and not report.low_disk
    assert "because the disk had less than" in report.summary(settings_for(tmp_path, min_free_mb=wanted))


def test_enough_free_disk_prunes_nothing(tmp_path, store):
    recent = kept_tick(store, tmp_path, NOW - DAY)
    kept_tick(store, tmp_path, NOW)
    report = retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=1), NOW)
    assert report.removed_files == 0 and not report.low_disk and report.free_mb > 1
    assert all(present(files_of(store, tmp_path, recent)))


@pytest.mark.parametrize("key", ["RETENTION_DAYS", "MIN_FREE_MB"])
def test_a_negative_or_malformed_retention_setting_is_refused_naming_the_key(key):
    for bad in ("-1", "a month"):
        with pytest.raises(SettingsError, match=key):
            load_settings(None, environ={f"BILBO_{key}": bad})
    assert getattr(load_settings(None, environ={f"BILBO_{key}": "0"}), key.lower()) == 0


# --- schema, rows, review queue ----------------------------------------------------------------------------


def test_a_database_from_schema_v3_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v3.sqlite3"
    conn = database_at_version(path, 3)
    for ts, jpeg in ((NOW - 40 * DAY, "frames/a.jpg"), (NOW, "frames/b.jpg")):
        conn.execute(
            "INSERT INTO ticks (ts, source, unchanged, night, state, eyes_label, eyes_conf, jpeg_path, duration_ms, "
            "audio_path) VALUES (?, 'old', 0, 1, 'asleep', 'closed', 0.4, ?, 3.0, 'frames/a.wav')",
            (ts, jpeg),
        )
    conn.commit()
    conn.close()

    with Store.open(path) as store:
        old, new = store.ticks_between(0, 2e9)
        assert (old.source, old.jpeg_path, old.audio_path, old.media_pruned_ts) == (
            "old",
            "frames/a.jpg",
            "frames/a.wav",
            None,
        )
        assert [t.id for t in store.prunable_media(NOW - 30 * DAY, 10)] == [old.id]
        assert [t.id for t, _ in store.review_queue(10)] == [old.id, new.id]
        plan = store.prunable_media_plan()
        assert "USING INDEX ticks_prunable" in plan and "TEMP B-TREE" not in plan
        review_plan = store.review_queue_plan()
        assert "USING INDEX ticks_review" in review_plan and "TEMP B-TREE" not in review_plan
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_pruned_state_round_trips_sqlite_and_json_and_old_backup_lines_still_load(tmp_path, store):
    old = kept_tick(store, tmp_path, NOW - 40 * DAY)
    kept_tick(store, tmp_path, NOW)
    retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)
    row = store.tick(old)
    assert row.media_pruned and row.media_pruned_ts == NOW
    assert TickRow.from_json(json.loads(json.dumps(row.to_json()))) == row
    older_line = {k: v for k, v in row.to_json().items() if k != "media_pruned_ts"}
    assert TickRow.from_json(older_line).media_pruned_ts is None
    [point] = [p for p in store.timeline_points(0, 2e9) if p["id"] == old]
    assert point["has_jpeg"] is False and point["media_pruned_ts"] == NOW


def test_review_queue_leaves_out_frames_retention_removed(tmp_path, store):
    old = kept_tick(store, tmp_path, NOW - 40 * DAY)
    recent = kept_tick(store, tmp_path, NOW - DAY)
    newest = kept_tick(store, tmp_path, NOW)
    assert store.count_unreviewed() == 3
    retention.prune(store, tmp_path, settings_for(tmp_path, retention_days=30, min_free_mb=0), NOW)
    assert {t.id for t, _ in store.review_queue(10)} == {recent, newest}
    assert store.tick(old).media_pruned
    assert store.count_unreviewed() == 2


# --- the dashboard -----------------------------------------------------------------------------------------


def test_dashboard_says_a_pruned_frame_was_removed_by_retention_and_refuses_to_label_it(tmp_path):
    settings = dashboard_settings(tmp_path, retention_days=30, min_free_mb=0)
    with Store.open(settings.db_path) as store:
        pruned = kept_tick(store, tmp_path, NOW - 40 * DAY)
        kept = kept_tick(store, tmp_path, NOW)
        retention.prune(store, tmp_path, settings, NOW)
    with serving(settings) as base:
        detail = call("GET", f"{base}/api/ticks/{pruned}")[1]
        frame_status, frame_body, _ = call("GET", f"{base}/frames/{pruned}.jpg")
        timeline = call("GET", f"{base}/api/timeline?start={NOW - 41 * DAY}&end={NOW - 39 * DAY}")[1]
        csrf = {"X-CSRF-Token": csrf_of(base)}
        refused = call("POST", f"{base}/api/ticks/{pruned}/corrections", {"changes": {"eyes": "open"}}, csrf)
        accepted = call("POST", f"{base}/api/ticks/{kept}/corrections", {"changes": {"eyes": "open"}}, csrf)
        page = call("GET", base + "/")[1].decode()
        kept_frame = call("GET", f"{base}/frames/{kept}.jpg")
    assert (detail["has_jpeg"], detail["media_pruned"], detail["state"]) == (False, True, "asleep")
    assert frame_status == 404 and "frame removed by retention" in frame_body["error"]
    assert [(t["id"], t["has_jpeg"], t["media_pruned_ts"]) for t in timeline["ticks"]] == [(pruned, False, NOW)]
    assert refused[0] == 409 and "removed by retention" in refused[1]["error"]
    assert accepted[0] == 201 and accepted[1]["tick"]["media_pruned"] is False
    assert kept_frame[0] == 200
    assert "t.media_pruned" in page and "Frame removed by retention" in page
    with Store.open(settings.db_path) as store:
        assert store.corrections(pruned) == []


def test_the_page_shows_removed_by_retention_where_the_frame_would_be(tmp_path):
    import cv2
    import numpy as np
    from playwright.sync_api import expect, sync_playwright

    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `sudo bash .ci/system-deps.sh` (installs Debian's chromium)")
    now = datetime.now().timestamp()
    settings = dashboard_settings(tmp_path, retention_days=0, min_free_mb=10**9)  # the disk is "full"
    with Store.open(settings.db_path) as store:
        pruned, kept = kept_tick(store, tmp_path, now - 7200), kept_tick(store, tmp_path, now - 3600)
        jpeg = cv2.imencode(".jpg", np.full((36, 64, 3), 90, np.uint8))[1].tobytes()
        for tick_id in (pruned, kept):
            files_of(store, tmp_path, tick_id)[0].write_bytes(jpeg)
        retention.prune(store, tmp_path, settings, now)
        assert store.tick(pruned).media_pruned and not store.tick(kept).media_pruned
    with serving(settings) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + "/")
            expect(page.locator("#img")).to_have_attribute("src", f"/frames/{kept}.jpg")  # opens the newest frame
            page.locator(f'#timeline rect[data-id="{pruned}"]').click()
            expect(page.locator("#noimg")).to_be_visible()
            expect(page.locator("#noimg")).to_contain_text("Frame removed by retention")
            expect(page.locator("#img")).to_be_hidden()
            expect(page.get_by_role("button", name="Closed")).to_be_disabled()
            assert errors == []
        finally:
            browser.close()


# --- the tick ----------------------------------------------------------------------------------------------


def tick_at(data_dir: Path, when: str, **env: str):
    return run_tick(data_dir, "--once", "--source", "sample", "--at", when, **env)


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "WARNING" in line]


def test_a_tick_deletes_frames_older_than_retention_days_and_logs_one_line(tmp_path):
    assert tick_at(tmp_path, "2026-11-01T03:00:00").returncode == 0
    [old] = rows(tmp_path)
    old_file = tmp_path / old.jpeg_path

    result = tick_at(tmp_path, "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")

    assert result.returncode == 0, result.stderr
    first, second = rows(tmp_path)
    assert first.media_pruned_ts == datetime(2026, 11, 21, 3, 0).timestamp() and second.media_pruned_ts is None
    assert not old_file.exists() and not old_file.parent.exists() and (tmp_path / second.jpeg_path).is_file()
    [line] = [line for line in result.stderr.splitlines() if "retention" in line]
    assert "INFO retention: removed 1 frames/clips (" in line and "MB) older than 7 days" in line
    assert warnings(result) == []


def test_a_tick_with_the_default_30_days_keeps_a_week_old_frame(tmp_path):
    assert tick_at(tmp_path, "2026-11-14T03:00:00").returncode == 0
    result = tick_at(tmp_path, "2026-11-21T03:00:00")
    assert result.returncode == 0 and "retention" not in result.stderr
    assert [r.media_pruned_ts for r in rows(tmp_path)] == [None, None]
    assert all((tmp_path / r.jpeg_path).is_file() for r in rows(tmp_path))


def test_a_tick_short_of_disk_space_prunes_what_it_may_and_warns_once(tmp_path):
    assert tick_at(tmp_path, "2026-11-21T01:00:00").returncode == 0
    result = tick_at(tmp_path, "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="0", BILBO_MIN_FREE_MB=str(10**9))
    assert result.returncode == 0, result.stderr
    first, second = rows(tmp_path)
    assert first.media_pruned_ts is not None and not (tmp_path / first.jpeg_path).exists()
    assert second.media_pruned_ts is None and (tmp_path / second.jpeg_path).is_file()  # the new reference stays
    assert "because the disk had less than 1000000000 MB free" in result.stderr
    [warning] = warnings(result)
    assert "retention: the disk still has only" in warning


def test_a_tick_still_succeeds_when_an_old_frame_cannot_be_deleted(tmp_path):
    """A path retention cannot unlink: a folder where the frame was (chmod would not stop root, and CI is root)."""
    assert tick_at(tmp_path, "2026-11-01T03:00:00").returncode == 0
    [old] = rows(tmp_path)
    old_file = tmp_path / old.jpeg_path
    old_file.unlink()
    (old_file / "inside").mkdir(parents=True)  # unlink() of a folder fails for every user, root included
    result = tick_at(tmp_path, "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    assert len(rows(tmp_path)) == 2 and rows(tmp_path)[0].media_pruned_ts is None
    assert old_file.exists()
    [warning] = warnings(result)
    assert "retention:" in warning and "could not be removed" in warning and old.jpeg_path in warning
    assert "ERROR" not in result.stderr


def test_a_tick_still_succeeds_when_retention_cannot_write_and_the_next_tick_marks_the_rows(tmp_path):
    assert tick_at(tmp_path, "2026-11-01T03:00:00").returncode == 0
    [old] = rows(tmp_path)
    db = sqlite3.connect(tmp_path / "bilbo.sqlite3", isolation_level=None)
    db.execute(  # a database fault that only hits retention's update (the tick's own insert still works)
        "CREATE TRIGGER refuse_prune BEFORE UPDATE OF media_pruned_ts ON ticks "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O'); END"
    )
    result = tick_at(tmp_path, "2026-11-21T03:00:00", BILBO_RETENTION_DAYS="7")
    assert result.returncode == 0, result.stderr
    assert len(rows(tmp_path)) == 2 and rows(tmp_path)[0].media_pruned_ts is None
    assert not (tmp_path / old.jpeg_path).exists()  # files first, then rows: this order never leaks a file
    [warning] = warnings(result)
    assert "retention did not finish this tick" in warning and "disk I/O" in warning

    db.execute("DROP TRIGGER refuse_prune")
    db.close()
    recovered = tick_at(tmp_path, "2026-11-21T03:04:00", BILBO_RETENTION_DAYS="7")
    assert recovered.returncode == 0 and warnings(recovered) == []
    assert rows(tmp_path)[0].media_pruned_ts == datetime(2026, 11, 21, 3, 4).timestamp()


def test_files_left_by_a_killed_tick_are_swept_and_nothing_a_row_points_at(tmp_path):
    """A tick killed between writing its frame and committing its row leaves the JPEG (or a half-written .tmp)
    behind; the next ticks sweep such files from today's and yesterday's folders once they are 10 minutes old."""
    assert run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:00:00").returncode == 0
    [kept] = rows(tmp_path)
    day = tmp_path / "frames" / "2026-11-21"
    hour_ago = time.time() - 3600
    leftovers = [day / "030400-1795230240.jpg", day / "030800-1795230480.jpg.tmp"]
    for path in leftovers:
        path.write_bytes(b"\xff\xd8 half a frame")
        os.utime(path, (hour_ago, hour_ago))
    os.utime(tmp_path / kept.jpeg_path, (hour_ago, hour_ago))  # old, but a row points at it
    in_progress = day / "031200-1795230720.jpg.tmp"  # a tick writing right now
    in_progress.write_bytes(b"\xff\xd8")

    result = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-21T03:16:00")
    assert result.returncode == 0, result.stderr
    assert "retention: removed 2 file(s) no tick points at (left by a killed tick)" in result.stderr
    assert not any(path.exists() for path in leftovers)
    assert (tmp_path / kept.jpeg_path).exists() and in_progress.exists()
    assert all((tmp_path / row.jpeg_path).exists() for row in rows(tmp_path) if row.jpeg_path)


# --- the sweep of files no row points at ---------------------------------------------------------------------------


def left_file(data_dir: Path, ts: float, name: str) -> str:
    """A file in the day folder of `ts`, an hour old by its real age (the sweep's ORPHAN_AGE_S is 10 minutes)."""
    relative = f"frames/{datetime.fromtimestamp(ts):%Y-%m-%d}/{name}"
    (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (data_dir / relative).write_bytes(b"jpeg")
    os.utime(data_dir / relative, (time.time() - 3600, time.time() - 3600))
    return relative


def test_the_sweep_never_removes_a_frame_a_backup_line_names(tmp_path, store):
    """A database older than its backup (restored from a copy): today's frames, a labelled one among them, have
    no row in it, but the backup's lines name them and a rebuild points at them."""
    settings = settings_for(tmp_path)
    named = left_file(tmp_path, NOW - 3600, "020000-1.jpg")
    labelled = tick_row(NOW - 1800, left_file(tmp_path, NOW - 1800, "023000-2.jpg"))
    left_by_a_killed_tick = left_file(tmp_path, NOW - 900, "024500-3.jpg")
    half_written = left_file(tmp_path, NOW - 600, f"{Path(named).name}.tmp")  # a name that only begins like one
    newer = [replace(tick_row(NOW - 3600, named), id=7), replace(labelled, id=8)]
    settings.jsonl_path.write_text("".join(json.dumps(jsonl.tick_record(row)) + "\n" for row in newer))
    (tmp_path / "corrections.jsonl").write_text(json.dumps({"op": "add", "tick_id": 8, "field": "eyes"}) + "\n")

    report = retention.prune(store, tmp_path, settings, NOW)

    assert report.orphans_removed == 2
    assert (tmp_path / named).is_file() and (tmp_path / labelled.jpeg_path).is_file()
    assert not (tmp_path / left_by_a_killed_tick).exists() and not (tmp_path / half_written).exists()


def test_the_sweep_removes_nothing_while_the_backup_cannot_be_read(tmp_path, store):
    settings = settings_for(tmp_path)
    left = left_file(tmp_path, NOW - 900, "024500-3.jpg")
    settings.jsonl_path.mkdir()  # a folder in the way: it cannot be read, so it may name anything
    assert retention.prune(store, tmp_path, settings, NOW).orphans_removed == 0
    assert (tmp_path / left).is_file()
    settings.jsonl_path.rmdir()  # readable again (absent: it names nothing): the next pass sweeps
    assert retention.prune(store, tmp_path, settings, NOW).orphans_removed == 1
    assert not (tmp_path / left).exists()
