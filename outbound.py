"""The one way BILBO calls an HTTP server the parent named in .env (the fallback labeller, Baby Buddy).

Privacy by architecture: the request goes to that URL and nowhere else. Proxy variables in the environment are
ignored (a proxy would see the frame or the sleep log) and redirects are refused (a 3xx comes back as an error
naming where it pointed). Every wait is bounded: connecting and each read by `timeout_s`, and the whole body
once the headers came, so a server that trickles bytes cannot hold a tick. Callers turn an `OutboundError`
into their own one-line message naming the setting to check. Standard library only, imported at call time, so
a tick with every outside call turned off pays nothing for it.
"""

from __future__ import annotations

import time
from typing import Any


class OutboundError(RuntimeError):
    """The call gave no answer to use. `kind`: 'http' (the server said no: `status`, `body`, `headers`),
    'timeout', 'unreachable', 'broken' (the answer broke off) or 'too_large'."""

    def __init__(
        self, kind: str, message: str, status: int | None = None, body: bytes = b"", headers: Any = None
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.body, self.headers = kind, status, body, headers


def call(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    data: bytes | None = None,
    timeout_s: float,
    max_bytes: int,
    error_body_bytes: int = 2000,
) -> bytes:
    """The answer's body, or OutboundError. An HTTP error keeps the first `error_body_bytes` of its body."""
    import http.client
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None  # urllib then raises HTTPError with the 3xx status

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    deadline = time.monotonic() + timeout_s
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = b""
            while chunk := response.read(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise OutboundError("too_large", f"the answer is larger than {max_bytes // 1000} kB")
                if time.monotonic() > deadline:
                    raise OutboundError("timeout", f"no complete answer within {timeout_s:g} s")
            return body
    except urllib.error.HTTPError as exc:
        body = exc.read(error_body_bytes) if exc.fp else b""
        raise OutboundError("http", f"HTTP {exc.code} {exc.reason}", exc.code, body, exc.headers) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise OutboundError("timeout", f"no answer within {timeout_s:g} s") from None
        raise OutboundError("unreachable", str(exc.reason)) from None
    except TimeoutError:
        raise OutboundError("timeout", f"no answer within {timeout_s:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise OutboundError("broken", f"{type(exc).__name__}: {exc}") from None
