"""BILBO's one settings object, read from `.env` and the environment and validated once.

Every key can be set in `.env` as `KEY=value` or in the environment as `BILBO_KEY=value`;
the environment wins. A missing or malformed value raises `SettingsError` naming the key,
so the tick stops with one clear line instead of failing somewhere deep inside.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from redaction import redact_url, url_secrets

REPO_DIR = Path(__file__).resolve().parent
DEFAULT_ENV_FILE = REPO_DIR / ".env"
ENV_PREFIX = "BILBO_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


# Keys whose values are secrets: a refused one is never echoed, and `Settings.secrets` hands them to redaction.
SECRET_KEYS = ("TELEGRAM_BOT_TOKEN", "DASHBOARD_TOKEN", "MQTT_PASSWORD", "FALLBACK_LABELLER_API_KEY", "BABYBUDDY_TOKEN")
URL_KEYS = ("CAMERA_URL", "TELEGRAM_BASE_URL", "FALLBACK_LABELLER_URL", "BABYBUDDY_URL")  # may carry user:pass@


def _shown(name: str, raw: str) -> str:
    """How a refused value is echoed: a secret not at all (its length only), anything else with URL credentials
    and secret query values masked."""
    if name in SECRET_KEYS:
        return f"<{len(raw)} characters, not shown>"
    return repr(redact_url(raw))


def _crop(raw: str) -> tuple[int, int, int, int] | None:
    if raw.strip() == "":
        return None
    parts = [int(p) for p in raw.split(",")]
    if len(parts) != 4:
        raise ValueError("want four integers x1,y1,x2,y2")
    x1, y1, x2, y2 = parts
    if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
        raise ValueError("want 0 <= x1 < x2 and 0 <= y1 < y2")
    return (x1, y1, x2, y2)


def _finite(raw: str) -> float:
    """A float that is a number: 'inf' and 'nan' parse as floats but pass or fail range checks by accident (nan
    compares false with everything, so 'nan <= 0' lets it through)."""
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("want a finite number")
    return value


def _unit_float(raw: str) -> float:
    value = _finite(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("want a number between 0 and 1")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("want a whole number above 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("want a whole number, 0 (off) or above")
    return value


def _capture_timeout(raw: str) -> float:
    """ffmpeg refuses a -timeout of 2148 s or more (its microseconds overflow an int), and a grab that waits longer
    than a tick's interval only piles ticks up behind the lock."""
    value = _finite(raw)
    if not 0.0 < value <= 600.0:
        raise ValueError("want seconds above 0 and at most 600")
    return value


def _diff_threshold(raw: str) -> float:
    """The largest 16x16 block change is a mean of 0-255 grey levels: a threshold at or above 255 never sees a change
    (the models would run only when the 30-minute reuse limit forces them)."""
    value = _finite(raw)
    if not 0.0 < value < 255.0:
        raise ValueError("want a grey-level change above 0 and below 255")
    return value


def _window(raw: str) -> int:
    """A rule's window of recent frames (WAKE_WINDOW, CRY_WINDOW): a window of thousands reads as many rows each tick
    and an alert could never come."""
    value = _positive_int(raw)
    if value > 20:
        raise ValueError("want a whole number from 1 to 20")
    return value


def _confirm_frames(raw: str) -> int:
    """CONFIRM_FRAMES: each one holds the tick (and its lock) CONFIRM_INTERVAL_S longer."""
    value = _non_negative_int(raw)
    if value > 4:
        raise ValueError("want a whole number from 0 (off) to 4")
    return value


def _confirm_interval(raw: str) -> float:
    """CONFIRM_INTERVAL_S: long enough that a blink is over, short enough that the tick ends well inside its timer."""
    value = _finite(raw)
    if not 1.0 <= value <= 60.0:
        raise ValueError("want seconds from 1 to 60")
    return value


def _audio_seconds(raw: str) -> float:
    value = _finite(raw)
    if not 0.0 <= value <= 30.0:
        raise ValueError("want seconds between 0 (no audio) and 30")
    return value


