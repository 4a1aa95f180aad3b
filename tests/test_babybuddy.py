"""Export to Baby Buddy: a real SQLite database filled through the Store, the real command, and a real HTTP server on
127.0.0.1 that speaks the part of Baby Buddy's sleep API the export uses, with its rules (token, child, limit/offset
pages, no overlapping sleeps, at most 24 h, nothing in the future)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard import babybuddy
from dashboard.babybuddy import finished_sessions, main
from db.store import Store, TickRow
from settings import SettingsError, load_settings
from tests.test_dashboard import tick_row
from tests.test_zero_egress import Allowlist, Recording, violations

REPO = Path(__file__).resolve().parents[1]
TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
CHILD = 1
STEP = 240  # the default tick interval
H = 3600
NOW = int(time.time()) // 60 * 60  # the data is laid out back from the real clock, as a morning run would see it


# ---------------------------------------------------------------------------------------------------------
# A Baby Buddy stand-in: /api/sleep/ GET (filters child, end_min, start_max; limit/offset) and POST
# ---------------------------------------------------------------------------------------------------------


class BabyBuddy:
    """Keeps sleeps like Baby Buddy's Sleep model and answers like its REST API (Django REST Framework)."""

    def __init__(self, page_cap: int = 2, auth_status: int = 403) -> None:
        self.sleeps: list[dict] = []
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.page_cap = page_cap  # pages smaller than asked for, so the export must follow them
        self.auth_status = auth_status  # Baby Buddy answers 403 (SessionAuthentication first); plain DRF 401
        self.fail_posts_after: int | None = None
        self.delay_s = 0.0
        self.html_errors = False  # Django's own HTML error pages (a path outside the API) or a proxy's, not DRF JSON
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, start: float, end: float, child: int = CHILD) -> None:
        """A sleep a parent typed in by hand."""
        self.sleeps.append(self._stored(child, start, end, nap=False, notes=""))

    def posts(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] == "POST"]

    def spans(self) -> list[tuple[float, float]]:
        return sorted((_ts(s["start"]), _ts(s["end"])) for s in self.sleeps if s["child"] == CHILD)

    def _stored(self, child: int, start: float, end: float, nap: bool, notes: str) -> dict:
        iso = {k: datetime.fromtimestamp(v).astimezone().isoformat() for k, v in (("start", start), ("end", end))}
        entry = {"id": len(self.sleeps) + 1, "child": child, **iso, "duration": "…", "nap": nap, "notes": notes}
        return {**entry, "tags": []}

    def list(self, query: dict[str, str]) -> tuple[int, dict]:
        if query.get("child") != str(CHILD):
            return 400, {"child": ["Select a valid choice. That choice is not one of the available choices."]}
        found = [s for s in self.sleeps if s["child"] == CHILD]
        if "end_min" in query:
            found = [s for s in found if _ts(s["end"]) >= _ts(query["end_min"])]
        if "start_max" in query:
            found = [s for s in found if _ts(s["start"]) <= _ts(query["start_max"])]
        found.sort(key=lambda s: -_ts(s["start"]))  # Baby Buddy's ordering: newest first
        limit, offset = min(int(query.get("limit", 100)), self.page_cap), int(query.get("offset", 0))
        return 200, {"count": len(found), "next": None, "previous": None, "results": found[offset : offset + limit]}

    def create(self, body: dict) -> tuple[int, dict]:
        if body.get("child") != CHILD:
            return 400, {"child": [f'Invalid pk "{body.get("child")}" - object does not exist.']}
        start, end = _ts(body["start"]), _ts(body["end"])
        if end > time.time():
            return 400, {"end": ["Date/time can not be in the future."]}
        if start > end:
            return 400, {"non_field_errors": ["Start time must come before end time."]}
        if end - start > 24 * H:
            return 400, {"non_field_errors": ["Duration too long."]}
        # core/models.py validate_unique_period: filter(start__lt=end, end__gt=start): touching is no overlap
        if any(_ts(s["start"]) < end and _ts(s["end"]) > start for s in self.sleeps if s["child"] == CHILD):
            return 400, {"non_field_errors": ["Another entry intersects the specified time period."]}
        self.sleeps.append(self._stored(CHILD, start, end, body.get("nap"), body.get("notes", "")))
        return 201, self.sleeps[-1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        bb = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, status: int, data: dict) -> None:
                body, kind = json.dumps(data).encode(), "application/json"
                if bb.html_errors and status >= 400:
                    body, kind = HTML_PAGES[status], "text/html; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_one(self, method: str) -> None:
                bb.requests.append((method, self.path))
                time.sleep(bb.delay_s)
                parts = urlsplit(self.path)
                if parts.path == "/moved/api/sleep/":  # e.g. http:// sent on to https://
                    self.send_response(301)
                    self.send_header("Location", f"{bb.url}/api/sleep/?{parts.query}")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if parts.path != "/api/sleep/":
                    return self.answer(404, {"detail": "Not found."})
                if self.headers.get("Authorization") != f"Token {TOKEN}":
                    return self.answer(bb.auth_status, {"detail": "Invalid token."})
                if method == "GET":
                    return self.answer(*bb.list({k: v[0] for k, v in parse_qs(parts.query).items()}))
                if self.headers.get("Content-Type") != "application/json":
                    return self.answer(415, {"detail": "Unsupported media type in request."})
                if bb.fail_posts_after is not None and len(bb.posts()) > bb.fail_posts_after:
                    return self.answer(503, {"detail": "Service unavailable."})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                return self.answer(*bb.create(body))

            def do_GET(self) -> None:
                self.handle_one("GET")

            def do_POST(self) -> None:
                self.handle_one("POST")

        return Handler


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


