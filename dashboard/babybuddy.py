"""`python -m dashboard.babybuddy [--nights N] [--dry-run]`: copy finished sleep sessions to the parent's Baby Buddy.

Opt-in (feature 21): while BABYBUDDY_URL is empty nothing connects anywhere. The sessions are the ones the dashboard
and /export/sleep.csv show (same ticks, human labels, `sleep_sessions`, noon-to-noon nights). Idempotent without a
local table: before posting, the child's Baby Buddy sleep entries over the same span are listed, and a session that
overlaps one is skipped, by Baby Buddy's own rule (it refuses an overlapping sleep anyway), so a second run, or a
sleep a parent typed in by hand, is never doubled; one that only touches a sleep (ends as it starts) is sent. A
session the next tick could still change is not sent.

Standard library only, through outbound.call like the fallback labeller: proxy variables are ignored, redirects
refused and every wait bounded, so the sessions go to BABYBUDDY_URL and nowhere else. Paging is by limit/offset
computed here, never by the server's `next` link (which names whatever host the server thinks it is). Any failure is
one line and exit 1; what was posted before it stays posted and the next run skips it.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import outbound
from dashboard.export import MAX_NIGHTS, SESSION_PAD_S, local_iso, night_bounds, session_kind
from dashboard.labels import effective_state
from dashboard.sessions import SleepSession, night_of, sleep_sessions
from db.store import Store, StoreError
from settings import DEFAULT_ENV_FILE, Settings, cli_settings

SLEEP_PATH = "/api/sleep/"
PAGE = 100  # Baby Buddy's own page size (LimitOffsetPagination, PAGE_SIZE 100)
MAX_ENTRIES = 10_000  # more sleeps than this in a few nights means the filters were ignored: stop paging
MAX_DURATION_S = 24 * 3600  # Baby Buddy refuses a longer sleep ("Duration too long.")
MAX_ANSWER_BYTES = 5_000_000
TIMEOUT_S = 20.0
DEFAULT_NIGHTS = 3  # run each morning: last night, the day before it (morning naps) and one missed run


class BabyBuddyError(RuntimeError):
    """The export stopped; the message says what failed and what to check, in one line."""


@dataclass(frozen=True)
class Entry:
    """A sleep already in Baby Buddy, as unix seconds."""

    start_ts: float
    end_ts: float


def finished_sessions(points: Sequence[tuple[float, str]], interval_s: float, now: float) -> list[SleepSession]:
    """The sessions no later tick can change: each ends the same whether the next tick (due at `now`, or one
    interval after the last) sees the baby asleep or taken out. A sleeping baby, or one awake for less than the
    session's wake limit, is still in a session that may go on."""
    if not points:
        return []
    probe = max(now, points[-1][0] + interval_s)

    def spans(state: str) -> set[tuple[float, float]]:
        return {(s.start_ts, s.end_ts) for s in sleep_sessions([*points, (probe, state)], interval_s)}

    final = spans("asleep") & spans("absent")
    return [s for s in sleep_sessions(points, interval_s) if (s.start_ts, s.end_ts) in final]


def overlaps(session: SleepSession, entry: Entry) -> bool:
    """Baby Buddy's own test (core/models.py validate_unique_period, `start__lt=end, end__gt=start`, strict since
    2021): a sleep that only touches the session does not overlap it. The session as it would be posted: whole
    seconds (`local_iso`), so the test is the one Baby Buddy will make."""
    start, end = math.floor(session.start_ts), math.floor(session.end_ts)
    return entry.start_ts < end and entry.end_ts > start


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def sleep_entry(session: SleepSession, child_id: int) -> dict[str, Any]:
    """The POST body: local times with their offset; nap or night as on the sleep log; a note a parent can read."""
    woke = f"{session.wakeups} wake-up{'s' if session.wakeups != 1 else ''}"
    if session.wakeups:
        woke += f" ({_span(session.awake_s)} awake)"
    note = f"From BILBO: {_span(session.asleep_s)} asleep, {woke}, longest stretch {_span(session.longest_stretch_s)}."
    return {
        "child": child_id,
        "start": local_iso(session.start_ts),
        "end": local_iso(session.end_ts),
        "nap": session_kind(session) == "nap",
        "notes": note,
    }


