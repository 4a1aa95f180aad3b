"""Train the face stage's eye finder (models/networks.PointNet): both eye centres and the nose, from the face box's
surroundings, so that the eye stage cuts each eye where it is.

    python -m train.eye_points --data ../shared/data --out models/weights [--epochs 24] [--cache DIR]

Data (read from ../shared/data by path; split by group as every infant stage: train/infant_data.py):
- syrip_real: annotated eyes and nose (real infants);
- baby_photos: BlazeFace's eyes and nose on the faces a person accepted (train/teacher_infant.py);
- the built-in sample camera: its exact eye centres (synthetic; no nose).
Each training face is cut as the tick cuts it (pp.points_input) around its box moved and scaled as the face stage's
boxes err, turned by any angle half of the time (babies lie any way round) and mirrored (the eyes swapped). The
validation faces are cut at their true box and at one moved box; the best epoch by validation loss is kept
(copy.deepcopy). Writes points.onnx and its manifest entry (the other stages' entries are kept as they are).
Training only (torch).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from models import preprocess as pp
from models.cascade import listed_files
from models.networks import WIDTH_MULT, build_member
from train import infant_data as idata
from train.evaluate import weights_digest
from train.vision import _float01, _norm, export_onnx, predict

SEED = 0
EPOCHS = 24  # the shipped finder's schedule (one-cycle over 24 epochs; its best validation epoch was 19)
PATIENCE = 8
BATCH = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4
CROPS = {"train": 8, "val": 2, "test": 1}  # inputs per face: training ones each moved, turned and mirrored anew
SAMPLE_FACES = {"train": 500, "val": 150, "test": 150}
SAMPLE_SEED = {"train": 41, "val": 42, "test": 43}
BOX_SHIFT_SD, BOX_LOG_SCALE_SD = 0.12, 0.18  # how the face stage's boxes err (fractions of the box side)
ANY_ANGLE_P, SMALL_ANGLE_SD = 0.5, 12.0
HEAT_SIGMA = 1.0  # cells: the Gaussian the heat maps are also pulled towards (steadies soft-argmax training)
HEAT_WEIGHT = 0.05
HIT_TOLERANCE = 0.25  # an eye found = within this fraction of the true eye distance (train/infant_metrics.py)


@dataclass
class Face:
    """One face of one image: box, the infant's own left eye, right eye and nose (frame pixels; nose may be None)."""

    key: str
    source: str
    group: str
    box: pp.Box
    points: tuple


@dataclass
class Inputs:
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)  # (P, 3): x, y in input pixels, known
    source: list = field(default_factory=list)
    iod: list = field(default_factory=list)  # true eye distance in input pixels

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "x": np.stack(self.x).astype(np.uint8),
            "y": np.stack(self.y).astype(np.float32),
            "source": np.asarray(self.source),
            "iod": np.asarray(self.iod, np.float32),
        }


# ---- faces --------------------------------------------------------------------------------------------------
def infant_faces(data: Path) -> dict[str, list[tuple[Face, np.ndarray | None]]]:
    """{split: [(face, None)]}: syrip's annotated faces and baby_photos' person-accepted teacher faces with both
    eyes (images are read when cut)."""
    from train.teacher_infant import checked_faces

    out: dict[str, list] = {"train": [], "val": [], "test": []}
    rows = idata.syrip_rows(data)
    split = idata.split_of(rows)
    for r in rows:
        t = idata.syrip_face(r)
        if t is not None and t.left_eye is not None and t.right_eye is not None:
            out[split[r["key"]]].append(Face(r["key"], "syrip", r["group"], t.box, (t.left_eye, t.right_eye, t.nose)))
    rows = idata.baby_rows(data)
    split = idata.split_of(rows)
    checked = checked_faces(data)
    for r in rows:
        for k, entry in enumerate(checked.get(r["key"], [])):
            t = idata.checked_face(entry)
            out[split[r["key"]]].append(
                Face(f"{r['key']}#{k}", "baby", r["group"], t.box, (t.left_eye, t.right_eye, t.nose))
            )
    return out


