"""The vision training code: best-epoch weights, ONNX = torch, augmentation keeps boxes, splits, the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.sample_camera import BASSINET_CROP, frame_at
from models import preprocess as pp

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _eye_toy_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dark blob ('open' pupil) vs a thin line ('closed' lid) on noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    x = rng.integers(90, 160, (n, pp.EYE_SIZE, pp.EYE_SIZE), dtype=np.uint8)
    y = rng.integers(0, 2, n)
    for img, lab in zip(x, y, strict=True):
        if lab:
            cv2.circle(img, (32, 32), 12, 20, -1)
        else:
            cv2.line(img, (14, 32), (50, 32), 20, 2)
    return x, y.astype(np.int64)


def test_best_epoch_weights_are_kept_not_the_last():
    from train import vision

    xtr, ytr = _eye_toy_set(96, 1)
    xva, yva = _eye_toy_set(32, 2)
    snapshots = []

    def hook(model, epoch):
        if epoch == 2:  # spoil the last epoch: its validation loss must be the worst
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.5)
        snapshots.append(copy.deepcopy(model.state_dict()))

    model, info = vision.fit("eyes", xtr, ytr, xva, yva, epochs=3, patience=10, epoch_hook=hook)
    hist = info["val_loss_history"]
    assert len(hist) == 3 and hist[2] > min(hist[:2])
    best = int(np.argmin(hist))
    assert info["best_epoch"] == best + 1
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[best][k]) for k in state)
    assert not all(torch.equal(state[k], snapshots[2][k]) for k in state if state[k].is_floating_point())


def test_a_run_without_patience_runs_every_epoch_and_keeps_its_best():
    """FULL trains with no early stop (the one-cycle schedule's low-rate epochs come last); a patience stops."""
    from train import vision

    assert vision.FULL["patience"] is None
    xtr, ytr = _eye_toy_set(96, 1)
    xva, yva = _eye_toy_set(32, 2)

    def spoil_after_first(model, epoch):
        if epoch >= 1:  # every epoch after the first ends worse than the first
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.5)

    _, full = vision.fit("eyes", xtr, ytr, xva, yva, epochs=4, patience=None, epoch_hook=spoil_after_first)
    assert len(full["val_loss_history"]) == 4 and full["best_epoch"] == 1
    _, stopped = vision.fit("eyes", xtr, ytr, xva, yva, epochs=4, patience=1, epoch_hook=spoil_after_first)
    assert len(stopped["val_loss_history"]) == 2 and stopped["best_epoch"] == 1


@pytest.mark.parametrize("kind", ["presence", "face", "eyes"])
def test_onnx_export_matches_torch(tmp_path, kind):
    from models.networks import build
    from models.preprocess import INPUT_SIZES
    from train import vision

    model = build(kind).eval()
    rng = np.random.default_rng(0)
    shape = (3, INPUT_SIZES[kind], INPUT_SIZES[kind]) + (() if kind == "eyes" else (3,))
    x = rng.integers(0, 255, shape, dtype=np.uint8)
    path = tmp_path / f"{kind}.onnx"
    vision.export_onnx(model, INPUT_SIZES[kind], path)
    assert vision.onnx_max_diff(model, path, x) < 1e-4  # batch of 3: the exported batch axis is dynamic


def test_face_augmentation_moves_the_box_and_eyes_with_the_face_and_a_flip_swaps_the_eyes(monkeypatch):
    from train import face_data, vision

    size = pp.FACE_SIZE
    x = np.zeros((16, size, size, 3), np.uint8)
    x[:, 60:120, 40:100] = 255
    x[:, 80:84, 52:56] = 40  # the baby's right eye (image left when upright)
    x[:, 80:84, 84:88] = 90  # its left eye, a different grey
    y = face_data.target(pp.Letterbox((0, 0, size, size), size), (40, 60, 100, 120), ((86, 82), (54, 82)))
    monkeypatch.setitem(vision.AUG, "occlude_p", 0.0)  # a bright patch would confuse the check below
    monkeypatch.setitem(vision.AUG, "blur_p", 0.0)
    monkeypatch.setitem(vision.AUG, "noise_sd", 0.0)
    xa, ya = vision.augment(
        vision._float01(x), torch.tensor(np.stack([y] * 16)), "face", torch.Generator().manual_seed(3)
    )
    for img, t in zip(xa, ya, strict=True):
        bright = (img.mean(0) > img.mean(0).max() * 0.8).nonzero()
        ys, xs = bright[:, 0].float(), bright[:, 1].float()
        seen = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        assert pp.iou(face_data.decoded_box(t.numpy()), seen) > 0.7
        face = float(img.mean(0)[int(t[2]) + 15, int(t[1])])
        for ex, ey in ((t[5], t[6]), (t[7], t[8])):  # both points still sit on a (dark) eye
            assert float(img.mean(0)[int(ey), int(ex)]) < 0.6 * face
        # a face stays upright under a flip, so its left eye (its own) stays on the image's right
        assert t[5] > t[7]


