"""python-telegram-bot's HTTPX transport, reading each Bot API answer before PTB does.

PTB trusts an HTTP 200: `{"ok": false}` then crashes it with a KeyError, and a body that is not JSON is logged with a
traceback and the raw page. For an alert the question that matters is different anyway: did the message go out?
So `CheckedRequest` sorts every failure of a send (sendPhoto, sendMessage) into

- definite, nothing arrived: an error answered (any status, or 200 with `"ok": false`), the connection refused.
  These reach PTB as an ordinary error answer, so it raises its usual exception (BadRequest, Forbidden, ...).
- ambiguous, it may have arrived: the request went out whole and the answer was lost (no answer within the
  timeout, the connection reset or closed before the answer, a 200 whose body cannot be read). These raise
  `AnswerLost`, which alerts.notifiers turns into NotifyError(maybe_sent=True).

getMe (PTB's `initialize`) never carries the alert, so its failures are always definite. `accepted` records that
Telegram answered a send with `"ok": true`: the message is there even if PTB then fails to read the rest.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import httpx
from telegram.error import NetworkError, TelegramError
from telegram.request import HTTPXRequest

SEND_METHODS = frozenset({"sendPhoto", "sendMessage"})
# Raised by httpx only after the request was written whole: the server may have acted on it.
LOST_ANSWER = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.DecodingError)


class AnswerLost(TelegramError):
    """A send went out whole but no readable answer came back: the message may have arrived."""


def _lost_reason(cause: BaseException, timeout_s: float) -> str:
    """One line saying how the answer was lost."""
    if isinstance(cause, httpx.ReadTimeout):
        return f"Telegram did not answer within {timeout_s:g} s"
    if isinstance(cause, httpx.DecodingError):
        return "Telegram's answer could not be decoded"
    detail = str(cause) or type(cause).__name__
    return f"the connection to Telegram broke before its answer ({detail})"


def _json_object(payload: bytes) -> dict[str, Any] | None:
    """The answer as a JSON object, or None when it is anything else (a proxy's HTML page, a torn body)."""
    try:
        answer = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _error_answer(code: int, what: str) -> bytes:
    """A Bot API error body standing in for one PTB cannot read, so the raw page never reaches a log line."""
    try:
        phrase = f"{HTTPStatus(code).phrase} ({code})"
    except ValueError:
        phrase = f"HTTP {code}"
    return json.dumps({"ok": False, "description": f"{phrase}: {what}"}).encode()


class CheckedRequest(HTTPXRequest):
    """HTTPXRequest that checks each answer (see the module docstring); `timeout_s` only words the messages."""

    def __init__(self, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_s = timeout_s
        self.accepted = False

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        sending = url.rpartition("/")[2] in SEND_METHODS
        try:
            code, payload = await super().do_request(url, method, *args, **kwargs)
        except NetworkError as exc:
            if sending and isinstance(exc.__cause__, LOST_ANSWER):
                raise AnswerLost(_lost_reason(exc.__cause__, self.timeout_s)) from exc
            raise
        success = HTTPStatus.OK <= code <= 299
        answer = _json_object(payload)
        if answer is None:
            what = "an answer that is not the Bot API's JSON"
            if success and sending:
                raise AnswerLost(f"Telegram answered HTTP {code} with {what}")
            return (HTTPStatus.BAD_GATEWAY if success else code), _error_answer(code, what)
        if not success:
            return code, payload
        if answer.get("ok") is not True:
            error_code = answer.get("error_code")
            status = error_code if isinstance(error_code, int) and 400 <= error_code <= 599 else HTTPStatus.BAD_GATEWAY
            if not answer.get("description"):
                payload = _error_answer(code, 'an answer with "ok": false and no description')
            return status, payload
        if sending:
            self.accepted = True  # Telegram took the message; whatever PTB makes of the rest, it is there
        elif "result" not in answer:
            return HTTPStatus.BAD_GATEWAY, _error_answer(code, 'an answer with "ok": true but no result')
        return code, payload
