"""Audio from the camera: PCM and loudness, the grab's audio in the same ffmpeg call, and the tick's stored fields.

Real parts only: GStreamer's RTSP server on loopback carrying a G.711 track (a tone, or a held-out cry
clip of ../shared), the real ffmpeg, the real cry model, a real `monitor.py --once` process.
"""

from __future__ import annotations

import wave
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.audio import SILENCE_DBFS, AudioClip, dbfs, float_to_pcm16, pcm16_to_float, read_wav, write_wav
from capture.ffmpeg import build_rtsp_grab_command, find_ffmpeg, grab_rtsp
from capture.sample_camera import frame_at
from db.store import Store
from models import audio_features as af
from models.cry import CryModel, decode_8k
from tests.tick_runner import rows, run_tick

RATE = 8000


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def write_pcm_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> Path:
    data = np.repeat(samples[:, None], channels, axis=1)
    ints = np.clip(np.round(data * (2 ** (8 * width - 1) - 1)), -(2 ** (8 * width - 1)), 2 ** (8 * width - 1) - 1)
    if width == 2:
        raw = ints.astype("<i2").tobytes()
    else:  # 24-bit little endian
        as32 = ints.astype("<i4").reshape(-1)
        raw = np.stack([(as32 >> s) & 0xFF for s in (0, 8, 16)], axis=1).astype(np.uint8).tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(raw)
    return path


# --- PCM and loudness --------------------------------------------------------------------------------


def test_dbfs_of_a_full_scale_sine_half_scale_and_silence():
    assert dbfs(tone(440, 1.0)) == pytest.approx(-3.01, abs=0.05)
    assert dbfs(tone(440, 1.0, amplitude=0.5)) == pytest.approx(-9.03, abs=0.05)
    assert dbfs(np.zeros(800, np.float32)) == SILENCE_DBFS
    assert dbfs(np.zeros(0, np.float32)) == SILENCE_DBFS


def test_pcm16_round_trip_and_odd_trailing_byte():
    samples = tone(300, 0.1, amplitude=0.8)
    back = pcm16_to_float(float_to_pcm16(samples) + b"\x01")
    assert len(back) == len(samples) and np.abs(back - samples).max() < 1e-4


def test_wav_written_by_the_tick_reads_back(tmp_path):
    clip = AudioClip(tone(500, 2.0, amplitude=0.25), RATE)
    write_wav(tmp_path / "a.wav", clip)
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE and len(samples) == 16000 and dbfs(samples) == pytest.approx(clip.dbfs, abs=0.01)


def test_24_bit_stereo_44k1_wav_decodes_to_8k_mono_with_the_same_pitch(tmp_path):
    path = write_pcm_wav(tmp_path / "s.wav", tone(440, 2.0, 44100, 0.5), 44100, channels=2, width=3)
    samples = decode_8k(path)
    assert len(samples) == 16000
    assert dominant_hz(samples) == pytest.approx(440, abs=5)
    assert dbfs(samples) == pytest.approx(-9.03, abs=0.2)


def test_resampling_removes_what_lies_above_the_camera_band():
    above = tone(6000, 1.0, 16000)  # only a full-band source can carry it
    assert dbfs(af.resample(above, 16000)) < -60


def test_sliding_windows_cover_a_long_clip_and_loop_a_short_one():
    assert [len(w) for w in af.windows(np.ones(2 * RATE, np.float32))] == [af.WINDOW_SAMPLES]
    long = np.arange(12 * RATE, dtype=np.float32)
    wins = af.windows(long)
    assert len(wins) == 4 and wins[0][0] == 0 and wins[-1][-1] == long[-1]  # 0, 2.5, 5, 7 s


# --- the grab: frame and audio from one ffmpeg process -----------------------------------------------


def test_audio_output_rides_in_the_same_ffmpeg_call():
    ffmpeg = find_ffmpeg()
    cmd = build_rtsp_grab_command("rtsp://cam/s", timeout_s=5, ffmpeg=ffmpeg, audio_path="/tmp/a.s16", audio_s=5)
    assert cmd.count("-i") == 1 and "0:a:0?" in cmd and "-allowed_media_types" not in cmd
    assert cmd[cmd.index("-t") + 1] == "5" and cmd[cmd.index("-ar") + 1] == "8000"
    video_only = build_rtsp_grab_command("rtsp://cam/s", timeout_s=5, ffmpeg=ffmpeg)
    assert "0:a:0?" not in video_only and "-allowed_media_types" in video_only


