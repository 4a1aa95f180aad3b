"""Would Silero VAD (a speech detector, MIT, ONNX) help the cry listener as a veto? Measured on VALIDATION streams.

Three steps, because the VAD lives in its own venv (requirements-teacher.txt; never in the runtime unless this
measurement says so):

    .venv/bin/python -m train.cry_vad_probe dump artifacts/vad_probe      # val streams' audio (train/cry_listen.py)
    /work/svenv/bin/python train/cry_vad_probe.py vad artifacts/vad_probe  # speech share of every listener window
    .venv/bin/python -m train.cry_vad_probe score artifacts/vad_probe [--models-dir DIR]

The veto: a window whose share of speech frames (VAD probability >= 0.5, 32 ms frames) is above V is not
cry-like. For each V the listener's rule is chosen again on the same validation streams (train/cry_listen.py's
grid and recall floors) and the false-alert cost is compared with no veto.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CHUNK, CONTEXT, RATE, WINDOW, HOP = 256, 32, 8000, 40000, 8000
VETOES = (None, 0.8, 0.6, 0.4, 0.3)


def speech_share(audio: np.ndarray, session) -> np.ndarray:
    """Share of 32 ms frames the VAD calls speech, per listener window (5 s every 1 s)."""
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    sr = np.array(RATE, dtype=np.int64)
    n = len(audio) // CHUNK
    probs = np.zeros(n, np.float32)
    for i in range(n):
        x = np.concatenate([context, audio[None, i * CHUNK : (i + 1) * CHUNK]], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": sr})
        probs[i] = float(out.reshape(-1)[0])
        context = x[:, -CONTEXT:]
    speech = probs >= 0.5
    starts = range(0, len(audio) - WINDOW + 1, HOP)
    return np.array([speech[s // CHUNK : (s + WINDOW) // CHUNK].mean() for s in starts], np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("dump", "vad", "score"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--models-dir", type=Path)
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    if args.step == "vad":
        import importlib.util

        import onnxruntime as ort

        # the package's __init__ imports torch; only its ONNX file is needed, so find it without importing
        [package] = importlib.util.find_spec("silero_vad").submodule_search_locations
        onnx = Path(package) / "data" / "silero_vad.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
        data = np.load(args.folder / "streams.npz")
        shares = {k: speech_share(data[k], session) for k in data.files}
        np.savez(args.folder / "speech_share.npz", **shares)
        return 0

    from models.cry import DEFAULT_MODELS_DIR, CryModel
    from train import cry_data as cd
    from train import cry_listen as cl

    streams = cl.build_streams(cd.load_clips(), "val")
    if args.step == "dump":
        np.savez(args.folder / "streams.npz", **{f"s{i}": s.audio for i, s in enumerate(streams)})
        return 0
    model = CryModel.load(args.models_dir or DEFAULT_MODELS_DIR)
    cl.score_streams(model, streams)
    shares = np.load(args.folder / "speech_share.npz")
    probs = [s.probs.copy() for s in streams]
    results = {}
    for veto in VETOES:
        for i, s in enumerate(streams):
            share = shares[f"s{i}"][: len(probs[i])]
            s.probs = probs[i] if veto is None else np.where(share > veto, 0.0, probs[i])
        rule, fig, _ = cl.select_rule(streams)
        numbers = cl.summary(fig)
        results[str(veto)] = {
            "rule": {k: v for k, v in rule.to_dict().items() if k in ("threshold", "consecutive", "margin_db")},
            "cost": round(cl.cost(fig), 3),
            "false_per_hour": {k: v["per_hour"] for k, v in numbers["false_alerts"].items()},
            "recall": {k: v["recall"] for k, v in numbers["cry_episodes"].items()},
        }
        print(json.dumps({"veto": veto, **results[str(veto)]}), flush=True)
    (args.folder / "result.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
