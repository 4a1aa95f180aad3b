"""Settings: one place, environment over .env, bad values named."""

import json
from pathlib import Path

import pytest

from settings import SettingsError, cli_settings, load_settings


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_defaults_need_no_env_file(tmp_path):
    settings = load_settings(tmp_path / "missing.env", environ={})
    assert settings.camera_url == "sample"
    assert settings.tick_interval_s == 240
    assert settings.dashboard_host == "127.0.0.1"
    assert not settings.telegram_enabled


def test_env_file_values_are_parsed_and_typed(tmp_path):
    env = write_env(tmp_path, "CAMERA_URL=rtsp://cam/stream1\nBASSINET_CROP=10,20,300,200\nEYE_THRESHOLD=0.8\n")
    settings = load_settings(env, environ={})
    assert settings.camera_url == "rtsp://cam/stream1"
    assert settings.bassinet_crop == (10, 20, 300, 200)
    assert settings.eye_threshold == 0.8


def test_bilbo_prefixed_environment_overrides_env_file(tmp_path):
    env = write_env(tmp_path, "TICK_INTERVAL_S=240\nDATA_DIR=/var/lib/a\n")
    settings = load_settings(env, environ={"BILBO_TICK_INTERVAL_S": "60", "BILBO_DATA_DIR": str(tmp_path)})
    assert settings.tick_interval_s == 60
    assert settings.data_dir == tmp_path
    assert settings.db_path == tmp_path / "bilbo.sqlite3"


def test_relative_data_dir_is_relative_to_the_checkout(tmp_path):
    settings = load_settings(None, environ={"BILBO_DATA_DIR": "data/demo"})
    assert settings.data_dir == Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TICK_INTERVAL_S", "often"),
        ("TICK_INTERVAL_S", "0"),
        ("EYE_THRESHOLD", "1.5"),
        ("BASSINET_CROP", "10,20,5,40"),
        ("BASSINET_CROP", "1,2,3"),
        ("LOG_LEVEL", "LOUD"),
        ("KEEP_UNCHANGED_JPEG", "maybe"),
        # numbers that parse but mean nothing here (issue 17: each was accepted, and each broke a tick quietly)
        ("CAPTURE_TIMEOUT_S", "inf"),
        ("CAPTURE_TIMEOUT_S", "nan"),
        ("CAPTURE_TIMEOUT_S", "2148"),
        ("DIFF_THRESHOLD", "inf"),
        ("DIFF_THRESHOLD", "255"),
        ("PRESENCE_THRESHOLD", "nan"),
        ("FACE_THRESHOLD", "nan"),
        ("AUDIO_SECONDS", "nan"),
        ("WAKE_WINDOW", "100000000"),
        ("CRY_WINDOW", "1000"),
        ("DASHBOARD_PORT", "70000"),
    ],
)
def test_malformed_value_error_names_the_key(tmp_path, key, value):
    with pytest.raises(SettingsError, match=key):
        load_settings(write_env(tmp_path, f"{key}={value}\n"), environ={})


def test_sane_numbers_at_the_edges_are_kept(tmp_path):
    env = "CAPTURE_TIMEOUT_S=600\nDIFF_THRESHOLD=254.5\nWAKE_WINDOW=20\nWAKE_NEEDED=20\nDASHBOARD_PORT=65535\n"
    settings = load_settings(write_env(tmp_path, env), environ={})
    assert (settings.capture_timeout_s, settings.diff_threshold, settings.wake_window) == (600.0, 254.5, 20)
    assert settings.dashboard_port == 65535


def test_unknown_key_in_env_file_is_rejected(tmp_path):
    with pytest.raises(SettingsError, match="CAMERA_ULR"):
        load_settings(write_env(tmp_path, "CAMERA_ULR=rtsp://typo\n"), environ={})


def test_empty_camera_url_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="CAMERA_URL is missing"):
        load_settings(write_env(tmp_path, "CAMERA_URL=\n"), environ={})


def test_telegram_needs_both_token_and_chat(tmp_path):
    with pytest.raises(SettingsError, match="TELEGRAM_CHAT_ID"):
        load_settings(None, environ={"BILBO_TELEGRAM_BOT_TOKEN": "123:abc"})
    both = load_settings(None, environ={"BILBO_TELEGRAM_BOT_TOKEN": "123:abc", "BILBO_TELEGRAM_CHAT_ID": "42"})
    assert both.telegram_enabled


def test_wake_needed_cannot_exceed_window():
    with pytest.raises(SettingsError, match="WAKE_NEEDED"):
        load_settings(None, environ={"BILBO_WAKE_NEEDED": "4", "BILBO_WAKE_WINDOW": "3"})