def test_face_crops_turned_by_any_angle_keep_face_and_eyes_on_the_face():
    from train import face_data

    img = np.full((300, 400, 3), 200, np.uint8)
    cv2.rectangle(img, (180, 100), (240, 160), (0, 0, 255), -1)  # the face
    eyes = ((225, 120), (195, 120))  # left, right (an upright face seen from above)
    for angle in (0, 37, 90, 180, -120):
        x, y = face_data.example(img, (100, 50, 350, 250), (180, 100, 240, 160), eyes, angle)
        red = cv2.cvtColor(x, cv2.COLOR_RGB2BGR)[:, :, 2] > 150
        for px, py in ((y[1], y[2]), (y[5], y[6]), (y[7], y[8])):
            assert red[int(py), int(px)], (angle, px, py)
        assert np.hypot(y[5] - y[7], y[6] - y[8]) > 10


def test_face_maps_decode_to_the_box_and_eyes_they_were_trained_on():
    from train import face_data, vision

    size, cells = pp.FACE_SIZE, pp.FACE_SIZE // pp.FACE_STRIDE
    y = face_data.target(pp.Letterbox((0, 0, size, size), size), (50, 70, 110, 130), ((95, 90), (65, 92)))
    maps = np.zeros((len(pp.FACE_MAPS), cells, cells), np.float32)
    maps[0] = -5
    cx, cy = y[1] / pp.FACE_STRIDE, y[2] / pp.FACE_STRIDE
    ix, iy = int(cx), int(cy)
    eye_offsets = [(y[5] - y[1]) / y[3], (y[6] - y[2]) / y[3], (y[7] - y[1]) / y[3], (y[8] - y[2]) / y[3]]
    maps[:, iy, ix] = [5, cx - ix - 0.5, cy - iy - 0.5, np.log(y[3] / size), np.log(y[4] / size), *eye_offsets]
    p, got = pp.decode_face(maps, size)
    assert p > 0.99 and np.allclose(got[:9], y[:9], atol=1e-3)
    loss_right = vision.face_loss(torch.from_numpy(maps)[None], torch.from_numpy(y)[None])
    maps[5:] += 0.3
    assert vision.face_loss(torch.from_numpy(maps)[None], torch.from_numpy(y)[None]) > loss_right


@pytest.mark.skipif(not (DATA / "images" / "mrl_eyes").is_dir(), reason="needs ../shared/data")
def test_mrl_split_holds_out_whole_subjects():
    from train.datasets import MRL_HELD_OUT, mrl_subject_split

    split = mrl_subject_split(DATA)
    held = {s: sorted(k for k, v in split.items() if v == s) for s in ("val", "test")}
    assert len(held["test"]) == MRL_HELD_OUT["test"] and len(held["val"]) == MRL_HELD_OUT["val"]
    assert not set(held["test"]) & set(held["val"])
    manifest = json.loads((REPO / "models" / "weights" / "manifest.json").read_text())
    assert manifest["models"]["eyes"]["mrl_subjects"] == held