def sample_faces(split: str) -> list[tuple[Face, np.ndarray]]:
    """The sample camera's babies (day and infrared, open and closed eyes): exact boxes and eye centres."""
    from train.datasets import render_with_geometry

    rng = np.random.default_rng(SAMPLE_SEED[split])
    out = []
    for i in range(SAMPLE_FACES[split]):
        img, box, eyes = render_with_geometry(rng, True, ("open", "closed")[i % 2], i % 4 < 2)
        # the sample head's first eye (image left when upright) is the baby's own right eye
        out.append((Face(f"sample/{split}{i}", "sample", f"sample{split}{i}", box, (eyes[1], eyes[0], None)), img))
    return out


# ---- cutting ------------------------------------------------------------------------------------------------
def cut(img: np.ndarray, face: Face, rng: np.random.Generator | None, mirror: bool = False):
    """(input RGB uint8, (P, 3) targets in input pixels with a known flag, eye distance in input pixels) for a face
    cut as the tick cuts it; with rng, around a box moved, scaled and turned as in training."""
    x1, y1, x2, y2 = face.box
    side = pp.POINTS_SPAN * max(x2 - x1, y2 - y1, 2.0)
    centre, angle = ((x1 + x2) / 2, (y1 + y2) / 2), 0.0
    if rng is not None:
        box_side = side / pp.POINTS_SPAN
        centre = (
            centre[0] + rng.normal(0, BOX_SHIFT_SD) * box_side,
            centre[1] + rng.normal(0, BOX_SHIFT_SD) * box_side,
        )
        side *= math.exp(rng.normal(0, BOX_LOG_SCALE_SD))
        angle = rng.uniform(-180, 180) if rng.random() < ANY_ANGLE_P else rng.normal(0, SMALL_ANGLE_SD)
    m = pp.square_warp(centre, side, pp.POINTS_SIZE, angle)
    x = pp.warp_rgb(img, m, pp.POINTS_SIZE)
    y = np.zeros((len(pp.POINTS), 3), np.float32)
    for i, p in enumerate(face.points):
        if p is None:
            continue
        px, py = m @ np.array([p[0], p[1], 1.0])
        inside = 0 <= px < pp.POINTS_SIZE and 0 <= py < pp.POINTS_SIZE
        y[i] = (px, py, float(inside))
    if mirror:
        x = np.ascontiguousarray(x[:, ::-1])
        y[:, 0] = pp.POINTS_SIZE - y[:, 0]
        y[[0, 1]] = y[[1, 0]]
    iod = float(np.hypot(*(y[0, :2] - y[1, :2])))
    return x, y, iod


def cut_all(items: list[tuple[Face, np.ndarray | None]], split: str, data: Path | None = None) -> dict[str, np.ndarray]:
    """The split's inputs: CROPS[split] per face (training ones moved, turned, half of them mirrored; the first
    validation one at the true box), seeded by the face's key. An image None is read from data/images."""
    part = Inputs()
    for face, img in tqdm(items, desc=f"eye points {split}", leave=False):
        if img is None:
            img = cv2.imread(str(Path(data or ".") / "images" / face.key.partition("#")[0]))
        rng = np.random.default_rng([SEED, zlib.crc32(face.key.encode())])
        for j in range(CROPS[split]):
            moved = split == "train" or j > 0
            x, y, iod = cut(img, face, rng if moved else None, mirror=split == "train" and rng.random() < 0.5)
            if y[0, 2] < 0.5 or y[1, 2] < 0.5:
                continue  # an eye outside the input: the face stage's box would have to be far off
            part.x.append(x)
            part.y.append(y)
            part.source.append(face.source)
            part.iod.append(iod)
    return part.arrays()


def build(data: Path) -> dict[str, dict[str, np.ndarray]]:
    """{split: arrays} of every source's cut faces."""
    faces = infant_faces(data)
    return {s: cut_all([(f, None) for f in faces[s]] + sample_faces(s), s, data) for s in CROPS}


def cut_settings() -> str:
    """What the cut inputs depend on besides the data, as one string kept beside them in the cache: a cache outlives a
    change of these (a 96 px cache fed the 128 px finder without a word), so one cut otherwise is cut again."""
    return json.dumps(
        {
            "size": pp.POINTS_SIZE,
            "span": pp.POINTS_SPAN,
            "box_shift_sd": BOX_SHIFT_SD,
            "box_log_scale_sd": BOX_LOG_SCALE_SD,
            "angles": [ANY_ANGLE_P, SMALL_ANGLE_SD],
            "crops": CROPS,
            "sample_faces": SAMPLE_FACES,
            "sample_seed": SAMPLE_SEED,
            "seed": SEED,
        },
        sort_keys=True,
    )


