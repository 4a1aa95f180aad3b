"""Flask app: one HTML page plus JSON endpoints over the same SQLite file the tick writes.

Frames are served by tick id only, never from a path in the request, so nothing outside the
data dir can be read through the dashboard. Security checks live in dashboard/security.py,
the JSON endpoints in dashboard/api.py, the sleep log's CSV downloads in dashboard/export.py,
the checks of what a request carries in dashboard/inputs.py. Every answer is valid JSON (or the page, a frame, a CSV).
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, send_file
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from dashboard.api import pruned_description, register_api
from dashboard.export import register_export
from dashboard.inputs import MAX_BODY_BYTES, SqliteIdConverter
from dashboard.security import Guard
from db.store import Store, StoreError
from settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity (in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class FiniteJSONProvider(DefaultJSONProvider):
    """JSON answers that are always JSON: Python writes NaN and Infinity, which the page's JSON.parse refuses, so a
    value that is not finite (a NaN in a model manifest, an Infinity restored from an old backup) goes out as null."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # rare: walk the answer only when it holds such a value
            return super().dumps(_finite(obj), **kwargs)


def create_app(settings: Settings) -> Flask:
    """The app for `settings.dashboard_host:port`; raises InsecureBindError for a bind it cannot protect.

    `<int:...>` in every route takes only ids SQLite can hold (a larger one is a 404), and a request body over
    MAX_BODY_BYTES is refused with 413 before it is read."""
    app = Flask(__name__, static_folder=None)
    app.json = FiniteJSONProvider(app)
    app.url_map.converters["int"] = SqliteIdConverter  # before any route is added
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["BILBO_SETTINGS"] = settings
    guard = Guard(settings.dashboard_host, settings.dashboard_port, settings.dashboard_token)
    guard.install(app)
    app.config["BILBO_GUARD"] = guard
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    def open_store() -> Store:
        return Store.open(settings.db_path)

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException):
        return jsonify(error=error.description), error.code

    @app.errorhandler(StoreError)
    def store_error(error: StoreError):
        return jsonify(error=f"the database cannot be read or written: {error}"), 503

    @app.get("/")
    def index():
        nonce = secrets.token_urlsafe(16)
        html = page.replace("{{csrf_token}}", guard.csrf_token).replace("{{nonce}}", nonce)
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/frames/<int:tick_id>.jpg")
    def frame(tick_id: int):
        with open_store() as db:
            row = db.tick(tick_id)
        if row is None or row.jpeg_path is None:
            abort(404, description=f"tick {tick_id} has no stored frame")
        if row.media_pruned:
            abort(404, description=f"tick {tick_id}: {pruned_description(row)}")
        path = (settings.data_dir / row.jpeg_path).resolve()
        if settings.data_dir.resolve() not in path.parents or not path.is_file():
            abort(404, description=f"frame of tick {tick_id} is missing on disk")
        return send_file(path, mimetype="image/jpeg", max_age=3600)

    register_api(app, settings, open_store)
    register_export(app, settings, open_store)
    return app
