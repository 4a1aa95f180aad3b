"""The ONE log-mel implementation, shared by training (train/cry.py) and the tick (models/cry.py).

numpy only, so training and runtime cannot drift and the tick never imports torch. Everything works
at 8 kHz mono, the band of a camera's G.711 audio: other rates are resampled here first (the FFT
resampler is an ideal low-pass at 4 kHz, which also band-limits full-band clips so a model cannot
tell sources apart by bandwidth).
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 8000
N_FFT = 256  # 32 ms
HOP = 128  # 16 ms
N_MELS = 40
FMIN, FMAX = 50.0, 3900.0
WINDOW_S = 5.0  # the model's input: one tick's default clip
STEP_S = 2.5  # sliding-window step for longer clips
LISTEN_HOP_S = 1.0  # the continuous listener: one window, ending now, every second (models/cry_rule.py)
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)
FEATURE_VERSION = "logmel-8k-256-128-40-v1"


def n_frames(n_samples: int = WINDOW_SAMPLES) -> int:
    return 1 + (n_samples - N_FFT) // HOP


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """FFT resampling of a mono float signal (band-limits to sr_out / 2 when going down)."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32, copy=False)
    n_out = max(1, round(len(x) * sr_out / sr_in))
    spectrum = np.fft.rfft(x.astype(np.float64))
    keep = n_out // 2 + 1
    if len(spectrum) >= keep:
        spectrum = spectrum[:keep]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(keep - len(spectrum), spectrum.dtype)])
    return (np.fft.irfft(spectrum, n_out) * (n_out / len(x))).astype(np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) float32 by averaging the channels."""
    return (x.mean(axis=1) if x.ndim == 2 else x).astype(np.float32, copy=False)


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, HTK mel scale."""
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    bank = np.zeros((N_MELS, len(bins)), np.float32)
    for m in range(N_MELS):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def power_spectrogram(x: np.ndarray) -> np.ndarray:
    """(frames, N_FFT // 2 + 1) power of Hann-windowed frames (no centre padding)."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    return (np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2).astype(np.float32)


def log_mel(x: np.ndarray) -> np.ndarray:
    """(N_MELS, frames) log-mel in dB (power re full scale, floored at -100 dB)."""
    mel = power_spectrogram(x) @ mel_filterbank().T
    return (10.0 * np.log10(mel.T + 1e-10)).astype(np.float32)


def model_input(x: np.ndarray) -> np.ndarray:
    """One WINDOW_SAMPLES clip -> (1, N_MELS, frames) network input.

    The window's mean level is removed, so the model sees the shape of the sound, not how loud the
    recording is (loudness goes to the store as dBFS instead); /20 keeps values near unit scale.
    """
    feats = log_mel(x)
    return ((feats - feats.mean()) / 20.0)[None].astype(np.float32)


def windows(x: np.ndarray) -> list[np.ndarray]:
    """Cut a clip into model windows: shorter clips are looped to fill one window, longer ones are
    covered by windows every STEP_S seconds (the last one aligned to the clip's end)."""
    if len(x) == 0:
        x = np.zeros(WINDOW_SAMPLES, np.float32)
    if len(x) <= WINDOW_SAMPLES:
        reps = -(-WINDOW_SAMPLES // len(x))
        return [np.tile(x, reps)[:WINDOW_SAMPLES]]
    step = int(STEP_S * SAMPLE_RATE)
    starts = list(range(0, len(x) - WINDOW_SAMPLES + 1, step))
    if starts[-1] != len(x) - WINDOW_SAMPLES:
        starts.append(len(x) - WINDOW_SAMPLES)
    return [x[s : s + WINDOW_SAMPLES] for s in starts]


def listen_windows(x: np.ndarray, hop_s: float = LISTEN_HOP_S) -> np.ndarray:
    """(n, WINDOW_SAMPLES) windows of a long recording every hop_s, as a continuous listener sees them: window i
    ends at WINDOW_S + i * hop_s seconds. Fewer samples than one window: no window (the listener still waits)."""
    hop = round(hop_s * SAMPLE_RATE)
    if len(x) < WINDOW_SAMPLES:
        return np.zeros((0, WINDOW_SAMPLES), np.float32)
    return np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[::hop]


def batch(x: np.ndarray) -> np.ndarray:
    """A whole clip (8 kHz mono float) -> (windows, 1, N_MELS, frames)."""
    return np.stack([model_input(w) for w in windows(x)])


def mfcc(x: np.ndarray, n_mfcc: int = 13) -> np.ndarray:
    """(n_mfcc, frames) DCT-II of the log-mel (the peer baseline's features)."""
    feats = log_mel(x)
    n = feats.shape[0]
    k = np.arange(n)
    basis = np.cos(np.pi / n * (k[None, :] + 0.5) * np.arange(n_mfcc)[:, None])
    return (basis @ feats).astype(np.float32)
