"""Backtest the wake alert rule against the frames a human reviewed: how often would each rule have been right?

    python -m train.backtest [--config .env] [--db data/bilbo.sqlite3] [--report FILE]

The tick's own rule (`alerts.rules.wake_alert`: N of the last W classified frames awake, on the rising edge, with
ALERT_COOLDOWN_S) is replayed over the stored history of model states, for every window W 1-5 and every N <= W.
Ground truth is only what a human reviewed or corrected on the dashboard (the presence and eye labels); frames
nobody looked at are not truth and are never scored. Three views, because one number would lie:

- per frame: does "N of the last W awake" hold exactly at the frames a human says are awake? (precision, recall,
  F1), split into colour day and infrared night frames;
- per alert: of the alerts the rule would have sent at a reviewed frame, how many came while the baby was awake;
- per waking: of the wake episodes in the reviewed frames (runs of awake frames, broken by a reviewed frame that is
  not awake or a gap over EPISODE_GAP_S), how many got an alert during them, and how late.

No torch: it reads the database and runs the rule, so it also works in the runtime venv. The cry rule is not
backtested: the dashboard has no cry label yet, so there is no human truth for it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from alerts.rules import wake_alert, wake_condition
from dashboard.labels import human_state
from db.store import HumanLabel, Store, StoreError, TickRow
from settings import DEFAULT_ENV_FILE, cli_settings

MAX_WINDOW = 5
EPISODE_GAP_S = 15 * 60  # two awake reviewed frames further apart than this are two wakings


@dataclass(frozen=True)
class Score:
    """One rule's backtest. Ratios are None where nothing could be judged."""

    window: int
    needed: int
    frame_precision: float | None
    frame_recall: float | None
    frame_f1: float | None
    night_recall: float | None
    day_recall: float | None
    alerts: int  # alerts the rule would have sent over the whole history
    judged_alerts: int  # those sent at a reviewed frame
    alert_precision: float | None  # of the judged alerts, the share sent while the human says awake
    episodes: int
    episode_recall: float | None  # wakings that got an alert during them
    median_delay_s: float | None  # from the waking's first reviewed awake frame to its alert


def replay(history: list[TickRow], window: int, needed: int, cooldown_s: float) -> tuple[list[float], dict[int, bool]]:
    """Run the tick's rule over the history as the tick would have: (alert times, whether the N-of-W condition held
    at each classified tick id). Unchanged ticks are skipped, as the tick skips them."""
    classified: list[TickRow] = []
    fired: list[float] = []
    holds: dict[int, bool] = {}
    for tick in history:
        if tick.unchanged:
            continue
        recent = [*classified[-window:], tick]
        alert = wake_alert(
            recent,
            window=window,
            needed=needed,
            last_alert_ts=fired[-1] if fired else None,
            cooldown_s=cooldown_s,
            photo_path=None,
        )
        if alert is not None:
            fired.append(tick.ts)
        holds[tick.id] = wake_condition(recent, window=window, needed=needed)
        classified.append(tick)
    return fired, holds


def episodes(truth: list[tuple[TickRow, str]]) -> list[tuple[float, float]]:
    """(start, end) of each waking in the reviewed frames, oldest first."""
    found: list[tuple[float, float]] = []
    start = end = None
    for tick, state in truth:
        if state == "awake" and start is not None and tick.ts - end <= EPISODE_GAP_S:
            end = tick.ts
            continue
        if start is not None:
            found.append((start, end))
            start = end = None
        if state == "awake":
            start = end = tick.ts
    if start is not None:
        found.append((start, end))
    return found


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _f1(p: float | None, r: float | None) -> float | None:
    return None if p is None or r is None or p + r == 0 else 2 * p * r / (p + r)


def score(
    history: list[TickRow], truth: list[tuple[TickRow, str]], window: int, needed: int, cooldown_s: float, tick_s: int
) -> Score:
    fired, holds = replay(history, window, needed, cooldown_s)
    judged = [(tick, state) for tick, state in truth if tick.id in holds]
    hit = sum(holds[t.id] and s == "awake" for t, s in judged)
    said = sum(holds[t.id] for t, _ in judged)
    awake = [(t, s) for t, s in judged if s == "awake"]
    precision, recall = _ratio(hit, said), _ratio(hit, len(awake))
    by_ts = {tick.ts: state for tick, state in truth}
    at_reviewed = [by_ts[ts] for ts in fired if ts in by_ts]
    wakings = episodes(truth)
    delays = []
    for start, end in wakings:
        during = [ts for ts in fired if start <= ts <= end + tick_s]
        if during:
            delays.append(during[0] - start)
    return Score(
        window=window,
        needed=needed,
        frame_precision=precision,
        frame_recall=recall,
        frame_f1=_f1(precision, recall),
        night_recall=_ratio(sum(holds[t.id] for t, _ in awake if t.night), sum(t.night for t, _ in awake)),
        day_recall=_ratio(sum(holds[t.id] for t, _ in awake if not t.night), sum(not t.night for t, _ in awake)),
        alerts=len(fired),
        judged_alerts=len(at_reviewed),
        alert_precision=_ratio(sum(s == "awake" for s in at_reviewed), len(at_reviewed)),
        episodes=len(wakings),
        episode_recall=_ratio(len(delays), len(wakings)),
        median_delay_s=statistics.median(delays) if delays else None,
    )


