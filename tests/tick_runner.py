"""Run `monitor.py --once` as the timer does (a real process, isolated settings) and read what it stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from db.store import Store, TickRow

REPO = Path(__file__).resolve().parents[1]


def run_tick(data_dir: Path, *args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env.update({"BILBO_DATA_DIR": str(data_dir), **env_overrides})
    return subprocess.run(
        [sys.executable, str(REPO / "monitor.py"), "--config", str(data_dir / "no.env"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd="/",
    )


def rows(data_dir: Path) -> list[TickRow]:
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        return store.ticks_between(0, 1e12)


def frame_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "frames").rglob("*.jpg"))


def sample_tick(data_dir: Path, hhmm: str, **env: str) -> subprocess.CompletedProcess:
    return run_tick(data_dir, "--once", "--source", "sample", "--at", f"2026-11-21T{hhmm}:00", **env)
