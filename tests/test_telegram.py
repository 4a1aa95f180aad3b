"""TelegramNotifier against a real local Bot API server; LogNotifier; choosing one from settings."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from alerts.notifiers import LogNotifier, NotifyError, TelegramNotifier, notifier_from_settings
from alerts.outbox import REPEAT_NOTE, deliver_pending
from db.store import MAX_UNCONFIRMED, Alert, Store, TickRow
from settings import load_settings
from tests.bot_api_server import TEST_TOKEN, BotApiServer
from tests.conftest import free_port
from tests.test_alerts import delivered

TOKEN = TEST_TOKEN
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 pretend pixels \x00\xff\xd9"
log = logging.getLogger("test.telegram")


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        yield store


def alert(caption: str = "Baby seems to be waking (2 of the last 3 frames eyes open) — 02:08") -> Alert:
    return Alert(kind="wake", caption=caption, photo_path="frames/x.jpg", created_ts=time.time())


def notifier_for(api: BotApiServer, timeout_s: float = 5) -> TelegramNotifier:
    return TelegramNotifier(TOKEN, "4242", base_url=api.base_url, timeout_s=timeout_s)


def queue_one(store: Store, data_dir: Path) -> Alert:
    (data_dir / "frames").mkdir(exist_ok=True)
    (data_dir / "frames" / "x.jpg").write_bytes(JPEG)
    row = TickRow(time.time(), "test", False, 9.0, False, "awake", "present", 0.9, None, None, "open", 0.9,
                  "frames/x.jpg", "test", 5.0)  # fmt: skip
    store.insert_tick(row, [alert()])
    (pending,) = store.pending_alerts()
    return pending


def test_photo_caption_and_chat_id_arrive(bot_api):
    notifier_for(bot_api).send(alert(), JPEG)
    (sent,) = bot_api.calls("sendPhoto")
    assert sent.token == TOKEN
    assert sent.chat_id == "4242"
    assert sent.caption == alert().caption
    assert sent.photo == JPEG


def test_without_photo_sends_a_text_message(bot_api):
    notifier_for(bot_api).send(alert("no snapshot"), None)
    assert bot_api.calls("sendPhoto") == []
    assert [(r.chat_id, r.text) for r in bot_api.calls("sendMessage")] == [("4242", "no snapshot")]


def test_server_error_keeps_alert_pending_then_recovery_sends_it(bot_api, store, tmp_path):
    pending = queue_one(store, tmp_path)
    bot_api.fail(500)
    with pytest.raises(NotifyError) as raised:
        notifier_for(bot_api).send(pending, JPEG)
    assert "Internal Server Error" in str(raised.value)

    assert delivered(deliver_pending(store, notifier_for(bot_api), tmp_path, now=time.time(), log=log)) == (0, 1)
    (still,) = store.pending_alerts()
    assert still.attempts == 1
    assert "Internal Server Error" in still.last_error
    assert still.sent_ts is None

    bot_api.recover()
    now = time.time()
    assert delivered(deliver_pending(store, notifier_for(bot_api), tmp_path, now=now, log=log)) == (1, 0)
    assert store.pending_alerts() == []
    (done,) = store.alerts()
    assert (done.sent_ts, done.attempts) == (now, 2)
    (sent,) = bot_api.calls("sendPhoto")
    assert (sent.photo, sent.caption) == (JPEG, pending.caption)


def test_not_ok_answer_is_an_error(bot_api):
    bot_api.fail(403, "Forbidden: bot was blocked by the user")
    with pytest.raises(NotifyError, match="blocked by the user") as raised:
        notifier_for(bot_api).send(alert(), JPEG)
    assert raised.value.per_alert is False


def test_hanging_server_fails_within_the_timeout(bot_api):
    bot_api.hang(30)
    start = time.monotonic()
    with pytest.raises(NotifyError, match="did not answer within 1 s"):
        notifier_for(bot_api, timeout_s=1).send(alert(), JPEG)
    assert time.monotonic() - start < 5


def test_token_never_appears_in_errors_or_logs(bot_api, store, tmp_path, caplog):
    wrong = TelegramNotifier(TOKEN + "x", "4242", base_url=bot_api.base_url, timeout_s=1)  # server rejects it
    dead = TelegramNotifier(TOKEN, "4242", base_url=f"http://127.0.0.1:{free_port()}/bot", timeout_s=1)
    messages = []
    for notifier, setup in [
        (wrong, lambda: None),
        (dead, lambda: None),
        (notifier_for(bot_api), lambda: bot_api.fail(500)),
        (notifier_for(bot_api, timeout_s=1), lambda: bot_api.hang(10)),
    ]:
        setup()
        with pytest.raises(NotifyError) as raised:
            notifier.send(alert(), JPEG)
        messages.append(str(raised.value))
        bot_api.recover()
    assert "rejected the bot token" in messages[0]
    assert "unreachable" in messages[1]
    for message in messages:
        assert TOKEN not in message and "SECRET" not in message, message
        assert "\n" not in message
    assert TOKEN not in repr(wrong)

    queue_one(store, tmp_path)
    with caplog.at_level(logging.DEBUG):
        deliver_pending(store, wrong, tmp_path, now=time.time(), log=log)
    assert "will retry next tick" in caplog.text
    assert "SECRET" not in caplog.text
    assert "SECRET" not in store.alerts()[0].last_error


def test_log_notifier_logs_the_caption(caplog, store, tmp_path):
    queue_one(store, tmp_path)
    with caplog.at_level(logging.WARNING, logger="bilbo.alerts"):
        assert delivered(deliver_pending(store, LogNotifier(), tmp_path, now=time.time(), log=log)) == (1, 0)
    (record,) = [r for r in caplog.records if r.name == "bilbo.alerts"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("alert (no Telegram configured): Baby seems to be waking")
    assert "frames/x.jpg" in record.getMessage()
    assert store.pending_alerts() == []


def test_notifier_from_settings(bot_api):
    quiet = load_settings(env_file=None, environ={})
    assert isinstance(notifier_from_settings(quiet), LogNotifier)  # no token: nothing is contacted
    configured = load_settings(
        env_file=None,
        environ={
            "BILBO_TELEGRAM_BOT_TOKEN": TOKEN,
            "BILBO_TELEGRAM_CHAT_ID": "4242",
            "BILBO_TELEGRAM_BASE_URL": bot_api.base_url,
        },
    )
    notifier = notifier_from_settings(configured)
    assert isinstance(notifier, TelegramNotifier)
    notifier.send(alert("from settings"), None)
    assert [r.text for r in bot_api.calls("sendMessage")] == ["from settings"]
    default = notifier_from_settings(
        load_settings(env_file=None, environ={}, telegram_bot_token="1:a", telegram_chat_id="1")
    )
    assert default.base_url == "https://api.telegram.org/bot"  # empty setting = PTB's default (not contacted here)


# ---- definite and ambiguous failures (issue 17, items 3b and 4) ---------------------------------------------------


def test_a_200_answer_with_ok_false_is_one_failed_attempt_not_a_crashed_delivery(bot_api, store, tmp_path, caplog):
    bot_api.fail(200, "Too Many Requests: retry later")  # some proxies and Bot API servers answer errors with 200
    pending = queue_one(store, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert delivered(deliver_pending(store, notifier_for(bot_api), tmp_path, now=time.time(), log=log)) == (0, 1)
    (still,) = store.pending_alerts()
    assert (still.id, still.attempts, still.unconfirmed) == (pending.id, 1, 0)  # definite: nothing arrived
    assert "Too Many Requests: retry later" in still.last_error
    assert "will retry next tick" in caplog.text and "Traceback" not in caplog.text

    bot_api.fail(200, "Bad Request: message caption is too long", error_code=400)  # the code says whose fault
    with pytest.raises(NotifyError, match="caption is too long") as raised:
        notifier_for(bot_api).send(pending, JPEG)
    assert raised.value.per_alert and not raised.value.maybe_sent


@pytest.mark.parametrize("how", ["slow", "reset", "unreadable"])
def test_an_answer_lost_after_the_message_went_out_is_ambiguous(bot_api, how, caplog):
    bot_api.lose_answer(how, after_s=10)
    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError, match="may have arrived") as raised:
        notifier_for(bot_api, timeout_s=1).send(alert(), JPEG)
    assert raised.value.maybe_sent and not raised.value.per_alert
    assert bot_api.delivered() == [alert().caption]  # Telegram has it
    message = str(raised.value)
    assert "\n" not in message and "SECRET" not in message and "<html>" not in message
    assert "Traceback" not in caplog.text and "<html>" not in caplog.text  # PTB logged the raw page with a traceback


@pytest.mark.parametrize("fault", ["502 html page", "refused", "getMe slow", "200 ok false"])
def test_a_failure_before_or_instead_of_delivery_is_definite(bot_api, fault, caplog):
    notifier = notifier_for(bot_api, timeout_s=1)
    if fault == "502 html page":
        bot_api.fail(502, html=True)  # a proxy's error page: answered, so not delivered
    elif fault == "refused":
        notifier = TelegramNotifier(TOKEN, "4242", base_url=f"http://127.0.0.1:{free_port()}/bot", timeout_s=1)
    elif fault == "getMe slow":
        bot_api.hang(10)  # getMe never answers, so the message never goes out
    else:
        bot_api.fail(200, "Internal error")
    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError) as raised:
        notifier.send(alert(), JPEG)
    assert not raised.value.maybe_sent, str(raised.value)
    assert "may have arrived" not in str(raised.value) and "<html>" not in str(raised.value)
    assert bot_api.delivered() == []
    assert "Traceback" not in caplog.text


def deliver(store: Store, api: BotApiServer, data_dir: Path, now: float | None = None):
    return deliver_pending(store, notifier_for(api, timeout_s=1), data_dir, now=now or time.time(), log=log)


def test_after_an_ambiguous_failure_the_alert_is_resent_once_saying_so_then_kept_as_possibly_delivered(
    bot_api, store, tmp_path, caplog
):
    pending = queue_one(store, tmp_path)
    bot_api.lose_answer("reset")
    with caplog.at_level(logging.WARNING):
        for _ in range(8):  # eight ticks of a connection that drops every answer
            deliver(store, bot_api, tmp_path)
    assert bot_api.delivered() == [pending.caption, f"{REPEAT_NOTE} {pending.caption}"]  # two copies, not eight
    assert store.pending_alerts() == []
    (kept,) = store.alerts()
    assert (kept.sent_ts, kept.attempts, kept.unconfirmed) == (None, 2, MAX_UNCONFIRMED)  # possibly delivered
    assert "may have arrived" in kept.last_error
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert len(lines) == 2
    assert "resending it once next tick, marked as a possible repeat" in lines[0]
    assert "possibly delivered, not sent again" in lines[1]


def test_a_resend_that_goes_through_is_sent_and_a_definite_failure_in_between_does_not_use_it_up(
    bot_api, store, tmp_path
):
    pending = queue_one(store, tmp_path)
    bot_api.lose_answer("unreadable")
    assert delivered(deliver(store, bot_api, tmp_path)) == (0, 1)
    bot_api.recover()
    bot_api.fail(500)  # answered: nothing arrived, so this is not the one resend
    assert delivered(deliver(store, bot_api, tmp_path)) == (0, 1)
    bot_api.recover()
    now = time.time()
    assert delivered(deliver(store, bot_api, tmp_path, now)) == (1, 0)
    (done,) = store.alerts()
    assert (done.sent_ts, done.attempts, done.unconfirmed) == (now, 3, 1)
    assert bot_api.delivered() == [pending.caption, f"{REPEAT_NOTE} {pending.caption}"]
