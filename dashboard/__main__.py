"""`python -m dashboard [--host 127.0.0.1] [--port 5555]`: serve the dashboard.

It binds to loopback by default: the nursery's frames are not for the whole LAN.
"""

from __future__ import annotations

import argparse
import sys

from dashboard.app import create_app
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
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        print(f"bilbo dashboard: refusing to bind {args.host}: only loopback is supported for now", file=sys.stderr)
        return 2
    print(f"BILBO dashboard on http://{args.host}:{args.port}/  (data: {settings.data_dir})", flush=True)
    create_app(settings).run(host=args.host, port=args.port, debug=False, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
