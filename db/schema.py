"""The SQLite schema, as an ordered list of migrations keyed by `PRAGMA user_version`.

Never edit a migration that has shipped: append a new one. `migrate` runs the missing ones in
one transaction each, so a half-migrated database cannot exist.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: one row per tick, the alert outbox.
    """
    CREATE TABLE ticks (
        id              INTEGER PRIMARY KEY,
        ts              REAL    NOT NULL,          -- unix seconds (UTC) the frame was taken
        source          TEXT    NOT NULL,          -- camera description, credentials redacted
        unchanged       INTEGER NOT NULL,          -- 1: pixel diff below threshold, models not run
        diff_score      REAL,                      -- max 16x16 block change vs the reference frame
        night           INTEGER NOT NULL,          -- 1: infrared / grayscale frame
        state           TEXT    NOT NULL,          -- awake | asleep | absent | unknown
        presence_label  TEXT,
        presence_conf   REAL,
        face_x1 REAL, face_y1 REAL, face_x2 REAL, face_y2 REAL,   -- frame pixels
        face_conf       REAL,
        eyes_label      TEXT,                      -- open | closed | unknown | NULL (not run)
        eyes_conf       REAL,
        jpeg_path       TEXT,                      -- relative to the data dir, NULL if not kept
        model_version   TEXT,
        duration_ms     REAL    NOT NULL
    );
    CREATE INDEX ticks_ts ON ticks (ts);
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        created_ts  REAL    NOT NULL,
        kind        TEXT    NOT NULL,              -- wake | ...
        tick_id     INTEGER REFERENCES ticks (id),
        caption     TEXT    NOT NULL,
        photo_path  TEXT,                          -- relative to the data dir
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        sent_ts     REAL
    );
    CREATE INDEX outbox_pending ON outbox (sent_ts, id);
    CREATE INDEX outbox_kind_created ON outbox (kind, created_ts);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (sqlite3 knows where one ends, comments included)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"migration has an unterminated statement: {current.strip()[:60]}")
    return statements


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it ends at."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{version} is newer than this code (v{SCHEMA_VERSION}): update BILBO or restore a backup"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
