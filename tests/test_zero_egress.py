"""Zero egress (DESIGN.md feature 17): the real tick and dashboard processes open no connection outside the
allowlist that their configuration implies.

The allowlist is computed from the same Settings the process loads: the camera's host and port (and ffmpeg, the
only program the tick may start) for an RTSP camera, the Telegram Bot API's host and port only when Telegram is
configured (the MQTT broker only when MQTT_HOST is set, the fallback labeller's server only when
FALLBACK_LABELLER_URL is set), the dashboard's own loopback address for its listening socket, and nothing else: no
DNS lookup of another name, no telemetry, no model or package download, no listener on the LAN.

Two recorders watch the real processes, and `violations()` checks what either saw:
- audit: `tests/egress_audit/sitecustomize.py` (put first on PYTHONPATH) installs a PEP 578 audit hook in every
  Python process started for the test and logs each connect/sendto/sendmsg/bind, name lookup and started program
  (ffmpeg's command line carries the camera URL). It sees Python only, not C code in a wheel or ffmpeg itself.
- strace: where /usr/bin/strace exists and may trace, the same command also runs under `strace -f`, which logs the
  connect/sendto/sendmsg/bind system calls of the process and all its children, ffmpeg and native code included.
  AF_UNIX and AF_NETLINK sockets stay inside the machine and are not egress; everything else is checked. Where
  strace is missing or may not trace, those variants skip and say why (the audit variants always run).
On top of that, the sample camera's ticks run under `unshare --net` (root): with no network interface at all, not
even loopback, they must still work. A negative control proves that the recorders and the check catch a leak.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import pytest

from alerts.notifiers import notifier_from_settings
from capture.ffmpeg import find_ffmpeg
from capture.sample_camera import BASSINET_CROP, frame_at
from settings import Settings, load_settings
from tests.conftest import free_port
from tests.rtsp_redirect import RedirectingCamera
from tests.tick_runner import rows

REPO = Path(__file__).resolve().parents[1]
AUDIT_DIR = REPO / "tests" / "egress_audit"
AUDIT_LOG_VARIABLE = "BILBO_EGRESS_AUDIT_LOG"  # read by tests/egress_audit/sitecustomize.py
CROP = ",".join(str(v) for v in BASSINET_CROP)
WAKE_TIMES = ("01:56", "02:00", "02:04")  # the sample night: eyes closed, open (confirmed 15 s on: the alert), open
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
# --seccomp-bpf stops a traced process only on these calls, so onnxruntime and ffmpeg run at full speed; -s 16
# keeps arrays (sendmmsg's messages and their addresses) printed while payloads stay short.
STRACE = ("strace", "-f", "-qq", "--seccomp-bpf", "-s", "16", "-e", "trace=connect,sendto,sendmsg,sendmmsg,bind",
          "-e", "signal=none")  # fmt: skip
LOCAL_FAMILIES = {"AF_UNIX", "AF_NETLINK"}  # sockets that never leave the machine


# ---------------------------------------------------------------------------------------------------------
# The allowlist the configuration implies, and the check
# ---------------------------------------------------------------------------------------------------------


def _host(raw: object) -> str:
    """A comparable host: IP addresses in canonical form, names in lower case."""
    text = str(raw).strip("[]").lower()
    try:
        return ipaddress.ip_address(text.split("%")[0]).compressed
    except ValueError:
        return text


def endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) a URL connects to, or None for something that is not a network URL (a file, `sample`)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return None
    return _host(parts.hostname), parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)


@dataclass(frozen=True)
class Allowlist:
    connect: frozenset[tuple[str, int]] = frozenset()  # (host, port) a process may connect or send to
    bind: frozenset[tuple[str, int]] = frozenset()  # (host, port) a process may listen on
    programs: frozenset[str] = frozenset()  # programs a process may start (by file name)

    @property
    def lookups(self) -> frozenset[str]:
        """Names and addresses a process may resolve: only the hosts it may talk to or listen on."""
        return frozenset(host for host, _ in self.connect | self.bind)


def allowlist_for(settings: Settings, *, dashboard: bool = False) -> Allowlist:
    """What these settings allow: the camera (and ffmpeg) for a network camera, the Bot API only when Telegram
    is configured (at the base URL the notifier itself would use), the MQTT broker only when one is configured,
    and for the dashboard its own listening address."""
    if dashboard:
        return Allowlist(bind=frozenset({(_host(settings.dashboard_host), settings.dashboard_port)}))
    connect, programs = set(), set()
    camera = endpoint(settings.camera_url)
    if camera:
        connect.add(camera)
        programs.add(Path(settings.ffmpeg_path or "ffmpeg").name)
    if settings.telegram_enabled:
        bot_api = endpoint(notifier_from_settings(settings).base_url)
        assert bot_api is not None
        connect.add(bot_api)
    if getattr(settings, "mqtt_host", ""):  # the parent's own MQTT broker (feature 16), only when MQTT_HOST is set
        connect.add((_host(settings.mqtt_host), settings.mqtt_port))
    if settings.fallback_labeller_enabled:  # the parent's own model server (feature 14), only when its URL is set
        labeller = endpoint(settings.fallback_labeller_url)
        assert labeller is not None
        connect.add(labeller)
    return Allowlist(connect=frozenset(connect), programs=frozenset(programs))


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def _program_allowed(program: str, allowed: frozenset[str]) -> bool:
    name = Path(program).name
    return any(name == a or name.startswith(f"{a}-") for a in allowed)  # imageio's ffmpeg-linux-x86_64-v7.0


def _address(event: dict) -> tuple[str, int] | None:
    address = event.get("address")
    if isinstance(address, list) and len(address) >= 2:
        return _host(address[0]), int(address[1])
    return None


def _shown(event: dict) -> str:
    """host:port of an event's address, or the address as recorded when it has no port."""
    target = _address(event)
    return f"{target[0]}:{target[1]}" if target else str(event.get("address"))


