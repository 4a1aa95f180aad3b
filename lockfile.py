"""A lock file so two ticks never run at once (a slow camera plus a short timer interval)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


class TickLock:
    """Non-blocking exclusive flock on a file; released by the kernel even if the process is killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True if this process now holds the lock, False if another tick does."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def wait(self, timeout_s: float, on_wait: Callable[[], None] | None = None) -> None:
        """Acquire, waiting up to `timeout_s` for the running tick to finish (a tick ends within its own timeout),
        for a command that must not run beside a tick (db.rebuild). `on_wait` is called once if it has to wait.
        Raises TimeoutError, saying so, when the lock is still held."""
        deadline = time.monotonic() + timeout_s
        while not self.acquire():
            if on_wait is not None:
                on_wait()
                on_wait = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"a tick still holds {self.path} after {timeout_s:.0f} s")
            time.sleep(0.1)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TickLock:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
