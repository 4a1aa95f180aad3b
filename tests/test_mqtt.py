"""MQTT with Home Assistant discovery (DESIGN.md feature 16), against a REAL mosquitto broker.

Each broker test starts Debian's `mosquitto` on 127.0.0.1 on a free port (anonymous, or with a password file made
by `mosquitto_passwd`), runs real `monitor.py --once` processes (tests/tick_runner.py) with the MQTT settings in
their environment, then subscribes with paho-mqtt AFTER the tick process has exited: whatever arrives then was
kept by the broker, i.e. published retained. The broker's own log tells whether anything connected at all. The
Home Assistant value templates are rendered with Jinja2 (the engine Home Assistant uses) against the published
state JSON. Skipped with the reason when mosquitto is missing, except under CI (CI=true), where
`.ci/system-deps.sh` installs it and a missing broker is a failure.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import pytest

from alerts.mqtt import EXPIRE_TICKS, TIMEOUT_S, row_state
from db.store import TickRow
from settings import SettingsError, load_settings
from tests.conftest import free_port
from tests.tick_runner import REPO, rows, run_tick

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
NO_BROKER = "Debian's mosquitto is not installed (run `bash .ci/system-deps.sh` as root, or apt-get install mosquitto)"
needs_mosquitto = pytest.mark.skipif(
    not (MOSQUITTO and MOSQUITTO_PASSWD) and not os.environ.get("CI"), reason=f"real-broker test: {NO_BROKER}"
)

PASSWORD = "Nurs3ry-broker-pw"
ENTITIES = {
    "sensor": {"sleep_state", "eyes", "cry_probability", "loudness"},
    "binary_sensor": {"crying", "baby_present", "camera_ok"},
}


def at(hhmm: str) -> str:
    return f"2026-11-21T{hhmm}:00"


def ts(hhmm: str) -> float:
    return datetime.fromisoformat(at(hhmm)).timestamp()


def tick(data_dir: Path, hhmm: str, source: str = "sample", **env: str) -> subprocess.CompletedProcess:
    return run_tick(data_dir, "--once", "--source", source, "--at", at(hhmm), **env)


def warnings(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if " WARNING " in line]


def render(template: str, state: dict) -> str:
    """What Home Assistant's MQTT integration makes of the state JSON with this value_template."""
    return jinja2.Environment().from_string(template).render(value_json=state, value=json.dumps(state))


# ---------------------------------------------------------------------------------------------------------
# The broker (a real mosquitto process) and a subscriber (paho)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Broker:
    port: int
    log_path: Path
    probes: int = 0  # the TCP connections of the readiness check

    def env(self, **more: str) -> dict[str, str]:
        """The tick's environment for this broker."""
        return {"BILBO_MQTT_HOST": "127.0.0.1", "BILBO_MQTT_PORT": str(self.port), **more}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connections(self) -> int:
        """TCP connections since the broker was ready (MQTT or not)."""
        return self.log().count("New connection from") - self.probes


def _wait_listening(proc: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f"mosquitto did not listen on 127.0.0.1:{port}: {log_path.read_text()[-500:]}", pytrace=False)


def _logged_connections(mq: Broker, at_least: int, timeout_s: float = 5.0) -> int:
    """How many connections the log shows, once it shows `at_least` (mosquitto logs them as they come)."""
    deadline = time.monotonic() + timeout_s
    while (count := mq.log().count("New connection from")) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


