"""The fallback labeller (feature 14) in the real tick: `monitor.py --once` on the sample camera, real SQLite, and a
real OpenAI-compatible server on 127.0.0.1 (`ChatServer`, below) that records what it receives and can be told to
fail, hang or talk nonsense. Off by default; labels are training signal only.

The sample night's 23:00-23:40 stretch shows the back of the baby's head: the cascade finds the baby but no face
(state "unknown"), so that frame needs a teacher. At 03:00 the baby sleeps face up and the cascade sees it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from capture.sample_camera import BASSINET_CROP, frame_at
from capture.sources import bassinet_crop
from db.store import Store, TickRow
from labeller.client import LabellerError, parse_label
from labeller.fallback import MAX_ATTEMPTS, label_pending, needs_teacher
from settings import load_settings
from tests.conftest import free_port
from tests.test_dashboard import call, dashboard_settings, serving
from tests.tick_runner import run_tick, sample_tick

MODEL = "test-vision:7b"
API_KEY = "sk-bilbo-test-key-do-not-leak"
LABEL = '{"baby_present": true, "eyes": "closed"}'


class ChatServer:
    """A real chat-completions endpoint on 127.0.0.1: answers with `reply` as the model's text, or `status` with an
    error body, or hangs `hang_s` seconds first; every request is kept in `requests` (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply = LABEL
        self.status = 200
        self.hang_s = 0.0
        self.redirect_to: str | None = None  # answer 302 with this Location (a client that follows would GET it)
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self, **extra: str) -> dict[str, str]:
        """The BILBO_* variables that turn the labeller on, pointed at this server."""
        return {
            "BILBO_FALLBACK_LABELLER_URL": self.base_url,
            "BILBO_FALLBACK_LABELLER_MODEL": MODEL,
            "BILBO_FALLBACK_LABELLER_API_KEY": API_KEY,
            "BILBO_AUDIO_SECONDS": "0",
            **extra,
        }

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                server.requests.append({**received, "body": json.loads(body) if body else None})
                if server.hang_s:
                    server._release.wait(server.hang_s)
                if server.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.status != 200:
                    payload = {"error": {"message": "model not loaded", "type": "server_error"}}
                else:
                    message = {"role": "assistant", "content": server.reply}
                    payload = {
                        "object": "chat.completion",
                        "model": MODEL,
                        "choices": [{"index": 0, "message": message}],
                    }
                data = json.dumps(payload).encode()
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the tick gave up waiting (timeout test)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def chat():
    with ChatServer() as server:
        yield server


def history(data_dir, tick_id: int = 1) -> list:
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        return store.teacher_history(tick_id)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


# ---- which frames: one pure rule ----------------------------------------------------------------------------
def row(**changes) -> TickRow:
    """A classified night tick that saw everything (baby present, face found, eyes closed), changed as asked."""
    seen = TickRow(1.0, "sample", False, 9.0, True, "asleep", "present", 0.99, (1.0, 2.0, 30.0, 40.0), 0.9, "closed",
                   0.95, "frames/a.jpg", "m", 5.0)  # fmt: skip
    return replace(seen, **changes)


@pytest.mark.parametrize(
    ("changes", "needed"),
    [
        ({}, False),  # seen: present, face, eyes closed
        ({"state": "unknown", "eyes_label": "unknown", "eyes_conf": 0.55}, True),  # eye verdict below threshold
        ({"state": "unknown", "face_box": None, "face_conf": 0.02, "eyes_label": None, "eyes_conf": None}, True),
        ({"state": "absent", "presence_label": "not_present", "presence_conf": 0.98, "face_box": None}, False),
        ({"state": "absent", "presence_label": "not_present", "presence_conf": 0.6, "face_box": None}, True),
        ({"presence_conf": 0.7}, True),  # "present", but unsure
        ({"state": "unknown", "eyes_label": "unknown", "unchanged": True}, False),  # no new picture
        ({"state": "unknown", "eyes_label": "unknown", "jpeg_path": None}, False),
        ({"state": "unknown", "eyes_label": "unknown", "media_pruned_ts": 5.0}, False),
    ],
    ids=[
        "seen",
        "eyes-unknown",
        "no-face",
        "surely-empty",
        "unsure-empty",
        "unsure-present",
        "unchanged",
        "no-jpeg",
        "pruned",
    ],
)
def test_only_frames_the_cascade_could_not_see_need_a_teacher(changes, needed):
    assert needs_teacher(row(**changes)) is needed


