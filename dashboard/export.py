"""CSV downloads of the sleep log: one row per sleep session, or one row per tick, for a night or a range.

What a paediatrician's "keep a sleep log" needs, in a file any spreadsheet opens. A night runs
from local noon to the next noon (the retrain's night boundary: 19:00 and 05:00 are the same
night, an afternoon nap belongs to the night that follows it). Sessions come from the same
`sleep_sessions` and human labels as the timeline, so the file and the page agree on every
session both show; a session that crosses the range's edge is kept whole in the night it started in.
Reads only, through db.store; the range is capped so one request cannot keep a Pi busy.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta

from flask import Blueprint, Flask, Response, abort, request

from dashboard.labels import effective_state
from dashboard.sessions import NIGHT_BOUNDARY, SleepSession, night_of, sleep_sessions
from db.store import HumanLabel, Store, TickRow
from settings import Settings

MAX_NIGHTS = 31
NIGHT_HOURS = (19, 7)  # a session whose midpoint lies from 19:00 to 07:00 is "night", otherwise "nap"
SESSION_PAD_S = 12 * 3600  # ticks read either side of the range, so edge sessions are whole
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
QUERY_KEYS = frozenset({"night", "from", "to"})

SLEEP_HEADER = (
    "night_of", "start", "end", "duration_min", "asleep_min", "awake_min",
    "wakeups", "longest_stretch_min", "kind", "ongoing",
)  # fmt: skip
TICK_HEADER = (
    "time", "tick_id", "state", "presence", "presence_confidence", "eyes", "eyes_confidence",
    "cry_probability", "infrared_night", "unchanged", "human_label", "model_state",
)  # fmt: skip


def night_bounds(first: date, last: date) -> tuple[float, float]:
    """[start, end) unix seconds from the noon of `first` to the noon after `last` (local time, DST-aware)."""
    start = datetime.combine(first, NIGHT_BOUNDARY).astimezone()
    end = datetime.combine(last + timedelta(days=1), NIGHT_BOUNDARY).astimezone()
    return start.timestamp(), end.timestamp()


def local_iso(ts: float) -> str:
    """Local wall-clock time with its UTC offset, so a spreadsheet and a DST change both read it right."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def session_kind(session: SleepSession) -> str:
    hour = datetime.fromtimestamp((session.start_ts + session.end_ts) / 2).hour
    evening, morning = NIGHT_HOURS
    return "night" if hour >= evening or hour < morning else "nap"


def _minutes(seconds: float) -> float:
    return round(seconds / 60, 1)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _conf(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def sleep_rows(sessions: Iterable[SleepSession]) -> Iterable[tuple]:
    for s in sessions:
        yield (
            night_of(s.start_ts).isoformat(),
            local_iso(s.start_ts),
            local_iso(s.end_ts),
            _minutes(s.duration_s),
            _minutes(s.asleep_s),
            _minutes(s.awake_s),
            s.wakeups,
            _minutes(s.longest_stretch_s),
            session_kind(s),
            _yes(s.ongoing),
        )


def tick_rows(ticks: Iterable[TickRow], labels: dict[int, HumanLabel]) -> Iterable[tuple]:
    """One row per tick; a human's presence/eyes replace the model's, and then no model confidence is shown."""
    for t in ticks:
        label = labels.get(t.id)
        corrected = label.corrected if label else {}
        taken_out = corrected.get("presence") == "not_present"  # then the model's eyes describe nobody
        yield (
            local_iso(t.ts),
            t.id,
            effective_state(t, label),
            corrected.get("presence", t.presence_label) or "",
            "" if "presence" in corrected else _conf(t.presence_conf),
            "" if taken_out else corrected.get("eyes", t.eyes_label) or "",
            "" if taken_out or "eyes" in corrected else _conf(t.eyes_conf),
            _conf(t.cry_probability),
            _yes(t.night),
            _yes(t.unchanged),
            "" if label is None else "corrected" if corrected else "confirmed",
            t.state,
        )


def to_csv(header: Sequence[str], rows: Iterable[tuple]) -> str:
    """RFC 4180: comma-separated, CRLF line ends, fields quoted when they need it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _date_arg(name: str) -> date:
    raw = request.args.get(name, "")
    try:
        if not DATE_RE.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
        if not 1970 <= day.year <= 9998:
            raise ValueError
    except ValueError:
        abort(400, description=f"query parameter {name!r} must be a date like 2026-11-21, got {raw!r}")
    return day


def _nights(newest: TickRow | None) -> tuple[date, date]:
    """The nights asked for: ?night=D, or ?from=D1&to=D2 (inclusive); neither means the newest tick's night."""
    unknown = set(request.args) - QUERY_KEYS
    if unknown:
        abort(400, description=f"unknown query parameters {sorted(unknown)}; allowed: night, or from and to")
    if "night" in request.args:
        if "from" in request.args or "to" in request.args:
            abort(400, description="give either night, or from and to, not both")
        night = _date_arg("night")
        return night, night
    if "from" in request.args or "to" in request.args:
        first, last = _date_arg("from"), _date_arg("to")
        if last < first:
            abort(400, description="to must be the same night as from or later")
        if (last - first).days >= MAX_NIGHTS:
            abort(400, description=f"the range may span at most {MAX_NIGHTS} nights")
        return first, last
    night = night_of(newest.ts if newest else time.time())
    return night, night


def _download(text: str, what: str, first: date, last: date) -> Response:
    name = f"bilbo-{what}-{first.isoformat()}" + ("" if first == last else f"-to-{last.isoformat()}")
    response = Response(text, mimetype="text/csv")  # Flask adds "; charset=utf-8"
    response.headers["Content-Disposition"] = f"attachment; filename={name}.csv"
    response.headers["Cache-Control"] = "no-store"  # the night goes on; never hand out a stale log
    return response


def _labelled_ticks(db: Store, start: float, end: float) -> tuple[list[TickRow], dict[int, HumanLabel]]:
    return db.ticks_between(start, end), db.human_labels_between(start, end)


def register_export(app: Flask, settings: Settings, open_store: Callable[[], Store]) -> None:
    """/export/sleep.csv and /export/ticks.csv; GET only, behind the app-wide Host (and token) check."""
    export = Blueprint("export", __name__, url_prefix="/export")
    interval = settings.tick_interval_s

    @export.get("/sleep.csv")
    def sleep_csv():
        with open_store() as db:
            first, last = _nights(db.last_tick())
            start, end = night_bounds(first, last)
            ticks, labels = _labelled_ticks(db, start - SESSION_PAD_S, end + SESSION_PAD_S)
        points = [(t.ts, effective_state(t, labels.get(t.id))) for t in ticks]
        sessions = [s for s in sleep_sessions(points, interval) if start <= s.start_ts < end]
        return _download(to_csv(SLEEP_HEADER, sleep_rows(sessions)), "sleep", first, last)

    @export.get("/ticks.csv")
    def ticks_csv():
        with open_store() as db:
            first, last = _nights(db.last_tick())
            ticks, labels = _labelled_ticks(db, *night_bounds(first, last))
        return _download(to_csv(TICK_HEADER, tick_rows(ticks, labels)), "ticks", first, last)

    app.register_blueprint(export)
