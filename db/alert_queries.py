"""The outbox (alerts raised, their delivery) and the JSONL backup lines waiting for a disk that had no room."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from db.connection import Connection
from db.records import Alert
from db.rows import MAX_UNCONFIRMED, OUTBOX_COLUMNS, alert_from_sql


class AlertQueries(Connection):
    # --- alerts ------------------------------------------------------------------------------

    def pending_alerts(self) -> list[Alert]:
        """Alerts still to send, oldest first: not confirmed, and not given up as possibly delivered."""
        rows = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE sent_ts IS NULL AND unconfirmed < ? ORDER BY id",
            (MAX_UNCONFIRMED,),
        ).fetchall()
        return [alert_from_sql(r) for r in rows]

    def alerts(self, kind: str | None = None) -> list[Alert]:
        """Every alert ever raised (sent or not), oldest first."""
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._conn.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox {where} ORDER BY id", params).fetchall()
        return [alert_from_sql(r) for r in rows]

    def alerts_between(self, start_ts: float, end_ts: float) -> list[Alert]:
        rows = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE created_ts >= ? AND created_ts < ? ORDER BY created_ts",
            (start_ts, end_ts),
        ).fetchall()
        return [alert_from_sql(r) for r in rows]

    def last_alert_ts(self, kind: str) -> float | None:
        """The newest alert of `kind`, combined alerts included ('wake+cry' counts as a wake and as a cry)."""
        r = self._conn.execute(
            "SELECT created_ts FROM outbox WHERE kind = ? OR '+' || kind || '+' LIKE '%+' || ? || '+%' "
            "ORDER BY id DESC LIMIT 1",
            (kind, kind),
        ).fetchone()
        return r[0] if r else None

    def claim(self, alert_id: int, now: float, lease_s: float) -> bool:
        """Mark a pending alert as being sent by this process; False when another process (the tick, the cry
        listener) is sending it now, or it was sent meanwhile. A claim older than `lease_s` (its process died
        mid-send) is taken over. `now` is the wall clock: claims are compared between processes."""
        with self._write() as conn:
            claimed = conn.execute(
                "UPDATE outbox SET sending_ts = ? WHERE id = ? AND sent_ts IS NULL "
                "AND (sending_ts IS NULL OR sending_ts < ?)",
                (now, alert_id, now - lease_s),
            )
            return claimed.rowcount == 1

    def mark_sent(self, alert_id: int, sent_ts: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET sent_ts = ?, attempts = attempts + 1, sending_ts = NULL WHERE id = ?",
                (sent_ts, alert_id),
            )

    def alerts_of_tick(self, tick_id: int) -> list[Alert]:
        """The alerts a tick raised (for its backup line)."""
        rows = self._conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE tick_id = ? ORDER BY id", (tick_id,)
        ).fetchall()
        return [alert_from_sql(r) for r in rows]

    def import_delivery(self, alert_id: int, sent_ts: float, attempts: int) -> None:
        """Record that a restored alert was delivered (rebuild from the backup's "alert_sent" line)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET sent_ts = ?, attempts = ?, last_error = NULL WHERE id = ?",
                (sent_ts, attempts, alert_id),
            )

    def mark_failed(self, alert_id: int, error: str, *, maybe_sent: bool = False) -> None:
        """A failed try; `maybe_sent`: the answer was lost after the alert went out, so it may have arrived."""
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, unconfirmed = unconfirmed + ?, "
                "sending_ts = NULL WHERE id = ?",
                (error, int(maybe_sent), alert_id),
            )

    # --- JSONL backup lines waiting to be written (db/jsonl.py) ------------------------------

    def queue_backup(self, path: Path, lines: Sequence[str], now: float) -> None:
        """Queue backup lines for `path`; inside `atomic`, with the data they mirror, so no kill can separate them."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO backup_waiting (path, line, created_ts) VALUES (?, ?, ?)",
                [(str(path), line, now) for line in lines],
            )

    def append_backup(self, path: Path, append: Callable[[Path, Sequence[str]], None]) -> OSError | None:
        """Append `path`'s waiting lines in order and delete them, holding the write lock so two writers (the tick
        and the dashboard) never append the same line twice. Returns None, or the OSError (the lines stay)."""
        with self._write() as conn:
            waiting = conn.execute(
                "SELECT id, line FROM backup_waiting WHERE path = ? ORDER BY id", (str(path),)
            ).fetchall()
            if not waiting:
                return None
            try:
                append(path, [w["line"] for w in waiting])
            except OSError as exc:
                conn.execute("UPDATE backup_waiting SET error = ? WHERE path = ?", (str(exc), str(path)))
                return exc
            conn.execute("DELETE FROM backup_waiting WHERE path = ? AND id <= ?", (str(path), waiting[-1]["id"]))
        return None

    def backup_waiting(self) -> dict[Path, int]:
        """How many lines wait for each backup file (none: every backup is complete)."""
        rows = self._conn.execute("SELECT path, COUNT(*) FROM backup_waiting GROUP BY path ORDER BY path").fetchall()
        return {Path(r[0]): r[1] for r in rows}
