"""The baseline for bench/tick.py: the same tick, but the cascade runs in torch (as a naive build would).

Same capture, diff, store and alert code; only `Cascade._infer` runs torch networks built by
models/networks.py. Weights are random (timing does not depend on their values) unless a
`models/weights/*.pt` state dict exists.

    python bench/torch_tick.py FRAME.jpg      # with BILBO_DATA_DIR pointing at a scratch dir
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch  # importing torch is the cost this baseline measures
import torchvision  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import monitor  # noqa: E402
from models.cascade import Cascade  # noqa: E402
from models.networks import build  # noqa: E402


class TorchCascade(Cascade):
    """The ONNX cascade's logic with torch doing the inference."""

    def __init__(self, settings) -> None:
        torch.set_num_threads(2)
        self._nets = {}
        for kind in ("presence", "face", "eyes"):
            net = build(kind).eval()
            state = settings.models_dir / f"{kind}.pt"
            if state.is_file():
                net.load_state_dict(torch.load(state, map_location="cpu"))
            self._nets[kind] = net
        self.manifest = json.loads((settings.models_dir / "manifest.json").read_text())
        self.version = "torch-baseline"
        self.presence_threshold = 0.0  # always run all three stages, like the ONNX run on a present baby
        self.face_threshold = 0.0
        validated = self.manifest["models"]["eyes"]["threshold"]
        self.eye_threshold = validated if settings.eye_threshold is None else settings.eye_threshold

    def _infer(self, kind: str, x):
        with torch.inference_mode():
            return self._nets[kind](torch.from_numpy(x)).numpy()


class TorchLazyCascade(monitor.LazyCascade):
    def get(self) -> Cascade:
        if self._cascade is None:
            self._cascade = TorchCascade(self._settings)
        return self._cascade


if __name__ == "__main__":
    monitor.LazyCascade = TorchLazyCascade
    sys.exit(monitor.main(["--once", "--source", sys.argv[1], "--config", "/nonexistent.env"]))
