"""The JSONL backups: one self-contained line per tick, one per human correction or undo, and one per call to
the fallback labeller (its label or its failure).

Appended after the database commit. They are the files a parent can grep at 3 a.m. and the ones
the database can be rebuilt from (`python -m db.rebuild`) if the SQLite file is ever lost; the
corrections file matters most, because human labels are the only ground truth BILBO has.

ticks.jsonl holds, in the order they were committed, what the tick wrote: a tick line (a TickRow, no "op"), a
capture failure ("op": "capture_failure", with the camera alert it raised) and retention's marks ("op": "pruned":
these ticks' JPEG/.wav were deleted at "ts"). One file, so the rebuild replays an outage and the frame that ended
it in the order they happened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from db.store import CaptureFailure, Correction, TeacherLabel, TickRow


def append_record(path: Path, record: dict) -> None:
    """Append one line and fsync, so a power cut loses at most the line being written."""
    line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def append(path: Path, row: TickRow) -> None:
    append_record(path, row.to_json())


def append_capture_failure(path: Path, failure: CaptureFailure) -> None:
    append_record(path, {"op": "capture_failure", **asdict(failure)})


def append_pruned(path: Path, ids: Sequence[int], ts: float) -> None:
    append_record(path, {"op": "pruned", "ids": list(ids), "ts": ts})


def append_corrections(path: Path, corrections: Sequence[Correction]) -> None:
    for correction in corrections:
        append_record(path, {"op": "add", **asdict(correction)})


def append_undo(path: Path, corrections: Sequence[Correction], undone_ts: float) -> None:
    append_record(path, {"op": "undo", "ids": [c.id for c in corrections], "undone_ts": undone_ts})


def append_teacher_label(path: Path, label: TeacherLabel) -> None:
    append_record(path, {"op": "teacher", **asdict(label)})


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
