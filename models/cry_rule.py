"""The continuous listener's cry decision: per-window cry probabilities and loudness in, cry episodes out.

Pure Python (no numpy, no ONNX), so the evaluation (train/cry_listen.py) and the coming continuous listener run
exactly the same decision code. Feed it once a second (`hop_s`) with the cry probability of the 5 s window that
ends now and that window's loudness in dBFS; it answers "onset" when a cry episode starts (the moment to alert),
"end" when it is over, or None.

Why a rule over several windows and the room's own level, not one window over a threshold: a voice, a laugh or
a machine can sound like crying for one window, and at one window a second (sixty times what a 4-minute tick
hears) such windows come often. A crying fit lasts minutes and is LOUDER than the room it happens in, so an onset
needs `consecutive` windows in a row at or above `threshold`, each at least `margin_db` above the room's
background level (a low quantile of the last `background_s` seconds of window loudness: a TV or a dishwasher
that plays all the time raises the background with it). Once an episode runs, probability alone keeps it going
(the background then climbs with the crying itself); `end_after_s` seconds without a cry-like window end it.
The numbers are chosen on the validation sources by train/cry_listen.py and shipped in cry.json ("rule").
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class CryRule:
    threshold: float = 0.5  # per-window cry probability that counts as cry-like
    consecutive: int = 3  # cry-like windows in a row (one a second) for an onset
    margin_db: float = 0.0  # each of them at least this far above the room's background level
    background_s: int = 120  # seconds of window loudness the background level is taken from
    background_quantile: float = 0.2  # the background level: this quantile of them (the room between sounds)
    min_history: int = 10  # fewer seconds of history than this: no background yet, loudness does not veto
    end_after_s: int = 20  # seconds without a cry-like window that end an episode
    hop_s: float = 1.0  # seconds between two feeds

    @classmethod
    def from_dict(cls, values: dict | None) -> CryRule:
        """The rule a manifest ships (unknown keys ignored, missing ones at their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty list, in pure Python."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class CryListener:
    """The state of one continuous listener: the loudness history, the run of cry-like windows, the episode."""

    def __init__(self, rule: CryRule | None = None) -> None:
        self.rule = rule or CryRule()
        self._history: deque[float] = deque(maxlen=max(1, round(self.rule.background_s / self.rule.hop_s)))
        self._run = 0  # cry-like, loud-enough windows in a row
        self._quiet = 0  # windows in a row below the threshold, during an episode
        self.in_episode = False

    @property
    def background_dbfs(self) -> float | None:
        """The room's background level now, or None while there is too little history."""
        if len(self._history) < self.rule.min_history:
            return None
        return quantile(list(self._history), self.rule.background_quantile)

    def loud_enough(self, loudness_dbfs: float) -> bool:
        background = self.background_dbfs
        return background is None or loudness_dbfs >= background + self.rule.margin_db

    def feed(self, probability: float, loudness_dbfs: float) -> str | None:
        """One window a hop: 'onset' when a cry episode starts, 'end' when it is over, else None."""
        rule = self.rule
        cry_like = probability >= rule.threshold
        counts = cry_like and self.loud_enough(loudness_dbfs)  # judged against the background BEFORE this window
        self._history.append(loudness_dbfs)
        if self.in_episode:
            self._quiet = 0 if cry_like else self._quiet + 1
            if self._quiet * rule.hop_s >= rule.end_after_s:
                self.in_episode, self._run, self._quiet = False, 0, 0
                return "end"
            return None
        self._run = self._run + 1 if counts else 0
        if self._run >= rule.consecutive:
            self.in_episode, self._quiet = True, 0
            return "onset"
        return None


def onsets(rule: CryRule, probabilities: list[float], loudness_dbfs: list[float]) -> list[int]:
    """Indices of the windows at which a listener fed these windows in order raises an onset."""
    listener = CryListener(rule)
    pairs = enumerate(zip(probabilities, loudness_dbfs, strict=True))
    return [i for i, (p, db) in pairs if listener.feed(p, db) == "onset"]