def load_or_build(data: Path, cache: Path | None) -> dict[str, dict[str, np.ndarray]]:
    path = cache / "eye_points.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
        if "settings" in flat and str(flat["settings"]) == cut_settings():
            return {s: {k.split("_", 1)[1]: v for k, v in flat.items() if k.startswith(s + "_")} for s in CROPS}
        print(f"{path} was cut with other settings than this code's: cutting again")
    arrays = build(data)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = {f"{s}_{k}": v for s, a in arrays.items() for k, v in a.items()}
        np.savez(path, settings=np.array(cut_settings()), **flat)
    return arrays


# ---- training -----------------------------------------------------------------------------------------------
def soft_argmax(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, H, W) logits -> ((N, P, 2) expected x, y in input pixels, (N, P, H, W) probabilities); the numpy twin
    the tick runs is pp.soft_argmax."""
    n, p, h, w = maps.shape
    prob = maps.reshape(n, p, -1).softmax(-1).reshape(n, p, h, w)
    xs = (torch.arange(w, device=maps.device) + 0.5) * pp.POINTS_STRIDE
    ys = (torch.arange(h, device=maps.device) + 0.5) * pp.POINTS_STRIDE
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1), prob


def loss_fn(maps: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 of the soft-argmax points (in input sides) plus a pull of each heat map towards a Gaussian at its point,
    over the known points."""
    xy, prob = soft_argmax(maps)
    known = y[..., 2]
    l1 = ((xy - y[..., :2]).abs().sum(-1) * known).sum() / pp.POINTS_SIZE
    h, w = maps.shape[-2:]
    cx = (torch.arange(w, device=maps.device) + 0.5) * pp.POINTS_STRIDE
    cy = (torch.arange(h, device=maps.device) + 0.5) * pp.POINTS_STRIDE
    d2 = (cx.view(1, 1, 1, w) - y[..., 0, None, None]) ** 2 + (cy.view(1, 1, h, 1) - y[..., 1, None, None]) ** 2
    target = torch.exp(-d2 / (2 * (HEAT_SIGMA * pp.POINTS_STRIDE) ** 2))
    target = target / target.sum((-2, -1), keepdim=True).clamp(min=1e-8)
    ce = -(target * torch.log(prob.clamp(min=1e-8))).sum((-2, -1))
    return (l1 + HEAT_WEIGHT * (ce * known).sum()) / known.sum().clamp(min=1.0)