# ---- the reply: strict JSON, read robustly ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "label"),
    [
        (LABEL, ("present", "closed")),
        ('```json\n{"baby_present": true, "eyes": "open"}\n```', ("present", "open")),
        ('Sure! {"baby_present": false, "eyes": "not_visible", "why": "empty"}', ("not_present", "not_visible")),
    ],
)
def test_reply_is_read_through_fences_and_chatter(text, label):
    assert parse_label(text) == label


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("The baby is asleep.", "no JSON object"),
        ('{"baby_present": "yes", "eyes": "closed"}', "baby_present must be true or false"),
        ('{"baby_present": true, "eyes": "half"}', "eyes must be one of"),
        ('{"baby_present": false, "eyes": "open"}', "contradictory"),
        ('{"baby_present": true, "eyes": "closed"', "no JSON object"),
        ('{"baby_present": true, eyes: closed}', "does not parse"),
    ],
)
def test_anything_but_the_label_asked_for_is_garbage_with_a_clear_message(text, why):
    with pytest.raises(LabellerError, match=why) as caught:
        parse_label(text)
    assert caught.value.raw == text


# ---- the real tick ------------------------------------------------------------------------------------------
def test_off_by_default_the_tick_sends_nothing_and_stores_no_label(tmp_path, chat):
    done = sample_tick(tmp_path, "23:00", BILBO_AUDIO_SECONDS="0")  # the frame would need a teacher...
    assert done.returncode == 0, done.stderr
    assert chat.requests == [] and history(tmp_path) == []  # ...but nobody configured one
    assert "fallback labeller" not in done.stderr and not (tmp_path / "teacher_labels.jsonl").exists()


def test_a_frame_the_cascade_cannot_see_is_sent_once_with_its_jpeg_and_the_label_kept_for_training(tmp_path, chat):
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # a proxy is a second destination: the labeller ignores it
    proxies = {"http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "no_proxy": "", "NO_PROXY": ""}
    done = sample_tick(tmp_path, "23:00", **chat.env(**proxies))
    assert done.returncode == 0, done.stderr
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        [tick] = store.ticks_between(0, 1e12)
        [label] = store.teacher_history(tick.id)
    assert tick.state == "unknown" and tick.face_box is None  # the cascade's own answer, never overwritten

    [sent] = chat.requests
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = sent["body"]
    assert body["model"] == MODEL and body["temperature"] == 0
    [message] = body["messages"]
    text, image = message["content"]
    assert text["type"] == "text" and '"baby_present"' in text["text"]
    prefix, encoded = image["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/jpeg;base64"
    sent_image = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = BASSINET_CROP  # only the bassinet crop leaves the house, not the room around it
    stored_crop = cv2.imread(str(tmp_path / tick.jpeg_path))[y1:y2, x1:x2]
    assert sent_image.shape == stored_crop.shape
    assert np.abs(sent_image.astype(int) - stored_crop).mean() < 3  # the same pixels, re-encoded

    assert (label.presence, label.eyes, label.state, label.error) == ("present", "closed", "asleep", None)
    assert (label.model, label.labeller, label.raw) == (MODEL, chat.base_url, LABEL)
    assert label.disagrees  # "asleep" vs the cascade's "unknown"
    [line] = (tmp_path / "teacher_labels.jsonl").read_text().splitlines()
    assert json.loads(line) == {"op": "teacher", **json.loads(json.dumps(label.__dict__))}
    assert f"sending the bassinet crop of tick {tick.id}" in done.stderr and chat.base_url in done.stderr
    assert API_KEY not in done.stderr and warnings(done.stderr) == []

    again = sample_tick(tmp_path, "23:04", **chat.env())  # labelled once: never asked about again
    assert again.returncode == 0 and len(chat.requests) == 1


def test_a_frame_the_cascade_sees_is_never_sent(tmp_path, chat):
    done = sample_tick(tmp_path, "03:00", **chat.env())
    assert done.returncode == 0, done.stderr
    assert chat.requests == [] and history(tmp_path) == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("down", "cannot reach"),
        ("timeout", "no answer from"),
        ("http 500", "answered HTTP 500"),
        ("garbage", "the reply holds no JSON object"),
        ("redirect", "answered HTTP 302"),  # refused: the frame goes to the configured URL and nowhere else
    ],
)
def test_a_broken_server_costs_one_warning_the_tick_succeeds_and_the_frame_stays_pending(
    tmp_path, chat, fault, message
):
    env = chat.env(BILBO_FALLBACK_LABELLER_TIMEOUT_S="1")
    if fault == "down":
        env["BILBO_FALLBACK_LABELLER_URL"] = f"http://127.0.0.1:{free_port()}/v1"
    chat.hang_s = 10.0 if fault == "timeout" else 0.0
    chat.status = 500 if fault == "http 500" else 200
    chat.reply = "The baby seems to be sleeping peacefully." if fault == "garbage" else LABEL
    with ChatServer() as elsewhere:
        chat.redirect_to = f"{elsewhere.base_url}/chat/completions" if fault == "redirect" else None
        done = sample_tick(tmp_path, "23:00", **env)
    assert elsewhere.requests == []
    assert done.returncode == 0, done.stderr
    assert "tick 23:00 night: unknown" in done.stderr  # the tick's own line, result stored
    [warning] = warnings(done.stderr)
    assert f"no label for tick 1 (attempt 1 of {MAX_ATTEMPTS}, a later tick retries)" in warning and message in warning
    [failed] = history(tmp_path)
    assert failed.error and message in failed.error and failed.presence is None and failed.state is None


