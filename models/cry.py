"""Cry detection at tick time: 8 kHz log-mel features (models/audio_features.py) + a small CNN in ONNX Runtime.

No torch here. The weights (cry.onnx) come with their own manifest (cry.json: version, window, sample
rate, threshold, data, metrics); train/cry.py writes both. cry.json also carries the continuous listener's rule
("rule", models/cry_rule.py), chosen on validation sources by train/cry_listen.py: `CryModel.rule`.

    python -m models.cry PATH... [--json] [--models-dir DIR] [--threshold T]

scores recordings (wav at any rate, mono or stereo; other formats through ffmpeg): a clip longer than
the model's window is scored over sliding windows and the maximum is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.audio import dbfs, read_wav
from models import audio_features as af
from models.cry_rule import CryRule
from models.onnx_session import open_session

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILE, MANIFEST_FILE = "cry.onnx", "cry.json"


class CryModelError(RuntimeError):
    """Missing or corrupt cry weights, or a manifest that does not match this feature code."""


@dataclass(frozen=True)
class CryResult:
    cry_probability: float
    label: str  # 'cry' | 'not_cry'
    dbfs: float
    seconds: float


def read_manifest(models_dir: Path = DEFAULT_MODELS_DIR) -> dict:
    """cry.json beside the weights; CryModelError naming the file when it cannot be read."""
    manifest_path = Path(models_dir) / MANIFEST_FILE
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        msg = f"cry manifest {manifest_path} unreadable ({exc}); rebuild with python -m train.cry"
        raise CryModelError(msg) from None


def decision_threshold(manifest: dict, threshold: float | None = None) -> float:
    """The probability at which a tick hears crying: CRY_THRESHOLD when set, else the one shipped in cry.json."""
    return float(manifest["threshold"] if threshold is None else threshold)


class CryModel:
    def __init__(self, session, manifest: dict, threshold: float | None = None) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.manifest = manifest
        self.threshold = decision_threshold(manifest, threshold)
        self.version = manifest["version"]

    @classmethod
    def load(cls, models_dir: Path = DEFAULT_MODELS_DIR, threshold: float | None = None) -> CryModel:
        models_dir = Path(models_dir)
        onnx_path, manifest_path = models_dir / MODEL_FILE, models_dir / MANIFEST_FILE
        manifest = read_manifest(models_dir)
        expected = {"sample_rate": af.SAMPLE_RATE, "window_s": af.WINDOW_S, "features": af.FEATURE_VERSION}
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise CryModelError(f"{manifest_path}: {key}={manifest.get(key)!r}, this code computes {value!r}")
        session = open_session(onnx_path, threads=1, error=CryModelError, hint="rebuild with python -m train.cry")
        return cls(session, manifest, threshold)

    @property
    def rule(self) -> CryRule:
        """The continuous listener's rule shipped with these weights (cry.json "rule"; defaults if absent)."""
        return CryRule.from_dict(self.manifest.get("rule"))

    def probabilities(self, samples_8k: np.ndarray) -> np.ndarray:
        """Cry probability of each model window of an 8 kHz mono clip."""
        return self._run(af.batch(samples_8k))

    def window_probabilities(self, windows: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Cry probability of each (WINDOW_SAMPLES,) row, e.g. af.listen_windows of a long recording."""
        out = [self._run(np.stack([af.model_input(w) for w in windows[i : i + chunk]]))
               for i in range(0, len(windows), chunk)]  # fmt: skip
        return np.concatenate(out) if out else np.zeros(0)

    def _run(self, features: np.ndarray) -> np.ndarray:
        logits = self._session.run(None, {self._input: features})[0]
        return 1.0 / (1.0 + np.exp(-logits.reshape(-1).astype(np.float64)))

    def score(self, samples_8k: np.ndarray) -> CryResult:
        p = float(self.probabilities(samples_8k).max())
        return CryResult(
            cry_probability=p,
            label="cry" if p >= self.threshold else "not_cry",
            dbfs=dbfs(samples_8k),
            seconds=len(samples_8k) / af.SAMPLE_RATE,
        )


def decode_8k(path: Path, ffmpeg_path: str = "") -> np.ndarray:
    """Any recording -> 8 kHz mono float32: PCM wav with the stdlib, anything else through ffmpeg."""
    try:
        data, rate = read_wav(path)
        return af.resample(af.to_mono(data), rate)
    except (wave.Error, EOFError):
        pass
    from capture.ffmpeg import find_ffmpeg

    cmd = [find_ffmpeg(ffmpeg_path), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path)]
    cmd += ["-vn", "-ac", "1", "-ar", str(af.SAMPLE_RATE), "-f", "s16le", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(f"cannot decode {path}: {reason[-1] if reason else 'ffmpeg failed'}")
    return np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], "<i2").astype(np.float32) / 32768.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score recordings for infant crying (8 kHz log-mel CNN).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--threshold", type=float, help="override the manifest's decision threshold")
    args = parser.parse_args(argv)
    try:
        model = CryModel.load(args.models_dir, args.threshold)
    except CryModelError as exc:
        print(f"cry: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.paths:
        try:
            result = model.score(decode_8k(path))
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            print(f"cry: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            out = {"path": str(path), "cry_probability": round(result.cry_probability, 4), "label": result.label}
            print(json.dumps({**out, "dbfs": round(result.dbfs, 1)}), flush=True)
        else:
            print(f"{path}: {result.label} (p={result.cry_probability:.3f}, {result.dbfs:.1f} dBFS, "
                  f"{result.seconds:.1f} s)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
