"""Real infant data and the face stage's geometry: group splits, background crops, the face metric, the letterbox,
the decoded face in frame pixels, and eyes cut upright at any angle."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models import preprocess as pp
from train import infant_data as idata

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "images" / "syrip_real").is_dir(), reason="needs ../shared/data")


@needs_data
def test_a_video_group_lies_in_one_split_only_and_a_sixth_or_so_is_held_out():
    rows = idata.syrip_rows(DATA)
    split = idata.split_of(rows)
    seen: dict[str, set] = {}
    for r in rows:
        seen.setdefault(r["group"], set()).add(split[r["key"]])
    assert all(len(s) == 1 for s in seen.values())
    groups = [next(iter(s)) for s in seen.values()]
    assert 0.1 < groups.count("test") / len(groups) < 0.2 and 0.1 < groups.count("val") / len(groups) < 0.2


@needs_data
def test_background_crops_never_touch_the_baby():
    rows = idata.syrip_rows(DATA)
    rng = np.random.default_rng(0)
    n = 0
    for r in rows[:120]:
        body = idata.body_box(r)
        for c in idata.background_crops(r, 3, rng):
            n += 1
            assert c[2] <= body[0] or c[0] >= body[2] or c[3] <= body[1] or c[1] >= body[3]
            assert 0 <= c[0] < c[2] <= int(r["width"]) and 0 <= c[1] < c[3] <= int(r["height"])
    assert n > 100


def test_a_face_box_holds_the_face_only_with_both_eyes_and_the_nose_and_at_most_twice_its_area():
    face = idata.FaceTruth((100, 100, 200, 200), (170, 140), (130, 140), (150, 160))
    assert face.holds_face((100, 100, 200, 200))
    assert face.holds_face((120, 125, 180, 175))  # tight, but all three points inside
    assert not face.holds_face((135, 125, 180, 175))  # the right eye (x 130) left outside
    assert not face.holds_face((50, 50, 250, 250))  # four times the area
    assert face.holds_face((80, 80, 220, 220))  # 1.96 times
    assert not face.holds_face(None)


def test_the_letterbox_keeps_the_aspect_and_maps_points_both_ways():
    frame = np.zeros((300, 500, 3), np.uint8)
    cv2.circle(frame, (250, 100), 10, (255, 255, 255), -1)
    x, lb = pp.letterbox(frame, (100, 50, 400, 200), pp.FACE_SIZE)
    assert x.shape == (pp.FACE_SIZE, pp.FACE_SIZE, 3)
    ix, iy = lb.to_input(250, 100)
    assert x[int(iy), int(ix)].min() > 200  # the dot is where the mapping says
    assert x[2, pp.FACE_SIZE // 2].max() == x[2, pp.FACE_SIZE // 2].min() == pp.FACE_PAD  # grey band above
    assert np.allclose(lb.to_frame(ix, iy), (250, 100))


def test_a_decoded_face_comes_back_in_frame_pixels():
    crop = (40, 60, 340, 260)
    _x, lb = pp.letterbox(np.zeros((400, 400, 3), np.uint8), crop, pp.FACE_SIZE)
    cx, cy = lb.to_input(190, 150)
    target = np.array([1, cx, cy, 30 * lb.scale, 30 * lb.scale, *lb.to_input(200, 145), *lb.to_input(180, 145), 1])
    box, (left, right) = pp.face_in_frame(target, lb)
    assert np.allclose(box, (175, 135, 205, 165)) and np.allclose(left, (200, 145)) and np.allclose(right, (180, 145))


@pytest.mark.parametrize("angle", [0, 45, 90, 160, -100])
def test_eyes_are_cut_upright_whichever_way_the_baby_lies(angle):
    """A drawn 'eye' (dark pupil, a bright lid line above it) turned with the face comes out with the lid on top."""
    size = 400
    img = np.full((size, size), 150, np.uint8)
    centre = np.array([200.0, 200.0])
    t = np.radians(angle)
    along, up = np.array([np.cos(t), np.sin(t)]), np.array([np.sin(t), -np.cos(t)])  # image y points down
    right_eye, left_eye = centre - 40 * along, centre + 40 * along
    for eye in (right_eye, left_eye):
        cv2.circle(img, tuple(int(v) for v in eye), 7, 20, -1)
        lid = eye + 12 * up
        cv2.line(img, tuple(int(v) for v in lid - 10 * along), tuple(int(v) for v in lid + 10 * along), 255, 3)
    face = (120.0, 120.0, 280.0, 280.0)
    for crop in pp.eye_pair(img, face, (tuple(left_eye), tuple(right_eye))):
        g = crop[:, :, 0].astype(float)
        mid = pp.EYE_SIZE // 2
        assert g[mid - 3 : mid + 3, mid - 3 : mid + 3].mean() < 60  # the pupil in the middle
        above, below = g[: mid - 8].max(), g[mid + 8 :].max()
        assert above > 200 and above > below + 40  # the lid above it, never below
