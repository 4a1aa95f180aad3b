"""Alert rules: pure functions over stored tick rows. No I/O, no clock: everything comes in as arguments.

The wake rule is "at least `needed` of the last `window` classified frames show the baby awake"
(2 of 3 by default), fired on the rising edge of that condition and not again within a cooldown.
The cry rule is "the new tick's audio and at least `needed` of the last `window` ticks' audio reach the
cry threshold" (2 of 3 by default), not again within its own cooldown. When both fire on the same tick
the parent gets ONE message (`combine`).
The camera rules are about the monitor itself: "this many ticks in a row got no frame" (`camera_down_alert`,
once per outage) and "a frame arrived again after an outage the parent was told about" (`camera_back_alert`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from db.store import Alert, TickRow

WAKE = "wake"
CRY = "cry"
CAMERA = "camera"
MAX_REASON_CHARS = 300  # a capture error is one line; this keeps a freak one from swamping the phone screen


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


def in_cooldown(ts: float, last_alert_ts: float | None, cooldown_s: float) -> bool:
    """Whether the last alert of a kind, raised at `last_alert_ts`, silences a new one at `ts`. An alert stamped
    AFTER `ts` comes from a clock that has since jumped back (a Pi booting without a real-time clock, a clock
    corrected backwards): how long ago it really was is unknown, and counting it as "just now" would silence every
    alert until the clock caught up with it, hours later. It does not silence: a repeated message beats a missed
    waking."""
    return last_alert_ts is not None and 0 <= ts - last_alert_ts < cooldown_s


def wake_condition(classified: Sequence[TickRow], *, window: int, needed: int) -> bool:
    """At least `needed` of the last `window` classified rows are awake (fewer rows: the missing ones are not)."""
    return sum(is_awake(row) for row in classified[-window:]) >= needed


def awaiting_confirmation(classified: Sequence[TickRow], *, window: int, needed: int) -> bool:
    """Whether a waking is worth confirming now: the newest classified row (oldest first, the newest LAST) has its
    eyes open but the wake rule does not hold yet. One more awake frame 15 s later then makes the rule hold, instead
    of one to two ticks (4-8 minutes) later."""
    rows = [row for row in classified if not row.unchanged]
    return bool(rows) and is_awake(rows[-1]) and not wake_condition(rows, window=window, needed=needed)


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
    if not wake_condition(classified, window=window, needed=needed):
        return None
    if wake_condition(classified[:-1], window=window, needed=needed):  # held already: not a rising edge
        return None
    if in_cooldown(new.ts, last_alert_ts, cooldown_s):
        return None
    awake_now = sum(is_awake(row) for row in now_rows)
    caption = f"Baby seems to be waking ({awake_now} of the last {len(now_rows)} frames eyes open) — {clock(new.ts)}"
    return Alert(kind=WAKE, caption=caption, photo_path=photo_path, created_ts=new.ts, tick_id=new.id)


def cry_heard(probabilities: Sequence[float | None], *, threshold: float, window: int, needed: int) -> bool:
    """True when the newest clip (last element) reaches `threshold` and so do at least `needed` of the last
    `window` clips. None (no audio that tick) counts as not crying.

    Why more than one clip: a single 5 s clip of a parent's voice, the TV or a squeaky toy scores like a cry
    a few times an hour; a baby who needs the parent keeps crying for minutes. Asking for 2 of 3 ticks cuts
    false alarms roughly to the square of the per-clip rate, at the cost of one tick interval of delay
    (train/reports/cry.md measures both). Why the newest must be crying: a baby who stopped needs no alert.
    Shared by the tick (`cry_alert`) and the evaluation (train/evaluate_cry.py), so the report measures
    exactly the rule that runs."""
    recent = list(probabilities)[-window:]
    if not recent or recent[-1] is None or recent[-1] < threshold:
        return False
    return crying_clips(recent, threshold) >= needed


def crying_clips(probabilities: Sequence[float | None], threshold: float) -> int:
    """How many clips reach `threshold` (None, no audio, never does)."""
    return sum(p is not None and p >= threshold for p in probabilities)


def cry_alert(
    recent: list[TickRow],
    *,
    threshold: float,
    window: int,
    needed: int,
    last_alert_ts: float | None,
    cooldown_s: float,
    photo_path: str | None,
) -> Alert | None:
    """A cry alert if `cry_heard` over the newest ticks (the new row LAST), unless one was raised within `cooldown_s`.

    `recent` holds the newest ticks, oldest first, unchanged frames included: audio is new evidence on every
    tick, whatever the picture did (`store.recent_ticks(window - 1)` plus the new row). Level-triggered on
    purpose: a baby still crying when the cooldown has passed is worth telling again. `last_alert_ts` is
    `store.last_alert_ts('cry')`, which counts combined wake+cry alerts too.
    """
    if not recent:
        return None
    row = recent[-1]
    if not cry_heard([r.cry_probability for r in recent], threshold=threshold, window=window, needed=needed):
        return None
    if in_cooldown(row.ts, last_alert_ts, cooldown_s):
        return None
    crying = crying_clips([r.cry_probability for r in recent[-window:]], threshold)
    loudness = f", {row.dbfs:.0f} dBFS" if row.dbfs is not None else ""
    over = f"{crying} of the last {min(window, len(recent))} ticks, " if needed > 1 else ""
    caption = f"Baby seems to be crying ({over}cry {row.cry_probability:.0%}{loudness}) — {clock(row.ts)}"
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


def one_line(reason: str) -> str:
    """An error message as an alert shows it: one line, at most MAX_REASON_CHARS."""
    reason = " ".join(reason.split())
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def _failed(failures: int, camera: bool) -> str:
    """How an outage's captions count its ticks: the camera's ('3 ticks without a frame') or BILBO's own."""
    return f"{failures} ticks without a frame" if camera else f"{failures} failed ticks"


