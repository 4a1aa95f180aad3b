"""Rebuild the SQLite database from the JSONL backups (ticks with the camera outages and retention's marks, then
human corrections, then the fallback labeller's calls).

    python -m db.rebuild [--config .env] [--jsonl data/ticks.jsonl] [--corrections data/corrections.jsonl]
                         [--teacher data/teacher_labels.jsonl] [--db data/bilbo.sqlite3]

Refuses to overwrite an existing database file: move it aside first (with its -wal file, if one is left), so nothing
is lost by a typo. It holds the tick's lock (monitor.lock beside the database; it waits for a running tick) and
builds the file under another name, put in place only once whole, so no tick or dashboard ever sees half a database.
Bad lines (a torn last line after a power cut) are reported and skipped. Every record keeps its ids and replaying
one twice changes nothing, so the same backup always gives the same database; a line repeated by a retried append
writes nothing and is counted as repeated. A record whose id already holds a different record (a database once
started empty reused the ids) is not imported: the first stays, and the line is reported and counted, never dropped
silently. The counts printed are the rows written.
Alerts come back from the lines that raised them (a tick's, a capture failure's) and always settled, never to be
sent again: re-sending old ones would mislead, and a restored outage must not alert a second time. One whose
delivery was backed up ("alert_sent") keeps its sent time; the others say that it is not known (`restored_alert`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from db import jsonl
from db.store import Alert, CaptureFailure, Correction, CryEpisode, IdTaken, Store, StoreError, TeacherLabel, TickRow
from lockfile import TickLock
from settings import DEFAULT_ENV_FILE, cli_settings

RESTORED_NOTE = "restored by db.rebuild, not sent again (whether it was delivered is not in the backup)"
LOCK_WAIT_S = 300.0  # a tick ends within its capture timeout and the models' seconds; a rebuild waits for it


def restored_alert(alert: Alert) -> Alert:
    """A backed-up alert as the rebuild stores it: out of the outbox's pending queue (sent_ts set), saying why."""
    if alert.sent_ts is not None:
        return alert
    return replace(alert, sent_ts=alert.created_ts, last_error=RESTORED_NOTE)


def _tick(store: Store, record: dict) -> bool:
    alerts = [restored_alert(Alert(**alert)) for alert in record.pop("alerts", [])]
    return store.import_tick(TickRow.from_json(record), alerts)


def _capture_failure(store: Store, record: dict) -> None:
    alert = record.pop("alert", None)
    store.import_capture_failure(
        CaptureFailure(**record, alert=None if alert is None else restored_alert(Alert(**alert)))
    )


def _cry_episode(store: Store, record: dict) -> None:
    alert = record.pop("alert", None)
    store.import_episode(CryEpisode(**record), None if alert is None else restored_alert(Alert(**alert)))


# What each backup line does to the database, by its "op" (a tick line has none). An op that inserts a record returns
# True when it wrote the row, False when the very same record was there already (the line came twice); the others
# (updates of rows already there, and capture failures, whose ids restart with each outage) return None.
OPS: dict[str | None, Callable[[Store, dict], bool | None]] = {
    None: _tick,
    "capture_failure": _capture_failure,
    "alert_sent": lambda store, record: store.import_delivery(record["id"], record["sent_ts"], record["attempts"]),
    "pruned": lambda store, record: store.mark_media_pruned(record["ids"], record["ts"]),
    "add": lambda store, record: store.import_correction(Correction(**record)),
    "undo": lambda store, record: store.mark_corrections_undone(record["ids"], record["undone_ts"]),
    "teacher": lambda store, record: store.import_teacher_label(TeacherLabel(**record)),
    "cry_episode": _cry_episode,  # the cry listener's (listener/recorder.py)
}
# The rows the inserting ops write, as the summary names them.
WRITES = {None: "ticks", "add": "corrections", "teacher": "teacher labels"}


@dataclass
class Tally:
    """What a rebuild did: rows written, lines that changed nothing, and the lines it reports (in file order)."""

    written: Counter[str] = field(default_factory=Counter)  # rows inserted, by WRITES name
    repeated: int = 0  # records imported already from an identical earlier line (a retried append)
    bad: int = 0  # lines that could not be read or applied, skipped
    taken: int = 0  # records whose id already holds a different record: not imported, the first one kept
    problems: list[str] = field(default_factory=list)  # one line for each bad or taken line


def replay(store: Store, path: Path, tally: Tally) -> Counter[str | None]:
    """Apply a backup's lines in order, counting into `tally`; returns how many lines of each op were applied
    (repeated ones included). Each line that is bad or whose id is taken joins the tally's problems."""
    applied: Counter[str | None] = Counter()
    for number, record, error in jsonl.read_records(path):
        try:
            if record is None:
                raise ValueError(error)
            op = record.pop("op", None)
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}")
            wrote = OPS[op](store, record)
        except IdTaken as exc:
            tally.taken += 1
            tally.problems.append(f"{path}:{number}: not imported ({exc})")
            continue
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            tally.bad += 1
            tally.problems.append(f"{path}:{number}: skipped ({exc})")
            continue
        applied[op] += 1
        if wrote is True:
            tally.written[WRITES.get(op, str(op))] += 1
        elif wrote is False:
            tally.repeated += 1
    return applied


