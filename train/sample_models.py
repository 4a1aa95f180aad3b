"""Train the first shipped weights on the built-in sample camera and export them to ONNX.

    python -m train.sample_models [--out models/weights] [--quick]

One readable script: render frames (fixed seeds, 2 worker processes), cut each frame into the
three models' inputs with models/preprocess.py (the same code the tick runs), train three
MobileNetV3-Small nets from scratch with Adam and early stopping on validation loss (best epoch
kept with copy.deepcopy), report validation metrics, export ONNX, write manifest.json.
These weights know only the synthetic sample camera; retraining on real frames replaces them.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import multiprocessing as mp
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from capture.sample_camera import BASSINET_CROP, render_scene
from models import preprocess as pp
from models.cascade import MANIFEST, MODEL_FILES
from models.networks import EYE_CLASSES, FACE_OUTPUTS, INPUT_SIZES, PRESENCE_CLASSES, WIDTH_MULT, build

# ---- configuration -------------------------------------------------------------------------
TRAIN_SEED, VAL_SEED, TORCH_SEED = 1, 2, 0
FULL = {
    "train": {"absent": 2600, "open": 900, "closed": 900, "away": 800},
    "val": {"absent": 300, "open": 120, "closed": 120, "away": 60},
    "epochs": {"presence": 12, "face": 16, "eyes": 6},
    "patience": 4,
}
QUICK = {
    "train": {"absent": 24, "open": 12, "closed": 12, "away": 6},
    "val": {"absent": 8, "open": 4, "closed": 4, "away": 2},
    "epochs": {"presence": 1, "face": 1, "eyes": 1},
    "patience": 1,
}
EYE_CROPS_PER_FACE = 2  # jittered crops per training face
FACE_NEGATIVE_EVERY = 3  # every 3rd empty-bassinet frame also teaches the face model "no face here"
EYE_JITTER = 0.08  # each box edge moves by up to 8% of the box size
BATCH, LR = 64, 2e-3
WORKERS = 2


# ---- data ----------------------------------------------------------------------------------
def _specs(counts: dict[str, int]) -> list[tuple[bool, str | None, bool]]:
    specs = []
    for name, n in counts.items():
        for i in range(n):
            specs.append((name != "absent", None if name == "absent" else name, i % 2 == 1))
    return specs


def jitter_box(rng: np.random.Generator, box: pp.Box, amount: float) -> pp.Box:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    d = rng.uniform(-amount, amount, 4)
    return (x1 + d[0] * w, y1 + d[1] * h, x2 + d[2] * w, y2 + d[3] * h)


def _render_one(job: tuple[int, int, tuple[bool, str | None, bool], int]) -> dict:
    seed, index, (presence, eyes, night), n_eye = job
    rng = np.random.default_rng([seed, index])
    frame, truth = render_scene(rng, presence=presence, eyes=eyes, night=night)
    item = {
        "presence": pp.square_rgb(frame, BASSINET_CROP, pp.PRESENCE_SIZE),
        "y_presence": int(presence),
        "night": night,
    }
    if presence or index % FACE_NEGATIVE_EVERY == 0:
        item["face"] = pp.square_rgb(frame, BASSINET_CROP, pp.FACE_SIZE)
        item["face_found"] = float(truth.face_box is not None)
        item["face_box01"] = pp.box_to_crop01(truth.face_box, BASSINET_CROP) if truth.face_box else (0, 0, 1, 1)
        item["face_box"] = truth.face_box
    if eyes in ("open", "closed"):
        boxes = [truth.face_box] if n_eye == 0 else [jitter_box(rng, truth.face_box, EYE_JITTER) for _ in range(n_eye)]
        item["eyes"] = [pp.eye_gray(frame, b) for b in boxes]
        item["y_eyes"] = EYE_CLASSES.index(eyes)
    return item


def render_set(seed: int, counts: dict[str, int], n_eye: int, desc: str) -> dict[str, np.ndarray]:
    jobs = [(seed, i, spec, n_eye) for i, spec in enumerate(_specs(counts))]
    with mp.get_context("fork").Pool(WORKERS) as pool:
        items = list(tqdm(pool.imap(_render_one, jobs, chunksize=16), total=len(jobs), desc=desc))
    faces = [it for it in items if "face" in it]
    eyes = [(crop, it["y_eyes"], it["night"]) for it in items if "eyes" in it for crop in it["eyes"]]
    return {
        "presence_x": np.stack([it["presence"] for it in items]),
        "presence_y": np.array([it["y_presence"] for it in items], np.int64),
        "presence_night": np.array([it["night"] for it in items]),
        "face_x": np.stack([it["face"] for it in faces]),
        "face_y": np.array([[*it["face_box01"], it["face_found"]] for it in faces], np.float32),
        "eyes_x": np.stack([e[0] for e in eyes]),
        "eyes_y": np.array([e[1] for e in eyes], np.int64),
        "eyes_night": np.array([e[2] for e in eyes]),
    }


# ---- losses and the loop ---------------------------------------------------------------------
def box_iou_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ix = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area = lambda r: (r[:, 2] - r[:, 0]).clamp(min=0) * (r[:, 3] - r[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter + 1e-7)


def face_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    found = y[:, 4]
    loss = F.binary_cross_entropy_with_logits(out[:, 4], found)
    mask = found > 0.5
    if mask.any():
        pb, tb = out[mask, :4], y[mask, :4]
        loss = loss + 10 * F.smooth_l1_loss(pb, tb, beta=0.02) + (1 - box_iou_t(pb, tb)).mean()
    return loss


def flip(x: torch.Tensor, y: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip of half the batch (the face box mirrors with it)."""
    m = torch.rand(len(x)) < 0.5
    x = x.clone()
    x[m] = x[m].flip(-1)
    if kind == "face":
        y = y.clone()
        y[m, 0], y[m, 2] = 1 - y[m, 2], 1 - y[m, 0]
    return x, y


