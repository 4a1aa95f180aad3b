"""Rebuild the SQLite database from the JSONL backups (ticks, then human corrections).

    python -m db.rebuild [--jsonl data/ticks.jsonl] [--corrections data/corrections.jsonl] [--db data/bilbo.sqlite3]

Refuses to overwrite an existing database file: move it aside first, so nothing is lost by a typo.
Bad lines (a torn last line after a power cut) are reported and skipped. Alerts are not rebuilt:
they were delivered (or are lost with the database) and re-sending old ones would mislead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from db import jsonl
from db.store import Correction, Store, StoreError
from settings import SettingsError, load_settings


def _replay_corrections(store: Store, path: Path, problems: list[str]) -> int:
    replayed = 0
    for number, record, error in jsonl.read_records(path):
        try:
            if record is None:
                raise ValueError(error)
            op = record.pop("op", None)
            if op == "add":
                store.import_correction(Correction(**record))
            elif op == "undo":
                store.mark_corrections_undone(record["ids"], record["undone_ts"])
            else:
                raise ValueError(f"unknown op {op!r}")
            replayed += 1
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            problems.append(f"{path}:{number}: skipped ({exc})")
    return replayed


def rebuild(jsonl_path: Path, db_path: Path, corrections_path: Path | None = None) -> tuple[int, list[str]]:
    """Returns (ticks imported, problems). Corrections are replayed when their backup exists."""
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
        if corrections_path is not None and corrections_path.exists():
            _replay_corrections(store, corrections_path, problems)
    return imported, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", type=Path, help="tick backup to read (default: DATA_DIR/ticks.jsonl)")
    parser.add_argument("--corrections", type=Path, help="corrections backup (default: DATA_DIR/corrections.jsonl)")
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
        imported, problems = rebuild(jsonl_path, db_path, args.corrections or settings.corrections_jsonl_path)
    except (StoreError, OSError) as exc:
        print(f"bilbo: rebuild failed: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"rebuilt {db_path} with {imported} ticks from {jsonl_path} ({len(problems)} bad lines skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