def human_truth(labelled: list[tuple[TickRow, HumanLabel]]) -> list[tuple[TickRow, str]]:
    """The reviewed frames (`store.labelled_ticks()`) whose state a human backs, oldest first."""
    return [(t, s) for t, label in labelled if (s := human_state(label.truth(t))) is not None]


def backtest(store: Store, cooldown_s: float, tick_s: int) -> tuple[list[Score], int]:
    """Every rule W 1..MAX_WINDOW, N 1..W over the whole history; also returns how many reviewed frames judged it."""
    history = store.ticks_between(float("-inf"), float("inf"))
    truth = human_truth(store.labelled_ticks())
    scores = [
        score(history, truth, window, needed, cooldown_s, tick_s)
        for window in range(1, MAX_WINDOW + 1)
        for needed in range(1, window + 1)
    ]
    return scores, len(truth)


def shipped_rule(
    store: Store, labelled: list[tuple[TickRow, HumanLabel]], window: int, needed: int, cooldown_s: float, tick_s: int
) -> Score | None:
    """The configured rule only, replayed over the nights around the reviewed frames (`labelled`, from a day before
    the first to an hour after the last): what the dashboard shows. None without reviewed frames."""
    truth = human_truth(labelled)
    if not truth:
        return None
    history = store.ticks_between(truth[0][0].ts - 86400, truth[-1][0].ts + 3600)
    return score(history, truth, window, needed, cooldown_s, tick_s)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def report(scores: list[Score], reviewed: int, shipped: tuple[int, int], cooldown_s: float) -> str:
    lines = [
        "# Wake rule backtest (human-reviewed frames only)",
        "",
        f"{reviewed} reviewed frames with an eye or presence label; cooldown {cooldown_s:g} s; shipped rule "
        f"{shipped[1]} of {shipped[0]} (WAKE_NEEDED of WAKE_WINDOW). '–': nothing to judge.",
        "",
        "| rule | frame P | frame R | frame F1 | R day | R night | alerts | judged | alert P | wakings | caught "
        "| median delay |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        name = f"{s.needed} of {s.window}" + (" (shipped)" if (s.window, s.needed) == shipped else "")
        delay = "–" if s.median_delay_s is None else f"{s.median_delay_s / 60:.0f} min"
        lines.append(
            f"| {name} | {_pct(s.frame_precision)} | {_pct(s.frame_recall)} | {_pct(s.frame_f1)} | "
            f"{_pct(s.day_recall)} | {_pct(s.night_recall)} | {s.alerts} | {s.judged_alerts} | "
            f"{_pct(s.alert_precision)} | {s.episodes} | {_pct(s.episode_recall)} | {delay} |"
        )
    ranked = [s for s in scores if s.frame_f1 is not None]
    if ranked:
        best = max(ranked, key=lambda s: (s.frame_f1, s.episode_recall or 0.0, -s.window))
        lines += ["", f"Best frame F1: {best.needed} of {best.window} ({_pct(best.frame_f1)})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_ENV_FILE, help="settings file (default: .env)")
    parser.add_argument("--db", type=Path, help="database (default: DATA_DIR/bilbo.sqlite3)")
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if (settings := cli_settings("bilbo", args.config)) is None:
        return 2
    db_path = args.db or settings.db_path
    if not db_path.is_file():
        print(f"bilbo: no database at {db_path}: run the monitor first", file=sys.stderr)
        return 1
    try:
        with Store.open(db_path) as store:
            scores, reviewed = backtest(store, settings.alert_cooldown_s, settings.tick_interval_s)
    except StoreError as exc:
        print(f"bilbo: {exc}", file=sys.stderr)
        return 1
    if reviewed == 0:
        print("No reviewed frames yet: review or correct some on the dashboard, then run this again.")
        return 0
    text = report(scores, reviewed, (settings.wake_window, settings.wake_needed), settings.alert_cooldown_s)
    print(text, end="")
    if args.report:
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
