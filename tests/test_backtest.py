"""`python -m train.backtest`: the tick's own wake rule replayed over a real SQLite history, scored only against
what a human labelled. A night of 12 frames, every one reviewed, worked out by hand below."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

from db.store import Store
from tests.test_dashboard import tick_row
from tests.tick_runner import REPO
from train.backtest import backtest

T0, STEP = 1_795_226_400.0, 240.0  # 02:00, a tick every 4 minutes
MODEL = [{"a": "awake", "s": "asleep"}[c] for c in "ssaaassassaa"]  # frames 0-11: what the model said
HUMAN = [{"o": "open", "c": "closed"}[c] for c in "ccooocccccoo"]  # and what a human says of the eyes
# The model blinked at frame 7 (awake, a human says closed); the baby woke twice: frames 2-4 and 10-11.


def night(db_path, human=HUMAN) -> None:
    with Store.open(db_path) as store:
        for i, (state, eyes) in enumerate(zip(MODEL, human, strict=True)):
            row = replace(tick_row(T0 + i * STEP, f"frames/{i}.jpg", state), night=i < 6)
            tick_id = store.insert_tick(row)
            if eyes == "closed" and state == "asleep":
                store.add_corrections(tick_id, [("reviewed", True)], "mum", now=T0 + 9999)  # the model was right
            elif eyes:
                store.add_corrections(tick_id, [("eyes", eyes)], "mum", now=T0 + 9999)


def by_rule(scores):
    return {(s.window, s.needed): s for s in scores}


def test_the_shipped_rule_and_a_one_frame_rule_are_scored_as_worked_out_by_hand(tmp_path):
    night(tmp_path / "b.sqlite3")
    with Store.open(tmp_path / "b.sqlite3") as store:
        scores, reviewed = backtest(store, cooldown_s=300, tick_s=240)
    assert reviewed == 12
    rules = by_rule(scores)
    assert len(rules) == 15  # W 1..5, N 1..W

    one = rules[(1, 1)]  # fires on frames 2, 7 and 10; holds at 2, 3, 4, 7, 10, 11
    assert (one.alerts, one.judged_alerts, one.alert_precision) == (3, 3, 2 / 3)
    assert (one.frame_precision, one.frame_recall) == (5 / 6, 5 / 5)
    assert (one.episodes, one.episode_recall, one.median_delay_s) == (2, 1.0, 0.0)

    shipped = rules[(3, 2)]  # holds at 3, 4, 5 (2 of 3) and 11; fires at 3 and 11: the blink at 7 is ignored
    assert (shipped.alerts, shipped.alert_precision) == (2, 1.0)
    assert (shipped.frame_precision, shipped.frame_recall) == (3 / 4, 3 / 5)  # frame 5 is asleep, 2 and 10 missed
    assert (shipped.episode_recall, shipped.median_delay_s) == (1.0, STEP)  # each waking, one tick late
    assert (shipped.night_recall, shipped.day_recall) == (2 / 3, 1 / 2)  # frames 0-5 are infrared


def test_frames_nobody_labelled_are_not_truth(tmp_path):
    unlabelled = [None if i in (2, 3) else eyes for i, eyes in enumerate(HUMAN)]
    night(tmp_path / "b.sqlite3", human=unlabelled)
    with Store.open(tmp_path / "b.sqlite3") as store:
        scores, reviewed = backtest(store, cooldown_s=300, tick_s=240)
    assert reviewed == 10
    one = by_rule(scores)[(1, 1)]
    assert one.frame_recall == 3 / 3 and one.judged_alerts == 2  # the alert at frame 2 has no human to judge it


def test_the_command_prints_the_table_and_says_when_there_is_nothing_to_judge(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}
    env.update(BILBO_DATA_DIR=str(tmp_path), BILBO_ALERT_COOLDOWN_S="300")
    command = [sys.executable, "-m", "train.backtest", "--config", str(tmp_path / "no.env")]
    with Store.open(tmp_path / "bilbo.sqlite3") as store:
        store.insert_tick(tick_row(T0, "frames/0.jpg"))
    empty = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert empty.returncode == 0 and "No reviewed frames yet" in empty.stdout

    (tmp_path / "bilbo.sqlite3").unlink()
    night(tmp_path / "bilbo.sqlite3")
    done = subprocess.run([*command, "--report", str(tmp_path / "bt.md")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| 2 of 3 (shipped) | 75% | 60% | 67% | 50% | 67% | 2 | 2 | 100% | 2 | 100% | 4 min |" in done.stdout
    assert (tmp_path / "bt.md").read_text() == done.stdout
    assert "torch" not in done.stderr


def test_the_dashboard_shows_the_shipped_rule_on_the_reviewed_nights(tmp_path):
    from playwright.sync_api import expect

    from tests.test_dashboard import call, dashboard_settings, serving
    from tests.test_dashboard_browser import dashboard_page

    settings = dashboard_settings(tmp_path, alert_cooldown_s=300)
    night(settings.db_path)
    with serving(settings) as base:
        wake = call("GET", base + "/api/metrics")[1]["wake_rule"]
    assert (wake["window"], wake["needed"], wake["alerts"], wake["alert_precision"]) == (3, 2, 2, 1.0)
    assert (wake["episodes"], wake["episode_recall"], wake["median_delay_s"]) == (2, 1.0, STEP)
    with dashboard_page(settings) as page:
        page.get_by_role("button", name="Model metrics").click()
        expect(page.locator("#metrics")).to_contain_text("Wake alerts (2 of the last 3 frames awake)")
        expect(page.locator("#metrics")).to_contain_text(
            "2 of its 2 alerts came at a frame you reviewed: 100% while the baby was awake. "
            "Wakings in your labels: 2, alerted: 100%, a median 4 min after the first awake frame."
        )
