"""Fault injection on the real tick: a disk that is really full, ticks killed with SIGKILL at random moments.

The disk is a real tmpfs of a few MB mounted for the test (CI runs as root; where mounting is not allowed the test
says so and skips), filled to the last byte by a file, so every write fails with ENOSPC as on a parent's full SD
card. The kills are real SIGKILLs of `monitor.py --once` processes. What must hold: one clear line per failed tick,
nothing already stored is lost or corrupted, and the next tick recovers by itself.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from db import jsonl
from db.rebuild import rebuild
from db.store import Store
from tests.tick_runner import REPO, frame_files, rows, sample_tick


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MB filesystem (tmpfs), unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem has no byte left (ENOSPC); returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1):  # big chunks, then the last bytes one by one
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


SMALL_DISK = {"BILBO_MIN_FREE_MB": "1"}  # retention's low-disk pruning would start below the default on 8 MB


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def integrity(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("dashboard_open", [False, True], ids=["alone", "dashboard-open"])
def test_a_full_disk_fails_the_tick_with_one_line_loses_nothing_and_the_next_tick_recovers(small_disk, dashboard_open):
    """Alone, the tick cannot even open the database (WAL mode creates its -shm file); with the dashboard holding it
    open, the files exist and the failure comes later, at the frame or the commit. Either way: one clear line."""
    data = small_disk / "data"
    for hhmm in ("02:00", "02:04"):
        assert sample_tick(data, hhmm, **SMALL_DISK).returncode == 0
    stored, backup, frames = rows(data), (data / "ticks.jsonl").read_text(), frame_files(data)

    dashboard = Store.open(data / "bilbo.sqlite3") if dashboard_open else None
    filler = fill(small_disk)
    full = sample_tick(data, "02:08", **SMALL_DISK)
    if dashboard:
        dashboard.close()
    assert full.returncode == 1, full.stderr
    [line] = errors(full.stderr)
    assert "is full" in line or "No space left on device" in line, line
    assert "Traceback" not in full.stderr

    filler.unlink()  # the parent frees space (checking needs some too: opening the database writes its -shm)
    assert integrity(data / "bilbo.sqlite3") == "ok"
    after = rows(data)
    if dashboard_open:  # retention could open the database: it freed what it may, the oldest frame
        assert "retention: removed 1 frames/clips" in full.stderr
        assert after[0].media_pruned and not stored[0].media_pruned and after[1:] == stored[1:]
        assert frame_files(data) == frames[1:]
    else:
        assert after == stored
        assert frame_files(data) == frames  # no half-written frame left behind
    assert not list(data.rglob("*.tmp"))
    text = (data / "ticks.jsonl").read_text()
    assert text.startswith(backup)  # not a torn byte added; the pruned mark fitted in the space retention freed
    added = [json.loads(line)["op"] for line in text[len(backup) :].splitlines()]
    assert added == (["pruned"] if dashboard_open else [])
    recovered = sample_tick(data, "02:12", **SMALL_DISK)
    assert recovered.returncode == 0, recovered.stderr
    now = rows(data)
    assert now[:2] == after and len(now) == 3
    rebuilt = small_disk / "rebuilt.sqlite3"
    assert rebuild(data / "ticks.jsonl", rebuilt) == (3, [])
    with Store.open(rebuilt) as store:
        assert store.ticks_between(0, 1e12) == now


def start_tick(data: Path, at: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env["BILBO_DATA_DIR"] = str(data)
    command = [sys.executable, str(REPO / "monitor.py"), "--config", str(data / "no.env"), "--once"]
    return subprocess.Popen(
        [*command, "--source", "sample", "--at", at], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_ticks_killed_at_random_moments_never_corrupt_anything_and_the_next_tick_recovers(tmp_path):
    """SIGKILL (a power cut, the OOM killer) at a random moment of a tick, 12 times: during imports, the models,
    the frame write, the commit or the backup append. The database stays intact, the lock is never stuck, every
    stored frame is on disk, the tick after each kill stores, and the backup still rebuilds every row."""
    data, chance = tmp_path / "data", random.Random(20261123)
    started = time.perf_counter()
    assert sample_tick(data, "02:50").returncode == 0
    whole_tick_s = time.perf_counter() - started  # this machine's cold tick, so the kills land inside one
    kills = 0
    night = datetime(2026, 11, 21, 3, 0)
    for i in range(12):  # frames 20 min apart: the baby moves, so most ticks run the models and keep a JPEG
        victim = start_tick(data, (night + timedelta(minutes=20 * i)).isoformat())
        time.sleep(chance.uniform(0.05, 0.9) * whole_tick_s)
        if victim.poll() is None:
            victim.kill()
            kills += 1
        victim.wait(timeout=30)
        after = sample_tick(data, (night + timedelta(minutes=20 * i + 10)).strftime("%H:%M"))
        assert after.returncode == 0, after.stderr  # the lock died with the killed process
    assert kills >= 3, kills  # ticks were really killed, not finished

    assert integrity(data / "bilbo.sqlite3") == "ok"
    live = rows(data)
    assert len(live) >= 13  # the first tick and every tick after a kill stored its row
    assert all((data / row.jpeg_path).is_file() for row in live if row.jpeg_path)  # no row points at nothing
    rebuilt = tmp_path / "rebuilt.sqlite3"
    _, problems = rebuild(data / "ticks.jsonl", rebuilt)
    assert len(problems) <= kills  # at most one torn line per kill, each reported, none swallowing the next
    with Store.open(rebuilt) as store:
        # Complete: a line whose process died between the commit and the append was queued in the database with
        # its row, and the next tick appended it.
        assert store.ticks_between(0, 1e12) == live
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.backup_waiting() == {}


KILLED_AFTER_THE_COMMIT = """
import os, signal, sys
import monitor
from db import jsonl
jsonl.write = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # die where the append would begin
sys.exit(monitor.main(sys.argv[1:]))
"""


def test_a_tick_killed_between_its_commit_and_its_backup_append_is_backed_up_by_the_next_tick(tmp_path):
    """The one moment a random kill rarely hits, hit on purpose: the row is committed, its line not yet appended."""
    data = tmp_path / "data"
    assert sample_tick(data, "03:00").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env["BILBO_DATA_DIR"] = str(data)
    args = ["--once", "--config", str(data / "no.env"), "--source", "sample", "--at", "2026-11-21T03:20:00"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_THE_COMMIT, *args], env=env, cwd=REPO, capture_output=True, timeout=60
    )
    assert killed.returncode == -9
    assert len(rows(data)) == 2 and len((data / "ticks.jsonl").read_text().splitlines()) == 1
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.backup_waiting() == {data / "ticks.jsonl": 1}

    assert sample_tick(data, "03:40").returncode == 0
    live = rows(data)
    assert [record["id"] for _, record, _ in jsonl.read_records(data / "ticks.jsonl")] == [r.id for r in live]
    rebuilt = tmp_path / "rebuilt.sqlite3"
    assert rebuild(data / "ticks.jsonl", rebuilt) == (3, [])
    with Store.open(rebuilt) as store:
        assert store.ticks_between(0, 1e12) == live


KILLED_AFTER_THE_DELIVERY = """
import os, signal, sys
import monitor
from db import jsonl
appends = []
def write(store, path):
    appends.append(path)
    if len(appends) == 2:  # the failure's own line went out; this is the delivered alert's: die instead
        os.kill(os.getpid(), signal.SIGKILL)
    return original(store, path)
