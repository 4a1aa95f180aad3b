"""MQTT with Home Assistant discovery: after each tick, the tick's state goes to the parent's own broker.

Opt-in: nothing happens, and paho-mqtt is not even imported, while MQTT_HOST is empty. With it set, every tick
that stored a row (or whose capture failed) connects, publishes RETAINED messages with QoS 1, waits for the
broker's acknowledgements and disconnects, all within TIMEOUT_S:

    <prefix>/state      JSON: state, present, eyes, crying, cry probability, dBFS, night, camera ok/down, ts
    <prefix>/status     "online" (the last will says "offline" if the process dies while connected)
    <discovery>/sensor/<node>/<entity>/config, <discovery>/binary_sensor/<node>/<entity>/config
                        Home Assistant discovery: sleep state, eyes, cry probability, loudness, crying,
                        baby present, camera ok; one device, stable unique_ids, values read from the state JSON

The continuous cry listener (listener/) publishes the same state within seconds of a cry episode's start and end
(`publish_crying`, as client "<node>-listener"), and while it hears the camera, a tick's "crying" is the listener's
open episode rather than the tick's own 5 s clip (`listener_crying`).

Only these state values leave the machine: never a frame, never audio, never the camera's address. Retained
messages make a missed tick harmless: the broker keeps the newest state and the next tick replaces it. The
entities expire (unavailable in Home Assistant) after EXPIRE_TICKS tick intervals without news, so a monitor
that stopped ticking does not show an old "asleep" forever. A broker that is down, slow or refuses the login
costs the tick one warning line, never a failed tick and never a hang.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from datetime import datetime

from db.store import Store, StoreError, TickRow
from settings import Settings

log = logging.getLogger("bilbo.mqtt")

TIMEOUT_S = 5.0  # connect + CONNACK + every PUBACK, all together
KEEPALIVE_S = 30  # the broker publishes the last will this long (x1.5) after the process vanished mid-publish
EXPIRE_TICKS = 3
STATES = ["asleep", "awake", "absent", "unknown"]
# Home Assistant reads each entity's value from the one state JSON; a template that renders "None" makes the
# entity "unknown" (no audio this tick, no baby whose eyes could be seen, no frame).
_ON_OFF = "{{% if value_json.{0} is none %}}None{{% elif value_json.{0} %}}ON{{% else %}}OFF{{% endif %}}"
_PERCENT = (
    "{% if value_json.cry_probability is none %}None{% else %}{{ (value_json.cry_probability * 100) | round(0) }}"
    "{% endif %}"
)
_CAMERA_OK = "{{ 'ON' if value_json.camera == 'ok' else 'OFF' }}"


def _entity(component: str, object_id: str, name: str, template: str, **extra: object) -> tuple[str, str, dict]:
    return component, object_id, {"name": name, "value_template": template, **extra}


ENTITIES = [
    _entity("sensor", "sleep_state", "Sleep state", "{{ value_json.state }}", device_class="enum", options=STATES),
    _entity(
        "sensor", "eyes", "Eyes", "{{ value_json.eyes }}", device_class="enum", options=["open", "closed", "unknown"]
    ),
    _entity(
        "sensor", "cry_probability", "Cry probability", _PERCENT, unit_of_measurement="%", state_class="measurement"
    ),
    _entity(
        "sensor", "loudness", "Loudness", "{{ value_json.dbfs }}", unit_of_measurement="dBFS", state_class="measurement"
    ),
    _entity("binary_sensor", "crying", "Crying", _ON_OFF.format("crying"), device_class="sound"),
    _entity("binary_sensor", "baby_present", "Baby present", _ON_OFF.format("present"), device_class="occupancy"),
    _entity("binary_sensor", "camera_ok", "Camera", _CAMERA_OK, device_class="connectivity"),
]


class MqttError(RuntimeError):
    """The state could not be published; one line, never containing the password."""


def publish_state(settings: Settings, at: float, stored: TickRow | None) -> None:
    """Publish the state of the tick that ran at `at`: `stored`, the newest row it stored (its last confirmation frame,
    if any), or "camera down" when its capture failed.

    Called once at the end of every tick. A tick that failed before storing anything (models, database)
    publishes nothing: the broker keeps the previous state until the next tick."""
    if not settings.mqtt_enabled:
        return
    try:
        with Store.open(settings.db_path) as store:
            outage = store.camera_outage()
            listening = listener_crying(settings, store, at)
    except (StoreError, sqlite3.Error, OSError) as exc:
        log.warning("MQTT: state not published (the next tick tries again): %s", exc)
        return
    if stored is not None:
        state = row_state(stored, cry_threshold(settings))
    elif outage.failures and outage.last_ts == at:
        state = camera_down_state(at, since_ts=outage.since_ts, failures=outage.failures)
    else:
        return
    if listening is not None:  # the continuous listener hears more than the tick's clip: its episode decides
        state["crying"], since = listening
        state["crying_since"] = None if since is None else _iso(since)
    broker = f"{settings.mqtt_host}:{settings.mqtt_port}"
    try:
        sent = publish(settings, messages(settings, state))
    except (MqttError, OSError) as exc:
        log.warning("MQTT: state not published to %s (the next tick tries again): %s", broker, exc)
        return
    log.info(
        "MQTT: published %s (camera %s), %d retained messages to %s", state["state"], state["camera"], sent, broker
    )


def listener_crying(settings: Settings, store: Store, now: float) -> tuple[bool, float | None] | None:
    """Whether the continuous listener (listener/) hears crying now, and since when: a cry episode is open and the
    listener's heartbeat says it heard the camera within its silence limit. None when no listener hears (off, not
    installed, silent): then the tick's own clip says whether the baby cries."""
    if not settings.listen:
        return None
    from listener import heartbeat

    beat = heartbeat.read(settings.listener_heartbeat_path)
    if beat is None or beat.silent_since(now) is not None:
        return None
    episode = store.open_episode()
    return (episode is not None, None if episode is None else episode.start_ts)