def _optional_unit_float(raw: str) -> float | None:
    return None if raw.strip() == "" else _unit_float(raw)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("want true or false")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("want DEBUG, INFO, WARNING or ERROR")
    return level


def _path(raw: str) -> Path:
    if raw.strip() == "":
        raise ValueError("want a path")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else REPO_DIR / path


def _text(raw: str) -> str:
    return raw.strip()


def _camera_name(raw: str) -> str:
    name = raw.strip()
    if len(name) > 40 or any(not (c.isalnum() or c in " -_'.") for c in name):
        raise ValueError("want a short name like 'Ada' or 'twin 2' (letters, digits, spaces, - _ ' .; at most 40)")
    return name


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("want a TCP port, 1 to 65535")
    return value


def _mqtt_host(raw: str) -> str:
    host = raw.strip()
    if "://" in host or "/" in host or host.count(":") == 1:  # an IPv6 address has two colons or more
        raise ValueError("want a host name or IP address only, no scheme or port (the port goes in MQTT_PORT)")
    return host


def _server_url(raw: str, example: str, key_setting: str) -> str:
    """A server base URL a parent configured (http(s), no credentials, no query), trailing / dropped; "" = off."""
    url = raw.strip().rstrip("/")
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"want an http:// or https:// address like {example}, or empty (off)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"want no user:password@ in the URL: the key goes in {key_setting}")
    _ = parts.port  # raises ValueError on a port that is not a number
    return url


def _labeller_url(raw: str) -> str:
    """An OpenAI-compatible base URL (http://host:port/v1); empty = the fallback labeller is off."""
    url = _server_url(raw, "http://192.168.1.20:11434/v1", "FALLBACK_LABELLER_API_KEY")
    if url.endswith("/chat/completions"):
        raise ValueError("want the base URL (ending in /v1), without /chat/completions")
    return url


def _labeller_timeout(raw: str) -> float:
    value = _finite(raw)
    if not 0.0 < value <= 120.0:
        raise ValueError("want seconds above 0 and at most 120 (the call happens inside the tick)")
    return value


def _babybuddy_url(raw: str) -> str:
    """The address a parent opens their Baby Buddy at (http://192.168.1.20:8000); empty = the export is off."""
    url = _server_url(raw, "http://192.168.1.20:8000", "BABYBUDDY_TOKEN")
    if urlsplit(url).path.endswith(("/api", "/api/sleep")):
        raise ValueError("want the address Baby Buddy opens at, without /api/...")
    return url


def _babybuddy_token(raw: str) -> str:
    token = raw.strip()
    if any(c.isspace() for c in token):
        raise ValueError("want the API key alone (from Baby Buddy's User Settings page), without 'Token ' or spaces")
    return token


def _optional_positive_int(raw: str) -> int | None:
    return None if raw.strip() == "" else _positive_int(raw)


def _mqtt_topic(raw: str) -> str:
    topic = raw.strip()
    if not topic or topic.startswith("/") or topic.endswith("/") or any(c in topic for c in "+#\0 "):
        raise ValueError("want a topic like 'bilbo' or 'home/nursery': no wildcards, spaces or leading/trailing '/'")
    return topic


