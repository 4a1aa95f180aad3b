"""Cry data: load ../shared/data/audio at 8 kHz, split by source_id, and the nursery augmentations.

Shared by train/cry.py and train/evaluate_cry.py so both see exactly the same splits. Training only
(soundfile reads the FLAC folders; the tick never imports this).

Split: within each (folder, kind) group the source_ids are ordered by sha1 and the first 20% go to
`test` (held out: only evaluate_cry.py looks at them), the next 15% to `val` (early stopping, the
threshold and the continuous rule), the rest to `train`. Groups with fewer than 4 sources (one "silence"
recording, each Speech Commands noise recording) stay in `train`, except `running_tap`, which is kept
out of training entirely as unseen household noise for the test set and the noise-robustness table.

Two single-recording groups matter too much to leave wholly in `train`: the only laughing baby
(`giulbia-laugh_1`, the hard negative the listener must not call a cry) and the only telephone voice
(`asterisk-en`). Their consecutive 5 s segments are cut into BLOCKS contiguous blocks, each its own
pseudo-source `<source_id>#b<k>`, split like any other group. Held-out blocks are new minutes of the SAME
baby / voice, not a new one: the report says so wherever it scores them.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import audio_features as af

AUDIO_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
FOLDERS = (
    "giulbia", "donateacry", "fsdd", "klettres", "wesnoth_music", "speechcommands_noise",
    "fillets_conversation", "tuxpaint_speech", "asterisk_speech", "household_noise",
)  # fmt: skip
TEST_FRACTION, VAL_FRACTION, MIN_SOURCES_TO_SPLIT = 0.20, 0.15, 4
HELD_OUT_NOISE_SOURCES = {"sc-bg-running_tap"}
BLOCK_SPLIT_SOURCES, BLOCKS = {"giulbia-laugh_1", "asterisk-en"}, 10
# What a listener hears, by kind: the false-alarm tables are reported per kind, never pooled.
SPEECH_KIND = {"fillets_conversation": "conversation", "asterisk_speech": "phone_voice"}  # else read_speech


@dataclass
class Clip:
    path: str  # relative to AUDIO_ROOT
    folder: str
    label: str  # fine label from labels.csv
    source_id: str
    kind: str  # cry | conversation | read_speech | phone_voice | music | noise | baby_laugh | silence | white_noise
    # | miaow
    audio: np.ndarray  # 8 kHz mono float32
    split: str = ""

    @property
    def is_cry(self) -> bool:
        return self.label == "cry"


def kind_of(folder: str, label: str, path: str) -> str:
    if label == "cry":
        return "cry"
    if folder == "giulbia":
        return {"laugh": "baby_laugh", "noise": "noise", "silence": "silence"}[path.split("/")[0]]
    if label == "speech":
        return SPEECH_KIND.get(folder, "read_speech")
    return {"household": "noise", "machine_noise": "noise", "pink_noise": "white_noise"}.get(label, label)


def _segment_number(path: str) -> int:
    """The trailing segment number of a clip name (`laugh_1.m4a_17.wav` -> 17, `en_006.flac` -> 6)."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    digits = stem[len(stem.rstrip("0123456789")) :]
    return int(digits) if digits else 0


def block_sources(clips: list[Clip]) -> None:
    """Give each clip of a BLOCK_SPLIT_SOURCES recording the pseudo-source of its contiguous block, in time order."""
    for source in BLOCK_SPLIT_SOURCES:
        members = sorted((c for c in clips if c.source_id == source), key=lambda c: _segment_number(c.path))
        for i, c in enumerate(members):
            c.source_id = f"{source}#b{i * BLOCKS // len(members)}"


