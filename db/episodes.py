"""Every SQL statement about the continuous listener's cry episodes (migration 10) and the alerts it queues.

The listener (listener/) writes through the tick's `Store`, on its own connection: an episode's row and the cry
alert it raised land in ONE transaction, like a tick's row and its alerts (`Store.insert_tick`), so a crash or a
locked database never leaves an alert without its episode or the other way round. The outbox row is the same
table every other alert lives in, so `alerts.outbox.deliver_pending` (the listener's at once, every tick's after)
delivers it, retries it and never loses it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from db import jsonl
from db.rows import import_alert
from db.store import Alert, Store, StoreError

_COLUMNS = "id, start_ts, onset_ts, last_ts, end_ts, peak_probability, peak_dbfs, background_dbfs, alert_id"


@dataclass(frozen=True)
class CryEpisode:
    """One cry episode as stored; `end_ts` None while it goes on, `alert_id` None when a cooldown kept it quiet."""

    start_ts: float
    onset_ts: float
    last_ts: float
    peak_probability: float
    peak_dbfs: float
    background_dbfs: float | None = None
    end_ts: float | None = None
    alert_id: int | None = None
    id: int | None = None

    @property
    def ongoing(self) -> bool:
        return self.end_ts is None

    def to_json(self) -> dict:
        """JSON-ready, for the dashboard's timeline."""
        return {name: getattr(self, name) for name in _COLUMNS.split(", ")}


def _from_sql(r: sqlite3.Row) -> CryEpisode:
    return CryEpisode(**{key: r[key] for key in r.keys()})  # noqa: SIM118 - sqlite3.Row has no iteration over keys


@contextmanager
def _write(store: Store) -> Iterator[sqlite3.Connection]:
    """The Store's own write transaction (joins `store.atomic()`): one connection, one lock, one set of rules."""
    with store._write() as conn:  # db/ is one package: its modules share the Store's transaction
        yield conn


def _read(store: Store, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    try:
        return store._conn.execute(sql, params).fetchall()  # see _write
    except sqlite3.Error as exc:
        raise StoreError(f"database {store.path} could not be read: {exc}") from None


def _queue(conn: sqlite3.Connection, alert: Alert) -> int:
    return conn.execute(
        "INSERT INTO outbox (created_ts, kind, caption, photo_path) VALUES (?, ?, ?, ?)",
        (alert.created_ts, alert.kind, alert.caption, alert.photo_path),
    ).lastrowid


def start_episode(store: Store, episode: CryEpisode, alert: Alert | None, backup: Path | None = None) -> CryEpisode:
    """Store a new episode and the alert its onset raised (if any) in one transaction; returns it with its ids.
    Raises StoreError (nothing written) when the database is locked or cannot be written: the caller keeps the
    episode and tries again, so a busy database delays an alert but never drops it. `backup` (ticks.jsonl): its
    backup line waits in the same transaction (`jsonl.write` appends it), so a rebuilt database has it too."""
    with _write(store) as conn:
        alert_id = _queue(conn, alert) if alert is not None else None
        episode_id = conn.execute(
            f"INSERT INTO cry_episodes ({_COLUMNS}) VALUES ({', '.join('?' * 9)})",
            (None, episode.start_ts, episode.onset_ts, episode.last_ts, episode.end_ts, episode.peak_probability,
             episode.peak_dbfs, episode.background_dbfs, alert_id),
        ).lastrowid  # fmt: skip
        stored = replace(episode, id=episode_id, alert_id=alert_id)
        if backup is not None:
            queued = None if alert is None else replace(alert, id=alert_id)
            jsonl.queue(store, backup, [jsonl.cry_episode_record(stored, queued)])
    return stored


def update_episode(store: Store, episode: CryEpisode, backup: Path | None = None) -> None:
    """Write an episode's progress (newest cry-like second, peaks) or its end; the row must exist. Its end (not its
    progress, a line a second) is backed up to `backup` in the same transaction."""
    with _write(store) as conn:
        conn.execute(
            "UPDATE cry_episodes SET last_ts = ?, end_ts = ?, peak_probability = ?, peak_dbfs = ? WHERE id = ?",
            (episode.last_ts, episode.end_ts, episode.peak_probability, episode.peak_dbfs, episode.id),
        )
        if backup is not None and episode.end_ts is not None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM cry_episodes WHERE id = ?", (episode.id,)).fetchone()
            jsonl.queue(store, backup, [jsonl.cry_episode_record(_from_sql(row), None)])


def close_open_episodes(store: Store, backup: Path | None = None) -> int:
    """End every episode still open at its newest cry-like second: a listener that was killed mid-episode (or a
    machine that lost power) left it open, and only a running listener can know that crying goes on. Returns how
    many it closed; the listener calls it when it starts."""
    with _write(store) as conn:
        open_ids = [r["id"] for r in conn.execute("SELECT id FROM cry_episodes WHERE end_ts IS NULL")]
        conn.execute("UPDATE cry_episodes SET end_ts = last_ts WHERE end_ts IS NULL")
        if backup is not None and open_ids:
            marks = ", ".join("?" * len(open_ids))
            closed = conn.execute(f"SELECT {_COLUMNS} FROM cry_episodes WHERE id IN ({marks})", open_ids)
            jsonl.queue(store, backup, [jsonl.cry_episode_record(_from_sql(r), None) for r in closed])
        return len(open_ids)


def import_episode(store: Store, episode: CryEpisode, alert: Alert | None) -> None:
    """A backed-up episode line (db.rebuild), keeping its id: its start line inserts it (and its alert, settled by
    the caller), its end line updates it; a line that comes twice changes nothing."""
    with _write(store) as conn:
        if alert is not None:
            import_alert(conn, alert)
        conn.execute(
            f"INSERT INTO cry_episodes ({_COLUMNS}) VALUES ({', '.join('?' * 9)}) ON CONFLICT (id) DO UPDATE SET "
            "last_ts = excluded.last_ts, end_ts = excluded.end_ts, peak_probability = excluded.peak_probability, "
            "peak_dbfs = excluded.peak_dbfs",
            (episode.id, episode.start_ts, episode.onset_ts, episode.last_ts, episode.end_ts, episode.peak_probability,
             episode.peak_dbfs, episode.background_dbfs, episode.alert_id),
        )  # fmt: skip


def open_episode(store: Store) -> CryEpisode | None:
    """The episode going on now, if any (the newest one not ended)."""
    rows = _read(store, f"SELECT {_COLUMNS} FROM cry_episodes WHERE end_ts IS NULL ORDER BY id DESC LIMIT 1")
    return _from_sql(rows[0]) if rows else None


def episodes_between(store: Store, start_ts: float, end_ts: float) -> list[CryEpisode]:
    """Episodes that overlap [start_ts, end_ts), oldest first (an open one overlaps everything after its start):
    what the dashboard's timeline draws as "crying from … to …"."""
    rows = _read(
        store,
        f"SELECT {_COLUMNS} FROM cry_episodes WHERE start_ts < ? AND coalesce(end_ts, last_ts) >= ? ORDER BY start_ts",
        (end_ts, start_ts),
    )
    return [_from_sql(r) for r in rows]


def queue_alert(store: Store, alert: Alert) -> Alert:
    """Queue one alert of the listener's that has no episode (the tick's "cries are no longer heard" and "heard
    again", `listener.health`) in the shared outbox; returns it with its id."""
    with _write(store) as conn:
        return replace(alert, id=_queue(conn, alert))
