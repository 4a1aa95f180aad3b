#!/usr/bin/env bash
# Install BILBO's systemd USER units (no root needed):
#   bilbo-monitor.service + bilbo-monitor.timer   one monitoring tick every few minutes
#   bilbo-dashboard.service                        the dashboard on http://127.0.0.1:5555
#   bilbo-listen.service                           the cry listener, when the camera carries audio
#
# Usage: systemd/install.sh [--dest DIR] [--no-enable] [--interval MINUTES] [--listen auto|yes|no]
#                           [--camera NAME [--config FILE]]
#   --dest DIR          write the units there (default: ${XDG_CONFIG_HOME:-~/.config}/systemd/user)
#   --no-enable         only write the files; do not reload or start anything
#   --interval MINUTES  minutes between ticks (default 4)
#   --listen WHEN       the cry listener: auto (default: when LISTEN is on and the camera carries audio), yes, no
#   --camera NAME       one more camera (twins): units bilbo-monitor-NAME.* and bilbo-dashboard-NAME.service
#   --config FILE       that camera's settings (default: .env.NAME in the checkout)
#
# Safe to run again: it overwrites the units with freshly filled copies.
set -euo pipefail

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    printf 'systemd/install.sh: %s\n' "$1" >&2
    exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "${here}/.." && pwd -P)"
python="${repo}/.venv/bin/python"

dest="${XDG_CONFIG_HOME:-${HOME}/.config}/systemd/user"
enable=1
interval=4
listen=auto
camera=""
config=""

while [ "$#" -gt 0 ]; do
    case "$1" in
        --dest)
            [ "$#" -ge 2 ] || die "--dest needs a directory"
            dest="$2"
            shift 2
            ;;
        --dest=*)
            dest="${1#--dest=}"
            shift
            ;;
        --no-enable)
            enable=0
            shift
            ;;
        --interval)
            [ "$#" -ge 2 ] || die "--interval needs a number of minutes"
            interval="$2"
            shift 2
            ;;
        --interval=*)
            interval="${1#--interval=}"
            shift
            ;;
        --listen)
            [ "$#" -ge 2 ] || die "--listen needs auto, yes or no"
            listen="$2"
            shift 2
            ;;
        --listen=*)
            listen="${1#--listen=}"
            shift
            ;;
        --camera)
            [ "$#" -ge 2 ] || die "--camera needs a name"
            camera="$2"
            shift 2
            ;;
        --config)
            [ "$#" -ge 2 ] || die "--config needs a settings file"
            config="$2"
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
done

case "${interval}" in
    '' | *[!0-9]* | 0*) die "--interval must be a whole number of minutes, 1 or more (got '${interval}')" ;;
esac
case "${listen}" in
    auto | yes | no) ;;
    *) die "--listen must be auto, yes or no (got '${listen}')" ;;
esac

if [ ! -x "${python}" ]; then
    die "no virtual environment at ${repo}/.venv: run make demo or make venv first"
fi

# One settings file per camera (twins): read it now, so its dashboard port is right and a bad value (or a second
# camera on the first one's data dir or port) is refused here, not at 3 a.m.
target="$("${python}" "${repo}/settings.py" --install-check "${camera}" "${config}")" || exit 1
port="${target%%$'\t'*}"
config="${target#*$'\t'}"

case "${repo}" in
    *'"'* | *\\* | *$'\n'*) die "the checkout path must not contain quotes, backslashes or newlines: ${repo}" ;;
esac

mkdir -p "${dest}"

