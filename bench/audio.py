"""Audio stage latency: 8 kHz log-mel features + the cry CNN in ONNX Runtime for one clip (default 5 s, the
tick's default), as the tick runs it (models.cry.CryModel.score, 1 thread). Prints the medians of the
features alone, inference alone and the whole stage. Target: whole stage < 10 ms for a 5 s clip.
Also the continuous listener's cost per second of audio: one 5 s window (features + inference) and one feed of
the rule (models/cry_rule.py), which it pays once a second.

    .venv/bin/python bench/audio.py [--runs 200] [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.timing import median_ms  # noqa: E402
from models import audio_features as af  # noqa: E402
from models.cry import CryModel  # noqa: E402
from models.cry_rule import CryListener  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=af.WINDOW_S)
    parser.add_argument("--models-dir", type=Path, default=None, help="weights to time (default: the shipped ones)")
    args = parser.parse_args()
    clip = (np.random.default_rng(0).standard_normal(int(args.seconds * af.SAMPLE_RATE)) * 0.1).astype(np.float32)
    model = CryModel.load(args.models_dir) if args.models_dir else CryModel.load()
    features = af.batch(clip)
    session, name = model._session, model._input
    feat_ms = median_ms(lambda: af.batch(clip), args.runs)
    infer_ms = median_ms(lambda: session.run(None, {name: features}), args.runs)
    total_ms = median_ms(lambda: model.score(clip), args.runs)
    window = af.listen_windows(np.tile(clip, 2))[:1]
    listener = CryListener(model.rule)
    listen_ms = median_ms(lambda: listener.feed(float(model.window_probabilities(window)[0]), -30.0), args.runs)
    print(f"audio stage, {args.seconds:g} s clip at 8 kHz ({len(features)} window(s)), median of {args.runs}:")
    print(f"  features (log-mel)      {feat_ms:6.2f} ms")
    print(f"  inference (ONNX, 1 thr) {infer_ms:6.2f} ms")
    print(f"  whole stage (score)     {total_ms:6.2f} ms   target < 10 ms: {'ok' if total_ms < 10 else 'MISSED'}")
    print(
        f"  listener, per second    {listen_ms:6.2f} ms   (one 5 s window + the rule: {listen_ms / 10:.2f}% of a core)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
