"""The systemd units / launchd agents that run the tick on a timer, installed for real.

Everything runs the actual install scripts and the actual `systemd-analyze verify`; nothing
is mocked. The installers only write files here (--no-enable / --no-load).
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
SYSTEMD_INSTALL = REPO / "systemd" / "install.sh"
LAUNCHD_INSTALL = REPO / "launchd" / "install.sh"
UNITS = ("bilbo-monitor.service", "bilbo-monitor.timer", "bilbo-dashboard.service")
PLACEHOLDER = re.compile(r"@[A-Z]+@")


def run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, check=False, **kwargs)


def install_systemd(dest: Path, *extra: str) -> Path:
    proc = run(["bash", SYSTEMD_INSTALL, "--dest", dest, "--no-enable", *extra])
    assert proc.returncode == 0, f"systemd/install.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return dest


def install_launchd(dest: Path, *extra: str) -> Path:
    proc = run(["bash", LAUNCHD_INSTALL, "--dest", dest, "--no-load", *extra])
    assert proc.returncode == 0, f"launchd/install.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return dest


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into {section: {key: [values]}} (comments and blanks skipped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: setting outside a section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(settings: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = settings.get(section, {}).get(key, [])
    assert len(values) == 1, f"expected exactly one {key}= in [{section}], got {values}"
    return values[0]


# --- systemd-analyze -------------------------------------------------------------------


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    """The real systemd-analyze; installed via .ci/system-deps.sh if missing. Never skipped."""
    found = shutil.which("systemd-analyze") or shutil.which("systemd-analyze", path="/usr/bin:/bin")
    detail = ""
    if found is None:
        deps = REPO / ".ci" / "system-deps.sh"
        if deps.exists():
            proc = run(["bash", deps], cwd=REPO)
            found = shutil.which("systemd-analyze") or shutil.which("systemd-analyze", path="/usr/bin:/bin")
            detail = f"bash .ci/system-deps.sh exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        else:
            detail = ".ci/system-deps.sh does not exist"
    if found is None:
        pytest.fail(
            "systemd-analyze is required to verify the systemd units and could not be installed "
            f"(install Debian's 'systemd' package). {detail}"
        )
    return found


def verify(systemd_analyze: str, unit_paths: list[Path], runtime_dir: Path) -> tuple[int, list[str], str]:
    """Run `systemd-analyze verify` in user-manager mode, as the units will really run.

    --user needs an XDG_RUNTIME_DIR (there is none in a container without a login session),
    so a private one is given; --man=no stops it from requiring man pages for Documentation=.
    Returns (exit code, stderr lines that concern these units, full stderr).
    """
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "SYSTEMD_LOG_COLOR": "0", "LC_ALL": "C"}
    proc = run([systemd_analyze, "verify", "--user", "--man=no", *unit_paths], env=env)
    names = {p.name for p in unit_paths} | {str(p) for p in unit_paths}
    problems = [line for line in proc.stderr.splitlines() if any(name in line for name in names)]
    return proc.returncode, problems, proc.stderr


# --- systemd ---------------------------------------------------------------------------


def test_systemd_install_fills_every_placeholder_with_real_paths(tmp_path):
    dest = install_systemd(tmp_path / "units")
    assert sorted(p.name for p in dest.iterdir()) == sorted(UNITS)
    for name in UNITS:
        text = (dest / name).read_text()
        assert not PLACEHOLDER.findall(text), f"{name} still has placeholders: {PLACEHOLDER.findall(text)}"

    monitor = unit_settings(dest / "bilbo-monitor.service")
    assert one(monitor, "Service", "Type") == "oneshot"
    assert one(monitor, "Service", "ExecStart") == f'"{PYTHON}" "{REPO}/monitor.py" --once'
    assert one(monitor, "Service", "WorkingDirectory") == str(REPO)
    assert int(one(monitor, "Service", "TimeoutStartSec")) > 0
    assert one(monitor, "Service", "NoNewPrivileges") == "yes"
    assert PYTHON.is_file() and os.access(PYTHON, os.X_OK)

    dashboard = unit_settings(dest / "bilbo-dashboard.service")
    assert one(dashboard, "Service", "ExecStart") == f'"{PYTHON}" -m dashboard'
    assert one(dashboard, "Service", "WorkingDirectory") == str(REPO)
    assert one(dashboard, "Service", "Restart") == "on-failure"
    assert one(dashboard, "Service", "RestartSec") == "5"
    assert one(dashboard, "Install", "WantedBy") == "default.target"

    timer = unit_settings(dest / "bilbo-monitor.timer")
    assert one(timer, "Timer", "OnBootSec") == "1min"
    assert one(timer, "Timer", "OnUnitActiveSec") == "4min"
    assert one(timer, "Timer", "AccuracySec") == "15s"
    assert "Persistent" not in timer["Timer"], "Persistent= only applies to OnCalendar= timers"
    assert one(timer, "Install", "WantedBy") == "timers.target"


def test_systemd_install_is_idempotent(tmp_path):
    dest = tmp_path / "units"
    install_systemd(dest)
    first = {name: (dest / name).read_text() for name in UNITS}
    install_systemd(dest)
    assert {name: (dest / name).read_text() for name in UNITS} == first
    assert sorted(p.name for p in dest.iterdir()) == sorted(UNITS), "stray temp files left behind"


def test_installed_units_pass_systemd_analyze_verify(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units")
    rc, problems, stderr = verify(systemd_analyze, [dest / name for name in UNITS], tmp_path / "runtime")
    assert rc == 0, f"systemd-analyze verify exited {rc}:\n{stderr}"
    assert problems == [], f"systemd-analyze verify complained about our units:\n{stderr}"


def test_interval_option_rewrites_the_timer_and_still_verifies(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units", "--interval", "2")
    timer = unit_settings(dest / "bilbo-monitor.timer")
    assert one(timer, "Timer", "OnUnitActiveSec") == "2min"
    rc, problems, stderr = verify(systemd_analyze, [dest / name for name in UNITS], tmp_path / "runtime")
    assert (rc, problems) == (0, []), stderr


def test_verify_catches_a_typo_in_a_directive(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units")
    unit = dest / "bilbo-monitor.service"
    unit.write_text(unit.read_text().replace("TimeoutStartSec=", "TimeoutStartSecs="))
    _rc, problems, stderr = verify(systemd_analyze, [unit], tmp_path / "runtime")
    # systemd only warns (exit 0) about unknown keys: the stderr check is what catches it.
    assert any("Unknown key" in line and "TimeoutStartSecs" in line for line in problems), stderr


def test_verify_catches_a_missing_executable(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units")
    unit = dest / "bilbo-monitor.service"
    missing = tmp_path / "no-venv" / "bin" / "python"
    unit.write_text(unit.read_text().replace(str(PYTHON), str(missing)))
    rc, problems, stderr = verify(systemd_analyze, [unit], tmp_path / "runtime")
    assert rc != 0, stderr
    assert any(str(missing) in line for line in problems), stderr


def test_verify_catches_a_unit_without_execstart(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units")
    unit = dest / "bilbo-dashboard.service"
    unit.write_text(unit.read_text().replace("ExecStart=", "ExecStrat="))
    rc, problems, stderr = verify(systemd_analyze, [unit], tmp_path / "runtime")
    assert rc != 0, stderr
    assert problems, stderr


@pytest.mark.parametrize("script", [SYSTEMD_INSTALL, LAUNCHD_INSTALL], ids=["systemd", "launchd"])
def test_installers_refuse_a_checkout_without_venv(tmp_path, script):
    fake_repo = tmp_path / "checkout"
    shutil.copytree(script.parent, fake_repo / script.parent.name)
    dest = tmp_path / "dest"
    flag = "--no-enable" if script == SYSTEMD_INSTALL else "--no-load"
    proc = run(["bash", fake_repo / script.parent.name / script.name, "--dest", dest, flag])
    assert proc.returncode != 0
    assert "run make demo or make venv first" in proc.stderr
    assert not dest.exists() or not any(dest.iterdir())


@pytest.mark.parametrize("script", [SYSTEMD_INSTALL, LAUNCHD_INSTALL], ids=["systemd", "launchd"])
@pytest.mark.parametrize("interval", ["0", "abc", "-3", ""])
def test_installers_reject_a_bad_interval(tmp_path, script, interval):
    flag = "--no-enable" if script == SYSTEMD_INSTALL else "--no-load"
    proc = run(["bash", script, "--dest", tmp_path / "dest", flag, "--interval", interval])
    assert proc.returncode != 0
    assert "--interval" in proc.stderr
    assert not (tmp_path / "dest").exists()


def twin_config(tmp_path: Path, port: int = 5556, data_dir: Path | None = None, file: str = ".env.ada") -> Path:
    """A second camera's settings file, as README's "Twins" section writes it."""
    config = tmp_path / file
    config.write_text(f"CAMERA_URL=sample\nCAMERA_NAME=Ada\nDATA_DIR={data_dir or tmp_path / 'data-ada'}\n"
                      f"DASHBOARD_PORT={port}\n")  # fmt: skip
    return config


def test_a_second_camera_gets_its_own_units_beside_the_first_and_all_verify(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units")
    config = twin_config(tmp_path)
    install_systemd(dest, "--camera", "ada", "--config", str(config))
    named = ("bilbo-monitor-ada.service", "bilbo-monitor-ada.timer", "bilbo-dashboard-ada.service")
    assert sorted(p.name for p in dest.iterdir()) == sorted([*UNITS, *named])
    monitor = unit_settings(dest / "bilbo-monitor-ada.service")
    assert one(monitor, "Service", "ExecStart").endswith(f'monitor.py" --once --config "{config}"')
    assert one(monitor, "Service", "SyslogIdentifier") == "bilbo-monitor-ada"
    assert one(unit_settings(dest / "bilbo-monitor-ada.timer"), "Timer", "Unit") == "bilbo-monitor-ada.service"
    dashboard = unit_settings(dest / "bilbo-dashboard-ada.service")
    assert one(dashboard, "Service", "ExecStart").endswith(f'-m dashboard --config "{config}"')
    assert one(dashboard, "Unit", "Description") == "BILBO baby monitor: dashboard (http://127.0.0.1:5556)"
    assert one(unit_settings(dest / "bilbo-monitor.timer"), "Timer", "Unit") == "bilbo-monitor.service"  # untouched
    rc, problems, stderr = verify(systemd_analyze, sorted(dest.iterdir()), tmp_path / "runtime")
    assert (rc, problems) == (0, []), stderr


@pytest.mark.parametrize("script", [SYSTEMD_INSTALL, LAUNCHD_INSTALL], ids=["systemd", "launchd"])
def test_installers_refuse_a_second_camera_on_the_first_ones_data_or_port(tmp_path, script):
    flag = "--no-enable" if script == SYSTEMD_INSTALL else "--no-load"
    for config, said in (
        (twin_config(tmp_path, port=5555, file="same-port.env"), "DASHBOARD_PORT"),
        (twin_config(tmp_path, data_dir=REPO / "data", file="same-data.env"), "DATA_DIR"),
        (tmp_path / "missing.env", "no settings file"),
    ):
        proc = run(["bash", script, "--dest", tmp_path / "dest", flag, "--camera", "ada", "--config", config])
        assert proc.returncode != 0 and said in proc.stderr, proc.stderr
        assert not (tmp_path / "dest").exists()


# --- launchd ---------------------------------------------------------------------------


def load_plist(path: Path) -> dict:
    with path.open("rb") as f:
        return plistlib.load(f)


def test_launchd_install_writes_valid_plists_with_real_paths(tmp_path):
    dest = install_launchd(tmp_path / "agents")
    assert sorted(p.name for p in dest.iterdir()) == ["com.bilbo.dashboard.plist", "com.bilbo.monitor.plist"]
    for plist in dest.iterdir():
        assert not PLACEHOLDER.findall(plist.read_text()), plist.name

    monitor = load_plist(dest / "com.bilbo.monitor.plist")
    assert monitor["Label"] == "com.bilbo.monitor"
    assert monitor["ProgramArguments"] == [str(PYTHON), f"{REPO}/monitor.py", "--once"]
    python = Path(monitor["ProgramArguments"][0])
    assert python.is_file() and os.access(python, os.X_OK)
    assert monitor["WorkingDirectory"] == str(REPO)
    assert monitor["StartInterval"] == 240
    assert monitor["RunAtLoad"] is True
    logs = REPO / "data" / "logs"
    assert Path(monitor["StandardOutPath"]).parent == logs
    assert Path(monitor["StandardErrorPath"]).parent == logs
    assert logs.is_dir(), "the installer must create data/logs (launchd will not)"

    dashboard = load_plist(dest / "com.bilbo.dashboard.plist")
    assert dashboard["Label"] == "com.bilbo.dashboard"
    assert dashboard["ProgramArguments"] == [str(PYTHON), "-m", "dashboard"]
    assert dashboard["WorkingDirectory"] == str(REPO)
    assert dashboard["KeepAlive"] is True
    assert dashboard["RunAtLoad"] is True
    assert "StartInterval" not in dashboard
    assert Path(dashboard["StandardErrorPath"]).parent == logs


def test_launchd_interval_option_sets_start_interval_in_seconds(tmp_path):
    dest = install_launchd(tmp_path / "agents", "--interval", "2")
    assert load_plist(dest / "com.bilbo.monitor.plist")["StartInterval"] == 120
    # The template in the checkout is left alone.
    assert load_plist(REPO / "launchd" / "com.bilbo.monitor.plist")["StartInterval"] == 240


def test_launchd_install_is_idempotent(tmp_path):
    dest = tmp_path / "agents"
    install_launchd(dest)
    first = {p.name: p.read_bytes() for p in dest.iterdir()}
    install_launchd(dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == first


def test_install_scripts_are_executable_and_strict():
    for script in (SYSTEMD_INSTALL, LAUNCHD_INSTALL):
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        assert "set -euo pipefail" in script.read_text()


def test_launchd_install_for_a_second_camera_writes_its_own_agents_and_logs(tmp_path):
    config = twin_config(tmp_path)
    dest = install_launchd(tmp_path / "agents", "--camera", "ada", "--config", str(config))
    assert sorted(p.name for p in dest.iterdir()) == ["com.bilbo.dashboard.ada.plist", "com.bilbo.monitor.ada.plist"]
    monitor = load_plist(dest / "com.bilbo.monitor.ada.plist")
    assert monitor["Label"] == "com.bilbo.monitor.ada"
    assert monitor["ProgramArguments"] == [str(PYTHON), f"{REPO}/monitor.py", "--once", "--config", str(config)]
    assert Path(monitor["StandardErrorPath"]).name == "monitor-ada.err.log"
    dashboard = load_plist(dest / "com.bilbo.dashboard.ada.plist")
    assert dashboard["ProgramArguments"] == [str(PYTHON), "-m", "dashboard", "--config", str(config)]
    assert "http://127.0.0.1:5556" in (dest / "com.bilbo.dashboard.ada.plist").read_text()


# --- the cry listener (issue 16): a service beside the timer, when the camera carries audio -----------


def camera_config(tmp_path: Path, url: str, file: str = ".env.ada", **extra: str) -> Path:
    """A second camera's settings file with an RTSP camera (the installer asks it whether it carries audio)."""
    config = twin_config(tmp_path, file=file)
    config.write_text(config.read_text().replace("CAMERA_URL=sample", f"CAMERA_URL={url}") +
                      "".join(f"{key}={value}\n" for key, value in extra.items()))  # fmt: skip
    return config


