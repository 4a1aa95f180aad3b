"""`monitor.py --check` says whether `ps` can show the camera password (real processes, the real ffmpeg)."""

from __future__ import annotations

import subprocess

from capture.ffmpeg import find_ffmpeg
from tests.conftest import free_port
from tests.tick_runner import run_tick


def ffmpeg_line(result: subprocess.CompletedProcess) -> str:
    [line] = [line for line in result.stdout.splitlines() if line[8:].startswith("ffmpeg")]
    return line


def test_check_says_the_camera_password_stays_off_ffmpegs_command_line(tmp_path):
    camera = f"rtsp://parent:hunter2@127.0.0.1:{free_port()}/cam"  # nobody there: the camera line fails, not this
    result = run_tick(tmp_path, "--check", BILBO_CAMERA_URL=camera, BILBO_FFMPEG_PATH=find_ffmpeg())
    line = ffmpeg_line(result)
    assert line.startswith("  ok    ffmpeg") and "`ps` never shows its password" in line
    assert "hunter2" not in result.stdout + result.stderr


def test_check_warns_that_an_ffmpeg_older_than_5_shows_the_password_in_ps(tmp_path):
    """No ffmpeg 4 is installed here; a stand-in program answers `-version` as Debian 11's does."""
    old = tmp_path / "ffmpeg4"
    old.write_text("#!/bin/sh\necho 'ffmpeg version 4.3.6-0+deb11u1 Copyright (c) 2000-2023 the FFmpeg developers'\n")
    old.chmod(0o755)
    camera = f"rtsp://parent:hunter2@127.0.0.1:{free_port()}/cam"
    result = run_tick(tmp_path, "--check", BILBO_CAMERA_URL=camera, BILBO_FFMPEG_PATH=str(old))
    line = ffmpeg_line(result)
    assert line.startswith("  warn  ffmpeg") and "sees in `ps`" in line and "ffmpeg 5 or newer" in line


def test_check_has_no_ffmpeg_line_without_an_rtsp_camera(tmp_path):
    result = run_tick(tmp_path, "--check", "--source", "sample")
    assert not [line for line in result.stdout.splitlines() if line[8:].startswith("ffmpeg")]
