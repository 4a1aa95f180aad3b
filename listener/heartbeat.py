"""The listener's heartbeat: a small JSON file in the data dir (`listener.json`), rewritten every few seconds.

The listener is a long-running process nobody watches; the tick is the one that runs for sure every few minutes.
So the listener says here when it last heard the camera (`heard_ts`: a window scored) and what it is doing, and
the tick (`listener.health`), `--check` and MQTT read it: a listener silent for SILENT_AFTER_S is reported, whether
it died, hangs, or is alive but gets no audio (its own `reason` then says why). stdlib only, and written by one
process only (the listener), replaced whole (write a temp file, rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SILENT_AFTER_S = 120.0  # no window scored for this long: cries are not being heard
WRITE_EVERY_S = 10.0

LISTENING, CONNECTING, NO_AUDIO, DOWN, NO_MODEL, STOPPED = (
    "listening", "connecting", "no audio", "down", "no cry model", "stopped",
)  # fmt: skip


@dataclass(frozen=True)
class Heartbeat:
    """What the listener last said about itself."""

    pid: int
    started_ts: float  # when this listener process started
    ts: float  # when it wrote this
    state: str  # LISTENING, CONNECTING, NO_AUDIO, DOWN, NO_MODEL, STOPPED
    heard_ts: float | None = None  # the newest window it scored; None: none since it started
    reason: str = ""  # why it does not hear (one line, credentials redacted)
    crying: bool = False  # an episode is going on

    def silent_since(self, now: float) -> float | None:
        """Since when the camera has not been heard, if that is SILENT_AFTER_S or longer (by the clock of `now`);
        else None. A listener that stopped writing is silent since its last sign of life."""
        heard = self.heard_ts if self.heard_ts is not None else self.started_ts
        if self.state == STOPPED or now - self.ts >= SILENT_AFTER_S:
            heard = min(heard, self.ts)
        return heard if now - heard >= SILENT_AFTER_S else None

    def why_silent(self, now: float) -> str:
        """One line: why it has not heard, as the tick's log and the alert say it."""
        if self.state == STOPPED:
            return "the listener stopped"
        if now - self.ts >= SILENT_AFTER_S:
            return "the listener is not running (no heartbeat)"
        return self.reason or f"the listener is {self.state}"


def write(path: Path, beat: Heartbeat) -> None:
    """Replace the file whole; OSError when it cannot be written (the caller logs it once)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(beat)) + "\n")
    os.replace(tmp, path)


def read(path: Path) -> Heartbeat | None:
    """The newest heartbeat; None when there is none (no listener ever ran here) or it cannot be read."""
    try:
        raw = json.loads(path.read_text())
        return Heartbeat(**{f.name: raw[f.name] for f in fields(Heartbeat) if f.name in raw})
    except (OSError, ValueError, TypeError):
        return None
