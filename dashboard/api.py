"""The JSON endpoints. Reads and writes go through db.store (no SQL here); inputs are validated
before anything is written, and every answer says how old the data is.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from flask import Blueprint, Flask, abort, jsonify

from clock_skew import clock_skew_s
from dashboard.inputs import count_arg, finite_arg, json_body
from dashboard.labels import LabelError, effective_state, label_json, parse_correction
from dashboard.metrics import model_metrics
from dashboard.sessions import sleep_sessions
from db import jsonl
from db.store import (
    DISAGREEMENT_BOOST,
    MAX_UNCONFIRMED,
    NIGHT_REVIEW_BOOST,
    Alert,
    CameraOutage,
    CryEpisode,
    HumanLabel,
    Store,
    TeacherLabel,
    TickRow,
    newest_teacher_label,
)
from settings import Settings
from train.backtest import shipped_rule

log = logging.getLogger("bilbo.dashboard")

DEFAULT_SPAN_S = 13 * 3600
MAX_SPAN_S = 31 * 24 * 3600
MAX_REVIEW_LIMIT = 500
REMAINING_CAP = 1000  # the queue says "1000+" beyond this


def pruned_description(row: TickRow) -> str:
    """Why a tick's frame is gone, for the frame endpoint's 404, a refused correction and the page."""
    when = datetime.fromtimestamp(row.media_pruned_ts or 0).strftime("%Y-%m-%d %H:%M")
    return (
        f"frame removed by retention on {when} (older than RETENTION_DAYS, or the disk was short of MIN_FREE_MB); "
        "the tick's results are kept"
    )


def tick_json(row: TickRow, label: HumanLabel | None = None) -> dict:
    data = row.to_json()
    data["has_jpeg"] = row.jpeg_path is not None and not row.media_pruned
    data["media_pruned"] = row.media_pruned
    del data["jpeg_path"]
    data["human"] = label_json(label)
    data["effective_state"] = effective_state(row, label)
    return data


def teacher_json(history: list[TeacherLabel]) -> dict | None:
    """The fallback labeller's word on a tick (training signal only, never ground truth): its label if a call
    succeeded, else the attempts and the last error; None when it was never asked."""
    if not history:
        return None
    label = newest_teacher_label(history)
    return {
        "state": label.state if label else None,
        "presence": label.presence if label else None,
        "eyes": label.eyes if label else None,
        "disagrees": label.disagrees if label else False,
        "model": history[-1].model,
        "labeller": history[-1].labeller,
        "ts": (label or history[-1]).ts,
        "raw": (label or history[-1]).raw,
        "attempts": len(history),
        "last_error": None if label else history[-1].error,
    }


def alert_json(alert: Alert) -> dict:
    """An alert as the page shows it. `possibly_delivered`: its answer was lost twice, so the outbox stopped
    sending it (it may well have arrived); `sent` stays for a delivery Telegram confirmed."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "ts": alert.created_ts,
        "tick_id": alert.tick_id,
        "caption": alert.caption,
        "sent": alert.sent_ts is not None,
        "possibly_delivered": alert.sent_ts is None and alert.unconfirmed >= MAX_UNCONFIRMED,
        "attempts": alert.attempts,
        "last_error": alert.last_error,
    }


def freshness(newest: TickRow | None, interval_s: int, now: float) -> dict:
    """Data age for every answer: a silent monitor must never look healthy. `newest` is the newest tick stored (by
    id); stamped in the future (a clock that jumped back), its age is unknown, which is stale too."""
    age = None if newest is None else now - newest.ts
    skew = clock_skew_s(None if newest is None else newest.ts, now)
    return {
        "now": now,
        "newest_ts": None if newest is None else newest.ts,
        "data_age_s": age,
        "tick_interval_s": interval_s,
        "clock_skew_s": skew,
        "stale": age is None or age > 2 * interval_s or skew > 0,
    }


def episode_json(episode: CryEpisode) -> dict:
    """A cry episode for the timeline: `end_ts` null while the baby is still crying."""
    return {
        "start_ts": episode.start_ts,
        "end_ts": episode.end_ts,
        "last_ts": episode.last_ts,
        "peak_probability": episode.peak_probability,
        "peak_dbfs": episode.peak_dbfs,
        "alerted": episode.alert_id is not None,
    }


