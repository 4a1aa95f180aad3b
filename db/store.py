"""Every SQL statement BILBO runs lives here. Callers get and give dataclasses, never SQL.

The database is opened in WAL mode so the dashboard can read while a tick writes, with a
busy timeout so a briefly locked database waits instead of failing; a database locked for
longer raises `StoreError` with one clear line and nothing is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from db.schema import migrate


class StoreError(RuntimeError):
    """The database cannot be opened or written; the message says why in one line."""


@dataclass(frozen=True)
class TickRow:
    """One tick's outcome, as stored. `id` is None until inserted."""

    ts: float
    source: str
    unchanged: bool
    diff_score: float | None
    night: bool
    state: str
    presence_label: str | None
    presence_conf: float | None
    face_box: tuple[float, float, float, float] | None
    face_conf: float | None
    eyes_label: str | None
    eyes_conf: float | None
    jpeg_path: str | None
    model_version: str | None
    duration_ms: float
    id: int | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["face_box"] = list(self.face_box) if self.face_box else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> TickRow:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("face_box") is not None:
            values["face_box"] = tuple(values["face_box"])
        return cls(**values)


@dataclass(frozen=True)
class Alert:
    """An alert to deliver; lives in the outbox until a notifier confirms it was sent."""

    kind: str
    caption: str
    photo_path: str | None
    created_ts: float
    tick_id: int | None = None
    id: int | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_ts: float | None = None


_TICK_COLUMNS = (
    "ts, source, unchanged, diff_score, night, state, presence_label, presence_conf, "
    "face_x1, face_y1, face_x2, face_y2, face_conf, eyes_label, eyes_conf, jpeg_path, model_version, duration_ms"
)
_OUTBOX_COLUMNS = "id, kind, caption, photo_path, created_ts, tick_id, attempts, last_error, sent_ts"


def _tick_params(row: TickRow) -> tuple:
    box = row.face_box or (None, None, None, None)
    return (
        row.ts,
        row.source,
        int(row.unchanged),
        row.diff_score,
        int(row.night),
        row.state,
        row.presence_label,
        row.presence_conf,
        *box,
        row.face_conf,
        row.eyes_label,
        row.eyes_conf,
        row.jpeg_path,
        row.model_version,
        row.duration_ms,
    )


def _tick_from_sql(r: sqlite3.Row) -> TickRow:
    box = (r["face_x1"], r["face_y1"], r["face_x2"], r["face_y2"])
    return TickRow(
        id=r["id"],
        ts=r["ts"],
        source=r["source"],
        unchanged=bool(r["unchanged"]),
        diff_score=r["diff_score"],
        night=bool(r["night"]),
        state=r["state"],
        presence_label=r["presence_label"],
        presence_conf=r["presence_conf"],
        face_box=None if box[0] is None else box,
        face_conf=r["face_conf"],
        eyes_label=r["eyes_label"],
        eyes_conf=r["eyes_conf"],
        jpeg_path=r["jpeg_path"],
        model_version=r["model_version"],
        duration_ms=r["duration_ms"],
    )


def _alert_from_sql(r: sqlite3.Row) -> Alert:
    return Alert(**{key: r[key] for key in r.keys()})  # noqa: SIM118 - sqlite3.Row has no iteration over keys


