"""train/compare_infant.py: weights folders side by side in counts (k / n) from the real-infant evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.compare_infant import COLUMNS, count, main, table
from train.infant_data import BABY, SYRIP

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WEIGHTS = REPO / "models" / "weights"
needs_data = pytest.mark.skipif(not (DATA / "images" / SYRIP / "labels.csv").is_file(), reason="needs ../shared/data")


def _result(version: str, held: float) -> dict:
    return {
        "weights": version,
        "face": {SYRIP: {"hit": {"value": held, "n": 42}}, BABY: {"hit": {"value": 0.8205, "n": 78}}},
        "eyes": {SYRIP: {"end_to_end": {"accuracy": {"value": 0.0, "n": 0}}}},
        "presence": {"background": {"value": 0.2059, "n": 68}},
    }


def test_a_rate_is_shown_as_the_count_it_was_made_of():
    r = _result("v1", 0.7381)  # 31 of 42, rounded to 4 places
    assert count(r, ("face", SYRIP, "hit")) == "31 / 42"
    assert count(r, ("face", BABY, "hit")) == "64 / 78"
    assert count(r, ("presence", "background")) == "14 / 68"


def test_a_score_with_no_items_or_no_section_is_a_dash_not_zero():
    r = _result("v1", 0.7381)
    assert count(r, ("eyes", SYRIP, "end_to_end", "accuracy")) == "–"  # n 0: nothing to count
    assert count(r, ("eyes", BABY, "end_to_end", "accuracy")) == "–"  # no such source
    assert count(r, ("presence", SYRIP)) == "–"


def test_the_table_has_one_row_per_folder_in_the_order_given():
    text = table([("models/weights", _result("shipped", 0.7381)), ("artifacts/seed1", _result("seed1", 0.7143))])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].count("|") == len(COLUMNS) + 2
    assert lines[2].startswith("| models/weights (shipped) | 31 / 42 | 64 / 78 |")
    assert lines[3].startswith("| artifacts/seed1 (seed1) | 30 / 42 |")


@needs_data
def test_the_same_weights_twice_give_the_same_counts_as_the_evaluation(capsys):
    from train.evaluate_infant import evaluate

    assert main(["--split", "val", "--limit", "3", str(WEIGHTS), str(WEIGHTS)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {WEIGHTS} (")]
    assert len(rows) == 2 and rows[0] == rows[1]
    direct = evaluate(DATA, WEIGHTS, "val", limit=3)
    cells = [c.strip() for c in rows[0].strip("|").split("|")][1:]
    assert cells == [count(direct, path) for _, path in COLUMNS]
