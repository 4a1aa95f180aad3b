"""Writing the tick's files (the kept JPEG and .wav) so that a failure leaves nothing behind.

A tick writes its frame before the database row that points at it; on a full disk the write stops half-way. Written
to a temporary name and renamed, a file is either whole or absent, and a failed write removes its temporary file
and says which file could not be written, so the one log line names the disk that is full.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all. Raises OSError naming `path` (errno kept)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