def photometric(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, the infrared look (gray, flat, noisy) and blur on a (N, 3, H, W) batch in 0..1."""
    n = len(x)
    r = lambda: torch.rand(n, 1, 1, 1, generator=g)  # noqa: E731
    x = x * (1 + 0.35 * (2 * r() - 1))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + 0.35 * (2 * r() - 1)) + mean
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)
    ir = r() < 0.3
    x = torch.where(ir, gray, x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = torch.where(ir & (r() < 0.5), (x - mean) * (0.5 + 0.4 * r()) + mean, x)
    x = x + torch.randn(x.shape, generator=g) * 0.06 * r()
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return torch.where(r() < 0.25, blurred, x).clamp(0, 1)


def fit(train: dict, val: dict, epochs: int, patience: int = PATIENCE, seed: int = SEED):
    """The network at its best validation epoch (copy.deepcopy of that epoch's weights) and its training record."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_member("points")
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = max(1, epochs * math.ceil(len(train["x"]) / BATCH))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.15)
    ytr, yva = torch.from_numpy(train["y"]), torch.from_numpy(val["y"])
    order_rng = np.random.default_rng(seed)
    best, best_loss, best_epoch, history = None, float("inf"), -1, []
    for epoch in range(epochs):
        model.train()
        order = order_rng.permutation(len(train["x"]))
        for i in tqdm(range(0, len(order), BATCH), desc=f"points {epoch + 1}/{epochs}", leave=False):
            idx = np.sort(order[i : i + BATCH])
            if len(idx) < 2:
                continue
            loss = loss_fn(model(_norm(photometric(_float01(train["x"][idx]), g))), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < steps:
                sched.step()
        val_loss = float(loss_fn(predict(model, val["x"]), yva))
        history.append(round(val_loss, 4))
        tqdm.write(f"points epoch {epoch + 1}: val loss {val_loss:.4f}, {hit_rates(model, val)}")
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best)
    model.eval()
    return model, {"best_epoch": best_epoch + 1, "best_val_loss": round(best_loss, 4), "val_loss_history": history}


def hit_rates(model: torch.nn.Module, part: dict) -> dict[str, dict[str, float]]:
    """Per source: the share of inputs with both eyes within HIT_TOLERANCE x the eye distance of the truth, and the
    median eye error in eye distances."""
    xy, _ = soft_argmax(predict(model, part["x"]))
    err = (xy[:, :2] - torch.from_numpy(part["y"][:, :2, :2])).norm(dim=-1).max(dim=1).values.numpy()
    err = err / np.maximum(part["iod"], 1.0)
    return {
        s: {
            "both_eyes_hit": round(float((err[m] <= HIT_TOLERANCE).mean()), 3),
            "median_error_iod": round(float(np.median(err[m])), 3),
            "n": int(m.sum()),
        }
        for s in sorted(set(part["source"].tolist()))
        if (m := part["source"] == s).any()
    }


def counts(part: dict) -> dict[str, int]:
    """Inputs per source."""
    return {src: int((part["source"] == src).sum()) for src in sorted(set(part["source"].tolist()))}


# ---- export -------------------------------------------------------------------------------------------------
def export(model: torch.nn.Module, out_dir: Path, record: dict) -> None:
    """points.onnx (checked against torch) and its manifest entry; the other stages' entries are kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "points.onnx"
    export_onnx(model, pp.POINTS_SIZE, path)
    import onnxruntime as ort

    x = np.full((4, pp.POINTS_SIZE, pp.POINTS_SIZE, 3), 128, np.uint8)
    x[1:] = np.random.default_rng(0).integers(0, 256, x[1:].shape, dtype=np.uint8)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": pp.normalise(x)})[0]
    diff = float(np.abs(got - predict(model, x).numpy()).max())
    if diff > 1e-3:
        raise RuntimeError(f"{path}: ONNX output differs from torch by {diff}")
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"{manifest_path} is missing: the eye finder joins a weights folder (make weights first)")
    manifest = json.loads(manifest_path.read_text())
    manifest["models"]["points"] = {
        "file": "points.onnx",
        "points": list(pp.POINTS),
        "span_face_sides": pp.POINTS_SPAN,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "architecture": f"mobilenet_v3_small(width_mult={WIDTH_MULT}), strides 8+16+32, 3 heat maps, soft-argmax",
        "input_size": pp.POINTS_SIZE,
        "input": f"a square of {pp.POINTS_SPAN} x the face box's side about its centre, RGB (preprocess.points_input)",
        "onnx_max_abs_diff_vs_torch": diff,
        **record,
    }
    now = dt.datetime.now(dt.UTC)
    digest = weights_digest(out_dir, listed_files(manifest).values())
    manifest["version"] = f"vision-{now:%Y%m%d}-{digest}" + (
        "-quick" if "-quick" in manifest.get("version", "") else ""
    )
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("models/weights"))
    ap.add_argument("--cache", type=Path, default=None, help="keep the cut inputs here (eye_points.npz)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1")
    torch.set_num_threads(args.threads)
    start = time.time()
    arrays = load_or_build(args.data, args.cache)
    model, info = fit(arrays["train"], arrays["val"], args.epochs)
    record = {
        "data_counts": {
            s: {src: int((a["source"] == src).sum()) for src in sorted(set(a["source"].tolist()))}
            for s, a in arrays.items()
        },
        "training": {
            **info,
            "epochs": args.epochs,
            "seed": SEED,
            "wall_time_s": round(time.time() - start, 1),
            "torch_threads": args.threads,
            "command": "python -m train.eye_points " + " ".join(sys.argv[1:] if argv is None else argv),
        },
        "validation": hit_rates(model, arrays["val"]),
        "held_out_test": hit_rates(model, arrays["test"]),
        "metric": f"both eyes within {HIT_TOLERANCE} x the true eye distance of their truth (first input of a "
        "validation face: cut at its true box; second: at a box moved as the face stage errs)",
    }
    export(model, args.out, record)
    print(json.dumps(record["validation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
