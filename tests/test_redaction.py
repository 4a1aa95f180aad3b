"""redaction.py: credentials out of every outgoing text, parsed from the URL and replaced literally."""

from __future__ import annotations

import pytest

from redaction import redact_text, redact_url, url_secrets

PECULIAR = ["pa ss", "it's", 'say"hi"', "tab\there", "p@ss/w:rd", "über geheim"]


@pytest.mark.parametrize("password", PECULIAR, ids=["space", "quote", "double-quote", "tab", "at-slash-colon", "utf8"])
def test_a_url_loses_everything_before_its_last_at_whatever_the_password_holds(password):
    url = f"rtsp://admin:{password}@cam.local:554/stream1"
    assert redact_url(url) == "rtsp://***@cam.local:554/stream1"
    assert url_secrets(url) == (password,)


@pytest.mark.parametrize("password", PECULIAR, ids=["space", "quote", "double-quote", "tab", "at-slash-colon", "utf8"])
def test_free_text_quoting_the_url_loses_the_configured_password_in_every_form(password):
    url = f"rtsp://admin:{password}@cam.local/s1"
    text = f"[error] Impossible to open '{url}'; tried {url.replace(password, password.replace(' ', '%20'))} too"
    redacted = redact_text(text, url_secrets(url))
    assert password not in redacted and password.replace(" ", "%20") not in redacted
    assert "cam.local/s1" in redacted  # the part a parent needs stays


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("rtsp://cam/onvif?user=admin&password=x1y2&channel=1", "channel=1"),
        ("rtsp://cam/live?pw=x1y2", "rtsp://cam/live?pw=***"),
        ("rtsp://cam/live;user=admin;password=x1y2", "rtsp://cam/live;user=***;password=***"),
        ("http://cam/snapshot.cgi?loginuse=admin&loginpas=x1y2&res=1", "res=1"),
        ("rtsp://cam/h264?token=x1y2", "rtsp://cam/h264?token=***"),
    ],
)
def test_query_secrets_are_masked_whatever_the_cameras_key_name(url, kept):
    redacted = redact_url(url)
    assert "x1y2" not in redacted and "admin" not in redacted and kept in redacted
    assert "x1y2" not in redact_text(f"camera {url} refused", url_secrets(url))


def test_a_query_password_with_a_space_is_masked_whole():
    url = "rtsp://cam/live?pw=two words&ch=1"
    assert redact_url(url) == "rtsp://cam/live?pw=***&ch=1"


def test_two_urls_in_one_line_keep_their_hosts_and_lose_their_credentials():
    text = "ffmpeg: 'rtsp://u:pw@cam/s1': Invalid data; rtsp://v:pw@cam2/s2 too"
    assert redact_text(text) == "ffmpeg: 'rtsp://***@cam/s1': Invalid data; rtsp://***@cam2/s2 too"


def test_text_without_secrets_is_unchanged():
    text = "camera rtsp://cam.local:554/stream1 did not send a frame within 15 s (mail: ops@example.org)"
    assert redact_text(text, ("", "ab")) == text  # empty and too-short secrets are not hunted literally
    assert redact_url("rtsp://cam.local:554/stream1") == "rtsp://cam.local:554/stream1"
