"""Every SQL statement BILBO runs lives here. Callers get and give dataclasses, never SQL.

The database is opened in WAL mode so the dashboard can read while a tick writes, with a
busy timeout so a briefly locked database waits instead of failing; a database locked for
longer raises `StoreError` with one clear line and nothing is written.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from db.schema import migrate


class StoreError(RuntimeError):
    """The database cannot be opened or written; the message says why in one line."""


class DatabaseMissingError(StoreError):
    """The database file is missing (or empty) while its JSONL backup is not: an empty database started over it would
    lose the history to the next tick (retention's sweep of frames no row names) and reuse the backup's ids."""


class IdTaken(StoreError):
    """A backed-up record's id already holds a different record (db.rebuild reports the line; it writes nothing)."""


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
    # The camera's audio (migration 3); None when the source has no audio or audio is off.
    cry_probability: float | None = None
    dbfs: float | None = None  # RMS loudness of the clip, dB re full scale
    audio_s: float | None = None  # seconds of audio actually recorded
    audio_path: str | None = None  # .wav beside the JPEG, relative to the data dir; only with KEEP_AUDIO
    # When retention (retention.py, migration 4) deleted the JPEG/.wav; the paths above stay as history.
    media_pruned_ts: float | None = None

    @property
    def media_pruned(self) -> bool:
        return self.media_pruned_ts is not None

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
    unconfirmed: int = 0  # tries whose answer was lost after sending (alerts.outbox: it may have arrived)


@dataclass(frozen=True)
class CaptureFailure:
    """A tick that failed (no row in `ticks`), and the "camera unreachable" / "BILBO cannot watch" alert it raised."""

    ts: float
    reason: str  # the error message, credentials redacted
    alert: Alert | None = None
    id: int | None = None
    camera: bool = True  # the camera gave no usable frame; False: BILBO itself failed (models, disk)


@dataclass(frozen=True)
class CameraOutage:
    """The capture failures since the newest stored tick: the camera outage going on now (failures 0: none)."""

    failures: int  # ticks in a row whose capture failed
    since_ts: float | None  # the first of them
    last_ts: float | None  # the newest of them
    reason: str | None  # the newest failure's reason (credentials redacted)
    alerted: bool  # the "camera unreachable" alert of this outage is in the outbox
    camera: bool = True  # every failure of it was the camera's (False: BILBO itself failed at least once)


CORRECTION_FIELDS = ("presence", "eyes", "face_box", "reviewed")
NIGHT_REVIEW_BOOST = 0.25
# Review priority, lowest first: the weakest stage confidence that ran ('unknown' eyes count as 0),
# minus a boost for infrared night frames (the model's weakest data). Must match, character for
# character, the expression of the `ticks_review` index (migration 2, rebuilt in 4 to leave out frames that
# retention removed), so ORDER BY walks the index.
# Teacher disagreement is not a term of this expression (an index cannot look into another table): the review
# queue takes the frames the fallback labeller disagrees with first, through their own partial index
# (`teacher_disagreements`, migration 6), with DISAGREEMENT_BOOST subtracted, so they sort below every other frame.
DISAGREEMENT_BOOST = 2.0
REVIEW_PRIORITY_SQL = (
    "CASE WHEN eyes_label = 'unknown' THEN 0.0 ELSE min(coalesce(presence_conf, 1.0), coalesce(face_conf, 1.0), "
    "coalesce(eyes_conf, 1.0)) END - CASE WHEN night THEN 0.25 ELSE 0.0 END"
)


@dataclass(frozen=True)
class Correction:
    """One human statement about one field of one tick. `value` is decoded JSON."""

    tick_id: int
    field: str
    value: Any
    author: str
    created_ts: float
    id: int | None = None
    undone_ts: float | None = None


@dataclass(frozen=True)
class HumanLabel:
    """What the humans currently say about a tick: the newest not-undone correction per field.

    'reviewed' means "the model was right": it confirms every field nobody corrected.
    """

    tick_id: int
    corrected: dict[str, Any]
    reviewed: bool
    last_ts: float

    def truth(self, tick: TickRow) -> dict[str, Any]:
        """The human-backed value of each field we know; a field absent from the dict is unlabelled."""
        known: dict[str, Any] = {}
        if self.reviewed:
            known = {"presence": tick.presence_label, "eyes": tick.eyes_label, "face_box": tick.face_box}
        known.update(self.corrected)
        if known.get("face_box") is not None:
            known["face_box"] = tuple(known["face_box"])
        return known


def _fold_labels(corrections: Sequence[Correction]) -> dict[int, HumanLabel]:
    """Oldest-first not-undone corrections -> one HumanLabel per tick (the newest per field wins)."""
    labels: dict[int, HumanLabel] = {}
    for c in corrections:
        current = labels.get(c.tick_id) or HumanLabel(c.tick_id, {}, False, c.created_ts)
        corrected = dict(current.corrected)
        if c.field != "reviewed":
            corrected[c.field] = c.value
        labels[c.tick_id] = HumanLabel(
            c.tick_id, corrected, current.reviewed or c.field == "reviewed", max(current.last_ts, c.created_ts)
        )
    return labels


@dataclass(frozen=True)
class TeacherLabel:
    """One call to the fallback labeller (labeller/) about one tick's frame.

    `error` None: a teacher label, in the vocabulary of human corrections. It is training signal only (below
    any human in train.retrain), never an alert and never evaluation. Otherwise a failed attempt, kept so the
    labeller knows when to give up on the frame and the dashboard can say why there is no label."""

    tick_id: int
    ts: float  # when the call was made
    labeller: str  # the server's base URL, credentials redacted
    model: str
    presence: str | None = None  # present | not_present
    eyes: str | None = None  # open | closed | not_visible
    raw: str | None = None  # the answer as received, trimmed
    error: str | None = None
    disagrees: bool = False  # a label whose state differs from the tick's (the review queue puts these first)
    id: int | None = None

    @property
    def state(self) -> str | None:
        """The tick state the teacher's answer means; None for a failed call."""
        if self.error is not None:
            return None
        if self.presence == "not_present":
            return "absent"
        return {"open": "awake", "closed": "asleep"}.get(self.eyes or "", "unknown")

    def truth(self) -> dict[str, Any]:
        """The fields it labels, shaped like HumanLabel.truth ({} for a failed call)."""
        return {} if self.error is not None else {"presence": self.presence, "eyes": self.eyes}


_TICK_COLUMNS = (
    "ts, source, unchanged, diff_score, night, state, presence_label, presence_conf, "
    "face_x1, face_y1, face_x2, face_y2, face_conf, eyes_label, eyes_conf, jpeg_path, model_version, duration_ms, "
    "cry_probability, dbfs, audio_s, audio_path, media_pruned_ts"
)
# The review queue's rows: classified, a frame still on disk, no current human decision (matches ticks_review).
_UNREVIEWED_SQL = (
    "unchanged = 0 AND jpeg_path IS NOT NULL AND media_pruned_ts IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.tick_id = t.id AND c.undone_ts IS NULL)"
)
# The JSONL backups that live beside the database (settings.py names them; tests/test_missing_database.py checks).
BACKUP_NAMES = ("ticks.jsonl", "corrections.jsonl", "teacher_labels.jsonl")
FULL_DISK_BYTES = 1024 * 1024  # less free than this, and a failure to open the database is blamed on the disk
# Tries whose answer was lost after sending before an alert stops being sent: the first one is resent once, saying it
# may be a repeat; after the second it stays "possibly delivered" (alerts/outbox.py).
MAX_UNCONFIRMED = 2
_OUTBOX_COLUMNS = "id, kind, caption, photo_path, created_ts, tick_id, attempts, last_error, sent_ts, unconfirmed"


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
        row.cry_probability,
        row.dbfs,
        row.audio_s,
        row.audio_path,
        row.media_pruned_ts,
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
        cry_probability=r["cry_probability"],
        dbfs=r["dbfs"],
        audio_s=r["audio_s"],
        audio_path=r["audio_path"],
        media_pruned_ts=r["media_pruned_ts"],
    )