def violations(events: list[dict], allow: Allowlist) -> list[str]:
    """One line per recorded network attempt or started program that the allowlist does not allow."""
    found = []
    for e in events:
        kind, family = e["event"], e.get("family")
        if kind in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            if family in LOCAL_FAMILIES or e.get("address") is None:
                continue  # same machine, or a connected socket whose peer was checked at connect()
            target = _address(e)
            if target not in allow.connect:
                found.append(f"{kind} to {_shown(e)} ({family}) by pid {e['pid']}")
        elif kind == "socket.bind":
            target = _address(e)
            if family not in LOCAL_FAMILIES and target not in allow.bind:
                found.append(f"listening socket bound to {_shown(e)} ({family}) by pid {e['pid']}")
        elif kind == "http.client.connect":
            if (_host(e["host"]), int(e["port"] or 80)) not in allow.connect:
                found.append(f"HTTP connection to {e['host']}:{e['port']} by pid {e['pid']}")
        elif kind in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
            if e["host"] is not None and _host(e["host"]) not in allow.lookups:
                found.append(f"name lookup {kind}({e['host']!r}) by pid {e['pid']}")
        elif kind == "socket.getnameinfo":
            host = e["address"][0] if isinstance(e["address"], list) else e["address"]
            if _host(host) not in allow.lookups:
                found.append(f"reverse lookup of {host!r} by pid {e['pid']}")
        elif kind == "urllib.Request":
            if endpoint(e["url"]) not in allow.connect:
                found.append(f"urllib request to {e['url']} by pid {e['pid']}")
        elif kind in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "pty.spawn"):
            found += _program_violations(e, allow)
        elif kind == "recorder-error":
            found.append(f"the recorder could not log a {e['about']} event: {e['error']}")
    return found


def _program_violations(event: dict, allow: Allowlist) -> list[str]:
    argv = event.get("args") or event.get("argv") or event.get("command") or []
    words = argv if isinstance(argv, list) else str(argv).split()
    program = str(event.get("executable") or event.get("path") or (words[0] if words else ""))
    found = []
    if not _program_allowed(program, allow.programs):
        found.append(f"started program {program!r} (args {words}) by pid {event['pid']}")
    for word in words:
        for url in _URL_IN_TEXT.findall(str(word)):
            if endpoint(url) not in allow.connect:
                found.append(f"started {Path(program).name} on URL {url} by pid {event['pid']}")
    return found


