"""A camera that redirects: a tiny RTSP responder answering every request with `302 Found` and a Location.

Real sockets, real RTSP framing (CSeq echoed), so ffmpeg follows it exactly as it would a camera's redirect:

    with RedirectingCamera("rtsp://127.0.0.1:8554/cam", host="127.0.0.2") as camera:
        grab(camera.url, ...)   # ffmpeg asks 127.0.0.2, is sent to 127.0.0.1:8554
        camera.requests         # the request lines it answered ("OPTIONS rtsp://... RTSP/1.0", ...)
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class RedirectingCamera:
    """Listens on `host`:free port; each RTSP request gets `302 Found` to `location`."""

    def __init__(self, location: str, host: str = "127.0.0.1", status: str = "302 Found") -> None:
        self.location, self.status = location, status
        self.requests: list[str] = []
        self._server = socket.create_server((host, 0))
        self._server.settimeout(0.2)
        self.host, self.port = host, self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/cam"

    def __enter__(self) -> RedirectingCamera:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            answer = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            answer.start()
            self._threads.append(answer)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    self.requests.append(lines[0])
                    cseq = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")), "0")
                    reply = f"RTSP/1.0 {self.status}\r\nCSeq: {cseq}\r\nLocation: {self.location}\r\n\r\n"
                    conn.sendall(reply.encode())