def _tensor(x_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pp.normalise(x_u8))


def predict(model: torch.nn.Module, x_u8: np.ndarray) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(_tensor(x_u8[i : i + 256])) for i in range(0, len(x_u8), 256)])


def fit(kind: str, data: dict, val: dict, epochs: int, patience: int) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(TORCH_SEED)
    model = build(kind)
    loss_fn = face_loss if kind == "face" else F.cross_entropy
    xtr, ytr = data[f"{kind}_x"], torch.from_numpy(data[f"{kind}_y"])
    xva, yva = val[f"{kind}_x"], torch.from_numpy(val[f"{kind}_y"])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    gen = np.random.default_rng(TORCH_SEED)
    best, best_loss, best_epoch, history = None, float("inf"), -1, []
    for epoch in range(epochs):
        model.train()
        order = gen.permutation(len(xtr))
        bar = tqdm(range(0, len(order), BATCH), desc=f"{kind} epoch {epoch + 1}/{epochs}", leave=False)
        for i in bar:
            idx = order[i : i + BATCH]
            if len(idx) < 2:
                continue
            x, y = flip(_tensor(xtr[idx]), ytr[idx], kind)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        sched.step()
        val_loss = float(loss_fn(predict(model, xva), yva))
        history.append(round(val_loss, 4))
        tqdm.write(f"{kind} epoch {epoch + 1}: val loss {val_loss:.4f}")
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best)
    model.eval()
    return model, {"best_epoch": best_epoch + 1, "best_val_loss": round(best_loss, 4), "val_loss_history": history}


# ---- metrics -----------------------------------------------------------------------------------
def classifier_metrics(pred: np.ndarray, y: np.ndarray, night: np.ndarray) -> dict:
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    acc = lambda m: round(float((pred[m] == y[m]).mean()), 4) if m.any() else None  # noqa: E731
    return {
        "n": len(y),
        "accuracy": acc(np.ones_like(y, bool)),
        "f1": round(f1, 4),
        "accuracy_day": acc(~night),
        "accuracy_night": acc(night),
    }


def face_metrics(out: np.ndarray, y: np.ndarray) -> dict:
    has = y[:, 4] > 0.5
    found = out[:, 4] > 0
    ious = np.array([pp.iou(tuple(o[:4]), tuple(t[:4])) for o, t in zip(out[has], y[has], strict=True)])
    return {
        "n_faces": int(has.sum()),
        "n_no_face": int((~has).sum()),  # heads turned away + some empty bassinets
        "mean_iou": round(float(ious.mean()), 4) if len(ious) else None,
        "detection_rate_iou50": round(float(((ious >= 0.5) & found[has]).mean()), 4) if len(ious) else None,
        "no_face_rejected": round(float((~found[~has]).mean()), 4) if (~has).any() else None,
    }


