"""The sleep log's CSV downloads, served for real over HTTP on 127.0.0.1 from a real SQLite file.

The database is written through the Store (and corrected through the dashboard's own API) with
a night whose sessions are known to the minute, so every number in the files can be checked.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

import pytest

from db.store import Store, TickRow
from tests.test_dashboard import call, csrf_of, dashboard_settings, serving, tick_row
from tests.test_dashboard_security import LAN_HOST, TOKEN

NIGHT = date(2026, 3, 10)  # the evening of the known night
NEXT = NIGHT + timedelta(days=1)
STEP = 240  # the default tick interval
LOOKS = {  # what the model reports for each state
    "asleep": ("present", "closed"),
    "awake": ("present", "open"),
    "absent": ("not_present", None),
    "unknown": ("present", "unknown"),
}


def at(day: date, hhmm: str) -> float:
    """Local wall-clock time -> unix seconds (in whatever zone the test runs)."""
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time()).astimezone().timestamp()


def stretch(day: date, hhmm: str, *runs: tuple[str, int]) -> list[TickRow]:
    """Consecutive ticks from `hhmm`, STEP apart: ("asleep", 3) = three asleep ticks. Each keeps a frame."""
    rows, ts = [], at(day, hhmm)
    for state, count in runs:
        presence, eyes = LOOKS[state]
        for _ in range(count):
            hour = datetime.fromtimestamp(ts).hour
            base = tick_row(ts, f"frames/{int(ts)}.jpg", state=state)
            looks = {"presence_label": presence, "eyes_label": eyes, "eyes_conf": base.eyes_conf if eyes else None}
            rows.append(replace(base, **looks, night=hour >= 19 or hour < 7, cry_probability=0.25))
            ts += STEP
    return rows


# The known night of NIGHT (noon to noon) and the evening after it:
#   nap    14:00-15:00        60 min, no wake-ups
#   night  19:08-01:20       372 min, one 12-min wake-up at 21:08, longest stretch 240 min (21:20-01:20)
#          (awake 48 min from 01:20: longer than 40 min, so the session ends when the baby woke)
#   night  02:08-06:00       232 min
#   nap    11:40-12:20        40 min, crosses noon: belongs whole to NIGHT
#   NEXT:  19:00-19:20        20 min
KNOWN_NIGHT = [
    stretch(NIGHT, "14:00", ("asleep", 15), ("absent", 2)),
    stretch(
        NIGHT,
        "19:00",
        ("awake", 2),
        ("asleep", 30),
        ("awake", 3),
        ("asleep", 60),
        ("awake", 12),
        ("asleep", 58),
        ("absent", 1),
    ),
    stretch(NEXT, "11:40", ("asleep", 10), ("absent", 1)),
    stretch(NEXT, "19:00", ("asleep", 5), ("absent", 1)),
]
WAKE_AT = ["21:08", "21:12", "21:16"]  # the three awake ticks of the wake-up inside the first night session


@pytest.fixture
def served_night(tmp_path):
    settings = dashboard_settings(tmp_path)
    with Store.open(settings.db_path) as store:
        store.insert_ticks([row for rows in KNOWN_NIGHT for row in rows])
    with serving(settings) as base:
        yield base, settings


def download(base: str, path: str, **query: str) -> tuple[int, list[dict[str, str]] | dict, dict]:
    """GET a CSV; a 200 is parsed with the csv module into dicts (header row as keys), an error stays JSON."""
    status, body, headers = call("GET", f"{base}{path}" + (f"?{urlencode(query)}" if query else ""))
    if status != 200:
        return status, body, headers
    text = body.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")  # RFC 4180 line ends
    return status, list(csv.DictReader(io.StringIO(text, newline=""))), headers


def ts_of(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_sleep_csv_of_a_night_has_one_row_per_session_with_local_times_and_minutes(served_night):
    base, _ = served_night
    status, rows, headers = download(base, "/export/sleep.csv", night="2026-03-10")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == "attachment; filename=bilbo-sleep-2026-03-10.csv"
    assert list(rows[0]) == [
        "night_of", "start", "end", "duration_min", "asleep_min", "awake_min",
        "wakeups", "longest_stretch_min", "kind", "ongoing",
    ]  # fmt: skip
    spans = [(ts_of(r["start"]), ts_of(r["end"])) for r in rows]
    assert spans == [
        (at(NIGHT, "14:00"), at(NIGHT, "15:00")),
        (at(NIGHT, "19:08"), at(NEXT, "01:20")),
        (at(NEXT, "02:08"), at(NEXT, "06:00")),
        (at(NEXT, "11:40"), at(NEXT, "12:20")),
    ]
    assert [r["kind"] for r in rows] == ["nap", "night", "night", "nap"]
    assert [float(r["duration_min"]) for r in rows] == [60, 372, 232, 40]
    assert [int(r["wakeups"]) for r in rows] == [0, 1, 0, 0]
    assert [float(r["awake_min"]) for r in rows] == [0, 12, 0, 0]
    assert [float(r["longest_stretch_min"]) for r in rows] == [60, 240, 232, 40]
    assert {r["night_of"] for r in rows} == {"2026-03-10"} and {r["ongoing"] for r in rows} == {"no"}
    for r in rows:  # durations add up
        assert float(r["asleep_min"]) + float(r["awake_min"]) == float(r["duration_min"])
        assert float(r["duration_min"]) == (ts_of(r["end"]) - ts_of(r["start"])) / 60


def test_a_session_crossing_noon_belongs_whole_to_the_night_it_started_in(served_night):
    base, _ = served_night
    _, rows, headers = download(base, "/export/sleep.csv", night="2026-03-11")
    assert [(ts_of(r["start"]), ts_of(r["end"]), r["night_of"]) for r in rows] == [
        (at(NEXT, "19:00"), at(NEXT, "19:20"), "2026-03-11")
    ]  # the 11:40-12:20 nap is in the night before, not cut in two
    assert headers["Content-Disposition"].endswith("filename=bilbo-sleep-2026-03-11.csv")


def test_a_range_of_nights_lists_every_session_once_and_names_the_range(served_night):
    base, _ = served_night
    _, rows, headers = download(base, "/export/sleep.csv", **{"from": "2026-03-09", "to": "2026-03-11"})
    assert [r["night_of"] for r in rows] == ["2026-03-10"] * 4 + ["2026-03-11"]
    assert sum(float(r["duration_min"]) for r in rows) == 60 + 372 + 232 + 40 + 20
    assert headers["Content-Disposition"] == "attachment; filename=bilbo-sleep-2026-03-09-to-2026-03-11.csv"
    assert download(base, "/export/sleep.csv", night="2026-03-09")[1] == []


def test_without_a_night_the_newest_ticks_night_is_exported(served_night):
    base, _ = served_night
    _, rows, headers = download(base, "/export/sleep.csv")
    assert headers["Content-Disposition"].endswith("filename=bilbo-sleep-2026-03-11.csv")
    assert len(rows) == 1


def test_the_sleep_csv_agrees_with_the_timelines_sessions(served_night):
    base, _ = served_night
    start, end = at(NIGHT, "19:00"), at(NEXT, "07:00")  # a window no session crosses
    timeline = call("GET", f"{base}/api/timeline?start={start}&end={end}")[1]["sessions"]
    _, rows, _ = download(base, "/export/sleep.csv", night="2026-03-10")
    inside = [r for r in rows if start <= ts_of(r["start"]) < end]
    assert [(ts_of(r["start"]), ts_of(r["end"]), int(r["wakeups"])) for r in inside] == [
        (s["start_ts"], s["end_ts"], s["wakeups"]) for s in timeline
    ]


def test_ticks_csv_lists_every_tick_of_the_night_with_the_models_outputs(served_night):
    base, _ = served_night
    status, rows, headers = download(base, "/export/ticks.csv", night="2026-03-10")
    assert status == 200 and headers["Content-Disposition"] == "attachment; filename=bilbo-ticks-2026-03-10.csv"
    noon = at(NEXT, "12:00")  # ticks are cut at noon sharp (only sessions are kept whole)
    expected = [row for rows in KNOWN_NIGHT for row in rows if row.ts < noon]
    assert ts_of(rows[-1]["time"]) == noon - STEP
    assert [ts_of(r["time"]) for r in rows] == [t.ts for t in expected]
    assert [r["state"] for r in rows] == [t.state for t in expected] == [r["model_state"] for r in rows]
    first, evening = rows[0], rows[17]
    assert (first["presence"], first["presence_confidence"], first["eyes"], first["eyes_confidence"]) == (
        "present", "0.980", "closed", "0.800"
    )  # fmt: skip
    assert (first["infrared_night"], evening["infrared_night"]) == ("no", "yes")
    assert first["cry_probability"] == "0.250" and first["unchanged"] == "no" and first["human_label"] == ""
    absent = [r for r in rows if r["state"] == "absent"]
    assert [(r["presence"], r["eyes"], r["eyes_confidence"]) for r in absent] == [("not_present", "", "")] * 3


def correct(base: str, settings, hhmm: str, day: date, changes: dict) -> None:
    """A parent's correction through the dashboard's own API (CSRF token read from the page)."""
    with Store.open(settings.db_path) as store:
        [tick] = store.ticks_between(at(day, hhmm), at(day, hhmm) + 1)
    body = {"changes": changes}
    assert call("POST", f"{base}/api/ticks/{tick.id}/corrections", body, {"X-CSRF-Token": csrf_of(base)})[0] == 201


def test_a_parents_correction_wins_in_both_files(served_night):
    base, settings = served_night
    for hhmm in WAKE_AT:  # "those eyes were closed": the wake-up inside the first night session goes away
        correct(base, settings, hhmm, NIGHT, {"presence": "present", "eyes": "closed"})
    correct(base, settings, "14:00", NIGHT, {"presence": "not_present"})  # the nap really started at 14:04
    correct(base, settings, "14:04", NIGHT, {"reviewed": True})

    _, sessions, _ = download(base, "/export/sleep.csv", night="2026-03-10")
    nap, first_night = sessions[0], sessions[1]
    assert (ts_of(nap["start"]), float(nap["duration_min"])) == (at(NIGHT, "14:04"), 56)
    assert (int(first_night["wakeups"]), float(first_night["awake_min"])) == (0, 0)
    assert float(first_night["longest_stretch_min"]) == 372

    _, ticks, _ = download(base, "/export/ticks.csv", night="2026-03-10")
    by_time = {datetime.fromtimestamp(ts_of(r["time"])).strftime("%d %H:%M"): r for r in ticks}
    woke = by_time["10 21:08"]
    assert (woke["state"], woke["eyes"], woke["eyes_confidence"], woke["human_label"], woke["model_state"]) == (
        "asleep", "closed", "", "corrected", "awake"
    )  # fmt: skip
    confirmed = by_time["10 14:04"]
    assert (confirmed["human_label"], confirmed["eyes_confidence"], confirmed["state"]) == (
        "confirmed",
        "0.800",
        "asleep",
    )
    taken_out = by_time["10 14:00"]
    assert (taken_out["state"], taken_out["presence"], taken_out["eyes"], taken_out["model_state"]) == (
        "absent", "not_present", "", "asleep"
    )  # fmt: skip


@pytest.fixture
def london():
    """Run in a zone with a DST change (clocks go forward at 01:00 on 29 March 2026)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/London"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_a_night_across_the_clock_change_keeps_true_durations_and_local_offsets(tmp_path, london):
    settings = dashboard_settings(tmp_path)
    night = date(2026, 3, 28)
    start = at(night, "22:00")  # 7 real hours of sleep, 8 on the wall clock
    rows = [replace(tick_row(start + i * STEP, None), state="asleep") for i in range(7 * 3600 // STEP)]
    with Store.open(settings.db_path) as store:
        store.insert_ticks([*rows, replace(tick_row(start + 7 * 3600, None), state="absent")])
    with serving(settings) as base:
        _, sessions, _ = download(base, "/export/sleep.csv", night="2026-03-28")
    [s] = sessions
    assert (s["start"], s["end"], s["duration_min"]) == (
        "2026-03-28T22:00:00+00:00",
        "2026-03-29T06:00:00+01:00",
        "420.0",
    )


@pytest.mark.parametrize("path", ["/export/sleep.csv", "/export/ticks.csv"])
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"night": "yesterday"}, "date like"),
        ({"night": "2026-3-10"}, "date like"),
        ({"night": "20260310"}, "date like"),
        ({"night": "2026-02-30"}, "date like"),
        ({"night": "0001-01-01"}, "date like"),
        ({"from": "2026-03-10"}, "'to'"),
        ({"from": "2026-03-10", "to": "2026-03-09"}, "same night as from or later"),
        ({"from": "2026-02-01", "to": "2026-03-10"}, "at most 31 nights"),
        ({"night": "2026-03-10", "from": "2026-03-10", "to": "2026-03-10"}, "not both"),
        ({"nigth": "2026-03-10"}, "unknown query parameters"),
    ],
)
def test_bad_query_parameters_are_a_clear_400(served_night, path, query, says):
    base, _ = served_night
    status, body, headers = download(base, path, **query)
    assert status == 400 and "application/json" in headers["Content-Type"]
    assert says in body["error"]