HTML_PAGES = {  # what Django (DEBUG off) and nginx in front of it answer, shortened
    404: b'<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found'
    b"</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n",
    503: b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>"
    b"503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n",
}


@pytest.fixture
def baby_buddy() -> Iterator[BabyBuddy]:
    bb = BabyBuddy()
    thread = threading.Thread(target=bb.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield bb
    bb.server.shutdown()
    bb.server.server_close()


# ---------------------------------------------------------------------------------------------------------
# The monitor's database: ticks laid out back from now
# ---------------------------------------------------------------------------------------------------------


def ticks(start: float, *runs: tuple[str, int]) -> list[TickRow]:
    """Consecutive ticks from `start`, STEP apart: ("asleep", 3) = three asleep ticks."""
    rows, ts = [], start
    for state, count in runs:
        for _ in range(count):
            rows.append(replace(tick_row(ts, None, state=state), eyes_label={"awake": "open"}.get(state, "closed")))
            ts += STEP
    return rows


# Two finished sessions in the last day, and one going on now:
#   A  NOW-20h .. NOW-18h            2 h, then taken out
#   B  NOW-14h .. NOW-10h            4 h with a 12-min wake-up after 2 h, then taken out
#   C  NOW-1h  .. now                asleep until the newest tick, 2 minutes ago: still going on
A = (NOW - 20 * H, NOW - 18 * H)
B = (NOW - 14 * H, NOW - 14 * H + 30 * STEP + 3 * STEP + 27 * STEP)
C_START = NOW - H
NIGHTS = [
    ticks(A[0], ("asleep", 30), ("absent", 2)),
    ticks(B[0], ("asleep", 30), ("awake", 3), ("asleep", 27), ("absent", 2)),
    ticks(C_START, ("awake", 1), ("asleep", 14)),
]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("BILBO_")]:
        monkeypatch.delenv(key)
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        store.insert_ticks([row for rows in NIGHTS for row in rows])
    return tmp_path


def env_file(data_dir: Path, url: str, token: str = TOKEN, child: int | str = CHILD) -> Path:
    path = data_dir / "bilbo.env"
    path.write_text(f"DATA_DIR={data_dir}\nBABYBUDDY_URL={url}\nBABYBUDDY_TOKEN={token}\nBABYBUDDY_CHILD_ID={child}\n")
    return path


def export(data_dir: Path, url: str, *args: str, **env: str | int) -> int:
    return main(["--config", str(env_file(data_dir, url, **env)), *args])


# ---------------------------------------------------------------------------------------------------------
# What arrives, and what does not
# ---------------------------------------------------------------------------------------------------------


def test_finished_sessions_arrive_with_their_start_end_child_and_kind(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url) == 0
    assert baby_buddy.spans() == [A, B]  # to the second, in order; C is still going on
    first, second = sorted(baby_buddy.sleeps, key=lambda s: s["start"])
    assert first["child"] == second["child"] == CHILD
    assert datetime.fromisoformat(first["start"]).utcoffset() is not None  # local time with its offset
    assert second["notes"] == "From BILBO: 3 h 48 min asleep, 1 wake-up (12 min awake), longest stretch 2 h 0 min."
    for sent in (first, second):  # nap or night as on the sleep log: by the session's midpoint
        hour = datetime.fromtimestamp((_ts(sent["start"]) + _ts(sent["end"])) / 2).hour
        assert sent["nap"] is (7 <= hour < 19)
    out = capsys.readouterr().out
    assert out.count("  added: ") == 2 and "added 2, skipped 0, still going on (not sent) 1" in out


