"""Where a frame comes from: an RTSP camera, the built-in `sample` camera, a JPEG/PNG file, or a folder.

`grab()` is the one entry point of the tick. Whatever the source, it returns a decoded BGR image plus its
JPEG bytes, or raises CaptureError with one clear line; nothing raises from deep inside OpenCV.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from capture.audio import AudioClip, pcm16_to_float
from capture.ffmpeg import AUDIO_RATE, CaptureError, find_ffmpeg, grab_rtsp, is_complete_jpeg, redact_url
from capture.frame_limits import check_file_size, check_header

if TYPE_CHECKING:
    from settings import Settings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FOLDER_SUFFIXES = (".jpg", ".jpeg")  # cameras that upload snapshots by FTP drop JPEGs
STALE_SNAPSHOT_S = 15 * 60  # a camera uploading every few minutes has stopped when its newest JPEG is this old
FUTURE_MTIME_SLACK_S = 60  # a file server's clock and ours may differ a little; more than this is a wrong clock
SAMPLE_JPEG_QUALITY = 90


@dataclass(frozen=True)
class CapturedFrame:
    jpeg: bytes
    image: np.ndarray  # BGR, uint8, H x W x 3
    source: str  # human description, credentials redacted
    audio: AudioClip | None = None  # the camera's audio (8 kHz mono), None without an audio track


def decode_jpeg(jpeg: bytes, what: str) -> np.ndarray:
    """Decode JPEG bytes to BGR; a truncated or corrupt JPEG -> CaptureError."""
    image = None
    check_header(jpeg, what)  # a corrupt header claiming a gigapixel is refused before OpenCV allocates it
    if is_complete_jpeg(jpeg):
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"{what} is not a decodable JPEG ({len(jpeg)} bytes)")
    return image


def encode_jpeg(image: np.ndarray, quality: int = SAMPLE_JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CaptureError("could not encode the frame as JPEG")
    return buf.tobytes()


def _from_rtsp(url: str, timeout_s: float, ffmpeg_path: str, audio_s: float) -> CapturedFrame:
    jpeg, pcm = grab_rtsp(url, timeout_s=timeout_s, ffmpeg=find_ffmpeg(ffmpeg_path), audio_s=audio_s)
    what = f"the frame from camera {redact_url(url)}"
    audio = AudioClip(pcm16_to_float(pcm), AUDIO_RATE) if pcm else None
    return CapturedFrame(jpeg=jpeg, image=decode_jpeg(jpeg, what), source=redact_url(url), audio=audio)


SAMPLE_SOURCE = "sample camera at "  # a stored tick's `source` for sample-camera frames, before the time


def _from_sample(at: datetime) -> CapturedFrame:
    from capture.sample_camera import frame_at  # only the demo needs it

    image, _truth = frame_at(at)
    return CapturedFrame(jpeg=encode_jpeg(image), image=image, source=f"{SAMPLE_SOURCE}{at.isoformat()}")


def _newest_image(folder: Path) -> Path:
    """The newest JPEG a camera uploaded; one older than STALE_SNAPSHOT_S means the uploads stopped (a CaptureError,
    so it counts towards the camera-down alert instead of the old picture being classified again and again)."""
    try:
        candidates = [p for p in folder.iterdir() if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file()]
    except OSError as exc:
        raise CaptureError(f"cannot list the snapshot folder {folder}: {exc.strerror}") from exc
    if not candidates:
        raise CaptureError(f"the snapshot folder {folder} holds no JPEG")
    now = time.time()
    # A file stamped in the future (a clock that was corrected backwards, a `touch -d`) would stay "newest" for ever
    # and hide every later upload: only files stamped up to FUTURE_MTIME_SLACK_S ahead count.
    plausible = [p for p in candidates if p.stat().st_mtime <= now + FUTURE_MTIME_SLACK_S]
    if not plausible:
        ahead = min(p.stat().st_mtime for p in candidates) - now
        raise CaptureError(
            f"every JPEG in the snapshot folder {folder} is stamped in the future (the nearest {ahead / 60:.0f} min "
            "ahead): is this computer's clock wrong?"
        )
    newest = max(plausible, key=lambda p: (p.stat().st_mtime_ns, p.name))
    age_s = now - newest.stat().st_mtime  # the file's real age: uploads happen in real time
    if age_s > STALE_SNAPSHOT_S:
        raise CaptureError(
            f"the newest snapshot in {folder} ({newest.name}) is {age_s / 60:.0f} min old: "
            "has the camera stopped uploading?"
        )
    return newest


def _from_file(path: Path) -> CapturedFrame:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise CaptureError(f"{path} is not a .jpg, .jpeg or .png file")
    check_file_size(path)  # a multi-GB file dropped in a snapshot folder is never read into memory
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".png":
        check_header(data, str(path))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise CaptureError(f"{path} is not a decodable PNG ({len(data)} bytes)")
        return CapturedFrame(jpeg=encode_jpeg(image), image=image, source=str(path))
    return CapturedFrame(jpeg=data, image=decode_jpeg(data, str(path)), source=str(path))


def grab(source: str, *, at: datetime, timeout_s: float, ffmpeg_path: str = "", audio_s: float = 0) -> CapturedFrame:
    """One frame from `source`: `rtsp://…`/`rtsps://…`, `sample`, an image file, or a snapshot folder.

    With `audio_s` > 0 an RTSP camera also gives that many seconds of its audio track, in the same ffmpeg
    call; the other sources have no audio (`audio` stays None). A frame that shows nothing is a CaptureError
    (`blank_frame`): the baby is as unwatched as with the camera unplugged, and the camera-down alert must say so."""
    frame = _grab(source, at=at, timeout_s=timeout_s, ffmpeg_path=ffmpeg_path, audio_s=audio_s)
    if reason := blank_frame(frame.image):
        raise CaptureError(f"{frame.source} sent a frame that shows nothing: {reason}")
    return frame


# A real scene spans 70+ grey levels between its 1st and 99th percentile (the sample camera's darkest infrared frame:
# 73); a covered lens, infrared off in a dark room or a grey/green decoding glitch spans a few.
BLANK_SPREAD = 8
BLANK_THUMBNAIL = (64, 36)  # averaging over ~10x10 pixel blocks first, so sensor noise does not count as a scene


def blank_frame(image: np.ndarray) -> str | None:
    """Why the frame shows nothing (all black, all white, one flat colour), or None when it shows a scene."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(gray, BLANK_THUMBNAIL, interpolation=cv2.INTER_AREA)
    low, high = np.percentile(thumb, (1, 99))
    if high - low >= BLANK_SPREAD:
        return None
    mean = float(thumb.mean())
    if mean < 24:
        return f"all black (mean level {mean:.0f} of 255): is the lens covered, or the infrared light off in the dark?"
    if mean > 232:
        return f"all white (mean level {mean:.0f} of 255): is the camera dazzled by a light?"
    return f"one flat colour (mean level {mean:.0f} of 255): a covered lens or a camera sending a broken picture"


