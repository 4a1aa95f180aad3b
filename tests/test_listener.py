"""The continuous cry listener (issue 16), with real parts: the GStreamer RTSP test camera carrying a known cry
(a held-out recording the cry model never trained on), real `python -m listener` processes with the real ffmpeg and
the shipped ONNX model, the local Bot API, a real mosquitto, real SQLite. The tick's side (`listener.health`) is
called as monitor.py's run_once calls it.

The test camera runs with --unshared (one pipeline per client, like a camera): GStreamer's shared media, first set
up audio-only by the listener, refuses a later client's video, which no camera tested here does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from capture.audio import AudioClip, dbfs, write_wav
from db.store import Alert, CryEpisode, Store, TickRow
from listener import health, heartbeat
from listener.detector import End, EpisodeTracker, Onset, Windows
from listener.heartbeat import Heartbeat
from models.cry import DEFAULT_MODELS_DIR, CryModel, decode_8k
from models.cry_rule import CryRule
from redaction import redact_url
from settings import load_settings
from tests.bot_api_server import TEST_TOKEN
from tests.conftest import RTSP_SERVER_SCRIPT, SYSTEM_PYTHON, _wait_ready, ensure_gstreamer, free_port
from tests.test_mqtt import broker, needs_mosquitto, retained  # noqa: F401 - `broker` is a fixture

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
QUIET_S, TAIL_S = 10.0, 25.0
END_AFTER_S = 5  # the test rule's quiet time that ends an episode (the shipped one waits longer)
CHAT = "4242"


# ---------------------------------------------------------------------------------------------------------
# A known cry, a camera that plays it, a listener process
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cry_recording(held_out_audio, tmp_path_factory) -> tuple[Path, float, float]:
    """(wav, cry start s, cry end s): a quiet room, a held-out cry recording three times, the quiet room again."""
    cry = decode_8k(held_out_audio("cry"))
    cry = np.tile(cry, 3) * (0.3 / max(1e-6, float(np.abs(cry).max())))
    rng = np.random.default_rng(16)
    quiet = lambda s: (rng.standard_normal(int(s * 8000)) * 0.002).astype(np.float32)  # noqa: E731
    samples = np.concatenate([quiet(QUIET_S), cry.astype(np.float32), quiet(TAIL_S)])
    path = tmp_path_factory.mktemp("cry") / "cry-stream.wav"
    write_wav(path, AudioClip(samples, 8000))
    return path, QUIET_S, QUIET_S + len(cry) / 8000


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """The shipped models, the cry rule's episode ending after END_AFTER_S quiet seconds (so a test sees an end)."""
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(DEFAULT_MODELS_DIR / "cry.onnx", folder / "cry.onnx")
    # the vision models, for the tick a cry starts
    for vision in ("presence.onnx", "face.onnx", "eyes.onnx", "points.onnx", "manifest.json"):
        shutil.copy(DEFAULT_MODELS_DIR / vision, folder / vision)
    manifest = json.loads((DEFAULT_MODELS_DIR / "cry.json").read_text())
    manifest["rule"] = {**CryRule.from_dict(manifest.get("rule")).to_dict(), "end_after_s": END_AFTER_S}
    (folder / "cry.json").write_text(json.dumps(manifest))
    return folder


@dataclass
class Camera:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"


@pytest.fixture
def camera() -> Iterator[Callable[..., Camera]]:
    """Factory: `camera(wav=None, audio=True, port=None)` starts tests/rtsp_server.py (one pipeline per client);
    `stop(cam)` kills it, and calling the factory again with `port=cam.port` brings the same camera back."""
    ensure_gstreamer()
    started: list[tuple[subprocess.Popen, object]] = []

    def start(wav: Path | None = None, *, audio: bool = True, port: int | None = None) -> Camera:
        port = port or free_port()
        cmd = [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--port", str(port), "--unshared"]
        cmd += ["--audio-wav", str(wav)] if wav and audio else ([] if audio else ["--no-audio"])
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed at the end of the test
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        started.append((proc, stderr))
        _wait_ready(proc, stderr, 15.0)
        return Camera(port, proc)

    yield start
    for proc, stderr in started:
        stop_process(proc)
        stderr.close()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Running:
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, level: str) -> list[str]:
        return [line for line in self.log().splitlines() if f" {level} " in line]

    def beat(self) -> Heartbeat | None:
        return heartbeat.read(self.data_dir / "listener.json")