def test_running_twice_posts_nothing_new(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url) == 0
    posts = len(baby_buddy.posts())
    assert export(data_dir, baby_buddy.url) == 0
    assert len(baby_buddy.posts()) == posts == 2 and baby_buddy.spans() == [A, B]
    assert "added 0, skipped 2" in capsys.readouterr().out


def test_a_sleep_entered_by_hand_that_overlaps_a_session_is_not_doubled(data_dir, baby_buddy):
    by_hand = (B[0] - 30 * 60, B[0] + 60 * 60)  # the parent wrote down the start of B, roughly
    baby_buddy.add(*by_hand)
    assert export(data_dir, baby_buddy.url) == 0
    assert baby_buddy.spans() == [A, by_hand] and len(baby_buddy.posts()) == 1


def test_a_sleep_entered_by_hand_that_only_touches_a_session_does_not_stop_it(data_dir, baby_buddy):
    """Baby Buddy's own rule is strict (start < end and end > start), so a nap typed in as ending the minute B
    starts, and one starting the minute A ends, leave both sessions to be sent, and Baby Buddy takes them."""
    before_b, after_a = (B[0] - H, B[0]), (A[1], A[1] + 30 * 60)
    baby_buddy.add(*before_b)
    baby_buddy.add(*after_a)
    assert export(data_dir, baby_buddy.url) == 0
    assert baby_buddy.spans() == sorted([A, after_a, before_b, B]) and len(baby_buddy.posts()) == 2


def test_existing_sleeps_are_read_across_pages(data_dir, baby_buddy):
    """Five unrelated sleeps between A and B, and one inside A: newest first on pages of two, A's is on page 3."""
    inside_a = (A[0] + 600, A[0] + 1200)
    baby_buddy.add(*inside_a)
    for half_hours in range(35, 30, -1):
        baby_buddy.add(NOW - half_hours * H / 2, NOW - half_hours * H / 2 + 600)
    assert export(data_dir, baby_buddy.url) == 0
    gets = [path for method, path in baby_buddy.requests if method == "GET"]
    assert [g.rsplit("&offset=", 1)[1] for g in gets] == ["0", "2", "4"]
    assert all("child=1&end_min=" in g and "&start_max=" in g and "&limit=100" in g for g in gets)
    assert A not in baby_buddy.spans() and B in baby_buddy.spans() and len(baby_buddy.posts()) == 1


def test_a_session_still_going_on_is_not_sent_until_it_ends(data_dir, baby_buddy):
    assert export(data_dir, baby_buddy.url) == 0
    assert all(start < C_START for start, _ in baby_buddy.spans())
    with Store.open(data_dir / "bilbo.sqlite3") as store:  # the baby is taken out of the bassinet
        store.insert_ticks(ticks(C_START + 15 * STEP, ("absent", 1)))
    assert export(data_dir, baby_buddy.url) == 0
    assert baby_buddy.spans()[-1] == (C_START + STEP, C_START + 15 * STEP)


def test_dry_run_lists_what_it_would_add_and_posts_nothing(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url, "--dry-run") == 0
    assert baby_buddy.posts() == [] and baby_buddy.sleeps == []
    out = capsys.readouterr().out
    assert out.count("  would add: ") == 2 and "would add 2, skipped 0" in out


def test_nights_chooses_how_far_back(data_dir, baby_buddy):
    old = (NOW - 84 * H, NOW - 84 * H + 10 * STEP)  # three and a half days ago
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        store.insert_ticks(ticks(old[0], ("asleep", 10), ("absent", 1)))
    assert export(data_dir, baby_buddy.url) == 0  # the default: 3 nights
    assert old not in baby_buddy.spans()
    assert export(data_dir, baby_buddy.url, "--nights", "5") == 0
    assert baby_buddy.spans() == [old, A, B]


