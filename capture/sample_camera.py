"""The built-in sample camera: a stylised nursery rendered with numpy + OpenCV drawing.

Two entry points:
- `render_scene(rng, presence=, eyes=, night=)`: a random frame plus its truth, for training;
- `frame_at(t)`: the deterministic sample night (see `SCHEDULE`), a function of t's wall-clock
  time, for the demo and the tests. Within one stretch of the schedule the room and the baby's
  pose are fixed (seeded by the stretch); only sensor noise changes from tick to tick (seeded by t),
  so an unchanged bassinet passes the tick's pixel-diff skip. Awake babies move a little.

No torch here: the tick imports this for `--source sample`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import cv2
import numpy as np

FRAME_SIZE = (640, 360)  # (w, h)
BASSINET_CROP = (140, 16, 500, 348)  # x1, y1, x2, y2: the bassinet (rim included) in every sample frame
_MATTRESS = (160, 36, 480, 328)
EYE_STATES = ("open", "closed", "away")

# (start "HH:MM", end "HH:MM", state); an end before its start wraps past midnight.
SCHEDULE: tuple[tuple[str, str, str], ...] = (
    ("07:00", "18:30", "absent-day"),
    ("18:30", "19:30", "absent-day"),
    ("19:30", "20:00", "open-day"),
    ("20:00", "21:00", "closed-day"),
    ("21:00", "23:00", "closed-night"),
    ("23:00", "23:40", "away-night"),
    ("23:40", "02:00", "closed-night"),
    ("02:00", "02:24", "open-night"),
    ("02:24", "06:00", "closed-night"),
    ("06:00", "06:30", "open-night"),
    ("06:30", "07:00", "open-day"),
)
# state -> (presence, eyes, night)
STATES: dict[str, tuple[bool, str | None, bool]] = {
    "absent-day": (False, None, False),
    "open-day": (True, "open", False),
    "closed-day": (True, "closed", False),
    "closed-night": (True, "closed", True),
    "away-night": (True, "away", True),
    "open-night": (True, "open", True),
}
_ROOM_SEED = 20240611
_MOVE_EVERY_S = 150
_XS = np.linspace(-1, 1, FRAME_SIZE[0], dtype=np.float32)
_R2 = (
    _XS[None, :] ** 2 + np.linspace(-1, 1, FRAME_SIZE[1], dtype=np.float32)[:, None] ** 2
) / 2  # an awake baby shifts its head this often


@dataclass(frozen=True)
class SampleTruth:
    presence: bool
    face_box: tuple[float, float, float, float] | None  # x1, y1, x2, y2 in frame pixels, hair line included
    eyes: str | None  # 'open' | 'closed' | 'away' | None (absent)
    night: bool  # infrared grayscale frame
    awake: bool  # eyes == 'open'


@dataclass(frozen=True)
class _Room:
    floor: tuple[int, int, int]
    rim: tuple[int, int, int]
    sheet: tuple[int, int, int]
    pattern: tuple[int, int, int]
    pattern_kind: int
    pattern_seed: int
    blanket: tuple[int, int, int]
    light_gain: float
    light_slope: float
    blur: float
    noise: float
    jpeg: int


@dataclass(frozen=True)
class _Baby:
    cx: float
    cy: float
    h: float  # head height incl. hair, px
    aspect: float
    angle: float  # degrees
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    cap: bool
    iris: tuple[int, int, int]
    blanket_top: float
    fold_seed: int


def _jitter(rng: np.random.Generator, color, spread: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.normal(0, spread), 0, 255)) for c in color)


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    light, dark = np.array([185, 205, 245]), np.array([45, 70, 115])  # BGR
    k = rng.uniform(0, 1)
    return _jitter(rng, light * (1 - k) + dark * k, 8)


def _sample_room(rng: np.random.Generator, night: bool) -> _Room:
    pastel = lambda: _jitter(rng, rng.uniform(120, 245, 3), 0)  # noqa: E731
    return _Room(
        floor=_jitter(rng, (60, 95, 140), 25),
        rim=pastel(),
        sheet=pastel(),
        pattern=pastel(),
        pattern_kind=int(rng.integers(0, 4)),
        pattern_seed=int(rng.integers(0, 2**31)),
        blanket=_jitter(rng, rng.uniform(60, 240, 3), 0),
        light_gain=float(rng.uniform(0.7, 1.15) if not night else rng.uniform(0.85, 1.1)),
        light_slope=float(rng.uniform(-0.25, 0.25)),
        blur=float(rng.uniform(0.0, 1.0) if not night else rng.uniform(0.5, 1.3)),
        noise=float(rng.uniform(1.5, 4.0) if not night else rng.uniform(3.0, 5.5)),
        jpeg=int(rng.integers(60, 92)),
    )


def _sample_baby(rng: np.random.Generator, big: bool = False) -> _Baby:
    mx1, my1, mx2, _ = _MATTRESS
    h = float(rng.uniform(85, 120) if big else rng.uniform(50, 120))
    cx = float(rng.uniform(mx1 + 0.6 * h, mx2 - 0.6 * h))
    cy = float(rng.uniform(my1 + 0.6 * h, my1 + 0.6 * h + 70))
    hair = _jitter(rng, (25, 40, 60), 15) if rng.uniform() < 0.7 else _jitter(rng, (60, 120, 170), 20)
    return _Baby(
        cx=cx,
        cy=cy,
        h=h,
        aspect=float(rng.uniform(0.78, 0.9)),
        angle=float(rng.uniform(-18, 18)),
        skin=_skin(rng),
        hair=hair if rng.uniform() < 0.7 else _jitter(rng, rng.uniform(80, 240, 3), 0),
        cap=bool(rng.uniform() < 0.3),
        iris=_jitter(rng, [(40, 60, 90), (120, 90, 50), (30, 30, 30), (80, 110, 90)][int(rng.integers(0, 4))], 10),
        blanket_top=float(cy + rng.uniform(0.5, 0.75) * h),
        fold_seed=int(rng.integers(0, 2**31)),
    )


def _head_box(b: _Baby) -> tuple[float, float, float, float]:
    a, c = b.aspect * b.h / 2, b.h / 2
    t = math.radians(b.angle)
    hw = math.sqrt((a * math.cos(t)) ** 2 + (c * math.sin(t)) ** 2)
    hh = math.sqrt((a * math.sin(t)) ** 2 + (c * math.cos(t)) ** 2)
    return (b.cx - hw, b.cy - hh, b.cx + hw, b.cy + hh)


class _Painter:
    """Draws in head-local coordinates (x right, y down, units of head height), rotated by the pose."""

    def __init__(self, img: np.ndarray, b: _Baby, tone):
        self.img, self.b, self.tone = img, b, tone
        t = math.radians(b.angle)
        self.c, self.s = math.cos(t), math.sin(t)

    def pt(self, lx: float, ly: float) -> tuple[int, int]:
        x, y = lx * self.b.h, ly * self.b.h
        return (round(self.b.cx + x * self.c - y * self.s), round(self.b.cy + x * self.s + y * self.c))

    def ellipse(self, lx, ly, ax, ay, color, kind="", thick=-1, start=0, end=360, rot=0.0):
        axes = (max(1, round(ax * self.b.h)), max(1, round(ay * self.b.h)))
        cv2.ellipse(
            self.img, self.pt(lx, ly), axes, self.b.angle + rot, start, end, self.tone(color, kind), thick, cv2.LINE_AA
        )

    def line(self, p, q, color, thick=1):
        cv2.line(self.img, self.pt(*p), self.pt(*q), self.tone(color, ""), thick, cv2.LINE_AA)


def _draw_eye(p: _Painter, side: int, eyes: str, rng_color) -> None:
    ex, ey, ew = side * 0.19, 0.1, 0.085
    if eyes == "open":
        p.ellipse(ex, ey, ew, ew * 0.55, (235, 240, 245), "sclera")
        p.ellipse(ex, ey, ew * 0.5, ew * 0.5, rng_color, "iris")
        p.ellipse(ex, ey, ew * 0.24, ew * 0.24, (10, 10, 10), "pupil")
        p.ellipse(ex + 0.015, ey - 0.015, ew * 0.09, ew * 0.09, (255, 255, 255), "glint")
        p.ellipse(ex, ey, ew, ew * 0.58, (30, 30, 40), "lid", thick=2, start=180, end=360)
    else:  # closed: a lid line curving down with lashes
        p.ellipse(ex, ey - 0.01, ew, ew * 0.45, (40, 40, 60), "lid", thick=2, start=10, end=170)
        for k in (-0.6, -0.2, 0.2, 0.6):
            p.line((ex + k * ew, ey - 0.01 + 0.4 * ew), (ex + k * 1.2 * ew, ey - 0.01 + 0.65 * ew), (30, 30, 40))


def _draw_baby(img: np.ndarray, b: _Baby, eyes: str, tone) -> None:
    p = _Painter(img, b, tone)
    a = b.aspect / 2
    if eyes == "away":  # back of the head: hair/cap over almost everything, one ear, a sliver of cheek
        p.ellipse(0, 0, a, 0.5, b.skin, "skin")
        p.ellipse(-0.08, -0.02, a * 0.92, 0.49, b.hair, "hair")
        p.ellipse(a * 0.9, 0.05, 0.06, 0.1, b.skin, "skin")
        return
    p.ellipse(-a, 0.05, 0.07, 0.11, b.skin, "skin")  # ears
    p.ellipse(a, 0.05, 0.07, 0.11, b.skin, "skin")
    p.ellipse(0, 0, a, 0.5, b.hair, "hair")
    p.ellipse(0, 0.08, a * 0.95, 0.42, b.skin, "skin")  # face below the hair line
    if b.cap:
        p.ellipse(0, -0.05, a * 1.02, 0.46, b.hair, "cap", start=180, end=360)
        p.line((-a, -0.06), (a, -0.06), b.hair, thick=max(2, round(b.h * 0.05)))
    shade = tuple(int(c * 0.75) for c in b.skin)
    p.ellipse(0, 0.24, 0.045, 0.03, shade, "skin")  # nose
    p.ellipse(0, 0.34, 0.08, 0.035, (60, 60, 150), "lip", thick=2, start=20, end=160)  # mouth
    p.ellipse(-0.24, 0.25, 0.07, 0.04, tuple(min(255, int(c * 0.93)) for c in b.skin), "skin")  # cheeks
    p.ellipse(0.24, 0.25, 0.07, 0.04, tuple(min(255, int(c * 0.93)) for c in b.skin), "skin")
    for side in (-1, 1):
        _draw_eye(p, side, eyes, b.iris)


def _folds(img, rng, x1, y1, x2, y2, color, tone, n):
    for _ in range(n):
        y0 = rng.uniform(y1 + 10, y2)
        amp, freq, ph = rng.uniform(3, 12), rng.uniform(0.01, 0.04), rng.uniform(0, 6.3)
        xs = np.arange(x1, x2, 6)
        ys = y0 + amp * np.sin(xs * freq + ph) + (xs - x1) * rng.uniform(-0.2, 0.2)
        dark = tuple(int(c * rng.uniform(0.6, 0.85)) for c in color)
        pts = np.stack([xs, np.clip(ys, y1 - 8, y2 - 2)], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, tone(dark, ""), int(rng.integers(2, 5)), cv2.LINE_AA)


def _draw(room: _Room, baby: _Baby | None, eyes: str | None, night: bool, extras: dict, noise_seed: int) -> np.ndarray:
    w, h = FRAME_SIZE

    def tone(color, kind):
        if not night:
            return tuple(int(c) for c in color)
        lum = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        if kind in ("skin", "lip"):  # skin reflects near-infrared strongly
            g = 165 + 0.3 * lum
        elif kind == "sclera":
            g = 215
        elif kind == "iris":
            g = 120 + 0.3 * lum
        elif kind in ("pupil", "lid"):
            g = 40
        else:
            g = 55 + 0.55 * lum
        g = int(min(255, g))
        return (g, g, g)

    img = np.empty((h, w, 3), np.uint8)
    img[:] = tone(room.floor, "")
    for x in range(0, w, 23):  # floor boards
        cv2.line(img, (x, 0), (x, h), tone(tuple(int(c * 0.85) for c in room.floor), ""), 1)
    bx1, by1, bx2, by2 = BASSINET_CROP
    mx1, my1, mx2, my2 = _MATTRESS
    cv2.rectangle(img, (bx1 + 6, by1 + 6), (bx2 - 6, by2 - 6), tone(room.rim, ""), 14, cv2.LINE_AA)
    cv2.rectangle(img, (bx1 + 1, by1 + 1), (bx2 - 1, by2 - 1), tone(tuple(int(c * 0.7) for c in room.rim), ""), 3)
    cv2.rectangle(img, (mx1, my1), (mx2, my2), tone(room.sheet, ""), -1)
    prng = np.random.default_rng(room.pattern_seed)
    pat = tone(room.pattern, "")
    if room.pattern_kind == 0:
        for y in range(my1, my2, 18):
            cv2.line(img, (mx1, y), (mx2, y), pat, 3)
    elif room.pattern_kind in (1, 2):
        for _ in range(70):
            c = (int(prng.uniform(mx1, mx2)), int(prng.uniform(my1, my2)))
            cv2.circle(img, c, 4 if room.pattern_kind == 1 else 7, pat, -1, cv2.LINE_AA)
    cv2.rectangle(img, (mx1, my1), (mx2, my2), tone(tuple(int(c * 0.8) for c in room.sheet), ""), 2)

    def blanket(top: float, color, seed):
        brng = np.random.default_rng(seed)
        xs = np.arange(mx1, mx2 + 8, 8)
        ys = top + 6 * np.sin(xs * 0.05 + brng.uniform(0, 6)) + brng.normal(0, 1.5, len(xs))
        poly = np.concatenate([np.stack([xs, ys], 1), [[mx2, my2], [mx1, my2]]]).astype(np.int32)
        cv2.fillPoly(img, [poly], tone(color, ""), cv2.LINE_AA)
        cv2.polylines(img, [poly[:-2]], False, tone(tuple(int(c * 0.75) for c in color), ""), 3, cv2.LINE_AA)
        _folds(img, brng, mx1, int(top) + 8, mx2, my2, color, tone, 6)

    if extras.get("crumple") is not None:  # skin-coloured crumpled blanket: colour alone cannot tell presence
        cx, cy, r, col, seed = extras["crumple"]
        crng = np.random.default_rng(seed)
        ang = np.sort(crng.uniform(0, 2 * np.pi, 11))
        rad = r * crng.uniform(0.6, 1.2, 11)
        poly = np.stack([cx + rad * np.cos(ang), cy + 0.8 * rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(img, [poly], tone(col, "skin"), cv2.LINE_AA)
        _folds(img, crng, int(cx - r), int(cy - r * 0.6), int(cx + r), int(cy + r * 0.6), col, tone, 3)
    if baby is not None:
        # the body under the blanket: shoulders bump, then the blanket with folds
        sh = tone(tuple(int(c * 0.9) for c in room.blanket), "")
        cv2.ellipse(img, (int(baby.cx), int(baby.blanket_top + 40)), (int(baby.h * 0.9), 60), 0, 0, 360, sh, -1)
        _draw_baby(img, baby, eyes, tone)
        blanket(baby.blanket_top, room.blanket, baby.fold_seed)
    elif extras.get("flat_blanket") is not None:
        blanket(extras["flat_blanket"], room.blanket, room.pattern_seed + 1)
    if extras.get("toy") is not None:
        tx, ty, r, col = extras["toy"]
        for dx, dy, rr in ((0, 0, 1.0), (-0.7, -0.8, 0.45), (0.7, -0.8, 0.45), (0, 1.3, 0.8)):
            cv2.circle(img, (int(tx + dx * r), int(ty + dy * r)), int(rr * r), tone(col, ""), -1, cv2.LINE_AA)
        cv2.circle(img, (int(tx - 0.3 * r), int(ty - 0.1 * r)), 2, tone((20, 20, 20), ""), -1)
        cv2.circle(img, (int(tx + 0.3 * r), int(ty - 0.1 * r)), 2, tone((20, 20, 20), ""), -1)
    if extras.get("pacifier") is not None:
        px, py, col = extras["pacifier"]
        cv2.circle(img, (int(px), int(py)), 9, tone(col, ""), -1, cv2.LINE_AA)
        cv2.circle(img, (int(px), int(py)), 5, tone((220, 220, 230), ""), 2, cv2.LINE_AA)
    if extras.get("hand") is not None:
        hx, hy, r, col = extras["hand"]
        cv2.ellipse(img, (int(hx), int(hy)), (int(r), int(r * 0.75)), 0, 0, 360, tone(col, "skin"), -1, cv2.LINE_AA)
        for k in range(4):
            fx = int(hx - r * 0.6 + k * r * 0.4)
            cv2.ellipse(img, (fx, int(hy - r * 0.8)), (int(r * 0.17), int(r * 0.35)), 0, 0, 360, tone(col, "skin"), -1)

    # lighting, optics and the sensor
    light = (room.light_gain * (1 + room.light_slope * _XS))[None, :] * (1 - (0.45 if night else 0.15) * _R2)
    f = img[:, :, 0].astype(np.float32) * (0.85 * light) + 15 if night else img.astype(np.float32) * light[:, :, None]
    if room.blur > 0.2:
        f = cv2.GaussianBlur(f, (0, 0), room.blur)
    nrng = np.random.default_rng(noise_seed)
    f += nrng.standard_normal(f.shape, dtype=np.float32) * room.noise
    out = np.clip(f, 0, 255).astype(np.uint8)
    _ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, room.jpeg])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if night:  # infrared: one channel, replicated
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    return out


def _sample_extras(rng: np.random.Generator, baby: _Baby | None) -> dict:
    mx1, my1, mx2, my2 = _MATTRESS
    extras: dict = {}
    if baby is None:
        if rng.uniform() < 0.6:
            r = rng.uniform(30, 60)
            extras["crumple"] = (
                rng.uniform(mx1 + r, mx2 - r),
                rng.uniform(my1 + r, my2 - r),
                r,
                _skin(rng),
                int(rng.integers(1 << 30)),
            )
        if rng.uniform() < 0.6:
            extras["flat_blanket"] = rng.uniform(my1 + 60, my2 - 40)
    else:
        if rng.uniform() < 0.3:
            extras["pacifier"] = (
                baby.cx + rng.uniform(-1, 1) * baby.h * 0.5,
                baby.cy + baby.h * 0.45,
                _jitter(rng, rng.uniform(80, 250, 3), 0),
            )
        if rng.uniform() < 0.25:
            side = 1 if rng.uniform() < 0.5 else -1
            r = baby.h * 0.16
            extras["hand"] = (baby.cx + side * baby.h * 0.55, baby.cy + baby.h * 0.35, r, baby.skin)
    if rng.uniform() < 0.35:
        r = rng.uniform(12, 22)
        extras["toy"] = (
            rng.choice([mx1 + 30, mx2 - 30]),
            rng.uniform(my2 - 90, my2 - 40),
            r,
            _jitter(rng, rng.uniform(40, 240, 3), 0),
        )
    return extras


def _truth(baby: _Baby | None, eyes: str | None, night: bool) -> SampleTruth:
    if baby is None:
        return SampleTruth(False, None, None, night, False)
    box = None if eyes == "away" else tuple(float(v) for v in _head_box(baby))
    return SampleTruth(True, box, eyes, night, eyes == "open")


def render_scene(
    rng: np.random.Generator, *, presence: bool, eyes: str | None, night: bool
) -> tuple[np.ndarray, SampleTruth]:
    """A random nursery frame (BGR uint8, FRAME_SIZE) and its truth, for training and evaluation."""
    if presence and eyes not in EYE_STATES:
        raise ValueError(f"eyes must be one of {EYE_STATES} when present, got {eyes!r}")
    room = _sample_room(rng, night)
    baby = _sample_baby(rng) if presence else None
    extras = _sample_extras(rng, baby)
    img = _draw(room, baby, eyes if presence else None, night, extras, int(rng.integers(1 << 62)))
    return img, _truth(baby, eyes if presence else None, night)


def _minutes(hhmm: str) -> int:
    hh, mm = hhmm.split(":")
    return int(hh) * 60 + int(mm)


def _stretch(t: datetime) -> tuple[int, float]:
    """Index into SCHEDULE and seconds since that stretch started (by t's own wall clock)."""
    sec = t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
    for i, (start, end, _state) in enumerate(SCHEDULE):
        s, e = _minutes(start) * 60, _minutes(end) * 60
        if s <= e and s <= sec < e:
            return i, sec - s
        if s > e and (sec >= s or sec < e):
            return i, (sec - s) % 86400
    raise ValueError(f"SCHEDULE does not cover {t.time()}")


def state_at(t: datetime) -> str:
    return SCHEDULE[_stretch(t)[0]][2]


def frame_at(t: datetime) -> tuple[np.ndarray, SampleTruth]:
    """The sample night's frame at t's local wall-clock time (naive or aware), repeating daily."""
    return _frame_at(t)


def _frame_at(t: datetime, eyes_override: str | None = None) -> tuple[np.ndarray, SampleTruth]:
    idx, since = _stretch(t)
    presence, eyes, night = STATES[SCHEDULE[idx][2]]
    moving = eyes == "open"  # a waking baby moves its head every few minutes
    eyes = eyes_override or eyes
    room = _sample_room(np.random.default_rng(_ROOM_SEED + int(night)), night)
    srng = np.random.default_rng(1000 + idx)
    baby = _sample_baby(srng, big=True) if presence else None
    extras = _sample_extras(srng, baby)
    if baby is not None and moving:
        mrng = np.random.default_rng((idx, int(since // _MOVE_EVERY_S)))
        baby = replace(
            baby,
            cx=baby.cx + mrng.uniform(-8, 8),
            cy=baby.cy + mrng.uniform(-5, 5),
            angle=baby.angle + mrng.uniform(-6, 6),
        )
    stamp = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}{t.microsecond:06d}"
    img = _draw(room, baby, eyes, night, extras, zlib.crc32(stamp.encode()))
    return img, _truth(baby, eyes, night)


def night_times(start: datetime, end: datetime, interval_s: int) -> list[datetime]:
    """Tick times from start (inclusive) to end (exclusive), every interval_s seconds."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    out, t = [], start
    while t < end:
        out.append(t)
        t += timedelta(seconds=interval_s)
    return out
