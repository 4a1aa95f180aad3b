"""A database as an older BILBO left it: the first `version` migrations only (for the migration tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db.schema import MIGRATIONS


def database_at_version(path: Path, version: int) -> sqlite3.Connection:
    """Create `path` with migrations 1..version applied, as that release did; the caller adds rows and closes."""
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    return conn
