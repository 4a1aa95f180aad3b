"""The dashboard's guards: who may talk to it (Host, token) and who may change things (CSRF).

A dashboard on 127.0.0.1 is still reachable by any web page the parent visits: a page can
POST to it blind (CSRF) or rebind its own DNS name to 127.0.0.1 and read it (DNS rebinding).
So every request must name this dashboard in its Host header, every state-changing request
must carry a secret only our own page knows, and off loopback every request needs the token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from flask import Flask, Response, jsonify, redirect, request

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
TOKEN_HEADER = "X-Bilbo-Token"
TOKEN_COOKIE = "bilbo_token"


class InsecureBindError(ValueError):
    """The dashboard was asked to listen where it could not be protected; the message says what to do."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values that name this dashboard (lower case, with port; without it for port 80)."""
    names = {"127.0.0.1", "localhost", "[::1]"} if is_loopback(host) else {f"[{host}]" if ":" in host else host}
    allowed = {f"{name}:{port}" for name in names}
    if port == 80:
        allowed |= names
    return frozenset(name.lower() for name in allowed)


def check_bind(host: str, token: str) -> None:
    """Refuse binds we cannot protect: a wildcard (no Host to check) or off loopback without a token."""
    if host in WILDCARD_HOSTS:
        raise InsecureBindError(
            f"refusing to bind {host or 'every address'!r}: give this computer's LAN address instead "
            "(e.g. --host 192.168.1.10) so requests naming any other host can be rejected"
        )
    if not is_loopback(host) and not token:
        raise InsecureBindError(
            f"refusing to bind {host}: off loopback the dashboard needs DASHBOARD_TOKEN set to a long random secret"
        )


def _forbidden(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


@dataclass
class Guard:
    """Installs the checks on an app. One CSRF secret per process, embedded in the page it serves."""

    host: str
    port: int
    token: str = ""
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        check_bind(self.host, self.token)
        self.allowed = allowed_hosts(self.host, self.port)
        self.token_required = not is_loopback(self.host)

    def install(self, app: Flask) -> None:
        app.before_request(self.check)
        app.after_request(self.harden)

    def check(self) -> Response | None:
        host = request.headers.get("Host", "").lower()
        if host not in self.allowed:
            return _forbidden(
                403,
                f"Host {host!r} is not this dashboard (expected {' or '.join(sorted(self.allowed))}); "
                "rejected to stop DNS-rebinding attacks",
            )
        if self.token_required:
            offered = request.args.get("token")
            if offered is not None and request.method == "GET" and self._token_ok(offered):
                response = redirect(request.path, code=303)  # drop the token from the address bar
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
                return response
            given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE) or ""
            if not self._token_ok(given):
                return _forbidden(401, "this dashboard needs its token: open it once as /?token=YOUR_DASHBOARD_TOKEN")
        if request.method not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.csrf_token.encode()):
                return _forbidden(
                    403, f"missing or wrong {CSRF_HEADER} header: reload the dashboard page and try again"
                )
        return None

    def _token_ok(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def harden(response: Response) -> Response:
        """Headers that keep the page out of frames and stop content sniffing; API answers are never cached."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response
