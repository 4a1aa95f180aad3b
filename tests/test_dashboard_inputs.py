"""Hostile and odd inputs against the dashboard served for real over HTTP (issue 17, item 7): every one is answered
with a 4xx that says what was wrong, never a 500, nothing is written, and every answer is valid JSON (RFC 8259: no
NaN or Infinity, which browsers' JSON.parse refuses)."""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
from dataclasses import replace

import pytest

from db.store import Store
from tests.test_dashboard import csrf_of, dashboard_settings, serving, tick_row
from tests.test_dashboard_security import app_with_tick  # noqa: F401 - a fixture

BEYOND_INT64 = 2**63  # SQLite integers are 64-bit signed: Python's sqlite3 raises OverflowError from here on


def strict_json(raw: bytes) -> object:
    """Parse as a browser would: NaN, Infinity and -Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(raw, parse_constant=refuse)


def raw_call(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, object]:
    """One request, the body sent as given; the answer parsed strictly as JSON (every answer here is JSON, errors
    included: the frame endpoint's 404 too)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=sent)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    assert response.getheader("Content-Type", "").startswith("application/json"), raw[:200]
    return response.status, strict_json(raw)


@pytest.fixture
def dashboard(app_with_tick):  # noqa: F811 - the imported fixture
    """The live dashboard with one tick (test_dashboard_security's): (base URL, tick id, settings)."""
    return app_with_tick


def corrections(settings) -> list:
    with Store.open(settings.db_path) as store:
        return [c for t in store.ticks_between(0, 1e12) for c in store.corrections(t.id)]


@pytest.mark.parametrize("tick_id", [BEYOND_INT64, 2**64 + 5, 10**30])
def test_an_id_beyond_sqlites_integers_is_no_such_tick(dashboard, tick_id):
    base, _, settings = dashboard
    csrf = {"X-CSRF-Token": csrf_of(base)}
    for method, path, body in [
        ("GET", f"/api/ticks/{tick_id}", None),
        ("GET", f"/frames/{tick_id}.jpg", None),
        ("POST", f"/api/ticks/{tick_id}/corrections", b'{"changes": {"eyes": "open"}}'),
        ("POST", f"/api/ticks/{tick_id}/undo", b"{}"),
    ]:
        status, answer = raw_call(method, base + path, body, csrf)
        assert status == 404, (path, answer)
        assert "error" in answer
    assert raw_call("GET", f"{base}/api/ticks/{BEYOND_INT64 - 1}")[0] == 404  # the largest id SQLite has: no such tick
    assert corrections(settings) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"author": "\\ud800", "changes": {"eyes": "open"}}',  # a lone surrogate: valid JSON, not encodable text
        b'{"author": "mum", "changes": {"eyes": "\\udfff"}}',
        b'{"author": "mum\\udc00dad", "changes": {"reviewed": true}}',
    ],
)
def test_text_that_is_not_encodable_is_refused(dashboard, body):
    base, tick_id, settings = dashboard
    status, answer = raw_call("POST", f"{base}/api/ticks/{tick_id}/corrections", body, {"X-CSRF-Token": csrf_of(base)})
    assert status == 400 and "surrogate" in answer["error"]
    assert corrections(settings) == []


@pytest.mark.parametrize("depth", [100, 5_000, 30_000])
def test_deeply_nested_json_is_refused(dashboard, depth):
    base, tick_id, settings = dashboard
    body = b'{"changes": {"face_box": ' + b"[" * depth + b"]" * depth + b"}}"
    status, answer = raw_call("POST", f"{base}/api/ticks/{tick_id}/corrections", body, {"X-CSRF-Token": csrf_of(base)})
    assert status == 400 and "nested" in answer["error"]
    assert corrections(settings) == []


def test_a_body_over_the_size_cap_is_refused_before_it_is_read(dashboard):
    base, tick_id, settings = dashboard
    body = json.dumps({"author": "x" * 2_000_000, "changes": {"eyes": "open"}}).encode()
    status, answer = raw_call("POST", f"{base}/api/ticks/{tick_id}/corrections", body, {"X-CSRF-Token": csrf_of(base)})
    assert status == 413 and "error" in answer
    assert corrections(settings) == []
    ok = raw_call("POST", f"{base}/api/ticks/{tick_id}/corrections", b'{"changes": {"eyes": "open"}}',
                  {"X-CSRF-Token": csrf_of(base)})  # fmt: skip
    assert ok[0] == 201  # an ordinary correction is far below the cap


@pytest.mark.parametrize("limit", ["²", "٣", "１０", "1" * 5000, "-1", "+5", " 5", "5.0", ""])
def test_limit_takes_ascii_digits_only(dashboard, limit):
    base, _, _ = dashboard
    status, answer = raw_call("GET", f"{base}/api/review?{urllib.parse.urlencode({'limit': limit})}")
    assert status == 400 and "limit" in answer["error"]


@pytest.mark.parametrize(
    "query", ["start=nan", "end=nan", "start=inf", "end=-inf", "start=-Infinity&end=5", "start=1e999", "end=NaN"]
)
def test_a_time_that_is_not_a_finite_number_is_refused(dashboard, query):
    base, _, _ = dashboard
    status, answer = raw_call("GET", f"{base}/api/timeline?{query}")
    assert status == 400 and "number" in answer["error"]


def test_answers_are_valid_json_even_over_values_that_are_not_finite(tmp_path):
    """A cry manifest written with NaN (Python's json.dump writes it) and a row restored from an old backup line
    holding Infinity: the answer says null, never NaN, which the page's JSON.parse would refuse outright."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "cry.json").write_text(json.dumps({"threshold": math.nan}))
    settings = dashboard_settings(tmp_path / "data", models_dir=models)
    settings.data_dir.mkdir()
    with Store.open(settings.db_path) as store:
        store.insert_tick(replace(tick_row(1000.0, None), diff_score=math.inf))
    with serving(settings) as base:
        status, answer = raw_call("GET", f"{base}/api/timeline?start=0&end=2000")
    assert status == 200
    assert answer["cry_threshold"] == 0.5  # the manifest's NaN is no threshold: the default, as for a missing one
    [row] = answer["ticks"]
    assert "diff_score" in row and row["diff_score"] is None