def _sha(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def assign_splits(clips: list[Clip]) -> None:
    groups: dict[tuple[str, str], set[str]] = {}
    for c in clips:
        groups.setdefault((c.folder, c.kind), set()).add(c.source_id)
    split_of: dict[str, str] = {}
    for sources in groups.values():
        ordered = sorted(sources, key=_sha)
        n_test = round(len(ordered) * TEST_FRACTION) if len(ordered) >= MIN_SOURCES_TO_SPLIT else 0
        n_val = max(1, round(len(ordered) * VAL_FRACTION)) if len(ordered) >= MIN_SOURCES_TO_SPLIT else 0
        for i, source in enumerate(ordered):
            split_of[source] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    for source in HELD_OUT_NOISE_SOURCES:
        split_of[source] = "test"
    for c in clips:
        c.split = split_of[c.source_id]


def index(root: Path = AUDIO_ROOT) -> list[Clip]:
    """Every clip of labels.csv with its split, audio not loaded yet (empty array)."""
    clips = []
    for folder in FOLDERS:
        with open(root / folder / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                kind = kind_of(folder, row["label"], row["path"])
                empty = np.zeros(0, np.float32)
                clips.append(Clip(f"{folder}/{row['path']}", folder, row["label"], row["source_id"], kind, empty))
    block_sources(clips)
    assign_splits(clips)
    return clips


def load_audio(path: Path) -> np.ndarray:
    """A wav or FLAC of the data set -> 8 kHz mono float32."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return af.resample(af.to_mono(data), rate)


def load_clips(root: Path = AUDIO_ROOT) -> list[Clip]:
    clips = index(root)
    for c in clips:
        c.audio = load_audio(root / c.path)
    return clips


# --- augmentation: what a nursery and a cheap camera add ---------------------------------------------


def crop(x: np.ndarray, rng: np.random.Generator, n: int = af.WINDOW_SAMPLES) -> np.ndarray:
    if len(x) < n:
        x = np.tile(x, -(-n // len(x)))
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n]


# Every training sound is drawn at these speeds half of the time (pitch moves with them): other babies, other voices.
SLOWEST, FASTEST = 0.8, 1.25


def crop_with_speed(
    x: np.ndarray, rng: np.random.Generator, n: int = af.WINDOW_SAMPLES, fastest: float = FASTEST
) -> np.ndarray:
    """A random window played SLOWEST-`fastest` x as fast (pitch moves with it): other babies, other voices."""
    if rng.random() < 0.5:
        return crop(x, rng, n)
    need = int(n * rng.uniform(SLOWEST, fastest))
    return play_faster(crop(x, rng, need), need / n)[:n]


def play_faster(x: np.ndarray, factor: float) -> np.ndarray:
    """`x` played `factor` x as fast, pitch moving with it (1.4: +6 semitones, a smaller baby or a child)."""
    return af.resample(x, len(x), max(1, round(len(x) / factor)))


# Voices and laughs are played up to this much faster (a child's or a high voice, +7 semitones at 1.5): a
# listener hears more voices than the training speakers, and pitch alone must not make a sound a cry.
VOICE_KINDS, VOICE_FASTEST = {"conversation", "read_speech", "phone_voice", "baby_laugh"}, 1.5
# This share of not-cry windows has a second not-cry sound mixed in at -6..6 dB: a nursery hears the TV over a
# conversation, a voice over a dishwasher, never one clean source at a time.
SECOND_SOUND_SHARE = 0.3


def not_cry_window(x: np.ndarray, kind: str, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    """A random window of a not-cry clip, its voice sometimes higher, sometimes with another not-cry sound."""
    window = crop_with_speed(x, rng, fastest=VOICE_FASTEST if kind in VOICE_KINDS else FASTEST)
    if rng.random() < SECOND_SOUND_SHARE:
        other = crop_with_speed(others[rng.integers(len(others))], rng)
        window = mix_at_snr(window, other, rng.uniform(-6, 6))
    return window


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """1/f^exponent noise: 0 white, 1 pink, 2 brown."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / af.SAMPLE_RATE)
    spectrum *= 1.0 / np.maximum(freqs, 20.0) ** (exponent / 2)
    y = np.fft.irfft(spectrum, n)
    return (y / (np.std(y) + 1e-9)).astype(np.float32)


def fan_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """A fan / air conditioner: brown-ish broadband noise, a motor hum with harmonics, slow wobble."""
    t = np.arange(n) / af.SAMPLE_RATE
    f0 = rng.uniform(40, 150)
    hum = sum(rng.uniform(0.1, 0.6) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 5))
    broad = colored_noise(n, rng, rng.uniform(1.0, 2.0))
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t)
    y = (broad + hum) * wobble
    return (y / (np.std(y) + 1e-9)).astype(np.float32)


def synthetic_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White-noise machine (white/pink/brown, sometimes low-passed) or a fan."""
    if rng.random() < 0.35:
        return fan_noise(n, rng)
    y = colored_noise(n, rng, float(rng.choice([0.0, 1.0, 2.0, rng.uniform(0, 2)])))
    return band_limit(y, rng) if rng.random() < 0.5 else y


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_signal = float(np.mean(signal.astype(np.float64) ** 2)) + 1e-12
    p_noise = float(np.mean(noise.astype(np.float64) ** 2)) + 1e-12
    return (signal + noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


def band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap microphone / telephone band: random high-pass 80-400 Hz and low-pass 2.8-3.9 kHz."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / af.SAMPLE_RATE)
    lo, hi = rng.uniform(80, 400), rng.uniform(2800, 3900)
    gain = 1.0 / (1.0 + (lo / np.maximum(freqs, 1.0)) ** 4) / (1.0 + (freqs / hi) ** 8)
    return np.fft.irfft(spectrum * gain, len(x)).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distance in a room: a decaying-noise impulse response (RT60 0.15-0.9 s) mixed with the direct path."""
    rt60 = rng.uniform(0.15, 0.9)
    n = int(rt60 * af.SAMPLE_RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = rng.uniform(0.5, 3.0) * np.sqrt(np.sum(ir**2))  # direct-to-reverberant ratio
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return (wet * np.std(x) / (np.std(wet) + 1e-9)).astype(np.float32)


def mu_law(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law companding round trip (8-bit codes), as the camera's audio codec does."""
    x = np.clip(x, -1.0, 1.0)
    code = np.round(np.sign(x) * np.log1p(255 * np.abs(x)) / np.log1p(255) * 127) / 127
    return (np.sign(code) * np.expm1(np.abs(code) * np.log1p(255)) / 255).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, backgrounds: list[np.ndarray]) -> np.ndarray:
    """One random nursery rendering of a 5 s window (label unchanged: backgrounds are never cries)."""
    if rng.random() < 0.3:
        x = reverb(x, rng)
    if rng.random() < 0.7:
        n = len(x)
        noise = crop(backgrounds[rng.integers(len(backgrounds))], rng, n) if rng.random() < 0.55 else None
        noise = synthetic_noise(n, rng) if noise is None else noise
        x = mix_at_snr(x, noise, rng.uniform(-3, 25))
    if rng.random() < 0.5:
        x = band_limit(x, rng)
    peak = float(np.max(np.abs(x))) + 1e-9
    x = x / peak * 10 ** (rng.uniform(-40, 3) / 20)  # quiet far mic ... slightly clipping
    x = np.clip(x, -1.0, 1.0)
    if rng.random() < 0.6:
        x = mu_law(x)
    return x.astype(np.float32)