def test_finished_sessions_wait_for_a_short_wake_and_close_when_the_monitor_stops():
    asleep_then_awake = [(i * STEP, "asleep") for i in range(10)] + [(10 * STEP + i * STEP, "awake") for i in range(3)]
    last = asleep_then_awake[-1][0]
    assert finished_sessions(asleep_then_awake, STEP, now=last + 60) == []  # may fall asleep again: same session
    assert finished_sessions(asleep_then_awake, STEP, now=last + 50 * 60)[0].end_ts == 10 * STEP  # wake too long
    asleep = [(i * STEP, "asleep") for i in range(10)]
    assert finished_sessions(asleep, STEP, now=9 * STEP + 60) == []
    stopped = finished_sessions(asleep, STEP, now=9 * STEP + 4 * STEP)  # no tick for longer than the gap limit
    assert [(s.start_ts, s.end_ts) for s in stopped] == [(0, 10 * STEP)]


# ---------------------------------------------------------------------------------------------------------
# Errors: one line naming what failed and what to check, exit 1; the settings: exit 2
# ---------------------------------------------------------------------------------------------------------


def one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("status", [401, 403])
def test_a_bad_token_is_one_clear_line_and_exit_1(data_dir, baby_buddy, capsys, status):
    baby_buddy.auth_status = status
    assert export(data_dir, baby_buddy.url, token="0" * 40) == 1
    err = one_line(capsys)
    assert f"HTTP {status} (Invalid token.)" in err and "check BABYBUDDY_TOKEN" in err
    assert "0" * 40 not in err and baby_buddy.posts() == []


def test_an_unknown_child_is_one_clear_line_naming_the_child_setting(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url, child=7) == 1
    err = one_line(capsys)
    assert "HTTP 400 (child: Select a valid choice." in err and "check BABYBUDDY_CHILD_ID" in err


def test_a_server_that_is_down_is_one_clear_line(data_dir, baby_buddy, capsys):
    url = baby_buddy.url
    baby_buddy.server.shutdown()
    baby_buddy.server.server_close()
    assert export(data_dir, url) == 1
    err = one_line(capsys)
    assert f"cannot reach Baby Buddy for GET {url}/api/sleep/" in err and "BABYBUDDY_URL" in err


def test_a_wrong_url_is_one_clear_line(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url + "/babybuddy") == 1
    assert "HTTP 404 (Not found.); check BABYBUDDY_URL" in one_line(capsys)


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("/babybuddy", "HTTP 404 (an HTML page: Not Found); check BABYBUDDY_URL"),  # Django's page, not DRF's JSON
        ("", "HTTP 503 (an HTML page: 503 Service Temporarily Unavailable)"),  # nginx in front of it, on the POST
    ],
)
def test_an_html_error_page_is_named_never_quoted(data_dir, baby_buddy, capsys, where, said):
    baby_buddy.html_errors = True
    baby_buddy.fail_posts_after = 0
    assert export(data_dir, baby_buddy.url + where) == 1
    err = one_line(capsys)
    assert said in err, err
    assert "<" not in err and "doctype" not in err.lower() and "nginx" not in err, err


def test_a_redirect_is_not_followed_and_the_line_says_where_it_points(data_dir, baby_buddy, capsys):
    assert export(data_dir, baby_buddy.url + "/moved") == 1
    assert f"HTTP 301; it points to {baby_buddy.url}: set BABYBUDDY_URL to that address" in one_line(capsys)
    assert [path.split("?")[0] for _, path in baby_buddy.requests] == ["/moved/api/sleep/"]


def test_a_server_that_does_not_answer_in_time_is_one_clear_line(data_dir, baby_buddy, capsys):
    baby_buddy.delay_s = 2.0
    settings = load_settings(env_file(data_dir, baby_buddy.url))
    with pytest.raises(babybuddy.BabyBuddyError, match=r"no answer to GET .* within 0\.5 s"):
        babybuddy.export(settings, 3, False, time.time(), say=print, timeout_s=0.5)
    assert baby_buddy.posts() == []


def test_a_failure_after_some_posts_is_reported_and_the_next_run_completes(data_dir, baby_buddy, capsys):
    baby_buddy.fail_posts_after = 1
    assert export(data_dir, baby_buddy.url) == 1
    err = one_line(capsys)
    assert "HTTP 503 (Service unavailable.)" in err and "1 added before it" in err
    assert baby_buddy.spans() == [A]
    baby_buddy.fail_posts_after = None
    assert export(data_dir, baby_buddy.url) == 0
    assert baby_buddy.spans() == [A, B]