def test_systemd_listen_unit_restarts_always_and_verifies(tmp_path, systemd_analyze):
    dest = install_systemd(tmp_path / "units", "--listen", "yes")
    assert sorted(p.name for p in dest.iterdir()) == sorted([*UNITS, "bilbo-listen.service"])
    unit = unit_settings(dest / "bilbo-listen.service")
    assert not PLACEHOLDER.findall((dest / "bilbo-listen.service").read_text())
    assert one(unit, "Service", "Type") == "simple"
    assert one(unit, "Service", "ExecStart") == f'"{PYTHON}" -m listener'
    assert one(unit, "Service", "WorkingDirectory") == str(REPO)
    assert one(unit, "Service", "Restart") == "always"
    assert int(one(unit, "Service", "RestartSec")) >= 5, "a listener that dies at once must not spin"
    assert one(unit, "Service", "RestartPreventExitStatus") == "0", "LISTEN=0 exits 0 and stays stopped"
    assert one(unit, "Install", "WantedBy") == "default.target"
    rc, problems, stderr = verify(systemd_analyze, sorted(dest.iterdir()), tmp_path / "runtime")
    assert (rc, problems) == (0, []), stderr


@pytest.mark.rtsp
def test_systemd_installs_the_listener_only_for_a_camera_that_carries_audio(tmp_path, rtsp_server, systemd_analyze):
    dest = tmp_path / "units"
    with_audio = camera_config(tmp_path, rtsp_server())
    proc = run(["bash", SYSTEMD_INSTALL, "--dest", dest, "--no-enable", "--camera", "ada", "--config", with_audio])
    assert proc.returncode == 0, proc.stderr
    assert "on: the camera carries audio" in proc.stdout
    unit = unit_settings(dest / "bilbo-listen-ada.service")
    assert one(unit, "Service", "ExecStart") == f'"{PYTHON}" -m listener --config "{with_audio}"'
    assert one(unit, "Service", "SyslogIdentifier") == "bilbo-listen-ada"
    rc, problems, stderr = verify(systemd_analyze, sorted(dest.iterdir()), tmp_path / "runtime")
    assert (rc, problems) == (0, []), stderr

    beat = tmp_path / "data-ada" / "listener.json"  # the installed listener's heartbeat
    for config, said in (
        (camera_config(tmp_path, rtsp_server(audio=False), file="mute.env"), "carries no audio track"),
        (camera_config(tmp_path, rtsp_server(), file="off.env", LISTEN="0"), "LISTEN=0"),
    ):
        beat.parent.mkdir(exist_ok=True)
        beat.write_text("{}")
        proc = run(["bash", SYSTEMD_INSTALL, "--dest", dest, "--no-enable", "--camera", "ada", "--config", config])
        assert proc.returncode == 0 and said in proc.stdout, proc.stdout + proc.stderr
        assert not (dest / "bilbo-listen-ada.service").exists(), "an installed listener is removed"
        assert not beat.exists(), "the tick stops expecting its heartbeat"
        assert (dest / "bilbo-monitor-ada.timer").exists()