def publish_crying(settings: Settings, *, crying: bool, episode, at: float) -> None:
    """The listener's news (`listener.recorder`): the Crying entity turns on at a cry onset and off at its end,
    within seconds instead of at the next tick. The state JSON is the newest tick's (or its outage's), with
    "crying", the episode's peak cry probability and loudness, and "crying_since" (None when it stopped). A broker
    that is down is one warning line; the next tick publishes the state again anyway."""
    if not settings.mqtt_enabled:
        return
    try:
        with Store.open(settings.db_path) as store:
            row, outage = store.last_tick(), store.camera_outage()
    except (StoreError, sqlite3.Error, OSError) as exc:
        log.warning("MQTT: crying %s not published: %s", "on" if crying else "off", exc)
        return
    if outage.failures and (row is None or (outage.last_ts or 0) > row.ts):
        state = camera_down_state(outage.last_ts or at, since_ts=outage.since_ts, failures=outage.failures)
    elif row is not None:
        state = row_state(row, cry_threshold(settings))
    else:
        state = {**camera_down_state(at, since_ts=None, failures=0), "camera": "ok", "camera_down_since": None}
    state.update(
        crying=crying,
        cry_probability=_rounded(episode.peak_probability, 3),
        dbfs=_rounded(episode.peak_dbfs, 1),
        crying_since=_iso(episode.start_ts) if crying else None,
    )
    broker = f"{settings.mqtt_host}:{settings.mqtt_port}"
    try:
        sent = publish(settings, messages(settings, state), client_name="listener")
    except (MqttError, OSError) as exc:
        log.warning("MQTT: crying %s not published to %s: %s", "on" if crying else "off", broker, exc)
        return
    log.info("MQTT: crying %s, %d retained messages to %s", "on" if crying else "off", sent, broker)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def row_state(row: TickRow, threshold: float | None) -> dict:
    """The state JSON of a stored tick: what Home Assistant shows until the next tick."""
    heard = row.cry_probability is not None and threshold is not None
    return {
        "state": row.state,
        "present": None if row.presence_label is None else row.presence_label == "present",
        "presence_conf": _rounded(row.presence_conf, 3),
        "eyes": row.eyes_label,
        "eyes_conf": _rounded(row.eyes_conf, 3),
        "crying": row.cry_probability >= threshold if heard else None,
        "cry_probability": _rounded(row.cry_probability, 3),
        "dbfs": _rounded(row.dbfs, 1),
        "night": row.night,
        "unchanged": row.unchanged,
        "camera": "ok",
        "camera_down_since": None,
        "camera_failures": 0,
        "ts": _iso(row.ts),
        "tick_id": row.id,
    }


def camera_down_state(at: float, *, since_ts: float | None, failures: int) -> dict:
    """No frame this tick: nothing is known about the baby, so every observation is empty and the state unknown."""
    return {
        "state": "unknown",
        "present": None,
        "presence_conf": None,
        "eyes": None,
        "eyes_conf": None,
        "crying": None,
        "cry_probability": None,
        "dbfs": None,
        "night": None,
        "unchanged": None,
        "camera": "down",
        "camera_down_since": _iso(since_ts if since_ts is not None else at),
        "camera_failures": failures,
        "ts": _iso(at),
        "tick_id": None,
    }