def camera_json(outage: CameraOutage) -> dict:
    """The camera outage going on now (`down` false and zero failures when the last tick got its frame)."""
    return {
        "down": outage.failures > 0,
        "failures": outage.failures,
        "since_ts": outage.since_ts,
        "last_ts": outage.last_ts,
        "reason": outage.reason,
        "alerted": outage.alerted,
        "camera": outage.camera,  # False: BILBO itself failed (models, disk), not the camera
    }


def _review_reasons(row: TickRow, teacher: TeacherLabel | None = None) -> list[str]:
    """Why a frame is in the queue, in words; a teacher that disagrees with the model comes first."""
    reasons = []
    if teacher is not None and teacher.disagrees:
        reasons.append(f"fallback labeller says {teacher.state}, the model {row.state} (-{DISAGREEMENT_BOOST:g})")
    if row.eyes_label == "unknown":
        reasons.append("eyes unknown")
    confs = {"presence": row.presence_conf, "face": row.face_conf, "eyes": row.eyes_conf}
    stage, weakest = min(((k, v) for k, v in confs.items() if v is not None), key=lambda kv: kv[1], default=("", None))
    if weakest is not None:
        reasons.append(f"lowest confidence: {stage} {weakest:.2f}")
    if row.night:
        reasons.append(f"infrared night (+{NIGHT_REVIEW_BOOST:g} priority)")
    return reasons


def _write_backup(settings: Settings, db: Store) -> None:
    """Append the committed correction's queued line to data/corrections.jsonl; the DB already holds both, so a
    failure only warns (the line waits in the database for the next tick or correction)."""
    if problem := jsonl.write(db, settings.corrections_jsonl_path):
        log.warning("correction saved, but %s", problem)


