#!/usr/bin/env bash
# Install the Debian packages BILBO's tests need. Idempotent: when every
# package is already installed it only runs `dpkg -s` and exits (well under 1 s).
# Usage: bash .ci/system-deps.sh        (as root on Debian 12 / bookworm)
set -euo pipefail

# GStreamer RTSP server, driven by Debian's /usr/bin/python3 in tests/rtsp_server.py:
#   gir1.2-gst-rtsp-server-1.0  GstRtspServer typelib (pulls libgstrtspserver + gir1.2-gstreamer)
#   python3-gi                  PyGObject for /usr/bin/python3
#   gstreamer1.0-plugins-base   videotestsrc, audiotestsrc, videoconvert, audioconvert, audioresample
#   gstreamer1.0-plugins-good   multifilesrc, jpegdec/jpegenc, rtpjpegpay, mulawenc, rtppcmupay, wavparse
#   gstreamer1.0-tools          gst-inspect-1.0 / gst-launch-1.0 for debugging pipelines
RTSP_SERVER_PACKAGES=(
    gir1.2-gst-rtsp-server-1.0
    python3-gi
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-tools
)

# Headless browser for the dashboard end-to-end tests (Playwright drives /usr/bin/chromium).
DASHBOARD_BROWSER_PACKAGES=(
    chromium
)

# MQTT broker for the Home Assistant / MQTT tests (tests/test_mqtt.py starts its own on a free loopback port):
#   mosquitto                   /usr/sbin/mosquitto and /usr/bin/mosquitto_passwd (the password-file test)
MQTT_BROKER_PACKAGES=(
    mosquitto
)

# strace lets tests/test_zero_egress.py also watch ffmpeg and C code at the syscall level (the audit hook sees
# only Python): without it those test variants skip.
EGRESS_AUDIT_PACKAGES=(
    strace
)

# systemd-analyze verifies the unit/timer files in systemd/.
SYSTEMD_PACKAGES=()
if ! command -v systemd-analyze >/dev/null 2>&1; then
    SYSTEMD_PACKAGES=(systemd)
fi

missing=()
for pkg in "${RTSP_SERVER_PACKAGES[@]}" "${DASHBOARD_BROWSER_PACKAGES[@]}" "${MQTT_BROKER_PACKAGES[@]}" \
    "${EGRESS_AUDIT_PACKAGES[@]}" "${SYSTEMD_PACKAGES[@]}"; do
    # No `dpkg -s | grep -q` pipe: grep -q exits early, dpkg dies of SIGPIPE and pipefail reports "missing".
    status="$(dpkg -s "$pkg" 2>/dev/null || true)"
    if [[ "$status" != *"Status: install ok installed"* ]]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "system-deps: not root; run 'sudo bash .ci/system-deps.sh' (or apt-get install them)." >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "system-deps: done"
