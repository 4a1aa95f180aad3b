"""Train the shipped cascade (presence, face box, eye state) on real + synthetic data; export ONNX.

    python -m train.vision [--data ../shared/data] [--out models/weights] [--threads 2] [--quick]
                           [--cache artifacts/vision_data.npz] [--weights imagenet.pth]
                           [--stages face] [--device cuda]

--stages trains only those stages; the others keep their ONNX files in --out (or come from --torch-out). --device
cuda trains on a GPU where one is lent (the shipped weights are made on the CPU; augmentation draws the same
random numbers either way, the arithmetic differs in the last bits).

One readable loop for all three stages: data from train/datasets.py (cut with models/preprocess.py,
the tick's own code), MobileNetV3-Small from scratch (or --weights, a torchvision ImageNet file
already on disk), Adam + cosine schedule, class-weighted losses, augmentation (below), early
stopping on validation loss with the best epoch kept by copy.deepcopy, ONNX export checked against
torch, then train/evaluate.py scores the exported models on the held-out test split and writes
manifest.json + train/reports/vision.md. Deterministic for a given thread count.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models import preprocess as pp
from models.networks import MEMBERS, MeanOfMembers, build, build_member

# ---- configuration -------------------------------------------------------------------------
SEED = 0
# patience None: no early stop. Under the one-cycle schedule the learning rate is still high for most of a run and a
# network's validation loss can rise for several epochs before the low-rate epochs bring its best (epoch 20 of 20 for
# two of three presence seeds); stopped after 5 epochs without a new best, presence seed 1 kept epoch 8 (validation
# loss 0.266) where running out its 20 epochs reached 0.206 (train/reports/experiments.md). The best epoch is kept.
FULL = {"epochs": {"presence": 20, "face": 16, "eyes": 12}, "patience": None, "limit": 1.0}
QUICK = {"epochs": {"presence": 1, "face": 1, "eyes": 1}, "patience": None, "limit": 0.05}
BATCH, LR, WEIGHT_DECAY = 64, 2e-3, 1e-4
EYE_POINT_WEIGHT = 4  # face loss: the eye offsets (in face widths, ~0.13) against the heat map and box terms
AUG = {  # probabilities / ranges of the training augmentation
    "brightness": 0.35,  # x * U(1 - b, 1 + b)
    "contrast": 0.35,
    "gray_p": 0.3,  # infrared look: grayscale + sensor noise (eye inputs are gray already)
    "noise_sd": 0.06,
    "blur_p": 0.25,
    "occlude_p": 0.3,  # a random grey rectangle of 10-30% of the side (hand, blanket, glasses glare)
    "rotate_deg": 12,  # classifiers only; the face box gets scale/shift only (a rotated box is not a box)
    "scale": 0.15,
    "shift": 0.08,
    "glint_p": 0.3,  # eyes: 1-2 specular glints (IR light on glasses/cornea): the worst held-out errors
    "frame_p": 0.2,  # eyes: a dark glasses-frame bar across the top or bottom of the crop
    "ir_p": 0.3,  # eyes: the infrared look on a daylight crop (no infrared infant eye exists here): flat, noisy
}


# ---- augmentation (on 0..1 float tensors, before normalisation) --------------------------------
def _affine(x: torch.Tensor, g: torch.Generator, rotate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(x)
    u = lambda: torch.rand(n, generator=g) * 2 - 1  # noqa: E731
    a = 1 + AUG["scale"] * u()
    ang = torch.deg2rad(AUG["rotate_deg"] * u()) if rotate else torch.zeros(n)
    t = AUG["shift"] * torch.stack([u(), u()], 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = a * torch.cos(ang), -a * torch.sin(ang)
    theta[:, 1, 0], theta[:, 1, 1] = a * torch.sin(ang), a * torch.cos(ang)
    theta[:, :, 2] = t
    theta = theta.to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False), theta


def _face_geometry(y: torch.Tensor, flip: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Move FACE_TARGET vectors (input pixels) with a left-right flip and then the affine warp `theta` (scale/shift:
    input = a * output + t in [-1, 1] units, so output = (input - t) / a). A flip swaps the eyes: the baby's left
    eye of the mirror image is its right eye of the original."""
    y = y.clone()
    f = flip & (y[:, 0] > 0.5)
    y[f, 1] = size - y[f, 1]
    left_x, left_y = size - y[f, 7], y[f, 8].clone()
    y[f, 7], y[f, 8] = size - y[f, 5], y[f, 6]
    y[f, 5], y[f, 6] = left_x, left_y
    a, t = theta[:, 0, 0], theta[:, :, 2]
    for xi, yi in ((1, 2), (5, 6), (7, 8)):
        y[:, xi] = ((y[:, xi] / size * 2 - 1 - t[:, 0]) / a + 1) / 2 * size
        y[:, yi] = ((y[:, yi] / size * 2 - 1 - t[:, 1]) / a + 1) / 2 * size
    y[:, 3], y[:, 4] = y[:, 3] / a, y[:, 4] / a
    return torch.where(y[:, :1] > 0.5, y, torch.zeros_like(y))