def _correction_from_sql(r: sqlite3.Row) -> Correction:
    return Correction(
        id=r["id"],
        tick_id=r["tick_id"],
        field=r["field"],
        value=json.loads(r["value"]),
        author=r["author"],
        created_ts=r["created_ts"],
        undone_ts=r["undone_ts"],
    )


_CORRECTION_COLUMNS = "c.id, c.tick_id, c.field, c.value, c.author, c.created_ts, c.undone_ts"


_TEACHER_COLUMNS = "id, tick_id, ts, labeller, model, presence, eyes, raw, error, disagrees"
# Ticks the fallback labeller disagrees with (the partial index `teacher_disagreements`, migration 6).
_DISPUTED_SQL = "t.id IN (SELECT tick_id FROM teacher_labels WHERE error IS NULL AND disagrees = 1)"


def newest_teacher_label(history: Sequence[TeacherLabel]) -> TeacherLabel | None:
    """The newest call of a tick's history (oldest first) that gave a label; None if none did."""
    return next((t for t in reversed(history) if t.error is None), None)


def _teacher_values(label: TeacherLabel) -> tuple:
    """The label's values in _TEACHER_COLUMNS order (id None: SQLite assigns one)."""
    return (label.id, label.tick_id, label.ts, label.labeller, label.model, label.presence, label.eyes, label.raw,
            label.error, int(label.disagrees))  # fmt: skip


def _teacher_from_sql(r: sqlite3.Row) -> TeacherLabel:
    return TeacherLabel(**{**{key: r[key] for key in r.keys()}, "disagrees": bool(r["disagrees"])})  # noqa: SIM118


