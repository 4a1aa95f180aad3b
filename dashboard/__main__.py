"""`python -m dashboard [--config .env] [--host 127.0.0.1] [--port 5555]`: serve the dashboard.

It binds to loopback by default: the nursery's frames are not for the whole LAN. Another
address needs DASHBOARD_TOKEN (and must be a concrete address, not 0.0.0.0, so the Host
header can be checked).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from dashboard.app import create_app
from dashboard.security import InsecureBindError
from settings import DEFAULT_ENV_FILE, cli_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (one per camera)")
    parser.add_argument("--host", help="address to bind (default: DASHBOARD_HOST)")
    parser.add_argument("--port", type=int, help="port (default: DASHBOARD_PORT)")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo dashboard", args.config)) is None:
        return 2
    host, port = args.host or settings.dashboard_host, args.port or settings.dashboard_port
    settings = replace(settings, dashboard_host=host, dashboard_port=port)
    try:
        app = create_app(settings)
    except InsecureBindError as exc:
        print(f"bilbo dashboard: {exc}", file=sys.stderr)
        return 2
    shown = f"[{host}]" if ":" in host else host
    print(f"BILBO dashboard on http://{shown}:{port}/  (data: {settings.data_dir})", flush=True)
    app.run(host=host, port=port, debug=False, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
