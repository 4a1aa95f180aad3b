"""A clock that jumped back: say so, instead of letting a row stamped in the future pass for the newest.

A Pi without a real-time clock boots with an old time until NTP answers; a clock set wrong and corrected backwards
leaves rows stamped in the future. BILBO orders its rows by when they were stored (their ids), never by their
stamps alone, so such a row cannot stay "the latest" (cooldowns, the outage count, the dashboard's "monitor silent"
banner all read the newest stored row); what is left is telling the parent, once per tick in the log, in `--check`
and on the dashboard, that the stamps disagree with the clock.
"""

from __future__ import annotations

from datetime import datetime

# NTP corrections and a camera's own clock move by seconds; two minutes ahead is a clock that jumped.
CLOCK_SLACK_S = 120.0


def clock_skew_s(newest_ts: float | None, now: float) -> float:
    """How far the newest stored row is stamped after `now` (0 when it is not, or within CLOCK_SLACK_S)."""
    if newest_ts is None or newest_ts - now <= CLOCK_SLACK_S:
        return 0.0
    return newest_ts - now


def clock_went_back(newest_ts: float | None, now: float) -> str | None:
    """One line for the log and `--check` when the newest stored row is stamped after `now`, else None."""
    ahead_s = clock_skew_s(newest_ts, now)
    if not ahead_s:
        return None
    stamped = datetime.fromtimestamp(newest_ts).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
    return (
        f"the clock went back: the newest stored tick is stamped {stamped}, {_span(ahead_s)} after now "
        f"({datetime.fromtimestamp(now).strftime('%Y-%m-%d %H:%M')}); check the clock (NTP). BILBO orders ticks by "
        "when they were stored, so alerts and the dashboard keep working"
    )


def _span(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