def augment(x: torch.Tensor, y: torch.Tensor, kind: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch where it lies (CPU or GPU); the random numbers come from the CPU generator g either way, so
    a seed gives the same augmentation on both."""
    n, dev = len(x), x.device
    r = lambda: torch.rand(n, 1, 1, 1, generator=g).to(dev)  # noqa: E731
    y = y.to(dev)
    flip = (torch.rand(n, generator=g) < 0.5).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x, theta = _affine(x, g, rotate=kind != "face")  # the face crops were turned when they were cut
    if kind == "face":
        y = _face_geometry(y, flip, theta, x.shape[-1])
        inside = (y[:, 1] > 0) & (y[:, 1] < x.shape[-1]) & (y[:, 2] > 0) & (y[:, 2] < x.shape[-1])
        y = torch.where((y[:, :1] > 0.5) & ~inside[:, None], torch.full_like(y, -1.0), y)  # -1: ignore
    x = x * (1 + AUG["brightness"] * (2 * r() - 1))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + AUG["contrast"] * (2 * r() - 1)) + mean
    if kind != "eyes":
        luma = torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)
        gray = (x * luma).sum(1, keepdim=True).expand_as(x)
        x = torch.where(r() < AUG["gray_p"], gray, x)
    x = x + torch.randn(x.shape, generator=g).to(dev) * AUG["noise_sd"] * r()
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x = torch.where(r() < AUG["blur_p"], blurred, x)
    h, w = x.shape[-2:]
    if kind == "eyes":
        x = _glasses(x, g)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        flat = (x - mean) * (0.4 + 0.4 * r()) + mean + torch.randn(x.shape, generator=g).to(dev) * 0.05
        x = torch.where(r() < AUG["ir_p"], flat, x)
    occ = torch.rand(n, generator=g) < AUG["occlude_p"]
    for i in torch.nonzero(occ).flatten().tolist():
        oh, ow = (int(s * (0.1 + 0.2 * float(torch.rand(1, generator=g)))) for s in (h, w))
        oy, ox = (
            int(torch.randint(0, h - oh + 1, (1,), generator=g)),
            int(torch.randint(0, w - ow + 1, (1,), generator=g)),
        )
        x[i, :, oy : oy + oh, ox : ox + ow] = float(torch.rand(1, generator=g))
    return x.clamp(0, 1), y


def _glasses(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Eye crops: bright round glints and dark frame bars, as infrared glasses produce them."""
    n, _c, h, w = x.shape
    yy, xx = torch.meshgrid(
        torch.arange(h, device=x.device).float(), torch.arange(w, device=x.device).float(), indexing="ij"
    )
    u = lambda: float(torch.rand(1, generator=g))  # noqa: E731
    for i in range(n):
        if u() < AUG["glint_p"]:
            for _ in range(1 + int(u() < 0.4)):
                cy, cx, r = u() * h, u() * w, 1.5 + 4 * u()
                blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
                x[i] = torch.maximum(x[i], blob.expand_as(x[i]) * (0.85 + 0.15 * u()))
        if u() < AUG["frame_p"]:
            t = max(2, int(h * (0.05 + 0.08 * u())))
            y0 = int(h * 0.12 * u()) if u() < 0.5 else int(h - t - h * 0.12 * u())
            x[i, :, y0 : y0 + t, :] = x[i, :, y0 : y0 + t, :] * 0.25
    return x


# ---- data → tensors -----------------------------------------------------------------------------
def to_u8_rgb(x: np.ndarray) -> np.ndarray:
    """Stored eye crops are single-channel: replicate to 3 like pp.eye_gray does."""
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 3 else x


def _float01(x_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(to_u8_rgb(x_u8), -1, 1))).float() / 255.0


