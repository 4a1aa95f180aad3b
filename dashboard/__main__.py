"""`python -m dashboard [--host 127.0.0.1] [--port 5555]`: serve the dashboard.

It binds to loopback by default: the nursery's frames are not for the whole LAN. Another
address needs DASHBOARD_TOKEN (and must be a concrete address, not 0.0.0.0, so the Host
header can be checked).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from dashboard.app import create_app
from dashboard.security import InsecureBindError
from settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bilbo dashboard: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=settings.dashboard_host)
    parser.add_argument("--port", type=int, default=settings.dashboard_port)
    args = parser.parse_args(argv)
    settings = replace(settings, dashboard_host=args.host, dashboard_port=args.port)
    try:
        app = create_app(settings)
    except InsecureBindError as exc:
        print(f"bilbo dashboard: {exc}", file=sys.stderr)
        return 2
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"BILBO dashboard on http://{shown}:{args.port}/  (data: {settings.data_dir})", flush=True)
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
