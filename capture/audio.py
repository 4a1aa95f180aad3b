"""Audio clips as the tick sees them: 16-bit PCM from ffmpeg -> float samples, loudness, a wav file.

stdlib + numpy only (the tick imports it). Full scale is 1.0, so a full-scale square wave is 0 dBFS
and a full-scale sine about -3 dBFS; digital silence is floored at SILENCE_DBFS.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.files import write_atomically

SILENCE_DBFS = -120.0


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def dbfs(self) -> float:
        return dbfs(self.samples)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> float32 in [-1, 1) (an odd trailing byte is dropped)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()


def dbfs(samples: np.ndarray) -> float:
    """RMS level in dB re full scale; SILENCE_DBFS for an empty or all-zero clip."""
    if len(samples) == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_DBFS


def write_wav(path: Path, clip: AudioClip) -> None:
    """16-bit mono wav, written whole or not at all (`capture.files.write_atomically`)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(clip.sample_rate)
        out.writeframes(float_to_pcm16(clip.samples))
    write_atomically(path, buffer.getvalue())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A PCM wav (8/16/24/32-bit integer, any rate, any channels) -> (float32 (n,) or (n, ch), rate).

    Raises wave.Error (or EOFError) for anything the stdlib cannot read (float wav, compressed, not wav).
    """
    with wave.open(str(path), "rb") as src:
        channels, width, rate = src.getnchannels(), src.getsampwidth(), src.getframerate()
        raw = src.readframes(src.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw[: len(raw) - len(raw) % 3], np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = (np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)).astype(np.float32)
    elif width == 4:
        data = (np.frombuffer(raw, "<i4") / float(1 << 31)).astype(np.float32)
    else:
        raise wave.Error(f"unsupported sample width {width}")
    usable = len(data) - len(data) % channels
    data = data[:usable]
    return (data.reshape(-1, channels) if channels > 1 else data), rate
