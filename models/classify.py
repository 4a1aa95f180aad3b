"""The tick's model steps: classify the frame (the pixel diff against the last kept frame, then the last result
reused or the cascade run, the JPEG kept) and score the audio clip for crying. The models load on first use only, so
an unchanged frame never pays for them and broken cry weights never fail a tick."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from alerts.rules import clock
from capture.audio import write_wav
from capture.ffmpeg import CaptureError
from capture.files import write_atomically
from capture.night import is_infrared
from capture.pixeldiff import check_crop_fits, diff_score
from capture.sources import CapturedFrame, bassinet_crop, is_camera_url
from db.store import Store, TickRow
from models.cascade import Cascade
from models.cry import CryModel, CryModelError
from settings import Settings

tick_log = logging.getLogger("bilbo.tick")  # the tick's steps log as the tick

# A frame that stays "unchanged" this long is classified anyway, so a stale result never lingers.
MAX_UNCHANGED_S = 1800
# A live camera's sensor noise moves some 16x16 block's mean by 0.4+ grey levels between any two frames (a still
# baby scores 0.8-1.7); a picture that moves by less than FROZEN_DIFF for FROZEN_AFTER_S is a frozen stream.
FROZEN_DIFF = 0.05
FROZEN_AFTER_S = 15 * 60


class LazyCascade:
    """Loads the ONNX models on first use only: an unchanged frame never pays for them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cascade: Cascade | None = None

    def get(self) -> Cascade:
        if self._cascade is None:
            self._cascade = load_cascade(self._settings)
        return self._cascade


def load_cascade(settings: Settings) -> Cascade:
    """The shipped cascade with the configured thresholds (the tick's, and `--check`'s)."""
    return Cascade.load(
        settings.models_dir,
        presence_threshold=settings.presence_threshold,
        face_threshold=settings.face_threshold,
        eye_threshold=settings.eye_threshold,
    )


class LazyCryModel:
    """Loads the cry model the first time a tick has audio. Broken cry weights never fail the tick: the
    audio is then stored without a cry probability and the reason is logged once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: CryModel | None = None
        self._failed = False

    def get(self) -> CryModel | None:
        if self._model is None and not self._failed:
            try:
                self._model = CryModel.load(self._settings.models_dir, self._settings.cry_threshold)
            except CryModelError as exc:
                self._failed = True
                tick_log.warning("cry detection off this tick: %s", exc)
        return self._model


def _read_reference(settings: Settings, store: Store) -> np.ndarray | None:
    """The last kept frame, or None if there is none or it cannot be read (then we classify)."""
    relative = store.last_reference_jpeg()
    if relative is None:
        return None
    return cv2.imread(str(settings.data_dir / relative), cv2.IMREAD_COLOR)


def frame_file(at: datetime, suffix: str) -> Path:
    """Where a tick's files live, relative to the data dir: the .jpg and the kept .wav side by side."""
    return Path("frames") / at.strftime("%Y-%m-%d") / f"{at.strftime('%H%M%S')}-{int(at.timestamp())}{suffix}"


def _save_jpeg(settings: Settings, frame: CapturedFrame, at: datetime) -> str:
    """Write the JPEG whole or not at all and return its path relative to the data dir."""
    relative = frame_file(at, ".jpg")
    write_atomically(settings.data_dir / relative, frame.jpeg)
    return str(relative)


def score_audio(settings: Settings, frame: CapturedFrame, at: datetime, cry: LazyCryModel) -> dict:
    """The tick's audio fields: cry probability, loudness, clip length, and the kept .wav (KEEP_AUDIO)."""
    clip = frame.audio
    if clip is None or len(clip.samples) == 0:
        return {}
    model = cry.get()
    fields = {
        "cry_probability": model.score(clip.samples).cry_probability if model else None,
        "dbfs": clip.dbfs,
        "audio_s": clip.seconds,
    }
    if settings.keep_audio:
        relative = frame_file(at, ".wav")
        write_wav(settings.data_dir / relative, clip)
        fields["audio_path"] = str(relative)
    return fields


def check_not_frozen(frame: CapturedFrame, score: float | None, store: Store, now: float) -> None:
    """Raise CaptureError when a camera's picture has not moved for FROZEN_AFTER_S: some cameras keep streaming
    their last image when their sensor or encoder hangs, and the monitor would report a sleeping baby for ever. Only
    for RTSP cameras: a JPEG file (the demo, a test) is still by design."""
    if score is None or score >= FROZEN_DIFF or not is_camera_url(frame.source):
        return
    since = store.last_moving_ts(FROZEN_DIFF)
    if since is not None and now - since >= FROZEN_AFTER_S:
        raise CaptureError(
            f"the picture from camera {frame.source} has not changed since {clock(since)}: "
            "its stream looks frozen (restart the camera)"
        )


def classify(
    settings: Settings, frame: CapturedFrame, store: Store, at: datetime, models: LazyCascade, *, force: bool = False
) -> TickRow:
    """Build the tick's row: reuse the last result when the frame is unchanged, else run the cascade. `force`: run it
    anyway (a confirmation frame: eyes opening 15 s on may change a few pixels, and a copy confirms nothing)."""
    started = time.perf_counter()
    reference = _read_reference(settings, store)
    crop = bassinet_crop(settings)
    check_crop_fits(frame.image, crop)  # a crop outside the frame is a failed tick, never an empty bassinet
    score = None if reference is None else diff_score(reference, frame.image, crop)
    check_not_frozen(frame, score, store, at.timestamp())
    previous = store.last_classified()
    unchanged = (
        not force
        and score is not None
        and score < settings.diff_threshold
        and previous is not None
        and at.timestamp() - previous.ts < MAX_UNCHANGED_S
    )
    night = is_infrared(frame.image)
    if unchanged:
        fields = {
            "state": previous.state,
            "presence_label": previous.presence_label,
            "presence_conf": previous.presence_conf,
            "face_box": previous.face_box,
            "face_conf": previous.face_conf,
            "eyes_label": previous.eyes_label,
            "eyes_conf": previous.eyes_conf,
            "model_version": previous.model_version,
        }
    else:
        result = models.get().run(frame.image, crop)
        fields = {
            "state": result.state,
            "presence_label": result.presence_label,
            "presence_conf": result.presence_conf,
            "face_box": result.face_box,
            "face_conf": result.face_conf,
            "eyes_label": result.eyes_label,
            "eyes_conf": result.eyes_conf,
            "model_version": result.model_version,
        }
    keep = not unchanged or settings.keep_unchanged_jpeg
    return TickRow(
        ts=at.timestamp(),
        source=frame.source,
        unchanged=unchanged,
        diff_score=score,
        night=night,
        jpeg_path=_save_jpeg(settings, frame, at) if keep else None,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        **fields,
    )