@pytest.fixture
def listener(tmp_path) -> Iterator[Callable[..., Running]]:
    """Factory: `listener(camera_url, **BILBO_settings)` runs `python -m listener` on its own data dir."""
    running: list[Running] = []

    def start(camera_url: str, **settings: str) -> Running:
        data_dir = tmp_path / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
        env.update(BILBO_DATA_DIR=str(data_dir), BILBO_CAMERA_URL=camera_url, PYTHONUNBUFFERED="1")
        env.update({f"BILBO_{key.upper()}": value for key, value in settings.items()})
        log_path = tmp_path / f"listener-{len(running)}.log"
        with log_path.open("wb") as log_file:
            cmd = [str(PYTHON), "-m", "listener", "--config", str(tmp_path / "no.env")]
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        run = Running(proc, log_path, data_dir)
        running.append(run)
        return run

    yield start
    for run in running:
        stop_process(run.proc)


def wait_for(what: str, condition: Callable[[], object], timeout_s: float, run: Running | None = None) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if run is not None and run.proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:g} s" + (f"; listener log:\n{run.log()[-3000:]}" if run else ""))


def rows(data_dir: Path, sql: str) -> list[tuple]:
    path = data_dir / "bilbo.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


# ---------------------------------------------------------------------------------------------------------
# The decision, offline: the same windows, model and rule as the live listener
# ---------------------------------------------------------------------------------------------------------