@pytest.fixture
def broker(tmp_path_factory) -> Iterator[Callable[..., Broker]]:
    """Factory: `broker()` is an anonymous mosquitto on a free loopback port; `broker(users={"u": "pw"})` one
    that only lets those users in. Each is stopped at the end of the test."""
    if not (MOSQUITTO and MOSQUITTO_PASSWD):
        pytest.fail(f"CI: {NO_BROKER}", pytrace=False)
    procs: list[subprocess.Popen] = []

    def start(users: dict[str, str] | None = None) -> Broker:
        folder = tmp_path_factory.mktemp("mosquitto")
        port = free_port()
        lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr", f"user {getpass.getuser()}"]
        if users:
            for i, (user, password) in enumerate(users.items()):
                create = ["-c"] if i == 0 else []
                cmd = [MOSQUITTO_PASSWD, *create, "-b", str(folder / "passwd"), user, password]
                subprocess.run(cmd, check=True, capture_output=True, timeout=10)
            lines += ["allow_anonymous false", f"password_file {folder / 'passwd'}"]
        else:
            lines.append("allow_anonymous true")
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        log_path = folder / "mosquitto.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen([MOSQUITTO, "-c", str(folder / "mosquitto.conf")], stderr=log_file)
        procs.append(proc)
        _wait_listening(proc, port, log_path)
        mq = Broker(port, log_path)
        mq.probes = _logged_connections(mq, at_least=1)
        return mq

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Received:
    payload: str
    retain: bool
    qos: int

    def json(self) -> dict:
        return json.loads(self.payload)


def retained(broker: Broker, *topics: str, expect: int, user: str = "", password: str = "") -> dict[str, Received]:
    """Subscribe to `topics` (QoS 1) and collect what the broker holds, until `expect` topics arrived (5 s max).

    The first message per topic is kept: the broker replays what it holds on subscribing, before anything published
    later, and a live publish in the 0.3 s after (a tick's state) must not replace it (it carries no retain flag)."""
    import paho.mqtt.client as mqtt

    got: dict[str, Received] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber")
    if user:
        client.username_pw_set(user, password)
    client.on_connect = lambda c, _u, _f, reason, _p: (
        c.subscribe([(t, 1) for t in topics]) if not reason.is_failure else None
    )
    client.on_message = lambda _c, _u, m: got.setdefault(m.topic, Received(m.payload.decode(), bool(m.retain), m.qos))
    client.connect("127.0.0.1", broker.port, keepalive=10)
    deadline = time.monotonic() + 5
    while len(got) < expect and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    end = time.monotonic() + 0.3  # anything beyond what was expected is a bug too: give it a moment to show
    while time.monotonic() < end:
        client.loop(timeout=0.05)
    client.disconnect()
    return got


def discovery_topic(component: str, object_id: str, discovery: str = "homeassistant", node: str = "bilbo") -> str:
    return f"{discovery}/{component}/{node}/{object_id}/config"


ALL_CONFIG_TOPICS = {discovery_topic(c, o) for c, ids in ENTITIES.items() for o in ids}


# ---------------------------------------------------------------------------------------------------------
# Publishing: discovery configs and the state, retained
# ---------------------------------------------------------------------------------------------------------


@needs_mosquitto
def test_tick_publishes_retained_home_assistant_discovery_for_every_entity(tmp_path, broker):
    mq = broker()
    result = tick(tmp_path, "03:00", **mq.env())
    assert result.returncode == 0, result.stderr
    assert warnings(result) == []

    got = retained(mq, "homeassistant/#", "bilbo/#", expect=len(ALL_CONFIG_TOPICS) + 2)
    assert {t for t in got if t.startswith("homeassistant/")} == ALL_CONFIG_TOPICS
    assert all(m.retain and m.qos == 1 for m in got.values())
    assert got["bilbo/status"].payload == "online"
    state = got["bilbo/state"].json()

    configs = {topic: got[topic].json() for topic in ALL_CONFIG_TOPICS}
    unique_ids = {c["unique_id"] for c in configs.values()}
    assert len(unique_ids) == len(configs)
    devices = [c["device"] for c in configs.values()]
    assert all(d == devices[0] for d in devices) and devices[0]["identifiers"] == ["bilbo"] and devices[0]["name"]
    for topic, config in configs.items():
        object_id = topic.split("/")[3]
        assert config["unique_id"] == f"bilbo_{object_id}"
        assert config["name"] and config["state_topic"] == "bilbo/state"
        assert (config["availability_topic"], config["payload_available"], config["payload_not_available"]) == (
            "bilbo/status",
            "online",
            "offline",
        )
        assert config["expire_after"] == EXPIRE_TICKS * 240  # a monitor that stopped ticking goes unavailable
    # What Home Assistant shows for the sample night at 03:00 (asleep, no audio on the sample camera):
    shown = {topic.split("/")[3]: render(c["value_template"], state) for topic, c in configs.items()}
    assert shown == {
        "sleep_state": "asleep",
        "eyes": "closed",
        "baby_present": "ON",
        "camera_ok": "ON",
        "crying": "None",  # "None" = unknown in Home Assistant: no audio, so no verdict
        "cry_probability": "None",
        "loudness": "None",
    }
    sleep = configs[discovery_topic("sensor", "sleep_state")]
    assert sleep["device_class"] == "enum" and set(sleep["options"]) == {"asleep", "awake", "absent", "unknown"}
    assert sleep["json_attributes_topic"] == "bilbo/state"
    assert configs[discovery_topic("binary_sensor", "camera_ok")]["device_class"] == "connectivity"
    assert "MQTT: published asleep" in result.stderr


