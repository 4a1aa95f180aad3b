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
    # 2: human corrections (append-only; the model's output in `ticks` is never modified) and the
    # review queue's partial expression index. The index expression must stay the same expression as
    # db.store.REVIEW_PRIORITY_SQL, or SQLite will sort the whole table instead of walking the index.
    """
    CREATE TABLE corrections (
        id          INTEGER PRIMARY KEY,
        tick_id     INTEGER NOT NULL REFERENCES ticks (id),
        field       TEXT    NOT NULL CHECK (field IN ('presence', 'eyes', 'face_box', 'reviewed')),
        value       TEXT    NOT NULL,              -- JSON: "present", "closed", [x1, y1, x2, y2], null, true
        author      TEXT    NOT NULL,
        created_ts  REAL    NOT NULL,              -- one decision = the rows of one request, same created_ts
        undone_ts   REAL                           -- set by undo; the row itself is kept
    );
    CREATE INDEX corrections_tick ON corrections (tick_id, id);
    CREATE INDEX ticks_review ON ticks (
        (CASE WHEN eyes_label = 'unknown' THEN 0.0
              ELSE min(coalesce(presence_conf, 1.0), coalesce(face_conf, 1.0), coalesce(eyes_conf, 1.0)) END
         - CASE WHEN night THEN 0.25 ELSE 0.0 END),
        ts
    ) WHERE unchanged = 0 AND jpeg_path IS NOT NULL;
    """,
    # 3: the camera's audio per tick (NULL when there was none): cry probability, loudness, clip length,
    # and the kept clip (only with KEEP_AUDIO). The index serves cry markers on the timeline.
    """
    ALTER TABLE ticks ADD COLUMN cry_probability REAL;   -- 0-1, max over the clip's model windows
    ALTER TABLE ticks ADD COLUMN dbfs REAL;              -- RMS level, dB re full scale
    ALTER TABLE ticks ADD COLUMN audio_s REAL;           -- seconds of audio recorded
    ALTER TABLE ticks ADD COLUMN audio_path TEXT;        -- .wav beside the JPEG, relative to the data dir
    """,
    # 4: retention (retention.py) deletes old frames/clips but keeps the row and its paths as history, noting when.
    # `ticks_prunable` serves retention's oldest-first walk over ticks that still have files; `ticks_review` is
    # rebuilt with the same expression (see migration 2) so the review queue leaves frames that are gone out.
    """
    ALTER TABLE ticks ADD COLUMN media_pruned_ts REAL;   -- when retention removed the JPEG/.wav; NULL while kept
    CREATE INDEX ticks_prunable ON ticks (ts)
        WHERE media_pruned_ts IS NULL AND (jpeg_path IS NOT NULL OR audio_path IS NOT NULL);
    DROP INDEX ticks_review;
    CREATE INDEX ticks_review ON ticks (
        (CASE WHEN eyes_label = 'unknown' THEN 0.0
              ELSE min(coalesce(presence_conf, 1.0), coalesce(face_conf, 1.0), coalesce(eyes_conf, 1.0)) END
         - CASE WHEN night THEN 0.25 ELSE 0.0 END),
        ts
    ) WHERE unchanged = 0 AND jpeg_path IS NOT NULL AND media_pruned_ts IS NULL;
    """,
    # 5: camera health. One row per tick whose capture failed (no row in `ticks`). The current outage is the
    # failures newer than the newest tick; a stored tick deletes the failures before it, so the table only ever
    # holds the outage going on now. `alert_id` marks the failure that raised the outage's one "camera
    # unreachable" alert (written in the same transaction as the outbox row).
    """
    CREATE TABLE capture_failures (
        id          INTEGER PRIMARY KEY,
        ts          REAL    NOT NULL,              -- unix seconds (UTC) the tick tried to capture
        reason      TEXT    NOT NULL,              -- the CaptureError message, credentials redacted
        alert_id    INTEGER REFERENCES outbox (id) -- set on the failure that raised the camera alert
    );
    CREATE INDEX capture_failures_ts ON capture_failures (ts);
    """,
    # 6: the fallback labeller (labeller/, feature 14). One row per call about one tick's frame, append-only: a row
    # with `error` NULL is a teacher label (training signal only, never ground truth), one with an error a failed
    # attempt (the count of a tick's rows is its attempts). `disagrees` (the teacher's state differs from the
    # tick's) is fixed when the row is written; the partial index lets the review queue put those frames first
    # without touching the `ticks_review` index. `teacher_labels_ts` serves the per-hour call cap.
    """
    CREATE TABLE teacher_labels (
        id          INTEGER PRIMARY KEY,
        tick_id     INTEGER NOT NULL REFERENCES ticks (id),
        ts          REAL    NOT NULL,              -- unix seconds of the call
        labeller    TEXT    NOT NULL,              -- the server's base URL (no credentials)
        model       TEXT    NOT NULL,
        presence    TEXT CHECK (presence IN ('present', 'not_present')),
        eyes        TEXT CHECK (eyes IN ('open', 'closed', 'not_visible')),
        raw         TEXT,                          -- the answer as received, trimmed
        error       TEXT,                          -- NULL: a label; else why this attempt gave none
        disagrees   INTEGER NOT NULL DEFAULT 0     -- 1: a label whose state differs from the tick's
    );
    CREATE INDEX teacher_labels_tick ON teacher_labels (tick_id, id);
    CREATE INDEX teacher_labels_ts ON teacher_labels (ts);
    CREATE INDEX teacher_disagreements ON teacher_labels (tick_id) WHERE error IS NULL AND disagrees = 1;
    """,
    # 7: the JSONL backup's outbox (db/jsonl.py). A backup line is written here in the same transaction as the data
    # it mirrors, then appended to its file and deleted; one whose append failed (disk full, a file in the way) or
    # never happened (the process was killed) waits, in order, until a later append of that file (every tick tries).
    """
    CREATE TABLE backup_waiting (
        id          INTEGER PRIMARY KEY,
        path        TEXT    NOT NULL,              -- the backup file, as the settings named it
        line        TEXT    NOT NULL,              -- one JSON record, without the newline
        created_ts  REAL    NOT NULL,              -- unix seconds it was queued
        error       TEXT                           -- why the last append failed; NULL: not tried yet
    );
    CREATE INDEX backup_waiting_path ON backup_waiting (path, id);
    """,
    # 8: an outage is any run of failed ticks, not only the camera's: models that cannot load or a disk that cannot
    # take the frame leave the baby as unwatched. `camera` says which kind each failure was (captions, banner).
    """
    ALTER TABLE capture_failures ADD COLUMN camera INTEGER NOT NULL DEFAULT 1;  -- 1: no usable frame; 0: BILBO
    """,
    # 9: an alert whose answer was lost after it went out (a timeout, a reset connection, an unreadable answer) may have
    # arrived. The outbox resends it once, saying it may be a repeat; after a second such try it stops and the alert
    # stays "possibly delivered" (sent_ts NULL, unconfirmed 2) instead of being sent again on every tick.
    """
    ALTER TABLE outbox ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;  -- tries that may have arrived, unconfirmed
    """,
    # 10: confirmation frames, and the outbox's claim.
    # A tick whose frame shows eyes open while the wake rule does not hold yet grabs up to
    # CONFIRM_FRAMES more frames CONFIRM_INTERVAL_S apart and stores them as ticks of their own; `confirms` is the id
    # of the awake tick they confirm (NULL for a timer's tick), so the timeline, backtest and corrections see them.
    # Also the outbox's claim: the tick and the cry listener both deliver, so a process marks an alert as being sent
    # (`sending_ts`) before sending it and the other leaves it alone; a claim older than a lease is a process that
    # died mid-send, and the alert is sent again.
    """
    ALTER TABLE ticks ADD COLUMN confirms INTEGER;  -- a confirmation frame: the awake tick it confirms
    ALTER TABLE outbox ADD COLUMN sending_ts REAL;  -- a process is sending it since (wall clock); NULL: nobody
    """,
    # 11: the continuous cry listener (listener/, db/episodes.py). One row per cry episode it heard: when the crying
    # started and stopped, how sure and how loud it got, and the cry alert it raised (in the same transaction as the
    # outbox row; NULL when a cooldown kept it quiet). `end_ts` stays NULL while the episode goes on; `last_ts` is
    # the newest cry-like second, so an episode left open by a killed listener is closed there by the next one.
    """
    CREATE TABLE cry_episodes (
        id                INTEGER PRIMARY KEY,
        start_ts          REAL    NOT NULL,        -- unix seconds: the first cry-like window of the onset
        onset_ts          REAL    NOT NULL,        -- when the rule said "crying" (the alert's moment)
        last_ts           REAL    NOT NULL,        -- the newest cry-like window so far
        end_ts            REAL,                    -- when the episode was over; NULL while it goes on
        peak_probability  REAL    NOT NULL,        -- 0-1, the highest window cry probability
        peak_dbfs         REAL    NOT NULL,        -- the loudest window, dB re full scale
        background_dbfs   REAL,                    -- the room's level at the onset (NULL: too little history)
        alert_id          INTEGER REFERENCES outbox (id)
    );
    CREATE INDEX cry_episodes_start ON cry_episodes (start_ts);
    CREATE INDEX cry_episodes_open ON cry_episodes (id) WHERE end_ts IS NULL;
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