def test_grab_records_the_cameras_g711_tone(rtsp_server):
    url = rtsp_server()  # test pattern + 440 Hz tone at volume 0.3, G.711 mu-law 8 kHz
    jpeg, pcm = grab_rtsp(url, timeout_s=10, ffmpeg=find_ffmpeg(), audio_s=2)
    assert jpeg[:3] == b"\xff\xd8\xff"
    samples = pcm16_to_float(pcm)
    assert len(samples) == pytest.approx(2 * RATE, abs=400)
    assert dominant_hz(samples) == pytest.approx(440, abs=5)
    assert dbfs(samples) == pytest.approx(-13.5, abs=1.5)  # 0.3 * full scale sine


def test_grab_from_a_stream_without_audio_gives_the_frame_and_no_audio(rtsp_server):
    url = rtsp_server(audio=False)
    jpeg, pcm = grab_rtsp(url, timeout_s=10, ffmpeg=find_ffmpeg(), audio_s=5)
    assert jpeg[:3] == b"\xff\xd8\xff" and pcm is None


# --- the tick, end to end ----------------------------------------------------------------------------


def _served_frame(tmp_path: Path) -> Path:
    served = tmp_path / "served.jpg"
    cv2.imwrite(str(served), frame_at(datetime(2026, 11, 21, 3, 0))[0])
    return served


def test_tick_on_a_camera_carrying_a_held_out_cry_stores_the_audio_fields_and_alerts_on_the_second_crying_tick(
    tmp_path, rtsp_server, held_out_audio
):
    cry = decode_8k(held_out_audio("cry", "donateacry"))
    served_wav = tmp_path / "cry.wav"
    write_wav(served_wav, AudioClip(cry, RATE))  # a temp copy: the camera loops it as G.711
    url = rtsp_server(_served_frame(tmp_path), audio_wav=served_wav)
    data_dir = tmp_path / "data"
    env = {"BILBO_CAMERA_URL": url, "BILBO_AUDIO_SECONDS": "5", "BILBO_KEEP_AUDIO": "true"}
    result = run_tick(data_dir, "--once", "--at", "2026-11-21T03:00:00", **env)
    assert result.returncode == 0, result.stderr
    [row] = rows(data_dir)
    threshold = CryModel.load().threshold
    assert row.cry_probability >= threshold, (row.cry_probability, threshold)
    assert row.audio_s == pytest.approx(5.0, abs=0.25)
    assert -50 < row.dbfs < 0 and row.dbfs == pytest.approx(dbfs(cry), abs=6)
    kept, rate = read_wav(data_dir / row.audio_path)
    assert rate == RATE and Path(row.audio_path).parent == Path(row.jpeg_path).parent
    assert dbfs(kept) == pytest.approx(row.dbfs, abs=0.01)
    assert f"cry {row.cry_probability:.2f}" in result.stderr
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        assert store.alerts() == []  # one crying tick is not enough (CRY_NEEDED=2 of CRY_WINDOW=3)
    # Four minutes later: the same picture (an unchanged frame), the baby still crying -> the cry alert.
    result = run_tick(data_dir, "--once", "--at", "2026-11-21T03:04:00", **env)
    assert result.returncode == 0, result.stderr
    _first, second = rows(data_dir)
    assert second.unchanged and second.cry_probability >= threshold
    with Store.open(data_dir / "bilbo.sqlite3") as store:
        [alert] = store.alerts()
    assert alert.kind == "cry" and "crying (2 of the last 2 ticks" in alert.caption and alert.tick_id == second.id


def test_tick_on_a_camera_without_audio_stores_a_row_with_empty_audio_fields(tmp_path, rtsp_server):
    url = rtsp_server(_served_frame(tmp_path), audio=False)
    data_dir = tmp_path / "data"
    result = run_tick(data_dir, "--once", BILBO_CAMERA_URL=url, BILBO_KEEP_AUDIO="true")
    assert result.returncode == 0, result.stderr
    [row] = rows(data_dir)
    assert row.jpeg_path and (row.cry_probability, row.dbfs, row.audio_s, row.audio_path) == (None,) * 4
    assert not list((data_dir / "frames").rglob("*.wav"))


def test_audio_seconds_zero_turns_audio_off(tmp_path, rtsp_server):
    url = rtsp_server(_served_frame(tmp_path))
    data_dir = tmp_path / "data"
    result = run_tick(data_dir, "--once", BILBO_CAMERA_URL=url, BILBO_AUDIO_SECONDS="0")
    assert result.returncode == 0, result.stderr
    [row] = rows(data_dir)
    assert (row.cry_probability, row.dbfs, row.audio_s) == (None, None, None)