@needs_mosquitto
def test_retained_state_is_the_newest_stored_row(tmp_path, broker):
    mq = broker()
    for hhmm in ("01:56", "02:00"):  # the sample night: eyes closed at 01:56, open at 02:00
        result = tick(tmp_path, hhmm, **mq.env())
        assert result.returncode == 0, result.stderr
    first, awake, newest = rows(tmp_path)  # 02:00 took a confirmation frame 15 s later: the newest row
    assert (first.state, awake.state, newest.state) == ("asleep", "awake", "awake") and newest.confirms == awake.id

    state = retained(mq, "bilbo/state", expect=1)["bilbo/state"]
    assert state.retain
    published = state.json()
    assert published["tick_id"] == newest.id
    assert datetime.fromisoformat(published["ts"]).timestamp() == newest.ts == ts("02:00") + 15
    assert (published["state"], published["eyes"], published["present"]) == ("awake", newest.eyes_label, True)
    assert published["presence_conf"] == pytest.approx(newest.presence_conf, abs=1e-3)
    assert published["eyes_conf"] == pytest.approx(newest.eyes_conf, abs=1e-3)
    assert (published["night"], published["unchanged"], published["camera"]) == (newest.night, False, "ok")
    assert (published["cry_probability"], published["dbfs"], published["crying"]) == (None, None, None)
    assert not {"jpeg_path", "audio_path", "face_box", "source"} & set(published)  # no frame, no camera address


@needs_mosquitto
def test_failed_capture_publishes_camera_down_and_the_next_frame_camera_ok(tmp_path, broker):
    mq = broker()
    assert tick(tmp_path, "03:00", **mq.env()).returncode == 0
    failed = tick(tmp_path, "03:04", source=str(tmp_path / "camera-gone.jpg"), **mq.env())
    assert failed.returncode == 1 and "tick failed" in failed.stderr
    assert warnings(failed) == []

    down = retained(mq, "bilbo/state", expect=1)["bilbo/state"].json()
    assert (down["camera"], down["state"], down["camera_failures"]) == ("down", "unknown", 1)
    assert datetime.fromisoformat(down["camera_down_since"]).timestamp() == ts("03:04")
    assert down["present"] is None and down["eyes"] is None and down["tick_id"] is None
    config = retained(mq, discovery_topic("binary_sensor", "camera_ok"), expect=1)
    assert render(config[discovery_topic("binary_sensor", "camera_ok")].json()["value_template"], down) == "OFF"

    assert tick(tmp_path, "03:08", **mq.env()).returncode == 0
    back = retained(mq, "bilbo/state", expect=1)["bilbo/state"].json()
    assert (back["camera"], back["state"], back["tick_id"]) == ("ok", "asleep", rows(tmp_path)[-1].id)