class Store:
    """A connection to BILBO's SQLite file. Use as a context manager so it is always closed."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, busy_timeout_s: float = 5.0) -> Store:
        """Open (creating if needed) and migrate. Raises StoreError with the reason."""
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except (sqlite3.Error, RuntimeError) as exc:
            raise StoreError(f"database {path} cannot be opened: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands or none of it does."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"database {self.path} is busy ({exc}); nothing written, the next tick retries") from None
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"database {self.path} write failed: {exc}; nothing written") from None
            raise

    # --- ticks -------------------------------------------------------------------------------

    def insert_tick(self, row: TickRow, alerts: Sequence[Alert] = ()) -> int:
        """Store a tick and the alerts it raised in one transaction; returns the tick id."""
        placeholders = ", ".join("?" * len(_tick_params(row)))
        with self._write() as conn:
            tick_id = conn.execute(
                f"INSERT INTO ticks ({_TICK_COLUMNS}) VALUES ({placeholders})", _tick_params(row)
            ).lastrowid
            for alert in alerts:
                conn.execute(
                    "INSERT INTO outbox (created_ts, kind, tick_id, caption, photo_path) VALUES (?, ?, ?, ?, ?)",
                    (alert.created_ts, alert.kind, tick_id, alert.caption, alert.photo_path),
                )
        return tick_id

    def import_tick(self, row: TickRow) -> None:
        """Insert a tick keeping its id (rebuild from the JSONL backup)."""
        placeholders = ", ".join("?" * (len(_tick_params(row)) + 1))
        with self._write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO ticks (id, {_TICK_COLUMNS}) VALUES ({placeholders})",
                (row.id, *_tick_params(row)),
            )

    def tick(self, tick_id: int) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE id = ?", (tick_id,)).fetchone()
        return _tick_from_sql(r) if r else None

    def last_tick(self) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {_TICK_COLUMNS} FROM ticks ORDER BY ts DESC, id DESC LIMIT 1").fetchone()
        return _tick_from_sql(r) if r else None

    def last_classified(self) -> TickRow | None:
        """The newest tick whose models ran: the result an unchanged frame reuses."""
        rows = self.recent_classified(1)
        return rows[0] if rows else None

    def recent_classified(self, n: int) -> list[TickRow]:
        """The newest n ticks whose models ran, oldest first (input of the alert rules)."""
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE unchanged = 0 ORDER BY ts DESC, id DESC LIMIT ?", (n,)
        ).fetchall()
        return [_tick_from_sql(r) for r in reversed(rows)]

    def last_reference_jpeg(self) -> str | None:
        """The newest kept JPEG: what the pixel diff compares against."""
        r = self._conn.execute(
            "SELECT jpeg_path FROM ticks WHERE jpeg_path IS NOT NULL ORDER BY ts DESC, id DESC LIMIT 1"
        ).fetchone()
        return r["jpeg_path"] if r else None

    def ticks_between(self, start_ts: float, end_ts: float) -> list[TickRow]:
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE ts >= ? AND ts < ? ORDER BY ts, id", (start_ts, end_ts)
        ).fetchall()
        return [_tick_from_sql(r) for r in rows]

    def count_ticks(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]

    # --- alerts ------------------------------------------------------------------------------

    def pending_alerts(self) -> list[Alert]:
        rows = self._conn.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE sent_ts IS NULL ORDER BY id").fetchall()
        return [_alert_from_sql(r) for r in rows]

    def alerts(self, kind: str | None = None) -> list[Alert]:
        """Every alert ever raised (sent or not), oldest first."""
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._conn.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox {where} ORDER BY id", params).fetchall()
        return [_alert_from_sql(r) for r in rows]

    def alerts_between(self, start_ts: float, end_ts: float) -> list[Alert]:
        rows = self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE created_ts >= ? AND created_ts < ? ORDER BY created_ts",
            (start_ts, end_ts),
        ).fetchall()
        return [_alert_from_sql(r) for r in rows]

    def last_alert_ts(self, kind: str) -> float | None:
        r = self._conn.execute("SELECT MAX(created_ts) FROM outbox WHERE kind = ?", (kind,)).fetchone()
        return r[0]

    def mark_sent(self, alert_id: int, sent_ts: float) -> None:
        with self._write() as conn:
            conn.execute("UPDATE outbox SET sent_ts = ?, attempts = attempts + 1 WHERE id = ?", (sent_ts, alert_id))

    def mark_failed(self, alert_id: int, error: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, alert_id))
