"""Twins: one settings file per camera. Each camera's ticks, database, alerts and dashboard stay its own, and every
alert says which cot it is about. Real `monitor.py` and `python -m dashboard` processes, each given its --config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.store import Store
from settings import SettingsError, load_settings, schedule_target
from tests.conftest import free_port
from tests.test_dashboard import call
from tests.tick_runner import REPO, rows


def camera_env(path: Path, name: str, data_dir: Path, port: int, camera_url: str = "sample") -> Path:
    path.write_text(f"CAMERA_URL={camera_url}\nCAMERA_NAME={name}\nDATA_DIR={data_dir}\nDASHBOARD_PORT={port}\n")
    return path


def tick(config: Path, at: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    return subprocess.run(
        [sys.executable, str(REPO / "monitor.py"), "--once", "--config", str(config), "--at", at],
        capture_output=True, text=True, env={**clean, **env}, cwd="/", timeout=60,
    )  # fmt: skip


def test_two_cameras_keep_their_own_data_and_each_alert_names_its_cot(tmp_path):
    ada = camera_env(tmp_path / ".env.ada", "Ada", tmp_path / "data-ada", 5556)
    bob = camera_env(tmp_path / ".env.bob", "Bob", tmp_path / "data-bob", 5557, camera_url=str(tmp_path / "off.jpg"))
    assert tick(ada, "2026-11-21T03:00:00").returncode == 0
    assert tick(bob, "2026-11-21T03:00:00", BILBO_CAMERA_DOWN_TICKS="2").returncode == 1  # Bob's camera is unplugged
    second = tick(bob, "2026-11-21T03:04:00", BILBO_CAMERA_DOWN_TICKS="2")
    [alert] = [line for line in second.stderr.splitlines() if "alert (no Telegram configured)" in line]
    assert "alert (no Telegram configured): Bob: Camera unreachable since 03:00" in alert

    assert len(rows(tmp_path / "data-ada")) == 1 and rows(tmp_path / "data-bob") == []
    with Store.open(tmp_path / "data-ada" / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 0 and store.alerts() == []  # Bob's outage is not Ada's
    with Store.open(tmp_path / "data-bob" / "bilbo.sqlite3") as store:
        assert store.camera_outage().failures == 2 and len(store.alerts("camera")) == 1
        assert store.alerts("camera")[0].caption.startswith("Camera unreachable")  # the name is added on the way out


def test_each_dashboard_reads_its_own_config_and_says_whose_it_is(tmp_path):
    port = free_port()
    ada = camera_env(tmp_path / ".env.ada", "Ada", tmp_path / "data-ada", port)
    assert tick(ada, "2026-11-21T03:00:00").returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--config", str(ada)], cwd=REPO, env=clean,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body, _ = call("GET", f"http://127.0.0.1:{port}/api/status")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the dashboard did not come up"
                time.sleep(0.2)
        assert status == 200 and body["camera_name"] == "Ada"
        assert body["newest_ts"] == rows(tmp_path / "data-ada")[0].ts  # Ada's database, not the checkout's
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- what the schedule installers accept -------------------------------------------------------------------------


def test_a_named_camera_needs_its_own_settings_file_data_dir_and_port(tmp_path):
    ok = camera_env(tmp_path / "ada.env", "Ada", tmp_path / "data-ada", 5556)
    assert schedule_target("ada", str(ok)) == (str(ok.resolve()), 5556)
    assert schedule_target("", "")[0] == ""  # the first camera: the checkout's .env, as before
    with pytest.raises(SettingsError, match="no settings file"):
        schedule_target("ada", str(tmp_path / "missing.env"))
    with pytest.raises(SettingsError, match=r"DATA_DIR .* must be camera ada's own folder"):
        schedule_target(
            "ada", str(camera_env(tmp_path / "a.env", "Ada", load_settings(None, environ={}).data_dir, 5556))
        )
    with pytest.raises(SettingsError, match=r"DASHBOARD_PORT .* must be camera ada's own port"):
        schedule_target("ada", str(camera_env(tmp_path / "b.env", "Ada", tmp_path / "data-ada", 5555)))
    with pytest.raises(SettingsError, match="camera name 'Ada Lovelace'"):
        schedule_target("Ada Lovelace", str(ok))
    with pytest.raises(SettingsError, match="--config needs --camera"):
        schedule_target("", str(ok))


def test_a_camera_name_that_is_not_short_text_is_refused_with_the_key(tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("CAMERA_URL=sample\nCAMERA_NAME=Ada<script>\n")
    with pytest.raises(SettingsError, match="CAMERA_NAME"):
        load_settings(bad, environ={})