def _insert_keeping_id(
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


def _import_alert(conn: sqlite3.Connection, alert: Alert) -> bool:
    """Insert a backed-up alert keeping its id; one already there (the same alert) is kept as it is."""
    return _insert_keeping_id(
        conn, "outbox", _OUTBOX_COLUMNS,
        (alert.id, alert.kind, alert.caption, alert.photo_path, alert.created_ts, alert.tick_id,
         alert.attempts, alert.last_error, alert.sent_ts, alert.unconfirmed),
        frozenset({"attempts", "last_error", "sent_ts", "unconfirmed"}),
    )  # fmt: skip


def _alert_from_sql(r: sqlite3.Row) -> Alert:
    return Alert(**{key: r[key] for key in r.keys()})  # noqa: SIM118 - sqlite3.Row has no iteration over keys


def _full_disk_hint(path: Path) -> str:
    """Why SQLite said "disk I/O error" when the real cause is a full disk (WAL mode must create its -shm file)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    if free >= FULL_DISK_BYTES:
        return ""
    return (
        f" (the disk holding {path.parent} is full: {free // 1024} KB free; free some space and the next tick goes on)"
    )


def _size(path: Path) -> int:
    """The bytes of a regular file; 0 for none (a folder in a backup's place holds no lines)."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def refuse_empty_over_backup(path: Path) -> None:
    """Raise DatabaseMissingError when `path` holds no database (missing, or a 0-byte file) while a backup beside it
    holds lines (Store.open's guard; `monitor.py --check` may ask the same)."""
    if _size(path):
        return
    if backups := [backup for name in BACKUP_NAMES if _size(backup := path.parent / name)]:
        raise DatabaseMissingError(
            f"database {path} is missing and its backup {backups[0].name} is not empty: rebuild it with "
            "`.venv/bin/python -m db.rebuild` in the BILBO folder (add --config .env.NAME for another camera); "
            "BILBO will not start an empty one (that would lose the history)"
        )


class Store:
    """A connection to BILBO's SQLite file. Use as a context manager so it is always closed."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, busy_timeout_s: float = 5.0, restoring: bool = False) -> Store:
        """Open (creating if needed) and migrate. Raises StoreError with the reason.

        A missing (or empty) file is created only while the JSONL backups beside it are empty too: otherwise it was
        lost or moved aside and must be rebuilt from them (DatabaseMissingError says how), never started empty.
        `restoring`: db.rebuild, which fills the new file from those backups."""
        if not restoring:
            refuse_empty_over_backup(path)
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except (sqlite3.Error, RuntimeError) as exc:
            raise StoreError(f"database {path} cannot be opened: {exc}{_full_disk_hint(path)}") from None
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Several writes as one transaction (a row and its backup line): all of them land or none does."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands or none of it does. Inside `atomic` it joins that transaction."""
        if self._conn.in_transaction:
            yield self._conn
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"database {self.path} is busy ({exc}); nothing written, the next tick retries") from None
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:  # a full disk makes SQLite roll back by itself, COMMIT included
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"database {self.path} write failed: {exc}; nothing written") from None
            raise

    # --- ticks -------------------------------------------------------------------------------

    def insert_tick(self, row: TickRow, alerts: Sequence[Alert] = ()) -> int:
        """Store a tick and the alerts it raised in one transaction; returns the tick id.

        A stored tick ends the camera outage before it: its capture failures are deleted in the same
        transaction, so `capture_failures` only ever holds the outage going on now. All of them, whatever their
        stamps: a clock that jumped back must neither keep an ended outage alive nor hide the next one."""
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
            conn.execute("DELETE FROM capture_failures")
        return tick_id

    def insert_ticks(self, rows: Sequence[TickRow]) -> None:
        """Insert many ticks in one transaction (benchmarks, bulk imports); all land or none do."""
        if not rows:
            return
        placeholders = ", ".join("?" * len(_tick_params(rows[0])))
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO ticks ({_TICK_COLUMNS}) VALUES ({placeholders})", [_tick_params(r) for r in rows]
            )

    def import_tick(self, row: TickRow, alerts: Sequence[Alert] = ()) -> bool:
        """Insert a tick and the alerts it raised keeping their ids (rebuild from the JSONL backup); like
        `insert_tick`, it ends the outage before it, so a rebuilt `capture_failures` holds only the outage that was
        going on at the end. A tick line that comes again (a retried backup append) changes nothing and returns
        False: later lines, e.g. its "pruned" mark or an alert's delivery, stand. Raises IdTaken (nothing written)
        when its id, or one of its alerts' ids, holds a different record."""
        with self._write() as conn:
            values = (row.id, *_tick_params(row))
            if not _insert_keeping_id(conn, "ticks", f"id, {_TICK_COLUMNS}", values, frozenset({"media_pruned_ts"})):
                return False
            for alert in alerts:
                _import_alert(conn, alert)
            conn.execute("DELETE FROM capture_failures WHERE ts <= ?", (row.ts,))
        return True

    def last_moving_ts(self, still_below: float) -> float | None:
        """When the newest tick whose picture moved (diff_score >= still_below, or no reference) was taken."""
        r = self._conn.execute(
            "SELECT ts FROM ticks WHERE diff_score IS NULL OR diff_score >= ? ORDER BY id DESC LIMIT 1", (still_below,)
        ).fetchone()
        return r[0] if r else None

    def tick(self, tick_id: int) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE id = ?", (tick_id,)).fetchone()
        return _tick_from_sql(r) if r else None

    def last_tick(self) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {_TICK_COLUMNS} FROM ticks ORDER BY id DESC LIMIT 1").fetchone()
        return _tick_from_sql(r) if r else None

    def last_classified(self) -> TickRow | None:
        """The newest tick whose models ran: the result an unchanged frame reuses."""
        rows = self.recent_classified(1)
        return rows[0] if rows else None

    def recent_classified(self, n: int) -> list[TickRow]:
        """The newest n ticks whose models ran, oldest first (input of the alert rules)."""
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE unchanged = 0 ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
        return [_tick_from_sql(r) for r in reversed(rows)]

    def recent_ticks(self, n: int) -> list[TickRow]:
        """The newest n ticks, unchanged frames included, oldest first (input of the cry rule: audio is
        new evidence on every tick)."""
        rows = self._conn.execute(f"SELECT id, {_TICK_COLUMNS} FROM ticks ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [_tick_from_sql(r) for r in reversed(rows)]

    def last_reference_jpeg(self) -> str | None:
        """The newest kept JPEG: what the pixel diff compares against."""
        r = self._conn.execute(
            "SELECT jpeg_path FROM ticks WHERE jpeg_path IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return r["jpeg_path"] if r else None

    def ticks_between(self, start_ts: float, end_ts: float) -> list[TickRow]:
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE ts >= ? AND ts < ? ORDER BY ts, id", (start_ts, end_ts)
        ).fetchall()
        return [_tick_from_sql(r) for r in rows]

    def media_paths_between(self, start_ts: float, end_ts: float) -> set[str]:
        """Every JPEG/.wav path the ticks in [start_ts, end_ts) point at (retention's sweep of left-over files)."""
        rows = self._conn.execute(
            "SELECT jpeg_path, audio_path FROM ticks WHERE ts >= ? AND ts < ?", (start_ts, end_ts)
        ).fetchall()
        return {path for r in rows for path in (r[0], r[1]) if path}

    def timeline_points(self, start_ts: float, end_ts: float) -> list[dict[str, Any]]:
        """Ticks in [start_ts, end_ts) as JSON-ready dicts (the dashboard's hot path).

        Same content as TickRow.to_json() minus jpeg_path, plus has_jpeg (false once retention removed it).
        Plain tuples and dicts instead of sqlite3.Row and frozen dataclasses: a day of ticks in well under 2 ms.
        """
        cursor = self._conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE ts >= ? AND ts < ? ORDER BY ts, id", (start_ts, end_ts)
        ).fetchall()
        points = []
        for (tid, ts, source, unchanged, diff, night, state, p_label, p_conf, x1, y1, x2, y2, f_conf, e_label, e_conf,
             jpeg, version, duration, cry, level, audio_s, audio_path, pruned) in rows:  # fmt: skip
            points.append(
                {
                    "id": tid,
                    "ts": ts,
                    "source": source,
                    "unchanged": bool(unchanged),
                    "diff_score": diff,
                    "night": bool(night),
                    "state": state,
                    "presence_label": p_label,
                    "presence_conf": p_conf,
                    "face_box": None if x1 is None else [x1, y1, x2, y2],
                    "face_conf": f_conf,
                    "eyes_label": e_label,
                    "eyes_conf": e_conf,
                    "has_jpeg": jpeg is not None and pruned is None,
                    "model_version": version,
                    "duration_ms": duration,
                    "cry_probability": cry,
                    "dbfs": level,
                    "audio_s": audio_s,
                    "audio_path": audio_path,
                    "media_pruned_ts": pruned,
                }
            )
        return points

    def count_ticks(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]

    # --- retention (retention.py) ------------------------------------------------------------

    @staticmethod
    def _prunable_sql(before_ts: float | None, after: tuple[float, int] | None) -> tuple[str, list]:
        """Ticks whose files retention may delete. The first WHERE term is the `ticks_prunable` index's own.

        Never: a tick with any correction row (labelled frames are kept, even a decision later undone), the
        newest tick with a JPEG (the pixel diff's reference, `last_reference_jpeg`), nor a JPEG that an unsent
        alert will attach (the outbox retries it; the parent should still get the snapshot). By age (`before_ts`
        set) also never a frame the fallback labeller labelled: the retrain trains on it, and the labeller's
        hourly cap bounds how many there are; short of disk they may go, oldest first, unlike a human's.
        """
        where = [
            "media_pruned_ts IS NULL AND (jpeg_path IS NOT NULL OR audio_path IS NOT NULL)",
            "NOT EXISTS (SELECT 1 FROM corrections c WHERE c.tick_id = t.id)",
            f"NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_ts IS NULL AND o.unconfirmed < {MAX_UNCONFIRMED} "
            "AND o.photo_path = t.jpeg_path)",
            "t.id IS NOT (SELECT id FROM ticks WHERE jpeg_path IS NOT NULL ORDER BY id DESC LIMIT 1)",
        ]
        params: list = []
        if before_ts is not None:
            where.append("ts < ?")
            params.append(before_ts)
            where.append("NOT EXISTS (SELECT 1 FROM teacher_labels l WHERE l.tick_id = t.id AND l.error IS NULL)")
        if after is not None:
            where.append("(ts, id) > (?, ?)")
            params.extend(after)
        return f"SELECT id, {_TICK_COLUMNS} FROM ticks t WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?", params

    def prunable_media(
        self, before_ts: float | None, limit: int, after: tuple[float, int] | None = None
    ) -> list[TickRow]:
        """Up to `limit` ticks whose kept JPEG/.wav retention may delete, oldest first.

        `before_ts` None: any age (the disk is short of space). `after` (ts, id): continue past the rows a
        pass already handled, so files it could not delete never make it loop.
        """
        sql, params = self._prunable_sql(before_ts, after)
        return [_tick_from_sql(r) for r in self._conn.execute(sql, (*params, limit)).fetchall()]

    def prunable_media_plan(self) -> str:
        """EXPLAIN QUERY PLAN of the retention walk (tests assert it uses its index)."""
        sql, params = self._prunable_sql(0.0, (0.0, 0))
        return "\n".join(r["detail"] for r in self._conn.execute(f"EXPLAIN QUERY PLAN {sql}", (*params, 10)))

    def mark_media_pruned(self, ids: Sequence[int], ts: float) -> None:
        """Record that retention deleted these ticks' files (the paths stay as history)."""
        if not ids:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE ticks SET media_pruned_ts = ? WHERE id = ? AND media_pruned_ts IS NULL", [(ts, i) for i in ids]
            )

    # --- camera health (capture failures) ----------------------------------------------------

    def add_capture_failure(
        self, ts: float, reason: str, alert: Alert | None = None, *, camera: bool = True
    ) -> CaptureFailure:
        """Record a failed tick, and the outage alert it raised (if any), in one transaction.

        Returns it as stored, ids included: the JSONL backup line must name the ids the rebuild restores."""
        with self._write() as conn:
            alert_id = None
            if alert is not None:
                alert_id = conn.execute(
                    "INSERT INTO outbox (created_ts, kind, caption, photo_path) VALUES (?, ?, ?, ?)",
                    (alert.created_ts, alert.kind, alert.caption, alert.photo_path),
                ).lastrowid
            failure_id = conn.execute(
                "INSERT INTO capture_failures (ts, reason, alert_id, camera) VALUES (?, ?, ?, ?)",
                (ts, reason, alert_id, int(camera)),
            ).lastrowid
        stored_alert = None if alert is None else replace(alert, id=alert_id)
        return CaptureFailure(ts, reason, stored_alert, failure_id, camera)

    def import_capture_failure(self, failure: CaptureFailure) -> None:
        """Insert a capture failure and its alert keeping their ids (rebuild from the JSONL backup). Importing one
        twice changes nothing: the alert row, once there, is kept as it is."""
        with self._write() as conn:
            if (alert := failure.alert) is not None:
                _import_alert(conn, alert)
            conn.execute(
                "INSERT OR REPLACE INTO capture_failures (id, ts, reason, alert_id, camera) VALUES (?, ?, ?, ?, ?)",
                (failure.id, failure.ts, failure.reason, alert.id if alert else None, int(failure.camera)),
            )

    def camera_outage(self) -> CameraOutage:
        """The capture failures since the newest stored tick (all of them before the first tick ever).

        Raises StoreError (not a raw sqlite3 error) so a tick that failed already can log one line and go on."""
        try:
            summary = self._conn.execute(
                "SELECT count(*) AS failures, min(ts) AS since_ts, max(ts) AS last_ts, "
                "count(alert_id) AS alerts, min(camera) AS camera FROM capture_failures"
            ).fetchone()
            newest = self._conn.execute("SELECT reason FROM capture_failures ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path} could not be read: {exc}") from None
        return CameraOutage(
            failures=summary["failures"],
            since_ts=summary["since_ts"],
            last_ts=summary["last_ts"],
            reason=newest["reason"] if newest else None,
            alerted=summary["alerts"] > 0,
            camera=summary["camera"] != 0,  # NULL (no failure) counts as the camera's
        )

    # --- alerts ------------------------------------------------------------------------------

    def pending_alerts(self) -> list[Alert]:
        """Alerts still to send, oldest first: not confirmed, and not given up as possibly delivered."""
        rows = self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE sent_ts IS NULL AND unconfirmed < ? ORDER BY id",
            (MAX_UNCONFIRMED,),
        ).fetchall()
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
        """The newest alert of `kind`, combined alerts included ('wake+cry' counts as a wake and as a cry)."""
        r = self._conn.execute(
            "SELECT created_ts FROM outbox WHERE kind = ? OR '+' || kind || '+' LIKE '%+' || ? || '+%' "
            "ORDER BY id DESC LIMIT 1",
            (kind, kind),
        ).fetchone()
        return r[0] if r else None

    def mark_sent(self, alert_id: int, sent_ts: float) -> None:
        with self._write() as conn:
            conn.execute("UPDATE outbox SET sent_ts = ?, attempts = attempts + 1 WHERE id = ?", (sent_ts, alert_id))

    def alerts_of_tick(self, tick_id: int) -> list[Alert]:
        """The alerts a tick raised (for its backup line)."""
        rows = self._conn.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE tick_id = ? ORDER BY id", (tick_id,)
        ).fetchall()
        return [_alert_from_sql(r) for r in rows]

    def import_delivery(self, alert_id: int, sent_ts: float, attempts: int) -> None:
        """Record that a restored alert was delivered (rebuild from the backup's "alert_sent" line)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET sent_ts = ?, attempts = ?, last_error = NULL WHERE id = ?",
                (sent_ts, attempts, alert_id),
            )

    def mark_failed(self, alert_id: int, error: str, *, maybe_sent: bool = False) -> None:
        """A failed try; `maybe_sent`: the answer was lost after the alert went out, so it may have arrived."""
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, unconfirmed = unconfirmed + ? WHERE id = ?",
                (error, int(maybe_sent), alert_id),
            )

    # --- JSONL backup lines waiting to be written (db/jsonl.py) ------------------------------

    def queue_backup(self, path: Path, lines: Sequence[str], now: float) -> None:
        """Queue backup lines for `path`; inside `atomic`, with the data they mirror, so no kill can separate them."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO backup_waiting (path, line, created_ts) VALUES (?, ?, ?)",
                [(str(path), line, now) for line in lines],
            )

    def append_backup(self, path: Path, append: Callable[[Path, Sequence[str]], None]) -> OSError | None:
        """Append `path`'s waiting lines in order and delete them, holding the write lock so two writers (the tick
        and the dashboard) never append the same line twice. Returns None, or the OSError (the lines stay)."""
        with self._write() as conn:
            waiting = conn.execute(
                "SELECT id, line FROM backup_waiting WHERE path = ? ORDER BY id", (str(path),)
            ).fetchall()
            if not waiting:
                return None
            try:
                append(path, [w["line"] for w in waiting])
            except OSError as exc:
                conn.execute("UPDATE backup_waiting SET error = ? WHERE path = ?", (str(exc), str(path)))
                return exc
            conn.execute("DELETE FROM backup_waiting WHERE path = ? AND id <= ?", (str(path), waiting[-1]["id"]))
        return None

    def backup_waiting(self) -> dict[Path, int]:
        """How many lines wait for each backup file (none: every backup is complete)."""
        rows = self._conn.execute("SELECT path, COUNT(*) FROM backup_waiting GROUP BY path ORDER BY path").fetchall()
        return {Path(r[0]): r[1] for r in rows}

    # --- corrections (human labels) ----------------------------------------------------------

    def add_corrections(self, tick_id: int, changes: Sequence[tuple[str, Any]], author: str, now: float) -> list[int]:
        """Store one human decision (one or more field values) atomically; `ticks` is never touched."""
        for field, _ in changes:
            if field not in CORRECTION_FIELDS:
                raise ValueError(f"unknown correction field {field!r}")
        with self._write() as conn:
            return [
                conn.execute(
                    "INSERT INTO corrections (tick_id, field, value, author, created_ts) VALUES (?, ?, ?, ?, ?)",
                    (tick_id, field, json.dumps(value), author, now),
                ).lastrowid
                for field, value in changes
            ]

    def undo_last_decision(self, tick_id: int, now: float) -> list[Correction]:
        """Mark the tick's newest not-undone decision (rows sharing its created_ts) undone; returns them."""
        with self._write() as conn:
            newest = conn.execute(
                "SELECT max(created_ts) FROM corrections WHERE tick_id = ? AND undone_ts IS NULL", (tick_id,)
            ).fetchone()[0]
            if newest is None:
                return []
            rows = conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections c "
                "WHERE c.tick_id = ? AND c.undone_ts IS NULL AND c.created_ts = ? ORDER BY c.id",
                (tick_id, newest),
            ).fetchall()
            conn.execute(
                "UPDATE corrections SET undone_ts = ? WHERE tick_id = ? AND undone_ts IS NULL AND created_ts = ?",
                (now, tick_id, newest),
            )
        return [_correction_from_sql(r) for r in rows]

    def import_correction(self, correction: Correction) -> bool:
        """Insert a correction keeping its id and undo state (rebuild from the JSONL backup). One that comes again
        (a retried backup append) changes nothing and returns False, so a later "undo" line stands; IdTaken when its
        id holds a different correction."""
        with self._write() as conn:
            return _insert_keeping_id(
                conn,
                "corrections",
                "id, tick_id, field, value, author, created_ts, undone_ts",
                (
                    correction.id,
                    correction.tick_id,
                    correction.field,
                    json.dumps(correction.value),
                    correction.author,
                    correction.created_ts,
                    correction.undone_ts,
                ),
                frozenset({"undone_ts"}),
            )

    def mark_corrections_undone(self, ids: Sequence[int], undone_ts: float) -> None:
        with self._write() as conn:
            conn.executemany("UPDATE corrections SET undone_ts = ? WHERE id = ?", [(undone_ts, i) for i in ids])

    def corrections(self, tick_id: int) -> list[Correction]:
        """The tick's whole correction history, undone ones included, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections c WHERE c.tick_id = ? ORDER BY c.id", (tick_id,)
        ).fetchall()
        return [_correction_from_sql(r) for r in rows]

    def human_label(self, tick_id: int) -> HumanLabel | None:
        return _fold_labels([c for c in self.corrections(tick_id) if c.undone_ts is None]).get(tick_id)

    def human_labels_between(self, start_ts: float, end_ts: float) -> dict[int, HumanLabel]:
        """Current human labels of the ticks in [start_ts, end_ts), keyed by tick id."""
        rows = self._conn.execute(
            f"SELECT {_CORRECTION_COLUMNS} FROM ticks t JOIN corrections c ON c.tick_id = t.id "
            "WHERE t.ts >= ? AND t.ts < ? AND c.undone_ts IS NULL ORDER BY c.id",
            (start_ts, end_ts),
        ).fetchall()
        return _fold_labels([_correction_from_sql(r) for r in rows])

    def labelled_ticks(self) -> list[tuple[TickRow, HumanLabel]]:
        """Every tick a human has reviewed or corrected (the only ground truth metrics may use), by time."""
        rows = self._conn.execute(
            f"SELECT {_CORRECTION_COLUMNS} FROM corrections c WHERE c.undone_ts IS NULL ORDER BY c.id"
        ).fetchall()
        labels = _fold_labels([_correction_from_sql(r) for r in rows])
        ticks = [self.tick(tick_id) for tick_id in labels]
        return sorted(((t, labels[t.id]) for t in ticks if t is not None), key=lambda pair: pair[0].ts)

    def review_queue(self, limit: int) -> list[tuple[TickRow, float]]:
        """Unreviewed classified ticks with a JPEG still on disk, most worth a human look first, with their priority.

        First the frames the fallback labeller disagrees with (priority lowered by DISAGREEMENT_BOOST: one click
        confirms or refutes the teacher), then the rest by walking the partial expression index `ticks_review` in
        order. Both stop after `limit` rows, so the cost does not grow with the size of the history.
        """
        disputed = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS}, {REVIEW_PRIORITY_SQL} - {DISAGREEMENT_BOOST} AS priority FROM ticks t "
            f"WHERE {_DISPUTED_SQL} AND {_UNREVIEWED_SQL} ORDER BY priority, ts LIMIT ?",
            (limit,),
        ).fetchall()
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS}, {REVIEW_PRIORITY_SQL} AS priority FROM ticks t "
            f"WHERE {_UNREVIEWED_SQL} ORDER BY {REVIEW_PRIORITY_SQL}, ts LIMIT ?",
            (limit + len(disputed),),
        ).fetchall()
        first = {r["id"] for r in disputed}
        ranked = [*disputed, *(r for r in rows if r["id"] not in first)][:limit]
        return [(_tick_from_sql(r), r["priority"]) for r in ranked]

    def review_queue_plan(self) -> str:
        """EXPLAIN QUERY PLAN of the review queue (tests assert it uses the index)."""
        rows = self._conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM ticks t WHERE {_UNREVIEWED_SQL} "
            f"ORDER BY {REVIEW_PRIORITY_SQL}, ts LIMIT 10"
        ).fetchall()
        return "\n".join(r["detail"] for r in rows)

    def count_unreviewed(self, cap: int = 1000) -> int:
        """How many classified frames with a JPEG nobody has looked at yet, counted up to `cap`
        (a year holds ~90k: counting them all costs 30 ms and "1000+" says the same to a parent)."""
        return self._conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM ticks t WHERE {_UNREVIEWED_SQL} LIMIT ?)",
            (cap,),
        ).fetchone()[0]

    # --- teacher labels (the fallback labeller, labeller/) ------------------------------------

    def teacher_candidates(self, since_ts: float, max_attempts: int, limit: int = 1000) -> list[TickRow]:
        """Ticks the fallback labeller may still ask about, oldest first: classified at or after `since_ts`, the
        frame kept, no current human decision (a human beats any teacher), no teacher label yet and fewer than
        `max_attempts` failed calls. Whether the cascade could see the frame is labeller.fallback's rule."""
        rows = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks t WHERE ts >= ? AND {_UNREVIEWED_SQL} "
            "AND NOT EXISTS (SELECT 1 FROM teacher_labels l WHERE l.tick_id = t.id AND l.error IS NULL) "
            "AND (SELECT count(*) FROM teacher_labels l WHERE l.tick_id = t.id) < ? ORDER BY ts, id LIMIT ?",
            (since_ts, max_attempts, limit),
        ).fetchall()
        return [_tick_from_sql(r) for r in rows]

    def add_teacher_label(self, label: TeacherLabel) -> int:
        """Append one call's outcome (a label or a failed attempt); returns its id (a new one unless `label.id` is
        set: the rebuild from the JSONL backup keeps the ids it reads)."""
        values = _teacher_values(label)
        with self._write() as conn:
            return conn.execute(
                f"INSERT OR REPLACE INTO teacher_labels ({_TEACHER_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
                values,
            ).lastrowid

    def import_teacher_label(self, label: TeacherLabel) -> bool:
        """Insert a call's outcome keeping its id (rebuild from the JSONL backup): False when it is there already,
        IdTaken when its id holds a different call."""
        with self._write() as conn:
            return _insert_keeping_id(conn, "teacher_labels", _TEACHER_COLUMNS, _teacher_values(label))

    def teacher_calls_since(self, ts: float) -> int:
        """Calls made to the fallback labeller at or after `ts`, failed ones included (its per-hour cap)."""
        return self._conn.execute("SELECT count(*) FROM teacher_labels WHERE ts >= ?", (ts,)).fetchone()[0]

    def teacher_history(self, tick_id: int) -> list[TeacherLabel]:
        """Every call about this tick's frame, oldest first."""
        return self.teacher_histories([tick_id])[tick_id]

    def teacher_histories(self, tick_ids: Sequence[int]) -> dict[int, list[TeacherLabel]]:
        """teacher_history of each of these ticks (at most a review queue's page), in one query."""
        histories: dict[int, list[TeacherLabel]] = {tick_id: [] for tick_id in tick_ids}
        marks = ", ".join("?" * len(histories))
        rows = self._conn.execute(
            f"SELECT {_TEACHER_COLUMNS} FROM teacher_labels WHERE tick_id IN ({marks}) ORDER BY id", list(histories)
        ).fetchall()
        for r in rows:
            histories[r["tick_id"]].append(_teacher_from_sql(r))
        return histories

    def teacher_label(self, tick_id: int) -> TeacherLabel | None:
        """The tick's teacher label (None: never asked, or no call succeeded)."""
        return newest_teacher_label(self.teacher_history(tick_id))

    def teacher_labelled_ticks(self) -> list[tuple[TickRow, TeacherLabel]]:
        """Every tick with a teacher label, by time (train.retrain: training signal below any human label)."""
        rows = self._conn.execute(
            f"SELECT {_TEACHER_COLUMNS} FROM teacher_labels WHERE error IS NULL ORDER BY id"
        ).fetchall()
        labels = {r["tick_id"]: _teacher_from_sql(r) for r in rows}  # the newest wins
        ticks = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks t WHERE t.id IN "
            "(SELECT tick_id FROM teacher_labels WHERE error IS NULL) ORDER BY ts, id"
        ).fetchall()
        return [(tick, labels[tick.id]) for tick in map(_tick_from_sql, ticks)]

    def neighbour_tick(self, tick_id: int, direction: int) -> TickRow | None:
        """The tick just before (-1) or after (+1) this one in time, for keyboard prev/next."""
        here = self.tick(tick_id)
        if here is None:
            return None
        op, order = ("<", "DESC") if direction < 0 else (">", "ASC")
        r = self._conn.execute(
            f"SELECT id, {_TICK_COLUMNS} FROM ticks WHERE (ts, id) {op} (?, ?) ORDER BY ts {order}, id {order} LIMIT 1",
            (here.ts, here.id),
        ).fetchone()
        return _tick_from_sql(r) if r else None
