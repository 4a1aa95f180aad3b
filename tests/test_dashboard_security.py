"""Dashboard security against the running app over HTTP: Host check, CSRF, token off loopback, bind refusal."""

from __future__ import annotations

import pytest

from dashboard.__main__ import main as dashboard_main
from dashboard.app import create_app
from dashboard.security import InsecureBindError
from db.store import Store
from tests.test_dashboard import call, csrf_of, dashboard_settings, serving, tick_row

LAN_HOST = "192.0.2.10"  # TEST-NET-1: configured as the bind address; the test server itself stays on loopback
TOKEN = "correct-horse-battery-staple-0123456789"


@pytest.fixture
def app_with_tick(tmp_path):
    settings = dashboard_settings(tmp_path)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.jpg").write_bytes(b"\xff\xd8jpeg\xff\xd9")
    with Store.open(settings.db_path) as store:
        tick_id = store.insert_tick(tick_row(1000.0, "frames/a.jpg"))
    with serving(settings) as base:
        yield base, tick_id, settings


@pytest.mark.parametrize("path", ["/", "/api/timeline", "/api/status", "/frames/1.jpg"])
@pytest.mark.parametrize("host", ["evil.example:5555", "attacker.test", "127.0.0.1:1", "localhost.evil.example"])
def test_foreign_host_header_is_refused_with_a_clear_403(app_with_tick, path, host):
    base, _, _ = app_with_tick
    status, body, _ = call("GET", base + path, headers={"Host": host})
    assert status == 403
    assert "DNS-rebinding" in body["error"] and host.lower() in body["error"]


def test_loopback_names_for_the_right_port_are_accepted(app_with_tick):
    base, _, settings = app_with_tick
    for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]"):
        assert call("GET", base + "/api/status", headers={"Host": f"{name}:{settings.dashboard_port}"})[0] == 200


def test_correction_without_or_with_a_wrong_csrf_token_is_refused_and_writes_nothing(app_with_tick):
    base, tick_id, settings = app_with_tick
    url = f"{base}/api/ticks/{tick_id}/corrections"
    body = {"changes": {"eyes": "open"}}
    for headers in ({}, {"X-CSRF-Token": "guess"}, {"X-CSRF-Token": ""}):
        status, answer, _ = call("POST", url, body, headers)
        assert status == 403 and "CSRF" in answer["error"]
    status, _, _ = call("POST", f"{base}/api/ticks/{tick_id}/undo", {}, {})
    assert status == 403
    # a cross-site HTML form can only send form encodings and no custom header: refused too
    form = call("POST", url, b"changes=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert form[0] == 403
    with Store.open(settings.db_path) as store:
        assert store.corrections(tick_id) == []


def test_the_pages_csrf_token_lets_a_correction_through(app_with_tick):
    base, tick_id, settings = app_with_tick
    status, _, _ = call(
        "POST",
        f"{base}/api/ticks/{tick_id}/corrections",
        {"changes": {"eyes": "open"}},
        {"X-CSRF-Token": csrf_of(base)},
    )
    assert status == 201
    with Store.open(settings.db_path) as store:
        assert [(c.field, c.value) for c in store.corrections(tick_id)] == [("eyes", "open")]


def test_answers_forbid_framing_and_sniffing_and_api_is_not_cached(app_with_tick):
    base, _, _ = app_with_tick
    _, _, headers = call("GET", base + "/api/status")
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


@pytest.fixture
def lan_app(tmp_path):
    """The app configured for a LAN address with a token (served on loopback, addressed by its LAN Host)."""
    settings = dashboard_settings(tmp_path, dashboard_host=LAN_HOST, dashboard_token=TOKEN)
    with serving(settings) as base:
        yield base, {"Host": f"{LAN_HOST}:{settings.dashboard_port}"}


def test_off_loopback_every_request_needs_the_token(lan_app):
    base, host = lan_app
    for path in ("/", "/api/status", "/frames/1.jpg"):
        status, body, _ = call("GET", base + path, headers=host)
        assert status == 401 and "token" in body["error"], path
    assert call("GET", base + "/api/status", headers={**host, "X-Bilbo-Token": "wrong"})[0] == 401
    assert call("GET", base + "/api/status", headers={**host, "X-Bilbo-Token": TOKEN})[0] == 200


def test_off_loopback_the_token_link_sets_a_strict_cookie_and_leaves_the_address_bar(lan_app):
    base, host = lan_app
    status, _, headers = call("GET", f"{base}/?token={TOKEN}", headers=host)
    assert status == 303 and headers["Location"].endswith("/") and TOKEN not in headers["Location"]
    cookie = headers["Set-Cookie"]
    assert f"bilbo_token={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert call("GET", base + "/api/status", headers={**host, "Cookie": f"bilbo_token={TOKEN}"})[0] == 200
    assert call("GET", f"{base}/?token=nope", headers=host)[0] == 401


def test_off_loopback_loopback_host_names_are_not_accepted(lan_app):
    base, _ = lan_app
    status, _, _ = call("GET", base + "/api/status", headers={"Host": "127.0.0.1", "X-Bilbo-Token": TOKEN})
    assert status == 403


@pytest.mark.parametrize(
    ("host", "token", "why"),
    [(LAN_HOST, "", "DASHBOARD_TOKEN"), ("0.0.0.0", TOKEN, "LAN address"), ("::", TOKEN, "LAN address")],
)
def test_unprotectable_binds_are_refused(tmp_path, host, token, why):
    with pytest.raises(InsecureBindError, match=why):
        create_app(dashboard_settings(tmp_path, dashboard_host=host, dashboard_token=token))


def test_command_line_refuses_a_lan_bind_without_a_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BILBO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BILBO_DASHBOARD_TOKEN", "")
    assert dashboard_main(["--host", LAN_HOST, "--port", "5599"]) == 2
    assert "DASHBOARD_TOKEN" in capsys.readouterr().err