# Fill the placeholders with Python (the venv's, which must exist anyway): unlike sed
# or bash's ${var//}, it needs no escaping of '&', '|' or '/' in the paths. A '%' in a
# path is doubled because systemd would read it as a specifier.
fill() {
    "${python}" - "$1" "$2" "${repo}" "${python}" "${interval}" "${camera}" "${config}" "${port}" <<'PY'
import os
import re
import sys

src, out, repo, python, interval, camera, config, port = sys.argv[1:]
text = open(src, encoding="utf-8").read()
text = text.replace("@REPO@", repo.replace("%", "%%")).replace("@PYTHON@", python.replace("%", "%%"))
text = re.sub(r"(?m)^OnUnitActiveSec=.*$", f"OnUnitActiveSec={interval}min", text)
text = text.replace("127.0.0.1:5555", f"127.0.0.1:{port}")
if camera:  # this camera's own unit names, and its own settings file
    text = re.sub(r"bilbo-(monitor|dashboard|listen)\b", rf"bilbo-\1-{camera}", text)
    text = text.replace("systemd/install.sh", f"systemd/install.sh --camera {camera}")
    text = re.sub(r'(?m)^(ExecStart=.*)$', lambda m: f'{m.group(1)} --config "{config.replace("%", "%%")}"', text)
leftover = re.findall(r"@[A-Z]+@", text)
if leftover:
    sys.exit(f"unfilled placeholders in {src}: {sorted(set(leftover))}")
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
os.replace(tmp, out)
PY
}

suffix="${camera:+-${camera}}"
monitor="bilbo-monitor${suffix}"
dashboard="bilbo-dashboard${suffix}"
listener="bilbo-listen${suffix}"
for unit in bilbo-monitor.service bilbo-monitor.timer bilbo-dashboard.service; do
    installed="${unit/bilbo-monitor/${monitor}}"
    installed="${installed/bilbo-dashboard/${dashboard}}"
    fill "${here}/${unit}" "${dest}/${installed}"
    echo "wrote ${dest}/${installed}"
done

# The cry listener runs beside the timer when the camera carries audio (python -m listener --probe asks it) and
# LISTEN is on; otherwise an old copy of its unit is stopped and removed.
if [ "${listen}" = auto ]; then
    if (cd "${repo}" && "${python}" -m listener --probe ${config:+--config "${config}"}); then listen=yes; else listen=no; fi
fi
services=("${dashboard}.service")
if [ "${listen}" = yes ]; then
    fill "${here}/bilbo-listen.service" "${dest}/${listener}.service"
    echo "wrote ${dest}/${listener}.service"
    services+=("${listener}.service")
else
    if [ -e "${dest}/${listener}.service" ]; then
        if [ "${enable}" -eq 1 ]; then
            systemctl --user disable --now "${listener}.service" || true
        fi
        rm -f "${dest}/${listener}.service"
        echo "removed ${dest}/${listener}.service (no cry listener for this camera)"
    fi
    # The tick stops expecting a listener's heartbeat.
    (cd "${repo}" && "${python}" -m listener --forget ${config:+--config "${config}"}) || true
fi

if [ "${enable}" -eq 1 ]; then
    systemctl --user daemon-reload
    systemctl --user enable --now "${monitor}.timer" "${services[@]}"
    # Pick up a changed interval or paths if the units were already running.
    systemctl --user restart "${monitor}.timer" "${services[@]}"
    echo
    echo "BILBO${camera:+ (${camera})} is installed: one tick every ${interval} min, dashboard on http://127.0.0.1:${port}"
    if [ "${listen}" = yes ]; then
        echo "The cry listener hears the camera all the time: journalctl --user -u ${listener} -f"
    fi
else
    echo
    echo "Units written but not enabled (--no-enable). To enable them:"
    echo "  systemctl --user daemon-reload"
    echo "  systemctl --user enable --now ${monitor}.timer ${services[*]}"
fi

cat <<MSG

Check on it:
  systemctl --user list-timers ${monitor}.timer     # when is the next tick?
  systemctl --user status ${dashboard}.service
  journalctl --user -u ${monitor} -n 50             # what the last ticks said
  journalctl --user -u ${dashboard} -f              # dashboard log, live

User units stop when you log out. To keep BILBO running with nobody logged in
(and start it at boot), run once:
  loginctl enable-linger ${USER:-$(id -un)}
MSG