def _norm(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(pp.MEAN, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor(pp.STD, device=x01.device).view(1, 3, 1, 1)
    return (x01 - mean) / std


def predict(model: torch.nn.Module, x_u8: np.ndarray) -> torch.Tensor:
    """The model's outputs (on the CPU) for uint8 inputs, run on whichever device holds the model."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [
                model(torch.from_numpy(pp.normalise(to_u8_rgb(x_u8[i : i + 256]))).to(device)).cpu()
                for i in range(0, len(x_u8), 256)
            ]
        )


# ---- losses ---------------------------------------------------------------------------------------
def face_heat_target(y: torch.Tensor, cells: int, size: int) -> torch.Tensor:
    """(N, cells, cells) Gaussian at each face centre (1 at its own cell), sigma a sixth of the face in cells."""
    stride = size / cells
    grid = (torch.arange(cells, dtype=torch.float32, device=y.device) + 0.5).view(1, 1, cells)
    cx, cy = (y[:, 1] / stride).view(-1, 1, 1), (y[:, 2] / stride).view(-1, 1, 1)
    sigma = (torch.maximum(y[:, 3], y[:, 4]) / stride / 6).clamp(min=0.5).view(-1, 1, 1)
    heat = torch.exp(-((grid - cx) ** 2 + (grid.transpose(1, 2) - cy) ** 2) / (2 * sigma**2))
    ix, iy = (y[:, 1] / stride).long().clamp(0, cells - 1), (y[:, 2] / stride).long().clamp(0, cells - 1)
    heat[torch.arange(len(y), device=y.device), iy, ix] = 1.0
    return heat * (y[:, 0] > 0.5).float().view(-1, 1, 1)


def face_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CenterNet's loss: a penalty-reduced focal loss on the heat map, L1 on the offset, size and eye maps at the
    face's cell and its 8 neighbours (the decoder reads the most confident cell, which may be a neighbour)."""
    keep = y[:, 0] >= 0  # -1: an augmentation moved the face out of the input
    out, y = out[keep], y[keep]
    cells = out.shape[-1]
    size = pp.FACE_SIZE
    stride = size / cells
    heat_t = face_heat_target(y, cells, size)
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = heat_t >= 1.0
    focal = torch.where(pos, -((1 - p) ** 2) * torch.log(p), -((1 - heat_t) ** 4) * p**2 * torch.log(1 - p))
    loss = focal.sum() / max(1, int(pos.sum()))
    found = torch.nonzero(y[:, 0] > 0.5).flatten()
    if len(found) == 0:
        return loss
    reg, wsum = out.new_zeros(()), 0.0
    yf = y[found]
    cx, cy = yf[:, 1] / stride, yf[:, 2] / stride
    size_t = torch.log((yf[:, 3:5] / size).clamp(min=1e-3))
    eyes_t = torch.stack(
        [(yf[:, 5] - yf[:, 1]), (yf[:, 6] - yf[:, 2]), (yf[:, 7] - yf[:, 1]), (yf[:, 8] - yf[:, 2])], 1
    )
    eyes_t = eyes_t / yf[:, 3:4].clamp(min=1.0)
    eyes_known = yf[:, 9:10] > 0.5
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ix, iy = cx.long() + dx, cy.long() + dy
            ok = (ix >= 0) & (ix < cells) & (iy >= 0) & (iy < cells)
            if not ok.any():
                continue
            w = 1.0 if dx == dy == 0 else 0.5
            v = out[found[ok], :, iy[ok], ix[ok]]  # (k, channels)
            off_t = torch.stack([cx[ok] - (ix[ok] + 0.5), cy[ok] - (iy[ok] + 0.5)], 1)
            term = F.l1_loss(v[:, 1:3], off_t, reduction="sum") + F.l1_loss(v[:, 3:5], size_t[ok], reduction="sum")
            term = term + EYE_POINT_WEIGHT * (F.l1_loss(v[:, 5:9], eyes_t[ok], reduction="none") * eyes_known[ok]).sum()
            reg, wsum = reg + w * term, wsum + w * int(ok.sum())
    return loss + reg / max(1.0, wsum)


def make_loss(kind: str, y_train: np.ndarray):
    """Face: face_loss. Classifiers: class-weighted cross-entropy (inverse class frequency)."""
    if kind == "face":
        return face_loss
    freq = np.bincount(y_train, minlength=2).astype(np.float64)
    weight = torch.tensor(freq.sum() / (2 * np.maximum(freq, 1)), dtype=torch.float32)
    return lambda out, y: F.cross_entropy(out, y, weight=weight.to(out.device))


# ---- the loop -------------------------------------------------------------------------------------
def fit(
    kind: str,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    epochs: int,
    patience: int | None,
    weights: str | None = None,
    epoch_hook=None,
    seed: int = SEED,
    device: str = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Train one network; returns the model (on the CPU) holding the best validation epoch's weights.

    patience: stop after this many epochs without a new best validation loss; None runs every epoch (FULL's choice).

    epoch_hook(model, epoch) runs after each epoch's training (tests use it to spoil an epoch). device: where the
    network trains ("cuda" where there is one); augmentation and its random numbers stay on the CPU either way."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build_member(kind, weights).to(device)
    loss_fn = make_loss(kind, ytr)
    ytr_t, yva_t = torch.from_numpy(ytr), torch.from_numpy(yva)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = max(1, epochs * math.ceil(len(xtr) / BATCH))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.15)
    order_rng = np.random.default_rng(seed)
    best, best_loss, best_epoch, history = None, float("inf"), -1, []
    for epoch in range(epochs):
        model.train()
        order = order_rng.permutation(len(xtr))
        bar = tqdm(range(0, len(order), BATCH), desc=f"{kind} {epoch + 1}/{epochs}", leave=False)
        for i in bar:
            idx = np.sort(order[i : i + BATCH])
            if len(idx) < 2:
                continue
            x, y = augment(_float01(xtr[idx]).to(device), ytr_t[idx], kind, g)
            loss = loss_fn(model(_norm(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < steps:
                sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if epoch_hook is not None:
            epoch_hook(model, epoch)
        val_loss = float(loss_fn(predict(model, xva), yva_t))
        history.append(round(val_loss, 4))
        tqdm.write(f"{kind} epoch {epoch + 1}: val loss {val_loss:.4f}")
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), val_loss, epoch
        elif patience is not None and epoch - best_epoch >= patience:
            tqdm.write(f"{kind}: early stop, best epoch {best_epoch + 1}")
            break
    model.load_state_dict(best)
    model.to("cpu").eval()
    return model, {"best_epoch": best_epoch + 1, "best_val_loss": round(best_loss, 4), "val_loss_history": history}


def fit_stage(
    kind: str, xtr, ytr, xva, yva, epochs: int, patience: int | None, weights: str | None = None, device: str = "cpu"
):
    """The network a stage ships as: MEMBERS[kind] networks from seeds SEED, SEED+1, ..., each kept at its own
    best validation epoch, averaged by MeanOfMembers; a one-member stage is one `fit`."""
    n = MEMBERS.get(kind, 1)
    if n == 1:
        return fit(kind, xtr, ytr, xva, yva, epochs, patience, weights, device=device)
    members, infos = [], []
    for seed in range(SEED, SEED + n):
        tqdm.write(f"{kind}: member {seed - SEED + 1}/{n} (seed {seed})")
        model, info = fit(kind, xtr, ytr, xva, yva, epochs, patience, weights, seed=seed, device=device)
        members.append(model)
        infos.append(info)
    ensemble = MeanOfMembers(members).eval()
    val_loss = float(make_loss(kind, ytr)(predict(ensemble, xva), torch.from_numpy(yva)))
    return ensemble, {
        "members": n,
        "seeds": list(range(SEED, SEED + n)),
        **{k: [i[k] for i in infos] for k in infos[0]},
        "ensemble_val_loss": round(val_loss, 4),
    }


# ---- export ---------------------------------------------------------------------------------------
def export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    torch.onnx.export(
        model.eval(),
        (torch.zeros(1, 3, size, size),),
        str(path),
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        dynamo=False,
    )


def onnx_max_diff(model: torch.nn.Module, path: Path, x_u8: np.ndarray) -> float:
    """Largest |ONNX - torch| over the given inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": pp.normalise(to_u8_rgb(x_u8))})[0]
    return float(np.abs(got - predict(model, x_u8).numpy()).max())


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_and_evaluate(models: dict, fits: dict, arrays: dict, out_dir: Path, train_info: dict, report, data_root):
    from train import evaluate

    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, model in models.items():
        if model is None:
            continue  # a stage not trained in this run keeps its ONNX file in out_dir
        path = out_dir / f"{kind}.onnx"
        export_onnx(model, pp.INPUT_SIZES[kind], path)
        diff = onnx_max_diff(model, path, arrays[f"{kind}_val_x"][:16])
        if diff > 1e-3:
            raise RuntimeError(f"{path}: ONNX output differs from torch by {diff}")
        fits[kind]["onnx_max_abs_diff_vs_torch"] = diff
    return evaluate.evaluate_and_write(arrays, out_dir, fits, train_info, report, data_root)


def train_all(
    data_root: Path,
    out_dir: Path,
    quick: bool = False,
    threads: int = 2,
    cache: Path | None = None,
    weights: str | None = None,
    report: Path | None = Path("train/reports"),
    torch_out: Path | None = None,
    stages: tuple[str, ...] = ("presence", "face", "eyes"),
    device: str = "cpu",
    epochs: dict[str, int] | None = None,
) -> dict:
    """Train `stages`; any other stage is loaded from torch_out (a previous run of this command) where it holds the
    stage's state dict, else its ONNX file and manifest entry in out_dir are kept as they are. `epochs` overrides
    the configuration's epochs for the stages it names."""
    from train import datasets

    cfg = QUICK if quick else FULL
    cfg = {**cfg, "epochs": {**cfg["epochs"], **(epochs or {})}}
    torch.set_num_threads(threads)
    start = time.time()
    arrays = datasets.load_or_build(data_root, cache, cfg["limit"])
    models, fits = {}, {}
    for kind in ("presence", "face", "eyes"):
        if kind not in stages and not (torch_out is not None and (torch_out / f"{kind}.pt").is_file()):
            if not (out_dir / f"{kind}.onnx").is_file():
                raise SystemExit(f"{kind} is not trained in this run and {out_dir / kind}.onnx does not exist")
            models[kind] = None
            fits[kind] = json.loads((out_dir / "manifest.json").read_text())["models"][kind].get("training", {})
            fits[kind]["note"] = f"kept from the ONNX file already in {out_dir}"
            continue
        if kind not in stages:
            models[kind] = build(kind)
            models[kind].load_state_dict(torch.load(torch_out / f"{kind}.pt", map_location="cpu"))
            models[kind].eval()
            fits[kind] = json.loads((torch_out / "fits.json").read_text())["fits"][kind]
            fits[kind]["note"] = f"kept from the earlier run in {torch_out}"
            continue
        a = lambda s, f: arrays[f"{kind}_{s}_{f}"]  # noqa: E731, B023
        models[kind], fits[kind] = fit_stage(
            kind,
            a("train", "x"),
            a("train", "y"),
            a("val", "x"),
            a("val", "y"),
            cfg["epochs"][kind],
            cfg["patience"],
            weights,
            device,
        )
        if torch_out is not None:  # the trained state dicts, for exporting elsewhere (--from-torch)
            torch_out.mkdir(parents=True, exist_ok=True)
            torch.save(models[kind].state_dict(), torch_out / f"{kind}.pt")
            saved = json.loads((torch_out / "fits.json").read_text()) if (torch_out / "fits.json").is_file() else {}
            saved.setdefault("fits", {})[kind] = fits[kind]
            (torch_out / "fits.json").write_text(json.dumps(saved, indent=1))
    train_info = {
        "wall_time_s": round(time.time() - start, 1),
        "torch_threads": threads,
        "device": device,
        "torch_version": torch.__version__,
        "init": f"ImageNet file {weights}" if weights else "from scratch (random init, no download)",
        "seed": SEED,
        "quick": quick,
        "epochs": cfg["epochs"],
        "patience": cfg["patience"],
        "augmentation": AUG,
    }
    train_info["stages_trained_in_this_run"] = list(stages)
    if torch_out is not None:
        saved = json.loads((torch_out / "fits.json").read_text())
        saved["train_info"] = {**saved.get("train_info", {}), **train_info}
        (torch_out / "fits.json").write_text(json.dumps(saved, indent=1))
    if not _has_onnxruntime():
        print("onnxruntime missing: trained state dicts only; export with --from-torch")
        return {"manifest": None, "models": models, "arrays": arrays}
    manifest = export_and_evaluate(models, fits, arrays, out_dir, train_info, report, data_root)
    return {"manifest": manifest, "models": models, "arrays": arrays}


def from_torch(torch_dir: Path, data_root: Path, out_dir: Path, cache: Path | None, report) -> dict:
    """Export + evaluate state dicts trained elsewhere by this script (e.g. the same command with more threads)."""
    from train import datasets

    saved = json.loads((torch_dir / "fits.json").read_text())
    models = {}
    for kind in ("presence", "face", "eyes"):
        models[kind] = build(kind)
        models[kind].load_state_dict(torch.load(torch_dir / f"{kind}.pt", map_location="cpu"))
        models[kind].eval()
    arrays = datasets.load_or_build(data_root, cache, 1.0)
    return {
        "manifest": export_and_evaluate(models, saved["fits"], arrays, out_dir, saved["train_info"], report, data_root)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("models/weights"))
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="npz of the cut data sets (built if missing)")
    ap.add_argument("--weights", default=None, help="optional torchvision ImageNet state dict on disk")
    ap.add_argument("--report", type=Path, default=Path("train/reports"))
    ap.add_argument("--quick", action="store_true", help="tiny run for tests; weights are useless")
    ap.add_argument("--torch-out", type=Path, default=None, help="also save the trained torch state dicts here")
    ap.add_argument("--stages", default="presence,face,eyes", help="stages to train; others come from --torch-out")
    ap.add_argument("--from-torch", type=Path, default=None, help="skip training: export + evaluate saved state dicts")
    ap.add_argument(
        "--device", default="cpu", help="where the networks train: cpu (default) or cuda, where there is one"
    )
    ap.add_argument("--epochs", default="", help="e.g. face=32,eyes=12: epochs for these stages (default: FULL's)")
    args = ap.parse_args(argv)
    epochs = {}
    for item in filter(None, args.epochs.split(",")):
        stage, _, count = item.partition("=")
        if stage not in FULL["epochs"] or not count.isdigit() or int(count) < 1:
            ap.error(f"--epochs {item!r}: give STAGE=N, a stage of {', '.join(FULL['epochs'])} and N >= 1")
        epochs[stage] = int(count)
    if args.from_torch:
        result = from_torch(args.from_torch, args.data, args.out, args.cache, args.report)
    else:
        result = train_all(
            args.data,
            args.out,
            args.quick,
            args.threads,
            args.cache,
            args.weights,
            args.report,
            args.torch_out,
            tuple(args.stages.split(",")),
            args.device,
            epochs,
        )
    m = result["manifest"]
    if m is None:
        return 0
    print(f"wrote {args.out}/ version {m['version']} in {m['training']['wall_time_s']} s")
    print(json.dumps(m["headline"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