def offline_events(model: CryModel, rule: CryRule, samples: np.ndarray) -> list:
    """Feed a recording through the listener's own windows, model and tracker, one second of audio at a time."""
    windows, tracker, events = Windows(), EpisodeTracker(rule), []
    for second in range(len(samples) // 8000):
        for window in windows.push(samples[second * 8000 : (second + 1) * 8000]):
            p = float(model.window_probabilities(window[None])[0])
            if event := tracker.feed(p, dbfs(window), second + 1.0):
                events.append(event)
    return events


def test_the_known_cry_gives_one_episode_from_its_start_to_its_end(cry_recording, models_dir):
    path, cry_start, cry_end = cry_recording
    model = CryModel.load(models_dir)
    events = offline_events(model, model.rule, decode_8k(path))
    assert [type(e) for e in events][:1] == [Onset], events
    onset = next(e for e in events if isinstance(e, Onset))
    end = next(e for e in events if isinstance(e, End))
    assert cry_start <= onset.episode.start_ts <= cry_start + 5 + model.rule.consecutive
    assert onset.episode.onset_ts - onset.episode.start_ts == pytest.approx(model.rule.consecutive - 1)
    assert cry_end - 1 <= end.episode.end_ts <= cry_end + 5  # the last window that still held crying
    assert end.episode.peak_probability >= model.rule.threshold
    assert sum(isinstance(e, Onset) for e in events) == 1


def test_quiet_room_gives_no_episode(models_dir):
    model = CryModel.load(models_dir)
    rng = np.random.default_rng(7)
    assert offline_events(model, model.rule, (rng.standard_normal(8000 * 30) * 0.002).astype(np.float32)) == []


# ---------------------------------------------------------------------------------------------------------
# Live: camera -> listener -> Bot API, SQLite, MQTT
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.rtsp
@pytest.mark.slow
@needs_mosquitto
def test_a_cry_on_the_camera_alerts_at_once_with_a_snapshot_stores_the_episode_and_drives_mqtt(
    cry_recording,
    models_dir,
    camera,
    listener,
    bot_api,
    broker,  # noqa: F811
):
    path, cry_start, cry_end = cry_recording
    mq = broker()
    cam = camera(path)
    connected = time.time()
    run = listener(cam.url, models_dir=str(models_dir), telegram_bot_token=TEST_TOKEN, telegram_chat_id=CHAT,
                   telegram_base_url=bot_api.base_url, mqtt_host="127.0.0.1", mqtt_port=str(mq.port))  # fmt: skip
    sent = wait_for("the cry alert at the Bot API", lambda: bot_api.calls("sendPhoto"), 60, run)
    arrived = time.time()
    assert len(sent) == 1 and sent[0].chat_id == CHAT
    assert sent[0].caption.startswith("Baby is crying (heard since ")
    assert sent[0].photo[:3] == b"\xff\xd8\xff", "the fresh snapshot grabbed for the alert"
    # At once: within the cry's first seconds plus the rule's windows, not at a tick minutes later.
    assert arrived - connected < cry_start + 5 + 10 + 15
    snapshot = rows(run.data_dir, "SELECT photo_path FROM outbox")[0][0]
    assert snapshot.startswith("frames/listener/") and (run.data_dir / snapshot).is_file()
    # The onset also started a tick of the monitor's own, which looked at the baby at once (no timer runs here).
    looked = wait_for("the tick the cry started", lambda: rows(run.data_dir, "SELECT source FROM ticks"), 60, run)
    assert looked[0][0] == redact_url(cam.url) and "started a tick to look at the baby" in run.log()

    state = wait_for("crying ON, retained", lambda: (got := retained(mq, "bilbo/state", expect=1).get(
        "bilbo/state")) and got.json()["crying"] is True and got, 15, run)  # fmt: skip
    assert state.json()["crying_since"] is not None and state.retain

    wait_for("the episode's end", lambda: rows(run.data_dir, "SELECT id FROM cry_episodes WHERE end_ts IS NOT NULL"),
             cry_end - cry_start + END_AFTER_S + 30, run)  # fmt: skip
    (start_ts, end_ts, peak, loudness, alert_id), = rows(
        run.data_dir, "SELECT start_ts, end_ts, peak_probability, peak_dbfs, alert_id FROM cry_episodes"
    )  # fmt: skip
    assert connected + cry_start - 2 <= start_ts <= connected + cry_start + 10
    assert end_ts - start_ts >= (cry_end - cry_start) - 10
    assert peak >= CryModel.load(models_dir).rule.threshold and -60 < loudness < 0
    assert alert_id == 1
    off = wait_for("crying OFF, retained", lambda: (got := retained(mq, "bilbo/state", expect=1).get(
        "bilbo/state")) and got.json()["crying"] is False and got, 15, run)  # fmt: skip
    assert off.json()["crying_since"] is None
    assert len(bot_api.calls("sendPhoto")) == 1, "one alert per episode"
    beat = run.beat()
    assert beat is not None and beat.state == heartbeat.LISTENING and time.time() - beat.heard_ts < 15
    assert not list(run.data_dir.rglob("*.wav")) and not list(run.data_dir.rglob("*.s16")), "audio never on disk"
    assert TEST_TOKEN not in run.log()


@pytest.mark.rtsp
def test_a_camera_without_audio_is_one_line_and_slow_retries(camera, listener, models_dir):
    cam = camera(audio=False)
    run = listener(cam.url, models_dir=str(models_dir), log_level="DEBUG")
    wait_for("the no-audio state", lambda: (b := run.beat()) and b.state == heartbeat.NO_AUDIO, 30, run)
    time.sleep(8)
    warnings = [line for line in run.lines("WARNING") if "not hearing" in line]
    assert len(warnings) == 1, run.log()
    assert "carries no audio track" in warnings[0] and "LISTEN=0" in warnings[0]
    tries = run.log().count("still not hearing")
    assert tries <= 3, f"backing off doubles the wait from 1 s: {tries} more tries in 8 s is a busy loop"
    assert run.proc.poll() is None, "a camera without audio does not end the listener"


@pytest.mark.rtsp
@pytest.mark.slow
def test_a_camera_that_dies_and_comes_back_is_heard_again(camera, listener, models_dir, cry_recording):
    cam = camera(cry_recording[0])
    run = listener(cam.url, models_dir=str(models_dir))
    wait_for("first heard", lambda: (b := run.beat()) and b.heard_ts, 30, run)
    stop_process(cam.proc, signal.SIGKILL)
    wait_for("the drop noticed", lambda: (b := run.beat()) and b.state == heartbeat.DOWN, 30, run)
    time.sleep(12)  # several reconnect attempts against a dead port: still one line
    assert len([line for line in run.lines("WARNING") if "not hearing" in line]) == 1, run.log()
    back = time.time()
    camera(cry_recording[0], port=cam.port)
    wait_for("heard again", lambda: (b := run.beat()) and b.heard_ts and b.heard_ts > back, 45, run)
    assert any("again (silent since" in line for line in run.lines("INFO")), run.log()


@pytest.mark.rtsp
@pytest.mark.slow
def test_a_database_locked_by_another_writer_delays_the_alert_but_never_loses_it(
    cry_recording, models_dir, camera, listener, bot_api, tmp_path
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    Store.open(data_dir / "bilbo.sqlite3").close()
    writer = sqlite3.connect(data_dir / "bilbo.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock, as a long dashboard write or a rebuild would
    cam = camera(cry_recording[0])
    run = listener(cam.url, models_dir=str(models_dir), telegram_bot_token=TEST_TOKEN, telegram_chat_id=CHAT,
                   telegram_base_url=bot_api.base_url)  # fmt: skip
    wait_for("the cry heard while the lock is held", lambda: (b := run.beat()) and b.crying, 60, run)
    time.sleep(3)
    assert "waits for the database" in run.log()
    assert bot_api.calls("sendPhoto") == [] and bot_api.calls("sendMessage") == []
    writer.execute("ROLLBACK")
    writer.close()
    sent = wait_for("the alert once the lock is gone", lambda: bot_api.calls("sendPhoto"), 30, run)
    assert sent[0].caption.startswith("Baby is crying")
    assert rows(data_dir, "SELECT count(*) FROM cry_episodes WHERE alert_id = 1") == [(1,)]
    assert "the database took a cry onset" in run.log() or "the database took the start" in run.log()


# ---------------------------------------------------------------------------------------------------------
# The tick's side: a silent listener is reported, and after CAMERA_DOWN_TICKS ticks one alert goes out
# ---------------------------------------------------------------------------------------------------------


def _beat(settings, *, heard_ago: float, now: float, state: str = heartbeat.DOWN, reason: str = "camera gone"):
    beat = Heartbeat(123, now - 3600, now - 5, state, now - heard_ago, reason)
    heartbeat.write(settings.listener_heartbeat_path, beat)


def _tick_row(ts: float) -> TickRow:
    return TickRow(ts=ts, source="rtsp://cam/s", unchanged=False, diff_score=None, night=True, state="asleep",
                   presence_label="present", presence_conf=0.9, face_box=None, face_conf=None, eyes_label=None,
                   eyes_conf=None, jpeg_path=None, model_version="t", duration_ms=1.0)  # fmt: skip


def test_the_tick_reports_a_silent_listener_and_alerts_once_after_camera_down_ticks(tmp_path, caplog):
    settings = load_settings(None, environ={}, data_dir=tmp_path, camera_url="rtsp://127.0.0.1:1/cam")
    start = datetime(2026, 12, 4, 2, 0).timestamp()
    with Store.open(settings.db_path) as store:
        assert health.check(settings, store, datetime.fromtimestamp(start)) is None, "no heartbeat: no listener here"
        raised = []
        for i in range(5):  # five ticks, 4 minutes apart, the listener silent all along
            now = start + i * 240
            _beat(settings, heard_ago=200 + i * 240, now=now)
            store.insert_tick(_tick_row(now))
            raised.append(health.check(settings, store, datetime.fromtimestamp(now)))
        assert [a is not None for a in raised] == [False, False, True, False, False]
        assert raised[2].kind == "listener" and "Cries are no longer heard between ticks since" in raised[2].caption
        assert "camera gone" in raised[2].caption
        assert sum("the cry listener has heard nothing since" in r.message for r in caplog.records) == 5
        now = start + 5 * 240
        _beat(settings, heard_ago=2, now=now, state=heartbeat.LISTENING, reason="")
        back = health.check(settings, store, datetime.fromtimestamp(now))
        assert back is not None and back.caption.startswith("Cries heard again at")
        assert [a.kind for a in store.pending_alerts()] == ["listener", "listener"], "both in the outbox"
        assert health.check(settings, store, datetime.fromtimestamp(now + 240)) is None


def test_a_silent_listener_does_not_count_while_the_camera_itself_is_down(tmp_path):
    settings = load_settings(None, environ={}, data_dir=tmp_path, camera_url="rtsp://127.0.0.1:1/cam")
    now = datetime(2026, 12, 4, 3, 0).timestamp()
    with Store.open(settings.db_path) as store:
        for i in range(4):
            _beat(settings, heard_ago=600 + i * 240, now=now + i * 240, reason="the listener is not running")
            store.add_capture_failure(now + i * 240, "camera refused the connection")
            assert health.check(settings, store, datetime.fromtimestamp(now + i * 240)) is None
        assert health.read(settings.listener_health_path).ticks == 0


def test_check_says_what_the_listener_does(tmp_path):
    settings = load_settings(None, environ={}, data_dir=tmp_path, camera_url="rtsp://127.0.0.1:1/cam")
    now = time.time()
    assert health.describe(settings, now)[0] == "off"
    _beat(settings, heard_ago=1, now=now, state=heartbeat.LISTENING, reason="")
    status, text = health.describe(settings, now)
    assert status == "ok" and text.startswith("listening, heard 1 s ago")
    _beat(settings, heard_ago=300, now=now, reason="camera rtsp://127.0.0.1:1/cam refused the connection")
    status, text = health.describe(settings, now)
    assert status == "warn" and "refused the connection" in text
    off = load_settings(None, environ={}, data_dir=tmp_path, camera_url="rtsp://127.0.0.1:1/cam", listen=False)
    assert health.describe(off, now) == ("off", "LISTEN=0 (the tick still hears its own clip)")


def test_an_episode_and_its_alert_land_together_and_an_open_one_is_closed_at_restart(tmp_path):
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        alert = Alert(kind="cry", caption="Baby is crying", photo_path=None, created_ts=100.0)
        episode = CryEpisode(start_ts=98.0, onset_ts=100.0, last_ts=100.0, peak_probability=0.9,
                             peak_dbfs=-20.0)  # fmt: skip
        stored = store.start_episode(episode, alert)
        assert stored.alert_id == store.pending_alerts()[0].id and store.open_episode() == stored
        store.update_episode(CryEpisode(**{**stored.__dict__, "last_ts": 130.0}))
        assert store.close_open_episodes() == 1
        (closed,) = store.episodes_between(0, 1000)
        assert (closed.start_ts, closed.end_ts, closed.alert_id) == (98.0, 130.0, stored.alert_id)
        assert store.open_episode() is None


@needs_mosquitto
def test_the_ticks_mqtt_state_says_crying_while_the_listener_hears_an_episode(tmp_path, broker):  # noqa: F811
    from alerts.mqtt import publish_state

    mq = broker()
    settings = load_settings(None, environ={}, data_dir=tmp_path, camera_url="rtsp://127.0.0.1:1/cam",
                             mqtt_host="127.0.0.1", mqtt_port=mq.port)  # fmt: skip
    now = time.time()
    with Store.open(settings.db_path) as store:
        tick = replace(_tick_row(now), cry_probability=0.01, dbfs=-50.0)  # the tick's clip: quiet
        tick = replace(tick, id=store.insert_tick(tick))
        episode = CryEpisode(start_ts=now - 20, onset_ts=now - 18, last_ts=now - 1, peak_probability=0.99,
                             peak_dbfs=-20.0)  # fmt: skip
        store.start_episode(episode, None)
    _beat(settings, heard_ago=1, now=now, state=heartbeat.LISTENING, reason="")
    publish_state(settings, now, tick)
    assert retained(mq, "bilbo/state", expect=1)["bilbo/state"].json()["crying"] is True
    _beat(settings, heard_ago=300, now=now)  # a silent listener's open episode says nothing: the tick's clip decides
    publish_state(settings, now, tick)
    assert retained(mq, "bilbo/state", expect=1)["bilbo/state"].json()["crying"] is False


@pytest.mark.parametrize(
    ("settings", "said"),
    [({"listen": "0"}, "off (LISTEN=0)"), ({"camera_url": "sample"}, "is not an RTSP camera")],
    ids=["LISTEN=0", "sample camera"],
)
def test_nothing_to_listen_to_exits_0_so_the_service_stays_stopped(listener, settings, said):
    run = listener(settings.pop("camera_url", "rtsp://127.0.0.1:1/cam"), **settings)
    assert run.proc.wait(timeout=60) == 0, run.log()
    assert said in run.log() and not (run.data_dir / "listener.json").exists()


@pytest.mark.rtsp
def test_a_second_listener_on_the_same_data_dir_exits_and_leaves_the_first_alone(camera, listener, models_dir):
    cam = camera(audio=False)
    first = listener(cam.url, models_dir=str(models_dir))
    wait_for("the first listener's heartbeat", first.beat, 30, first)
    second = listener(cam.url, models_dir=str(models_dir))
    assert second.proc.wait(timeout=60) == 0
    assert "another listener already runs" in second.log()
    assert first.proc.poll() is None and first.beat().pid == first.proc.pid