def test_cli_json_without_torch(tmp_path):
    frame, _ = frame_at(datetime(2026, 1, 1, 2, 10))
    cv2.imwrite(str(tmp_path / "f.jpg"), frame)
    cv2.imwrite(str(tmp_path / "eye.png"), np.full((60, 60), 128, np.uint8))
    crop = ",".join(str(v) for v in BASSINET_CROP)
    code = (
        "import sys; from models.cascade import main; "
        f"rc = main(['--crop', '{crop}', '{tmp_path / 'f.jpg'}', '--json']); "
        f"rc += main(['--stage', 'eyes', '{tmp_path / 'eye.png'}', '--json']); "
        f"rc += main(['--stage', 'face', '{tmp_path / 'f.jpg'}', '--json']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    full, eye, face = (json.loads(line) for line in out.strip().splitlines())
    assert set(full) == {"path", "presence", "face", "eyes", "night"} and full["night"] is True
    assert full["presence"]["label"] == "present" and full["eyes"]["label"] in ("open", "closed", "unknown")
    x1, y1, x2, y2 = full["face"]["box"]
    assert BASSINET_CROP[0] <= x1 < x2 <= BASSINET_CROP[2] and BASSINET_CROP[1] <= y1 < y2 <= BASSINET_CROP[3]
    (lx, ly), (rx, ry) = full["face"]["eyes"]
    assert x1 <= min(lx, rx) and max(lx, rx) <= x2 and y1 <= min(ly, ry) and max(ly, ry) <= y2
    assert eye["presence"] is None and eye["face"] is None and eye["eyes"]["label"] in ("open", "closed", "unknown")
    assert face["eyes"] is None and face["presence"] is not None


def test_cli_module_entry_point(tmp_path):
    cv2.imwrite(str(tmp_path / "f.jpg"), frame_at(datetime(2026, 1, 1, 12, 0))[0])
    r = subprocess.run(
        [sys.executable, "-m", "models.cascade", "--stage", "presence", str(tmp_path / "f.jpg"), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["presence"]["label"] in ("present", "not_present")


@pytest.mark.parametrize("kind", ["eyes", "face"])
def test_a_stage_of_several_members_answers_with_their_mean(kind):
    import torch

    from models.networks import MeanOfMembers, build_member
    from models.preprocess import INPUT_SIZES

    torch.manual_seed(3)
    members = [build_member(kind).eval() for _ in range(3)]
    x = torch.randn(4, 3, INPUT_SIZES[kind], INPUT_SIZES[kind])
    with torch.no_grad():
        got = MeanOfMembers(members).eval()(x)
        outs = [m(x) for m in members]
    if kind == "face":  # the mean maps, and the mean heat probability (as a logit, like one FaceNet)
        assert torch.allclose(got[:, 1:], torch.stack([o[:, 1:] for o in outs]).mean(0), atol=1e-6)
        heat = torch.stack([torch.sigmoid(o[:, 0]) for o in outs]).mean(0)
        assert torch.allclose(torch.sigmoid(got[:, 0]), heat, atol=1e-6)
    else:  # the tick's softmax of the output is the mean of the members' probabilities
        assert torch.allclose(got.softmax(1), torch.stack([o.softmax(1) for o in outs]).mean(0), atol=1e-6)
    assert not torch.allclose(outs[0], outs[1])  # the members differ, so the mean is not one of them


def _four_random_inputs_per_stage() -> dict[str, np.ndarray]:
    """train.datasets.load_or_build's arrays, four random inputs per stage and split, for runs that test plumbing."""
    rng = np.random.default_rng(0)
    sizes = {"presence": pp.PRESENCE_SIZE, "face": pp.FACE_SIZE, "eyes": pp.EYE_SIZE}
    arrays = {}
    for kind, size in sizes.items():
        for split in ("train", "val"):
            arrays[f"{kind}_{split}_x"] = rng.integers(0, 255, (4, size, size, 3), dtype=np.uint8)
            arrays[f"{kind}_{split}_y"] = (
                np.zeros((4, len(pp.FACE_TARGET)), np.float32) if kind == "face" else np.array([0, 1, 0, 1])
            )
    return arrays


def test_training_one_stage_keeps_the_other_stages_onnx_files_and_their_manifest_entries(tmp_path, monkeypatch):
    """--stages face: presence and eyes are not retrained, and their files and fits stay as they were."""
    import json

    from train import datasets, vision

    monkeypatch.setattr(datasets, "load_or_build", lambda data, cache, limit: _four_random_inputs_per_stage())
    seen = {}

    def export_and_evaluate(models, fits, arrays, out_dir, train_info, report, data_root):
        seen.update(models=models, fits=fits)
        return {"version": "x"}

    monkeypatch.setattr(vision, "export_and_evaluate", export_and_evaluate)
    (tmp_path / "presence.onnx").write_bytes(b"old")
    (tmp_path / "eyes.onnx").write_bytes(b"old")
    manifest = {"models": {k: {"training": {"best_epoch": 7}} for k in ("presence", "eyes")}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    vision.train_all(Path("unused"), tmp_path, quick=True, threads=1, report=None, stages=("face",))
    assert seen["models"]["presence"] is None and seen["models"]["eyes"] is None
    assert isinstance(seen["models"]["face"], torch.nn.Module)
    assert seen["fits"]["eyes"]["best_epoch"] == 7 and "kept" in seen["fits"]["eyes"]["note"]
    assert (tmp_path / "eyes.onnx").read_bytes() == b"old"
    (tmp_path / "eyes.onnx").unlink()
    with pytest.raises(SystemExit, match="eyes"):
        vision.train_all(Path("unused"), tmp_path, quick=True, threads=1, report=None, stages=("face",))


def test_epochs_on_the_command_line_change_only_the_stages_they_name(tmp_path, monkeypatch):
    """--epochs face=3: the face stage trains 3 epochs, the others keep the configuration's, and the manifest's
    training record says so."""
    from train import datasets, vision

    monkeypatch.setattr(datasets, "load_or_build", lambda data, cache, limit: _four_random_inputs_per_stage())
    asked, recorded = {}, {}

    def fit_stage(kind, xtr, ytr, xva, yva, epochs, patience, weights=None, device="cpu"):
        asked[kind] = epochs
        return torch.nn.Linear(1, 1), {"best_epoch": 1}

    def export_and_evaluate(models, fits, arrays, out_dir, train_info, report, data_root):
        recorded.update(train_info["epochs"])
        return {"version": "x", "training": {"wall_time_s": 0}, "headline": {}}

    monkeypatch.setattr(vision, "fit_stage", fit_stage)
    monkeypatch.setattr(vision, "export_and_evaluate", export_and_evaluate)
    assert vision.main(["--quick", "--out", str(tmp_path), "--report", str(tmp_path), "--epochs", "face=3"]) == 0
    assert asked == recorded == {**vision.QUICK["epochs"], "face": 3}


@pytest.mark.parametrize("bad", ["face", "face=0", "face=x", "ears=3"])
def test_a_malformed_epochs_option_is_refused_with_a_line_that_says_the_form(bad, capsys):
    from train import vision

    with pytest.raises(SystemExit) as info:
        vision.main(["--quick", "--epochs", bad])
    assert info.value.code == 2 and "give STAGE=N" in capsys.readouterr().err


def test_a_data_cache_cut_at_other_input_sizes_is_rebuilt_not_reused(tmp_path, monkeypatch):
    """A cache made before an input size changed would train a network on inputs the tick never cuts."""
    from train import datasets

    def arrays(face_side: int) -> dict[str, np.ndarray]:
        return {
            "presence_train_x": np.zeros((2, pp.PRESENCE_SIZE, pp.PRESENCE_SIZE, 3), np.uint8),
            "face_train_x": np.zeros((2, face_side, face_side, 3), np.uint8),
            "eyes_train_x": np.zeros((0, 9, 9), np.uint8),  # an empty set has no side to check
        }

    monkeypatch.setattr(datasets, "SOURCES", ("syrip",))
    built = []
    monkeypatch.setattr(datasets, "build_source", lambda name, data, limit: built.append(name) or arrays(pp.FACE_SIZE))
    np.savez(tmp_path / "syrip.npz", **arrays(pp.FACE_SIZE + 64))
    merged = datasets.load_or_build(DATA, tmp_path)
    assert built == ["syrip"]
    assert merged["face_train_x"].shape[1] == pp.FACE_SIZE
    with np.load(tmp_path / "syrip.npz") as z:
        assert z["face_train_x"].shape[1] == pp.FACE_SIZE  # the rebuilt cache replaced the stale one
    datasets.load_or_build(DATA, tmp_path)
    assert built == ["syrip"]  # now it is reused


def test_a_face_network_made_at_another_side_runs_at_the_side_its_manifest_names(tmp_path):
    """A face stage made at another side (an experiment, an older release) must run as it was made, not fail in ONNX
    Runtime: the evaluation scores such folders beside the shipped weights."""
    import shutil

    from models.cascade import Cascade
    from models.networks import build
    from train import vision

    other = pp.FACE_SIZE - 64
    weights = tmp_path / "w"
    shutil.copytree(REPO / "models" / "weights", weights)
    torch.manual_seed(0)
    vision.export_onnx(build("face").eval(), other, weights / "face.onnx")
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest["models"]["face"]["input_size"] = other
    (weights / "manifest.json").write_text(json.dumps(manifest))
    c = Cascade.load(weights, face_threshold=0.0)  # every crop gets a box, so the face network surely runs
    assert c.face_size == other
    frame, _truth = frame_at(datetime(2026, 1, 1, 3, 0))
    box, p, _eyes = c.find_face(frame, BASSINET_CROP)
    assert 0.0 <= p <= 1.0 and box[2] > box[0]
