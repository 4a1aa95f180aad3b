"""Alert rules: pure functions over stored tick rows. No I/O, no clock: everything comes in as arguments.

The wake rule is "at least `needed` of the last `window` classified frames show the baby awake"
(2 of 3 by default), fired on the rising edge of that condition and not again within a cooldown.
The cry rule fires when the tick's audio scores at or above the cry threshold, not again within its
own cooldown. When both fire on the same tick the parent gets ONE message (`combine`).
"""

from __future__ import annotations

import time

from db.store import Alert, TickRow

WAKE = "wake"
CRY = "cry"


def rows_needed(window: int) -> int:
    """How many of the newest classified rows (the new row included) the caller passes to `wake_alert`.

    One more than the window: the extra, older row is what tells whether the condition already held
    one classified tick earlier (rising edge). Ask the store for `store.recent_classified(rows_needed(w) - 1)`
    and append the new row, or fewer at the start of history: missing rows count as not awake.
    """
    return window + 1


def is_awake(row: TickRow) -> bool:
    """'asleep', 'absent' and 'unknown' are all not awake: only a confident eyes-open frame counts."""
    return row.state == "awake"


def clock(ts: float) -> str:
    """Local wall-clock time as HH:MM, what a parent reads on the phone."""
    return time.strftime("%H:%M", time.localtime(ts))


def wake_alert(
    recent: list[TickRow],
    *,
    window: int,
    needed: int,
    last_alert_ts: float | None,
    cooldown_s: float,
    photo_path: str | None,
) -> Alert | None:
    """Return a wake alert if the new row (the LAST element of `recent`) starts a wake episode, else None.

    Contract: `recent` holds the newest classified rows, oldest first, the new row included as the last
    element, at most `rows_needed(window)` (= window + 1) of them; extra older rows are ignored. Rows with
    `unchanged=True` are skipped (their result is a copy of an earlier row, so they are no new evidence);
    if the new row itself is unchanged nothing fires. `last_alert_ts` is the created_ts of the last
    wake alert (`store.last_alert_ts('wake')`), `photo_path` the new row's JPEG (stored relative to data_dir).

    Fires when all three hold:
      1. at least `needed` of the last `window` classified rows are awake;
      2. that was NOT already true one classified tick earlier (rising edge);
      3. no wake alert was raised within `cooldown_s` before the new row's ts.

    Why the rising edge: a baby who wakes stays awake for many ticks; a level-triggered rule would send an
    alert every few minutes for as long as the baby is awake. Firing on the edge gives one alert per wake
    episode. Why the cooldown on top: the classifier flaps (eyes half open, a blink, a hand over the face),
    so "awake, awake, asleep, asleep, awake, awake" would be two edges for what is one waking; within the
    cooldown a repeated edge is treated as the same episode and stays silent. A new episode after the baby
    slept again and the cooldown passed alerts again. A suppressed edge is not re-fired later when the
    cooldown runs out while the baby stays awake: the parent was already told about this episode.
    """
    classified = [row for row in recent if not row.unchanged]
    if not recent or recent[-1].unchanged or not classified:
        return None
    new = classified[-1]
    now_rows = classified[-window:]
    before_rows = classified[-window - 1 : -1]
    awake_now = sum(is_awake(row) for row in now_rows)
    awake_before = sum(is_awake(row) for row in before_rows)
    if awake_now < needed or awake_before >= needed:
        return None
    if last_alert_ts is not None and new.ts - last_alert_ts < cooldown_s:
        return None
    caption = f"Baby seems to be waking ({awake_now} of the last {len(now_rows)} frames eyes open) — {clock(new.ts)}"
    return Alert(kind=WAKE, caption=caption, photo_path=photo_path, created_ts=new.ts, tick_id=new.id)


def cry_alert(
    row: TickRow, *, threshold: float, last_alert_ts: float | None, cooldown_s: float, photo_path: str | None
) -> Alert | None:
    """A cry alert if the new row's audio scored at least `threshold`, unless one was raised within `cooldown_s`.

    Audio is new evidence on every tick, so an `unchanged` frame can still fire. Level-triggered on purpose:
    a baby still crying when the cooldown has passed is worth telling again. `last_alert_ts` is
    `store.last_alert_ts('cry')`, which counts combined wake+cry alerts too.
    """
    p = row.cry_probability
    if p is None or p < threshold:
        return None
    if last_alert_ts is not None and row.ts - last_alert_ts < cooldown_s:
        return None
    loudness = f", {row.dbfs:.0f} dBFS" if row.dbfs is not None else ""
    caption = f"Baby seems to be crying (cry {p:.0%}{loudness}) — {clock(row.ts)}"
    return Alert(kind=CRY, caption=caption, photo_path=photo_path, created_ts=row.ts, tick_id=row.id)


def combine(alerts: list[Alert]) -> list[Alert]:
    """Alerts raised by one tick -> one message: kinds joined with '+' (e.g. 'wake+cry'), captions joined."""
    if len(alerts) < 2:
        return list(alerts)
    first = alerts[0]
    photo = next((a.photo_path for a in alerts if a.photo_path), None)
    caption = "\n".join(a.caption for a in alerts)
    kind = "+".join(a.kind for a in alerts)
    return [Alert(kind=kind, caption=caption, photo_path=photo, created_ts=first.created_ts, tick_id=first.tick_id)]
