"""The dashboard served for real over HTTP on 127.0.0.1, reading a real SQLite file."""

import json
import threading
import urllib.error
import urllib.request

import pytest
from werkzeug.serving import make_server

from dashboard.app import create_app
from db.store import Alert, Store, TickRow
from settings import load_settings


def tick_row(ts: float, jpeg_path: str | None, state: str = "asleep") -> TickRow:
    return TickRow(
        ts=ts,
        source="sample",
        unchanged=jpeg_path is None,
        diff_score=5.0,
        night=True,
        state=state,
        presence_label="present",
        presence_conf=0.98,
        face_box=(10.0, 20.0, 60.0, 80.0),
        face_conf=0.9,
        eyes_label="closed",
        eyes_conf=0.8,
        jpeg_path=jpeg_path,
        model_version="test",
        duration_ms=30.0,
    )


@pytest.fixture
def served(tmp_path):
    """A data dir with three ticks (one with a JPEG, one unchanged, one pointing outside), and the live app."""
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path)})
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.jpg").write_bytes(b"\xff\xd8fake-jpeg-bytes\xff\xd9")
    (tmp_path.parent / "secret.jpg").write_bytes(b"secret")
    with Store.open(settings.db_path) as store:
        ids = [
            store.insert_tick(tick_row(1000.0, "frames/a.jpg")),
            store.insert_tick(tick_row(1240.0, None)),
            store.insert_tick(
                tick_row(1480.0, "../secret.jpg", state="awake"), [Alert("wake", "waking", "../secret.jpg", 1480.0)]
            ),
        ]
    server = make_server("127.0.0.1", 0, create_app(settings))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", ids
    server.shutdown()


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def test_index_page_is_served(served):
    base, _ = served
    status, body, kind = get(base + "/")
    assert status == 200 and "text/html" in kind
    assert b"BILBO" in body and b"/api/timeline" in body


def test_timeline_defaults_to_the_span_ending_at_the_newest_tick(served):
    base, ids = served
    status, body, _ = get(base + "/api/timeline")
    data = json.loads(body)
    assert status == 200
    assert [t["id"] for t in data["ticks"]] == ids
    assert data["newest_ts"] == 1480.0
    assert [t["has_jpeg"] for t in data["ticks"]] == [True, False, True]
    assert "jpeg_path" not in data["ticks"][0]
    assert [(a["kind"], a["sent"]) for a in data["alerts"]] == [("wake", False)]


def test_timeline_honours_a_time_range(served):
    base, ids = served
    data = json.loads(get(base + "/api/timeline?start=1200&end=1300")[1])
    assert [t["id"] for t in data["ticks"]] == [ids[1]]
    assert data["alerts"] == []


@pytest.mark.parametrize("query", ["start=yesterday", "start=10&end=5"])
def test_bad_timeline_query_is_a_clear_400(served, query):
    base, _ = served
    status, body, kind = get(base + "/api/timeline?" + query)
    assert status == 400 and "application/json" in kind
    assert json.loads(body)["error"]


def test_frame_is_served_by_tick_id(served):
    base, ids = served
    status, body, kind = get(f"{base}/frames/{ids[0]}.jpg")
    assert (status, kind) == (200, "image/jpeg")
    assert body == b"\xff\xd8fake-jpeg-bytes\xff\xd9"
    assert json.loads(get(f"{base}/api/ticks/{ids[0]}")[1])["face_box"] == [10.0, 20.0, 60.0, 80.0]


def test_frame_of_unchanged_tick_or_unknown_id_is_404(served):
    base, ids = served
    assert get(f"{base}/frames/{ids[1]}.jpg")[0] == 404
    assert get(f"{base}/frames/99999.jpg")[0] == 404
    assert get(f"{base}/api/ticks/99999")[0] == 404


def test_a_stored_path_outside_the_data_dir_is_never_served(served):
    base, ids = served
    status, body, _ = get(f"{base}/frames/{ids[2]}.jpg")
    assert status == 404 and b"secret" not in body