def cry_threshold(settings: Settings) -> float | None:
    """The threshold the tick hears crying at (models.cry.decision_threshold); None when it would come from an
    unreadable cry.json."""
    if settings.cry_threshold is not None:
        return settings.cry_threshold
    from models.cry import CryModelError, decision_threshold, read_manifest

    try:
        return decision_threshold(read_manifest(settings.models_dir))
    except (CryModelError, ValueError, KeyError, TypeError):
        return None


def node_id(settings: Settings) -> str:
    """The device's id in discovery topics and unique_ids: the topic prefix, made safe ('bilbo' by default)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", settings.mqtt_topic_prefix)


def discovery_configs(settings: Settings) -> dict[str, dict]:
    """Home Assistant discovery topic -> config, one per entity, all on one device."""
    prefix, node = settings.mqtt_topic_prefix, node_id(settings)
    device = {
        "identifiers": [node],
        "name": "BILBO" if node == "bilbo" else f"BILBO {settings.mqtt_topic_prefix}",
        "manufacturer": "BILBO",
        "model": "self-hosted baby monitor",
    }
    common = {
        "state_topic": f"{prefix}/state",
        "availability_topic": f"{prefix}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "expire_after": EXPIRE_TICKS * settings.tick_interval_s,
        "qos": 1,
        "device": device,
        "origin": {"name": "BILBO"},
    }
    configs = {}
    for component, object_id, entity in ENTITIES:
        config = {**entity, "unique_id": f"{node}_{object_id}", **common}
        if object_id == "sleep_state":
            config["json_attributes_topic"] = f"{prefix}/state"  # every field of the state JSON as an attribute
        configs[f"{settings.mqtt_discovery_prefix}/{component}/{node}/{object_id}/config"] = config
    return configs


def messages(settings: Settings, state: dict) -> list[tuple[str, str]]:
    """(topic, payload) of one tick, all published retained: discovery first, then availability, then state."""
    prefix = settings.mqtt_topic_prefix
    configs = [(topic, json.dumps(config)) for topic, config in discovery_configs(settings).items()]
    return [*configs, (f"{prefix}/status", "online"), (f"{prefix}/state", json.dumps(state))]


def publish(
    settings: Settings, outgoing: list[tuple[str, str]], timeout_s: float = TIMEOUT_S, client_name: str = "monitor"
) -> int:
    """Connect, publish every message retained with QoS 1, wait for the PUBACKs, disconnect; all within timeout_s.
    `client_name` names the connection (the tick's "monitor", the listener's "listener"): a broker drops the older of
    two connections with one client id, and the two may publish in the same second.

    Returns how many were acknowledged; raises MqttError (one line, no password) otherwise."""
    import paho.mqtt.client as mqtt  # only when MQTT is configured: nothing opens a socket otherwise

    deadline = time.monotonic() + timeout_s
    host, port = settings.mqtt_host, settings.mqtt_port
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"{node_id(settings)}-{client_name}", protocol=mqtt.MQTTv311
    )
    client.connect_timeout = timeout_s
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
    client.will_set(f"{settings.mqtt_topic_prefix}/status", "offline", qos=1, retain=True)
    connack: list = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: connack.append(reason)

    def run_until(done, waiting_for: str) -> None:
        while not done():
            if time.monotonic() >= deadline:
                raise MqttError(f"the broker did not answer within {timeout_s:g} s (waiting for {waiting_for})")
            rc = client.loop(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            if rc != mqtt.MQTT_ERR_SUCCESS and not done():
                raise MqttError(f"the broker closed the connection ({mqtt.error_string(rc)}) while {waiting_for}")

    try:
        try:
            client.connect(host, port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, unknown host
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise MqttError(f"cannot connect: {reason}") from None
        run_until(lambda: bool(connack), "its answer to the login")
        if connack[0].is_failure:
            hint = " (check MQTT_USERNAME and MQTT_PASSWORD)" if connack[0].value in (4, 5, 134, 135) else ""
            raise MqttError(f"the broker refused the connection: {connack[0]}{hint}")
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in outgoing]
        if failed := [i for i in infos if i.rc != mqtt.MQTT_ERR_SUCCESS]:
            raise MqttError(f"publishing failed: {mqtt.error_string(failed[0].rc)}")
        run_until(lambda: all(i.is_published() for i in infos), f"the acknowledgements of {len(infos)} messages")
        return len(infos)
    finally:
        client.disconnect()  # sends DISCONNECT and closes the socket; a no-op when there is none
