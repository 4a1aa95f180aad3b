#!/usr/bin/env bash
# Install BILBO's launchd agents on macOS (no root needed):
#   com.bilbo.monitor     one monitoring tick every few minutes (and at login)
#   com.bilbo.dashboard   the dashboard on http://127.0.0.1:5555, kept running
#   com.bilbo.listen      the cry listener, kept running, when the camera carries audio
#
# Usage: launchd/install.sh [--dest DIR] [--no-load] [--interval MINUTES] [--listen auto|yes|no]
#                           [--camera NAME [--config FILE]]
#   --dest DIR          write the plists there (default: ~/Library/LaunchAgents)
#   --no-load           only write the files; do not (re)load them into launchd
#   --interval MINUTES  minutes between ticks (default 4)
#   --listen WHEN       the cry listener: auto (default: when LISTEN is on and the camera carries audio), yes, no
#   --camera NAME       one more camera (twins): agents com.bilbo.monitor.NAME and com.bilbo.dashboard.NAME
#   --config FILE       that camera's settings (default: .env.NAME in the checkout)
#
# Safe to run again: it rewrites the plists and reloads the agents.
# Logs go to data/logs/ in the checkout (monitor-NAME.log etc. for a named camera).
set -euo pipefail

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    printf 'launchd/install.sh: %s\n' "$1" >&2
    exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "${here}/.." && pwd -P)"
python="${repo}/.venv/bin/python"

dest="${HOME}/Library/LaunchAgents"
load=1
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
        --no-load)
            load=0
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

mkdir -p "${dest}" "${repo}/data/logs"

# Fill the placeholders with Python (the venv's, which must exist anyway): paths are
# XML-escaped, and the result is parsed back with plistlib so a broken plist is never
# installed.
fill() {
    "${python}" - "$1" "$2" "${repo}" "${python}" "${interval}" "${camera}" "${config}" "${port}" <<'PY'
import os
import plistlib
import re
import sys
from xml.sax.saxutils import escape

src, out, repo, python, interval, camera, config, port = sys.argv[1:]
text = open(src, encoding="utf-8").read()
text = text.replace("@REPO@", escape(repo)).replace("@PYTHON@", escape(python))
text = text.replace("127.0.0.1:5555", f"127.0.0.1:{port}")
if camera:  # this camera's own labels and logs, and its own settings file
    text = re.sub(r"com\.bilbo\.(monitor|dashboard|listen)\b", rf"com.bilbo.\1.{camera}", text)
    text = re.sub(r"data/logs/(monitor|dashboard|listen)", rf"data/logs/\1-{camera}", text)
    arguments = f"<string>--config</string>\n        <string>{escape(config)}</string>\n    </array>"
    text = text.replace("</array>", arguments, 1)
text = re.sub(
    r"(<key>StartInterval</key>\s*<integer>)\d+(</integer>)",
    lambda m: f"{m.group(1)}{int(interval) * 60}{m.group(2)}",
    text,
)
leftover = re.findall(r"@[A-Z]+@", text)
if leftover:
    sys.exit(f"unfilled placeholders in {src}: {sorted(set(leftover))}")
try:
    plistlib.loads(text.encode("utf-8"))
except Exception as exc:
    sys.exit(f"{src} does not give a valid plist with the path {repo!r}: {exc}")
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
os.replace(tmp, out)
PY
}

uid="$(id -u)"
suffix="${camera:+.${camera}}"
# The cry listener runs beside the tick when the camera carries audio (python -m listener --probe asks it) and LISTEN
# is on; otherwise an old copy of its agent is unloaded and removed.
if [ "${listen}" = auto ]; then
    if (cd "${repo}" && "${python}" -m listener --probe ${config:+--config "${config}"}); then listen=yes; else listen=no; fi
fi
templates=(com.bilbo.monitor com.bilbo.dashboard)
if [ "${listen}" = yes ]; then
    templates+=(com.bilbo.listen)
else
    if [ -e "${dest}/com.bilbo.listen${suffix}.plist" ]; then
        if [ "${load}" -eq 1 ]; then
            launchctl bootout "gui/${uid}" "${dest}/com.bilbo.listen${suffix}.plist" 2>/dev/null || true
        fi
        rm -f "${dest}/com.bilbo.listen${suffix}.plist"
        echo "removed ${dest}/com.bilbo.listen${suffix}.plist (no cry listener for this camera)"
    fi
    # The tick stops expecting a listener's heartbeat.
    (cd "${repo}" && "${python}" -m listener --forget ${config:+--config "${config}"}) || true
fi
for template in "${templates[@]}"; do
    label="${template}${suffix}"
    plist="${dest}/${label}.plist"
    fill "${here}/${template}.plist" "${plist}"
    echo "wrote ${plist}"
    if [ "${load}" -eq 1 ]; then
        # Unload the old copy first (fails harmlessly when it was not loaded).
        launchctl bootout "gui/${uid}" "${plist}" 2>/dev/null || true
        # bootout returns before launchd has finished removing the old job, so the
        # first bootstrap can fail with "Input/output error": retry a few times.
        tries=0
        until launchctl bootstrap "gui/${uid}" "${plist}"; do
            tries=$((tries + 1))
            [ "${tries}" -lt 5 ] || die "launchctl bootstrap failed for ${plist}"
            sleep 1
        done
        echo "loaded ${label}"
    fi
done

echo
if [ "${load}" -eq 1 ]; then
    echo "BILBO${camera:+ (${camera})} is installed: one tick every ${interval} min, dashboard on http://127.0.0.1:${port}"
else
    echo "Agents written but not loaded (--no-load). To load them:"
    echo "  launchctl bootstrap gui/${uid} ${dest}/com.bilbo.monitor${suffix}.plist"
    echo "  launchctl bootstrap gui/${uid} ${dest}/com.bilbo.dashboard${suffix}.plist"
    if [ "${listen}" = yes ]; then
        echo "  launchctl bootstrap gui/${uid} ${dest}/com.bilbo.listen${suffix}.plist"
    fi
fi

log="monitor${camera:+-${camera}}"
cat <<MSG

Check on it:
  launchctl print gui/${uid}/com.bilbo.monitor${suffix} | grep -E 'state|last exit'
  launchctl print gui/${uid}/com.bilbo.dashboard${suffix} | grep -E 'state|last exit'
  tail -n 50 "${repo}/data/logs/${log}.log" "${repo}/data/logs/${log}.err.log"
MSG