def is_camera_url(source: str) -> bool:
    """An RTSP camera (a live sensor), as opposed to `sample`, a JPEG file or a snapshot folder."""
    return source.lower().startswith(("rtsp://", "rtsps://"))


def _grab(source: str, *, at: datetime, timeout_s: float, ffmpeg_path: str, audio_s: float) -> CapturedFrame:
    if is_camera_url(source):
        return _from_rtsp(source, timeout_s, ffmpeg_path, audio_s)
    if source == "sample":
        return _from_sample(at)
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_file(_newest_image(path))
    if path.is_file():
        return _from_file(path)
    raise CaptureError(f"source {redact_url(source)} is neither a camera URL, 'sample', nor an existing file or folder")


def bassinet_crop(settings: Settings, source: str | None = None) -> tuple[int, int, int, int] | None:
    """The configured crop; the sample camera knows where its own bassinet is. `source`: where a stored frame
    came from (a tick's `source`; train/retrain.py asks for old frames), by default the configured CAMERA_URL."""
    sample = settings.camera_url == "sample" if source is None else source.startswith(SAMPLE_SOURCE)
    if settings.bassinet_crop is None and sample:
        from capture.sample_camera import BASSINET_CROP  # only the demo camera needs it

        return BASSINET_CROP
    return settings.bassinet_crop
