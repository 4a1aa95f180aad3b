"""capture/: real ffmpeg against a real GStreamer RTSP server, real sockets, real files. No mocks."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from capture.ffmpeg import (
    TUNED_PROBE_ARGS,
    CaptureError,
    build_rtsp_grab_command,
    explain_ffmpeg_failure,
    find_ffmpeg,
    grab_rtsp_jpeg,
    redact_text,
    redact_url,
    refused_redirect,
)
from capture.sources import CapturedFrame, grab
from redaction import url_secrets
from tests.conftest import free_port
from tests.rtsp_redirect import RedirectingCamera

AT = datetime(2026, 1, 15, 2, 30)


def scene(width: int = 320, height: int = 240, color: tuple[int, int, int] = (0, 128, 255)) -> np.ndarray:
    """A picture with gradients, edges and colour, so a wrong or garbled frame cannot pass for it."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img = np.dstack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2])
    img = img.astype(np.uint8)
    cv2.rectangle(img, (width // 8, height // 6), (width // 2, height * 3 // 4), color, -1)
    cv2.circle(img, (width * 3 // 4, height // 2), height // 5, (255, 255, 255), -1)
    return img


def write_jpeg(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def served(rtsp_server, tmp_path_factory) -> tuple[str, np.ndarray]:
    """A camera serving a 320x240 still (with an audio track, like a real camera), and the picture itself."""
    img = scene()
    url = rtsp_server(write_jpeg(tmp_path_factory.mktemp("cam") / "served.jpg", img))
    return url, img


@pytest.fixture
def hanging_camera() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    yield f"rtsp://admin:hunter2@127.0.0.1:{server.getsockname()[1]}/stream1"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


# --- RTSP ------------------------------------------------------------------------------------------------


@pytest.mark.rtsp
def test_rtsp_grab_returns_the_served_picture_with_the_tuned_probing(served):
    url, img = served
    frame = grab(url, at=AT, timeout_s=10)

    assert isinstance(frame, CapturedFrame)
    assert frame.jpeg[:2] == b"\xff\xd8"
    assert frame.image.shape == img.shape
    decoded = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == img.shape
    assert mean_abs_diff(frame.image, img) < 4.0
    assert mean_abs_diff(frame.image, scene(color=(255, 0, 0))) > 4 * mean_abs_diff(frame.image, img)
    assert frame.source == url
    # Default ffmpeg probing needs ~4 s on this stream, the tuned command ~0.25 s (bench/grab.py measures it):
    # the tick's command must carry the tuned probing options.
    cmd = build_rtsp_grab_command(url, timeout_s=10, ffmpeg=find_ffmpeg())
    assert any(tuple(cmd[i : i + len(TUNED_PROBE_ARGS)]) == TUNED_PROBE_ARGS for i in range(len(cmd)))


@pytest.mark.rtsp
def test_rtsp_grab_twice_from_the_shared_stream(served):
    url, img = served
    ffmpeg = find_ffmpeg()
    for _ in range(2):
        jpeg = grab_rtsp_jpeg(url, timeout_s=10, ffmpeg=ffmpeg)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert mean_abs_diff(image, img) < 4.0


@pytest.mark.rtsp
def test_rtsp_wrong_path_is_404(served):
    url, _ = served
    with pytest.raises(CaptureError, match="404"):
        grab(url.replace("/cam", "/nope"), at=AT, timeout_s=10)


@pytest.mark.rtsp
def test_rtsp_wrong_password_is_401_and_credentials_are_redacted(rtsp_server, tmp_path):
    url = rtsp_server(write_jpeg(tmp_path / "a.jpg", scene()), audio=False, user="nanny", password="Corr3ct-horse")
    host_part = url.removeprefix("rtsp://")

    frame = grab(f"rtsp://nanny:Corr3ct-horse@{host_part}", at=AT, timeout_s=10)
    assert frame.image.shape == (240, 320, 3)
    assert "Corr3ct-horse" not in frame.source and "nanny" not in frame.source

    with pytest.raises(CaptureError) as info:
        grab(f"rtsp://nanny:s3cret-W0rd@{host_part}", at=AT, timeout_s=10)
    message = str(info.value)
    assert "401 Unauthorized" in message
    assert "s3cret-W0rd" not in message and "nanny" not in message
    assert f"rtsp://***@{host_part}" in message


def test_camera_down_is_refused_within_timeout():
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream1"
    start = time.monotonic()
    with pytest.raises(CaptureError) as info:
        grab(url, at=AT, timeout_s=5)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "refused" in message
    assert "hunter2" not in message and "admin" not in message
    assert "\n" not in message


def test_hanging_camera_gives_up_within_timeout(hanging_camera):
    start = time.monotonic()
    with pytest.raises(CaptureError) as info:
        grab(hanging_camera, at=AT, timeout_s=2)
    elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 4.0
    message = str(info.value)
    assert "did not" in message and "hunter2" not in message


def test_redact_url():
    assert redact_url("rtsp://admin:p@ss:w0rd@cam.local:554/s1") == "rtsp://***@cam.local:554/s1"
    assert redact_url("rtsp://admin:ab/cd@cam.local/s1") == "rtsp://***@cam.local/s1"
    assert "pw" not in redact_text("ffmpeg: 'rtsp://u:pw@cam/s1': Invalid data; rtsp://v:pw@cam2/s2 too")
    assert redact_url("rtsp://cam.local:554/stream1") == "rtsp://cam.local:554/stream1"
    assert (
        redact_url("rtsp://cam/onvif?user=admin&password=x1&channel=1")
        == "rtsp://cam/onvif?user=***&password=***&channel=1"
    )


# --- secrets: redaction, the command line, redirects -----------------------------------------------------------

PECULIAR_PASSWORD = "pa ss'w\"d\t@X9"  # a space, both quotes, a tab and an @: each stopped the old pattern


@pytest.mark.rtsp
def test_a_password_with_spaces_quotes_and_tabs_never_reaches_a_source_or_an_error(rtsp_server, tmp_path):
    url = rtsp_server(write_jpeg(tmp_path / "a.jpg", scene()), audio=False, user="nanny", password=PECULIAR_PASSWORD)
    host_part = url.removeprefix("rtsp://")

    frame = grab(f"rtsp://nanny:{PECULIAR_PASSWORD}@{host_part}", at=AT, timeout_s=10)
    assert frame.source == f"rtsp://***@{host_part}"  # ffmpeg took the password: the frame came

    port = host_part.split(":")[1].split("/")[0]
    for where in (host_part.replace("/cam", "/nope"), host_part.replace(port, str(free_port()))):  # 404, refused
        with pytest.raises(CaptureError) as info:
            grab(f"rtsp://nanny:{PECULIAR_PASSWORD}@{where}", at=AT, timeout_s=10, audio_s=1)
        message = str(info.value)
        assert f"rtsp://***@{where}" in message
        for piece in ("pa ss", 'w"d', "@X9", "nanny"):
            assert piece not in message, message


@pytest.mark.parametrize(
    ("status_line", "meaning"),
    [
        ("404 Not Found", "has no stream at this path (404 Not Found)"),
        ("401 Unauthorized", "rejected the user name or password (401 Unauthorized)"),
        ("403 Forbidden", "refused access to the stream (403 Forbidden)"),
    ],
)
@pytest.mark.parametrize("port", [40379, 40412, 14040, 4401])
def test_a_status_code_is_read_from_ffmpegs_words_not_from_the_port_in_the_url(port, status_line, meaning):
    """ffmpeg quotes the URL in its error line; a port like 40379 once made a 404 read as "403 Forbidden"."""
    stderr = (
        f"[rtsp @ 0x55] [error] method DESCRIBE failed: {status_line}\n"
        f"[in#0 @ 0x56] [error] Error opening input: rtsp://127.0.0.1:{port}/nope: Server returned {status_line}\n"
    )
    assert explain_ffmpeg_failure(stderr) == meaning


def test_ffmpegs_own_words_are_redacted_with_the_urls_password():
    """ffmpeg quotes the URL as given, and a password with a space or quote has no end a pattern can find."""
    url = f"rtsp://nanny:{PECULIAR_PASSWORD}@cam.local/s1"
    stderr = f"[in#0 @ 0x55] [error] Impossible to open '{url}'\n[fatal] Error opening input files: I/O error\n"
    said = explain_ffmpeg_failure(stderr.replace("I/O error", f"bad '{url}'"), url_secrets(url))
    assert "made ffmpeg fail" in said and "cam.local/s1" in said
    assert "pa ss" not in said and "@X9" not in said


def _ffmpeg_children() -> list[tuple[bytes, bytes]]:
    """(cmdline, environ) of each ffmpeg this test process is running right now, as any local user's `ps` shows
    the command line (environ: only to its owner)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            cmdline = (proc / "cmdline").read_bytes()
            if b"ffmpeg" in cmdline.split(b"\0")[0] and b"-version" not in cmdline:
                found.append((cmdline, (proc / "environ").read_bytes()))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc, as ps does")
def test_the_camera_url_is_not_on_ffmpegs_command_line_while_it_grabs(hanging_camera):
    """A camera that never answers keeps ffmpeg waiting its whole timeout: what `ps` shows all that time."""
    outcome: list[CaptureError] = []

    def grab_and_fail() -> None:
        try:
            grab(hanging_camera, at=AT, timeout_s=3)
        except CaptureError as exc:
            outcome.append(exc)

    grabbing = threading.Thread(target=grab_and_fail)
    grabbing.start()
    seen: list[tuple[bytes, bytes]] = []
    while grabbing.is_alive():
        seen += _ffmpeg_children()
        time.sleep(0.05)
    grabbing.join()
    assert outcome and "did not" in str(outcome[0])
    assert seen, "no ffmpeg seen during the grab"
    for cmdline, environ in seen:
        assert b"hunter2" not in cmdline and b"rtsp://" not in cmdline, cmdline
        assert b"hunter2" not in environ


@pytest.mark.rtsp
@pytest.mark.parametrize("audio_s", [0, 1], ids=["video", "video+audio"])
def test_a_camera_redirecting_the_grab_to_another_address_is_refused(served, audio_s):
    """ffmpeg follows an RTSP 302 on its own (no option stops it); the frame it then gets from an address that
    CAMERA_URL does not name is refused, with one line saying where the camera sent it."""
    elsewhere, _ = served  # a working camera at 127.0.0.1: the frame would come, were it not refused
    with RedirectingCamera(elsewhere, host="127.0.0.2") as camera, pytest.raises(CaptureError) as info:
        grab(camera.url.replace("rtsp://", "rtsp://nanny:hunter2@"), at=AT, timeout_s=10, audio_s=audio_s)
    message = str(info.value)
    assert camera.requests and camera.requests[0].startswith("OPTIONS rtsp://127.0.0.2:")
    assert f"redirected the grab to {elsewhere}" in message and "refused" in message
    assert "hunter2" not in message and "\n" not in message


def test_a_redirect_counts_only_when_it_leaves_the_configured_host_and_port():
    said = "[rtsp @ 0x5] [info] Status 302: Redirecting to {}\n"
    camera = "rtsp://u:p@Cam.local/live"
    assert refused_redirect(camera, said.format("rtsp://cam.local:554/live2")) is None  # a new path, same camera
    assert refused_redirect(camera, said.format("rtsp://cam.local:8554/live")) == "rtsp://cam.local:8554/live"
    assert refused_redirect(camera, said.format("rtsp://192.0.2.7/live")) == "rtsp://192.0.2.7/live"
    assert refused_redirect(camera, "[rtsp @ 0x5] [error] method DESCRIBE failed: 404 Not Found\n") is None


# --- ffmpeg discovery -------------------------------------------------------------------------------------


def test_find_ffmpeg_falls_back_to_imageio_ffmpeg(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg on PATH
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    found = find_ffmpeg()
    assert found == imageio_ffmpeg.get_ffmpeg_exe()
    assert os.access(found, os.X_OK)


def test_find_ffmpeg_prefers_path_and_config(monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg() == str(fake)
    assert find_ffmpeg(str(fake)) == str(fake)
    with pytest.raises(CaptureError, match="ffmpeg not found"):
        find_ffmpeg(str(tmp_path / "missing" / "ffmpeg"))


def test_configured_ffmpeg_missing_is_a_clear_error(tmp_path):
    with pytest.raises(CaptureError, match="ffmpeg not found"):
        grab("rtsp://127.0.0.1:9/x", at=AT, timeout_s=2, ffmpeg_path=str(tmp_path / "ffmpeg"))


# --- files, folders, sample -------------------------------------------------------------------------------


def test_jpeg_file_source(tmp_path):
    img = scene()
    path = write_jpeg(tmp_path / "snap.jpg", img)
    frame = grab(str(path), at=AT, timeout_s=1)
    assert frame.jpeg == path.read_bytes()
    assert mean_abs_diff(frame.image, img) < 3.0
    assert frame.source == str(path)


def test_png_file_source_is_reencoded_as_jpeg(tmp_path):
    img = scene()
    path = tmp_path / "snap.png"
    assert cv2.imwrite(str(path), img)
    frame = grab(str(path), at=AT, timeout_s=1)
    assert frame.jpeg[:2] == b"\xff\xd8"
    assert np.array_equal(frame.image, img)


def test_truncated_jpeg_is_a_capture_error(tmp_path):
    whole = write_jpeg(tmp_path / "whole.jpg", scene()).read_bytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CaptureError, match="is not a decodable JPEG"):
        grab(str(half), at=AT, timeout_s=1)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + os.urandom(2000) + b"\xff\xd9")
    with pytest.raises(CaptureError, match="is not a decodable JPEG"):
        grab(str(garbage), at=AT, timeout_s=1)


def test_folder_source_picks_the_newest_jpeg(tmp_path):
    colors = {"c_old.jpg": (255, 0, 0), "a_newest.jpg": (0, 255, 0), "b_middle.jpeg": (0, 0, 255)}
    now = time.time()
    for age, (name, color) in zip((300, 0, 100), colors.items(), strict=True):
        path = write_jpeg(tmp_path / name, scene(color=color))
        os.utime(path, (now - age, now - age))
    (tmp_path / "notes.txt").write_text("not a picture")
    frame = grab(str(tmp_path), at=AT, timeout_s=1)
    assert frame.source == str(tmp_path / "a_newest.jpg")
    assert mean_abs_diff(frame.image, scene(color=(0, 255, 0))) < 3.0


def test_missing_and_empty_sources_are_capture_errors(tmp_path):
    with pytest.raises(CaptureError, match="holds no JPEG"):
        grab(str(tmp_path), at=AT, timeout_s=1)
    with pytest.raises(CaptureError, match="neither"):
        grab(str(tmp_path / "nowhere.jpg"), at=AT, timeout_s=1)


def test_sample_source():
    from capture.sample_camera import frame_at

    frame = grab("sample", at=AT, timeout_s=1)
    expected, _ = frame_at(AT)
    assert frame.image.shape == expected.shape
    decoded = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert mean_abs_diff(decoded, expected) < 3.0


# --- a frame that shows nothing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("picture", "said"),
    [
        (np.zeros((240, 320, 3), np.uint8), "all black"),
        (np.full((240, 320, 3), 250, np.uint8), "all white"),
        (np.full((240, 320, 3), (90, 160, 20), np.uint8), "one flat colour"),  # a green decoding glitch
        (  # a covered lens in the dark: black with sensor noise, which is not a scene
            np.clip(np.random.default_rng(0).normal(6, 4, (240, 320, 3)), 0, 255).astype(np.uint8),
            "all black",
        ),
    ],
    ids=["black", "white", "flat-green", "dark-noise"],
)
def test_a_frame_that_shows_nothing_is_a_capture_error_saying_what_it_shows(tmp_path, picture, said):
    path = tmp_path / "snap.png"  # lossless, so the picture is exactly what the tick decodes
    assert cv2.imwrite(str(path), picture)
    with pytest.raises(CaptureError, match=f"sent a frame that shows nothing: {said}"):
        grab(str(path), at=AT, timeout_s=1)


def test_every_sample_frame_of_a_day_and_night_is_a_scene():
    """The darkest infrared frame must be far from the blank limit, or a real night would read as a blind camera."""
    from datetime import timedelta

    from capture.sample_camera import frame_at
    from capture.sources import BLANK_SPREAD, BLANK_THUMBNAIL, blank_frame

    spreads = []
    for minutes in range(0, 24 * 60, 20):
        image, _ = frame_at(datetime(2026, 11, 21) + timedelta(minutes=minutes))
        assert blank_frame(image) is None
        thumb = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), BLANK_THUMBNAIL, interpolation=cv2.INTER_AREA)
        spreads.append(float(np.subtract(*np.percentile(thumb, (99, 1)))))
    assert min(spreads) > 5 * BLANK_SPREAD


def test_a_real_camera_streaming_black_is_a_capture_error(rtsp_server, tmp_path):
    url = rtsp_server(write_jpeg(tmp_path / "black.jpg", np.zeros((240, 320, 3), np.uint8)), audio=False)
    with pytest.raises(CaptureError, match=r"rtsp://127\.0\.0\.1:\d+/cam sent a frame that shows nothing: all black"):
        grab(url, at=AT, timeout_s=10)


def test_a_snapshot_folder_whose_camera_stopped_uploading_is_a_capture_error(tmp_path):
    path = write_jpeg(tmp_path / "snap-0210.jpg", scene())
    twenty_minutes_ago = time.time() - 20 * 60
    os.utime(path, (twenty_minutes_ago, twenty_minutes_ago))
    with pytest.raises(CaptureError, match=r"snap-0210\.jpg\) is 20 min old: has the camera stopped uploading\?"):
        grab(str(tmp_path), at=AT, timeout_s=1)
    write_jpeg(tmp_path / "snap-0230.jpg", scene())  # the camera uploads again
    assert grab(str(tmp_path), at=AT, timeout_s=1).source == str(tmp_path / "snap-0230.jpg")
