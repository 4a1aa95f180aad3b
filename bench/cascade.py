"""Median latency of the cascade's networks, torch eager vs ONNX Runtime (the tick's backend), 2 threads.

`--threads 1` measures what the tick runs (models.cascade.THREADS: one thread opens and runs faster on 2 cores).

Each network gets the batch the tick gives it: one crop for presence, face and the eye finder (points, where the
weights hold it), four for the eyes (two eye regions, each with its mirror image: models/preprocess.with_mirror).

    python bench/cascade.py [--weights models/weights] [--runs 200] [--quant] [--data ../shared/data --cache DIR]

Torch eager runs the same architectures (models/networks.py) with random weights: latency does not
depend on the values. With --quant it also builds int8 variants (ONNX Runtime dynamic and static
QDQ quantisation, static calibrated on validation inputs) and reports their latency and their
accuracy cost on the held-out test split next to the float model's. Nothing is written to
models/weights: shipping a quantised model is a separate, deliberate decision.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_ms
from models import preprocess as pp
from models.cascade import MANIFEST, MODEL_FILES, listed_files

THREADS = 2
TICK_BATCH = {"presence": 1, "face": 1, "points": 1, "eyes": 4}


def stage_files(weights: Path) -> dict[str, str]:
    """The networks the tick loads from `weights`: the three stages, and the eye finder where the manifest lists it."""
    import json

    return listed_files(json.loads((weights / MANIFEST).read_text()))


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def input_side(sess, kind: str) -> int:
    """The square side an ONNX network takes: its own, which for a face stage made at another side (the cascade runs
    it at the side its manifest names) is not the code's."""
    side = sess.get_inputs()[0].shape[-1]
    return side if isinstance(side, int) else pp.INPUT_SIZES[kind]


def latency(weights: Path, runs: int) -> dict:
    import torch

    from models.networks import build

    torch.set_num_threads(THREADS)
    out = {}
    for kind, f in stage_files(weights).items():
        sess = ort_session(weights / f)
        name, side = sess.get_inputs()[0].name, input_side(sess, kind)
        x = np.random.default_rng(0).standard_normal((TICK_BATCH[kind], 3, side, side)).astype(np.float32)
        model = build(kind).eval()
        xt = torch.from_numpy(x)

        def torch_run(model=model, xt=xt):
            with torch.no_grad():
                model(xt)

        out[kind] = {
            "torch_ms": median_ms(torch_run, runs, warmup=10),
            "ort_ms": median_ms(lambda s=sess, n=name, x=x: s.run(None, {n: x}), runs, warmup=10),
        }
    return out


