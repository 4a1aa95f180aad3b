"""Rebuild the SQLite database from the JSONL backups (ticks with the camera outages and retention's marks, then
human corrections, then the fallback labeller's calls).

    python -m db.rebuild [--jsonl data/ticks.jsonl] [--corrections data/corrections.jsonl]
                         [--teacher data/teacher_labels.jsonl] [--db data/bilbo.sqlite3]

Refuses to overwrite an existing database file: move it aside first, so nothing is lost by a typo.
Bad lines (a torn last line after a power cut) are reported and skipped. Every record keeps its ids and replaying
one twice changes nothing, so the same backup always gives the same database.
Alerts come back from the lines that raised them (a tick's, a capture failure's) and always settled, never to be
sent again: re-sending old ones would mislead, and a restored outage must not alert a second time. One whose
delivery was backed up ("alert_sent") keeps its sent time; the others say that it is not known (`restored_alert`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from db import jsonl
from db.store import Alert, CaptureFailure, Correction, Store, StoreError, TeacherLabel, TickRow
from settings import cli_settings

RESTORED_NOTE = "restored by db.rebuild, not sent again (whether it was delivered is not in the backup)"


def restored_alert(alert: Alert) -> Alert:
    """A backed-up alert as the rebuild stores it: out of the outbox's pending queue (sent_ts set), saying why."""
    if alert.sent_ts is not None:
        return alert
    return replace(alert, sent_ts=alert.created_ts, last_error=RESTORED_NOTE)


def _tick(store: Store, record: dict) -> None:
    alerts = [restored_alert(Alert(**alert)) for alert in record.pop("alerts", [])]
    store.import_tick(TickRow.from_json(record), alerts)


def _capture_failure(store: Store, record: dict) -> None:
    alert = record.pop("alert", None)
    store.import_capture_failure(
        CaptureFailure(**record, alert=None if alert is None else restored_alert(Alert(**alert)))
    )


# What each backup line does to the database, by its "op" (a tick line has none).
OPS: dict[str | None, Callable[[Store, dict], None]] = {
    None: _tick,
    "capture_failure": _capture_failure,
    "alert_sent": lambda store, record: store.import_delivery(record["id"], record["sent_ts"], record["attempts"]),
    "pruned": lambda store, record: store.mark_media_pruned(record["ids"], record["ts"]),
    "add": lambda store, record: store.import_correction(Correction(**record)),
    "undo": lambda store, record: store.mark_corrections_undone(record["ids"], record["undone_ts"]),
    "teacher": lambda store, record: store.import_teacher_label(TeacherLabel(**record)),
}


def replay(store: Store, path: Path, problems: list[str]) -> Counter[str | None]:
    """Apply a backup's lines in order; returns how many of each op were applied. A bad line joins `problems`."""
    applied: Counter[str | None] = Counter()
    for number, record, error in jsonl.read_records(path):
        try:
            if record is None:
                raise ValueError(error)
            op = record.pop("op", None)
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}")
            OPS[op](store, record)
            applied[op] += 1
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            problems.append(f"{path}:{number}: skipped ({exc})")
    return applied


def rebuild(
    jsonl_path: Path, db_path: Path, corrections_path: Path | None = None, teacher_path: Path | None = None
) -> tuple[int, list[str]]:
    """Returns (ticks imported, problems). Corrections and teacher labels are replayed when their backups exist."""
    if db_path.exists():
        raise StoreError(f"{db_path} exists: move it aside before rebuilding (nothing was changed)")
    problems: list[str] = []
    with Store.open(db_path) as store:
        imported = replay(store, jsonl_path, problems)[None]
        for path in (corrections_path, teacher_path):
            if path is not None and path.exists():
                replay(store, path, problems)
    return imported, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jsonl", type=Path, help="tick backup to read (default: DATA_DIR/ticks.jsonl)")
    parser.add_argument("--corrections", type=Path, help="corrections backup (default: DATA_DIR/corrections.jsonl)")
    parser.add_argument("--teacher", type=Path, help="teacher label backup (default: DATA_DIR/teacher_labels.jsonl)")
    parser.add_argument("--db", type=Path, help="database to create (default: DATA_DIR/bilbo.sqlite3)")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo")) is None:
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