def camera_down_alert(
    *, failures: int, since_ts: float, reason: str, down_ticks: int, alerted: bool, at_ts: float, camera: bool = True
) -> Alert | None:
    """A "camera unreachable" alert when `failures` ticks in a row (the one at `at_ts` included) got no frame, or,
    when the failure at `at_ts` is BILBO's own (`camera` False: models that cannot load, a disk that cannot take the
    frame), a "BILBO cannot watch" alert: the baby is as unwatched either way.

    `since_ts` is the first failure of this outage, `reason` the newest failure's message, already redacted
    (capture/ffmpeg.py never puts a camera password in a CaptureError), `down_ticks` is CAMERA_DOWN_TICKS
    (0 = never alert), `alerted` whether this outage already raised its alert (`store.camera_outage()`).

    Fires when `failures` reaches `down_ticks` and the outage has not been alerted yet. ">=" rather than "==":
    a tick that could not record its failure (database locked) or a CAMERA_DOWN_TICKS lowered mid-outage must
    not skip the alert for good; `alerted` is what keeps it to exactly one per outage, however long it lasts.
    Why not on the first failure: one refused connection or one corrupt frame (the camera rebooting, a Wi-Fi
    hiccup) is normal and the next tick usually works; N in a row means nobody is watching the baby.
    """
    if down_ticks <= 0 or alerted or failures < down_ticks:
        return None
    reason = one_line(reason)
    what = "Camera unreachable" if camera else "BILBO cannot watch"
    caption = f"{what} since {clock(since_ts)} ({_failed(failures, camera)}): {reason} — BILBO is NOT watching."
    return Alert(kind=CAMERA, caption=caption, photo_path=None, created_ts=at_ts)


def camera_back_alert(
    *, failures: int, since_ts: float | None, alerted: bool, at_ts: float, camera: bool = True
) -> Alert | None:
    """A "camera back" alert for the tick at `at_ts` that got a frame again, if the outage it ends was alerted.

    `failures`, `since_ts` and `alerted` describe the outage just ended (`store.camera_outage()` read before the
    new tick is stored). An outage the parent was never told about (shorter than CAMERA_DOWN_TICKS, or alerts
    off) ends silently: "back" is only news to someone who was told "down".
    """
    if not alerted or failures <= 0:
        return None
    down = f" It was down since {clock(since_ts)} ({_failed(failures, camera)})." if since_ts is not None else ""
    back = "Camera back" if camera else "BILBO works again"
    caption = f"{back} at {clock(at_ts)} — watching again.{down}"
    return Alert(kind=CAMERA, caption=caption, photo_path=None, created_ts=at_ts)
