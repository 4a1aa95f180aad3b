"""Where alerts go. One small base class; each channel implements `send` and raises NotifyError on failure.

Privacy: nothing is contacted unless the parent configured a Telegram token and chat id; without them the
alert is only written to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from db.store import Alert

log = logging.getLogger("bilbo.alerts")
T = TypeVar("T")


class NotifyError(RuntimeError):
    """An alert could not be delivered; the message says why in one line (never containing a secret).

    `per_alert` is True when the failure is specific to this alert (e.g. Telegram refused this photo or
    caption) so the next queued alert may still go through; False when the channel itself is down,
    misconfigured or slow, and trying more alerts in the same tick would only fail the same way.
    `maybe_sent` is True when the failure is ambiguous: the alert went out whole and only the answer was lost
    (no answer in time, the connection reset, an answer that cannot be read), so the parent may have it already.
    A definite failure (an error answered, the connection refused) leaves it False: nothing arrived.
    """

    def __init__(self, message: str, *, per_alert: bool = False, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.per_alert = per_alert
        self.maybe_sent = maybe_sent


class Notifier:
    """Base class of the channels an alert can be delivered through."""

    name: str = "notifier"

    def send(self, alert: Alert, photo: bytes | None) -> None:
        """Deliver one alert (with its JPEG bytes, if any); raise NotifyError on failure."""
        raise NotImplementedError


class LogNotifier(Notifier):
    """Used when no Telegram is configured: the alert lands in the log so it is not lost silently."""

    name = "log"

    def send(self, alert: Alert, photo: bytes | None) -> None:
        log.warning("alert (no Telegram configured): %s [photo: %s]", alert.caption, alert.photo_path or "none")


class TelegramNotifier(Notifier):
    """Sends the alert through the Telegram Bot API (python-telegram-bot), photo + caption when there is a photo.

    `base_url` is python-telegram-bot's (the token is appended to it); empty means PTB's default
    "https://api.telegram.org/bot". The tick is synchronous and short-lived, so each `send` runs its own
    event loop with `asyncio.run` and closes the HTTP client before returning.
    """

    name = "telegram"
    _DEFAULT_BASE_URL = "https://api.telegram.org/bot"

    def __init__(self, token: str, chat_id: str, base_url: str = "", timeout_s: float = 20) -> None:
        if not token or not chat_id:
            raise ValueError("TelegramNotifier needs both a bot token and a chat id")
        self._token = token
        self.chat_id = chat_id
        self.base_url = base_url or self._DEFAULT_BASE_URL
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never show the token
        return f"TelegramNotifier(chat_id={self.chat_id!r}, base_url={self.base_url!r})"

    def send(self, alert: Alert, photo: bytes | None) -> None:
        self._run(self._send, alert, photo)

    def check(self) -> str:
        """The bot's @username, asked with getMe: proves the token and the endpoint without sending anything."""
        return self._run(self._whoami)

    def _run(self, call: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        """Run one Bot API exchange in its own event loop; every failure becomes one NotifyError line."""
        import asyncio  # imported here: a tick with nothing to send should not pay for asyncio

        import httpx
        import telegram.error

        from alerts.telegram_request import AnswerLost

        try:
            with _token_redacted(self._token):
                return asyncio.run(call(*args))
        except AnswerLost as exc:
            raise NotifyError(self._clean(f"{exc}; the message may have arrived"), maybe_sent=True) from None
        except telegram.error.InvalidToken:
            raise NotifyError("Telegram rejected the bot token (check TELEGRAM_BOT_TOKEN)") from None
        except telegram.error.Forbidden as exc:
            raise NotifyError(self._clean(f"bot may not post to chat {self.chat_id}: {exc}")) from None
        except telegram.error.TimedOut:
            raise NotifyError(f"Telegram did not answer within {self.timeout_s:g} s") from None
        except telegram.error.BadRequest as exc:
            raise NotifyError(self._clean(f"Telegram refused the message: {exc}"), per_alert=True) from None
        except telegram.error.TelegramError as exc:
            raise NotifyError(self._clean(f"Telegram unreachable or failing: {exc}")) from None
        except (httpx.HTTPError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise NotifyError(self._clean(f"Telegram unreachable: {reason}")) from None
        except Exception as exc:  # a library surprise is one failed attempt, never a crashed tick
            raise NotifyError(self._clean(f"Telegram exchange failed: {type(exc).__name__}: {exc}")) from None

    def _request(self):
        """The transport: PTB's HTTPX one, every wait bounded by timeout_s, each answer checked first."""
        from alerts.telegram_request import CheckedRequest

        timeouts = {
            "connect_timeout": self.timeout_s,
            "read_timeout": self.timeout_s,
            "write_timeout": self.timeout_s,
            "media_write_timeout": self.timeout_s,
        }
        return CheckedRequest(self.timeout_s, **timeouts)

    def _bot(self, request=None):
        from telegram import Bot

        return Bot(self._token, base_url=self.base_url, request=request or self._request())

    async def _whoami(self) -> str:
        async with self._bot() as bot:  # initialize() calls getMe
            return f"@{bot.username}"

    async def _send(self, alert: Alert, photo: bytes | None) -> None:
        request = self._request()
        async with self._bot(request) as bot:  # initialize() calls getMe: checks the token before sending
            try:
                if photo:
                    await bot.send_photo(chat_id=self.chat_id, photo=photo, caption=alert.caption)
                else:
                    await bot.send_message(chat_id=self.chat_id, text=alert.caption)
            except Exception as exc:
                if not request.accepted:
                    raise
                # Telegram said ok, so the message is there: only reading the rest of its answer failed.
                log.warning("Telegram took the alert, but its answer was odd: %s", self._clean(repr(exc)))

    def _clean(self, message: str) -> str:
        """One line, token removed (some PTB/httpx messages can carry the URL, which holds the token)."""
        return " ".join(message.replace(self._token, "<token>").split())


class _Redact(logging.Filter):
    """Replaces the token in a log record: httpx logs every request URL at INFO, and the URL holds the token."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "<token>"), ()
        return True


@contextmanager
def _token_redacted(token: str) -> Iterator[None]:
    """While sending, scrub the token from every record of the HTTP and Telegram libraries' loggers."""
    import httpx  # noqa: F401 - imported so their loggers exist before the filter is attached
    import telegram.request  # noqa: F401

    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("httpx", "httpcore", "telegram")]
    loggers = [logging.getLogger(n) for n in names]
    redact = _Redact(token)
    for logger in loggers:
        logger.addFilter(redact)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redact)


def notifier_from_settings(settings) -> Notifier:
    """Telegram when the parent configured a token and chat id, else the log."""
    if settings.telegram_enabled:
        return TelegramNotifier(
            settings.telegram_bot_token, settings.telegram_chat_id, base_url=settings.telegram_base_url
        )
    return LogNotifier()