class Client:
    """Baby Buddy's sleep endpoint at one base URL, with one token."""

    def __init__(self, base_url: str, token: str, timeout_s: float = TIMEOUT_S) -> None:
        self.base_url, self.timeout_s = base_url, timeout_s
        self._headers = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def sleeps(self, child_id: int, start_ts: float, end_ts: float) -> list[Entry]:
        """The child's sleeps that overlap [start_ts, end_ts], every page of them."""
        query = {"child": child_id, "end_min": local_iso(start_ts), "start_max": local_iso(end_ts), "limit": PAGE}
        entries: list[Entry] = []
        offset = 0
        while True:
            page = self._call("GET", SLEEP_PATH, {**query, "offset": offset})
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list) or not isinstance(page.get("count"), int):
                raise BabyBuddyError(
                    f"{self.base_url}{SLEEP_PATH} did not answer with a page of sleeps: is "
                    "BABYBUDDY_URL the address of Baby Buddy?"
                )
            entries += [_entry(r) for r in results if isinstance(r, dict) and r.get("child") in (child_id, None)]
            offset += len(results)
            if not results or offset >= page["count"]:
                return entries
            if offset >= MAX_ENTRIES:
                raise BabyBuddyError(
                    f"Baby Buddy lists over {MAX_ENTRIES} sleeps for a few nights: it ignores the "
                    "child and time filters; check BABYBUDDY_URL and its version"
                )

    def add_sleep(self, entry: dict[str, Any]) -> None:
        self._call("POST", SLEEP_PATH, body=entry)

    def _call(self, method: str, path: str, query: dict | None = None, body: dict | None = None) -> Any:
        """One request through outbound.call (BABYBUDDY_URL only, bounded waits); the answer as JSON."""
        url = f"{self.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        what = f"{method} {self.base_url}{path}"
        headers = dict(self._headers)
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            raw = outbound.call(
                method, url, headers=headers, data=data, timeout_s=self.timeout_s, max_bytes=MAX_ANSWER_BYTES
            )
        except outbound.OutboundError as exc:
            if exc.kind == "http":
                raise BabyBuddyError(_refusal(what, exc.status or 0, exc.body, exc.headers)) from None
            check = "is Baby Buddy up and BABYBUDDY_URL right?"
            said = {
                "timeout": f"no answer to {what} within {self.timeout_s:g} s: {check}",
                "unreachable": f"cannot reach Baby Buddy for {what}: {exc}; {check}",
                "broken": f"Baby Buddy broke off the answer to {what}: {exc}",
                "too_large": f"the answer to {what} is larger than {MAX_ANSWER_BYTES // 1000} kB",
            }
            raise BabyBuddyError(said[exc.kind]) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise BabyBuddyError(
                f"the answer to {what} is not JSON: is BABYBUDDY_URL the address of Baby Buddy?"
            ) from None


def _entry(result: dict) -> Entry:
    try:
        start, end = datetime.fromisoformat(result["start"]), datetime.fromisoformat(result["end"])
        return Entry(start.timestamp(), end.timestamp())
    except (KeyError, TypeError, ValueError):
        raise BabyBuddyError(
            f"Baby Buddy listed a sleep without a readable start and end: {str(result)[:200]}"
        ) from None


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _page(body: bytes) -> str:
    """An answer that is not DRF's JSON, named instead of quoted (a raw page has no place in a log line): an HTML
    page by its title (Django's "Not Found", a proxy's "502 Bad Gateway"), anything else by its kind."""
    looks_html = body.lstrip()[:1] == b"<"
    title = _TITLE.search(body[:20_000]) if looks_html else None
    words = " ".join(_TAG.sub(" ", html.unescape(title[1].decode("utf-8", "replace"))).split())[:80] if title else ""
    words = "".join(c for c in words if c.isprintable() and c not in "<>")
    if looks_html:
        return f"an HTML page: {words}" if words else "an HTML page"
    return "an answer that is not Baby Buddy's JSON" if body.strip() else ""


