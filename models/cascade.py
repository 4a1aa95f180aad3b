"""The tick's inference cascade: presence -> face box -> eye state, with ONNX Runtime (no torch).

Weights and their manifest live in one folder (models/weights by default); `make weights`
rebuilds them (python -m train.vision). Preprocessing comes from models/preprocess.py, the same
functions the training script uses.

Face: the face stage gives the face box (dense maps decoded by preprocess.decode_face), then its eye finder
(points.onnx, PointNet) both eye centres from the box's surroundings (preprocess.points_input / decode_points).
Eyes: the eye model classifies ONE eye. The tick cuts each eye upright at the centre the eye finder gave
(preprocess.eye_pair) and combines the two by the mean of their log-odds (`combine_found_eyes`, which says why).
A weights folder without the eye finder cuts at fixed face geometry inside the face box (EYE_CUT below says why)
and combines by `combine_eyes`: "open" if either eye is confidently open, else "closed" if either is confidently
closed, else "unknown".
Why open wins there: a fixed region that misses its eye (head tilted, the face box a little off, one eye in the
pillow or under a hand) shows skin or brow, which looks like a closed lid, never like an iris and pupil; so one
confident "open" is stronger evidence than one "closed". Averaging, or calling a disagreement "unknown", lost
a third of the sample night's awake frames of a moving baby (its wake alert came 4 minutes late); and the wake
alert is the recall-heavy one, with its own 2-of-3 rule against a single false "open". With the eye finder the
sample night reads the same either way (402 frames with eyes, 2026-12-07).

Command line (same backend and preprocessing as the tick, no torch):
    python -m models.cascade [--stage all|presence|face|eyes] [--crop x1,y1,x2,y2] PATH... --json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import preprocess as pp
from models.onnx_session import open_session

MODEL_FILES = {"presence": "presence.onnx", "face": "face.onnx", "eyes": "eyes.onnx"}
# The face stage's eye finder (python -m train.eye_points): loaded when the manifest lists it. Weights folders made
# before it (and `train.vision --quick` test folders) run without it, cutting the eyes by the box.
OPTIONAL_FILES = {"points": "points.onnx"}
STAGE_NAMES = {"presence": "presence model", "face": "face model", "eyes": "eye model", "points": "eye finder"}
MANIFEST = "manifest.json"
_REBUILD = "rebuild them with `make weights` (python -m train.vision, then python -m train.eye_points)"


def listed_files(manifest: dict) -> dict[str, str]:
    """{network: its file} of a weights manifest: the three stages, and each optional one it lists."""
    models = manifest["models"]
    return {k: models[k]["file"] for k in (*MODEL_FILES, *(k for k in OPTIONAL_FILES if k in models))}


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
    eye_points: tuple[tuple[float, float], tuple[float, float]] | None = None  # infant's left, right eye (frame px)

    @property
    def state(self) -> str:
        if self.presence_label != "present":
            return "absent"
        if self.eyes_label == "open":
            return "awake"
        if self.eyes_label == "closed":
            return "asleep"
        return "unknown"


# One thread: on 2 cores, opening the three sessions and one run each took 113 ms with one thread against 156 ms
# with two (a cold tick opens them every time), and the warm cascade 2.99 ms against 3.46 ms (bench/cascade.py).
THREADS = 1
ZOOM = 2.5  # the face stage's second pass: a square of this many face sides around the first pass's face
# Where the eyes are cut: "box" = fixed places in the face box (preprocess.EYE_CENTRES), "points" = at the face
# stage's eye centres, turned upright. Measured (eye verdict right, end to end): validation infants syrip 0.63 /
# baby_photos 0.51 with "box", 0.68 / 0.76 with "points"; the sample camera's unseen frames 1.00 with "box", 0.84 with
# "points", whose misses were confident "open" on sleeping babies: false wake alerts. The eye centres are too coarse
# to trust yet (a median ~0.8 eye distances off on real infants), so without the eye finder the tick cuts by the box.
EYE_CUT = "box"


def _session(path: Path):
    return open_session(path, threads=THREADS, error=ModelError, hint=_REBUILD)


class Cascade:
    def __init__(
        self, sessions: dict, manifest: dict, presence_threshold: float, face_threshold: float, eye_threshold: float
    ):
        self._s = sessions
        self._inputs = {k: s.get_inputs()[0].name for k, s in sessions.items()}
        self.manifest = manifest
        self.version = str(manifest.get("version", "unknown"))
        # The face network cuts at the side its manifest names (its maps decode at any side): a face stage made at
        # another side (a 256 px one was measured against the shipped 192 px) runs as it was made, so the infant
        # evaluation and bench/cascade.py can score it beside the shipped weights in one run.
        self.face_size = int(manifest["models"]["face"].get("input_size", pp.FACE_SIZE))
        self.presence_threshold = presence_threshold
        self.face_threshold = face_threshold
        self.eye_threshold = eye_threshold
        self.eye_cut = "points" if "points" in sessions else EYE_CUT

    @classmethod
    def load(
        cls,
        models_dir: Path,
        *,
        presence_threshold: float = 0.5,
        face_threshold: float | None = None,
        eye_threshold: float | None = None,
    ) -> Cascade:
        """A threshold None: the one chosen on validation, from the manifest (face 0.5, eyes 0.7 if it has none)."""
        models_dir = Path(models_dir)
        manifest_path = models_dir / MANIFEST
        if not manifest_path.is_file():
            raise ModelError(f"model manifest {manifest_path} is missing; {_REBUILD}")
        try:
            manifest = json.loads(manifest_path.read_text())
            files = listed_files(manifest)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"model manifest {manifest_path} is corrupt ({exc}); {_REBUILD}") from exc
        for kind in (k for k in files if k != "face"):
            trained_at = manifest["models"][kind].get("input_size", pp.INPUT_SIZES[kind])
            if trained_at != pp.INPUT_SIZES[kind]:
                raise ModelError(
                    f"the {STAGE_NAMES[kind]} in {models_dir} takes {trained_at} px inputs and this code cuts "
                    f"{pp.INPUT_SIZES[kind]} px; {_REBUILD}"
                )
        sessions = {k: _session(models_dir / f) for k, f in files.items()}
        if face_threshold is None:
            face_threshold = float(manifest["models"]["face"].get("threshold", 0.5))
        if eye_threshold is None:
            eye_threshold = float(manifest["models"]["eyes"].get("threshold", 0.7))
        return cls(sessions, manifest, presence_threshold, face_threshold, eye_threshold)

    def _infer(self, kind: str, batch: np.ndarray) -> np.ndarray:
        """Model outputs for a normalised (N, 3, H, W) batch (bench/torch_tick.py swaps this for torch)."""
        return self._s[kind].run(None, {self._inputs[kind]: batch})[0]

    def presence(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> float:
        """P(present) for the crop."""
        x = pp.normalise(pp.square_rgb(frame_bgr, box, pp.PRESENCE_SIZE))
        return float(pp.softmax(self._infer("presence", x[None])[0])[1])

    def _face_pass(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> tuple[pp.Box, float, tuple]:
        x, lb = pp.letterbox(frame_bgr, box, self.face_size)
        p, target = pp.decode_face(self._infer("face", pp.normalise(x)[None])[0], self.face_size)
        face_box, eyes = pp.face_in_frame(target, lb)
        return face_box, p, eyes

    def find_face(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> tuple[pp.Box, float, tuple]:
        """(face box, face-found probability, (left eye, right eye)) in frame pixels for the crop.

        With the eye finder: one pass of the face model for the box, the eye finder for the eyes (on the validation
        groups it held as many faces on the first pass's box and placed the eyes closer than a zoomed pass).
        Without it, two passes of the one face model: the crop, then a square of ZOOM face sides around the face it
        found, whose box and eyes are kept when it finds the face again. In a bassinet crop a baby's eyes lie ~13 input
        pixels apart, under one cell of the 16 px grid; zoomed in they lie ~40 apart. On the validation groups the
        second pass held the face on syrip 0.71 vs 0.74 and baby_photos 0.83 vs 0.82, and made the eye verdict
        by predicted centres right on 0.76 vs 0.60 of baby_photos' faces."""
        face_box, p, eyes = self._face_pass(frame_bgr, box)
        if p < self.face_threshold:
            return face_box, p, eyes
        if "points" in self._s:
            return face_box, p, self.eye_points(frame_bgr, face_box)
        if ZOOM <= 0:
            return face_box, p, eyes
        cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
        half = ZOOM * max(face_box[2] - face_box[0], face_box[3] - face_box[1]) / 2
        zoom_box = pp.crop_box(frame_bgr, (round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        box2, p2, eyes2 = self._face_pass(frame_bgr, zoom_box)
        inside = (
            zoom_box[0] <= (box2[0] + box2[2]) / 2 <= zoom_box[2]
            and zoom_box[1] <= (box2[1] + box2[3]) / 2 <= zoom_box[3]
        )
        if p2 >= self.face_threshold and inside and pp.iou(box2, face_box) > 0.2:
            return box2, p, eyes2
        return face_box, p, eyes

    def eye_points(self, frame_bgr: np.ndarray, face_box: pp.Box) -> tuple[tuple[float, float], tuple[float, float]]:
        """(left eye, right eye) in frame pixels, found by the eye finder in the face box's surroundings."""
        x, m = pp.points_input(frame_bgr, face_box)
        left, right, _nose = pp.decode_points(self._infer("points", pp.normalise(x)[None])[0], m)
        return left, right

    def face(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> tuple[pp.Box, float]:
        """(face box in frame pixels, face-found probability) for the crop."""
        face_box, p, _eyes = self.find_face(frame_bgr, box)
        return face_box, p

    def eye_probs(self, eye_images_u8: list[np.ndarray]) -> np.ndarray:
        """P(open) for each preprocessed eye crop (pp.eye_gray): the mean over the crop and its mirror
        image (pp.with_mirror), all in one batch."""
        logits = self._infer("eyes", pp.normalise(pp.with_mirror(np.stack(eye_images_u8))))
        return pp.mean_over_mirror(pp.softmax(logits)[:, 1])

    def eyes(
        self, frame_bgr: np.ndarray, face_box: pp.Box, eye_points: tuple | None = None, cut: str | None = None
    ) -> tuple[str, float]:
        """The eye verdict: each eye cut upright at its centre (eye_points) when the cut (default: "points" with the
        eye finder, else EYE_CUT) is "points", else at fixed places in the box."""
        if eye_points is not None and (cut or self.eye_cut) == "points":
            return combine_found_eyes(self.eye_probs(pp.eye_pair(frame_bgr, face_box, eye_points)), self.eye_threshold)
        crops = [pp.eye_gray(frame_bgr, r) for r in pp.eye_regions(face_box)]
        return combine_eyes(self.eye_probs(crops), self.eye_threshold)

    def run(self, frame_bgr: np.ndarray, crop: tuple[int, int, int, int] | None) -> CascadeResult:
        box = pp.crop_box(frame_bgr, crop)
        p_present = self.presence(frame_bgr, box)
        if p_present < self.presence_threshold:
            return CascadeResult("not_present", 1.0 - p_present, None, None, None, None, self.version)
        face_box, face_conf, eye_points = self.find_face(frame_bgr, box)
        if face_conf < self.face_threshold:
            return CascadeResult("present", p_present, None, face_conf, None, None, self.version)
        face_box = tuple(float(v) for v in face_box)
        if face_box[2] - face_box[0] < 4 or face_box[3] - face_box[1] < 4:
            return CascadeResult("present", p_present, None, face_conf, None, None, self.version)
        eye_points = tuple((float(x), float(y)) for x, y in eye_points)
        label, conf = self.eyes(frame_bgr, face_box, eye_points)
        return CascadeResult("present", p_present, face_box, face_conf, label, conf, self.version, eye_points)


def verdict(p_open: float, threshold: float) -> tuple[str, float]:
    label, conf = ("open", p_open) if p_open >= 0.5 else ("closed", 1.0 - p_open)
    return ("unknown" if conf < threshold else label), conf


def combine_eyes(p_open: np.ndarray, threshold: float) -> tuple[str, float]:
    """Two eyes -> one verdict: open if either eye is confidently open, else closed if either is
    confidently closed, else unknown (confidence: the most confident eye's)."""
    p_max, p_min = float(np.max(p_open)), float(np.min(p_open))
    if p_max >= threshold:
        return "open", p_max
    if 1.0 - p_min >= threshold:
        return "closed", 1.0 - p_min
    return verdict(p_max if p_max - 0.5 >= 0.5 - p_min else p_min, threshold)


def combine_found_eyes(p_open: np.ndarray, threshold: float) -> tuple[str, float]:
    """Two eyes cut where the eye finder put them -> one verdict: the mean of their log-odds of "open".

    Both eyes of a baby share one state, so each crop is evidence about it; their errors share the face box, the
    light and the finder, so the mean (one observation's worth), not the sum, and a verdict needs the pair to clear
    the bar one eye would have to. Why not `combine_eyes`' "open wins": with the eye finder, a crop that misses its
    eye is a tight or shifted cut, and a closed lid cut tight reads "open" as readily as a cheek reads "closed".
    Measured on the validation groups' 56 person-labelled faces under five face stages (the shipped one, two
    retrains, the body-part one, the 256 px one) at the shipped threshold: right / wrong verdicts pooled 234 / 23
    against 232 / 38, fewer wrong under every face stage; on the training groups' 343 faces (shipped and one
    retrained face stage, and the eye stage alone at the true eye centres) fewer wrong every time too (11 / 7 / 4
    against 20 / 20 / 15). Clipped, so that saturated probabilities (0 and 1) give a verdict, never NaN."""
    p = np.clip(np.asarray(p_open, dtype=np.float64), 1e-6, 1 - 1e-6)
    p_pair = float(1.0 / (1.0 + np.exp(-np.mean(np.log(p / (1.0 - p))))))
    return verdict(p_pair, threshold)


def main(argv: list[str] | None = None) -> int:
    from models.cascade_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
