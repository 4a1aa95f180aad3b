"""A real local HTTP server speaking enough of the Telegram Bot API for python-telegram-bot (tests only).

Handles POST /bot<TOKEN>/getMe, /sendPhoto (multipart/form-data) and /sendMessage (form or JSON), answers
with well-formed Bot API JSON that PTB parses into User/Message objects, and records every request.
It can be told to fail (HTTP status + {"ok": false}, 200 included) or to hang, and to recover. It can also take a
message and lose the answer (`lose_answer`): the message is recorded, as Telegram would have delivered it, and then
the answer comes too late, the connection is reset, or an unreadable 200 comes back.

    with BotApiServer(token="123:abc") as api:
        notifier = TelegramNotifier("123:abc", "42", base_url=api.base_url)
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Received:
    """One request as it arrived."""

    method: str
    token: str
    fields: dict[str, str]
    photo: bytes | None = None
    photo_filename: str | None = None

    @property
    def chat_id(self) -> str | None:
        return self.fields.get("chat_id")

    @property
    def caption(self) -> str | None:
        return self.fields.get("caption")

    @property
    def text(self) -> str | None:
        return self.fields.get("text")


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None, str | None]:
    fields: dict[str, str] = {}
    photo = filename = None
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                photo, filename = payload, part.get_filename()
            else:
                fields[name] = payload.decode()
    elif content_type.startswith("application/json"):
        fields = {key: str(value) for key, value in json.loads(body or b"{}").items()}
    else:
        fields = {key: values[0] for key, values in parse_qs(body.decode()).items()}
    return fields, photo, filename


# Looks like a real token so leak checks mean something.
TEST_TOKEN = "987654:SECRET-bilbo-token-do-not-leak"
SEND_METHODS = ("sendPhoto", "sendMessage")
LOSSES = ("slow", "reset", "unreadable")
UNREADABLE = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


class BotApiServer:
    """The server, its switches (`fail`, `hang`, `lose_answer`, `recover`) and what it received (`requests`)."""

    def __init__(self, token: str = TEST_TOKEN) -> None:
        self.token = token
        self.requests: list[Received] = []
        self.fail_status: int | None = None
        self.fail_description = "Internal Server Error"
        self.fail_error_code: int | None = None
        self.fail_html = False
        self.hang_s = 0.0
        self.lost: str | None = None
        self.lost_after_s = 0.0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._next_message_id = 1
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="bot-api", daemon=True)

    # --- switches --------------------------------------------------------------------------------

    def fail(
        self, status: int = 500, description: str = "Internal Server Error", error_code: int | None = None, *,
        html: bool = False,
    ) -> None:  # fmt: skip
        """Answer every request with this HTTP status and {"ok": false, "description": ...}, with `error_code`
        (by default the status; none at all for a 2xx status unless given), or with a proxy's HTML page (`html`)."""
        self.fail_status, self.fail_description, self.fail_html = status, description, html
        self.fail_error_code = error_code if error_code is not None or 200 <= status < 300 else status

    def lose_answer(self, how: str, after_s: float = 30.0) -> None:
        """Take every sendPhoto/sendMessage (recorded: the parent has it) but lose the answer: "slow" answers only
        after `after_s` (past the client's timeout), "reset" resets the connection instead of answering,
        "unreadable" answers 200 with a proxy's HTML page. getMe is answered as usual."""
        if how not in LOSSES:
            raise ValueError(f"how must be one of {LOSSES}")
        self._release.clear()
        self.lost, self.lost_after_s = how, after_s

    def hang(self, seconds: float) -> None:
        """Wait this long before answering (or until recover/stop)."""
        self._release.clear()
        self.hang_s = seconds

    def recover(self) -> None:
        self.fail_status, self.hang_s, self.lost = None, 0.0, None
        self._release.set()

    def delivered(self) -> list[str]:
        """What reached the chat, in order: each send's caption or text (lost answers included)."""
        with self._lock:
            sends = [r for r in self.requests if r.method in SEND_METHODS and r.token == self.token]
        return [r.caption if r.method == "sendPhoto" else r.text for r in sends]

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """PTB's base_url: the token is appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    def calls(self, method: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def start(self) -> BotApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the API ---------------------------------------------------------------------------------

    def _answer(self, method: str, received: Received) -> tuple[int, dict]:
        if received.token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if self.fail_status is not None:
            answer = {"ok": False, "description": self.fail_description}
            if self.fail_error_code is not None:
                answer["error_code"] = self.fail_error_code
            return self.fail_status, answer
        if method == "getMe":
            user = {"id": 123456, "is_bot": True, "first_name": "BILBO test", "username": "bilbo_test_bot"}
            return 200, {"ok": True, "result": user}
        if method not in ("sendPhoto", "sendMessage"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        chat_id = received.chat_id or ""
        with self._lock:
            message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 1, "type": "private"},
        }
        if method == "sendPhoto":
            size = len(received.photo or b"")
            message["photo"] = [
                {
                    "file_id": f"photo{message_id}",
                    "file_unique_id": f"u{message_id}",
                    "width": 320,
                    "height": 240,
                    "file_size": size,
                }
            ]
            if received.caption is not None:
                message["caption"] = received.caption
        else:
            message["text"] = received.text or ""
        return 200, {"ok": True, "result": message}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                prefix, _, method = self.path.partition("?")[0].rpartition("/")
                token = prefix.removeprefix("/bot")
                fields, photo, filename = _parse_body(self.headers.get("Content-Type", ""), body)
                received = Received(method, token, fields, photo, filename)
                with server._lock:
                    server.requests.append(received)
                if server.hang_s:
                    server._release.wait(server.hang_s)
                lost = server.lost if method in SEND_METHODS and server.fail_status is None else None
                if lost == "reset":
                    self._reset()
                    return
                if lost == "slow":
                    server._release.wait(server.lost_after_s)
                status, payload = server._answer(method, received)
                data, kind = json.dumps(payload).encode(), "application/json"
                if lost == "unreadable" or (server.fail_status is not None and server.fail_html):
                    data, kind = UNREADABLE, "text/html"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def _reset(self) -> None:
                """Close the connection with a TCP RST, as a dropped NAT mapping or a crashing proxy would."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
