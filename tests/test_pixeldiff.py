"""Pixel diff and night detection on the sample camera's frames."""

from datetime import datetime

import cv2
import numpy as np

from capture.night import is_infrared
from capture.pixeldiff import crop_to, diff_score
from capture.sample_camera import BASSINET_CROP, frame_at


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def test_still_sleeping_baby_scores_below_the_default_threshold():
    a = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 3, 0))[0])
    b = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 3, 4))[0])
    assert diff_score(a, b, BASSINET_CROP) < 2.0


def test_eyes_opening_scores_well_above_the_threshold():
    closed = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 1, 56))[0])
    opened = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 2, 0))[0])
    assert diff_score(closed, opened, BASSINET_CROP) > 4.0


def test_a_small_local_change_is_not_averaged_away():
    base = np.full((360, 640, 3), 120, np.uint8)
    changed = base.copy()
    changed[100:110, 200:216] = 250  # an eye-sized patch: 160 of 230,400 pixels
    assert diff_score(base, base, None) == 0.0
    assert diff_score(base, changed, None) > 4.0
    assert diff_score(base, changed, (0, 0, 150, 360)) == 0.0  # outside the crop does not count


def test_resolution_change_counts_as_changed():
    assert diff_score(np.zeros((360, 640, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8), None) == 255.0


def test_crop_is_clipped_to_the_image():
    image = np.zeros((100, 200, 3), np.uint8)
    assert crop_to(image, (150, 50, 400, 300)).shape == (50, 50, 3)


def test_infrared_night_frames_are_detected_after_jpeg():
    night = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 3, 0))[0])
    day = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 19, 45))[0])
    empty_day = jpeg_round_trip(frame_at(datetime(2026, 1, 1, 12, 0))[0])
    assert is_infrared(night)
    assert not is_infrared(day)
    assert not is_infrared(empty_day)
