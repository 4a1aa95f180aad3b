"""Human corrections (the dashboard), the review queue, and the fallback labeller's labels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from db.connection import Connection
from db.records import (
    CORRECTION_FIELDS,
    Correction,
    HumanLabel,
    TeacherLabel,
    TickRow,
    fold_labels,
    newest_teacher_label,
)
from db.rows import (
    CORRECTION_COLUMNS,
    TEACHER_COLUMNS,
    TICK_COLUMNS,
    correction_from_sql,
    insert_keeping_id,
    teacher_from_sql,
    teacher_values,
    tick_from_sql,
)

NIGHT_REVIEW_BOOST = 0.25
# Review priority, lowest first: the weakest stage confidence that ran ('unknown' eyes count as 0),
# minus a boost for infrared night frames (the model's weakest data). Must match, character for
# character, the expression of the `ticks_review` index (migration 2, rebuilt in 4 to leave out frames that
# retention removed), so ORDER BY walks the index.
# Teacher disagreement is not a term of this expression (an index cannot look into another table): the review
# queue takes the frames the fallback labeller disagrees with first, through their own partial index
# (`teacher_disagreements`, migration 6), with DISAGREEMENT_BOOST subtracted, so they sort below every other frame.
DISAGREEMENT_BOOST = 2.0
REVIEW_PRIORITY_SQL = (
    "CASE WHEN eyes_label = 'unknown' THEN 0.0 ELSE min(coalesce(presence_conf, 1.0), coalesce(face_conf, 1.0), "
    "coalesce(eyes_conf, 1.0)) END - CASE WHEN night THEN 0.25 ELSE 0.0 END"
)


# The review queue's rows: classified, a frame still on disk, no current human decision (matches ticks_review).
_UNREVIEWED_SQL = (
    "unchanged = 0 AND jpeg_path IS NOT NULL AND media_pruned_ts IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.tick_id = t.id AND c.undone_ts IS NULL)"
)
# Ticks the fallback labeller disagrees with (the partial index `teacher_disagreements`, migration 6).
_DISPUTED_SQL = "t.id IN (SELECT tick_id FROM teacher_labels WHERE error IS NULL AND disagrees = 1)"


class LabelQueries(Connection):
    # --- corrections (human labels) ----------------------------------------------------------

    def add_corrections(self, tick_id: int, changes: Sequence[tuple[str, Any]], author: str, now: float) -> list[int]:
        """Store one human decision (one or more field values) atomically; `ticks` is never touched."""
        for field, _ in changes:
            if field not in CORRECTION_FIELDS:
                raise ValueError(f"unknown correction field {field!r}")
        with self._write() as conn:
            return [
                conn.execute(
                    "INSERT INTO corrections (tick_id, field, value, author, created_ts) VALUES (?, ?, ?, ?, ?)",
                    (tick_id, field, json.dumps(value), author, now),
                ).lastrowid
                for field, value in changes
            ]

    def undo_last_decision(self, tick_id: int, now: float) -> list[Correction]:
        """Mark the tick's newest not-undone decision (rows sharing its created_ts) undone; returns them."""
        with self._write() as conn:
            newest = conn.execute(
                "SELECT max(created_ts) FROM corrections WHERE tick_id = ? AND undone_ts IS NULL", (tick_id,)
            ).fetchone()[0]
            if newest is None:
                return []
            rows = conn.execute(
                f"SELECT {CORRECTION_COLUMNS} FROM corrections c "
                "WHERE c.tick_id = ? AND c.undone_ts IS NULL AND c.created_ts = ? ORDER BY c.id",
                (tick_id, newest),
            ).fetchall()
            conn.execute(
                "UPDATE corrections SET undone_ts = ? WHERE tick_id = ? AND undone_ts IS NULL AND created_ts = ?",
                (now, tick_id, newest),
            )
        return [correction_from_sql(r) for r in rows]

    def import_correction(self, correction: Correction) -> bool:
        """Insert a correction keeping its id and undo state (rebuild from the JSONL backup). One that comes again
        (a retried backup append) changes nothing and returns False, so a later "undo" line stands; IdTaken when its
        id holds a different correction."""
        with self._write() as conn:
            return insert_keeping_id(
                conn,
                "corrections",
                "id, tick_id, field, value, author, created_ts, undone_ts",
                (
                    correction.id,
                    correction.tick_id,
                    correction.field,
                    json.dumps(correction.value),
                    correction.author,
                    correction.created_ts,
                    correction.undone_ts,
                ),
                frozenset({"undone_ts"}),
            )

    def mark_corrections_undone(self, ids: Sequence[int], undone_ts: float) -> None:
        with self._write() as conn:
            conn.executemany("UPDATE corrections SET undone_ts = ? WHERE id = ?", [(undone_ts, i) for i in ids])

    def corrections(self, tick_id: int) -> list[Correction]:
        """The tick's whole correction history, undone ones included, oldest first."""
        rows = self._conn.execute(
            f"SELECT {CORRECTION_COLUMNS} FROM corrections c WHERE c.tick_id = ? ORDER BY c.id", (tick_id,)
        ).fetchall()
        return [correction_from_sql(r) for r in rows]

    def human_label(self, tick_id: int) -> HumanLabel | None:
        return fold_labels([c for c in self.corrections(tick_id) if c.undone_ts is None]).get(tick_id)

    def human_labels_between(self, start_ts: float, end_ts: float) -> dict[int, HumanLabel]:
        """Current human labels of the ticks in [start_ts, end_ts), keyed by tick id."""
        rows = self._conn.execute(
            f"SELECT {CORRECTION_COLUMNS} FROM ticks t JOIN corrections c ON c.tick_id = t.id "
            "WHERE t.ts >= ? AND t.ts < ? AND c.undone_ts IS NULL ORDER BY c.id",
            (start_ts, end_ts),
        ).fetchall()
        return fold_labels([correction_from_sql(r) for r in rows])

    def labelled_ticks(self) -> list[tuple[TickRow, HumanLabel]]:
        """Every tick a human has reviewed or corrected (the only ground truth metrics may use), by time."""
        rows = self._conn.execute(
            f"SELECT {CORRECTION_COLUMNS} FROM corrections c WHERE c.undone_ts IS NULL ORDER BY c.id"
        ).fetchall()
        labels = fold_labels([correction_from_sql(r) for r in rows])
        ticks = [self.tick(tick_id) for tick_id in labels]
        return sorted(((t, labels[t.id]) for t in ticks if t is not None), key=lambda pair: pair[0].ts)

    def review_queue(self, limit: int) -> list[tuple[TickRow, float]]:
        """Unreviewed classified ticks with a JPEG still on disk, most worth a human look first, with their priority.

        First the frames the fallback labeller disagrees with (priority lowered by DISAGREEMENT_BOOST: one click
        confirms or refutes the teacher), then the rest by walking the partial expression index `ticks_review` in
        order. Both stop after `limit` rows, so the cost does not grow with the size of the history.
        """
        disputed = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS}, {REVIEW_PRIORITY_SQL} - {DISAGREEMENT_BOOST} AS priority FROM ticks t "
            f"WHERE {_DISPUTED_SQL} AND {_UNREVIEWED_SQL} ORDER BY priority, ts LIMIT ?",
            (limit,),
        ).fetchall()
        rows = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS}, {REVIEW_PRIORITY_SQL} AS priority FROM ticks t "
            f"WHERE {_UNREVIEWED_SQL} ORDER BY {REVIEW_PRIORITY_SQL}, ts LIMIT ?",
            (limit + len(disputed),),
        ).fetchall()
        first = {r["id"] for r in disputed}
        ranked = [*disputed, *(r for r in rows if r["id"] not in first)][:limit]
        return [(tick_from_sql(r), r["priority"]) for r in ranked]

    def review_queue_plan(self) -> str:
        """EXPLAIN QUERY PLAN of the review queue (tests assert it uses the index)."""
        rows = self._conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM ticks t WHERE {_UNREVIEWED_SQL} "
            f"ORDER BY {REVIEW_PRIORITY_SQL}, ts LIMIT 10"
        ).fetchall()
        return "\n".join(r["detail"] for r in rows)

    def count_unreviewed(self, cap: int = 1000) -> int:
        """How many classified frames with a JPEG nobody has looked at yet, counted up to `cap`
        (a year holds ~90k: counting them all costs 30 ms and "1000+" says the same to a parent)."""
        return self._conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM ticks t WHERE {_UNREVIEWED_SQL} LIMIT ?)",
            (cap,),
        ).fetchone()[0]

    # --- teacher labels (the fallback labeller, labeller/) ------------------------------------

    def teacher_candidates(self, since_ts: float, max_attempts: int, limit: int = 1000) -> list[TickRow]:
        """Ticks the fallback labeller may still ask about, oldest first: classified at or after `since_ts`, the
        frame kept, no current human decision (a human beats any teacher), no teacher label yet and fewer than
        `max_attempts` failed calls. Whether the cascade could see the frame is labeller.fallback's rule."""
        rows = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks t WHERE ts >= ? AND {_UNREVIEWED_SQL} "
            "AND NOT EXISTS (SELECT 1 FROM teacher_labels l WHERE l.tick_id = t.id AND l.error IS NULL) "
            "AND (SELECT count(*) FROM teacher_labels l WHERE l.tick_id = t.id) < ? ORDER BY ts, id LIMIT ?",
            (since_ts, max_attempts, limit),
        ).fetchall()
        return [tick_from_sql(r) for r in rows]

    def add_teacher_label(self, label: TeacherLabel) -> int:
        """Append one call's outcome (a label or a failed attempt); returns its id (a new one unless `label.id` is
        set: the rebuild from the JSONL backup keeps the ids it reads)."""
        values = teacher_values(label)
        with self._write() as conn:
            return conn.execute(
                f"INSERT OR REPLACE INTO teacher_labels ({TEACHER_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
                values,
            ).lastrowid

    def import_teacher_label(self, label: TeacherLabel) -> bool:
        """Insert a call's outcome keeping its id (rebuild from the JSONL backup): False when it is there already,
        IdTaken when its id holds a different call."""
        with self._write() as conn:
            return insert_keeping_id(conn, "teacher_labels", TEACHER_COLUMNS, teacher_values(label))

    def teacher_calls_since(self, ts: float) -> int:
        """Calls made to the fallback labeller at or after `ts`, failed ones included (its per-hour cap)."""
        return self._conn.execute("SELECT count(*) FROM teacher_labels WHERE ts >= ?", (ts,)).fetchone()[0]

    def teacher_history(self, tick_id: int) -> list[TeacherLabel]:
        """Every call about this tick's frame, oldest first."""
        return self.teacher_histories([tick_id])[tick_id]

    def teacher_histories(self, tick_ids: Sequence[int]) -> dict[int, list[TeacherLabel]]:
        """teacher_history of each of these ticks (at most a review queue's page), in one query."""
        histories: dict[int, list[TeacherLabel]] = {tick_id: [] for tick_id in tick_ids}
        marks = ", ".join("?" * len(histories))
        rows = self._conn.execute(
            f"SELECT {TEACHER_COLUMNS} FROM teacher_labels WHERE tick_id IN ({marks}) ORDER BY id", list(histories)
        ).fetchall()
        for r in rows:
            histories[r["tick_id"]].append(teacher_from_sql(r))
        return histories

    def teacher_label(self, tick_id: int) -> TeacherLabel | None:
        """The tick's teacher label (None: never asked, or no call succeeded)."""
        return newest_teacher_label(self.teacher_history(tick_id))

    def teacher_labelled_ticks(self) -> list[tuple[TickRow, TeacherLabel]]:
        """Every tick with a teacher label, by time (train.retrain: training signal below any human label)."""
        rows = self._conn.execute(
            f"SELECT {TEACHER_COLUMNS} FROM teacher_labels WHERE error IS NULL ORDER BY id"
        ).fetchall()
        labels = {r["tick_id"]: teacher_from_sql(r) for r in rows}  # the newest wins
        ticks = self._conn.execute(
            f"SELECT id, {TICK_COLUMNS} FROM ticks t WHERE t.id IN "
            "(SELECT tick_id FROM teacher_labels WHERE error IS NULL) ORDER BY ts, id"
        ).fetchall()
        return [(tick, labels[tick.id]) for tick in map(tick_from_sql, ticks)]