def test_the_sample_camera_gets_no_listener(tmp_path):
    dest = install_systemd(tmp_path / "units")
    assert not (dest / "bilbo-listen.service").exists()
    agents = install_launchd(tmp_path / "agents")
    assert not (agents / "com.bilbo.listen.plist").exists()


@pytest.mark.parametrize("script", [SYSTEMD_INSTALL, LAUNCHD_INSTALL], ids=["systemd", "launchd"])
def test_installers_reject_a_bad_listen_choice(tmp_path, script):
    flag = "--no-enable" if script == SYSTEMD_INSTALL else "--no-load"
    proc = run(["bash", script, "--dest", tmp_path / "dest", flag, "--listen", "maybe"])
    assert proc.returncode != 0 and "--listen" in proc.stderr
    assert not (tmp_path / "dest").exists()


def test_launchd_listen_agent_is_kept_alive_and_named_per_camera(tmp_path):
    dest = install_launchd(tmp_path / "agents", "--listen", "yes")
    agent = load_plist(dest / "com.bilbo.listen.plist")
    assert agent["Label"] == "com.bilbo.listen"
    assert agent["ProgramArguments"] == [str(PYTHON), "-m", "listener"]
    assert agent["WorkingDirectory"] == str(REPO)
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}, "restarted whenever it dies; LISTEN=0 exits 0 and stays"
    assert agent["ThrottleInterval"] >= 5
    assert Path(agent["StandardErrorPath"]) == REPO / "data" / "logs" / "listen.err.log"

    config = twin_config(tmp_path)
    named = install_launchd(tmp_path / "named", "--listen", "yes", "--camera", "ada", "--config", str(config))
    agent = load_plist(named / "com.bilbo.listen.ada.plist")
    assert agent["Label"] == "com.bilbo.listen.ada"
    assert agent["ProgramArguments"] == [str(PYTHON), "-m", "listener", "--config", str(config)]
    assert Path(agent["StandardErrorPath"]).name == "listen-ada.err.log"


@pytest.mark.parametrize(("value", "expected"), [("0", "--listen no"), ("1", "--listen yes"), ("", "")])
def test_make_install_schedule_passes_listen_on(value, expected):
    proc = run(["make", "-n", "install-schedule", f"LISTEN={value}"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "systemd/install.sh" in line)
    assert line.split("install.sh", 1)[1].split(";")[0].strip() == expected
