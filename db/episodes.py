"""Every SQL statement about the continuous listener's cry episodes (migration 11) and the alerts it queues.

The listener (listener/) writes through the tick's `Store`, on its own connection: an episode's row and the cry
alert it raised land in ONE transaction, like a tick's row and its alerts (`Store.insert_tick`), so a crash or a
locked database never leaves an alert without its episode or the other way round. The outbox row is the same
table every other alert lives in, so `alerts.outbox.deliver_pending` (the listener's at once, every tick's after)
delivers it, retries it and never loses it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from db.connection import Connection
from db.records import Alert, CryEpisode
from db.rows import EPISODE_COLUMNS, import_alert, queue_alert

_VALUES = ", ".join("?" * len(EPISODE_COLUMNS.split(", ")))


def _from_sql(r: sqlite3.Row) -> CryEpisode:
    return CryEpisode(**{key: r[key] for key in r.keys()})  # noqa: SIM118 - sqlite3.Row has no iteration over keys


def _backup_lines(store: EpisodeQueries, path: Path, episodes: list[tuple[CryEpisode, Alert | None]]) -> None:
    """Queue backup lines of (episode, the alert its onset raised) in the transaction that wrote them
    (`db.jsonl.write` appends them later)."""
    from db import jsonl  # db.jsonl imports db.store, which is built from this module

    jsonl.queue(store, path, [jsonl.cry_episode_record(episode, alert) for episode, alert in episodes])


class EpisodeQueries(Connection):
    def start_episode(self, episode: CryEpisode, alert: Alert | None, backup: Path | None = None) -> CryEpisode:
        """Store a new episode and the alert its onset raised (if any) in one transaction; returns it with its ids.
        Raises StoreError (nothing written) when the database is locked or cannot be written: the caller keeps the
        episode and tries again, so a busy database delays an alert but never drops it. `backup` (ticks.jsonl): its
        backup line waits in the same transaction (`jsonl.write` appends it), so a rebuilt database has it too."""
        with self._write() as conn:
            alert_id = queue_alert(conn, alert) if alert is not None else None
            episode_id = conn.execute(
                f"INSERT INTO cry_episodes ({EPISODE_COLUMNS}) VALUES ({_VALUES})",
                (None, episode.start_ts, episode.onset_ts, episode.last_ts, episode.end_ts, episode.peak_probability,
                 episode.peak_dbfs, episode.background_dbfs, alert_id),
            ).lastrowid  # fmt: skip
            stored = replace(episode, id=episode_id, alert_id=alert_id)
            if backup is not None:
                _backup_lines(self, backup, [(stored, None if alert is None else replace(alert, id=alert_id))])
        return stored

    def update_episode(self, episode: CryEpisode, backup: Path | None = None) -> None:
        """Write an episode's progress (newest cry-like second, peaks) or its end; the row must exist. Its end (not
        its progress, a line a second) is backed up to `backup` in the same transaction."""
        with self._write() as conn:
            conn.execute(
                "UPDATE cry_episodes SET last_ts = ?, end_ts = ?, peak_probability = ?, peak_dbfs = ? WHERE id = ?",
                (episode.last_ts, episode.end_ts, episode.peak_probability, episode.peak_dbfs, episode.id),
            )
            if backup is not None and episode.end_ts is not None:
                row = conn.execute(f"SELECT {EPISODE_COLUMNS} FROM cry_episodes WHERE id = ?", (episode.id,)).fetchone()
                _backup_lines(self, backup, [(_from_sql(row), None)])

    def close_open_episodes(self, backup: Path | None = None) -> int:
        """End every episode still open at its newest cry-like second: a listener that was killed mid-episode (or a
        machine that lost power) left it open, and only a running listener can know that crying goes on. Returns
        how many it closed; the listener calls it when it starts."""
        with self._write() as conn:
            open_ids = [r["id"] for r in conn.execute("SELECT id FROM cry_episodes WHERE end_ts IS NULL")]
            conn.execute("UPDATE cry_episodes SET end_ts = last_ts WHERE end_ts IS NULL")
            if backup is not None and open_ids:
                marks = ", ".join("?" * len(open_ids))
                closed = conn.execute(f"SELECT {EPISODE_COLUMNS} FROM cry_episodes WHERE id IN ({marks})", open_ids)
                _backup_lines(self, backup, [(_from_sql(r), None) for r in closed])
            return len(open_ids)

    def import_episode(self, episode: CryEpisode, alert: Alert | None) -> None:
        """A backed-up episode line (db.rebuild), keeping its id: its start line inserts it (and its alert, settled
        by the caller), its end line updates it; a line that comes twice changes nothing."""
        with self._write() as conn:
            if alert is not None:
                import_alert(conn, alert)
            conn.execute(
                f"INSERT INTO cry_episodes ({EPISODE_COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (id) DO UPDATE SET "
                "last_ts = excluded.last_ts, end_ts = excluded.end_ts, peak_probability = excluded.peak_probability, "
                "peak_dbfs = excluded.peak_dbfs",
                (episode.id, episode.start_ts, episode.onset_ts, episode.last_ts, episode.end_ts,
                 episode.peak_probability, episode.peak_dbfs, episode.background_dbfs, episode.alert_id),
            )  # fmt: skip

    def open_episode(self) -> CryEpisode | None:
        """The episode going on now, if any (the newest one not ended)."""
        rows = self._read(f"SELECT {EPISODE_COLUMNS} FROM cry_episodes WHERE end_ts IS NULL ORDER BY id DESC LIMIT 1")
        return _from_sql(rows[0]) if rows else None

    def episodes_between(self, start_ts: float, end_ts: float) -> list[CryEpisode]:
        """Episodes that overlap [start_ts, end_ts), oldest first (an open one overlaps everything after its start):
        what the dashboard's timeline draws as "crying from … to …"."""
        rows = self._read(
            f"SELECT {EPISODE_COLUMNS} FROM cry_episodes WHERE start_ts < ? AND coalesce(end_ts, last_ts) >= ? "
            "ORDER BY start_ts",
            (end_ts, start_ts),
        )
        return [_from_sql(r) for r in rows]

    def queue_listener_alert(self, alert: Alert) -> Alert:
        """Queue one alert of the listener's that has no episode (the tick's "cries are no longer heard" and "heard
        again", `listener.health`) in the shared outbox; returns it with its id."""
        with self._write() as conn:
            return replace(alert, id=queue_alert(conn, alert))