# ---------------------------------------------------------------------------------------------------------
# Recorders: the audit hook (always) and strace (where it exists and may trace)
# ---------------------------------------------------------------------------------------------------------


@functools.cache
def strace_unavailable() -> str | None:
    """Why strace cannot record here (None: it can)."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace is not installed (Debian package `strace`; not in .ci/system-deps.sh)"
    probe = subprocess.run([*STRACE, "-o", os.devnull, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"strace may not trace here (ptrace refused?): {probe.stderr.strip()[-200:]}"
    return None


_STRACE_EVENTS = {"connect": "socket.connect", "sendto": "socket.sendto", "sendmsg": "socket.sendmsg",
                  "sendmmsg": "socket.sendmsg", "bind": "socket.bind"}  # fmt: skip
_STRACE_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>connect|sendto|sendmsg|sendmmsg|bind)\((?P<rest>.*)$")
_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_IPV4 = re.compile(r'inet_addr\("([^"]+)"\)')
_IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
_UNIX = re.compile(r'sun_path=(@?"[^"]*")')


def parse_strace(text: str) -> list[dict]:
    """strace -f lines -> events shaped like the audit hook's (only calls that name a destination address)."""
    events = []
    for line in text.splitlines():
        match = _STRACE_LINE.match(line)
        if not match or not (family := _FAMILY.search(match["rest"])):
            continue  # e.g. sendto(fd, ..., NULL, 0) on a connected socket: its connect() was recorded
        event = {"event": _STRACE_EVENTS[match["call"]], "pid": int(match["pid"]), "family": family[1]}
        ip, port = _IPV4.search(match["rest"]) or _IPV6.search(match["rest"]), _PORT.search(match["rest"])
        if family[1] in ("AF_INET", "AF_INET6") and ip and port:
            event["address"] = [ip[1], int(port[1])]
        elif family[1] in ("AF_INET", "AF_INET6"):
            event["address"] = line.strip()  # unparsed: reported, never waved through
        else:
            unix = _UNIX.search(match["rest"])
            event["address"] = unix[1] if unix else family[1]
        events.append(event)
    return events


