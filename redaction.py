"""Credentials out of every text that leaves the process: log lines, stored rows, ticks.jsonl, alert texts.

stdlib only: the tick, the dashboard and settings.py import it. Two ways, because neither is enough alone:
- parsing: `redact_url` drops everything between `scheme://` and the URL's last `@` (a password may hold `@`, `/`,
  spaces or quotes, so no pattern can tell where it ends), and the values of secret-looking query keys
  (`password=`, `pw=`, `;loginpas=` ...);
- literally: `redact_text(text, secrets)` also replaces the configured secrets themselves (the camera password as
  written, percent-decoded and percent-encoded; tokens), since free text such as ffmpeg's stderr quotes a URL
  with no reliable end.
`url_secrets` gives the secrets a URL carries; `settings.Settings.secrets` all the configured ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
# Shorter secrets are replaced only inside URLs: replacing every "ab" in a message would garble it, and a
# password that short protects nothing anyway.
MIN_LITERAL = 3

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# In free text a URL's end is unknown: up to the last `@` of its word (greedy, so an `@` or `/` in the password is
# covered), not spanning another `scheme://`. A password with a space or quote ends the word early: the configured
# ones are replaced literally first, which is why `redact_text` takes them.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:(?!://)[^\s'\"])*@")
_SECRET_KEY = r"[\w.-]*(?:pass|pas|pwd|pw|token|auth|key|secret|user|usr|login|sig)[\w.-]*"
_QUERY_SECRETS = re.compile(rf"(?P<key>[?&;]{_SECRET_KEY}=)[^&;\s'\"]*", re.I)
_QUERY_PAIR = re.compile(rf"[?&;](?P<key>{_SECRET_KEY})=(?P<value>[^&;#]*)", re.I)
_USER_KEYS = re.compile(r"user|usr|login$|loginuse", re.I)  # user names: redacted in place, not hunted literally


def _forms(secret: str) -> set[str]:
    """The ways a secret can appear in text: as configured, percent-decoded and percent-encoded."""
    return {form for form in (secret, unquote(secret), quote(secret, safe="")) if len(form) >= MIN_LITERAL}


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of `scheme://user:password@host/...` (everything between the first `:` of the user part and
    the URL's last `@`) and the values of secret query keys other than user names."""
    found = []
    if _SCHEME.match(url) and "@" in url:
        userinfo = url[url.index("://") + 3 : url.rindex("@")]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    for pair in _QUERY_PAIR.finditer(url):
        if not _USER_KEYS.search(pair["key"]) and pair["value"]:
            found.append(pair["value"])
    return tuple(found)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets` (in any form) replaced by ***, `user:pass@` of every URL by `***@`, and
    secret-looking query values by ***. The one function every outgoing text passes through."""
    for form in sorted({f for secret in secrets if secret for f in _forms(secret)}, key=len, reverse=True):
        text = text.replace(form, MASK)
    text = _URL_CREDENTIALS.sub(rf"\g<scheme>{MASK}@", text)
    return _QUERY_SECRETS.sub(rf"\g<key>{MASK}", text)


def redact_url(url: str) -> str:
    """`rtsp://admin:se cr@t@cam:554/s1?pw=x` -> `rtsp://***@cam:554/s1?pw=***`, parsed rather than matched: the
    credentials are everything before the URL's last `@`, whatever characters they hold. A URL without
    credentials is unchanged."""
    if _SCHEME.match(url) and "@" in url:
        scheme_end = url.index("://") + 3
        url = f"{url[:scheme_end]}{MASK}{url[url.rindex('@') :]}"
    return redact_text(url, url_secrets(url))
