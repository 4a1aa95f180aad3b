"""The JSONL backups: one self-contained line per tick, one per human correction or undo, and one per call to
the fallback labeller (its label or its failure).

Appended after the database commit. They are the files a parent can grep at 3 a.m. and the ones
the database can be rebuilt from (`python -m db.rebuild`) if the SQLite file is ever lost; the
corrections file matters most, because human labels are the only ground truth BILBO has.

ticks.jsonl holds, in the order they were committed, what the tick wrote: a tick line (a TickRow, no "op", with
the alerts it raised under "alerts"), a capture failure ("op": "capture_failure", with the camera alert it raised),
each delivered alert ("op": "alert_sent") and retention's marks ("op": "pruned": these ticks' JPEG/.wav were
deleted at "ts"). One file, so the rebuild replays an outage and the frame that ended
it in the order they happened.

Every line goes through an outbox in the database (`backup_waiting`): queued in the same transaction as the data it
mirrors (`queue` inside `store.atomic()`), then appended and deleted (`write`). A line that cannot be appended (disk
full, a folder where the file should be) or whose process was killed after the commit is not dropped: it waits, and
the next append to that file, or the next tick's `write_waiting`, writes it first, so the file keeps the order of
the commits. An append that fails half-way is cut back to where it began, so a retry
never leaves half a line glued to a whole one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from db.store import Alert, CaptureFailure, Correction, CryEpisode, Store, StoreError, TeacherLabel, TickRow
from settings import Settings


def tick_record(row: TickRow, alerts: Sequence[Alert] = ()) -> dict:
    """A tick line: the row, and the alerts it raised (as queued, not yet sent) when there were any."""
    record = row.to_json()
    if alerts:
        record["alerts"] = [asdict(alert) for alert in alerts]
    return record


def alert_sent_record(alert: Alert) -> dict:
    """A delivery: the notifier confirmed this alert at "sent_ts" (after "attempts" tries)."""
    return {"op": "alert_sent", "id": alert.id, "sent_ts": alert.sent_ts, "attempts": alert.attempts}


def capture_failure_record(failure: CaptureFailure) -> dict:
    return {"op": "capture_failure", **asdict(failure)}


def pruned_record(ids: Sequence[int], ts: float) -> dict:
    return {"op": "pruned", "ids": list(ids), "ts": ts}


def cry_episode_record(episode: CryEpisode, alert: Alert | None) -> dict:
    """The cry listener's episode as it started (with the alert its onset raised) or as it ended: the later line of
    an id wins in a rebuild. Its progress in between is not backed up (a line a second while the baby cries)."""
    return {"op": "cry_episode", **asdict(episode), "alert": None if alert is None else asdict(alert)}


def correction_records(corrections: Sequence[Correction]) -> list[dict]:
    return [{"op": "add", **asdict(correction)} for correction in corrections]


def undo_record(corrections: Sequence[Correction], undone_ts: float) -> dict:
    return {"op": "undo", "ids": [c.id for c in corrections], "undone_ts": undone_ts}


def teacher_record(label: TeacherLabel) -> dict:
    return {"op": "teacher", **asdict(label)}


def _line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def append_lines(path: Path, lines: Sequence[str]) -> None:
    """Append whole lines and fsync, so a power cut loses at most what is being written. On an error the file is cut
    back to its size before the call (no half line stays), and a file whose last line was torn by a power cut gets
    a newline first, so the torn line stays one bad line instead of swallowing the next good one."""
    if not lines:
        return
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            # If even this fails, the rebuild reports the half line as one bad line; the whole ones still wait.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def queue(store: Store, path: Path, records: Sequence[dict]) -> None:
    """Queue records for the backup at `path`. Call it inside `store.atomic()` with the write the records mirror:
    then a process killed after the commit leaves them queued, and a later `write` appends them."""
    store.queue_backup(path, [_line(record) for record in records], now=time.time())


def write(store: Store, path: Path) -> str | None:
    """Append what is queued for `path`. Returns None when it is in the file, else one line for the caller's warning
    (the lines stay queued in the database: nothing is lost, a later tick appends them)."""
    try:
        error = store.append_backup(path, append_lines)
    except StoreError as exc:
        return f"its JSONL backup line waits in the database for a later tick ({exc})"
    if error is None:
        return None
    return f"its JSONL backup line waits in the database for a later tick ({path}: {error.strerror or error})"


def write_waiting(store: Store, skip: Path | None = None) -> list[str]:
    """Append every backup's waiting lines but `skip`'s (each tick calls this, so a correction's line does not wait
    for the next correction; it skips ticks.jsonl, which its own line has just tried). Returns one line per file
    that is still failing."""
    problems = []
    for path, count in store.backup_waiting().items():
        if path == skip:
            continue
        error = store.append_backup(path, append_lines)
        if error is not None:
            why = f"{path}: {error.strerror or error}"
            problems.append(f"{count} JSONL backup line(s) still wait in the database ({why})")
    return problems


def read_records(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (line number, record, error); a torn or bad line gives an error, not an exception."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                yield number, record, None
            except ValueError as exc:
                yield number, None, f"{type(exc).__name__}: {exc}"


def named_in(path: Path, names: Iterable[str]) -> set[str]:
    """Those of `names` (paths like "frames/2026-11-21/030000-1795230000.jpg") that a line of the backup at `path`
    holds: retention's sweep keeps those files, since a database rebuilt from the backup points at them. One byte
    search of the mapped file per day folder, collecting that folder's names, so a year of lines costs milliseconds
    however many files are asked about; the sweep asks only when it has files to remove. A missing or empty backup
    names nothing; one that cannot be read raises OSError."""
    wanted = set(names)
    found: set[str] = set()
    if not wanted:
        return found
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for folder in {name.rpartition("/")[0] + "/" for name in wanted}:
                needle = json.dumps(folder)[:-1].encode()  # the opening quote and the folder, as a line writes it
                at = data.find(needle)
                while at != -1 and (end := data.find(b'"', at + len(needle))) != -1:
                    with contextlib.suppress(ValueError):  # not one of our names (an escaped quote): not wanted
                        found.add(json.loads(data[at : end + 1]))
                    at = data.find(needle, end + 1)
    except (FileNotFoundError, ValueError):  # no backup, or an empty one (mmap refuses 0 bytes): it names nothing
        return set()
    return wanted & found


_tick_log = logging.getLogger("bilbo.tick")  # the tick's steps log as the tick


def write_waiting_backups(settings: Settings, store: Store) -> None:
    """Append the JSONL backup lines that earlier appends could not write (a correction's, say, when the disk was
    full), so every backup catches up within a tick of the disk coming back; still failing is one warning. The
    tick's own backup line has already tried ticks.jsonl (and warned), so that file is left to it."""
    try:
        problems = write_waiting(store, skip=settings.jsonl_path)
    except StoreError as exc:
        problems = [f"JSONL backup lines waiting in the database were not written this tick: {exc}"]
    for problem in problems:
        _tick_log.warning("%s", problem)
