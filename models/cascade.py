"""The tick's inference cascade: presence -> face box -> eye state, with ONNX Runtime (no torch).

Weights and their manifest live in one folder (models/weights by default); `make weights`
rebuilds them from the sample camera. Preprocessing comes from models/preprocess.py, the same
functions the training script uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import preprocess as pp

MODEL_FILES = {"presence": "presence.onnx", "face": "face.onnx", "eyes": "eyes.onnx"}
MANIFEST = "manifest.json"
_REBUILD = "rebuild them with `make weights` (python -m train.sample_models --out models/weights)"


class ModelError(RuntimeError):
    """Missing or corrupt weights; the message names the file and how to rebuild."""


@dataclass(frozen=True)
class CascadeResult:
    presence_label: str  # 'present' | 'not_present'
    presence_conf: float  # probability of the chosen label
    face_box: tuple[float, float, float, float] | None  # x1, y1, x2, y2 in frame pixels
    face_conf: float | None
    eyes_label: str | None  # 'open' | 'closed' | 'unknown'; None when not run
    eyes_conf: float | None  # probability of the chosen open/closed label
    model_version: str

    @property
    def state(self) -> str:
        if self.presence_label != "present":
            return "absent"
        if self.eyes_label == "open":
            return "awake"
        if self.eyes_label == "closed":
            return "asleep"
        return "unknown"


def _session(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {_REBUILD}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelError(f"model file {path} cannot be loaded ({exc}); {_REBUILD}") from exc


class Cascade:
    def __init__(
        self, sessions: dict, manifest: dict, presence_threshold: float, face_threshold: float, eye_threshold: float
    ):
        self._s = sessions
        self._inputs = {k: s.get_inputs()[0].name for k, s in sessions.items()}
        self.manifest = manifest
        self.version = str(manifest.get("version", "unknown"))
        self.presence_threshold = presence_threshold
        self.face_threshold = face_threshold
        self.eye_threshold = eye_threshold

    @classmethod
    def load(
        cls,
        models_dir: Path,
        *,
        presence_threshold: float = 0.5,
        face_threshold: float = 0.5,
        eye_threshold: float = 0.7,
    ) -> Cascade:
        models_dir = Path(models_dir)
        manifest_path = models_dir / MANIFEST
        if not manifest_path.is_file():
            raise ModelError(f"model manifest {manifest_path} is missing; {_REBUILD}")
        try:
            manifest = json.loads(manifest_path.read_text())
            files = {k: manifest["models"][k]["file"] for k in MODEL_FILES}
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model manifest {manifest_path} is corrupt ({exc}); {_REBUILD}") from exc
        sessions = {k: _session(models_dir / f) for k, f in files.items()}
        return cls(sessions, manifest, presence_threshold, face_threshold, eye_threshold)

    def _infer(self, kind: str, x: np.ndarray) -> np.ndarray:
        return self._s[kind].run(None, {self._inputs[kind]: x[None]})[0][0]

    def run(self, frame_bgr: np.ndarray, crop: tuple[int, int, int, int] | None) -> CascadeResult:
        box = pp.crop_box(frame_bgr, crop)
        p_present = float(
            pp.softmax(self._infer("presence", pp.normalise(pp.square_rgb(frame_bgr, box, pp.PRESENCE_SIZE))))[1]
        )
        if p_present < self.presence_threshold:
            return CascadeResult("not_present", 1.0 - p_present, None, None, None, None, self.version)
        out = self._infer("face", pp.normalise(pp.square_rgb(frame_bgr, box, pp.FACE_SIZE)))
        face_conf = float(1.0 / (1.0 + np.exp(-float(out[4]))))
        if face_conf < self.face_threshold:
            return CascadeResult("present", p_present, None, face_conf, None, None, self.version)
        face_box = tuple(float(v) for v in pp.box_to_frame(out[:4], box))
        if face_box[2] - face_box[0] < 4 or face_box[3] - face_box[1] < 4:
            return CascadeResult("present", p_present, None, face_conf, None, None, self.version)
        p_open = float(pp.softmax(self._infer("eyes", pp.normalise(pp.eye_gray(frame_bgr, face_box))))[1])
        label, conf = ("open", p_open) if p_open >= 0.5 else ("closed", 1.0 - p_open)
        if conf < self.eye_threshold:
            label = "unknown"
        return CascadeResult("present", p_present, face_box, face_conf, label, conf, self.version)
