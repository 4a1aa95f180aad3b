"""Corrections, undo, review queue and metrics through the running app, checked in the database."""

from __future__ import annotations

import pytest

from db.store import Store
from tests.test_dashboard import call, csrf_of, dashboard_settings, serving, tick_row


@pytest.fixture
def app(tmp_path):
    """Four ticks with JPEGs (two day, two night, different confidences) and one unchanged tick."""
    settings = dashboard_settings(tmp_path)
    (tmp_path / "frames").mkdir()
    ids = []
    with Store.open(settings.db_path) as store:
        for i, (night, eyes_conf) in enumerate([(False, 0.95), (False, 0.6), (True, 0.9), (True, 0.75)]):
            (tmp_path / "frames" / f"{i}.jpg").write_bytes(b"\xff\xd8jpeg\xff\xd9")
            row = tick_row(1000.0 + 240 * i, f"frames/{i}.jpg")
            ids.append(store.insert_tick(row.__class__(**{**row.__dict__, "night": night, "eyes_conf": eyes_conf})))
        ids.append(store.insert_tick(tick_row(2000.0, None)))
    with serving(settings) as base:
        yield base, ids, settings, {"X-CSRF-Token": csrf_of(base)}


def post(base, path, body, headers):
    return call("POST", base + path, body, headers)


def test_correcting_eyes_and_box_is_stored_with_author_and_model_output_kept(app):
    base, ids, settings, csrf = app
    body = {"changes": {"eyes": "open", "face_box": [12, 22.25, 70, 90]}, "author": "mum"}
    status, answer, _ = post(base, f"/api/ticks/{ids[0]}/corrections", body, csrf)
    assert status == 201
    assert answer["tick"]["effective_state"] == "awake" and answer["tick"]["state"] == "asleep"
    with Store.open(settings.db_path) as store:
        assert [(c.field, c.value, c.author) for c in store.corrections(ids[0])] == [
            ("eyes", "open", "mum"),
            ("face_box", [12.0, 22.2, 70.0, 90.0], "mum"),
        ]
        assert store.tick(ids[0]).eyes_label == "closed"  # the model's answer is untouched


def test_undo_takes_back_the_newest_decision_only(app):
    base, ids, settings, csrf = app
    post(base, f"/api/ticks/{ids[0]}/corrections", {"changes": {"eyes": "open"}}, csrf)
    post(base, f"/api/ticks/{ids[0]}/corrections", {"changes": {"reviewed": True}}, csrf)
    status, answer, _ = post(base, f"/api/ticks/{ids[0]}/undo", {}, csrf)
    assert status == 200 and [c["field"] for c in answer["undone"]] == ["reviewed"]
    assert answer["tick"]["human"]["corrected"] == {"eyes": "open"}
    with Store.open(settings.db_path) as store:
        assert [c.undone_ts is not None for c in store.corrections(ids[0])] == [False, True]
    post(base, f"/api/ticks/{ids[0]}/undo", {}, csrf)
    status, answer, _ = post(base, f"/api/ticks/{ids[0]}/undo", {}, csrf)
    assert status == 409 and "no correction to undo" in answer["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"changes": {"eyes": "half"}}, "eyes must be one of"),
        ({"changes": {"presence": True}}, "presence must be one of"),
        ({"changes": {"face_box": [50, 10, 20, 40]}}, "x1 < x2"),
        ({"changes": {"face_box": [1, 2, 3]}}, "face_box must be null or"),
        ({"changes": {"face_box": [1, 2, "3", 4]}}, "numbers"),
        ({"changes": {"reviewed": False}}, "reviewed can only be true"),
        ({"changes": {"state": "awake"}}, "unknown field"),
        ({"changes": {}}, "non-empty"),
        ({"changes": {"eyes": "open"}, "tick_id": 1}, "unknown keys"),
        ({"changes": {"eyes": "open"}, "author": ""}, "author"),
        ([1, 2], "JSON object"),
        (b"{not json", "JSON object"),
    ],
)
def test_bad_correction_is_a_clear_400_and_changes_nothing(app, body, message):
    base, ids, settings, csrf = app
    status, answer, _ = post(base, f"/api/ticks/{ids[0]}/corrections", body, csrf)
    assert status == 400 and message in answer["error"]
    with Store.open(settings.db_path) as store:
        assert store.corrections(ids[0]) == []


def test_correction_must_be_sent_as_json(app):
    base, ids, _, csrf = app
    status, answer, _ = post(
        base, f"/api/ticks/{ids[0]}/corrections", b"eyes=open", {**csrf, "Content-Type": "text/plain"}
    )
    assert status == 400 and "JSON" in answer["error"]


