"""Precision/recall on human-reviewed frames only; correction validation and the effective state."""

from __future__ import annotations

import pytest

from dashboard.labels import LabelError, effective_state, parse_correction
from dashboard.metrics import model_metrics, per_class
from db.store import HumanLabel
from tests.test_dashboard import tick_row


def test_per_class_precision_and_recall_with_unknown_predictions_as_misses():
    pairs = [("open", "open"), ("closed", "open"), ("unknown", "open"), ("closed", "closed")]
    result = per_class(pairs, ("open", "closed"))
    assert result["open"] == {"precision": 1.0, "recall": 1 / 3, "support": 3, "predicted": 1}
    assert result["closed"] == {"precision": 0.5, "recall": 1.0, "support": 1, "predicted": 2}


def test_a_class_with_nothing_to_measure_is_none_not_zero():
    assert per_class([], ("open",))["open"] == {"precision": None, "recall": None, "support": 0, "predicted": 0}


def test_metrics_split_day_and_night_and_ignore_unlabelled_fields():
    day = tick_row(1.0, "a.jpg").__class__(**{**tick_row(1.0, "a.jpg").__dict__, "night": False, "id": 1})
    night = tick_row(2.0, "b.jpg").__class__(**{**tick_row(2.0, "b.jpg").__dict__, "id": 2})
    labelled = [(day, HumanLabel(1, {}, True, 1.0)), (night, HumanLabel(2, {"eyes": "open"}, False, 1.0))]
    m = model_metrics(labelled)
    assert m["reviewed_frames"] == 2
    assert (m["splits"]["day"]["frames"], m["splits"]["night"]["frames"]) == (1, 1)
    assert m["splits"]["day"]["presence"]["present"]["recall"] == 1.0
    assert m["splits"]["night"]["presence"]["present"]["support"] == 0
    assert m["splits"]["night"]["eyes"]["open"]["recall"] == 0.0


def test_human_labels_decide_the_effective_state():
    row = tick_row(1.0, "a.jpg")  # model: present, eyes closed -> asleep
    assert effective_state(row, None) == "asleep"
    assert effective_state(row, HumanLabel(1, {"eyes": "open"}, False, 1.0)) == "awake"
    assert effective_state(row, HumanLabel(1, {"presence": "not_present", "eyes": "open"}, False, 1.0)) == "absent"
    assert effective_state(row, HumanLabel(1, {"eyes": "not_visible"}, False, 1.0)) == "unknown"
    assert effective_state(row, HumanLabel(1, {"face_box": None}, True, 1.0)) == "asleep"


def test_parse_correction_normalises_box_and_author():
    changes, author = parse_correction({"changes": {"face_box": [1, 2.04, 3, 4], "eyes": "closed"}, "author": " dad "})
    assert changes == [("face_box", [1.0, 2.0, 3.0, 4.0]), ("eyes", "closed")] and author == "dad"
    assert parse_correction({"changes": {"face_box": None}}) == ([("face_box", None)], "parent")
    with pytest.raises(LabelError):
        parse_correction({"changes": {"face_box": [True, 2, 3, 4]}})