def _cry_threshold(settings: Settings) -> float:
    """The threshold the tick uses for a cry: the setting, else the cry model's manifest, else 0.5."""
    if settings.cry_threshold is not None:
        return settings.cry_threshold
    try:
        threshold = float(json.loads((settings.models_dir / "cry.json").read_text())["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.5
    return threshold if math.isfinite(threshold) else 0.5


def _tick_or_404(db: Store, tick_id: int) -> TickRow:
    row = db.tick(tick_id)
    if row is None:
        abort(404, description=f"no tick {tick_id}")
    return row


def register_api(app: Flask, settings: Settings, open_store: Callable[[], Store]) -> None:
    api = Blueprint("api", __name__, url_prefix="/api")
    interval = settings.tick_interval_s
    cry_threshold = _cry_threshold(settings)
    teacher_note = (
        f"frames the fallback labeller ({settings.fallback_labeller_model}) disagrees with come first"
        if settings.fallback_labeller_enabled
        else "no teacher: the fallback labeller is off (FALLBACK_LABELLER_URL)"
    )

    @api.get("/status")
    def status():
        with open_store() as db:
            newest, outage, waiting = db.last_tick(), db.camera_outage(), db.backup_waiting()
        return jsonify(
            **freshness(newest, interval, time.time()),
            camera=camera_json(outage),
            camera_name=settings.camera_name,
            backup_waiting={path.name: count for path, count in waiting.items()},  # lines not yet in that backup
        )

    @api.get("/timeline")
    def timeline():
        start, end = finite_arg("start"), finite_arg("end")
        with open_store() as db:
            newest = db.last_tick()
            if end is None:
                end = (newest.ts if newest else time.time()) + 1
            fit_start = start is None
            if start is None:
                start = end - DEFAULT_SPAN_S
            if end <= start:
                abort(400, description="end must be after start")
            if end - start > MAX_SPAN_S:
                abort(400, description=f"the range may span at most {MAX_SPAN_S // 86400} days")
            rows = db.timeline_points(start, end)
            for row in rows:
                row.pop("audio_path", None)  # files are served by tick id, never by a stored path
            if fit_start and rows:  # default range: start where the data starts, not in an empty afternoon
                start = max(start, rows[0]["ts"] - interval / 2)
            labels = db.human_labels_between(start, end)
            alerts = db.alerts_between(start, end)
            crying = db.episodes_between(start, end)  # the cry listener's episodes: when crying started, stopped
        for row in rows:
            label = labels.get(row["id"])
            row["human"] = label_json(label)
            row["effective_state"] = (
                effective_state(TickRow.from_json({**row, "jpeg_path": None}), label) if label else row["state"]
            )
        sessions = sleep_sessions([(r["ts"], r["effective_state"]) for r in rows], interval)
        return jsonify(
            start=start,
            end=end,
            **freshness(newest, interval, time.time()),
            ticks=rows,
            alerts=[alert_json(a) for a in alerts],
            sessions=[s.to_json() for s in sessions],
            cry_episodes=[episode_json(e) for e in crying],
            cry_threshold=cry_threshold,
        )

    @api.get("/ticks/<int:tick_id>")
    def tick(tick_id: int):
        with open_store() as db:
            row = _tick_or_404(db, tick_id)
            before, after = db.neighbour_tick(tick_id, -1), db.neighbour_tick(tick_id, +1)
            history = db.corrections(tick_id)
            label = db.human_label(tick_id)
            teacher = db.teacher_history(tick_id)
        data = tick_json(row, label)
        data["teacher"] = teacher_json(teacher)
        data["prev_id"] = before.id if before else None
        data["next_id"] = after.id if after else None
        data["corrections"] = [
            {
                "id": c.id,
                "field": c.field,
                "value": c.value,
                "author": c.author,
                "ts": c.created_ts,
                "undone_ts": c.undone_ts,
            }
            for c in history
        ]
        return jsonify(data)

    @api.post("/ticks/<int:tick_id>/corrections")
    def correct(tick_id: int):
        body = json_body()  # size, depth and text checked (dashboard/inputs.py)
        try:
            changes, author = parse_correction(body)
        except LabelError as exc:
            abort(400, description=str(exc))
        with open_store() as db:
            row = _tick_or_404(db, tick_id)
            if row.jpeg_path is None:
                abort(409, description=f"tick {tick_id} kept no frame (unchanged): correct the frame it reused instead")
            if row.media_pruned:
                abort(409, description=f"tick {tick_id}: {pruned_description(row)}; there is no frame left to label")
            with db.atomic():  # the correction and its backup line land together
                ids = db.add_corrections(tick_id, changes, author, now=time.time())
                added = [c for c in db.corrections(tick_id) if c.id in ids]
                jsonl.queue(db, settings.corrections_jsonl_path, jsonl.correction_records(added))
            _write_backup(settings, db)
            label = db.human_label(tick_id)
        response = jsonify(correction_ids=ids, tick=tick_json(row, label))
        response.status_code = 201
        return response

    @api.post("/ticks/<int:tick_id>/undo")
    def undo(tick_id: int):
        with open_store() as db:
            row = _tick_or_404(db, tick_id)
            now = time.time()
            with db.atomic():
                undone = db.undo_last_decision(tick_id, now=now)
                if undone:
                    jsonl.queue(db, settings.corrections_jsonl_path, [jsonl.undo_record(undone, now)])
            if not undone:
                abort(409, description=f"tick {tick_id} has no correction to undo")
            _write_backup(settings, db)
            label = db.human_label(tick_id)
        return jsonify(
            undone=[{"id": c.id, "field": c.field, "value": c.value} for c in undone], tick=tick_json(row, label)
        )

    @api.get("/review")
    def review():
        limit = count_arg("limit", 50, 1, MAX_REVIEW_LIMIT)
        with open_store() as db:
            queue = db.review_queue(limit)
            remaining = db.count_unreviewed(REMAINING_CAP)
            newest = db.last_tick()
            teachers = db.teacher_histories([t.id for t, _ in queue])
        items = []
        for t, p in queue:
            reasons = _review_reasons(t, newest_teacher_label(teachers[t.id]))
            items.append({**tick_json(t), "teacher": teacher_json(teachers[t.id]), "priority": p, "reasons": reasons})
        return jsonify(
            **freshness(newest, interval, time.time()),
            items=items,
            remaining=remaining,
            remaining_capped=remaining >= REMAINING_CAP,
            teacher=teacher_note,
        )

    @api.get("/metrics")
    def metrics():
        with open_store() as db:
            labelled = db.labelled_ticks()
            newest = db.last_tick()
            wake = shipped_rule(
                db, labelled, settings.wake_window, settings.wake_needed, settings.alert_cooldown_s, interval
            )
        return jsonify(
            **freshness(newest, interval, time.time()),
            **model_metrics(labelled),
            wake_rule=None if wake is None else asdict(wake),  # train/backtest.py, on the human-reviewed frames
        )

    app.register_blueprint(api)