def test_thirty_one_nights_is_the_longest_range_allowed(served_night):
    base, _ = served_night
    status, rows, _ = download(base, "/export/ticks.csv", **{"from": "2026-02-08", "to": "2026-03-10"})
    assert status == 200 and len(rows) == len([t for r in KNOWN_NIGHT for t in r if t.ts < at(NEXT, "12:00")])


def test_an_empty_database_gives_a_header_only_file(tmp_path):
    with serving(dashboard_settings(tmp_path)) as base:
        status, body, _ = call("GET", f"{base}/export/sleep.csv?night=2026-03-10")
    assert status == 200
    assert body == b"night_of,start,end,duration_min,asleep_min,awake_min,wakeups,longest_stretch_min,kind,ongoing\r\n"


@pytest.mark.parametrize("path", ["/export/sleep.csv", "/export/ticks.csv"])
def test_downloads_are_behind_the_host_check_and_never_cached(served_night, path):
    base, settings = served_night
    for host in ("evil.example:5555", "attacker.test", f"127.0.0.1:{settings.dashboard_port + 1}"):
        status, body, _ = call("GET", f"{base}{path}?night=2026-03-10", headers={"Host": host})
        assert status == 403 and "DNS-rebinding" in body["error"]
    status, _, headers = call(
        "GET", f"{base}{path}?night=2026-03-10", headers={"Host": f"localhost:{settings.dashboard_port}"}
    )
    assert status == 200 and headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"


def test_off_loopback_downloads_need_the_token(tmp_path):
    settings = dashboard_settings(tmp_path, dashboard_host=LAN_HOST, dashboard_token=TOKEN)
    host = {"Host": f"{LAN_HOST}:{settings.dashboard_port}"}
    with serving(settings) as base:
        assert call("GET", f"{base}/export/sleep.csv", headers=host)[0] == 401
        assert call("GET", f"{base}/export/ticks.csv", headers={**host, "X-Bilbo-Token": "wrong"})[0] == 401
        assert call("GET", f"{base}/export/sleep.csv", headers={**host, "Cookie": f"bilbo_token={TOKEN}"})[0] == 200
