"""The face teachers for the generated crib images (train/teacher.py): how the two teachers' boxes are merged, and
that the shipped boxes are exactly what the merge gives from the saved detections (no dlib needed to check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from train import teacher

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BABY = (100.0, 100.0, 300.0, 400.0)  # short side 200: sane faces are 16-120 px wide


def shifted(d, dx, dy, sx, sy):
    """A Haar-convention box made from a dlib box by a known offset and scale."""
    w, h = d[2] - d[0], d[3] - d[1]
    cx, cy = (d[0] + d[2]) / 2 + dx * w, (d[1] + d[3]) / 2 + dy * h
    return (cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2)


def test_the_dlib_to_haar_mapping_recovers_a_known_offset_and_scale():
    dlib = [(150, 150, 200, 200), (120, 300, 180, 360), (200, 120, 240, 160)]
    pairs = [(shifted(d, 0.05, -0.02, 1.15, 1.2), d) for d in dlib]
    assert teacher.box_mapping(pairs) == pytest.approx((0.05, -0.02, 1.15, 1.2))
    assert teacher.as_haar(dlib[0], teacher.box_mapping(pairs)) == pytest.approx(pairs[0][0], abs=0.1)
    assert teacher.box_mapping([]) == (0.0, 0.0, 1.0, 1.0)  # nothing to learn from: dlib's box as it is


def test_a_dlib_detection_is_kept_only_when_confident_inside_the_baby_and_of_a_face_size():
    good, better = (0.9, (150, 150, 200, 200)), (0.95, (160, 160, 210, 210))
    assert teacher.dlib_face([good], BABY) == good[1]
    assert teacher.dlib_face([good, better], BABY) == better[1]  # the most confident
    assert teacher.dlib_face([(teacher.DLIB_MIN_CONF / 2, good[1])], BABY) is None
    assert teacher.dlib_face([(0.9, (20, 150, 70, 200))], BABY) is None  # centre outside the baby box
    assert teacher.dlib_face([(0.9, (150, 150, 160, 160))], BABY) is None  # 10 px: a freckle, not a face
    assert teacher.dlib_face([(0.9, (110, 110, 290, 290))], BABY) is None  # 180 px: the whole baby


def test_merging_keeps_agreeing_boxes_in_haar_convention_and_drops_disagreements():
    d1, d2, d3 = (150, 150, 200, 200), (150, 300, 200, 350), (220, 150, 270, 200)
    h1, h3 = shifted(d1, 0.04, 0.02, 1.15, 1.15), shifted(d3, 0.04, 0.02, 1.15, 1.15)
    h_elsewhere = (120, 320, 160, 360)
    haar = [h1, None, h3, h_elsewhere, (10, 10, 40, 40), None]
    dlib = [d1, d2, d3, d1, None, None]
    faces, marks, mapping = teacher.merge(haar, dlib)
    assert marks == ["HD", "D", "HD", "X", "H", ""]
    assert faces[0] == h1 and faces[2] == h3  # both agree: the Haar box, the convention training already had
    assert faces[1] == pytest.approx(shifted(d2, 0.04, 0.02, 1.15, 1.15), abs=0.1)  # dlib alone, mapped
    assert faces[3] is None  # the teachers disagree: no box rather than a wrong one
    assert faces[4] == (10, 10, 40, 40) and faces[5] is None
    assert mapping == pytest.approx((0.04, 0.02, 1.15, 1.15))


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data beside the checkout")
def test_the_shipped_teacher_boxes_are_what_the_merge_gives_from_the_saved_detections():
    shipped = teacher.load_or_run(DATA)
    again = teacher.teacher_faces(DATA, teacher._saved_dlib())
    assert again == shipped
    kept = [face for entries in shipped.values() for _baby, face in entries if face is not None]
    assert len(kept) > 200  # dlib finds the faces the Haar cascade missed (76 with Haar alone)
