"""The three networks: torchvision MobileNetV3-Small (from scratch, or an ImageNet file given with
--weights) with swapped heads. Training only (torch)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import mobilenet_v3_small

from models.preprocess import EYE_SIZE, FACE_SIZE, PRESENCE_SIZE

WIDTH_MULT = 0.5  # keeps each exported model around 1 MB
# How many networks, trained alike from seeds SEED, SEED+1, ..., a stage ships as (their mean, one ONNX file).
# Chosen on validation. Eyes: three members gave macro F1 0.964 against 0.952-0.960 for each alone (every crop).
# Face: three members found 96.8% of the real adult faces at IoU 0.5 against 90.3-93.5% alone, 100% of the
# sample camera's against 96.7-98.3%, with a higher mean IoU on every source. Presence: no clear gain, one.
MEMBERS = {"presence": 1, "face": 3, "eyes": 3}
PRESENCE_CLASSES = ("not_present", "present")
EYE_CLASSES = ("closed", "open")
FACE_OUTPUTS = ("x1", "y1", "x2", "y2", "face_logit")  # box normalised 0..1 to the crop (sigmoid) + logit
INPUT_SIZES = {"presence": PRESENCE_SIZE, "face": FACE_SIZE, "eyes": EYE_SIZE}


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


class FaceNet(nn.Module):
    """Face box regressor: keeps the 4x4 spatial grid (a 1x1 conv squeezes channels) so position survives."""

    def __init__(self, size: int = FACE_SIZE, weights: str | None = None):
        super().__init__()
        m = _backbone(weights)
        channels = m.classifier[0].in_features
        cells = ((size + 31) // 32) ** 2
        m.avgpool = nn.Sequential(nn.Conv2d(channels, 32, 1), nn.BatchNorm2d(32), nn.Hardswish())
        m.classifier = _head(32 * cells, 5)
        self.net = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return torch.cat([torch.sigmoid(out[:, :4]), out[:, 4:]], dim=1)


def logit_of_mean_probability(logits: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """logit(mean over `dim` of sigmoid(logits)) = log(mean p) - log(mean (1 - p)), each a log-sum-exp of
    log-sigmoids: exact, with no clamp, and stable where the probabilities sit near 0 or 1 (a clamped
    log(p / (1 - p)) loses float32 precision there: 1.7e-4 between the cry ensemble's ONNX and torch logits, 1e-6
    this way). The face stage's mean and the cry model's mean both use it."""
    return torch.logsumexp(F.logsigmoid(logits), dim) - torch.logsumexp(F.logsigmoid(-logits), dim)


class MeanOfMembers(nn.Module):
    """Several networks of one stage as one network (one ONNX file, one session, the tick's decoding unchanged).

    Classifiers: the mean of their class probabilities, returned as log-probabilities, so that the tick's
    softmax gives that mean back. Face box: the mean box, and the logit of the mean face-found probability."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.face = isinstance(members[0], FaceNet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members])
        if self.face:
            return torch.cat([outs[:, :, :4].mean(dim=0), logit_of_mean_probability(outs[:, :, 4:])], dim=1)
        return torch.log(outs.softmax(dim=2).mean(dim=0))


def build_member(kind: str, weights: str | None = None) -> nn.Module:
    """One trainable network of a stage (a stage ships MEMBERS[kind] of them)."""
    if kind == "face":
        return FaceNet(weights=weights)
    if kind in ("presence", "eyes"):
        return build_classifier(2, weights)
    raise ValueError(f"unknown model kind {kind!r}")


def build(kind: str, weights: str | None = None) -> nn.Module:
    """The network a stage ships as: MEMBERS[kind] classifiers averaged, or the one network."""
    if MEMBERS.get(kind, 1) > 1:
        return MeanOfMembers([build_member(kind, weights) for _ in range(MEMBERS[kind])])
    return build_member(kind, weights)
