"""The cry model as the continuous listener will run it: long recordings, one window a second, models/cry_rule.py.

    .venv/bin/python -m train.cry_listen [--models-dir models/weights] [--write]

chooses the listener's rule (threshold, windows in a row, margin over the room's background) on the VALIDATION
sources and prints it (`--write` stores it in that cry.json as "rule"). train/evaluate_cry.py scores the test
split with the same functions, once, with the rule chosen here.

Streams, built from one split's sources only (train/cry_data.py):
- not-cry, per listening kind (conversation, read speech, phone voice, music, household noise, other sounds,
  laughing baby): every source of that kind, its clips joined in order, the sources in a random order with 5-20 s
  of quiet room between them and 30 s of room before the first; played in PASSES renderings (as recorded; through
  a camera's band and G.711; in a reverberant room; over continuous household noise at 15 dB below; 1.25x as fast,
  another voice or baby). The exposure is the seconds of that kind's sound, not of the quiet room. The renderings
  reuse the same sounds, so hours of them are less independent than the exact Poisson interval assumes.
- cry episodes: each cry source's clips joined, 40 s into a background that plays all along: a quiet room
  (clean), or held-out household noise / held-out conversation with the cry mixed in at 20, 10 and 0 dB SNR (power
  of the whole cry against the background). Detected = an onset while the cry plays or within 5 s after it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from models import audio_features as af
from models.cry import DEFAULT_MODELS_DIR, CryModel
from models.cry_rule import CryListener, CryRule
from train import cry_data as cd
from train.intervals import poisson_rate, wilson

LISTEN_KINDS = (
    "conversation", "read speech", "phone voice", "music", "household noise", "other sounds", "laughing baby",
)  # fmt: skip
# False alerts per hour the issue allows (kinds it names); others are reported against the conversation bound.
TARGET_PER_HOUR = {"conversation": 0.2, "music": 0.1, "household noise": 0.1, "laughing baby": 0.5}
DEFAULT_TARGET = 0.2
# "another voice": every sound played 1.25x as fast (+4 semitones). The held-out laughs are the training baby's and
# the voices a few speakers; a rule that counts windows a model scores low must not fire on a higher voice or baby.
ANOTHER_VOICE_SPEED = 1.25
ANOTHER_VOICE = f"another voice ({ANOTHER_VOICE_SPEED:g}x)"
PASSES = ("as recorded", "camera (band + G.711)", "room reverb", "over household noise 15 dB", ANOTHER_VOICE)
BACKGROUNDS = ("quiet room", "household noise", "conversation")
SNRS = (20.0, 10.0, 0.0)
LEAD_S, TAIL_S, DETECT_AFTER_S, ROOM_BELOW_DB = 40.0, 10.0, 5.0, 40.0
SEED = 20261205
# What the rule search on validation tries. The rest of CryRule (background window and quantile, episode end)
# stays at its defaults: too few validation minutes to choose more numbers honestly.
GRID_THRESHOLDS = (*(round(float(t), 2) for t in np.arange(0.30, 0.951, 0.05)), 0.97, 0.99)
GRID_CONSECUTIVE = (1, 2, 3, 4, 5, 6, 8, 10)
GRID_MARGIN_DB = (0.0, 3.0, 6.0, 10.0)
MIN_RECALL = {("quiet room", None): 0.97, ("household noise", 10.0): 0.92}  # margins over the 95% / 90%


def listen_kind(clip: cd.Clip) -> str | None:
    """The listening kind a not-cry clip is reported under (None: cries, and train-only kinds)."""
    if clip.kind == "noise":
        return "household noise" if clip.folder in ("household_noise", "speechcommands_noise") else "other sounds"
    names = {"conversation": "conversation", "read_speech": "read speech", "phone_voice": "phone voice"}
    return {**names, "music": "music", "baby_laugh": "laughing baby"}.get(clip.kind)


@dataclass
class Stream:
    """One long recording and what the model made of it: window probabilities and loudness, one a second."""

    kind: str  # a listening kind, or 'cry'
    condition: str  # a rendering (not-cry) or 'background SNR' (cry)
    audio: np.ndarray
    segments: list[tuple[float, float, str]]  # (start s, end s, source_id) of the sound of interest
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dbfs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def sound_s(self) -> float:
        return sum(end - start for start, end, _ in self.segments)

    def source_at(self, t: float) -> str:
        """The source playing at time t (or the nearest one before it: a window reaches 5 s back)."""
        before = [src for start, _, src in self.segments if start <= t]
        return before[-1] if before else "quiet room"


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) + 1e-12


def room(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """A quiet room at mean power `level`: brown-ish noise (air, a distant road), a new draw each time."""
    return (cd.colored_noise(n, rng, rng.uniform(1.5, 2.0)) * np.sqrt(level)).astype(np.float32)


def loop_to(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of x from a random start, looped as often as needed."""
    reps = -(-(n + len(x)) // len(x))
    start = int(rng.integers(len(x)))
    return np.tile(x, reps)[start : start + n]


def sources_of(clips: list[cd.Clip]) -> dict[str, np.ndarray]:
    """Each source's clips joined in path order (one long recording per source)."""
    out: dict[str, list[np.ndarray]] = {}
    for c in sorted(clips, key=lambda c: c.path):
        out.setdefault(c.source_id, []).append(c.audio)
    return {s: np.concatenate(parts) for s, parts in out.items()}


def not_cry_stream(kind: str, sources: dict[str, np.ndarray], rendering: str, household: list[np.ndarray],
                   rng: np.random.Generator) -> Stream:  # fmt: skip
    """All sources of one kind in a random order, with quiet room between them, in one rendering."""
    names = [sorted(sources)[i] for i in rng.permutation(len(sources))]
    level = float(np.median([power(sources[s]) for s in names])) * 10 ** (-ROOM_BELOW_DB / 10)
    pieces, segments, t = [room(int(30 * af.SAMPLE_RATE), rng, level)], [], 30.0
    for name in names:
        x = sources[name]
        if rendering == "room reverb":
            x = cd.reverb(x, rng)
        elif rendering == ANOTHER_VOICE:
            x = cd.play_faster(x, ANOTHER_VOICE_SPEED)
        gap = room(int(rng.uniform(5, 20) * af.SAMPLE_RATE), rng, level)
        pieces += [gap, x]
        t += len(gap) / af.SAMPLE_RATE
        segments.append((t, t + len(x) / af.SAMPLE_RATE, name))
        t += len(x) / af.SAMPLE_RATE
    audio = np.concatenate(pieces).astype(np.float32)
    if rendering.startswith("over household noise"):
        noise = loop_to(household[int(rng.integers(len(household)))], len(audio), rng)
        audio = audio + noise * np.sqrt(level * 10 ** (ROOM_BELOW_DB / 10) / power(noise) / 10**1.5)
    elif rendering.startswith("camera"):
        audio = cd.mu_law(cd.band_limit(audio / (np.abs(audio).max() + 1e-9) * 0.3, rng))
    return Stream(kind, rendering, np.clip(audio, -1, 1).astype(np.float32), segments)


def cry_stream(source: str, cry: np.ndarray, background: str, snr: float | None, pools: dict[str, list[np.ndarray]],
               rng: np.random.Generator) -> Stream:  # fmt: skip
    """One crying episode LEAD_S into a background that plays all along."""
    n = int((LEAD_S + TAIL_S) * af.SAMPLE_RATE) + len(cry)
    if background == "quiet room":
        bg = room(n, rng, power(cry) * 10 ** (-ROOM_BELOW_DB / 10))
    else:
        pool = pools[background]
        bg = loop_to(pool[int(rng.integers(len(pool)))], n, rng)
        bg = bg * np.sqrt(power(cry) / power(bg) / 10 ** (snr / 10))
    audio = bg.astype(np.float32).copy()
    start = int(LEAD_S * af.SAMPLE_RATE)
    audio[start : start + len(cry)] += cry
    condition = background if snr is None else f"{background} {snr:g} dB"
    segments = [(LEAD_S, LEAD_S + len(cry) / af.SAMPLE_RATE, source)]
    return Stream("cry", condition, np.clip(audio, -1, 1).astype(np.float32), segments)


def build_streams(clips: list[cd.Clip], split: str) -> list[Stream]:
    """Every not-cry and cry stream of one split (the same seed gives the same streams)."""
    rng = np.random.default_rng(SEED + ("val", "test").index(split))
    mine = [c for c in clips if c.split == split]
    by_kind: dict[str, list[cd.Clip]] = {}
    for c in mine:
        kind = listen_kind(c)
        if kind is not None:
            by_kind.setdefault(kind, []).append(c)
    pools = {k: list(sources_of(by_kind[k]).values()) for k in ("household noise", "conversation") if k in by_kind}
    streams = [
        not_cry_stream(kind, sources_of(by_kind[kind]), rendering, pools["household noise"], rng)
        for kind in LISTEN_KINDS
        if kind in by_kind
        for rendering in PASSES
    ]
    for source, cry in sorted(sources_of([c for c in mine if c.is_cry]).items()):
        streams.append(cry_stream(source, cry, "quiet room", None, pools, rng))
        streams += [cry_stream(source, cry, bg, snr, pools, rng) for bg in BACKGROUNDS[1:] for snr in SNRS]
    return streams


def score_streams(model: CryModel, streams: list[Stream]) -> None:
    """Fill in each stream's per-second window probabilities and loudness (what the listener feeds the rule)."""
    for s in streams:
        windows = af.listen_windows(s.audio)
        s.probs = model.window_probabilities(windows)
        rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
        s.dbfs = np.maximum(-100.0, 20 * np.log10(np.maximum(rms, 1e-10)))


def onset_times(rule: CryRule, stream: Stream) -> list[float]:
    """Seconds (the end of the window that decided) at which the listener raises an onset on this stream."""
    listener = CryListener(rule)
    return [
        af.WINDOW_S + i * af.LISTEN_HOP_S
        for i, (p, db) in enumerate(zip(stream.probs.tolist(), stream.dbfs.tolist(), strict=True))
        if listener.feed(p, db) == "onset"
    ]


def figures(rule: CryRule, streams: list[Stream]) -> dict:
    """False alerts per hour by kind (with their sources) and cry episodes detected by condition (with latency)."""
    false: dict[str, list] = {}
    hours: dict[str, float] = {}
    episodes: dict[str, list] = {}
    for s in streams:
        times = onset_times(rule, s)
        if s.kind != "cry":
            false.setdefault(s.kind, []).extend((t, s.condition, s.source_at(t)) for t in times)
            hours[s.kind] = hours.get(s.kind, 0.0) + s.sound_s / 3600
            continue
        start, end, source = s.segments[0]
        hits = [t - start for t in times if start <= t <= end + DETECT_AFTER_S]
        early = sum(t < start for t in times)
        episodes.setdefault(s.condition, []).append((source, hits[0] if hits else None, early))
    return {"false": false, "hours": hours, "episodes": episodes}


def recall(fig: dict, condition: str) -> float:
    found = [e[1] is not None for e in fig["episodes"].get(condition, [])]
    return float(np.mean(found)) if found else float("nan")


def cost(fig: dict) -> float:
    """Sum over kinds of false alerts per hour as a multiple of that kind's target."""
    rates = {k: len(fig["false"].get(k, [])) / h for k, h in fig["hours"].items()}
    return sum(rate / TARGET_PER_HOUR.get(k, DEFAULT_TARGET) for k, rate in rates.items())


def select_rule(streams: list[Stream], base: CryRule | None = None) -> tuple[CryRule, dict, list[tuple]]:
    """The grid rule with the fewest false alerts (relative to the targets) among those that keep MIN_RECALL;
    when none keeps it, the one with the best worse-of-the-two recall. Run on VALIDATION streams only."""
    base = base or CryRule()
    tried = []
    for threshold in GRID_THRESHOLDS:
        for consecutive in GRID_CONSECUTIVE:
            for margin in GRID_MARGIN_DB:
                rule = replace(base, threshold=float(threshold), consecutive=consecutive, margin_db=margin)
                fig = figures(rule, streams)
                recalls = [recall(fig, bg if snr is None else f"{bg} {snr:g} dB") for bg, snr in MIN_RECALL]
                ok = all(r >= need for r, need in zip(recalls, MIN_RECALL.values(), strict=True))
                latency = np.median([e[1] for e in fig["episodes"]["quiet room"] if e[1] is not None] or [99])
                tried.append((ok, cost(fig), min(recalls), float(latency), rule))
    keeping = [t for t in tried if t[0]]
    best = min(keeping, key=lambda t: (t[1], t[3])) if keeping else max(tried, key=lambda t: (t[2], -t[1]))
    return best[4], figures(best[4], streams), tried


def summary(fig: dict) -> dict:
    """The figures as plain numbers (for cry.json and the report)."""
    fa = {}
    for kind, h in fig["hours"].items():
        k = len(fig["false"].get(kind, []))
        lo, hi = poisson_rate(k, h)
        fa[kind] = {"alerts": k, "hours": round(h, 3), "per_hour": round(k / h, 3),
                    "interval_95": [round(lo, 3), round(hi, 3)]}  # fmt: skip
    rec = {}
    for condition, eps in fig["episodes"].items():
        found = sum(e[1] is not None for e in eps)
        lo, hi = wilson(found, len(eps))
        lat = [e[1] for e in eps if e[1] is not None]
        rec[condition] = {"detected": found, "episodes": len(eps), "recall": round(found / len(eps), 4),
                          "interval_95": [round(lo, 4), round(hi, 4)],
                          "median_latency_s": round(float(np.median(lat)), 1) if lat else None}  # fmt: skip
    return {"false_alerts": fa, "cry_episodes": rec}


def report_lines(rule: CryRule, fig: dict, rule_from: str) -> list[str]:
    """The listener section of train/reports/cry.md: false alerts per hour by kind, episodes found by condition,
    recall per held-out cry source, and the worst false alerts."""
    numbers = summary(fig)
    lines = [
        "",
        "## The continuous listener: false alerts per hour and cry episodes found (one window a second)",
        "",
        f"Rule (`models/cry_rule.py`, shipped in cry.json): a window counts when its cry probability is >= "
        f"{rule.threshold:.2f} and its loudness is >= {rule.margin_db:g} dB above the room's background (the "
        f"{rule.background_quantile:.0%} quantile of the last {rule.background_s} s); an alert (onset) needs "
        f"{rule.consecutive} counting windows in a row; an episode ends after {rule.end_after_s} s without a cry-like "
        f"window. Chosen by {rule_from}; never tried on this split.",
        "",
        "Long held-out recordings pushed through the rule faster than real time (train/cry_listen.py): each kind's "
        f"held-out sources one after another with quiet room between them, in {len(PASSES)} renderings ("
        + ", ".join(PASSES)
        + "). Exposure counts only the seconds of that sound. Exact Poisson 95% intervals; the "
        "renderings replay the same sounds, so the true uncertainty is wider. The held-out laughing baby and phone "
        "voice are other minutes of the ONE recording/voice whose other blocks were trained on.",
        "",
        "| kind | false alerts | hours of sound | **per hour** | 95% interval | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind in LISTEN_KINDS:
        if kind in numbers["false_alerts"]:
            f = numbers["false_alerts"][kind]
            lo, hi = f["interval_95"]
            target = f"<= {TARGET_PER_HOUR[kind]:g}" if kind in TARGET_PER_HOUR else ""
            lines.append(f"| {kind} | {f['alerts']} | {f['hours']:.2f} | {f['per_hour']:.2f} | {lo:.2f}–{hi:.2f} | "
                         f"{target} |")  # fmt: skip
    lines += [
        "",
        f"Cry episodes: each held-out cry source (its clips joined) {LEAD_S:g} s into a background that plays all "
        f"along; found = an onset while it cries or within {DETECT_AFTER_S:g} s after. Wilson 95% intervals (one "
        "episode per source).",
        "",
        "| background | found / episodes | **recall** | 95% interval | median seconds to the alert | onsets before "
        "the cry |",
        "|---|---|---|---|---|---|",
    ]
    for condition, r in numbers["cry_episodes"].items():
        early = sum(e[2] for e in fig["episodes"][condition])
        lat = "" if r["median_latency_s"] is None else f"{r['median_latency_s']:g}"
        lines.append(f"| {condition} | {r['detected']} / {r['episodes']} | {r['recall']:.1%} | "
                     f"{r['interval_95'][0]:.1%}–{r['interval_95'][1]:.1%} | {lat} | {early} |")  # fmt: skip
    per_source: dict[str, list[bool]] = {}
    for eps in fig["episodes"].values():
        for source, hit, _ in eps:
            per_source.setdefault(source, []).append(hit is not None)
    weak = sorted((float(np.mean(v)), s) for s, v in per_source.items() if not all(v))
    lines += [
        "",
        f"Recall per held-out cry source over the {len(fig['episodes'])} backgrounds: "
        f"{sum(all(v) for v in per_source.values())} of {len(per_source)} sources found in every one; the others: "
        + (", ".join(f"`{s}` {r:.0%}" for r, s in weak) or "none")
        + ".",
        "",
    ]
    worst = sorted(((k, c, src) for k, events in fig["false"].items() for _, c, src in events))
    counts: dict[tuple[str, str], int] = {}
    for kind, _, src in worst:
        counts[(kind, src)] = counts.get((kind, src), 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
    lines.append(f"Worst false alerts (kind, source playing, alerts over the {len(PASSES)} renderings): "
                 + ("; ".join(f"{k} `{src}` {n}" for (k, src), n in top) or "none") + ".")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--write", action="store_true", help="store the chosen rule in the models dir's cry.json")
    args = parser.parse_args(argv)
    started = time.time()
    model = CryModel.load(args.models_dir)
    streams = build_streams(cd.load_clips(), "val")
    score_streams(model, streams)
    print(f"scored {len(streams)} validation streams in {time.time() - started:.0f} s", flush=True)
    rule, fig, tried = select_rule(streams)
    print(json.dumps({"rule": rule.to_dict(), "val": summary(fig)}, indent=1))
    print(f"{sum(t[0] for t in tried)} of {len(tried)} rules keep {MIN_RECALL}; took {time.time() - started:.0f} s")
    if args.write:
        path = args.models_dir / "cry.json"
        manifest = json.loads(path.read_text())
        manifest["rule"] = rule.to_dict()
        manifest["rule_from"] = (
            "train/cry_listen.py on the validation sources: fewest false alerts per hour (relative to the targets) "
            f"among rules with episode recall >= {MIN_RECALL[('quiet room', None)]:.0%} in a quiet room and >= "
            f"{MIN_RECALL[('household noise', 10.0)]:.0%} at 10 dB SNR in household noise"
        )
        manifest["rule_val"] = summary(fig)
        path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