def quantise(weights: Path, arrays: dict | None, tmp: Path) -> dict[str, dict[str, Path]]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from train.vision import to_u8_rgb

    out: dict[str, dict[str, Path]] = {}
    for kind, f in MODEL_FILES.items():
        pre = tmp / f"{kind}-pre.onnx"
        quant_pre_process(str(weights / f), str(pre), skip_symbolic_shape=True)
        dyn = tmp / f"{kind}-dyn.onnx"
        quantize_dynamic(str(pre), str(dyn), weight_type=QuantType.QInt8)
        out[kind] = {"int8_dynamic": dyn}
        if arrays is not None:
            calib = pp.normalise(to_u8_rgb(arrays[f"{kind}_val_x"][::4][:200]))

            class Reader(CalibrationDataReader):
                def __init__(self, data=calib):
                    self.it = iter(data)

                def get_next(self):
                    x = next(self.it, None)
                    return None if x is None else {"input": x[None]}

            st = tmp / f"{kind}-static.onnx"
            quantize_static(str(pre), str(st), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
            out[kind]["int8_static"] = st
    return out


def accuracy(paths: dict[str, Path], arrays: dict) -> dict:
    """Test-split headline metric per stage for one set of model files."""
    from train.evaluate import classification, decode_all, eye_p_open, face_metrics, run_onnx

    res = {}
    for kind, path in paths.items():
        sess = ort_session(path)
        y, src = arrays[f"{kind}_test_y"], arrays[f"{kind}_test_source"]
        if kind == "eyes":  # scored as the tick scores them: crop + mirror
            pred = (eye_p_open(sess, arrays["eyes_test_x"]) >= 0.5).astype(int)
            res[kind] = {
                str(s): classification(pred[src == s], y[src == s], ("a", "b"))["macro_f1"] for s in sorted(set(src))
            }
            continue
        out = run_onnx(sess, arrays[f"{kind}_test_x"])
        if kind == "face":
            out = decode_all(out)
            res[kind] = {
                str(s): face_metrics(out[src == s], y[src == s])["detection_rate_iou50"] for s in sorted(set(src))
            }
        else:
            pred = pp.softmax(out).argmax(1)
            res[kind] = {
                str(s): classification(pred[src == s], y[src == s], ("a", "b"))["macro_f1"] for s in sorted(set(src))
            }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("models/weights"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=THREADS, help="intra-op threads for both backends")
    ap.add_argument("--quant", action="store_true", help="also try int8 dynamic/static quantisation")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--cache", type=Path, default=None, help="data cache for the accuracy cost (train/datasets.py)")
    ap.add_argument("--save", action="store_true", help="also write the output to train/reports/vision_bench.txt")
    args = ap.parse_args(argv)
    if args.save:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = _run(args)
        print(buf.getvalue(), end="")
        Path("train/reports/vision_bench.txt").write_text(buf.getvalue())
        return rc
    return _run(args)


def _run(args) -> int:
    global THREADS
    THREADS = args.threads

    lat = latency(args.weights, args.runs)
    print(f"batch as the tick runs it {TICK_BATCH}, {THREADS} threads, median of {args.runs} runs")
    print(f"{'stage':<10}{'torch eager ms':>16}{'onnxruntime ms':>16}{'speed-up':>10}")
    for k, v in lat.items():
        print(f"{k:<10}{v['torch_ms']:>16.2f}{v['ort_ms']:>16.2f}{v['torch_ms'] / v['ort_ms']:>9.1f}x")
    tt, to = sum(v["torch_ms"] for v in lat.values()), sum(v["ort_ms"] for v in lat.values())
    print(f"{'total':<10}{tt:>16.2f}{to:>16.2f}{tt / to:>9.1f}x")
    from models.cascade import ZOOM

    # the face stage looks again, zoomed on the face it found, only where no eye finder places the eyes
    face_passes = 1 if "points" in lat or ZOOM <= 0 else 2
    finder = lat["points"]["ort_ms"] if "points" in lat else 0.0
    tick = lat["presence"]["ort_ms"] + face_passes * lat["face"]["ort_ms"] + finder + lat["eyes"]["ort_ms"]
    parts = f"presence + {face_passes} face pass{'es' if face_passes > 1 else ''}"
    parts += " + eye finder" if "points" in lat else ""
    print(f"the tick's cascade with onnxruntime ({parts} + both eyes with their mirrors): {tick:.2f} ms")
    size = sum((args.weights / f).stat().st_size for f in stage_files(args.weights).values())
    print(f"weights: {size / 1e6:.2f} MB")
    if not args.quant:
        return 0
    arrays = None
    if args.data.exists() or (args.cache and args.cache.exists()):
        from train.datasets import load_or_build

        arrays = load_or_build(args.data, args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        q = quantise(args.weights, arrays, Path(tmp))
        for variant in ("int8_dynamic", "int8_static"):
            paths = {k: v[variant] for k, v in q.items() if variant in v}
            if not paths:
                continue
            ms = {}
            for k, p in paths.items():
                sess = ort_session(p)
                side = input_side(sess, k)
                x = np.zeros((1, 3, side, side), np.float32)
                ms[k] = median_ms(lambda s=sess, x=x: s.run(None, {"input": x}), args.runs, warmup=10)
            mb = sum(p.stat().st_size for p in paths.values()) / 1e6
            print(
                f"{variant}: "
                + "  ".join(f"{k} {v:.2f} ms" for k, v in ms.items())
                + f"  total {sum(ms.values()):.2f} ms, {mb:.2f} MB"
            )
            if arrays is not None:
                print(f"  accuracy {variant}: {accuracy(paths, arrays)}")
        if arrays is not None:
            print(f"  accuracy float32:   {accuracy({k: args.weights / f for k, f in MODEL_FILES.items()}, arrays)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
