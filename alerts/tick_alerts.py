"""Which alerts a tick's row raises, read against what the store holds: wake (2 of 3), cry, both as one message, and
"camera back" when the row ends an outage. They are stored with the row, in its transaction (monitor.tick)."""

from __future__ import annotations

from alerts.rules import camera_back_alert, combine, cry_alert, rows_needed, wake_alert
from db.store import Alert, Store, TickRow
from models.classify import LazyCryModel
from settings import Settings


def raised_alerts(settings: Settings, store: Store, row: TickRow, cry: LazyCryModel) -> list[Alert]:
    """The alerts this tick's row raises: wake (2 of 3), cry, both as one message, and "camera back" when it ends
    an outage. They are stored with the row, in its transaction."""
    alerts = []
    if not row.unchanged:
        recent = [*store.recent_classified(rows_needed(settings.wake_window) - 1), row]
        alert = wake_alert(
            recent,
            window=settings.wake_window,
            needed=settings.wake_needed,
            last_alert_ts=store.last_alert_ts("wake"),
            cooldown_s=settings.alert_cooldown_s,
            photo_path=row.jpeg_path,
        )
        alerts = [alert] if alert else []
    model = cry.get() if row.cry_probability is not None else None
    if model is not None:
        crying = cry_alert(
            [*store.recent_ticks(settings.cry_window - 1), row],
            threshold=model.threshold,
            window=settings.cry_window,
            needed=settings.cry_needed,
            last_alert_ts=store.last_alert_ts("cry"),
            cooldown_s=settings.cry_cooldown_s,
            photo_path=row.jpeg_path or store.last_reference_jpeg(),
        )
        alerts += [crying] if crying else []
    outage = store.camera_outage()  # the outage this tick's frame ends (failures 0: there was none)
    back = camera_back_alert(
        failures=outage.failures,
        since_ts=outage.since_ts,
        alerted=outage.alerted,
        at_ts=row.ts,
        camera=outage.camera,
    )
    return [*combine(alerts), *([back] if back else [])]
