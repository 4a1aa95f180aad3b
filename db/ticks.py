"""The ticks: storing them (with the alerts they raised), reading the newest ones for the rules, the timeline,
retention's choice of frames to delete, and the camera outage (capture failures since the last stored tick).

"Newest" is by id, the order rows were stored, never by stamp alone: a clock that jumped back leaves stamps in
the future, and such a row must not stay "the latest" (clock_skew.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from db.connection import Connection
from db.records import Alert, CameraOutage, CaptureFailure, TickRow
from db.rows import (
    MAX_UNCONFIRMED,
    TICK_COLUMNS,
    import_alert,
    insert_keeping_id,
    queue_alert,
    tick_from_sql,
    tick_params,
)


class TickQueries(Connection):
    # --- ticks -------------------------------------------------------------------------------

    def insert_tick(self, row: TickRow, alerts: Sequence[Alert] = ()) -> int:
        """Store a tick and the alerts it raised in one transaction; returns the tick id.

        A stored tick ends the camera outage before it: its capture failures are deleted in the same
        transaction, so `capture_failures` only ever holds the outage going on now. All of them, whatever their
        stamps: a clock that jumped back must neither keep an ended outage alive nor hide the next one."""
        placeholders = ", ".join("?" * len(tick_params(row)))
        with self._write() as conn:
            tick_id = conn.execute(
                f"INSERT INTO ticks ({TICK_COLUMNS}) VALUES ({placeholders})", tick_params(row)
            ).lastrowid
            for alert in alerts:
                queue_alert(conn, alert, tick_id)
            conn.execute("DELETE FROM capture_failures")
        return tick_id

    def insert_ticks(self, rows: Sequence[TickRow]) -> None:
        """Insert many ticks in one transaction (benchmarks, bulk imports); all land or none do."""
        if not rows:
            return
        placeholders = ", ".join("?" * len(tick_params(rows[0])))
        with self._write() as conn:
            conn.executemany(
                f"INSERT INTO ticks ({TICK_COLUMNS}) VALUES ({placeholders})", [tick_params(r) for r in rows]
            )

    def import_tick(self, row: TickRow, alerts: Sequence[Alert] = ()) -> bool:
        """Insert a tick and the alerts it raised keeping their ids (rebuild from the JSONL backup); like
        `insert_tick`, it ends the outage before it, so a rebuilt `capture_failures` holds only the outage that was
        going on at the end. A tick line that comes again (a retried backup append) changes nothing and returns
        False: later lines, e.g. its "pruned" mark or an alert's delivery, stand. Raises IdTaken (nothing written)
        when its id, or one of its alerts' ids, holds a different record."""
        with self._write() as conn:
            values = (row.id, *tick_params(row))
            if not insert_keeping_id(conn, "ticks", f"id, {TICK_COLUMNS}", values, frozenset({"media_pruned_ts"})):
                return False
            for alert in alerts:
                import_alert(conn, alert)
            conn.execute("DELETE FROM capture_failures WHERE ts <= ?", (row.ts,))
        return True

    def last_moving_ts(self, still_below: float) -> float | None:
        """When the newest tick whose picture moved (diff_score >= still_below, or no reference) was taken."""
        r = self._conn.execute(
            "SELECT ts FROM ticks WHERE diff_score IS NULL OR diff_score >= ? ORDER BY id DESC LIMIT 1", (still_below,)
        ).fetchone()
        return r[0] if r else None

    def tick(self, tick_id: int) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {TICK_COLUMNS} FROM ticks WHERE id = ?", (tick_id,)).fetchone()
        return tick_from_sql(r) if r else None

    def last_tick(self) -> TickRow | None:
        r = self._conn.execute(f"SELECT id, {TICK_COLUMNS} FROM ticks ORDER BY id DESC LIMIT 1").fetchone()
        return tick_from_sql(r) if r else None

    def last_classified(self) -> TickRow | None:
        """The newest tick whose models ran: the result an unchanged frame reuses."""
        rows = self.recent_classified(1)
        return rows[0] if rows else None

    def recent_classified(self, n: int) -> list[TickRow]:
        """The newest n ticks whose models ran, oldest first (input of the alert rules)."""
        rows = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks WHERE unchanged = 0 ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
        return [tick_from_sql(r) for r in reversed(rows)]

    def recent_ticks(self, n: int) -> list[TickRow]:
        """The newest n ticks, unchanged frames included, oldest first (input of the cry rule: audio is
        new evidence on every tick)."""
        rows = self._conn.execute(f"SELECT id, {TICK_COLUMNS} FROM ticks ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [tick_from_sql(r) for r in reversed(rows)]

    def last_reference_jpeg(self) -> str | None:
        """The newest kept JPEG: what the pixel diff compares against."""
        r = self._conn.execute(
            "SELECT jpeg_path FROM ticks WHERE jpeg_path IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return r["jpeg_path"] if r else None

    def ticks_between(self, start_ts: float, end_ts: float) -> list[TickRow]:
        rows = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks WHERE ts >= ? AND ts < ? ORDER BY ts, id", (start_ts, end_ts)
        ).fetchall()
        return [tick_from_sql(r) for r in rows]

    def media_paths_between(self, start_ts: float, end_ts: float) -> set[str]:
        """Every JPEG/.wav path the ticks in [start_ts, end_ts) point at (retention's sweep of left-over files)."""
        rows = self._conn.execute(
            "SELECT jpeg_path, audio_path FROM ticks WHERE ts >= ? AND ts < ?", (start_ts, end_ts)
        ).fetchall()
        return {path for r in rows for path in (r[0], r[1]) if path}

    def timeline_points(self, start_ts: float, end_ts: float) -> list[dict[str, Any]]:
        """Ticks in [start_ts, end_ts) as JSON-ready dicts (the dashboard's hot path).

        Same content as TickRow.to_json() minus jpeg_path, plus has_jpeg (false once retention removed it).
        Plain tuples and dicts instead of sqlite3.Row and frozen dataclasses: a day of ticks in well under 2 ms.
        """
        cursor = self._conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks WHERE ts >= ? AND ts < ? ORDER BY ts, id", (start_ts, end_ts)
        ).fetchall()
        points = []
        for (tid, ts, source, unchanged, diff, night, state, p_label, p_conf, x1, y1, x2, y2, f_conf, e_label, e_conf,
             jpeg, version, duration, cry, level, audio_s, audio_path, pruned, confirms) in rows:  # fmt: skip
            points.append(
                {
                    "id": tid,
                    "ts": ts,
                    "source": source,
                    "unchanged": bool(unchanged),
                    "diff_score": diff,
                    "night": bool(night),
                    "state": state,
                    "presence_label": p_label,
                    "presence_conf": p_conf,
                    "face_box": None if x1 is None else [x1, y1, x2, y2],
                    "face_conf": f_conf,
                    "eyes_label": e_label,
                    "eyes_conf": e_conf,
                    "has_jpeg": jpeg is not None and pruned is None,
                    "model_version": version,
                    "duration_ms": duration,
                    "cry_probability": cry,
                    "dbfs": level,
                    "audio_s": audio_s,
                    "audio_path": audio_path,
                    "media_pruned_ts": pruned,
                    "confirms": confirms,
                }
            )
        return points

    def count_ticks(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]

    # --- retention (retention.py) ------------------------------------------------------------

    @staticmethod
    def _prunable_sql(before_ts: float | None, after: tuple[float, int] | None) -> tuple[str, list]:
        """Ticks whose files retention may delete. The first WHERE term is the `ticks_prunable` index's own.

        Never: a tick with any correction row (labelled frames are kept, even a decision later undone), the
        newest tick with a JPEG (the pixel diff's reference, `last_reference_jpeg`), nor a JPEG that an unsent
        alert will attach (the outbox retries it; the parent should still get the snapshot). By age (`before_ts`
        set) also never a frame the fallback labeller labelled: the retrain trains on it, and the labeller's
        hourly cap bounds how many there are; short of disk they may go, oldest first, unlike a human's.
        """
        where = [
            "media_pruned_ts IS NULL AND (jpeg_path IS NOT NULL OR audio_path IS NOT NULL)",
            "NOT EXISTS (SELECT 1 FROM corrections c WHERE c.tick_id = t.id)",
            f"NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_ts IS NULL AND o.unconfirmed < {MAX_UNCONFIRMED} "
            "AND o.photo_path = t.jpeg_path)",
            "t.id IS NOT (SELECT id FROM ticks WHERE jpeg_path IS NOT NULL ORDER BY id DESC LIMIT 1)",
        ]
        params: list = []
        if before_ts is not None:
            where.append("ts < ?")
            params.append(before_ts)
            where.append("NOT EXISTS (SELECT 1 FROM teacher_labels l WHERE l.tick_id = t.id AND l.error IS NULL)")
        if after is not None:
            where.append("(ts, id) > (?, ?)")
            params.extend(after)
        return f"SELECT id, {TICK_COLUMNS} FROM ticks t WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?", params

    def prunable_media(
        self, before_ts: float | None, limit: int, after: tuple[float, int] | None = None
    ) -> list[TickRow]:
        """Up to `limit` ticks whose kept JPEG/.wav retention may delete, oldest first.

        `before_ts` None: any age (the disk is short of space). `after` (ts, id): continue past the rows a
        pass already handled, so files it could not delete never make it loop.
        """
        sql, params = self._prunable_sql(before_ts, after)
        return [tick_from_sql(r) for r in self._conn.execute(sql, (*params, limit)).fetchall()]

    def prunable_media_plan(self) -> str:
        """EXPLAIN QUERY PLAN of the retention walk (tests assert it uses its index)."""
        sql, params = self._prunable_sql(0.0, (0.0, 0))
        return "\n".join(r["detail"] for r in self._conn.execute(f"EXPLAIN QUERY PLAN {sql}", (*params, 10)))

    def mark_media_pruned(self, ids: Sequence[int], ts: float) -> None:
        """Record that retention deleted these ticks' files (the paths stay as history)."""
        if not ids:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE ticks SET media_pruned_ts = ? WHERE id = ? AND media_pruned_ts IS NULL", [(ts, i) for i in ids]
            )

    # --- camera health (capture failures) ----------------------------------------------------

    def add_capture_failure(
        self, ts: float, reason: str, alert: Alert | None = None, *, camera: bool = True
    ) -> CaptureFailure:
        """Record a failed tick, and the outage alert it raised (if any), in one transaction.

        Returns it as stored, ids included: the JSONL backup line must name the ids the rebuild restores."""
        with self._write() as conn:
            alert_id = None if alert is None else queue_alert(conn, alert)
            failure_id = conn.execute(
                "INSERT INTO capture_failures (ts, reason, alert_id, camera) VALUES (?, ?, ?, ?)",
                (ts, reason, alert_id, int(camera)),
            ).lastrowid
        stored_alert = None if alert is None else replace(alert, id=alert_id)
        return CaptureFailure(ts, reason, stored_alert, failure_id, camera)

    def import_capture_failure(self, failure: CaptureFailure) -> None:
        """Insert a capture failure and its alert keeping their ids (rebuild from the JSONL backup). Importing one
        twice changes nothing: the alert row, once there, is kept as it is."""
        with self._write() as conn:
            if (alert := failure.alert) is not None:
                import_alert(conn, alert)
            conn.execute(
                "INSERT OR REPLACE INTO capture_failures (id, ts, reason, alert_id, camera) VALUES (?, ?, ?, ?, ?)",
                (failure.id, failure.ts, failure.reason, alert.id if alert else None, int(failure.camera)),
            )

    def camera_outage(self) -> CameraOutage:
        """The capture failures since the newest stored tick (all of them before the first tick ever).

        Raises StoreError (not a raw sqlite3 error) so a tick that failed already can log one line and go on."""
        summary = self._read(
            "SELECT count(*) AS failures, min(ts) AS since_ts, max(ts) AS last_ts, "
            "count(alert_id) AS alerts, min(camera) AS camera FROM capture_failures"
        )[0]
        newest = next(iter(self._read("SELECT reason FROM capture_failures ORDER BY id DESC LIMIT 1")), None)
        return CameraOutage(
            failures=summary["failures"],
            since_ts=summary["since_ts"],
            last_ts=summary["last_ts"],
            reason=newest["reason"] if newest else None,
            alerted=summary["alerts"] > 0,
            camera=summary["camera"] != 0,  # NULL (no failure) counts as the camera's
        )

    def neighbour_tick(self, tick_id: int, direction: int) -> TickRow | None:
        """The tick just before (-1) or after (+1) this one in time, for keyboard prev/next."""
        here = self.tick(tick_id)
        if here is None:
            return None
        op, order = ("<", "DESC") if direction < 0 else (">", "ASC")
        r = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks WHERE (ts, id) {op} (?, ?) ORDER BY ts {order}, id {order} LIMIT 1",
            (here.ts, here.id),
        ).fetchone()
        return tick_from_sql(r) if r else None