original, jsonl.write = jsonl.write, write
sys.exit(monitor.main(sys.argv[1:]))
"""


def test_an_alert_delivered_just_before_a_kill_is_backed_up_as_delivered(tmp_path):
    """The alert went out and was marked sent, then the process died before appending that: the mark and its backup
    line were one transaction, so the next tick appends it and a rebuild knows the alert was delivered."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env.update(BILBO_DATA_DIR=str(data), BILBO_CAMERA_DOWN_TICKS="2")
    unplugged = str(tmp_path / "unplugged.jpg")
    assert run_tick_at(data, unplugged, "03:10", env).returncode == 1
    args = ["--once", "--config", str(data / "no.env"), "--source", unplugged, "--at", "2026-11-21T03:14:00"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_THE_DELIVERY, *args], env=env, cwd=REPO, capture_output=True, timeout=60
    )
    assert killed.returncode == -9 and "Camera unreachable since 03:10" in killed.stderr.decode()
    with Store.open(data / "bilbo.sqlite3") as store:
        [alert] = store.alerts("camera")
        assert alert.sent_ts is not None and store.backup_waiting() == {data / "ticks.jsonl": 1}

    assert run_tick_at(data, unplugged, "03:18", env).returncode == 1  # its own line goes after the waiting one
    ops = [record.get("op") for _, record, _ in jsonl.read_records(data / "ticks.jsonl")]
    assert ops == ["capture_failure", "capture_failure", "alert_sent", "capture_failure"]
    rebuilt = tmp_path / "rebuilt.sqlite3"
    assert rebuild(data / "ticks.jsonl", rebuilt)[1] == []
    with Store.open(rebuilt) as store:
        assert store.alerts("camera") == [alert]  # delivered at its real time, not "restored, not known"


def run_tick_at(data: Path, source: str, hhmm: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    args = ["--once", "--config", str(data / "no.env"), "--source", source, "--at", f"2026-11-21T{hhmm}:00"]
    return subprocess.run([sys.executable, str(REPO / "monitor.py"), *args], env=env, capture_output=True, timeout=60)