def test_a_missing_database_is_one_line_and_creates_nothing(tmp_path, baby_buddy, capsys):
    assert export(tmp_path, baby_buddy.url) == 2
    assert "no database at" in one_line(capsys) and not (tmp_path / "bilbo.sqlite3").exists()
    assert baby_buddy.requests == []


def test_settings_are_off_by_default_and_checked_when_on():
    off = load_settings(None, environ={})
    assert not off.babybuddy_enabled and off.babybuddy_child_id is None
    on = load_settings(None, environ={"BILBO_BABYBUDDY_URL": "https://bb.home.arpa/", "BILBO_BABYBUDDY_TOKEN": TOKEN,
                                      "BILBO_BABYBUDDY_CHILD_ID": "2"})  # fmt: skip
    assert (on.babybuddy_url, on.babybuddy_child_id) == ("https://bb.home.arpa", 2) and TOKEN not in repr(on)
    with pytest.raises(SettingsError, match="BABYBUDDY_TOKEN is missing"):
        load_settings(
            None, environ={"BILBO_BABYBUDDY_URL": "http://192.168.1.20:8000", "BILBO_BABYBUDDY_CHILD_ID": "1"}
        )
    with pytest.raises(SettingsError, match="BABYBUDDY_CHILD_ID is missing"):
        load_settings(None, environ={"BILBO_BABYBUDDY_URL": "http://192.168.1.20:8000", "BILBO_BABYBUDDY_TOKEN": TOKEN})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BABYBUDDY_URL", "192.168.1.20:8000"),  # no scheme
        ("BABYBUDDY_URL", "ftp://192.168.1.20"),
        ("BABYBUDDY_URL", "http://admin:admin@192.168.1.20:8000"),  # the key has its own setting
        ("BABYBUDDY_URL", "http://192.168.1.20:8000/api/sleep/"),
        ("BABYBUDDY_URL", "http://192.168.1.20:port"),
        ("BABYBUDDY_TOKEN", f"Token {TOKEN}"),
        ("BABYBUDDY_CHILD_ID", "0"),
        ("BABYBUDDY_CHILD_ID", "emma"),
    ],
)
def test_a_malformed_baby_buddy_setting_names_the_key(tmp_path, key, value):
    good = {"BABYBUDDY_URL": "http://192.168.1.20:8000", "BABYBUDDY_TOKEN": TOKEN, "BABYBUDDY_CHILD_ID": "1"}
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in {**good, key: value}.items()))
    with pytest.raises(SettingsError, match=key):
        load_settings(path, environ={})


# ---------------------------------------------------------------------------------------------------------
# Egress: the real command, recorded by the zero-egress audit hook
# ---------------------------------------------------------------------------------------------------------


def run_recorded(tmp_path: Path, data_dir: Path, **bilbo: str) -> tuple[subprocess.CompletedProcess, Recording]:
    """`python -m dashboard.babybuddy` as a timer runs it (cwd /, its own settings), every connection recorded."""
    rec = Recording(tmp_path / "recording")
    variables = {"BILBO_DATA_DIR": str(data_dir), **{f"BILBO_{k.upper()}": v for k, v in bilbo.items()}}
    argv = [sys.executable, "-m", "dashboard.babybuddy", "--config", os.devnull]
    env = rec.env(**variables, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert rec.started("dashboard.babybuddy"), "the audit hook did not record the command"
    return proc, rec


def test_with_no_url_the_command_says_so_and_connects_nowhere(tmp_path, data_dir, baby_buddy):
    proc, rec = run_recorded(tmp_path, data_dir, babybuddy_token=TOKEN, babybuddy_child_id="1")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "bilbo babybuddy: the export is off (BABYBUDDY_URL is empty in .env); nothing sent\n"
    assert violations(rec.events(), Allowlist()) == [] and baby_buddy.requests == []


def test_the_command_reaches_only_the_configured_server_and_ignores_proxies(tmp_path, data_dir, baby_buddy):
    proc, rec = run_recorded(
        tmp_path, data_dir, babybuddy_url=baby_buddy.url, babybuddy_token=TOKEN, babybuddy_child_id="1"
    )
    assert proc.returncode == 0, proc.stderr
    assert baby_buddy.spans() == [A, B]
    assert violations(rec.events(), Allowlist(connect=frozenset({("127.0.0.1", baby_buddy.server.server_port)}))) == []
    assert any(e["event"] == "socket.connect" for e in rec.events()), "the connection was not recorded"