def test_crying_in_the_state_follows_the_cry_threshold():
    row = TickRow(
        ts=ts("03:00"),
        source="sample",
        unchanged=False,
        diff_score=None,
        night=True,
        state="asleep",
        presence_label="present",
        presence_conf=0.99,
        face_box=None,
        face_conf=None,
        eyes_label="closed",
        eyes_conf=0.98,
        jpeg_path="frames/x.jpg",
        model_version="v",
        duration_ms=1.0,
        id=7,
        cry_probability=0.7,
        dbfs=-31.26,
        audio_s=5.0,
    )
    template = "{% if value_json.crying is none %}None{% elif value_json.crying %}ON{% else %}OFF{% endif %}"
    loud = row_state(row, threshold=0.4)
    assert (loud["crying"], loud["cry_probability"], loud["dbfs"]) == (True, 0.7, -31.3)
    assert render(template, loud) == "ON"
    assert row_state(row, threshold=0.8)["crying"] is False
    assert render(template, row_state(row, threshold=0.8)) == "OFF"
    assert row_state(row, threshold=None)["crying"] is None  # cry model unreadable: no verdict, not "quiet"


# ---------------------------------------------------------------------------------------------------------
# A broker that is down, silent, or refuses the login: one warning, the tick still succeeds
# ---------------------------------------------------------------------------------------------------------


def test_broker_down_costs_one_warning_and_the_row_is_still_stored(tmp_path):
    closed = free_port()
    started = time.monotonic()
    result = tick(tmp_path, "03:00", BILBO_MQTT_HOST="127.0.0.1", BILBO_MQTT_PORT=str(closed))
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    [warning] = warnings(result)
    assert f"MQTT: state not published to 127.0.0.1:{closed}" in warning and "refused" in warning
    assert "ERROR" not in result.stderr
    assert len(rows(tmp_path)) == 1
    assert elapsed < 30  # a refused connection is answered at once; the tick's own timeout is 60 s in run_tick


def test_broker_that_never_answers_is_given_up_after_the_bounded_timeout(tmp_path):
    with socket.socket() as silent:  # accepts TCP (the kernel's backlog) but never says a word of MQTT
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        result = tick(tmp_path, "03:00", BILBO_MQTT_HOST="127.0.0.1", BILBO_MQTT_PORT=str(silent.getsockname()[1]))

    assert result.returncode == 0, result.stderr
    [warning] = warnings(result)
    assert f"did not answer within {TIMEOUT_S:g} s" in warning
    assert len(rows(tmp_path)) == 1
    stamps = {
        kind: datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
        for line in result.stderr.splitlines()
        for kind in ("INFO tick", "WARNING MQTT")
        if kind in line
    }
    waited = (stamps["WARNING MQTT"] - stamps["INFO tick"]).total_seconds()
    assert TIMEOUT_S - 1 <= waited <= TIMEOUT_S + 2  # log stamps are whole seconds


