"""The SQLite store and its JSONL backup, on real files."""

import json
import sqlite3
from dataclasses import replace

import pytest

from db import jsonl
from db.rebuild import rebuild
from db.schema import SCHEMA_VERSION
from db.store import DISAGREEMENT_BOOST, Alert, DatabaseMissingError, IdTaken, Store, StoreError, TeacherLabel, TickRow
from tests.old_db import database_at_version
from tests.test_backup import back_up


def make_row(ts: float, state: str = "asleep", **changes) -> TickRow:
    values = {
        "ts": ts,
        "source": "sample",
        "unchanged": False,
        "diff_score": 12.5,
        "night": True,
        "state": state,
        "presence_label": "present",
        "presence_conf": 0.99,
        "face_box": (100.0, 80.0, 180.0, 170.0),
        "face_conf": 0.95,
        "eyes_label": "closed" if state == "asleep" else "open",
        "eyes_conf": 0.9,
        "jpeg_path": f"frames/{int(ts)}.jpg",
        "model_version": "test-1",
        "duration_ms": 40.0,
    }
    values.update(changes)
    return TickRow(**values)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "bilbo.sqlite3") as opened:
        yield opened


def test_new_database_is_wal_and_at_current_schema(tmp_path):
    path = tmp_path / "bilbo.sqlite3"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(ticks)")}
    assert "ticks_ts" in indexes


def test_tick_round_trips_every_field(store):
    row = make_row(1000.0)
    tick_id = store.insert_tick(row)
    assert store.tick(tick_id) == TickRow(**{**row.__dict__, "id": tick_id})


def test_row_without_face_round_trips_none_box(store):
    tick_id = store.insert_tick(make_row(1.0, state="absent", face_box=None, face_conf=None, eyes_label=None))
    assert store.tick(tick_id).face_box is None


def test_recent_classified_skips_unchanged_and_is_oldest_first(store):
    store.insert_tick(make_row(1.0))
    store.insert_tick(make_row(2.0, state="awake"))
    store.insert_tick(make_row(3.0, unchanged=True, jpeg_path=None))
    store.insert_tick(make_row(4.0, state="awake"))
    assert [r.ts for r in store.recent_classified(2)] == [2.0, 4.0]
    assert store.last_classified().ts == 4.0
    assert store.last_tick().ts == 4.0
    assert store.last_reference_jpeg() == "frames/4.jpg"


def test_ticks_between_is_half_open_and_ordered(store):
    for ts in (30.0, 10.0, 20.0):
        store.insert_tick(make_row(ts))
    assert [r.ts for r in store.ticks_between(10.0, 30.0)] == [10.0, 20.0]


def test_alert_is_stored_with_its_tick_and_stays_pending_until_sent(store):
    alert = Alert(kind="wake", caption="waking", photo_path="frames/5.jpg", created_ts=5.0)
    tick_id = store.insert_tick(make_row(5.0, state="awake"), [alert])
    [pending] = store.pending_alerts()
    assert (pending.tick_id, pending.caption, pending.attempts) == (tick_id, "waking", 0)
    store.mark_failed(pending.id, "telegram down")
    [still] = store.pending_alerts()
    assert (still.attempts, still.last_error) == (1, "telegram down")
    store.mark_sent(pending.id, 9.0)
    assert store.pending_alerts() == []
    assert store.last_alert_ts("wake") == 5.0
    assert store.alerts("wake")[0].sent_ts == 9.0


