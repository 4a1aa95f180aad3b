"""The three networks: torchvision MobileNetV3-Small (from scratch, or an ImageNet file given with
--weights) with swapped heads. Training only (torch)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import mobilenet_v3_small

from models.preprocess import FACE_MAPS, FACE_SIZE, POINTS

WIDTH_MULT = 0.5  # keeps each exported model around 1 MB
# How many networks, trained alike from seeds SEED, SEED+1, ..., a stage ships as (their mean, one ONNX file).
# Chosen on validation. Eyes: three members gave macro F1 0.964 against 0.952-0.960 for each alone (every crop).
# Face: one dense network (FaceNet); three of the old box regressors were needed to steady their boxes, a heat map
# peak is steady by itself, and at 192 px one member takes a third of `make weights`' hour. Presence: one.
MEMBERS = {"presence": 1, "face": 1, "eyes": 3}
PRESENCE_CLASSES = ("not_present", "present")
EYE_CLASSES = ("closed", "open")
FACE_OUTPUTS = FACE_MAPS  # dense maps on the FACE_STRIDE grid (models/preprocess.py decodes them)


def _backbone(weights: str | None = None) -> nn.Module:
    m = mobilenet_v3_small(weights=None, width_mult=WIDTH_MULT)
    if weights:  # a torchvision ImageNet state dict the user already has (only matches width_mult=1.0)
        state = torch.load(weights, map_location="cpu")
        m.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier")}, strict=False)
    # torchvision's BN momentum is 0.01 (tuned for ImageNet's long epochs); on a few thousand images
    # the running statistics would lag far behind the weights and eval mode would predict one class.
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = 0.1
    return m


def _head(in_features: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, 128), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(128, n_out))


def build_classifier(n_classes: int = 2, weights: str | None = None) -> nn.Module:
    """Presence and eye state: global-pooled features -> logits."""
    m = _backbone(weights)
    m.classifier = _head(m.classifier[0].in_features, n_classes)
    return m


def _mix(width: int) -> nn.Sequential:
    """Two depthwise-separable 3x3 convolutions over a dense head's summed features (the face maps, the eye maps)."""
    return nn.Sequential(
        nn.Conv2d(width, width, 3, padding=1, groups=width),
        nn.Conv2d(width, width, 1),
        nn.BatchNorm2d(width),
        nn.Hardswish(),
        nn.Conv2d(width, width, 3, padding=1, groups=width),
        nn.Conv2d(width, width, 1),
        nn.BatchNorm2d(width),
        nn.Hardswish(),
    )


class FaceNet(nn.Module):
    """Dense face finder (CenterNet-style) on the MobileNetV3-Small backbone: the stride-32 features, upsampled and
    added to the stride-16 ones, give per cell of a 16 px grid a face-centre logit, the centre's offset in the cell,
    the box size and both eye centres (FACE_MAPS). One box regressed from the pooled image (the old head) did not
    find a real infant's face: it is small, anywhere, at any angle; a dense head is translation-equivariant.

    Measured on the validation groups: an 8 px grid (the stride-8 features added too, eye offsets weighted 8)
    held the face less often (syrip 0.67 vs 0.74, baby_photos 0.77 vs 0.82) and placed the eyes no better, so the
    16 px grid ships. Its eye centres are its weak part: a median ~0.8 eye distances off on real infants."""

    def __init__(self, size: int = FACE_SIZE, weights: str | None = None, width: int = 64):
        super().__init__()
        features = _backbone(weights).features
        self.to16, self.to32 = features[:9], features[9:]
        with torch.no_grad():
            c16 = self.to16(torch.zeros(1, 3, 64, 64))
            c32 = self.to32(c16)
        self.lat16 = nn.Conv2d(c16.shape[1], width, 1)
        self.lat32 = nn.Conv2d(c32.shape[1], width, 1)
        self.mix = _mix(width)
        self.out = nn.Conv2d(width, len(FACE_MAPS), 1)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[0] = -2.19  # a prior of 0.1 on every cell, as CenterNet starts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f16 = self.to16(x)
        f32 = self.to32(f16)
        up = F.interpolate(self.lat32(f32), size=f16.shape[-2:], mode="nearest")
        return self.out(self.mix(self.lat16(f16) + up))


