"""Deliver the alerts waiting in the outbox. Runs on every tick, also when the capture failed.

An alert is written to the outbox in the same transaction as the tick that raised it, and leaves the
"pending" state only when a notifier confirms delivery, so a crash, a dead network or a Telegram outage
delays an alert but never loses it. Alerts are never deleted. Delivery is at-least-once: if the process
dies between a successful send and `mark_sent`, the next tick sends that alert again.

Every failure of a channel is one failed attempt, whatever it raised. A failure is definite (an error answered, the
connection refused: nothing arrived, so the alert is retried every tick) or ambiguous (NotifyError.maybe_sent: the
alert went out but the answer was lost, so the parent may have it). An ambiguous one is resent once more, saying it
may be a repeat; a second ambiguous try stops it, and it stays "possibly delivered" (db.store.MAX_UNCONFIRMED) instead
of reaching the parent once per tick.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from alerts.notifiers import Notifier, NotifyError, notifier_from_settings
from alerts.rules import clock
from db import jsonl
from db.store import MAX_UNCONFIRMED, Alert, Store, StoreError
from settings import Settings

# An alert older than this is labelled "(delayed, from HH:MM)" so a parent does not read a stale
# wake-up as happening now. A few ticks (tick interval 240 s by default) of lateness is normal retrying.
DELAYED_AFTER_S = 15 * 60
REPEAT_NOTE = "(may be a repeat)"  # starts a resend after a try whose answer was lost


class Delivery(NamedTuple):
    """What one pass over the outbox did: the alerts it sent (as stored, sent_ts set) and how many failed."""

    sent: list[Alert]
    failed: int


# How long a claim on an alert being sent holds (db AlertQueries.claim): longer than a send can take (the Bot API's
# 20 s timeout, a photo upload), so only a process that died mid-send loses it.
CLAIM_LEASE_S = 120.0


def deliver_pending(
    store: Store,
    notifier: Notifier,
    data_dir: Path,
    *,
    now: float,
    log: logging.Logger,
    camera_name: str = "",
    on_sent: Callable[[Alert], None] | None = None,
) -> Delivery:
    """Send every pending alert, oldest first; return the sent ones and how many failed.

    A sent alert is marked sent; a failed one gets attempts+1 and last_error and stays pending for the next tick
    (unless its answer was lost a second time: see the module docstring). After the first failure that is not
    specific to the alert (endpoint down, slow, token rejected) the rest of the queue is left untouched for the
    next tick: each try against a dead endpoint can cost a full timeout (20 s), and 50 queued alerts would hold the
    tick for many minutes, overlapping the next one, while every try fails the same way. A failure specific to one
    alert (Telegram refused that photo or caption) does not hold back the alerts behind it. With twins,
    `camera_name` starts every caption, so the parent knows which cot to go to. `on_sent` runs in the transaction
    that marks an alert sent (the tick queues its backup line there).
    """
    sent: list[Alert] = []
    failed = 0
    for alert in store.pending_alerts():
        if not store.claim(alert.id, time.time(), CLAIM_LEASE_S):
            log.info("alert #%s (%s) is being sent by another process (the listener, a tick)", alert.id, alert.kind)
            continue
        outgoing, photo = _prepare(alert, data_dir, now=now, log=log, camera_name=camera_name)
        try:
            notifier.send(outgoing, photo)
        except Exception as exc:  # any failure of a channel is a failed attempt, never a crashed tick
            error = exc if isinstance(exc, NotifyError) else NotifyError(f"{notifier.name} failed: {exc!r}")
            store.mark_failed(alert.id, str(error), maybe_sent=error.maybe_sent)
            failed += 1
            log.warning("alert #%s (%s) %s", alert.id, alert.kind, _failure_words(alert, error))
            if not error.per_alert:
                break
            continue
        done = dataclasses.replace(alert, sent_ts=now, attempts=alert.attempts + 1, last_error=None)
        with store.atomic():
            store.mark_sent(alert.id, now)
            if on_sent is not None:
                on_sent(done)
        sent.append(done)
        log.info("alert #%s (%s) sent via %s", alert.id, alert.kind, notifier.name)
    return Delivery(sent, failed)


def _failure_words(alert: Alert, error: NotifyError) -> str:
    """What happens next to an alert that just failed, for its log line."""
    if not error.maybe_sent:
        return f"not sent, will retry next tick: {error}"
    if alert.unconfirmed + 1 >= MAX_UNCONFIRMED:
        return f"possibly delivered, not sent again (its answer was lost {MAX_UNCONFIRMED} times): {error}"
    return f"may have arrived (its answer was lost): resending it once next tick, marked as a possible repeat: {error}"


def _prepare(
    alert: Alert, data_dir: Path, *, now: float, log: logging.Logger, camera_name: str
) -> tuple[Alert, bytes | None]:
    """The alert as it goes out (camera named, marked if delayed) and its photo bytes (None if unreadable)."""
    caption = alert.caption
    if now - alert.created_ts > DELAYED_AFTER_S:
        caption = f"(delayed, from {clock(alert.created_ts)}) {caption}"
    if alert.unconfirmed:
        caption = f"{REPEAT_NOTE} {caption}"
    if camera_name:
        caption = f"{camera_name}: {caption}"
    photo = None
    if alert.photo_path:
        try:
            photo = (data_dir / alert.photo_path).read_bytes()
        except OSError as exc:
            log.warning("alert #%s: snapshot %s unreadable (%s); sending without it", alert.id, alert.photo_path, exc)
    return dataclasses.replace(alert, caption=caption), photo


_tick_log = logging.getLogger("bilbo.tick")  # the tick's steps log as the tick


def deliver_alerts(settings: Settings, store: Store, now: float) -> None:
    """Send what is in the outbox; runs after every tick, failed or not, so outages never drop alerts."""
    try:
        delivery = deliver_pending(
            store,
            notifier_from_settings(settings),
            settings.data_dir,
            now=now,
            log=_tick_log,
            camera_name=settings.camera_name,
            on_sent=lambda alert: jsonl.queue(store, settings.jsonl_path, [jsonl.alert_sent_record(alert)]),
        )
    except StoreError as exc:
        _tick_log.error("alerts not delivered this tick (will retry): %s", exc)
        return
    if delivery.sent and (problem := jsonl.write(store, settings.jsonl_path)):
        _tick_log.warning("alert delivered, but %s", problem)
