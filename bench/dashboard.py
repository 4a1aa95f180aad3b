"""Dashboard latency on a year of history: 24-hour timeline and review queue, store and endpoint.

Fills a fresh database with a year of 4-minute ticks (~131k rows: empty bassinet by day, long
unchanged stretches of sleep at night, some wake-ups, infrared nights, a few percent reviewed),
then prints the median (and p90) latency of:
- the store queries (`Store.timeline_points` for 24 h, `Store.review_queue(50)`), in-process;
- the endpoints `/api/timeline` (24 h) and `/api/review?limit=50` through Flask's test client;
- the same endpoints over real HTTP on 127.0.0.1 (werkzeug server in a thread).
Targets: timeline query < 2 ms, endpoints < 20 ms. Printed, not asserted.

    .venv/bin/python bench/dashboard.py [--days 365] [--runs 200]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from werkzeug.serving import make_server  # noqa: E402

from bench.timing import timed  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from db.store import Store, TickRow  # noqa: E402
from settings import load_settings  # noqa: E402

INTERVAL_S = 240
START_TS = 1_735_689_600.0  # 2025-01-01 00:00 UTC


def _state_at(hour: float, rng: random.Random) -> str:
    if 7 <= hour < 19:
        return rng.choices(["absent", "awake", "asleep"], [70, 20, 10])[0]
    return rng.choices(["asleep", "awake", "unknown", "absent"], [85, 8, 4, 3])[0]


def synthetic_year(days: int, seed: int = 7) -> list[TickRow]:
    """A plausible history: sleep mostly unchanged (models skipped), the rest classified with a JPEG."""
    rng = random.Random(seed)
    rows, state = [], "absent"
    for i in range(days * 86400 // INTERVAL_S):
        ts = START_TS + i * INTERVAL_S
        hour = (ts % 86400) / 3600
        if rng.random() < 0.25:  # states come in stretches
            state = _state_at(hour, rng)
        unchanged = state == "asleep" and rng.random() < 0.7
        night = hour >= 19.5 or hour < 6.5
        present = state != "absent"
        eyes = {"awake": "open", "asleep": "closed", "unknown": "unknown"}.get(state)
        rows.append(
            TickRow(
                ts=ts,
                source="rtsp://camera/stream1",
                unchanged=unchanged,
                diff_score=rng.uniform(0, 2) if unchanged else rng.uniform(2, 40),
                night=night,
                state=state,
                presence_label="present" if present else "not_present",
                presence_conf=rng.uniform(0.55, 1.0),
                face_box=(200.0, 80.0, 290.0, 180.0) if present else None,
                face_conf=rng.uniform(0.5, 1.0) if present else None,
                eyes_label=eyes,
                eyes_conf=rng.uniform(0.5, 1.0) if eyes else None,
                jpeg_path=None if unchanged else f"frames/{int(ts)}.jpg",
                model_version="bench-1",
                duration_ms=rng.uniform(20, 60),
            )
        )
    return rows


def http_get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status} {body[:200]!r}")
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request

    with tempfile.TemporaryDirectory() as tmp:
        probe = make_server("127.0.0.1", 0, lambda environ, start_response: [])
        port = probe.server_port
        probe.server_close()
        settings = load_settings(None, environ={"BILBO_DATA_DIR": tmp}, dashboard_port=port)
        started = time.perf_counter()
        rows = synthetic_year(args.days)
        with Store.open(settings.db_path) as store:
            store.insert_ticks(rows)
            rng = random.Random(1)
            for tick_id in rng.sample(range(1, len(rows) + 1), len(rows) // 50):  # ~2% reviewed
                if rows[tick_id - 1].jpeg_path:
                    store.add_corrections(tick_id, [("reviewed", True)], "bench", now=rows[tick_id - 1].ts + 60)
            total, classified, unreviewed = (
                store.count_ticks(),
                sum(not r.unchanged for r in rows),
                store.count_unreviewed(cap=len(rows)),
            )
        print(
            f"database: {total} ticks ({classified} classified, {unreviewed} unreviewed with a JPEG), "
            f"{settings.db_path.stat().st_size / 2**20:.0f} MiB, filled in {time.perf_counter() - started:.1f} s"
        )

        end = rows[-1].ts + 1
        start = end - 86400
        timeline_path = f"/api/timeline?start={start}&end={end}"
        review_path = "/api/review?limit=50"
        results: list[tuple[str, float, float, str]] = []
        with Store.open(settings.db_path) as store:
            day = (start, end)
            results.append(
                ("store  timeline_points(24 h)", *timed(lambda: store.timeline_points(*day), args.runs), "< 2 ms")
            )
            results.append(
                ("store  ticks_between(24 h), TickRows", *timed(lambda: store.ticks_between(*day), args.runs), "")
            )
            results.append(("store  review_queue(50)", *timed(lambda: store.review_queue(50), args.runs), ""))

        app = create_app(settings)
        client = app.test_client()
        host = {"Host": f"127.0.0.1:{port}"}
        for label, path in (("timeline 24 h", timeline_path), ("review queue 50", review_path)):
            assert client.get(path, headers=host).status_code == 200
            results.append(
                (f"in-process  {label}", *timed(lambda p=path: client.get(p, headers=host), args.runs), "< 20 ms")
            )

        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            for label, path in (("timeline 24 h", timeline_path), ("review queue 50", review_path)):
                results.append((f"HTTP        {label}", *timed(lambda p=path: http_get(port, p), args.runs), "< 20 ms"))
        finally:
            server.shutdown()

    print(f"{'what':36} {'median':>9} {'p90':>9}  target")
    for label, median, p90, target in results:
        print(f"{label:36} {median:7.2f} ms {p90:7.2f} ms  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