def test_a_failed_frame_is_retried_on_later_ticks_and_given_up_after_max_attempts(tmp_path, chat):
    chat.reply = "no idea"
    for attempt, hhmm in enumerate(("23:00", "23:04", "23:08"), start=1):
        done = sample_tick(tmp_path, hhmm, **chat.env())
        assert done.returncode == 0, done.stderr
        [warning] = warnings(done.stderr)
        assert f"no label for tick 1 (attempt {attempt} of {MAX_ATTEMPTS}" in warning
    assert "giving up on this frame" in warning and len(chat.requests) == MAX_ATTEMPTS
    chat.reply = LABEL
    assert sample_tick(tmp_path, "23:12", **chat.env()).returncode == 0
    assert len(chat.requests) == MAX_ATTEMPTS and [t.error is not None for t in history(tmp_path)] == [True] * 3


def test_a_server_that_recovers_labels_the_pending_frame_on_the_next_tick(tmp_path, chat):
    chat.status = 500
    assert sample_tick(tmp_path, "23:00", **chat.env()).returncode == 0
    chat.status = 200
    done = sample_tick(tmp_path, "23:04", **chat.env())
    assert done.returncode == 0 and warnings(done.stderr) == []
    assert [(t.error is None, t.eyes) for t in history(tmp_path)] == [(False, None), (True, "closed")]


def test_calls_are_capped_per_hour(tmp_path, chat):
    chat.status = 500  # the 23:00 frame stays pending
    env = chat.env(BILBO_FALLBACK_LABELLER_MAX_PER_HOUR="1")
    assert sample_tick(tmp_path, "23:00", **env).returncode == 0
    capped = sample_tick(tmp_path, "23:30", **env)
    assert capped.returncode == 0 and "1 calls in the last hour" in capped.stderr and len(chat.requests) == 1
    later = run_tick(tmp_path, "--once", "--source", "sample", "--at", "2026-11-22T00:01:00", **env)
    assert later.returncode == 0 and len(chat.requests) == 2


