"""The infant face teacher (train/teacher_infant.py) without the teacher installed: the anchors, mapping detections
from a rotated image back, syrip_real's face-box convention, and that the person check's rejections are dropped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from train import teacher_infant as ti

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SYRIP = DATA / "images" / "syrip_real" / "labels.csv"


def test_the_back_model_has_896_anchors_on_its_feature_maps():
    a = ti.anchors()
    assert a.shape == (896, 2)
    assert a[0] == pytest.approx((0.5 / 16, 0.5 / 16))  # 16x16 map, 2 anchors a cell
    assert a[512] == pytest.approx((0.5 / 8, 0.5 / 8))  # then 8x8, 6 anchors a cell (3 layers of stride 32)


@pytest.mark.parametrize("rotation", ti.ROTATIONS)
def test_a_point_found_in_a_rotated_image_maps_back_to_where_it_was(rotation):
    w, h, x, y = 40, 30, 7, 21
    img = np.zeros((h, w), np.uint8)
    img[y, x] = 255
    turned = img if rotation == 0 else cv2.rotate(img, ti._CV_ROTATE[rotation])
    ry, rx = np.argwhere(turned == 255)[0]
    back = ti.unrotate(np.array([rx + 0.5, ry + 0.5]), rotation, w, h)
    assert back == pytest.approx((x + 0.5, y + 0.5))


def test_the_syrip_box_is_a_square_below_the_points_mean():
    pts = [(10, 10), (20, 10), (30, 10), (10, 30), (30, 30)]  # spread 20 -> side 30, centre (20, 18 + 3)
    assert ti.syrip_box(pts) == pytest.approx((5.0, 6.0, 35.0, 36.0))


@pytest.mark.skipif(not SYRIP.is_file(), reason="needs ../shared/data beside the checkout")
def test_the_syrip_box_reproduces_syrip_reals_face_boxes_from_their_keypoints():
    with open(SYRIP) as f:
        rows = [r for r in csv.DictReader(f) if r["face_x1"]]
    assert len(rows) > 400
    for r in rows:
        box = ti.syrip_box([(float(r[f"{n}_x"]), float(r[f"{n}_y"])) for n in ti.FACE_POINTS])
        assert box == pytest.approx([float(r[k]) for k in ("face_x1", "face_y1", "face_x2", "face_y2")], abs=0.2)


def _det(x: float, score: float) -> dict:
    kp = {
        "right_eye": [x, 10],
        "left_eye": [x + 10, 10],
        "nose": [x + 5, 15],
        "mouth": [x + 5, 20],
        "right_ear": [x - 5, 12],
        "left_ear": [x + 15, 12],
    }
    return {"box": [x - 5, 5, x + 15, 25], "score": score, "keypoints": kp, "rotation": 0}


def test_checked_faces_keeps_confident_detections_and_drops_the_rejected(tmp_path, monkeypatch):
    folder = tmp_path / "images" / "baby_photos"
    folder.mkdir(parents=True)
    (folder / "labels.csv").write_text(
        "path,group,width,height,classes\na.jpg,a,64,64,safe\nb.jpg,b,64,64,safe\n"
        "c.jpg,c,64,64,safe\nd.jpg,d,64,64,safe\n"
    )
    saved = tmp_path / "teacher_infant.json"
    dets = {
        "baby_photos/a.jpg": [_det(20, 0.95), _det(40, 0.9)],
        "baby_photos/b.jpg": [_det(20, 0.9)],
        "baby_photos/c.jpg": [_det(20, ti.ACCEPT_SCORE - 0.01)],
        "baby_photos/d.jpg": [],
        "syrip_real/x.jpg": [_det(20, 0.99)],
    }
    saved.write_text(json.dumps({"model": "test", "detections": dets}))
    monkeypatch.setattr(ti, "REJECTED", {"baby_photos/a.jpg#1": "a hand", "baby_photos/b.jpg": "a toy"})
    faces = ti.checked_faces(tmp_path, saved)
    assert set(faces) == {f"baby_photos/{n}.jpg" for n in "abcd"}  # baby_photos only, every photo
    assert [f["score"] for f in faces["baby_photos/a.jpg"]] == [0.95]
    assert faces["baby_photos/b.jpg"] == faces["baby_photos/c.jpg"] == faces["baby_photos/d.jpg"] == []
    face = faces["baby_photos/a.jpg"][0]
    assert face["eyes"] == {"left": [30, 10], "right": [20, 10]} and face["nose"] == [25, 15]
    assert face["box"] == pytest.approx(ti.syrip_box([[25, 15], [30, 10], [20, 10], [35, 12], [15, 12]]), abs=0.05)


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data beside the checkout")
def test_the_saved_detections_cover_every_image_and_every_rejection_names_a_kept_detection():
    dets = ti.load_detections()["detections"]
    for folder in ti.FOLDERS:
        with open(DATA / "images" / folder / "labels.csv") as f:
            assert {f"{folder}/{r['path']}" for r in csv.DictReader(f)} <= set(dets)
    for key in ti.REJECTED:
        path, _, i = key.partition("#")
        assert dets[path][int(i or 0)]["score"] >= ti.ACCEPT_SCORE, key