def test_env_example_is_complete_and_valid():
    example = Path(__file__).resolve().parents[1] / ".env.example"
    settings = load_settings(example, environ={})
    keys = {line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")}
    from settings import KEYS

    assert keys == set(KEYS)
    assert settings.camera_url == "sample"


def test_face_and_eye_thresholds_default_to_the_models_validated_thresholds(tmp_path):
    from models.cascade import Cascade

    settings = load_settings(None, environ={})
    assert settings.eye_threshold is None and settings.face_threshold is None
    cascade = Cascade.load(
        settings.models_dir, face_threshold=settings.face_threshold, eye_threshold=settings.eye_threshold
    )
    manifest = json.loads((settings.models_dir / "manifest.json").read_text())
    assert cascade.eye_threshold == manifest["models"]["eyes"]["threshold"]
    assert cascade.face_threshold == manifest["models"]["face"]["threshold"]
    assert Cascade.load(settings.models_dir, eye_threshold=0.9).eye_threshold == 0.9
    assert Cascade.load(settings.models_dir, face_threshold=0.35).face_threshold == 0.35


def test_fallback_labeller_is_off_by_default_and_needs_a_model_when_on():
    off = load_settings(None, environ={})
    assert not off.fallback_labeller_enabled and off.fallback_labeller_url == ""
    with pytest.raises(SettingsError, match="FALLBACK_LABELLER_MODEL is missing"):
        load_settings(None, environ={"BILBO_FALLBACK_LABELLER_URL": "http://192.168.1.20:11434/v1"})
    on = load_settings(
        None,
        environ={
            "BILBO_FALLBACK_LABELLER_URL": "http://192.168.1.20:11434/v1/",
            "BILBO_FALLBACK_LABELLER_MODEL": "qwen2.5vl:7b",
            "BILBO_FALLBACK_LABELLER_API_KEY": "sk-secret",
        },
    )
    assert on.fallback_labeller_enabled and on.fallback_labeller_url == "http://192.168.1.20:11434/v1"
    assert (on.fallback_labeller_timeout_s, on.fallback_labeller_max_per_hour) == (20.0, 6)
    assert "sk-secret" not in repr(on)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FALLBACK_LABELLER_URL", "192.168.1.20:11434/v1"),  # no scheme
        ("FALLBACK_LABELLER_URL", "ftp://192.168.1.20/v1"),
        ("FALLBACK_LABELLER_URL", "http://user:pass@192.168.1.20/v1"),  # the key has its own setting
        ("FALLBACK_LABELLER_URL", "http://192.168.1.20:11434/v1/chat/completions"),
        ("FALLBACK_LABELLER_URL", "http://192.168.1.20:port/v1"),
        ("FALLBACK_LABELLER_TIMEOUT_S", "0"),
        ("FALLBACK_LABELLER_TIMEOUT_S", "600"),
        ("FALLBACK_LABELLER_MAX_PER_HOUR", "0"),
    ],
)
def test_malformed_fallback_labeller_setting_names_the_key(tmp_path, key, value):
    env = write_env(tmp_path, f"FALLBACK_LABELLER_MODEL=m\n{key}={value}\n")
    with pytest.raises(SettingsError, match=key):
        load_settings(env, environ={})


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("BABYBUDDY_URL=http://bb:8000\nBABYBUDDY_CHILD_ID=1\nBABYBUDDY_TOKEN=Token 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
        ("FALLBACK_LABELLER_MODEL=m\nFALLBACK_LABELLER_URL=http://me:S3cr3t-pw@192.168.1.20/v1", "S3cr3t-pw"),
        ("FALLBACK_LABELLER_MODEL=m\nFALLBACK_LABELLER_URL=http://192.168.1.20/v1?api_key=S3cr3t-key", "S3cr3t-key"),
    ],
    ids=["token", "url-password", "url-query-key"],
)
def test_a_refused_secret_is_not_echoed(tmp_path, capsys, line, secret):
    """The refusal still names the key, and goes to stderr and the journal: the secret must not go with it."""
    with pytest.raises(SettingsError) as info:
        load_settings(write_env(tmp_path, line + "\n"), environ={})
    key = line.splitlines()[-1].split("=", 1)[0]
    assert key in str(info.value) and secret not in str(info.value)
    assert cli_settings("bilbo", write_env(tmp_path, line + "\n")) is None
    assert secret not in capsys.readouterr().err


def test_settings_know_every_configured_secret_for_redaction(tmp_path):
    env = write_env(
        tmp_path,
        "CAMERA_URL=rtsp://admin:pa ss'w\"d@cam/s1\nTELEGRAM_BOT_TOKEN=123:abc\nTELEGRAM_CHAT_ID=42\n"
        "MQTT_HOST=broker\nMQTT_USERNAME=u\nMQTT_PASSWORD=mq-pass\nDASHBOARD_TOKEN=dash-tok\n",
    )
    secrets = load_settings(env, environ={}).secrets
    assert set(secrets) == {"pa ss'w\"d", "123:abc", "mq-pass", "dash-tok"}
