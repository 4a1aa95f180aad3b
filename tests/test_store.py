"""The SQLite store and its JSONL backup, on real files."""

import json
import sqlite3

import pytest

from db import jsonl
from db.rebuild import rebuild
from db.schema import SCHEMA_VERSION
from db.store import Alert, Store, StoreError, TickRow


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


def test_jsonl_backup_rebuilds_the_database_and_skips_a_torn_line(tmp_path, store):
    backup = tmp_path / "ticks.jsonl"
    rows = []
    for ts in (1.0, 2.0, 3.0):
        row = make_row(ts)
        rows.append(TickRow(**{**row.__dict__, "id": store.insert_tick(row)}))
        jsonl.append(backup, rows[-1])
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
    jsonl.append(backup, make_row(1.0, id=1))
    with pytest.raises(StoreError, match="move it aside"):
        rebuild(backup, store.path)
