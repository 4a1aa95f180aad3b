"""Flask app: one HTML page plus JSON endpoints over the same SQLite file the tick writes.

Frames are served by tick id only, never from a path in the request, so nothing outside the
data dir can be read through the dashboard.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, abort, jsonify, request, send_file

from db.store import Alert, Store, TickRow
from settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_SPAN_S = 13 * 3600


def tick_json(row: TickRow) -> dict:
    data = row.to_json()
    data["has_jpeg"] = row.jpeg_path is not None
    del data["jpeg_path"]
    return data


def alert_json(alert: Alert) -> dict:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "ts": alert.created_ts,
        "tick_id": alert.tick_id,
        "caption": alert.caption,
        "sent": alert.sent_ts is not None,
        "attempts": alert.attempts,
        "last_error": alert.last_error,
    }


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        abort(400, description=f"query parameter {name!r} must be a number (unix seconds), got {raw!r}")


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["BILBO_SETTINGS"] = settings

    def store() -> Store:
        return Store.open(settings.db_path)

    @app.errorhandler(400)
    @app.errorhandler(404)
    def json_error(error):
        return jsonify(error=error.description), error.code

    @app.get("/")
    def index():
        return send_file(STATIC_DIR / "index.html")

    @app.get("/api/timeline")
    def timeline():
        start, end = _float_arg("start"), _float_arg("end")
        with store() as db:
            newest = db.last_tick()
            if end is None:
                end = (newest.ts if newest else time.time()) + 1
            if start is None:
                start = end - DEFAULT_SPAN_S
            if end <= start:
                abort(400, description="end must be after start")
            ticks = db.ticks_between(start, end)
            alerts = db.alerts_between(start, end)
        return jsonify(
            start=start,
            end=end,
            now=time.time(),
            newest_ts=newest.ts if newest else None,
            tick_interval_s=settings.tick_interval_s,
            ticks=[tick_json(t) for t in ticks],
            alerts=[alert_json(a) for a in alerts],
        )

    @app.get("/api/ticks/<int:tick_id>")
    def tick(tick_id: int):
        with store() as db:
            row = db.tick(tick_id)
        if row is None:
            abort(404, description=f"no tick {tick_id}")
        return jsonify(tick_json(row))

    @app.get("/frames/<int:tick_id>.jpg")
    def frame(tick_id: int):
        with store() as db:
            row = db.tick(tick_id)
        if row is None or row.jpeg_path is None:
            abort(404, description=f"tick {tick_id} has no stored frame")
        path = (settings.data_dir / row.jpeg_path).resolve()
        if settings.data_dir.resolve() not in path.parents or not path.is_file():
            abort(404, description=f"frame of tick {tick_id} is missing on disk")
        return send_file(path, mimetype="image/jpeg", max_age=3600)

    return app
