"""How records become SQL rows and back: the column lists, the converters, and the import that keeps a backed-up
record's id (db.rebuild). Shared by the query modules of db/."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from db.connection import IdTaken
from db.records import Alert, Correction, TeacherLabel, TickRow

TICK_COLUMNS = (
    "ts, source, unchanged, diff_score, night, state, presence_label, presence_conf, "
    "face_x1, face_y1, face_x2, face_y2, face_conf, eyes_label, eyes_conf, jpeg_path, model_version, duration_ms, "
    "cry_probability, dbfs, audio_s, audio_path, media_pruned_ts, confirms"
)
# Tries whose answer was lost after sending before an alert stops being sent: the first one is resent once, saying it
# may be a repeat; after the second it stays "possibly delivered" (alerts/outbox.py).
MAX_UNCONFIRMED = 2
OUTBOX_COLUMNS = "id, kind, caption, photo_path, created_ts, tick_id, attempts, last_error, sent_ts, unconfirmed"
EPISODE_COLUMNS = "id, start_ts, onset_ts, last_ts, end_ts, peak_probability, peak_dbfs, background_dbfs, alert_id"


def tick_params(row: TickRow) -> tuple:
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
        row.cry_probability,
        row.dbfs,
        row.audio_s,
        row.audio_path,
        row.media_pruned_ts,
        row.confirms,
    )


def tick_from_sql(r: sqlite3.Row) -> TickRow:
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
        cry_probability=r["cry_probability"],
        dbfs=r["dbfs"],
        audio_s=r["audio_s"],
        audio_path=r["audio_path"],
        media_pruned_ts=r["media_pruned_ts"],
        confirms=r["confirms"],
    )


def correction_from_sql(r: sqlite3.Row) -> Correction:
    return Correction(
        id=r["id"],
        tick_id=r["tick_id"],
        field=r["field"],
        value=json.loads(r["value"]),
        author=r["author"],
        created_ts=r["created_ts"],
        undone_ts=r["undone_ts"],
    )


CORRECTION_COLUMNS = "c.id, c.tick_id, c.field, c.value, c.author, c.created_ts, c.undone_ts"


TEACHER_COLUMNS = "id, tick_id, ts, labeller, model, presence, eyes, raw, error, disagrees"


def teacher_values(label: TeacherLabel) -> tuple:
    """The label's values in TEACHER_COLUMNS order (id None: SQLite assigns one)."""
    return (label.id, label.tick_id, label.ts, label.labeller, label.model, label.presence, label.eyes, label.raw,
            label.error, int(label.disagrees))  # fmt: skip


def teacher_from_sql(r: sqlite3.Row) -> TeacherLabel:
    return TeacherLabel(**{**{key: r[key] for key in r.keys()}, "disagrees": bool(r["disagrees"])})  # noqa: SIM118


def insert_keeping_id(
    conn: sqlite3.Connection, table: str, columns: str, values: Sequence, mutable: frozenset[str] = frozenset()
) -> bool:
    """Insert a backed-up row under its own id (`columns` starts with id). True: written. False: the id already holds
    this very record (a line appended twice, by a tick killed between its append and its bookkeeping): nothing to
    write. Raises IdTaken when it holds a different one (ids reused by a database started empty): the first is kept
    and the caller reports the line, never a silent drop. `mutable` columns (set by later lines, such as an alert's
    delivery) are left out of the comparison."""
    names = [name.strip() for name in columns.split(",")]
    cursor = conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))}) ON CONFLICT (id) DO NOTHING", values
    )
    if cursor.rowcount == 1:
        return True
    kept = [(name, value) for name, value in zip(names, values, strict=True) if name not in mutable]
    stored = conn.execute(f"SELECT {', '.join(name for name, _ in kept)} FROM {table} WHERE id = ?", (values[0],))
    if tuple(stored.fetchone() or ()) != tuple(value for _, value in kept):
        raise IdTaken(f"{table} id {values[0]} already holds a different record, kept from an earlier line")
    return False


def queue_alert(conn: sqlite3.Connection, alert: Alert, tick_id: int | None = None) -> int:
    """Put a new alert in the outbox (a tick's, an outage's, the listener's) inside the caller's transaction, so it
    lands with the record that raised it or not at all; returns its id."""
    return conn.execute(
        "INSERT INTO outbox (created_ts, kind, tick_id, caption, photo_path) VALUES (?, ?, ?, ?, ?)",
        (alert.created_ts, alert.kind, tick_id, alert.caption, alert.photo_path),
    ).lastrowid


def import_alert(conn: sqlite3.Connection, alert: Alert) -> bool:
    """Insert a backed-up alert keeping its id; one already there (the same alert) is kept as it is."""
    return insert_keeping_id(
        conn, "outbox", OUTBOX_COLUMNS,
        (alert.id, alert.kind, alert.caption, alert.photo_path, alert.created_ts, alert.tick_id,
         alert.attempts, alert.last_error, alert.sent_ts, alert.unconfirmed),
        frozenset({"attempts", "last_error", "sent_ts", "unconfirmed"}),
    )  # fmt: skip


def alert_from_sql(r: sqlite3.Row) -> Alert:
    return Alert(**{key: r[key] for key in r.keys()})  # noqa: SIM118 - sqlite3.Row has no iteration over keys
