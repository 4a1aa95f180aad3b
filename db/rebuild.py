"""Rebuild the SQLite database from the JSONL backup.

    python -m db.rebuild [--jsonl data/ticks.jsonl] [--db data/bilbo.sqlite3]

Refuses to overwrite an existing database file: move it aside first, so nothing is lost by a typo.
Bad lines (a torn last line after a power cut) are reported and skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from db import jsonl
from db.store import Store, StoreError
from settings import SettingsError, load_settings


def rebuild(jsonl_path: Path, db_path: Path) -> tuple[int, list[str]]:
    """Returns (rows imported, problems)."""
    if db_path.exists():
        raise StoreError(f"{db_path} exists: move it aside before rebuilding (nothing was changed)")
    problems: list[str] = []
    imported = 0
    with Store.open(db_path) as store:
        for number, row, error in jsonl.read(jsonl_path):
            if row is None:
                problems.append(f"{jsonl_path}:{number}: skipped ({error})")
                continue
            store.import_tick(row)
            imported += 1
    return imported, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", type=Path, help="backup to read (default: DATA_DIR/ticks.jsonl)")
    parser.add_argument("--db", type=Path, help="database to create (default: DATA_DIR/bilbo.sqlite3)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bilbo: {exc}", file=sys.stderr)
        return 2
    jsonl_path = args.jsonl or settings.jsonl_path
    db_path = args.db or settings.db_path
    try:
        imported, problems = rebuild(jsonl_path, db_path)
    except (StoreError, OSError) as exc:
        print(f"bilbo: rebuild failed: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"rebuilt {db_path} with {imported} ticks from {jsonl_path} ({len(problems)} bad lines skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
