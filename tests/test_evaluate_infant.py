"""The real-infant evaluation (train/evaluate_infant.py): its scores on hand-made cases, the peers' picks, and a
small run on the real val photos with the shipped weights and stand-in teacher files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from train.infant_data import BABY, SYRIP, FaceTruth, baby_rows, split_of, syrip_face, syrip_rows
from train.infant_metrics import eye_points_hit, eye_summary, face_score, iris_verdict, macro_f1, peer_pick, rate
from train.intervals import wilson

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WEIGHTS = REPO / "models" / "weights"
# A 10 x 10 face: eyes at (3, 4) (the infant's left) and (7, 4), nose at (5, 6).
FACE = FaceTruth((0.0, 0.0, 10.0, 10.0), (3.0, 4.0), (7.0, 4.0), (5.0, 6.0))
needs_data = pytest.mark.skipif(not (DATA / "images" / SYRIP / "labels.csv").is_file(), reason="needs ../shared/data")


def test_face_is_held_only_by_a_box_around_both_eyes_and_nose_at_most_twice_its_size():
    assert face_score([FACE], (0, 0, 10, 10)) == (True, pytest.approx(1.0))
    assert face_score([FACE], (0, 0, 6, 10)) == (False, pytest.approx(0.6))  # the eye at x=7 is outside
    assert face_score([FACE], (-5, -5, 15, 15)) == (False, pytest.approx(0.25))  # 4x the face's area
    assert face_score([FACE], (-2, -2, 12, 12)) == (True, pytest.approx(100 / 196))  # 1.96x: still held
    assert face_score([FACE], None) == (False, 0.0)
    assert face_score([], (0, 0, 10, 10)) == (False, 0.0)


def test_a_face_is_binned_by_its_size_in_the_face_stages_input():
    from models import preprocess as pp
    from train.infant_metrics import face_side_in_input, size_bin

    crop = (0, 0, 400, 200)  # the letterbox scales the longer side (400) to FACE_SIZE
    big = FaceTruth((0.0, 0.0, 100.0, 80.0), None, None, None)
    assert face_side_in_input([FACE], crop) == pytest.approx(10 / 400 * pp.FACE_SIZE)
    assert face_side_in_input([FACE, big], crop) == pytest.approx(100 / 400 * pp.FACE_SIZE)  # the largest face
    assert [size_bin(v) for v in (0.0, 29.9, 30.0, 44.9, 45.0, 500.0)] == [
        "under 30 px",
        "under 30 px",
        "30-45 px",
        "30-45 px",
        "45 px and over",
        "45 px and over",
    ]


def test_a_photo_with_two_faces_is_held_when_either_face_is_and_scores_its_best_iou():
    other = FaceTruth((20.0, 0.0, 30.0, 10.0), (23.0, 4.0), (27.0, 4.0), (25.0, 6.0))
    hit, iou = face_score([FACE, other], (20, 0, 30, 10))
    assert hit and iou == pytest.approx(1.0)


def test_eye_verdicts_give_known_macro_f1_coverage_and_accuracy():
    truth = ["open", "open", "open", "closed", "closed", "closed"]
    said = ["open", "open", "unknown", "closed", "open", None]
    s = eye_summary(said, truth, [str(i) for i in range(6)], by_group=False)
    # on the 4 verdicts: open P 2/3 R 1 -> F1 0.8; closed P 1 R 1/2 -> F1 2/3; macro 0.7333
    assert s["macro_f1"]["value"] == pytest.approx(0.7333, abs=1e-4) and s["macro_f1"]["n"] == 4
    assert s["coverage"]["value"] == pytest.approx(4 / 6, abs=1e-4)
    assert s["accuracy"]["value"] == pytest.approx(0.5)  # 3 right of 6: no verdict counts as wrong
    assert s["coverage"]["interval"] == pytest.approx(list(wilson(4, 6)), abs=1e-4)
    assert s["confusion"]["closed"] == {"open": 1, "closed": 1, "unknown": 0, "no face": 1}
    lo, hi = s["macro_f1"]["interval"]
    assert 0.0 <= lo <= 0.7333 <= hi <= 1.0


def test_macro_f1_averages_only_the_classes_the_truth_holds():
    assert macro_f1(["open", "closed"], ["open", "open"]) == pytest.approx(2 / 3)  # open: P 1, R 1/2
    assert macro_f1([], []) is None


def test_rate_bootstraps_whole_groups_or_uses_wilson():
    hits, groups = [True, True, False, True], ["a", "a", "b", "c"]
    assert rate(hits, groups, by_group=False)["interval"] == pytest.approx(list(wilson(3, 4)), abs=1e-4)
    one_group = rate(hits, ["v"] * 4, by_group=True)  # one video says only what it says
    assert one_group["value"] == 0.75 and one_group["interval"] == [0.75, 0.75] and one_group["groups"] == 1
    assert rate([], [], by_group=True)["value"] is None


def test_peer_pick_takes_the_most_confident_detection_whose_centre_is_inside_the_crop():
    outside = {"box": [200, 200, 220, 220], "score": 0.99}
    inside_best = {"box": [10, 10, 30, 30], "score": 0.8}
    inside_weak = {"box": [40, 40, 60, 60], "score": 0.6}
    straddling = {"box": [90, 90, 130, 130], "score": 0.95}  # centre (110, 110) is outside the crop
    assert peer_pick([outside, inside_weak, inside_best, straddling], (0, 0, 100, 100)) is inside_best
    assert peer_pick([outside], (0, 0, 100, 100)) is None
    assert peer_pick([], (0, 0, 100, 100)) is None


def test_iris_peer_says_open_when_the_wider_eye_is_above_the_threshold():
    assert iris_verdict({"left_ear": 0.30, "right_ear": 0.10}, 0.23) == "open"
    assert iris_verdict({"left_ear": 0.20, "right_ear": None}, 0.23) == "closed"
    assert iris_verdict({"left_ear": 0.23, "right_ear": 0.23}, 0.23) == "closed"  # open only above it
    assert iris_verdict({"left_ear": None, "right_ear": None}, 0.23) is None
    assert iris_verdict(None, 0.23) is None


def test_eye_points_must_each_land_near_their_own_eye():
    assert eye_points_hit(FACE, ((3.5, 4.0), (7.0, 4.5)))  # within 0.25 x 4 px of each
    assert not eye_points_hit(FACE, ((7.0, 4.0), (3.0, 4.0)))  # swapped: the face would be turned upside down
    assert not eye_points_hit(FACE, ((3.0, 6.0), (7.0, 4.0)))
    assert not eye_points_hit(FACE, None)


def test_an_eye_verdict_counts_for_the_face_its_box_is_on():
    from train.evaluate_infant import EyeFace, Photo, end_to_end

    other = FaceTruth((20.0, 0.0, 30.0, 10.0), (23.0, 4.0), (27.0, 4.0), (25.0, 6.0))
    photo = Photo("baby_photos/x.jpg", BABY, "x", (0, 0, 40, 20), [FACE, other])
    answer = {"face_box": [19.0, 0.0, 31.0, 10.0], "eyes_label": "open"}
    assert end_to_end(answer, EyeFace("baby_photos/x.jpg#1", photo, 1, "open")) == "open"
    assert end_to_end(answer, EyeFace("baby_photos/x.jpg#0", photo, 0, "closed")) is None  # not that baby's verdict
    assert end_to_end({"face_box": None, "eyes_label": None}, EyeFace("baby_photos/x.jpg#1", photo, 1, "open")) is None


def test_an_eye_label_is_left_out_when_its_face_index_points_at_another_face():
    from train.evaluate_infant import Photo, eye_faces_of

    photo = Photo("baby_photos/x.jpg", BABY, "x", (0, 0, 40, 20), [FACE])
    labels = {"baby_photos/x.jpg#0": "open", "baby_photos/x.jpg#1": "closed", "baby_photos/y.jpg#0": "open"}
    kept, left_out = eye_faces_of([photo], labels, {"baby_photos/x.jpg#0": {"left": [3.5, 4], "right": [7, 4]}})
    assert [f.face_id for f in kept] == ["baby_photos/x.jpg#0"] and left_out == 1  # #1: no such face; y: other split
    kept, left_out = eye_faces_of([photo], labels, {"baby_photos/x.jpg#0": {"left": [23, 4], "right": [27, 4]}})
    assert kept == [] and left_out == 2  # the label was decided on another face's eyes


def test_the_eye_stage_alone_is_cut_at_the_true_eye_centres_when_the_cascade_takes_them():
    """Also while the tick cuts by the box (EYE_CUT "box"): "the eye stage on the true eye points" must be that."""
    from train.evaluate_infant import eyes_on_truth

    class WithPoints:
        def eyes(self, frame, face_box, eye_points=None, cut=None):
            right = eye_points == ((3.0, 4.0), (7.0, 4.0)) and cut == "points"
            return ("open", 0.9) if right else ("closed", 0.9)

    class BoxOnly:
        def eyes(self, frame, face_box):
            return ("closed", 0.8) if face_box == FACE.box else ("open", 0.8)

    assert eyes_on_truth(WithPoints(), None, FACE) == ("open", 0.9, "true eye points")  # infant's left, then right
    assert eyes_on_truth(BoxOnly(), None, FACE) == ("closed", 0.8, "true face box")


def test_presence_on_babies_with_darker_skin_is_scored_apart_from_the_average():
    from train.evaluate_infant import Photo, score

    photos = [Photo(f"{BABY}/{k}.jpg", BABY, k, (0, 0, 10, 10), [FACE] if k in "bc" else []) for k in "abcd"]
    present = {"a": True, "b": False, "c": True, "d": True}
    box = {"a": None, "b": None, "c": (0.0, 0.0, 10.0, 10.0), "d": None}  # b: not present, so no box
    run = {
        "photo": {p.key: {"present": present[p.group], "face_box": box[p.group], "eye_points": None} for p in photos},
        "background": {},
        "given": {},
    }
    darker = frozenset({f"{BABY}/b.jpg", f"{BABY}/c.jpg", "syrip_real/not_in_this_split.jpg"})
    res = score(run, photos, [], darker)
    assert res["presence"][BABY]["value"] == 0.75 and res["presence"][BABY]["n"] == 4
    assert res["presence"]["darker_skin"]["value"] == 0.5 and res["presence"]["darker_skin"]["n"] == 2
    assert res["face"]["darker_skin"]["hit"]["value"] == 0.5 and res["face"]["darker_skin"]["hit"]["n"] == 2
    plain = score(run, photos, [])  # no list, no row (never a rate of nothing)
    assert "darker_skin" not in plain["presence"] and "darker_skin" not in plain["face"]


def test_the_darker_skin_list_names_real_photos_of_every_split():
    from train.evaluate_infant import DARKER_SKIN, darker_skinned

    keys = darker_skinned()
    assert keys and all(k.startswith((f"{SYRIP}/", f"{BABY}/")) and k.endswith(".jpg") for k in keys)
    assert "how" in json.loads(DARKER_SKIN.read_text())
    if (DATA / "images" / SYRIP / "labels.csv").is_file():
        assert all((DATA / "images" / k).is_file() for k in keys)
        split = {**split_of(syrip_rows(DATA)), **split_of(baby_rows(DATA))}
        assert {split[k] for k in keys} == {"train", "val", "test"}


def test_the_evaluation_imports_no_torch():
    code = (
        "import sys; import train.evaluate_infant, train.infant_report; "
        "sys.exit(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0


# ---- a small run on the real val photos --------------------------------------------------------------------------
def _stand_in_teachers(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """BlazeFace 'detections' that are exactly the syrip truths (a perfect peer) plus one face on each of the first
    baby_photos, and eye labels with iris EARs for the first syrip faces (the first two open / closed, the third
    mixed, so not a face-level label)."""
    syrip = sorted(
        (r for r in syrip_rows(DATA) if split_of(syrip_rows(DATA))[r["key"]] == "val"), key=lambda r: r["key"]
    )
    babies = sorted(
        (r for r in baby_rows(DATA) if split_of(baby_rows(DATA))[r["key"]] == "val"), key=lambda r: r["key"]
    )
    dets: dict[str, list[dict]] = {}
    for r in syrip[:3]:
        t = syrip_face(r)
        kps = {"left_eye": t.left_eye, "right_eye": t.right_eye, "nose": t.nose, "mouth": t.nose}
        dets[r["key"]] = [
            {"box": list(t.box), "score": 0.9, "keypoints": {**kps, "left_ear": t.left_eye, "right_ear": t.right_eye}}
        ]
    for r in babies[:3]:
        w, h = int(r["width"]), int(r["height"])
        pts = {
            "right_eye": [0.4 * w, 0.4 * h],
            "left_eye": [0.6 * w, 0.4 * h],
            "nose": [0.5 * w, 0.5 * h],
            "mouth": [0.5 * w, 0.6 * h],
            "right_ear": [0.3 * w, 0.45 * h],
            "left_ear": [0.7 * w, 0.45 * h],
        }
        dets[r["key"]] = [{"box": [0.3 * w, 0.3 * h, 0.7 * w, 0.7 * h], "score": 0.9, "keypoints": pts}]
    faces = tmp_path / "teacher_infant.json"
    faces.write_text(json.dumps({"detections": dets}))
    keys = [f"{r['key']}#0" for r in syrip[:3]]
    labels = {
        keys[0]: {"left": "open", "right": "unsure"},
        keys[1]: {"left": "closed", "right": "closed"},
        keys[2]: {"left": "open", "right": "closed"},
    }
    ears = {keys[0]: {"left_ear": 0.31, "right_ear": None}, keys[1]: {"left_ear": 0.1, "right_ear": 0.12}}
    eyes = tmp_path / "infant_eyes.json"
    eyes.write_text(json.dumps({"labels": labels, "teacher": ears, "geometry": {}}))
    return faces, eyes, keys


@needs_data
def test_a_small_val_run_scores_every_section_and_writes_the_report(tmp_path):
    from train.evaluate_infant import evaluate
    from train.infant_report import write_report

    faces, eyes, _keys = _stand_in_teachers(tmp_path)
    result = evaluate(DATA, WEIGHTS, "val", limit=3, teacher_faces=faces, teacher_eyes=eyes)
    assert result["split"] == "val" and result["missing"] == []
    assert result["counts"][SYRIP]["photos"] == 3 and result["counts"][BABY]["photos"] == 3
    assert result["counts"][SYRIP]["eye_labelled_faces"] == 2  # the mixed face has no face-level label
    assert {SYRIP, BABY, "background"} <= set(result["presence"])
    assert result["face"][SYRIP]["hit"]["n"] == 3 and result["face"][BABY]["hit"]["n"] == 3
    for source in (SYRIP, BABY):  # every face in exactly one size bin, and the bins' hits add up to the whole
        bins = result["face"][source]["hit_by_size"].values()
        assert sum(b["n"] for b in bins) == 3
        held = sum(round(b["value"] * b["n"]) for b in bins if b["n"])
        assert held == round(result["face"][source]["hit"]["value"] * 3)
    assert result["peer"]["blazeface"][SYRIP]["hit"]["value"] == 1.0  # its boxes are the truths here
    assert result["peer"]["blazeface"][SYRIP]["iou"]["value"] == 1.0
    iris = result["peer"]["iris"][SYRIP]
    assert iris["macro_f1"]["value"] == 1.0 and iris["coverage"]["value"] == 1.0  # EARs agree with the person
    ours = result["eyes"][SYRIP]
    assert ours["end_to_end"]["coverage"]["n"] == 2 and ours["eye_stage_on_truth"]["accuracy"]["n"] == 2
    assert json.loads(json.dumps(result)) == result  # fit for a model manifest
    report = tmp_path / "reports" / "infant.md"
    write_report(result, DATA, report)
    text = report.read_text()
    assert "val split" in text and "never ground truth" in text and "| face | syrip_real |" in text
    from models import preprocess as pp

    assert result["face_size"] == pp.FACE_SIZE
    assert f"letterboxed to {pp.FACE_SIZE} px;" in text and "| 30-45 px |" in text
    if result["worst"]["face"] or result["worst"]["eyes"]:
        assert (tmp_path / "reports" / "infant_errors.png").is_file()


@needs_data
def test_without_teacher_files_the_peers_say_na_and_there_are_no_eye_scores(tmp_path):
    from train.evaluate_infant import main

    out = tmp_path / "r.json"
    report = tmp_path / "infant.md"
    argv = [
        "--data",
        str(DATA),
        "--weights",
        str(WEIGHTS),
        "--split",
        "val",
        "--limit",
        "2",
        "--json",
        str(out),
        "--report",
        str(report),
        "--teacher-faces",
        str(tmp_path / "none.json"),
        "--teacher-eyes",
        str(tmp_path / "none2.json"),
    ]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["peer"]["blazeface"] is None and result["peer"]["iris"] is None and result["eyes"] == {}
    assert BABY not in result["face"] and len(result["missing"]) == 2  # baby_photos' face truths are checked faces
    text = report.read_text()
    assert "No person eye labels yet" in text and "n/a: no face truths yet" in text
