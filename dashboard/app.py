"""Flask app: one HTML page plus JSON endpoints over the same SQLite file the tick writes.

Frames are served by tick id only, never from a path in the request, so nothing outside the
data dir can be read through the dashboard. Security checks live in dashboard/security.py,
the JSON endpoints in dashboard/api.py, the sleep log's CSV downloads in dashboard/export.py.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, Response, abort, jsonify, send_file
from werkzeug.exceptions import HTTPException

from dashboard.api import pruned_description, register_api
from dashboard.export import register_export
from dashboard.security import Guard
from db.store import Store, StoreError
from settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings) -> Flask:
    """The app for `settings.dashboard_host:port`; raises InsecureBindError for a bind it cannot protect."""
    app = Flask(__name__, static_folder=None)
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
