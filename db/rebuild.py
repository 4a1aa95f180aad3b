"""Rebuild the SQLite database from the JSONL backups (ticks, then human corrections, then the fallback labeller's
calls).

    python -m db.rebuild [--jsonl data/ticks.jsonl] [--corrections data/corrections.jsonl]
                         [--teacher data/teacher_labels.jsonl] [--db data/bilbo.sqlite3]

Refuses to overwrite an existing database file: move it aside first, so nothing is lost by a typo.
Bad lines (a torn last line after a power cut) are reported and skipped. Alerts are not rebuilt:
they were delivered (or are lost with the database) and re-sending old ones would mislead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from db import jsonl
from db.store import Correction, Store, StoreError, TeacherLabel
from settings import SettingsError, load_settings


def _replay_labels(store: Store, path: Path, problems: list[str]) -> int:
    """Replay a labels backup: human corrections and undos ("add", "undo") or fallback labeller calls ("teacher")."""
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
            elif op == "teacher":
                store.import_teacher_label(TeacherLabel(**record))
            else:
                raise ValueError(f"unknown op {op!r}")
            replayed += 1
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            problems.append(f"{path}:{number}: skipped ({exc})")
    return replayed


def rebuild(
    jsonl_path: Path, db_path: Path, corrections_path: Path | None = None, teacher_path: Path | None = None
) -> tuple[int, list[str]]:
    """Returns (ticks imported, problems). Corrections and teacher labels are replayed when their backups exist."""
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
        for path in (corrections_path, teacher_path):
            if path is not None and path.exists():
                _replay_labels(store, path, problems)
    return imported, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", type=Path, help="tick backup to read (default: DATA_DIR/ticks.jsonl)")
    parser.add_argument("--corrections", type=Path, help="corrections backup (default: DATA_DIR/corrections.jsonl)")
    parser.add_argument("--teacher", type=Path, help="teacher label backup (default: DATA_DIR/teacher_labels.jsonl)")
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
        imported, problems = rebuild(
            jsonl_path,
            db_path,
            args.corrections or settings.corrections_jsonl_path,
            args.teacher or settings.teacher_jsonl_path,
        )
    except (StoreError, OSError) as exc:
        print(f"bilbo: rebuild failed: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"rebuilt {db_path} with {imported} ticks from {jsonl_path} ({len(problems)} bad lines skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