def _refusal(what: str, status: int, body: bytes, headers: Any) -> str:
    """One line for an HTTP error: Baby Buddy's own words (DRF's {"detail": ...} or {"field": [messages]}) and
    the setting to check; a page that is not DRF's JSON is named, never quoted."""
    try:
        data = json.loads(body)
        fields = {k: " ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in data.items()}
    except (ValueError, AttributeError):
        data, fields = None, {"detail": _page(body)}
    words = "; ".join(v if k in ("detail", "non_field_errors") else f"{k}: {v}" for k, v in fields.items())
    said = f"HTTP {status}" + (f" ({' '.join(words.split())[:200]})" if words.strip() else "")
    if status in (401, 403):
        check = (
            "check BABYBUDDY_TOKEN (the API key on Baby Buddy's User Settings page) and that this user may add sleep"
        )
    elif status == 400 and isinstance(data, dict) and "child" in data:
        check = "check BABYBUDDY_CHILD_ID (the child's id in GET /api/children/)"
    elif status == 404:
        check = "check BABYBUDDY_URL (the address Baby Buddy opens at)"
    elif 300 <= status < 400:
        where = (headers.get("Location") if headers else None) or "?"
        check = f"it points to {where.split(SLEEP_PATH)[0]}: set BABYBUDDY_URL to that address"
    else:
        check = ""
    return f"Baby Buddy refused {what}: {said}" + (f"; {check}" if check else "")


def nights_span(nights: int, now: float) -> tuple[float, float]:
    """[start, end) of the last `nights` nights, tonight's (the one `now` is in) included."""
    last = night_of(now)
    return night_bounds(last - timedelta(days=nights - 1), last)


def sessions_to_export(settings: Settings, nights: int, now: float) -> tuple[list[SleepSession], int]:
    """(finished sessions that started in the span, sessions still going on) from the tick database, read only."""
    start, end = nights_span(nights, now)
    with Store.open(settings.db_path) as db:
        ticks = db.ticks_between(start - SESSION_PAD_S, end + SESSION_PAD_S)
        labels = db.human_labels_between(start - SESSION_PAD_S, end + SESSION_PAD_S)
    points = [(t.ts, effective_state(t, labels.get(t.id))) for t in ticks]
    every = [s for s in sleep_sessions(points, settings.tick_interval_s) if start <= s.start_ts < end]
    finished = [s for s in finished_sessions(points, settings.tick_interval_s, now) if start <= s.start_ts < end]
    return finished, len(every) - len(finished)


def export(
    settings: Settings,
    nights: int,
    dry_run: bool,
    now: float,
    say: Callable[[str], None] = print,
    timeout_s: float = TIMEOUT_S,
) -> None:
    """Post what Baby Buddy lacks, saying each session's fate as it goes (so a failure leaves what was done on
    screen). Raises BabyBuddyError."""
    assert settings.babybuddy_child_id is not None  # load_settings requires it with the URL
    child = settings.babybuddy_child_id
    sessions, going_on = sessions_to_export(settings, nights, now)
    client = Client(settings.babybuddy_url, settings.babybuddy_token, timeout_s)
    there = client.sleeps(child, sessions[0].start_ts, max(s.end_ts for s in sessions)) if sessions else []
    added = skipped = 0
    for s in sessions:
        when = f"{local_iso(s.start_ts)} to {local_iso(s.end_ts)} ({session_kind(s)}, {_span(s.duration_s)})"
        if any(overlaps(s, e) for e in there):
            skipped += 1
            say(f"  already in Baby Buddy: {when}")
        elif s.duration_s > MAX_DURATION_S:
            skipped += 1
            say(f"  not sent, longer than the 24 h Baby Buddy accepts: {when}")
        elif dry_run:
            added += 1
            say(f"  would add: {when}")
        else:
            try:
                client.add_sleep(sleep_entry(s, child))
            except BabyBuddyError as exc:
                raise BabyBuddyError(f"{exc} [session {when}; {added} added before it]") from None
            added += 1
            there.append(Entry(s.start_ts, s.end_ts))
            say(f"  added: {when}")
    say(f"{'would add' if dry_run else 'added'} {added}, skipped {skipped}, still going on (not sent) {going_on}")


def _nights(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_NIGHTS:
        raise argparse.ArgumentTypeError(f"want 1 to {MAX_NIGHTS} nights")
    return value


def main(argv: list[str] | None = None) -> int:
    """0: done (or nothing to do); 1: Baby Buddy or the database failed; 2: not configured."""
    parser = argparse.ArgumentParser(prog="python -m dashboard.babybuddy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nights",
        type=_nights,
        default=DEFAULT_NIGHTS,
        help=f"the last N nights, tonight's included (default {DEFAULT_NIGHTS})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list Baby Buddy's sleeps and say what would be added")
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo babybuddy", args.config)) is None:
        return 2
    if not settings.babybuddy_enabled:
        print("bilbo babybuddy: the export is off (BABYBUDDY_URL is empty in .env); nothing sent", file=sys.stderr)
        return 2
    if not settings.db_path.exists():
        print(f"bilbo babybuddy: no database at {settings.db_path}: has the monitor run? (DATA_DIR)", file=sys.stderr)
        return 2
    print(f"Baby Buddy at {settings.babybuddy_url}, child {settings.babybuddy_child_id}, last {args.nights} nights:")
    try:
        export(settings, args.nights, args.dry_run, time.time())
    except (BabyBuddyError, StoreError) as exc:
        print(f"bilbo babybuddy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