def test_with_no_bassinet_crop_configured_no_frame_leaves_the_house(tmp_path, chat, caplog):
    """The README promises only the bassinet crop leaves. A real camera without BASSINET_CROP has no crop, so the
    frame stays home (never the whole room), with one warning saying what to set; with a crop the same frame goes,
    cut to it. The tick's own crop rule decides (capture.sources.bassinet_crop), on a real store and a real server."""
    camera = "rtsp://192.0.2.5:554/stream1"
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(tmp_path), "BILBO_CAMERA_URL": camera, **chat.env()})
    (tmp_path / "frames").mkdir()
    picture, _ = frame_at(datetime(2026, 11, 21, 23, 0))
    assert cv2.imwrite(str(tmp_path / "frames" / "a.jpg"), picture)
    now = time.time()
    unseen = row(ts=now - 60, source=camera, jpeg_path="frames/a.jpg", state="unknown", eyes_label="unknown")
    with Store.open(settings.db_path) as store:
        tick_id = store.insert_tick(unseen)
    assert needs_teacher(unseen) and bassinet_crop(settings, camera) is None

    with caplog.at_level(logging.INFO, logger="bilbo.labeller"):
        assert label_pending(settings, now, crop_of=bassinet_crop) is None
    assert chat.requests == [] and history(tmp_path, tick_id) == []  # nothing sent, no attempt used up
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "no BASSINET_CROP" in warning and "nothing sent" in warning

    cropped = replace(settings, bassinet_crop=(100, 50, 300, 200))
    label = label_pending(cropped, now, crop_of=bassinet_crop)
    assert label is not None and label.error is None
    [sent] = chat.requests
    encoded = sent["body"]["messages"][0]["content"][1]["image_url"]["url"].split(",", 1)[1]
    image = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (150, 200)  # the crop, not the 640x480 room


# ---- the dashboard: the teacher's word is shown, and disagreements are reviewed first -------------------------------
def test_teacher_label_shows_on_the_tick_and_a_disagreement_leads_the_review_queue(tmp_path, chat):
    assert sample_tick(tmp_path, "23:00", **chat.env()).returncode == 0  # teacher: asleep; cascade: unknown
    settings = dashboard_settings(tmp_path, fallback_labeller_url=chat.base_url, fallback_labeller_model=MODEL)
    with Store.open(settings.db_path) as store:
        [taught] = store.ticks_between(0, 1e12)
        # An earlier night frame with "unknown" eyes: as low a priority as the taught frame (or lower), and earlier,
        # so without the teacher it would come first.
        rival = store.insert_tick(replace(taught, ts=taught.ts - 3600, eyes_label="unknown", presence_conf=0.5))
    with serving(settings) as base:
        status, tick, _ = call("GET", f"{base}/api/ticks/{taught.id}")
        assert status == 200
        assert tick["teacher"] == {
            "state": "asleep", "presence": "present", "eyes": "closed", "disagrees": True, "model": MODEL,
            "labeller": chat.base_url, "ts": tick["teacher"]["ts"], "raw": LABEL, "attempts": 1, "last_error": None,
        }  # fmt: skip
        assert tick["state"] == tick["effective_state"] == "unknown"  # a teacher never decides the state
        status, queue, _ = call("GET", f"{base}/api/review")
        assert status == 200 and f"fallback labeller ({MODEL}) disagrees with come first" in queue["teacher"]
        assert [item["id"] for item in queue["items"]] == [taught.id, rival]
        assert queue["items"][0]["reasons"][0].startswith("fallback labeller says asleep, the model unknown")
        assert queue["items"][0]["priority"] < queue["items"][1]["priority"]
        assert call("GET", f"{base}/api/ticks/{rival}")[1]["teacher"] is None


def test_the_frame_view_shows_the_fallback_labellers_hint_in_chromium(tmp_path, chat):
    from playwright.sync_api import expect, sync_playwright

    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

    assert sample_tick(tmp_path, "23:00", **chat.env()).returncode == 0  # teacher: asleep; cascade: unknown
    settings = dashboard_settings(tmp_path, fallback_labeller_url=chat.base_url, fallback_labeller_model=MODEL)
    with Store.open(settings.db_path) as store:
        [taught] = store.ticks_between(0, 1e12)
    with serving(settings) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(base + "/")
            expect(page.locator("#timeline")).to_be_attached()
            page.evaluate(f"openTick({taught.id})")  # what a click on the timeline or the review queue does
            details = page.locator("#details")
            expect(details).to_contain_text("fallback labeller")
            expect(details).to_contain_text(f"asleep (baby present, eyes closed), {MODEL}: a training hint")
            expect(details).to_contain_text("state")  # the model's own state is still what the row shows
            assert "unknown" in details.locator("tr", has_text="state").first.inner_text()
        finally:
            browser.close()
