"""Alerts: the wake rule (`rules`), where alerts go (`notifiers`), and the outbox that delivers them (`outbox`).

The tick asks `rules.wake_alert` whether the new row starts a wake episode, stores the alert in the
outbox together with the row, then calls `outbox.deliver_pending` (also on ticks whose capture failed).
"""
