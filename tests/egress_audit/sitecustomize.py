"""Test-only network recorder (tests/test_zero_egress.py puts this folder first on PYTHONPATH).

When BILBO_EGRESS_AUDIT_LOG names a file, every Python process started with this folder on its path installs
an audit hook (PEP 578) at start-up and appends one JSON line per network attempt to that file: connections,
datagrams, name lookups, binds, and every program it starts (ffmpeg's command line carries the camera URL).
The hook only records; it never blocks anything, so the process behaves exactly as it does in production.
Child Python processes inherit PYTHONPATH and the variable, so they are recorded in the same file.
"""

from __future__ import annotations

import json
import os
import sys

LOG_VARIABLE = "BILBO_EGRESS_AUDIT_LOG"

# audit event -> names of its arguments (https://docs.python.org/3/library/audit_events.html)
_EVENTS = {
    "socket.connect": ("socket", "address"),
    "socket.sendto": ("socket", "address"),
    "socket.sendmsg": ("socket", "address"),
    "socket.bind": ("socket", "address"),
    "socket.getaddrinfo": ("host", "port", "family", "type", "protocol"),
    "socket.gethostbyname": ("host",),
    "socket.gethostbyaddr": ("host",),
    "socket.getnameinfo": ("address", "flags"),
    "http.client.connect": ("self", "host", "port"),
    "urllib.Request": ("url", "data", "headers", "method"),
    "subprocess.Popen": ("executable", "args", "cwd", "env"),
    "os.exec": ("path", "args", "env"),
    "os.posix_spawn": ("path", "argv", "env"),
    "os.spawn": ("mode", "path", "args", "env"),
    "os.system": ("command",),
    "pty.spawn": ("argv",),
}
_DROP = {"self", "env", "headers", "data"}  # never written: objects, secrets in environments, request bodies


def _plain(value: object) -> object:
    """A JSON-friendly copy: tuples become lists, bytes and paths become text, anything else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return repr(value)


def _write(fd: int, entry: dict[str, object]) -> None:
    """One line, one write() on an O_APPEND file: lines of concurrent processes never interleave."""
    os.write(fd, (json.dumps({**entry, "pid": os.getpid()}) + "\n").encode())


def _record(fd: int, event: str, args: tuple) -> None:
    entry: dict[str, object] = {"event": event}
    for name, value in zip(_EVENTS[event], args, strict=False):  # a later Python may add arguments
        if name == "socket":
            family = getattr(value, "family", None)
            entry["family"] = getattr(family, "name", str(family))
        elif name not in _DROP:
            entry[name] = _plain(value)
    _write(fd, entry)


def _install(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _write(fd, {"event": "start", "argv": sys.orig_argv})  # proof that this process is being recorded

    def hook(event: str, args: tuple) -> None:
        if event in _EVENTS:
            try:
                _record(fd, event, args)
            except Exception as exc:  # never break the audited process; the test reports this line instead
                _write(fd, {"event": "recorder-error", "about": event, "error": repr(exc)})

    sys.addaudithook(hook)


if os.environ.get(LOG_VARIABLE):
    _install(os.environ[LOG_VARIABLE])