class PointNet(nn.Module):
    """The face stage's eye finder: on the face box's surroundings (pp.points_input), one heat map per point of
    pp.POINTS (both eyes, the nose) on an 8 px grid, read by soft-argmax. The stride-16 and stride-32 features are
    upsampled and added to the stride-8 ones, so each cell sees the whole face (which eye is the left one depends on
    where the nose and mouth are) and still places its point to a fraction of an eye.

    Why a network of its own: FaceNet's eye offsets, regressed from the face's centre cell in box widths, were a
    median 0.5-1 eye distances off on real infants, and an eye cut there shows a cheek or a brow."""

    def __init__(self, weights: str | None = None, width: int = 48):
        super().__init__()
        features = _backbone(weights).features
        self.to8, self.to16, self.to32 = features[:4], features[4:9], features[9:]
        with torch.no_grad():
            c8 = self.to8(torch.zeros(1, 3, 64, 64))
            c16 = self.to16(c8)
            c32 = self.to32(c16)
        self.lat8 = nn.Conv2d(c8.shape[1], width, 1)
        self.lat16 = nn.Conv2d(c16.shape[1], width, 1)
        self.lat32 = nn.Conv2d(c32.shape[1], width, 1)
        self.mix = _mix(width)
        self.out = nn.Conv2d(width, len(POINTS), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8 = self.to8(x)
        f16 = self.to16(f8)
        f32 = self.to32(f16)
        p16 = self.lat16(f16) + F.interpolate(self.lat32(f32), size=f16.shape[-2:], mode="nearest")
        p8 = self.lat8(f8) + F.interpolate(p16, size=f8.shape[-2:], mode="nearest")
        return self.out(self.mix(p8))


def logit_of_mean_probability(logits: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """logit(mean over `dim` of sigmoid(logits)) = log(mean p) - log(mean (1 - p)), each a log-sum-exp of
    log-sigmoids: exact, with no clamp, and stable where the probabilities sit near 0 or 1 (a clamped
    log(p / (1 - p)) loses float32 precision there: 1.7e-4 between the cry ensemble's ONNX and torch logits, 1e-6
    this way). The face stage's mean and the cry model's mean both use it."""
    return torch.logsumexp(F.logsigmoid(logits), dim) - torch.logsumexp(F.logsigmoid(-logits), dim)


class MeanOfMembers(nn.Module):
    """Several networks of one stage as one network (one ONNX file, one session, the tick's decoding unchanged).

    Classifiers: the mean of their class probabilities, returned as log-probabilities, so that the tick's
    softmax gives that mean back. Face maps: the logit of the mean heat probability, the mean of the rest."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.face = isinstance(members[0], FaceNet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members])
        if self.face:
            return torch.cat([logit_of_mean_probability(outs[:, :, :1]), outs[:, :, 1:].mean(dim=0)], dim=1)
        return torch.log(outs.softmax(dim=2).mean(dim=0))


def build_member(kind: str, weights: str | None = None) -> nn.Module:
    """One trainable network of a stage (a stage ships MEMBERS[kind] of them)."""
    if kind == "face":
        return FaceNet(weights=weights)
    if kind == "points":
        return PointNet(weights=weights)
    if kind in ("presence", "eyes"):
        return build_classifier(2, weights)
    raise ValueError(f"unknown model kind {kind!r}")


def build(kind: str, weights: str | None = None) -> nn.Module:
    """The network a stage ships as: MEMBERS[kind] classifiers averaged, or the one network."""
    if MEMBERS.get(kind, 1) > 1:
        return MeanOfMembers([build_member(kind, weights) for _ in range(MEMBERS[kind])])
    return build_member(kind, weights)
