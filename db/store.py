"""Every SQL statement BILBO runs lives in db/: this module's Store, whose queries are split by concern
(db/ticks.py, db/alert_queries.py, db/label_queries.py, db/episodes.py). Callers get and give dataclasses, never SQL.

The database is opened in WAL mode so the dashboard can read while a tick writes, with a
busy timeout so a briefly locked database waits instead of failing; a database locked for
longer raises `StoreError` with one clear line and nothing is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db.alert_queries import AlertQueries
from db.connection import DatabaseMissingError, IdTaken, StoreError, full_disk_hint
from db.episodes import EpisodeQueries
from db.label_queries import DISAGREEMENT_BOOST, NIGHT_REVIEW_BOOST, REVIEW_PRIORITY_SQL, LabelQueries
from db.records import (
    CORRECTION_FIELDS,
    Alert,
    CameraOutage,
    CaptureFailure,
    Correction,
    CryEpisode,
    HumanLabel,
    TeacherLabel,
    TickRow,
    newest_teacher_label,
)
from db.rows import MAX_UNCONFIRMED
from db.schema import migrate
from db.ticks import TickQueries

__all__ = [
    "BACKUP_NAMES",
    "CORRECTION_FIELDS",
    "DISAGREEMENT_BOOST",
    "MAX_UNCONFIRMED",
    "NIGHT_REVIEW_BOOST",
    "REVIEW_PRIORITY_SQL",
    "Alert",
    "CameraOutage",
    "CaptureFailure",
    "Correction",
    "CryEpisode",
    "DatabaseMissingError",
    "HumanLabel",
    "IdTaken",
    "Store",
    "StoreError",
    "TeacherLabel",
    "TickRow",
    "newest_teacher_label",
    "refuse_empty_over_backup",
]

# The JSONL backups that live beside the database (settings.py names them; tests/test_missing_database.py checks).
BACKUP_NAMES = ("ticks.jsonl", "corrections.jsonl", "teacher_labels.jsonl")


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


class Store(TickQueries, AlertQueries, LabelQueries, EpisodeQueries):
    """BILBO's database: open it with `Store.open` and use it as a context manager so it is always closed."""

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
            raise StoreError(f"database {path} cannot be opened: {exc}{full_disk_hint(path)}") from None
        return cls(conn, path)
