"""The fallback labeller (DESIGN feature 14): an opt-in teacher for the frames the cascade cannot see.

`fallback.py` decides which frame (one per tick at most) and keeps the answer; `client.py` is the one HTTP call to
an OpenAI-compatible server the parent runs (e.g. a vision model on the LAN). Its labels are training signal only.
"""