def rebuild(
    jsonl_path: Path, db_path: Path, corrections_path: Path | None = None, teacher_path: Path | None = None
) -> tuple[int, list[str]]:
    """Returns (ticks written, problems). Corrections and teacher labels are replayed when their backups exist."""
    tally = restore(jsonl_path, db_path, corrections_path, teacher_path)
    return tally.written["ticks"], tally.problems


def restore(
    jsonl_path: Path,
    db_path: Path,
    corrections_path: Path | None = None,
    teacher_path: Path | None = None,
    *,
    lock_path: Path | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
    on_wait: Callable[[], None] | None = None,
) -> Tally:
    """Build `db_path` from the backups; with `lock_path`, holding that tick lock the whole time (waiting up to
    `lock_wait_s` for a running tick). Raises StoreError (nothing changed) or OSError (TimeoutError: the lock)."""
    if lock_path is None:
        return _build(jsonl_path, db_path, corrections_path, teacher_path)
    with TickLock(lock_path) as lock:
        lock.wait(lock_wait_s, on_wait)
        return _build(jsonl_path, db_path, corrections_path, teacher_path)


def _build(jsonl_path: Path, db_path: Path, corrections_path: Path | None, teacher_path: Path | None) -> Tally:
    """Replay into a file beside `db_path`, then put it in place whole (never over a file that appeared)."""
    exists = f"{db_path} exists: move it aside before rebuilding (nothing was changed)"
    if db_path.exists():
        raise StoreError(exists)
    if (wal := db_path.with_name(db_path.name + "-wal")).exists():  # SQLite would replay it into the new file
        raise StoreError(f"{wal} of the old database is still there: move it aside too (nothing was changed)")
    building = db_path.with_name(f".{db_path.name}.rebuilding")
    leftovers = [building.with_name(building.name + suffix) for suffix in ("", "-wal", "-shm")]
    for leftover in leftovers:  # of a rebuild killed half-way
        leftover.unlink(missing_ok=True)
    tally = Tally()
    try:
        with Store.open(building, restoring=True) as store:
            replay(store, jsonl_path, tally)
            for path in (corrections_path, teacher_path):
                if path is not None and path.exists():
                    replay(store, path, tally)
        try:
            os.link(building, db_path)  # atomic, and refuses to replace a file
        except FileExistsError:
            raise StoreError(exists) from None
        except OSError:  # a filesystem without hard links (FAT): we hold the lock, and no tick creates it over a backup
            if db_path.exists():
                raise StoreError(exists) from None
            os.replace(building, db_path)
    finally:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return tally


def summary(tally: Tally, db_path: Path, jsonl_path: Path) -> str:
    """The one line printed on success: the rows written, then what was skipped, repeated or not imported."""
    w = tally.written
    return (
        f"rebuilt {db_path} with {w['ticks']} ticks, {w['corrections']} corrections and {w['teacher labels']} "
        f"teacher labels from {jsonl_path} ({tally.bad} bad lines skipped, {tally.repeated} repeated lines changed "
        f"nothing, {tally.taken} records not imported: their id already held a different record)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    parser.add_argument("--jsonl", type=Path, help="tick backup to read (default: DATA_DIR/ticks.jsonl)")
    parser.add_argument("--corrections", type=Path, help="corrections backup (default: DATA_DIR/corrections.jsonl)")
    parser.add_argument("--teacher", type=Path, help="teacher label backup (default: DATA_DIR/teacher_labels.jsonl)")
    parser.add_argument("--db", type=Path, help="database to create (default: DATA_DIR/bilbo.sqlite3)")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo", args.config)) is None:
        return 2
    jsonl_path = args.jsonl or settings.jsonl_path
    db_path = args.db or settings.db_path
    lock_path = db_path.parent / settings.lock_path.name  # the lock of the ticks that use this database
    try:
        tally = restore(
            jsonl_path,
            db_path,
            args.corrections or settings.corrections_jsonl_path,
            args.teacher or settings.teacher_jsonl_path,
            lock_path=lock_path,
            on_wait=lambda: print(f"waiting for the running tick to finish (lock {lock_path})", flush=True),
        )
    except (StoreError, OSError) as exc:
        print(f"bilbo: rebuild failed: {exc}", file=sys.stderr)
        return 1
    for problem in tally.problems:
        print(problem, file=sys.stderr)
    if tally.taken:
        print(
            f"bilbo: {tally.taken} records were not imported because an earlier record holds their id (a database "
            "started empty reused the ids); they stay in the backup files, at the lines above",
            file=sys.stderr,
        )
    print(summary(tally, db_path, jsonl_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
