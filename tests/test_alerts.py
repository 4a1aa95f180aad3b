"""The wake rule on hand-built row sequences, and the outbox against a real SQLite file and a local Bot API."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from alerts.notifiers import Notifier, TelegramNotifier
from alerts.outbox import DELAYED_AFTER_S, Delivery, deliver_pending
from alerts.rules import clock, rows_needed, wake_alert
from db.store import Alert, Store, TickRow

T0 = 1_700_000_000.0
STEP_S = 240.0
log = logging.getLogger("test.alerts")


def delivered(delivery: Delivery) -> tuple[int, int]:
    """(sent, failed) of one pass."""
    return len(delivery.sent), delivery.failed


def make_row(i: int, state: str, *, unchanged: bool = False, ts: float | None = None) -> TickRow:
    return TickRow(
        ts=T0 + i * STEP_S if ts is None else ts,
        source="test",
        unchanged=unchanged,
        diff_score=0.1 if unchanged else 9.0,
        night=False,
        state=state,
        presence_label="present" if state in ("awake", "asleep") else None,
        presence_conf=0.9,
        face_box=None,
        face_conf=None,
        eyes_label={"awake": "open", "asleep": "closed"}.get(state),
        eyes_conf=0.9,
        jpeg_path=f"frames/{i:04d}.jpg",
        model_version="test",
        duration_ms=5.0,
    )


def simulate(states: list[str], *, window: int = 3, needed: int = 2, cooldown_s: float = 1800) -> list[int]:
    """Feed the rule tick by tick like the caller does; '=awake' is an unchanged row copying 'awake'.

    The whole history goes in (unchanged rows included) so the rule's own filtering and its use of only
    the newest window+1 classified rows are what is tested. Returns the indices of ticks that fired.
    """
    history: list[TickRow] = []
    last_alert_ts = None
    fired = []
    for i, state in enumerate(states):
        row = make_row(i, state.lstrip("="), unchanged=state.startswith("="))
        alert = wake_alert(
            [*history, row],
            window=window,
            needed=needed,
            last_alert_ts=last_alert_ts,
            cooldown_s=cooldown_s,
            photo_path=row.jpeg_path,
        )
        if alert is not None:
            fired.append(i)
            last_alert_ts = alert.created_ts
        history.append(row)
    return fired


def test_fires_exactly_when_the_second_awake_of_three_arrives():
    assert simulate(["asleep", "awake"]) == []
    assert simulate(["asleep", "awake", "awake"]) == [2]
    assert simulate(["asleep", "awake", "asleep", "awake"]) == [3]  # 2 of the last 3


def test_alert_fields():
    rows = [make_row(0, "asleep"), make_row(1, "awake"), make_row(2, "awake")]
    alert = wake_alert(rows, window=3, needed=2, last_alert_ts=None, cooldown_s=1800, photo_path="frames/0002.jpg")
    assert alert is not None
    assert alert.kind == "wake"
    assert alert.created_ts == rows[-1].ts
    assert alert.photo_path == "frames/0002.jpg"
    assert "2 of the last 3" in alert.caption
    assert alert.caption.endswith(clock(rows[-1].ts))


def test_sustained_awake_stretch_fires_once():
    assert simulate(["asleep"] * 3 + ["awake"] * 30, cooldown_s=60) == [4]


def test_first_rows_of_history_count_missing_rows_as_not_awake():
    assert simulate(["awake", "awake", "awake"]) == [1]


def test_unchanged_rows_are_ignored():
    # Copies of an awake result are no new evidence: counting them would fire at index 3.
    assert simulate(["asleep", "asleep", "awake", "=awake", "=awake", "=awake"]) == []
    assert simulate(["asleep", "asleep", "awake", "=awake", "=awake", "awake"]) == [5]
    # An unchanged new row never fires, even when the classified rows before it would.
    rows = [make_row(0, "asleep"), make_row(1, "awake"), make_row(2, "awake"), make_row(3, "awake", unchanged=True)]
    assert wake_alert(rows[:3], window=3, needed=2, last_alert_ts=None, cooldown_s=1, photo_path=None) is not None
    assert wake_alert(rows, window=3, needed=2, last_alert_ts=None, cooldown_s=1, photo_path=None) is None


def test_unchanged_rows_do_not_hide_an_earlier_awake_row():
    # classified: asleep, asleep, awake, awake (the unchanged rows in between take no window slot)
    assert simulate(["asleep", "asleep", "awake", "=asleep", "=asleep", "awake"]) == [5]


def test_flapping_within_cooldown_fires_once():
    flapping = ["asleep", "awake", "awake", "asleep", "asleep", "asleep", "awake", "awake", "asleep", "awake"]
    assert simulate(flapping, cooldown_s=1800) == [2]  # the second edge is at index 7, 1200 s later
    assert simulate(flapping, cooldown_s=600) == [2, 7]  # same sequence, shorter cooldown: two episodes


def test_new_episode_after_sleep_and_cooldown_fires_again():
    night = ["asleep", "awake", "awake"] + ["asleep"] * 10 + ["awake", "awake"]
    assert simulate(night, cooldown_s=1800) == [2, 14]  # 12 ticks x 240 s = 2880 s > cooldown


def test_cooldown_uses_the_last_alert_from_the_store():
    rows = [make_row(0, "asleep"), make_row(1, "awake"), make_row(2, "awake")]
    recent_alert = rows[-1].ts - 100
    old_alert = rows[-1].ts - 5000
    assert wake_alert(rows, window=3, needed=2, last_alert_ts=recent_alert, cooldown_s=1800, photo_path=None) is None
    assert wake_alert(rows, window=3, needed=2, last_alert_ts=old_alert, cooldown_s=1800, photo_path=None) is not None


@pytest.mark.parametrize("other", ["unknown", "absent", "asleep"])
def test_unknown_absent_asleep_are_not_awake(other):
    assert simulate([other] * 10) == []
    assert simulate(["awake", other, other, "awake", other, other, "awake"]) == []  # never 2 of 3
    assert simulate([other, other, "awake", "awake"]) == [3]


def test_rows_needed_is_window_plus_one_and_older_rows_are_ignored():
    assert rows_needed(3) == 4
    assert rows_needed(5) == 6
    # awake, awake long ago: the edge already happened; only the newest window+1 rows decide.
    rows = [make_row(i, s) for i, s in enumerate(["awake", "awake", "asleep", "asleep", "asleep", "awake", "awake"])]
    assert wake_alert(rows, window=3, needed=2, last_alert_ts=None, cooldown_s=1, photo_path=None) is not None


def test_rule_with_the_store_as_the_caller_uses_it(tmp_path: Path):
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        for i, state in enumerate(["asleep", "awake", "=awake", "awake", "awake", "asleep", "awake"]):
            row = make_row(i, state.lstrip("="), unchanged=state.startswith("="))
            alerts = []
            if not row.unchanged:
                recent = [*store.recent_classified(rows_needed(3) - 1), row]
                alert = wake_alert(
                    recent,
                    window=3,
                    needed=2,
                    last_alert_ts=store.last_alert_ts("wake"),
                    cooldown_s=1800,
                    photo_path=row.jpeg_path,
                )
                alerts = [alert] if alert else []
            store.insert_tick(row, alerts)
        wake = store.alerts("wake")
        assert [a.created_ts for a in wake] == [make_row(3, "awake").ts]
        assert store.pending_alerts() == wake


# --- outbox ---------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        yield store


def queue(store: Store, caption: str, photo_path: str | None, created_ts: float) -> None:
    store.insert_tick(make_row(0, "awake", ts=created_ts), [Alert("wake", caption, photo_path, created_ts)])


def test_outbox_sends_oldest_first_with_photo_and_without_missing_photo(store, bot_api, tmp_path):
    (tmp_path / "frames").mkdir()
    jpeg = b"\xff\xd8\xff\xe0 a real enough jpeg \x00\x01\xff\xd9"
    (tmp_path / "frames" / "a.jpg").write_bytes(jpeg)
    now = time.time()
    queue(store, "first", "frames/a.jpg", now - 60)
    queue(store, "second", "frames/gone.jpg", now - 30)
    notifier = TelegramNotifier(bot_api.token, "42", base_url=bot_api.base_url, timeout_s=5)

    delivery = deliver_pending(store, notifier, tmp_path, now=now, log=log)
    assert delivered(delivery) == (2, 0)
    assert delivery.sent == store.alerts()  # what it reports sent is what it stored (the backup writes these)

    photo, message = bot_api.calls("sendPhoto"), bot_api.calls("sendMessage")
    assert [(r.chat_id, r.caption, r.photo) for r in photo] == [("42", "first", jpeg)]
    assert [(r.chat_id, r.text) for r in message] == [("42", "second")]  # missing file: not dropped
    assert store.pending_alerts() == []
    assert [(a.sent_ts, a.attempts) for a in store.alerts()] == [(now, 1), (now, 1)]
    assert delivered(deliver_pending(store, notifier, tmp_path, now=now, log=log)) == (0, 0)  # never sent twice


def test_outbox_marks_very_old_alert_as_delayed(store, bot_api, tmp_path):
    now = time.time()
    old_ts = now - 7 * 3600
    queue(store, "Baby seems to be waking", None, old_ts)
    queue(store, "fresh", None, now - DELAYED_AFTER_S + 60)
    notifier = TelegramNotifier(bot_api.token, "42", base_url=bot_api.base_url, timeout_s=5)
    assert delivered(deliver_pending(store, notifier, tmp_path, now=now, log=log)) == (2, 0)
    texts = [r.text for r in bot_api.calls("sendMessage")]
    assert texts == [f"(delayed, from {clock(old_ts)}) Baby seems to be waking", "fresh"]
    assert [a.caption for a in store.alerts()] == ["Baby seems to be waking", "fresh"]  # stored text unchanged


def test_outbox_stops_at_a_dead_endpoint_and_resumes_in_order(store, bot_api, tmp_path, caplog):
    now = time.time()
    for i in range(3):
        queue(store, f"alert {i}", None, now - 100 + i)
    notifier = TelegramNotifier(bot_api.token, "42", base_url=bot_api.base_url, timeout_s=5)

    bot_api.fail(500)
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert delivered(deliver_pending(store, notifier, tmp_path, now=now, log=log)) == (0, 1)
    first, *rest = store.alerts()
    assert first.attempts == 1 and first.last_error and first.sent_ts is None
    assert [(a.attempts, a.last_error) for a in rest] == [(0, None), (0, None)]  # not tried: endpoint is down
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert lines == [f"alert #{first.id} (wake) not sent, will retry next tick: {first.last_error}"]

    bot_api.recover()
    assert delivered(deliver_pending(store, notifier, tmp_path, now=now + 240, log=log)) == (3, 0)
    assert [r.text for r in bot_api.calls("sendMessage")] == ["alert 0", "alert 1", "alert 2"]
    assert [a.attempts for a in store.alerts()] == [2, 1, 1]


def test_outbox_goes_on_after_a_failure_specific_to_one_alert(store, bot_api, tmp_path):
    now = time.time()
    for i in range(3):
        queue(store, f"alert {i}", None, now - 100 + i)
    notifier = TelegramNotifier(bot_api.token, "42", base_url=bot_api.base_url, timeout_s=5)
    bot_api.fail(400, "Bad Request: message caption is too long")
    assert delivered(deliver_pending(store, notifier, tmp_path, now=now, log=log)) == (0, 3)
    assert [a.attempts for a in store.pending_alerts()] == [1, 1, 1]
    assert all("caption is too long" in a.last_error for a in store.alerts())


class _BrokenChannel(Notifier):
    """A channel with a bug: it raises something other than NotifyError (no real channel is left that does, since
    TelegramNotifier turns every library surprise into a NotifyError; this guards the outbox's own promise)."""

    name = "broken"

    def send(self, alert: Alert, photo: bytes | None) -> None:
        raise KeyError("result")


def test_any_failure_of_a_channel_is_one_failed_attempt_and_the_tick_goes_on(store, tmp_path, caplog):
    now = time.time()
    queue(store, "alert", None, now)
    with caplog.at_level(logging.WARNING):
        assert delivered(deliver_pending(store, _BrokenChannel(), tmp_path, now=now, log=log)) == (0, 1)
    [still] = store.pending_alerts()
    assert (still.attempts, still.unconfirmed) == (1, 0) and "broken failed: KeyError('result')" in still.last_error
    assert "will retry next tick" in caplog.text


def test_an_alert_another_process_is_sending_is_left_to_it_and_sent_once(tmp_path, bot_api):
    """The tick and the cry listener both deliver the outbox. A process claims an alert before sending it (a second
    connection plays the other process); the other leaves it alone until the claim is released or, the claimer
    having died mid-send, its lease runs out. Without the claim the same alert went out twice."""
    from alerts.outbox import CLAIM_LEASE_S

    db = tmp_path / "bilbo.sqlite3"
    notifier = TelegramNotifier(bot_api.token, "4242", base_url=bot_api.base_url)
    with Store.open(db) as tick, Store.open(db) as listener:
        tick_id = tick.insert_tick(make_row(0, "awake"), [Alert("cry", "Baby is crying", None, 1000.0)])
        [alert] = tick.alerts_of_tick(tick_id)
        assert listener.claim(alert.id, time.time(), CLAIM_LEASE_S)  # the listener is sending it right now
        log = logging.getLogger("test")
        assert deliver_pending(tick, notifier, tmp_path, now=1001.0, log=log) == Delivery([], 0)
        assert bot_api.calls("sendMessage") == []
        assert not tick.claim(alert.id, time.time(), CLAIM_LEASE_S)
        # The listener died mid-send: once its lease is over, the tick takes the alert over and sends it once.
        later = time.time() + CLAIM_LEASE_S + 1
        assert tick.claim(alert.id, later, CLAIM_LEASE_S)
        tick.mark_failed(alert.id, "test: released")  # a failed try releases the claim; the next delivery sends it
        sent = deliver_pending(tick, notifier, tmp_path, now=1002.0, log=log)
        assert [a.id for a in sent.sent] == [alert.id] and len(bot_api.calls("sendMessage")) == 1
        assert not listener.claim(alert.id, later + 10 * CLAIM_LEASE_S, CLAIM_LEASE_S)  # sent: nobody claims it
