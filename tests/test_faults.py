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

import cv2
import numpy as np
import pytest

from db import jsonl
from db.rebuild import rebuild
from db.store import Store
from tests.tick_runner import REPO, frame_files, rows, run_tick, sample_tick


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


SMALL_DISK = {"BILBO_MIN_FREE_MB": "1", "BILBO_CONFIRM_FRAMES": "0"}  # retention prunes below the default on 8 MB;
# one frame per tick (no confirmation frames of the 02:00 waking), so the counts below are the timer's ticks


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


# --- a clock that jumps back, a crafted huge JPEG ------------------------------------------------------------------


def test_a_clock_that_jumps_back_still_alerts_the_next_waking_and_says_so(tmp_path):
    """The clock runs four hours ahead (the 06:00 waking is stamped in the future), then NTP corrects it: the
    02:00 waking must still alert, on the frame confirming its first awake tick, as on any night. Ordered by stamps,
    the 06:04 row stayed "newest" and its alert's cooldown silenced the waking; the tick also says, once, that the
    clock went back."""
    data = tmp_path / "data"
    every_frame = {"BILBO_DIFF_THRESHOLD": "0.01"}  # every tick classified: the wake rule sees each one
    for hhmm in ("05:56", "06:00", "06:04"):  # the clock ahead: the sample baby wakes at 06:00
        assert sample_tick(data, hhmm, **every_frame).returncode == 0
    back = sample_tick(data, "01:48", **every_frame)  # corrected: over four hours back
    assert back.returncode == 0
    assert "the clock went back" in back.stderr and "06:04" in back.stderr
    for hhmm in ("01:52", "01:56", "02:00", "02:04"):  # the sample baby wakes at 02:00
        done = sample_tick(data, hhmm, **every_frame)
        assert done.returncode == 0 and "the clock went back" not in done.stderr  # said once: 01:48 is newest now
    with Store.open(data / "bilbo.sqlite3") as store:
        wakes = store.alerts("wake")
    stamps = [datetime.fromtimestamp(alert.created_ts).strftime("%H:%M:%S") for alert in wakes]
    assert stamps == ["06:00:15", "02:00:15"]


def test_a_camera_outage_after_the_clock_jumped_back_still_alerts(tmp_path):
    """Failures stamped before a future-stamped tick used to be read as older than it: no outage, no alert, ever."""
    data = tmp_path / "data"
    assert sample_tick(data, "05:00").returncode == 0  # the clock ahead
    missing = str(tmp_path / "no-such-camera.jpg")
    for hhmm in ("02:00", "02:04"):
        failed = run_tick(
            data, "--once", "--source", missing, "--at", f"2026-11-21T{hhmm}:00", BILBO_CAMERA_DOWN_TICKS="2"
        )
        assert failed.returncode == 1
    with Store.open(data / "bilbo.sqlite3") as store:
        down = store.alerts("camera")
        outage = store.camera_outage()
    assert outage.failures == 2
    assert len(down) == 1 and "Camera unreachable since 02:00" in down[0].caption


def crafted_jpeg(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) was changed to claim width x height: a one-bit-class corruption."""
    _ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_a_crafted_gigapixel_jpeg_fails_the_tick_fast_and_counts_towards_the_camera_alert(tmp_path):
    """30000x30000 in the header: OpenCV would allocate 2.7 GB and decode for 43 s (an OOM kill on a Pi, no failure
    ever recorded). Refused from the header, it is one clear line and an outage tick like any corrupt frame."""
    data, folder = tmp_path / "data", tmp_path / "uploads"
    folder.mkdir()
    (folder / "snap.jpg").write_bytes(crafted_jpeg(30000, 30000))
    for hhmm in ("02:00", "02:04"):
        failed = run_tick(
            data, "--once", "--source", str(folder), "--at", f"2026-11-21T{hhmm}:00", BILBO_CAMERA_DOWN_TICKS="2"
        )
        assert failed.returncode == 1
        assert len(errors(failed.stderr)) == 1 and "not decoded" in failed.stderr
    with Store.open(data / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 2 and len(store.alerts("camera")) == 1