@dataclass(frozen=True)
class Settings:
    """Everything the tick and the dashboard are allowed to be told. Field name = key in lower case."""

    camera_url: str = "sample"
    camera_name: str = ""  # one config per camera (twins): named in alerts and on the dashboard; "" = the only one
    data_dir: Path = REPO_DIR / "data"
    models_dir: Path = REPO_DIR / "models" / "weights"
    bassinet_crop: tuple[int, int, int, int] | None = None
    tick_interval_s: int = 240
    capture_timeout_s: float = 15.0
    ffmpeg_path: str = ""
    diff_threshold: float = 2.0
    presence_threshold: float = 0.5
    face_threshold: float | None = None  # None: the threshold chosen on validation (models/weights/manifest.json)
    eye_threshold: float | None = None  # None: the threshold chosen on validation (models/weights/manifest.json)
    wake_window: int = 3
    wake_needed: int = 2
    alert_cooldown_s: int = 1800
    # A frame with eyes open while the wake rule does not hold yet: the same tick grabs up to CONFIRM_FRAMES more,
    # CONFIRM_INTERVAL_S apart, so a waking alerts ~15-30 s after the first awake frame instead of a tick later.
    confirm_frames: int = 2
    confirm_interval_s: float = 15.0
    telegram_bot_token: str = ""
    telegram_chat_id: str = ""
    telegram_base_url: str = ""
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 5555
    dashboard_token: str = ""
    log_level: str = "INFO"
    keep_unchanged_jpeg: bool = False
    audio_seconds: float = 5.0
    cry_threshold: float | None = None  # None: the threshold in models/weights/cry.json
    cry_cooldown_s: int = 900
    cry_window: int = 3  # cry alert: the newest tick and CRY_NEEDED of the last CRY_WINDOW ticks heard crying
    cry_needed: int = 2
    keep_audio: bool = False
    retention_days: int = 30  # frames/clips of older ticks are deleted (labelled ones kept); 0 = keep forever
    min_free_mb: int = 500  # below this much free disk the oldest frames/clips go first; 0 = no disk check
    camera_down_ticks: int = 3  # one "camera unreachable" alert after this many failed captures in a row; 0 = never
    # The continuous cry listener (listener/): one audio-only connection to an RTSP camera, a cry alert within
    # seconds. On by default; `make install-schedule` installs it only for a camera that carries audio.
    listen: bool = True
    # MQTT with Home Assistant discovery (alerts/mqtt.py): off while MQTT_HOST is empty.
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = field(default="", repr=False)  # never shown, never logged
    mqtt_topic_prefix: str = "bilbo"
    mqtt_discovery_prefix: str = "homeassistant"
    # Fallback labeller (labeller/, feature 14): off while FALLBACK_LABELLER_URL is empty. Frames the cascade cannot
    # see go to this OpenAI-compatible server for a label used only as training signal.
    fallback_labeller_url: str = ""
    fallback_labeller_model: str = ""
    fallback_labeller_api_key: str = field(default="", repr=False)  # never shown, never logged
    fallback_labeller_timeout_s: float = 20.0
    fallback_labeller_max_per_hour: int = 6
    # Baby Buddy export (dashboard/babybuddy.py, feature 21): off while BABYBUDDY_URL is empty. `python -m
    # dashboard.babybuddy` copies finished sleep sessions to this, the parent's own Baby Buddy server.
    babybuddy_url: str = ""
    babybuddy_token: str = field(default="", repr=False)  # never shown, never logged
    babybuddy_child_id: int | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret (tokens, passwords, the camera URL's password), for `redaction.redact_text`:
        text that quotes one where no pattern can see it (a password with a space in ffmpeg's words) still
        leaves the process without it."""
        values = [getattr(self, key.lower()) for key in SECRET_KEYS]
        values += [secret for key in URL_KEYS for secret in url_secrets(getattr(self, key.lower()))]
        return tuple(value for value in values if value)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "bilbo.sqlite3"

    @property
    def jsonl_path(self) -> Path:
        return self.data_dir / "ticks.jsonl"

    @property
    def corrections_jsonl_path(self) -> Path:
        return self.data_dir / "corrections.jsonl"

    @property
    def teacher_jsonl_path(self) -> Path:
        return self.data_dir / "teacher_labels.jsonl"

    @property
    def frames_dir(self) -> Path:
        return self.data_dir / "frames"

    @property
    def store_health_path(self) -> Path:
        return self.data_dir / "store-health.json"

    @property
    def listener_heartbeat_path(self) -> Path:
        return self.data_dir / "listener.json"

    @property
    def listener_health_path(self) -> Path:
        return self.data_dir / "listener-health.json"

    @property
    def listener_lock_path(self) -> Path:
        return self.data_dir / "listener.lock"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "monitor.lock"

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_chat_id)

    @property
    def mqtt_enabled(self) -> bool:
        return bool(self.mqtt_host)

    @property
    def fallback_labeller_enabled(self) -> bool:
        return bool(self.fallback_labeller_url)

    @property
    def babybuddy_enabled(self) -> bool:
        return bool(self.babybuddy_url)


# How each key is parsed. Adding a setting means adding a field above and a parser here.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "camera_url": _text,
    "camera_name": _camera_name,
    "data_dir": _path,
    "models_dir": _path,
    "bassinet_crop": _crop,
    "tick_interval_s": _positive_int,
    "capture_timeout_s": _capture_timeout,
    "ffmpeg_path": _text,
    "diff_threshold": _diff_threshold,
    "presence_threshold": _unit_float,
    "face_threshold": _optional_unit_float,
    "eye_threshold": _optional_unit_float,
    "wake_window": _window,
    "wake_needed": _positive_int,
    "alert_cooldown_s": _positive_int,
    "confirm_frames": _confirm_frames,
    "confirm_interval_s": _confirm_interval,
    "telegram_bot_token": _text,
    "telegram_chat_id": _text,
    "telegram_base_url": _text,
    "dashboard_host": _text,
    "dashboard_port": _port,
    "dashboard_token": _text,
    "log_level": _log_level,
    "keep_unchanged_jpeg": _bool,
    "audio_seconds": _audio_seconds,
    "cry_threshold": _optional_unit_float,
    "cry_cooldown_s": _positive_int,
    "cry_window": _window,
    "cry_needed": _positive_int,
    "keep_audio": _bool,
    "retention_days": _non_negative_int,
    "min_free_mb": _non_negative_int,
    "camera_down_ticks": _non_negative_int,
    "listen": _bool,
    "mqtt_host": _mqtt_host,
    "mqtt_port": _port,
    "mqtt_username": _text,
    "mqtt_password": _text,
    "mqtt_topic_prefix": _mqtt_topic,
    "mqtt_discovery_prefix": _mqtt_topic,
    "fallback_labeller_url": _labeller_url,
    "fallback_labeller_model": _text,
    "fallback_labeller_api_key": _text,
    "fallback_labeller_timeout_s": _labeller_timeout,
    "fallback_labeller_max_per_hour": _positive_int,
    "babybuddy_url": _babybuddy_url,
    "babybuddy_token": _babybuddy_token,
    "babybuddy_child_id": _optional_positive_int,
}
KEYS = tuple(name.upper() for name in _PARSERS)


def _raw_values(env_file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    raw: dict[str, str] = {}
    if env_file is not None and env_file.exists():
        for key, value in dotenv_values(env_file).items():
            name = key.removeprefix(ENV_PREFIX).upper()
            if name not in KEYS:
                raise SettingsError(f"{env_file}: unknown setting {key!r} (known: {', '.join(KEYS)})")
            raw[name] = value or ""
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key.removeprefix(ENV_PREFIX) in KEYS:
            raw[key.removeprefix(ENV_PREFIX)] = value
    return raw


def load_settings(
    env_file: Path | None = DEFAULT_ENV_FILE,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from `.env`, then `BILBO_*` variables, then keyword overrides (already typed)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, raw in _raw_values(env_file, environ).items():
        key = name.lower()
        try:
            values[key] = _PARSERS[key](raw)
        except ValueError as exc:
            raise SettingsError(f"setting {name}={_shown(name, raw)} is malformed: {exc}") from None
    values.update(overrides)
    settings = Settings(**values)
    if settings.wake_needed > settings.wake_window:
        raise SettingsError(f"setting WAKE_NEEDED={settings.wake_needed} exceeds WAKE_WINDOW={settings.wake_window}")
    if settings.cry_needed > settings.cry_window:
        raise SettingsError(f"setting CRY_NEEDED={settings.cry_needed} exceeds CRY_WINDOW={settings.cry_window}")
    if not settings.camera_url:
        raise SettingsError("setting CAMERA_URL is missing: an rtsp:// URL, a file or folder of JPEGs, or 'sample'")
    if bool(settings.telegram_bot_token) != bool(settings.telegram_chat_id):
        missing = "TELEGRAM_CHAT_ID" if settings.telegram_bot_token else "TELEGRAM_BOT_TOKEN"
        raise SettingsError(f"setting {missing} is missing: Telegram needs both the token and the chat id")
    if settings.mqtt_password and not settings.mqtt_username:
        raise SettingsError("setting MQTT_USERNAME is missing: MQTT_PASSWORD is set, and a password needs a user name")
    if settings.fallback_labeller_url and not settings.fallback_labeller_model:
        raise SettingsError(
            "setting FALLBACK_LABELLER_MODEL is missing: FALLBACK_LABELLER_URL is set and the server needs a model name"
        )
    if settings.babybuddy_url and not settings.babybuddy_token:
        raise SettingsError(
            "setting BABYBUDDY_TOKEN is missing: BABYBUDDY_URL is set and Baby Buddy needs the API key "
            "(on its User Settings page)"
        )
    if settings.babybuddy_url and settings.babybuddy_child_id is None:
        raise SettingsError(
            "setting BABYBUDDY_CHILD_ID is missing: BABYBUDDY_URL is set and Baby Buddy needs the child's id "
            "(the id field of GET /api/children/)"
        )
    return settings


def cli_settings(program: str, env_file: Path | None = DEFAULT_ENV_FILE, **overrides: Any) -> Settings | None:
    """`load_settings` for a command: a missing or malformed value prints one line 'PROGRAM: why' on stderr and
    gives None, so the command exits 2 (bad configuration) without a traceback."""
    try:
        return load_settings(env_file, **overrides)
    except SettingsError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return None


def describe() -> list[tuple[str, str]]:
    """(KEY, default) pairs, for `.env.example` and docs."""
    return [(f.name.upper(), str(f.default)) for f in fields(Settings)]


DEFAULT_CAMERA = Settings()  # what a camera gets that sets neither DATA_DIR nor DASHBOARD_PORT


def schedule_target(camera: str, config: str) -> tuple[str, int]:
    """For the schedule installers: one camera's settings file ("" = the checkout's .env) and dashboard port.

    A named camera (twins) must have its own file, and in it a DATA_DIR and a DASHBOARD_PORT of its own: two ticks on
    one database, or two dashboards on one port, would be a silent mess at 3 a.m. Raises SettingsError saying which.
    """
    if not camera:
        if config:
            raise SettingsError("--config needs --camera NAME: the first camera reads the checkout's .env")
        return "", load_settings(environ={}).dashboard_port
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,29}", camera):
        raise SettingsError(f"camera name {camera!r}: want lower-case letters, digits and '-' (e.g. 'ada', 'twin-2')")
    path = (Path(config).expanduser() if config else REPO_DIR / f".env.{camera}").resolve()
    if not path.is_file():
        raise SettingsError(
            f"no settings file {path} for camera {camera!r}: copy .env.example there and set its CAMERA_URL, "
            "DATA_DIR and DASHBOARD_PORT"
        )
    settings = load_settings(path, environ={})
    if settings.data_dir == DEFAULT_CAMERA.data_dir:
        raise SettingsError(f"setting DATA_DIR in {path} must be camera {camera}'s own folder (e.g. data-{camera})")
    if settings.dashboard_port == DEFAULT_CAMERA.dashboard_port:
        raise SettingsError(f"setting DASHBOARD_PORT in {path} must be camera {camera}'s own port (e.g. 5556)")
    return str(path), settings.dashboard_port


if __name__ == "__main__":  # `settings.py --install-check CAMERA CONFIG`, for systemd/ and launchd/install.sh
    if sys.argv[1:2] != ["--install-check"] or len(sys.argv) != 4:
        sys.exit("usage: settings.py --install-check CAMERA CONFIG  (prints PORT<tab>CONFIG)")
    try:
        target, port = schedule_target(sys.argv[2], sys.argv[3])
    except SettingsError as exc:
        sys.exit(f"bilbo: {exc}")
    print(f"{port}\t{target}")
