"""Audio in, cry episodes out: the 5 s window ending now, scored once a second, through the shipped cry rule.

`Windows` cuts the PCM that arrives into the model's windows (WINDOW_S long, one every LISTEN_HOP_S: the same
`models.audio_features` windows as train/cry_listen.py measures); `EpisodeTracker` feeds each window's cry
probability and loudness to `models.cry_rule.CryListener` (the decision the evaluation chose, shipped in cry.json
as "rule") and adds what the store needs: when the episode started (the first cry-like window of its onset, not the
moment the rule became sure), its newest cry-like second, its peaks. Pure: no I/O, no clock (times come in).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from db.store import CryEpisode
from models import audio_features as af
from models.cry_rule import CryListener, CryRule

PROGRESS_EVERY_S = 30.0  # an ongoing episode's row is brought up to date this often (the dashboard shows it)


class Windows:
    """Samples in, full model windows out: one every `hop_s` of audio once WINDOW_S has arrived."""

    def __init__(self, hop_s: float = af.LISTEN_HOP_S) -> None:
        self.hop = round(hop_s * af.SAMPLE_RATE)
        self._window = np.zeros(af.WINDOW_SAMPLES, np.float32)
        self._filled = 0  # samples of the window that came from the stream (the rest are zeros at the start)
        self._pending = np.zeros(0, np.float32)

    def reset(self) -> None:
        """A new connection: the audio before it is not continuous with what comes, so the window starts empty."""
        self.__init__(self.hop / af.SAMPLE_RATE)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add samples; the full windows that ended in them, oldest first (usually none or one)."""
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        out = []
        while len(self._pending) >= self.hop:
            step, self._pending = self._pending[: self.hop], self._pending[self.hop :]
            self._window = np.concatenate([self._window[self.hop :], step])
            self._filled = min(af.WINDOW_SAMPLES, self._filled + self.hop)
            if self._filled >= af.WINDOW_SAMPLES:
                out.append(self._window.copy())
        return out


@dataclass(frozen=True)
class Onset:
    """The rule says crying: the moment to alert. `episode` has no id yet."""

    episode: CryEpisode
    windows: int  # cry-like windows in a row that made the onset


@dataclass(frozen=True)
class Progress:
    """An ongoing episode's newest cry-like second and peaks, written now and then."""

    episode: CryEpisode


@dataclass(frozen=True)
class End:
    """The episode is over (`end_ts` set: its last cry-like window)."""

    episode: CryEpisode


Event = Onset | Progress | End


@dataclass(frozen=True)
class Scored:
    ts: float
    probability: float
    dbfs: float


class EpisodeTracker:
    """One listener's episodes: `feed` each scored window in order; an Onset, Progress or End, or None."""

    def __init__(self, rule: CryRule, progress_every_s: float = PROGRESS_EVERY_S) -> None:
        self.rule = rule
        self.progress_every_s = progress_every_s
        self._listener = CryListener(rule)
        self._recent: deque[Scored] = deque(maxlen=max(1, rule.consecutive))
        self.episode: CryEpisode | None = None
        self._reported_ts = 0.0

    def feed(self, probability: float, dbfs: float, ts: float) -> Event | None:
        window = Scored(ts, probability, dbfs)
        background = self._listener.background_dbfs
        said = self._listener.feed(probability, dbfs)
        self._recent.append(window)
        if said == "onset":
            run = list(self._recent)[-self.rule.consecutive :]
            self.episode = CryEpisode(
                start_ts=run[0].ts,
                onset_ts=ts,
                last_ts=ts,
                peak_probability=max(w.probability for w in run),
                peak_dbfs=max(w.dbfs for w in run),
                background_dbfs=background,
            )
            self._reported_ts = ts
            return Onset(self.episode, len(run))
        if self.episode is None:
            return None
        if probability >= self.rule.threshold:
            self.episode = replace(
                self.episode,
                last_ts=ts,
                peak_probability=max(self.episode.peak_probability, probability),
                peak_dbfs=max(self.episode.peak_dbfs, dbfs),
            )
        if said == "end":
            episode, self.episode = self.episode, None
            return End(replace(episode, end_ts=episode.last_ts))
        if ts - self._reported_ts >= self.progress_every_s:
            self._reported_ts = ts
            return Progress(self.episode)
        return None

    def break_off(self) -> End | None:
        """The stream broke off: end the episode at its last cry-like window (a new connection cannot know whether
        the crying went on) and start over, room level included; None when there was no episode."""
        episode, self.episode = self.episode, None
        self._listener = CryListener(self.rule)
        self._recent.clear()
        return None if episode is None else End(replace(episode, end_ts=episode.last_ts))
