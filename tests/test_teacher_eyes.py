"""Per-eye labels for real infant faces (train/teacher_eyes.py), without the teacher installed: the face-level rule,
the upright eye crop shared by labelling and training, and that the shipped labels file is well formed."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from train import teacher_eyes as te


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("open", "open", "open"),
        ("open", "unsure", "open"),
        ("unsure", "open", "open"),
        ("closed", "closed", "closed"),
        ("unsure", "closed", "closed"),
        ("open", "closed", None),  # mixed (a wink, a blink caught half way): no face-level label
        ("unsure", "unsure", None),
    ],
)
def test_face_label_comes_from_the_eyes_a_person_could_see(left, right, expected):
    assert te.face_eye_label({"left": left, "right": right}) == expected


def test_a_face_without_labels_has_no_face_label():
    assert te.face_eye_label(None) is None
    assert te.face_eye_label({}) is None


def _face(angle_deg: float, size: int = 240) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """A white image with a 'face' turned by angle_deg: black dots for the eyes (infant's right eye on the image's
    left when upright), a red dot for the mouth below them."""
    img = np.full((size, size, 3), 255, np.uint8)
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    centre = size / 2

    def place(x: float, y: float) -> tuple[float, float]:
        return centre + c * x - s * y, centre + s * x + c * y

    pts = {"right": place(-15, 0), "left": place(15, 0), "mouth": place(0, 30)}
    for name, (x, y) in pts.items():
        colour = (0, 0, 255) if name == "mouth" else (0, 0, 0)
        cv2.circle(img, (round(x), round(y)), 4, colour, -1, cv2.LINE_AA)
    return img, pts


def _dark(px: np.ndarray) -> bool:
    return bool(px.max() < 90)


def _red(px: np.ndarray) -> bool:
    return bool(px[2] > 180 and px[0] < 90 and px[1] < 90)


@pytest.mark.parametrize("angle", [0, 35, 130, 200, -70])
def test_upright_eye_crop_turns_a_tilted_face_upright(angle):
    img, pts = _face(angle)
    crop = te.upright_eye_crop(img, pts["right"], pts["left"], 90, eye="right")
    assert crop.shape == (90, 90, 3)
    assert _dark(crop[45, 45])  # the eye is at the centre
    assert _dark(crop[45, 75])  # the other eye level with it, to its right (infant's left eye on the image's right)
    assert _red(crop[75, 60])  # and the mouth below, between them: the face is upright
    assert not _dark(crop[15, 75]) and not _dark(crop[75, 75])

    crop = te.upright_eye_crop(img, pts["left"], pts["right"], 90, eye="left")
    assert _dark(crop[45, 45]) and _dark(crop[45, 15]) and _red(crop[75, 30])


def test_without_the_eye_name_the_crop_takes_the_smallest_turn():
    img, pts = _face(25)
    for eye, other in (("right", "left"), ("left", "right")):
        crop = te.upright_eye_crop(img, pts[eye], pts[other], 90)
        assert _dark(crop[45, 45])
        assert _dark(crop[45, 75]) or _dark(crop[45, 15])
        assert not _dark(crop[15, 45]) and not _dark(crop[75, 45])


def test_crop_side_follows_the_eye_distance_but_not_below_the_face_share():
    assert te.crop_side((0, 0), (20, 0)) == pytest.approx(te.CROP_K * 20)
    assert te.crop_side((0, 0), (2, 0), face_side=100) == pytest.approx(te.FACE_K * 100)


def test_eye_aspect_ratio_of_an_outline():
    """Corners 0 and 8, lower lid 1-7 and upper lid 9-15 facing each other (i, i + 8): an ellipse of height/width h."""
    t = np.linspace(0, math.pi, 9)
    lower = np.stack([-np.cos(t) * 10, np.sin(t) * 3], axis=1)  # corner (-10, 0) .. corner (10, 0), below the line
    upper = np.stack([-np.cos(t[1:8]) * 10, -np.sin(t[1:8]) * 3], axis=1)
    pts = np.concatenate([lower, upper, np.zeros((71 - 16, 2))])
    gaps = [6 * math.sin(t[i]) for i in range(2, 7)]
    assert te.eye_aspect_ratio(pts) == pytest.approx(np.mean(gaps) / 20)


def test_the_shipped_labels_are_well_formed():
    labels = te.load_eye_labels()
    assert labels["about"] and labels["labels"]
    for key, entry in labels["labels"].items():
        assert "#" in key and key.split("/")[0] in ("syrip_real", "baby_photos"), key
        assert set(entry) == {"left", "right"}, key
        assert entry["left"] in te.EYE_STATES and entry["right"] in te.EYE_STATES, key
    assert set(labels["geometry"]) <= set(labels["labels"])
    assert set(labels["teacher"]) <= set(labels["labels"])
    for key, geo in labels["geometry"].items():
        assert len(geo["left"]) == 2 and len(geo["right"]) == 2 and geo["side"] >= te.MIN_SIDE, key
    syrip = [k for k in labels["labels"] if k.startswith("syrip_real/")]
    assert len(syrip) == 452 and all(k.endswith("#0") for k in syrip)
