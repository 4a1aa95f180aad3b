"""`python -m train.retrain` on real ticks and real corrections: labels only from humans, a split by whole nights,
promotion only on a win on the held-out nights, and a swap no tick can catch half-way.

The nursery: three simulated nights of the sample camera (`monitor.py --night`, real ticks, every 20 minutes),
each frame labelled through the Store API from the camera's own truth (capture/sample_camera.py), the way a parent
would on the dashboard: most frames "the model was right", every third one corrected field by field. The shipped
weights are right on every one of these frames, so a candidate cannot beat them; a copy whose three models have
their outputs negated (an ONNX graph edit) is wrong on nearly every frame, so any candidate that gets one frame
right beats it. Trained with --quick on one torch thread: the weights are useless, the decisions are not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.sample_camera import frame_at
from db.store import HumanLabel, Store, TeacherLabel, TickRow
from lockfile import TickLock
from models import preprocess as pp
from settings import load_settings
from tests.tick_runner import REPO, rows, run_tick

WEIGHTS = REPO / "models" / "weights"
SHARED = REPO.parent / "shared" / "data"
NIGHTS = ("2026-11-18", "2026-11-19", "2026-11-20")
# One frame per timer tick (no confirmation frames of the wakings): the nights' frame counts below are the timer's.
TICK_ENV = {
    "BILBO_TICK_INTERVAL_S": "1200",
    "BILBO_AUDIO_SECONDS": "0",
    "BILBO_KEEP_UNCHANGED_JPEG": "true",
    "BILBO_CONFIRM_FRAMES": "0",
}
ONNX = ("presence.onnx", "face.onnx", "eyes.onnx")
VISION = (*ONNX, "manifest.json")
needs_training = pytest.mark.skipif(
    not (SHARED / "images" / "mrl_eyes").is_dir() or not all(find_spec(m) for m in ("torch", "onnx")),
    reason="needs requirements-train.txt and train.vision's base data in ../shared/data",
)


# ---- the nursery ---------------------------------------------------------------------------------
def label_like_a_parent(store: Store, row, i: int) -> None:
    """The sample camera's truth, entered as the dashboard would: a review, or corrections of each field."""
    truth = frame_at(datetime.fromtimestamp(row.ts).astimezone())[1]
    presence = "present" if truth.presence else "not_present"
    if truth.eyes == "away":  # the back of the head: no face, eyes not visible
        changes = [("presence", presence), ("eyes", "not_visible"), ("face_box", None)]
    elif i % 3 and row.presence_label == presence and row.eyes_label == truth.eyes:
        changes = [("reviewed", True)]
    else:
        changes = [("presence", presence), *([("eyes", truth.eyes)] if truth.presence else [])]
    store.add_corrections(row.id, changes, "mum", now=row.ts + 600)


