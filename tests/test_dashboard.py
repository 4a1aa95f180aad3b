"""The dashboard served for real over HTTP on 127.0.0.1, reading a real SQLite file."""

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from dashboard.app import create_app
from db.store import Alert, Store, TickRow
from settings import Settings, load_settings
from tests.conftest import free_port


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


def dashboard_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a dashboard on a free loopback port (the Host check needs the port up front)."""
    return load_settings(None, environ={"BILBO_DATA_DIR": str(data_dir)}, dashboard_port=free_port(), **overrides)


@contextmanager
def serving(settings: Settings, bind: str = "127.0.0.1") -> Iterator[str]:
    """The real app on a real socket (werkzeug in a thread); yields its base URL."""
    server = make_server(bind, settings.dashboard_port, create_app(settings))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{settings.dashboard_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()  # free the port now: a test that serves the same settings again binds it at once


def call(method: str, url: str, body=None, headers: dict | None = None) -> tuple[int, object, dict]:
    """One HTTP request; JSON answers are decoded. Headers are sent as given (Host included)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=data, headers=sent)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    kind = response.getheader("Content-Type", "")
    decoded = json.loads(raw) if "application/json" in kind else raw
    return response.status, decoded, dict(response.getheaders())


def csrf_of(base: str) -> str:
    """The CSRF token the page embeds, read the way the page's own script reads it."""
    html = call("GET", base + "/")[1].decode()
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


@pytest.fixture
def served(tmp_path):
    """A data dir with three ticks (one with a JPEG, one unchanged, one pointing outside), and the live app."""
    settings = dashboard_settings(tmp_path)
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
    with serving(settings) as base:
        yield base, ids


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


def test_index_page_embeds_a_csrf_token_and_allows_only_its_own_nonced_script(served):
    base, _ = served
    status, body, headers = call("GET", base + "/")
    assert status == 200
    token = csrf_of(base)
    assert len(token) >= 32 and token == csrf_of(base)  # one secret per process
    nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">'.encode() in body
    assert headers["X-Frame-Options"] == "DENY"


def test_every_answer_carries_data_age_and_old_data_is_stale(served):
    base, _ = served
    for path in ("/api/status", "/api/timeline", "/api/review", "/api/metrics"):
        status, data, _ = call("GET", base + path)
        assert status == 200, path
        assert data["newest_ts"] == 1480.0 and data["stale"] is True, path
        assert data["data_age_s"] > 1e9, path


def test_a_fresh_tick_is_not_stale_and_no_tick_at_all_is(tmp_path):
    settings = dashboard_settings(tmp_path)
    with serving(settings) as base:
        empty = call("GET", base + "/api/status")[1]
        assert empty["stale"] is True and empty["newest_ts"] is None
        with Store.open(settings.db_path) as store:  # just past two intervals: stale
            store.insert_tick(tick_row(time.time() - 2 * settings.tick_interval_s - 5, None))
        assert call("GET", base + "/api/status")[1]["stale"] is True
        with Store.open(settings.db_path) as store:
            store.insert_tick(tick_row(time.time() - 60, None))
        fresh = call("GET", base + "/api/status")[1]
        assert fresh["stale"] is False and 59 <= fresh["data_age_s"] < 120


def test_tick_detail_links_its_neighbours(served):
    base, ids = served
    data = call("GET", f"{base}/api/ticks/{ids[1]}")[1]
    assert (data["prev_id"], data["next_id"]) == (ids[0], ids[2])
    assert data["corrections"] == [] and data["human"] is None and data["effective_state"] == "asleep"


def test_timeline_carries_what_the_cry_markers_need_but_no_stored_paths(tmp_path):
    settings = dashboard_settings(tmp_path, cry_threshold=0.6)
    with Store.open(settings.db_path) as store:
        heard = TickRow(**{**tick_row(1000.0, None).__dict__, "cry_probability": 0.93, "dbfs": -22.5, "audio_s": 5.0})
        store.insert_tick(heard.__class__(**{**heard.__dict__, "audio_path": "frames/1000.wav"}))
        store.insert_tick(tick_row(1240.0, None))
    with serving(settings) as base:
        status, data, _ = call("GET", base + "/api/timeline")
    assert status == 200 and data["cry_threshold"] == 0.6
    loud, silent = data["ticks"]
    assert (loud["cry_probability"], loud["dbfs"], loud["audio_s"]) == (0.93, -22.5, 5.0)
    assert silent["cry_probability"] is None and silent["audio_s"] is None
    assert "audio_path" not in loud


def test_cry_threshold_defaults_to_the_cry_models_manifest(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "cry.json").write_text('{"threshold": 0.42}')
    settings = dashboard_settings(tmp_path, models_dir=models)
    with Store.open(settings.db_path) as store:
        store.insert_tick(tick_row(1000.0, None))
    with serving(settings) as base:
        assert call("GET", base + "/api/timeline")[1]["cry_threshold"] == 0.42


def test_the_timeline_shows_when_the_listeners_crying_started_and_stopped(tmp_path):
    """The cry listener's episodes (db/episodes.py) come with the timeline: one ended, one still going on."""
    from db.store import CryEpisode

    settings = dashboard_settings(tmp_path)
    with Store.open(settings.db_path) as store:
        store.insert_tick(tick_row(1000.0, None))
        ended = store.start_episode(
            CryEpisode(start_ts=1100.0, onset_ts=1103.0, last_ts=1160.0, peak_probability=0.97, peak_dbfs=-18.0),
            Alert("cry", "Baby is crying", None, 1103.0),
        )
        store.update_episode(replace(ended, end_ts=1190.0))
        going_on = CryEpisode(start_ts=1300.0, onset_ts=1302.0, last_ts=1310.0, peak_probability=0.9, peak_dbfs=-25.0)
        store.start_episode(going_on, None)
        store.insert_tick(tick_row(1400.0, None))
    with serving(settings) as base:
        status, data, _ = call("GET", base + "/api/timeline?start=900&end=1500")
    assert status == 200
    assert data["cry_episodes"] == [
        {"start_ts": 1100.0, "end_ts": 1190.0, "last_ts": 1160.0, "peak_probability": 0.97, "peak_dbfs": -18.0,
         "alerted": True},
        {"start_ts": 1300.0, "end_ts": None, "last_ts": 1310.0, "peak_probability": 0.9, "peak_dbfs": -25.0,
         "alerted": False},
    ]  # fmt: skip
