"""The JSONL backup: one self-contained line per tick, appended after the row is committed.

It is the file a parent can grep at 3 a.m. and the one the database can be rebuilt from
(`python -m db.rebuild`) if the SQLite file is ever lost or corrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from db.store import TickRow


def append(path: Path, row: TickRow) -> None:
    """Append one line and fsync, so a power cut loses at most the line being written."""
    line = json.dumps(row.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read(path: Path) -> Iterator[tuple[int, TickRow | None, str | None]]:
    """Yield (line number, row, error) for each line; a torn or bad line gives an error, not an exception."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, TickRow.from_json(json.loads(line)), None
            except (ValueError, TypeError) as exc:
                yield number, None, f"{type(exc).__name__}: {exc}"