@pytest.fixture(scope="module")
def nursery(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("nursery")
    for night in NIGHTS:
        done = run_tick(data, "--night", night, **TICK_ENV)
        assert done.returncode == 0, done.stderr[-2000:]
    with Store.open(data / "bilbo.sqlite3") as store:
        for i, row in enumerate(store.ticks_between(0, 1e12)):
            label_like_a_parent(store, row, i)
    return data


@pytest.fixture(scope="module")
def base_cache(tmp_path_factory) -> Path:
    """train.vision's cut base data, built by the first retrain and read by the next."""
    return tmp_path_factory.mktemp("vision_cache")


def copies(nursery: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A data dir and a models dir of this test's own (the repository's weights are never written)."""
    shutil.copytree(nursery, tmp_path / "data")
    shutil.copytree(WEIGHTS, tmp_path / "weights")
    return tmp_path / "data", tmp_path / "weights"


def retrain_args(data: Path, models: Path, cache: Path | None = None, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "train.retrain", "--data-dir", str(data), "--models", str(models)]
    args += ["--config", str(data / "no.env"), "--shared", str(SHARED), "--quick", "--threads", "1"]
    return args + (["--cache", str(cache)] if cache else []) + list(extra)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BILBO_")}


def retrain(*args: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600, **kw
    )


def files(folder: Path, names=VISION) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in names}


def negate_outputs(path: Path) -> None:
    """Spoil a model: a Neg node on its output (presence/eyes: the other class; face: no face, no box)."""
    import onnx

    model = onnx.load(str(path))
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{out}_unspoiled" if o == out else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Neg", [f"{out}_unspoiled"], [out]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# ---- refusals without training ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keep", "have"),
    [
        (lambda i, row: i % 10 == 0, "have 12 over 3 night(s), 4 held out"),
        (lambda i, row: row.ts < datetime(2026, 11, 19, 12).timestamp(), "have 40 over 1 night(s), 40 held out"),
    ],
    ids=["12 frames", "one night"],
)
def test_too_few_labels_or_nights_exit_2_with_one_line_saying_what_is_needed(nursery, tmp_path, keep, have):
    data, models = copies(nursery, tmp_path)
    with Store.open(data / "bilbo.sqlite3") as store:
        for i, row in enumerate(store.ticks_between(0, 1e12)):
            if not keep(i, row):
                store.undo_last_decision(row.id, now=row.ts + 700)
    before = files(models)
    done = retrain(*retrain_args(data, models))
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("retrain: too few human labels")
    assert "need at least 40 labelled frames" in line and "over at least 2 nights" in line and have in line
    assert files(models) == before and not (data / "retrain").exists()


# ---- ground truth and the split, on the nursery's real frames ---------------------------------------
def test_frames_are_split_by_whole_nights_and_the_newest_night_is_held_out(nursery):
    from train.retrain import gather, night_roles

    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(nursery)})
    with Store.open(settings.db_path) as store:
        frames, skipped = gather(store, settings)
    assert len(frames) == 120 and not skipped
    roles = night_roles({f.night for f in frames})
    assert {str(n): r for n, r in roles.items()} == dict(zip(NIGHTS, ("train", "train", "held_out"), strict=True))
    for night in roles:  # 18:30 of the evening to 07:30 the next morning, after midnight included
        times = sorted(datetime.fromtimestamp(f.ts) for f in frames if f.night == night)
        assert times[0] == datetime.combine(night, datetime.min.time()) + timedelta(hours=18, minutes=30)
        assert times[-1] == datetime.combine(night, datetime.min.time()) + timedelta(days=1, hours=7, minutes=30)
    nine = [date(2026, 1, d) for d in range(1, 10)]  # newest first: held, train, val, train, held, train, val, ...
    assert [night_roles(set(nine))[n] for n in reversed(nine)] == [
        "held_out", "train", "val", "train", "held_out", "train", "val", "train", "held_out",
    ]  # fmt: skip
    assert set(night_roles(set(nine[:5])).values()) == {"held_out", "train"}  # too few nights to spare one for val


def test_labels_come_only_from_humans_a_correction_beats_a_review_and_places_the_eyes(nursery, tmp_path):
    from train import face_data
    from train.retrain import examples, gather

    data, _ = copies(nursery, tmp_path)
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(data)})
    with Store.open(settings.db_path) as store:
        closed = [r for r in store.ticks_between(0, 1e12) if r.eyes_label == "closed" and r.face_box][:3]
        unlabelled, corrected, reviewed = closed
        for row in closed:
            while store.undo_last_decision(row.id, now=row.ts + 700):
                pass
        human_box = tuple(v + 6.0 for v in corrected.face_box)
        store.add_corrections(corrected.id, [("reviewed", True)], "mum", now=1.0)
        store.add_corrections(corrected.id, [("eyes", "open"), ("face_box", list(human_box))], "dad", now=2.0)
        store.add_corrections(reviewed.id, [("reviewed", True)], "mum", now=3.0)
        frames = {f.tick_id: f for f in gather(store, settings)[0]}
    assert unlabelled.id not in frames  # the model's unreviewed output is never a label

    f = frames[corrected.id]
    frame = cv2.imread(str(f.path))
    got = examples(frame, f)
    crop = pp.crop_box(frame, f.crop)
    assert f.corrected and f.truth["eyes"] == "open" and f.truth["face_box"] == human_box
    assert got["presence"][0][1] == 1  # the review confirms the model's "present"
    assert np.allclose(got["face"][0][1], face_data.example(frame, crop, human_box)[1]) and got["face"][0][1][0] == 1.0
    assert [y for _x, y in got["eyes"]] == [1, 1]
    for (x, _y), region in zip(got["eyes"], pp.eye_regions(human_box), strict=True):
        assert np.array_equal(x, pp.eye_gray(frame, region)[:, :, 0])

    f = frames[reviewed.id]
    frame = cv2.imread(str(f.path))
    got, crop = examples(frame, f), pp.crop_box(frame, f.crop)
    assert not f.corrected and [y for _x, y in got["eyes"]] == [0, 0]  # the model's "closed", confirmed
    assert np.allclose(got["face"][0][1], face_data.example(frame, crop, reviewed.face_box)[1])


def test_training_labels_rank_human_correction_over_review_over_teacher_and_only_humans_validate_or_test():
    from train.retrain import Labelled, train_truth

    model = TickRow(1.0, "sample", False, 9.0, True, "asleep", "present", 0.99, (1.0, 2.0, 30.0, 40.0), 0.9, "closed",
                    0.95, "frames/a.jpg", "m", 5.0)  # fmt: skip
    reviewed = HumanLabel(1, {}, True, 1.0).truth(model)  # "the model was right": present, closed, its box
    corrected = HumanLabel(1, {"eyes": "open"}, True, 2.0).truth(model)
    eyes_only = HumanLabel(1, {"eyes": "closed"}, False, 1.0).truth(model)  # a human said nothing about presence
    teacher = {"presence": "present", "eyes": "not_visible"}

    def frame(truth: dict, taught: dict) -> Labelled:
        return Labelled(1, 1.0, True, truth, False, None, date(2026, 11, 18), Path("a.jpg"), None, taught)

    assert train_truth(frame({}, teacher), "train") == teacher  # only the teacher: its labels train
    assert train_truth(frame(reviewed, teacher), "train") == reviewed  # a review beats the teacher
    assert train_truth(frame(corrected, teacher), "train")["eyes"] == "open"  # a correction beats both
    assert train_truth(frame(eyes_only, {"presence": "not_present", "eyes": "not_visible"}), "train") == {
        "presence": "present",  # a human's "closed" says the baby is there, whatever the teacher said
        "eyes": "closed",
    }
    assert train_truth(frame(eyes_only, teacher), "train") == {"presence": "present", "eyes": "closed"}
    for taught in ({}, teacher):  # validation (early stopping) and held-out nights: humans only
        assert train_truth(frame(corrected, taught), "val") == corrected
        assert train_truth(frame(corrected, taught), "held_out") == {}
    assert train_truth(frame({}, teacher), "val") == {}


def test_teacher_labels_train_on_training_nights_and_never_reach_the_held_out_night(nursery, tmp_path):
    from train.retrain import gather, gather_taught, night_of, night_roles, parent_arrays

    data, _ = copies(nursery, tmp_path)
    settings = load_settings(None, environ={"BILBO_DATA_DIR": str(data)})
    with Store.open(settings.db_path) as store:
        closed = [r for r in store.ticks_between(0, 1e12) if r.eyes_label == "closed" and r.face_box]
        on_train = next(r for r in closed if str(night_of(r.ts)) == NIGHTS[0])
        on_held_out = next(r for r in closed if str(night_of(r.ts)) == NIGHTS[-1])
        for row in (on_train, on_held_out):  # nobody reviewed these two; the teacher says "eyes open"
            while store.undo_last_decision(row.id, now=row.ts + 700):
                pass
            store.add_teacher_label(TeacherLabel(row.id, row.ts + 60, "http://lan/v1", "vision", "present", "open"))
        frames, _ = gather(store, settings)
        taught = gather_taught(store, settings, {f.tick_id for f in frames})
    roles = night_roles({f.night for f in frames})
    assert {f.tick_id for f in taught} == {on_train.id, on_held_out.id}
    assert on_held_out.id not in {f.tick_id for f in frames}  # never part of the held-out evaluation
    arrays = parent_arrays(taught, roles)
    assert arrays["presence_train_y"].tolist() == [1] and arrays["eyes_train_y"].tolist() == [1, 1]
    assert not [k for k in arrays if "_val_" in k or "held" in k]  # the held-out frame taught nothing


# ---- the whole command --------------------------------------------------------------------------------
@needs_training
def test_a_candidate_cannot_beat_models_already_perfect_on_the_held_out_night_so_nothing_changes(
    nursery, tmp_path, base_cache
):
    data, models = copies(nursery, tmp_path)
    with Store.open(data / "bilbo.sqlite3") as store:  # one frame removed by retention, one gone from disk
        pruned, missing, taught = (tick for tick, _label in store.labelled_ticks()[5:8])
        (data / pruned.jpeg_path).unlink()
        store.mark_media_pruned([pruned.id], ts=pruned.ts + 86400 * 31)
        (data / missing.jpeg_path).unlink()
        store.undo_last_decision(taught.id, now=taught.ts + 700)  # only the fallback labeller labelled this one
        store.add_teacher_label(TeacherLabel(taught.id, taught.ts + 60, "http://lan/v1", "vision", "present", "open"))
    before = files(models)

    done = retrain(*retrain_args(data, models, base_cache))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "KEPT the current models" in done.stdout
    assert "plus 1 frames only the fallback labeller labelled, for training" in done.stdout
    assert "skipped: 1 frame removed by retention, 1 frame missing on disk" in done.stdout
    (candidate,) = (data / "retrain").glob("candidate-*")
    entry = json.loads((candidate / "manifest.json").read_text())["retrain"]
    current, cand = entry["held_out"]["current"], entry["held_out"]["candidate"]
    assert current["state"]["all"]["accuracy"] == 1.0, "precondition: the shipped weights are right on every frame"
    assert entry["promoted"] is False
    assert f"state accuracy {cand['state']['all']['accuracy']} is not better than the current 1.0" in entry["why"]
    assert files(models) == before and not list((data / "retrain").glob("previous-*"))

    used = entry["human_labelled_frames"]
    assert used["used"] == 117 and used["per_role"] == {"train": 77, "held_out": 40} and used["teacher_only"] == 1
    assert used["skipped"] == {"frame removed by retention": 1, "frame missing on disk": 1}
    assert entry["nights"]["2026-11-20"] == {"role": "held_out", "frames": 40}
    assert current["state"]["all"]["n"] == 40  # scored on the held-out night only, day and infrared apart
    assert current["state"]["day"]["n"] + current["state"]["ir_night"]["n"] == 40 and current["state"]["day"]["n"]
    assert current["eyes"]["all"]["per_class"]["open"]["n"] and current["eyes"]["all"]["per_class"]["closed"]["n"]

    report = Path(done.stdout.strip().splitlines()[-1].split("report ")[-1])
    text = report.read_text()
    assert report.parent == data / "retrain" and "**KEPT the current models.**" in text
    for part in ("| presence | macro_f1 |", "| face | detected_iou50 |", "| eyes | macro_f1 |", "| state | accuracy |"):
        assert part in text
    assert "eyes / closed (n " in text and "| 2026-11-20 | held_out | 40 |" in text
    assert "fallback labeller (teacher), training nights only, never evaluated: 1 frames" in text
    assert "- candidate presence: #" in text  # the candidate's worst errors, by tick id
    assert report.with_name(report.stem + "-errors.png").is_file()


@needs_training
def test_a_candidate_beating_spoiled_models_is_swapped_in_under_the_tick_lock_with_a_backup(
    nursery, tmp_path, base_cache
):
    data, models = copies(nursery, tmp_path)
    for name in ONNX:
        negate_outputs(models / name)
    spoiled = files(models)
    old_version = json.loads(spoiled["manifest.json"])["version"]

    tick = TickLock(data / "monitor.lock")
    assert tick.acquire()  # a tick is running
    with open(tmp_path / "stderr.txt", "w") as err:
        args = retrain_args(data, models, base_cache)
        proc = subprocess.Popen(args, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            seen = []
            for line in proc.stdout:
                seen.append(line)
                if "waiting for the running tick" in line:
                    break
            else:
                pytest.fail("the retrain never waited for the tick: " + "".join(seen)[-2000:])
            (candidate,) = (data / "retrain").glob("candidate-*")
            assert files(models) == spoiled  # the running tick still has the whole old set
            staged = {n: (models / f".{n}.incoming").read_bytes() for n in ONNX}
            assert staged == files(candidate, ONNX)  # the new set lies whole beside it, not yet in place
        finally:
            tick.release()
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert "PROMOTED the candidate" in out

    assert files(models, ONNX) == files(candidate, ONNX) and not list(models.glob(".*"))
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest == json.loads((candidate / "manifest.json").read_text())
    # the eye finder is not retrained: the candidate carried it and its manifest entry, and it was swapped in with them
    finder = (WEIGHTS / "points.onnx").read_bytes()
    assert (candidate / "points.onnx").read_bytes() == finder and (models / "points.onnx").read_bytes() == finder
    assert manifest["models"]["points"] == json.loads((WEIGHTS / "manifest.json").read_text())["models"]["points"]
    entry = manifest["retrain"]
    assert entry["promoted"] and entry["previous_version"] == old_version and entry["version"] == manifest["version"]
    assert entry["date"] and entry["human_labelled_frames"]["per_role"] == {"train": 80, "held_out": 40}
    current, cand = entry["held_out"]["current"], entry["held_out"]["candidate"]
    assert cand["state"]["all"]["accuracy"] > current["state"]["all"]["accuracy"]
    for stage, metric in (("presence", "macro_f1"), ("face", "detected_iou50"), ("eyes", "macro_f1")):
        assert cand[stage]["all"][metric] >= current[stage]["all"][metric]
    (backup,) = (data / "retrain").glob("previous-*")
    assert files(backup) == spoiled

    ticked = run_tick(data, "--once", "--source", "sample", "--at", "2026-11-22T02:10:00", BILBO_MODELS_DIR=str(models))
    assert ticked.returncode == 0, ticked.stderr[-2000:]
    assert rows(data)[-1].model_version == manifest["version"]  # the next tick runs the promoted models

    undo = retrain(*retrain_args(data, models), "--rollback")
    assert undo.returncode == 0, undo.stderr
    assert files(models, ONNX) == files(backup, ONNX)
    assert json.loads((models / "manifest.json").read_text())["version"] == old_version
    (replaced,) = (data / "retrain").glob("rolled-back-*")
    assert files(replaced, ONNX) == files(candidate, ONNX)