@dataclass
class Recording:
    """Where one process's network attempts are logged; `wrap` and `env` make a command record into it."""

    folder: Path
    use_strace: bool = False
    audit_log: Path = field(init=False)
    strace_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.audit_log = self.folder / "audit.jsonl"
        self.strace_log = self.folder / "strace.txt"

    def wrap(self, argv: list[str]) -> list[str]:
        if not self.use_strace:
            return argv
        return [*STRACE, "-o", str(self.strace_log), "--", *argv]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment the tick and dashboard would have (no BILBO_ from the outside, no proxy of this
        machine's) plus the recorder's variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_") and not k.lower().endswith("_proxy")}
        path = [str(AUDIT_DIR), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
        env.update({"PYTHONPATH": os.pathsep.join(path), AUDIT_LOG_VARIABLE: str(self.audit_log), **extra})
        return env

    def audit_events(self) -> list[dict]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    def syscall_events(self) -> list[dict]:
        """What strace saw (nothing without strace)."""
        return parse_strace(self.strace_log.read_text()) if self.use_strace and self.strace_log.exists() else []

    def events(self) -> list[dict]:
        return [*self.audit_events(), *self.syscall_events()]

    def started(self, marker: str) -> list[dict]:
        """The recorder's own start line of every audited Python process whose command line mentions `marker`
        (proof that the hook was really installed in the process under test)."""
        return [e for e in self.audit_events() if e["event"] == "start" and any(marker in a for a in e["argv"])]


RECORDERS = [
    pytest.param("audit", id="audit"),
    pytest.param("strace", id="audit+strace"),
]


def recording(folder: Path, recorder: str) -> Recording:
    if recorder == "strace" and (why := strace_unavailable()):
        pytest.skip(f"syscall-level recording not possible: {why}; the audit-hook variant still runs")
    return Recording(folder, use_strace=recorder == "strace")


def assert_no_violations(rec: Recording, allow: Allowlist, what: str) -> None:
    found = violations(rec.events(), allow)
    assert not found, f"{what} reached outside its allowlist {allow}:\n" + "\n".join(found)


# ---------------------------------------------------------------------------------------------------------
# Running the real processes
# ---------------------------------------------------------------------------------------------------------


def timer_states(data_dir: Path) -> list[str]:
    """The states of the timer's ticks; each waking also took a confirmation frame (tick.confirms set)."""
    stored = rows(data_dir)
    assert any(r.confirms is not None for r in stored), "the 02:00 waking took no confirmation frame"
    return [r.state for r in stored if r.confirms is None]


def tick_settings(data_dir: Path, **bilbo: str) -> tuple[dict[str, str], Settings]:
    """BILBO_* variables for a tick, and the Settings the tick will load from them."""
    variables = {"BILBO_DATA_DIR": str(data_dir), **{f"BILBO_{k.upper()}": v for k, v in bilbo.items()}}
    return variables, load_settings(None, environ=variables)


def run_tick(
    rec: Recording, variables: dict[str, str], hhmm: str, *extra: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`monitor.py --once` as the timer runs it (cwd /, its own settings), recorded by `rec`."""
    argv = [sys.executable, str(REPO / "monitor.py"), "--config", os.devnull, "--once"]
    argv += ["--at", f"2026-11-21T{hhmm}:00", *extra]
    return subprocess.run(
        [*prefix, *rec.wrap(argv)], capture_output=True, text=True, env=rec.env(**variables), timeout=120, cwd="/"
    )


def served_frame(folder: Path, hhmm: str) -> Path:
    """The sample night's frame at hh:mm as a JPEG for the RTSP test camera."""
    hours, minutes = (int(v) for v in hhmm.split(":"))
    path = folder / f"served-{hours:02d}{minutes:02d}.jpg"
    cv2.imwrite(str(path), frame_at(datetime(2026, 11, 21, hours, minutes))[0])
    return path


class _Assets(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def request(port: int, path: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    """(status, body) of one HTTP request to the dashboard on 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


@contextmanager
def dashboard_process(rec: Recording, data_dir: Path, port: int) -> Iterator[int]:
    """`python -m dashboard --port PORT` as a real process (its default host: loopback), recorded by `rec`."""
    argv = rec.wrap([sys.executable, "-m", "dashboard", "--port", str(port)])
    output = rec.folder / "dashboard.log"  # a file, not a pipe nobody reads while it serves
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, env=rec.env(BILBO_DATA_DIR=str(data_dir)), cwd=data_dir, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited {proc.returncode}: {output.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the dashboard did not listen within 30 s")
                time.sleep(0.1)
        yield port
    finally:
        # Stop the dashboard itself (the pid its recorder logged); strace, if it runs it, then exits too.
        pids = [start["pid"] for start in rec.started("dashboard")] or [proc.pid]
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------------
# (1) the sample camera, no Telegram: nothing at all
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recorder", RECORDERS)
def test_sample_camera_ticks_without_telegram_make_no_network_attempt_at_all(tmp_path, recorder):
    variables, settings = tick_settings(tmp_path / "data", audio_seconds="1")
    assert allowlist_for(settings) == Allowlist()  # nothing to reach: no camera host, no Telegram
    logs = []
    for hhmm in WAKE_TIMES:
        rec = recording(tmp_path / f"rec-{hhmm.replace(':', '')}", recorder)
        result = run_tick(rec, variables, hhmm, "--source", "sample")
        logs.append(result.stderr)
        assert result.returncode == 0, result.stderr
        assert rec.started("monitor.py"), "the audit hook was not installed in the tick"
        assert_no_violations(rec, Allowlist(), f"the sample tick at {hhmm}")
        network = [e for e in rec.audit_events() if e["event"] != "start"]
        assert network == [], f"the sample tick at {hhmm} touched the network at all (even loopback): {network}"
    # The wake alert was raised and went to the log, the only channel configured.
    assert "alert (no Telegram configured): Baby seems to be waking" in "".join(logs)
    assert timer_states(tmp_path / "data") == ["asleep", "awake", "awake"]


def test_sample_camera_ticks_work_with_no_network_interface_at_all(tmp_path):
    """The ticks and their wake alert under `unshare --net`: a network namespace where no interface is up, not
    even loopback. Whatever C code the audit hook cannot see, it has no network to use here."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux's unshare to create a network namespace")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"`unshare --net` is not permitted here: {probe.stderr.strip()[-200:]}")
    with socket.socket() as listener:  # a port that answers outside the namespace...
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        isolated = subprocess.run(
            ["unshare", "--net", sys.executable, "-c",
             f"import socket; socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2)"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert isolated.returncode != 0 and "unreachable" in isolated.stderr, "the namespace is not isolated"

    variables, _ = tick_settings(tmp_path / "data", audio_seconds="1")
    logs = []
    for hhmm in WAKE_TIMES:
        rec = Recording(tmp_path / f"rec-{hhmm.replace(':', '')}")
        result = run_tick(rec, variables, hhmm, "--source", "sample", prefix=("unshare", "--net"))
        logs.append(result.stderr)
        assert result.returncode == 0, result.stderr
        assert rec.started("monitor.py") and violations(rec.events(), Allowlist()) == []
    assert "alert (no Telegram configured): Baby seems to be waking" in "".join(logs)
    assert timer_states(tmp_path / "data") == ["asleep", "awake", "awake"]


# ---------------------------------------------------------------------------------------------------------
# (1b) the sample camera with the fallback labeller on: that server, nothing else
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recorder", RECORDERS)
def test_an_enabled_fallback_labeller_is_the_only_extra_destination(tmp_path, recorder):
    """The 23:00 sample frame is one the cascade cannot see: the tick sends it to the configured labeller on
    127.0.0.1, and to nothing else."""
    from tests.test_fallback_labeller import ChatServer

    with ChatServer() as chat:
        variables, settings = tick_settings(tmp_path / "data", audio_seconds="0", fallback_labeller_url=chat.base_url,
                                            fallback_labeller_model="vision")  # fmt: skip
        allow = allowlist_for(settings)
        assert allow == Allowlist(connect=frozenset({("127.0.0.1", chat.port)}))
        rec = recording(tmp_path / "rec", recorder)
        result = run_tick(rec, variables, "23:00", "--source", "sample")
    assert result.returncode == 0, result.stderr
    assert rec.started("monitor.py"), "the audit hook was not installed in the tick"
    assert_no_violations(rec, allow, "the sample tick with a fallback labeller")
    assert len(chat.requests) == 1  # the frame went to the labeller...
    reached = [e for e in rec.events() if e["event"] == "socket.connect" and _address(e) == ("127.0.0.1", chat.port)]
    assert reached, "the connection to the labeller was not recorded: the recorder is blind"  # ...and was seen


# ---------------------------------------------------------------------------------------------------------
# (2) a loopback RTSP camera and a configured Bot API: those two, nothing else
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.rtsp
@pytest.mark.parametrize("recorder", RECORDERS)
def test_rtsp_ticks_with_a_telegram_alert_talk_only_to_the_camera_and_the_bot_api(
    tmp_path, rtsp_server, bot_api, recorder
):
    cameras = {hhmm: rtsp_server(served_frame(tmp_path, hhmm)) for hhmm in WAKE_TIMES}  # one camera per frame
    telegram = {"telegram_bot_token": bot_api.token, "telegram_chat_id": "4242", "telegram_base_url": bot_api.base_url}
    bot_api_endpoint = ("127.0.0.1", bot_api.port)
    recs = []  # the alert goes out with the 02:00 tick (its confirmation frame), not the last one
    for hhmm, url in cameras.items():
        variables, settings = tick_settings(
            tmp_path / "data", camera_url=url, bassinet_crop=CROP, audio_seconds="1", **telegram
        )
        allow = allowlist_for(settings)
        assert allow.connect == {endpoint(url), bot_api_endpoint} and allow.programs == {"ffmpeg"}
        rec = recording(tmp_path / f"rec-{hhmm.replace(':', '')}", recorder)
        result = run_tick(rec, variables, hhmm)
        recs.append(rec)
        assert result.returncode == 0, result.stderr
        assert rec.started("monitor.py"), "the audit hook was not installed in the tick"
        assert_no_violations(rec, allow, f"the RTSP tick at {hhmm}")
        # The recorder saw the real traffic: ffmpeg started, the camera URL on its stdin, not its command line...
        grabs = [e for e in rec.audit_events() if e["event"] == "subprocess.Popen" and "pipe:0" in e["args"]]
        assert grabs and all(url not in str(e["args"]) for e in grabs), f"no concealed ffmpeg grab at {hhmm}"
        if rec.use_strace:  # ...and, at syscall level, ffmpeg's own connection to the camera.
            reached = {_address(e) for e in rec.syscall_events() if e["event"] == "socket.connect"}
            assert endpoint(url) in reached, f"strace saw no connection to the camera at {hhmm}"

    # The wake alert went out through the configured Bot API, and the recorder saw that connection.
    assert timer_states(tmp_path / "data") == ["asleep", "awake", "awake"]
    [sent] = bot_api.calls("sendPhoto")
    assert "waking" in sent.caption and sent.chat_id == "4242"
    to_bot_api = [
        e for r in recs for e in r.audit_events() if e["event"] == "socket.connect" and _address(e) == bot_api_endpoint
    ]
    assert to_bot_api, "the connection to the Bot API was not recorded: the recorder is blind"


@pytest.mark.rtsp
@pytest.mark.parametrize("recorder", RECORDERS)
def test_a_camera_redirecting_elsewhere_is_refused_and_ffmpegs_one_connection_there_is_all_that_left(
    tmp_path, rtsp_server, recorder
):
    """ffmpeg follows an RTSP 302 on its own and no option stops it, so its connection to the address the camera
    names cannot be prevented (credentials are not forwarded: they are not in the Location). The tick detects the
    redirect, refuses the frame, stores no tick and says so in one line; that one connection, made by ffmpeg, is the
    only thing outside the allowlist (strace sees it; the audit hook sees Python reach nothing else)."""
    elsewhere = rtsp_server(served_frame(tmp_path, "03:00"))  # a working camera the settings never name
    with RedirectingCamera(elsewhere, host="127.0.0.2") as camera:
        camera_url = camera.url.replace("rtsp://", "rtsp://parent:hunter2@")
        variables, settings = tick_settings(tmp_path / "data", camera_url=camera_url, bassinet_crop=CROP,
                                            audio_seconds="1")  # fmt: skip
        allow = allowlist_for(settings)
        assert allow.connect == {("127.0.0.2", camera.port)}
        rec = recording(tmp_path / "rec", recorder)
        result = run_tick(rec, variables, "03:00")
    assert camera.requests, "ffmpeg never asked the configured camera"
    assert result.returncode == 1, result.stderr
    [error] = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert f"redirected the grab to {elsewhere}" in error and "refused" in error and "hunter2" not in error
    assert rows(tmp_path / "data") == []  # no frame from the other address was stored
    target = "{}:{}".format(*endpoint(elsewhere))
    found = violations(rec.events(), allow)
    if rec.use_strace:
        assert found and all(f"socket.connect to {target} " in line for line in found), found
    else:
        assert found == [], found


# ---------------------------------------------------------------------------------------------------------
# (3) the dashboard: listens on loopback only, connects nowhere
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recorder", RECORDERS)
def test_dashboard_serving_the_page_assets_and_api_binds_loopback_only_and_connects_nowhere(tmp_path, recorder):
    data_dir = tmp_path / "data"
    variables, _ = tick_settings(data_dir, audio_seconds="1")
    for hhmm in WAKE_TIMES:  # a night to show (not recorded: the ticks have their own test)
        assert run_tick(Recording(tmp_path / "setup"), variables, hhmm, "--source", "sample").returncode == 0
    port = free_port()
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(data_dir)}, dashboard_port=port)
    allow = allowlist_for(settings, dashboard=True)
    assert allow == Allowlist(bind=frozenset({("127.0.0.1", port)}))

    rec = recording(tmp_path / "rec", recorder)
    with dashboard_process(rec, data_dir, port):
        status, page = request(port, "/")
        assert status == 200
        assets = _Assets()
        assets.feed(page.decode())
        outside = [u for u in assets.urls if endpoint(u) is not None]
        assert outside == [], f"the page loads assets from elsewhere: {outside}"
        for url in assets.urls:  # the page's own assets (inline data: ones need no request)
            if not url.startswith("data:"):
                assert request(port, url)[0] == 200, url
        csrf = re.search(rb'name="csrf-token" content="([^"]+)"', page)[1].decode()
        for path in ("/api/status", "/api/timeline", "/api/review?limit=100", "/api/metrics", "/api/ticks/1"):
            assert request(port, path)[0] == 200, path
        assert request(port, "/frames/2.jpg")[0] == 200
        correction = {"changes": {"eyes": "open"}}
        assert request(port, "/api/ticks/1/corrections", "POST", correction, {"X-CSRF-Token": csrf})[0] == 201
        assert request(port, "/api/ticks/1/undo", "POST", {}, {"X-CSRF-Token": csrf})[0] == 200
    assert rec.started("dashboard"), "the audit hook was not installed in the dashboard"
    assert_no_violations(rec, allow, "the dashboard")
    binds = [e for e in rec.audit_events() if e["event"] == "socket.bind"]
    assert binds and all(_address(e) == ("127.0.0.1", port) for e in binds), binds
    connects = [e for e in rec.events() if e["event"] == "socket.connect" and e["family"] not in LOCAL_FAMILIES]
    assert connects == [], f"the dashboard opened connections: {connects}"


# ---------------------------------------------------------------------------------------------------------
# (4) negative control: the same recorders and check catch a leak
# ---------------------------------------------------------------------------------------------------------

LEAKY_CHILD = """
import socket, subprocess, sys, threading
camera, closed, ffmpeg = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socket.create_connection(("127.0.0.1", camera), timeout=2).close()          # allowed: the configured camera
for target in (("192.0.2.1", 9), ("127.0.0.1", closed)):                     # not allowed: TEST-NET, another port
    try:
        socket.create_connection(target, timeout=0.5).close()
    except OSError:
        pass
threading.Thread(target=socket.getaddrinfo, args=("api.telegram.org", 443), daemon=True).start()
try:
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "quiet", "-timeout", "500000", "-i", "rtsp://192.0.2.1:554/leak",
                    "-f", "null", "-"], timeout=5)
except subprocess.TimeoutExpired:
    pass
threading.Event().wait(0.5)  # let the lookup be recorded, not answered (there may be no DNS here)
"""


@pytest.mark.parametrize("recorder", RECORDERS)
def test_recorder_reports_connections_lookups_and_programs_outside_the_allowlist(tmp_path, recorder):
    with socket.socket() as camera:  # a "camera" the allowlist allows, so the control also shows what passes
        camera.bind(("127.0.0.1", 0))
        camera.listen()
        camera_port, closed_port = camera.getsockname()[1], free_port()
        _, settings = tick_settings(tmp_path, camera_url=f"rtsp://127.0.0.1:{camera_port}/cam")
        allow = allowlist_for(settings)
        rec = recording(tmp_path / "rec", recorder)
        argv = rec.wrap([sys.executable, "-c", LEAKY_CHILD, str(camera_port), str(closed_port), find_ffmpeg()])
        result = subprocess.run(argv, env=rec.env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = violations(rec.events(), allow)
    report = "\n".join(found)
    expected = ["connect to 192.0.2.1:9 ", f"connect to 127.0.0.1:{closed_port} ", "getaddrinfo('api.telegram.org')",
                "on URL rtsp://192.0.2.1:554/leak", "getaddrinfo('192.0.2.1')"]  # fmt: skip
    for leak in expected:
        assert any(leak in line for line in found), f"{leak!r} not reported:\n{report}"
    assert f"127.0.0.1:{camera_port} " not in report, f"the allowed camera was reported:\n{report}"
    if rec.use_strace:  # ffmpeg is not Python: only strace sees its own connection to the TEST-NET address
        ffmpeg_connects = [e for e in rec.syscall_events() if _address(e) == ("192.0.2.1", 554)]
        assert ffmpeg_connects, f"strace did not see ffmpeg connect to 192.0.2.1:554:\n{report}"