def test_locked_database_raises_store_error_and_writes_nothing(tmp_path):
    path = tmp_path / "bilbo.sqlite3"
    Store.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with Store.open(path, busy_timeout_s=0.2) as store, pytest.raises(StoreError, match=r"busy|locked"):
            store.insert_tick(make_row(1.0), [Alert("wake", "x", None, 1.0)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with Store.open(path) as store:
        assert store.count_ticks() == 0
        assert store.pending_alerts() == []


def test_database_newer_than_code_is_refused(tmp_path):
    path = tmp_path / "bilbo.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this code"):
        Store.open(path)


@pytest.mark.parametrize("backup", ["ticks.jsonl", "corrections.jsonl", "teacher_labels.jsonl"])
def test_a_missing_or_empty_database_is_never_started_over_a_backup_that_has_lines(tmp_path, backup):
    path = tmp_path / "bilbo.sqlite3"
    (tmp_path / backup).write_text('{"id": 1}\n')
    with pytest.raises(
        DatabaseMissingError, match=r"is missing and its backup .* is not empty: rebuild it with .*db\.rebuild"
    ) as refused:
        Store.open(path)
    assert "\n" not in str(refused.value) and isinstance(refused.value, StoreError)  # one line, the tick's kind
    assert not path.exists()  # nothing created
    path.touch()  # a 0-byte file is no database either
    with pytest.raises(DatabaseMissingError):
        Store.open(path)
    assert path.stat().st_size == 0
    Store.open(path, restoring=True).close()  # db.rebuild's way in
    Store.open(path).close()  # and once it holds a database, it opens as always
    assert path.stat().st_size > 0


def test_a_missing_database_is_created_while_its_backups_are_empty_or_absent(tmp_path):
    (tmp_path / "ticks.jsonl").touch()  # the first tick ever: nothing to lose
    Store.open(tmp_path / "bilbo.sqlite3").close()
    assert (tmp_path / "bilbo.sqlite3").stat().st_size > 0


def test_importing_a_record_whose_id_holds_a_different_record_writes_nothing_and_says_so(store):
    row = replace(make_row(1.0), id=1)
    assert store.import_tick(row) is True
    assert store.import_tick(row) is False  # the same line again: nothing to write
    alert = Alert(kind="wake", caption="Baby seems to be waking", photo_path=None, created_ts=2.0, tick_id=2, id=1)
    with pytest.raises(IdTaken, match="ticks id 1 already holds a different record"):
        store.import_tick(replace(make_row(2.0), id=1), [alert])
    assert store.tick(1) == row and store.alerts() == []  # the whole line rolled back, its alert included


def test_jsonl_backup_rebuilds_the_database_and_skips_a_torn_line(tmp_path, store):
    backup = tmp_path / "ticks.jsonl"
    rows = []
    for ts in (1.0, 2.0, 3.0):
        row = make_row(ts)
        rows.append(TickRow(**{**row.__dict__, "id": store.insert_tick(row)}))
        assert back_up(store, backup, [jsonl.tick_record(rows[-1])]) is None
    with open(backup, "a") as handle:
        handle.write('{"ts": 4.0, "sour')  # power cut mid-line
    assert json.loads(backup.read_text().splitlines()[0])["state"] == "asleep"

    rebuilt_path = tmp_path / "rebuilt.sqlite3"
    imported, problems = rebuild(backup, rebuilt_path)
    assert imported == 3
    assert len(problems) == 1 and ":4:" in problems[0]
    with Store.open(rebuilt_path) as rebuilt:
        assert [rebuilt.tick(r.id) for r in rows] == rows


def test_rebuild_refuses_to_overwrite_an_existing_database(tmp_path, store):
    backup = tmp_path / "ticks.jsonl"
    assert back_up(store, backup, [jsonl.tick_record(make_row(1.0, id=1))]) is None
    with pytest.raises(StoreError, match="move it aside"):
        rebuild(backup, store.path)


# --- corrections and the review queue ------------------------------------------------------------


def test_corrections_never_modify_the_models_output(store):
    tick_id = store.insert_tick(make_row(1000.0))
    before = store.tick(tick_id)
    store.add_corrections(tick_id, [("eyes", "open"), ("face_box", [1.0, 2.0, 3.0, 4.0])], "mum", now=2000.0)
    assert store.tick(tick_id) == before
    history = store.corrections(tick_id)
    assert [(c.field, c.value, c.author, c.created_ts) for c in history] == [
        ("eyes", "open", "mum", 2000.0),
        ("face_box", [1.0, 2.0, 3.0, 4.0], "mum", 2000.0),
    ]


def test_newest_correction_per_field_wins_and_reviewed_confirms_the_rest(store):
    tick = store.tick(store.insert_tick(make_row(1000.0)))
    store.add_corrections(tick.id, [("eyes", "open")], "mum", now=1.0)
    store.add_corrections(tick.id, [("eyes", "closed")], "dad", now=2.0)
    label = store.human_label(tick.id)
    assert label.truth(tick) == {"eyes": "closed"}  # not reviewed: presence/box unknown
    store.add_corrections(tick.id, [("reviewed", True)], "dad", now=3.0)
    assert store.human_label(tick.id).truth(tick) == {
        "presence": "present",
        "eyes": "closed",
        "face_box": (100.0, 80.0, 180.0, 170.0),
    }


def test_undo_reverts_the_newest_decision_as_a_whole_and_keeps_the_rows(store):
    tick_id = store.insert_tick(make_row(1000.0))
    store.add_corrections(tick_id, [("eyes", "open")], "mum", now=1.0)
    store.add_corrections(tick_id, [("presence", "not_present"), ("eyes", "closed")], "mum", now=2.0)
    undone = store.undo_last_decision(tick_id, now=5.0)
    assert [(c.field, c.value) for c in undone] == [("presence", "not_present"), ("eyes", "closed")]
    assert store.human_label(tick_id).corrected == {"eyes": "open"}
    assert [c.undone_ts for c in store.corrections(tick_id)] == [None, 5.0, 5.0]
    store.undo_last_decision(tick_id, now=6.0)
    assert store.human_label(tick_id) is None
    assert store.undo_last_decision(tick_id, now=7.0) == []


def test_unknown_correction_field_is_refused(store):
    tick_id = store.insert_tick(make_row(1000.0))
    with pytest.raises(ValueError, match="unknown correction field"):
        store.add_corrections(tick_id, [("state", "awake")], "mum", now=1.0)
    assert store.corrections(tick_id) == []


def test_correction_of_a_missing_tick_writes_nothing(store):
    with pytest.raises(StoreError):
        store.add_corrections(999, [("eyes", "open")], "mum", now=1.0)


def test_review_queue_lowest_confidence_first_night_boosted_reviewed_and_skipped_excluded(store):
    sure_day = store.insert_tick(make_row(1.0, night=False, eyes_conf=0.95))
    unsure_day = store.insert_tick(make_row(2.0, night=False, eyes_conf=0.6))
    sure_night = store.insert_tick(make_row(3.0, night=True, eyes_conf=0.8))  # 0.8 - boost beats 0.6
    unknown_eyes = store.insert_tick(make_row(4.0, night=False, eyes_label="unknown", eyes_conf=0.65))
    store.insert_tick(make_row(5.0, unchanged=True, jpeg_path=None, eyes_conf=0.1))  # skipped: nothing to look at
    reviewed = store.insert_tick(make_row(6.0, night=False, eyes_conf=0.2))
    store.add_corrections(reviewed, [("reviewed", True)], "mum", now=1.0)
    queue = store.review_queue(10)
    assert [t.id for t, _ in queue] == [unknown_eyes, sure_night, unsure_day, sure_day]
    assert [round(p, 2) for _, p in queue] == [0.0, 0.55, 0.6, 0.95]
    assert [t.id for t, _ in store.review_queue(2)] == [unknown_eyes, sure_night]
    assert store.count_unreviewed() == 4
    store.undo_last_decision(reviewed, now=2.0)
    assert [t.id for t, _ in store.review_queue(2)] == [unknown_eyes, reviewed]


def test_review_queue_walks_its_index_instead_of_sorting_the_table(store):
    plan = store.review_queue_plan()
    assert "USING INDEX ticks_review" in plan and "TEMP B-TREE" not in plan


def test_labelled_ticks_and_labels_in_a_range_exclude_undone_decisions(store):
    a = store.insert_tick(make_row(10.0))
    b = store.insert_tick(make_row(20.0))
    c = store.insert_tick(make_row(30.0))
    store.add_corrections(a, [("reviewed", True)], "mum", now=1.0)
    store.add_corrections(c, [("eyes", "open")], "mum", now=2.0)
    store.add_corrections(b, [("eyes", "open")], "mum", now=3.0)
    store.undo_last_decision(b, now=4.0)
    assert [t.id for t, _ in store.labelled_ticks()] == [a, c]
    assert set(store.human_labels_between(0.0, 25.0)) == {a}


def test_neighbour_tick_steps_through_time(store):
    ids = [store.insert_tick(make_row(ts)) for ts in (10.0, 20.0, 30.0)]
    assert store.neighbour_tick(ids[1], -1).id == ids[0]
    assert store.neighbour_tick(ids[1], +1).id == ids[2]
    assert store.neighbour_tick(ids[2], +1) is None


def test_insert_ticks_stores_all_rows_in_one_go(store):
    store.insert_ticks([make_row(float(ts)) for ts in range(5)])
    assert [r.ts for r in store.ticks_between(0, 10)] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_timeline_points_match_the_tick_rows_json(store):
    store.insert_tick(make_row(10.0))
    store.insert_tick(make_row(20.0, state="absent", face_box=None, jpeg_path=None, unchanged=True))
    expected = []
    for row in store.ticks_between(0, 100):
        data = row.to_json()
        data["has_jpeg"] = data.pop("jpeg_path") is not None
        expected.append(data)
    assert store.timeline_points(0, 100) == expected


def test_unreviewed_count_stops_at_its_cap(store):
    store.insert_ticks([make_row(float(ts)) for ts in range(5)])
    assert store.count_unreviewed() == 5
    assert store.count_unreviewed(cap=3) == 3


# --- teacher labels (the fallback labeller) ---------------------------------------------------------------


def teacher(tick_id: int, ts: float, presence: str | None = "present", eyes: str | None = "closed", **kw):
    return TeacherLabel(tick_id, ts, "http://192.168.1.20:11434/v1", "vision:7b", presence, eyes, "{...}", **kw)


def failed_call(tick_id: int, ts: float) -> TeacherLabel:
    return teacher(tick_id, ts, None, None, error="cannot reach http://192.168.1.20:11434/v1: refused")


def test_a_database_from_schema_v5_migrates_to_teacher_labels_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v5.sqlite3"
    conn = database_at_version(path, 5)
    conn.execute(
        "INSERT INTO ticks (ts, source, unchanged, night, state, jpeg_path, duration_ms) "
        "VALUES (100.0, 'old', 0, 1, 'unknown', 'frames/a.jpg', 3.0)"
    )
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        [old] = store.ticks_between(0, 1e12)
        assert (old.source, old.state, old.jpeg_path) == ("old", "unknown", "frames/a.jpg")
        assert store.teacher_history(old.id) == []
        label_id = store.add_teacher_label(teacher(old.id, 200.0, disagrees=True))
        assert store.teacher_label(old.id) == teacher(old.id, 200.0, disagrees=True, id=label_id)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_teacher_candidates_are_unlabelled_kept_frames_of_the_window_oldest_first(store):
    old = store.insert_tick(make_row(10.0))
    ids = [store.insert_tick(make_row(ts)) for ts in (100.0, 200.0, 300.0, 400.0, 500.0)]
    store.insert_tick(make_row(600.0, unchanged=True, jpeg_path=None))  # no new frame
    taught, failing, given_up, human, pending = ids
    store.add_teacher_label(teacher(taught, 1000.0))
    store.add_teacher_label(failed_call(failing, 1000.0))
    for _ in range(3):
        store.add_teacher_label(failed_call(given_up, 1000.0))
    store.add_corrections(human, [("reviewed", True)], "mum", now=1000.0)  # a human beats any teacher
    assert [t.id for t in store.teacher_candidates(since_ts=50.0, max_attempts=3)] == [failing, pending]
    assert [t.id for t in store.teacher_candidates(since_ts=0.0, max_attempts=3)] == [old, failing, pending]
    assert [t.id for t in store.teacher_candidates(since_ts=50.0, max_attempts=1)] == [pending]
    assert store.teacher_calls_since(1000.0) == 5 and store.teacher_calls_since(1000.1) == 0
    assert [t.error is None for t in store.teacher_history(failing)] == [False]


def test_review_queue_puts_teacher_disagreements_first_until_a_human_decides(store):
    unknown_night = store.insert_tick(make_row(1.0, eyes_label="unknown", eyes_conf=0.6))  # -0.25: first so far
    sure_day = store.insert_tick(make_row(2.0, night=False, eyes_conf=0.95))
    agreed = store.insert_tick(make_row(3.0, night=False, eyes_conf=0.9))
    failed = store.insert_tick(make_row(4.0, night=False, eyes_conf=0.85))
    store.add_teacher_label(teacher(sure_day, 10.0, eyes="open", disagrees=True))  # teacher: awake, model: asleep
    store.add_teacher_label(teacher(agreed, 10.0, disagrees=False))
    store.add_teacher_label(failed_call(failed, 10.0))
    queue = store.review_queue(10)
    assert [t.id for t, _ in queue] == [sure_day, unknown_night, failed, agreed]
    assert [round(p, 2) for _, p in queue] == [0.95 - DISAGREEMENT_BOOST, -0.25, 0.85, 0.9]
    assert [t.id for t, _ in store.review_queue(1)] == [sure_day]
    store.add_corrections(sure_day, [("eyes", "open")], "mum", now=20.0)
    assert [t.id for t, _ in store.review_queue(10)] == [unknown_night, failed, agreed]
    assert "USING INDEX ticks_review" in store.review_queue_plan()


def test_teacher_labels_and_failed_calls_are_rebuilt_from_their_backup(tmp_path, store):
    backup, teacher_backup = tmp_path / "ticks.jsonl", tmp_path / "teacher_labels.jsonl"
    tick_id = store.insert_tick(make_row(1.0, state="unknown"))
    assert back_up(store, backup, [jsonl.tick_record(store.tick(tick_id))]) is None
    calls = [failed_call(tick_id, 5.0), teacher(tick_id, 9.0, disagrees=True)]
    for call in calls:
        label = replace(call, id=store.add_teacher_label(call))
        assert back_up(store, teacher_backup, [jsonl.teacher_record(label)]) is None
    rebuilt_path = tmp_path / "rebuilt.sqlite3"
    imported, problems = rebuild(backup, rebuilt_path, teacher_path=teacher_backup)
    assert (imported, problems) == (1, [])
    with Store.open(rebuilt_path) as rebuilt:
        assert rebuilt.teacher_history(tick_id) == store.teacher_history(tick_id)
        assert rebuilt.teacher_label(tick_id).state == "asleep" and len(rebuilt.teacher_history(tick_id)) == 2
