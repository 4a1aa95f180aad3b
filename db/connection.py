"""One SQLite connection and its write transactions, shared by the query modules of db/ (mixins of Store).

Writes go through `_write`: BEGIN IMMEDIATE, so a briefly locked database waits (busy timeout) and a database
locked for longer raises `StoreError` with one clear line and nothing written; a failing write rolls back whole.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self


class StoreError(RuntimeError):
    """The database cannot be opened or written; the message says why in one line."""


class DatabaseMissingError(StoreError):
    """The database file is missing (or empty) while its JSONL backup is not: an empty database started over it would
    lose the history to the next tick (retention's sweep of frames no row names) and reuse the backup's ids."""


class IdTaken(StoreError):
    """A backed-up record's id already holds a different record (db.rebuild reports the line; it writes nothing)."""


FULL_DISK_BYTES = 1024 * 1024  # less free than this, and a failure to open the database is blamed on the disk


def full_disk_hint(path: Path) -> str:
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


class Connection:
    """A connection to BILBO's SQLite file. Use as a context manager so it is always closed."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Several writes as one transaction (a row and its backup line): all of them land or none does."""
        with self._write():
            yield

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Rows of one query; a broken or locked file raises StoreError (one line), never a raw sqlite3 error."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path} could not be read: {exc}") from None

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