@needs_mosquitto
def test_password_broker_accepts_the_right_login_and_warns_once_on_a_wrong_one(tmp_path, broker):
    mq = broker(users={"nanny": PASSWORD})
    custom = {
        "BILBO_MQTT_TOPIC_PREFIX": "nursery/bilbo",
        "BILBO_MQTT_DISCOVERY_PREFIX": "ha",
        "BILBO_LOG_LEVEL": "DEBUG",
    }
    right = tick(tmp_path, "03:00", **mq.env(BILBO_MQTT_USERNAME="nanny", BILBO_MQTT_PASSWORD=PASSWORD, **custom))
    assert right.returncode == 0, right.stderr
    assert warnings(right) == []
    config_topic = discovery_topic("sensor", "sleep_state", discovery="ha", node="nursery_bilbo")
    got = retained(mq, "ha/#", "nursery/#", expect=len(ALL_CONFIG_TOPICS) + 2, user="nanny", password=PASSWORD)
    assert got["nursery/bilbo/state"].json()["tick_id"] == rows(tmp_path)[0].id
    assert got[config_topic].json()["unique_id"] == "nursery_bilbo_sleep_state"
    assert got[config_topic].json()["state_topic"] == "nursery/bilbo/state"

    wrong_password = "not-" + PASSWORD
    wrong = tick(tmp_path, "03:04", **mq.env(BILBO_MQTT_USERNAME="nanny", BILBO_MQTT_PASSWORD=wrong_password, **custom))
    assert wrong.returncode == 0, wrong.stderr
    [warning] = warnings(wrong)
    assert "refused the connection" in warning and "check MQTT_USERNAME and MQTT_PASSWORD" in warning
    assert len(rows(tmp_path)) == 2
    for result in (right, wrong):
        assert PASSWORD not in result.stdout + result.stderr
    # The broker still holds the state of the last tick it accepted, not the refused one's.
    held = retained(mq, "nursery/bilbo/state", expect=1, user="nanny", password=PASSWORD)
    assert held["nursery/bilbo/state"].json()["tick_id"] == rows(tmp_path)[0].id


# ---------------------------------------------------------------------------------------------------------
# Off by default: no connection, no MQTT client loaded
# ---------------------------------------------------------------------------------------------------------


@needs_mosquitto
def test_empty_mqtt_host_connects_to_nothing_and_never_loads_the_mqtt_client(tmp_path, broker):
    mq = broker()
    code = (
        "import sys, monitor;"
        # A fixed time with the sample baby asleep: at the wall clock's time an awake baby makes the tick take
        # confirmation frames (more than one row), so the test failed in the evening.
        f"rc = monitor.main(['--once', '--source', 'sample', '--at', '2026-11-21T22:00:00', '--config', "
        f"'{tmp_path}/no.env']);"
        "print('PAHO', [m for m in sys.modules if m.startswith('paho')]); sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env.update(BILBO_DATA_DIR=str(tmp_path), BILBO_MQTT_HOST="", BILBO_MQTT_PORT=str(mq.port))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "PAHO []" in result.stdout
    assert "MQTT" not in result.stderr
    assert len(rows(tmp_path)) == 1
    assert mq.connections() == 0, mq.log()
    assert retained(mq, "#", expect=1) == {}


# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------


def test_mqtt_is_off_by_default_with_home_assistant_defaults():
    settings = load_settings(None, environ={})
    assert not settings.mqtt_enabled
    assert (settings.mqtt_port, settings.mqtt_topic_prefix, settings.mqtt_discovery_prefix) == (
        1883,
        "bilbo",
        "homeassistant",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MQTT_HOST", "mqtt://192.168.1.5"),
        ("MQTT_HOST", "192.168.1.5:1883"),
        ("MQTT_PORT", "0"),
        ("MQTT_PORT", "70000"),
        ("MQTT_TOPIC_PREFIX", "bilbo/#"),
        ("MQTT_TOPIC_PREFIX", "/bilbo"),
        ("MQTT_DISCOVERY_PREFIX", ""),
    ],
)
def test_malformed_mqtt_setting_is_named(key, value):
    with pytest.raises(SettingsError, match=key):
        load_settings(None, environ={f"BILBO_{key}": value})


def test_mqtt_password_needs_a_user_and_is_never_shown():
    with pytest.raises(SettingsError, match="MQTT_USERNAME"):
        load_settings(None, environ={"BILBO_MQTT_HOST": "broker.lan", "BILBO_MQTT_PASSWORD": PASSWORD})
    settings = load_settings(
        None, environ={"BILBO_MQTT_HOST": "fd00::5", "BILBO_MQTT_USERNAME": "nanny", "BILBO_MQTT_PASSWORD": PASSWORD}
    )
    assert settings.mqtt_enabled and settings.mqtt_password == PASSWORD
    assert PASSWORD not in repr(settings) and not re.search("mqtt_password", repr(settings))