def evaluate(kind: str, model: torch.nn.Module, val: dict) -> dict:
    out = predict(model, val[f"{kind}_x"]).numpy()
    if kind == "face":
        return face_metrics(out, val["face_y"])
    return classifier_metrics(out.argmax(1), val[f"{kind}_y"], val[f"{kind}_night"])


# ---- export ------------------------------------------------------------------------------------
def export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    dummy = torch.zeros(1, 3, size, size)
    torch.onnx.export(
        model.eval(),
        (dummy,),
        str(path),
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamo=False,
    )


def onnx_max_diff(model: torch.nn.Module, path: Path, x_u8: np.ndarray) -> float:
    """Largest |ONNX - torch| over the given inputs (one at a time: static batch 1)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = pp.normalise(x_u8)
    ref = predict(model, x_u8).numpy()
    got = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    return float(np.abs(got - ref).max())


def train_all(out_dir: Path, quick: bool = False, threads: int = 2) -> dict:
    cfg = QUICK if quick else FULL
    torch.set_num_threads(threads)
    start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = render_set(TRAIN_SEED, cfg["train"], EYE_CROPS_PER_FACE, "render train")
    val = render_set(VAL_SEED, cfg["val"], 0, "render val")
    models, entries = {}, {}
    for kind in ("presence", "face", "eyes"):
        model, fit_info = fit(kind, data, val, cfg["epochs"][kind], cfg["patience"])
        metrics = evaluate(kind, model, val)
        tqdm.write(f"{kind}: {json.dumps(metrics)}")
        path = out_dir / MODEL_FILES[kind]
        export_onnx(model, INPUT_SIZES[kind], path)
        diff = onnx_max_diff(model, path, val[f"{kind}_x"][:8])
        if diff > 1e-3:
            raise RuntimeError(f"{path}: ONNX output differs from torch by {diff}")
        models[kind] = model
        entries[kind] = {
            "file": MODEL_FILES[kind],
            "architecture": f"mobilenet_v3_small(width_mult={WIDTH_MULT}), from scratch",
            "input_size": INPUT_SIZES[kind],
            "input": {
                "presence": "bassinet crop, square resize, RGB",
                "face": "bassinet crop, square resize, RGB",
                "eyes": f"face box + {pp.EYE_MARGIN:.0%} margin, square resize, gray replicated to 3 channels",
            }[kind],
            **(
                {"outputs": list(FACE_OUTPUTS)}
                if kind == "face"
                else {"classes": list(PRESENCE_CLASSES if kind == "presence" else EYE_CLASSES)}
            ),
            "mean": list(pp.MEAN),
            "std": list(pp.STD),
            "train_count": len(data[f"{kind}_x"]),
            "val_count": len(val[f"{kind}_x"]),
            "validation": metrics,
            "training": fit_info,
            "onnx_max_abs_diff_vs_torch": diff,
            "bytes": path.stat().st_size,
        }
    digest = hashlib.sha256(b"".join((out_dir / MODEL_FILES[k]).read_bytes() for k in MODEL_FILES)).hexdigest()[:8]
    now = datetime.now(UTC)
    manifest = {
        "version": f"sample-{now:%Y%m%d}-{digest}" + ("-quick" if quick else ""),
        "trained_on": "built-in sample camera only (synthetic)",
        "date": now.isoformat(timespec="seconds"),
        "seeds": {"train": TRAIN_SEED, "val": VAL_SEED, "torch": TORCH_SEED},
        "wall_time_s": round(time.time() - start, 1),
        "torch_threads": threads,
        "torch_version": torch.__version__,
        "models": entries,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return {"manifest": manifest, "models": models, "val": val}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/weights"))
    ap.add_argument("--quick", action="store_true", help="tiny run for tests (< 60 s), weights are useless")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = ap.parse_args(argv)
    result = train_all(args.out, quick=args.quick, threads=args.threads)
    m = result["manifest"]
    print(f"wrote {args.out}/ version {m['version']} in {m['wall_time_s']} s")
    for kind, e in m["models"].items():
        print(f"  {kind}: {e['bytes'] / 1e6:.2f} MB  {json.dumps(e['validation'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