def test_unknown_tick_is_404_and_a_tick_without_a_frame_cannot_be_judged(app):
    base, ids, _, csrf = app
    assert post(base, "/api/ticks/9999/corrections", {"changes": {"eyes": "open"}}, csrf)[0] == 404
    assert post(base, "/api/ticks/9999/undo", {}, csrf)[0] == 404
    status, answer, _ = post(base, f"/api/ticks/{ids[4]}/corrections", {"changes": {"eyes": "open"}}, csrf)
    assert status == 409 and "no frame" in answer["error"]


def test_review_queue_orders_by_priority_and_drops_reviewed_frames(app):
    base, ids, _, csrf = app
    queue = call("GET", base + "/api/review?limit=10")[1]
    assert [item["id"] for item in queue["items"]] == [ids[3], ids[1], ids[2], ids[0]]  # 0.5, 0.6, 0.65, 0.9
    assert queue["remaining"] == 4 and "no teacher" in queue["teacher"]
    assert any("infrared night" in reason for reason in queue["items"][0]["reasons"])
    post(base, f"/api/ticks/{ids[3]}/corrections", {"changes": {"reviewed": True}}, csrf)
    queue = call("GET", base + "/api/review?limit=2")[1]
    assert [item["id"] for item in queue["items"]] == [ids[1], ids[2]] and queue["remaining"] == 3


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "100000"])
def test_review_limit_out_of_range_is_a_400(app, limit):
    base, _, _, _ = app
    status, answer, _ = call("GET", f"{base}/api/review?limit={limit}")
    assert status == 400 and "limit" in answer["error"]


def test_metrics_say_no_reviewed_frames_until_someone_reviews(app):
    base, ids, _, csrf = app
    empty = call("GET", base + "/api/metrics")[1]
    assert empty["reviewed_frames"] == 0
    assert empty["splits"]["all"]["eyes"]["closed"] == {"precision": None, "recall": None, "support": 0, "predicted": 0}
    post(base, f"/api/ticks/{ids[0]}/corrections", {"changes": {"reviewed": True}}, csrf)  # day: closed, right
    post(base, f"/api/ticks/{ids[2]}/corrections", {"changes": {"eyes": "open"}}, csrf)  # night: said closed, was open
    m = call("GET", base + "/api/metrics")[1]
    assert m["reviewed_frames"] == 2
    assert m["splits"]["day"]["eyes"]["closed"]["precision"] == 1.0
    assert m["splits"]["night"]["eyes"]["closed"]["precision"] == 0.0
    assert m["splits"]["night"]["eyes"]["open"] == {"precision": None, "recall": 0.0, "support": 1, "predicted": 0}
    assert m["splits"]["all"]["eyes"]["closed"]["precision"] == 0.5
    assert (
        m["splits"]["night"]["presence"]["present"]["support"] == 0
    )  # an eyes-only correction says nothing of presence


def test_timeline_shows_human_state_and_sleep_sessions(app):
    base, ids, _, csrf = app
    post(base, f"/api/ticks/{ids[1]}/corrections", {"changes": {"presence": "not_present"}}, csrf)
    data = call("GET", base + "/api/timeline")[1]
    states = {t["id"]: t["effective_state"] for t in data["ticks"]}
    assert states[ids[1]] == "absent" and states[ids[0]] == "asleep"
    assert [(s["start_ts"], s["end_ts"]) for s in data["sessions"]] == [(1000.0, 1240.0), (1480.0, 2240.0)]


def test_corrections_and_undo_survive_losing_the_database(app):
    """Human labels are the only ground truth: the JSONL backups must rebuild them, undo included."""
    from db import jsonl
    from db.rebuild import rebuild
    from tests.test_backup import back_up

    base, ids, settings, csrf = app
    with Store.open(settings.db_path) as store:
        for tick_id in ids:
            assert back_up(store, settings.jsonl_path, [jsonl.tick_record(store.tick(tick_id))]) is None
    post(base, f"/api/ticks/{ids[0]}/corrections", {"changes": {"eyes": "open", "face_box": [1, 2, 30, 40]}}, csrf)
    post(base, f"/api/ticks/{ids[1]}/corrections", {"changes": {"presence": "not_present"}}, csrf)
    post(base, f"/api/ticks/{ids[2]}/corrections", {"changes": {"reviewed": True}}, csrf)
    post(base, f"/api/ticks/{ids[2]}/undo", {}, csrf)
    with Store.open(settings.db_path) as store:
        before = [store.corrections(i) for i in ids]
        labels_before = [store.human_label(i) for i in ids]

    rebuilt = settings.data_dir / "rebuilt.sqlite3"
    imported, problems = rebuild(settings.jsonl_path, rebuilt, settings.corrections_jsonl_path)
    assert (imported, problems) == (len(ids), [])
    with Store.open(rebuilt) as store:
        assert [store.corrections(i) for i in ids] == before
        assert [store.human_label(i) for i in ids] == labels_before
    assert sum(len(c) for c in before) == 4 and before[2][0].undone_ts is not None
