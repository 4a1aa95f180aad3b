"""The continuous cry listener: one audio-only connection to the camera, a cry alert within seconds.

    python -m listener [--config .env.NAME]     # runs until stopped (systemd/bilbo-listen.service, launchd agent)
    python -m listener --probe [--config ...]   # exit 0 when this camera should get a listener (install scripts)

The tick hears AUDIO_SECONDS of audio every few minutes; a baby who starts crying just after a tick waits minutes
for the alert. The listener keeps ONE ffmpeg on the camera's audio track (`stream`), scores the 5 s window ending
now once a second with the tick's own cry model and features (`models.cry`), and decides with the shipped rule
(`models.cry_rule`, via `detector`). A cry episode (start, end, peaks) goes into the database with its cry alert in
one transaction and the alert is delivered at once (`recorder`); MQTT's Crying entity follows within seconds. It
writes a heartbeat (`heartbeat`) that the tick reads (`health`): a listener silent for 2 minutes is reported, and
after CAMERA_DOWN_TICKS ticks of that one alert says that cries are no longer heard. Audio is never written to disk.

Modules: stream (ffmpeg), detector (windows -> episodes, pure), recorder (database, alerts, MQTT; a thread),
service (the loop, reconnects with backoff), heartbeat (the file), health (the tick's and --check's side).
"""
