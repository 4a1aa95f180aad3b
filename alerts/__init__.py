"""Alerts: the rules (`rules`: wake, cry, camera down/back), where alerts go (`notifiers`), and the outbox that
delivers them (`outbox`).

The tick asks the rules whether the new row starts a wake episode, hears crying or ends a camera outage, and
stores the alerts in the outbox together with the row; a tick whose capture failed records the failure and may
raise the outage's one "camera unreachable" alert. Then `outbox.deliver_pending` runs (also after failed ticks).
"""
