"""Shared pytest fixtures. Each section belongs to one concern; add new fixtures in a section of their own."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------------------
# RTSP test camera: tests/rtsp_server.py (GStreamer's RTSP server, run by Debian's /usr/bin/python3)
# ---------------------------------------------------------------------------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = REPO_DIR / "tests" / "rtsp_server.py"
SYSTEM_DEPS_SCRIPT = REPO_DIR / ".ci" / "system-deps.sh"
RTSP_READY_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gstreamer_ready() -> tuple[bool, str]:
    if not os.path.exists(SYSTEM_PYTHON):
        return False, f"{SYSTEM_PYTHON} is missing"
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def ensure_gstreamer() -> None:
    """Make sure the RTSP server can run: install the Debian packages once if needed, else fail loudly."""
    ok, why = _gstreamer_ready()
    if ok:
        return
    install = subprocess.run(["bash", str(SYSTEM_DEPS_SCRIPT)], capture_output=True, text=True, timeout=1200)
    ok, why_after = _gstreamer_ready()
    if install.returncode != 0 or not ok:
        pytest.fail(
            f"GStreamer's RTSP server is not usable ({why.splitlines()[-1] if why else 'unknown'}) and "
            f"`bash .ci/system-deps.sh` could not install it (exit {install.returncode}): "
            f"{(install.stderr or install.stdout or why_after).strip()[-500:]}",
            pytrace=False,
        )


def _wait_ready(proc: subprocess.Popen, stderr_file, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if line.strip() == "READY":
            return
        if line == "":  # EOF: the server died
            break
    proc.kill()
    proc.wait()
    stderr_file.seek(0)
    err = stderr_file.read().decode("utf-8", "replace").strip()
    pytest.fail(f"tests/rtsp_server.py did not print READY within {timeout_s:g} s: {err[-500:]}", pytrace=False)


RtspServerFactory = Callable[..., str]


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspServerFactory]:
    """Factory: `url = rtsp_server(jpeg_path, audio=True, audio_wav=None, user=None, password="")` starts a test
    camera on a free port and returns rtsp://127.0.0.1:PORT/cam (credentials, if any, are not in the URL). Its
    audio track is a 440 Hz tone, or `audio_wav` looped (as G.711 at 8 kHz). Servers stop at the end of the
    session."""
    ensure_gstreamer()
    procs: list[subprocess.Popen] = []
    files = contextlib.ExitStack()

    def start(
        jpeg: Path | None = None,
        *,
        audio: bool = True,
        audio_wav: Path | None = None,
        user: str | None = None,
        password: str = "",
    ) -> str:
        port = free_port()
        cmd = [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--port", str(port)]
        if jpeg is not None:
            cmd += ["--jpeg", str(jpeg)]
        if not audio:
            cmd.append("--no-audio")
        elif audio_wav is not None:
            cmd += ["--audio-wav", str(audio_wav)]
        if user:
            cmd += ["--user", user, "--password", password]
        # stderr to a file, not a pipe: nobody reads it while the server runs. Closed at session end.
        stderr_file = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, text=True)
        procs.append(proc)
        _wait_ready(proc, stderr_file, RTSP_READY_TIMEOUT_S)
        return f"rtsp://127.0.0.1:{port}/cam"

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    files.close()


# ---------------------------------------------------------------------------------------------------------
# Telegram: a local Bot API endpoint on 127.0.0.1 (tests/bot_api_server.py) for python-telegram-bot
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def bot_api():
    """A real HTTP server speaking the Bot API on a free port; records requests, can fail or hang."""
    from tests.bot_api_server import BotApiServer

    with BotApiServer() as server:
        yield server


# ---------------------------------------------------------------------------------------------------------
# (add fixtures for other concerns below, each in its own marked section)
# ---------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------
# Audio: held-out clips of ../shared/data/audio (test split of train/cry_data.py, never trained on)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def held_out_audio() -> Callable[[str], Path]:
    """`path = held_out_audio("cry")`: the first held-out clip of that kind (cry, speech, music, noise) by
    path, from the test split the cry model never saw. Skips when the shared data set is not on this machine."""
    from train import cry_data

    if not (cry_data.AUDIO_ROOT / "donateacry" / "labels.csv").is_file():
        pytest.skip(f"shared audio data not found at {cry_data.AUDIO_ROOT}")
    clips = sorted((c for c in cry_data.index() if c.split == "test"), key=lambda c: c.path)

    def first(kind: str, folder: str | None = None) -> Path:
        clip = next(c for c in clips if c.kind == kind and folder in (None, c.folder))
        return cry_data.AUDIO_ROOT / clip.path

    return first
