"""One call to an OpenAI-compatible chat-completions server: a frame in, a strict JSON label out.

Standard library only, through outbound.call (urllib, imported at call time), so the fallback labeller adds no
dependency and costs a tick nothing while it is off. The frame goes to the configured base URL and nowhere else:
proxy variables of the environment are ignored (a proxy would be a second destination) and redirects are refused.
Anything but the label asked for (an HTTP error, a timeout, prose, other keys' values) is a LabellerError with one
clear line.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import outbound

PRESENCE = {True: "present", False: "not_present"}
EYES = ("open", "closed", "not_visible")
PROMPT = (
    "This is one frame from a baby monitor camera looking down into a bassinet or crib; at night it is an "
    "infrared image in grayscale. Answer with ONLY a JSON object, no other text:\n"
    '{"baby_present": true or false, "eyes": "open" or "closed" or "not_visible"}\n'
    'baby_present: is a baby lying in the bassinet? eyes: are the baby\'s eyes open or closed? Use "not_visible" '
    "when there is no baby or the eyes cannot be seen (face turned away, covered, too dark or blurred)."
)
MAX_ANSWER_BYTES = 1_000_000
RAW_KEEP = 500  # characters of the model's reply kept with the label (enough to see what went wrong)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


class LabellerError(RuntimeError):
    """No usable label this time; the message says why in one line, `raw` holds what came back (if anything)."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class Answer:
    presence: str  # present | not_present
    eyes: str  # open | closed | not_visible
    raw: str  # the model's reply text, trimmed to RAW_KEEP


def request_body(model: str, jpeg: bytes) -> dict:
    """The chat-completions request: the prompt and the JPEG as a base64 data URL, temperature 0."""
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    content = [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": image}}]
    return {"model": model, "temperature": 0, "messages": [{"role": "user", "content": content}]}


def reply_text(body: bytes) -> str:
    """choices[0].message.content of a chat-completions answer, as text (a list of text parts is joined)."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        missing = "the answer is not a chat completion (no choices[0].message.content)"
        raise LabellerError(missing, _trim(body)) from None
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise LabellerError("the answer's message content is not text", _trim(body))
    return content


def parse_label(text: str) -> tuple[str, str]:
    """The model's reply -> (presence, eyes). Tolerates ```json fences and words around the one JSON object; keys
    other than the two asked for are ignored. Anything else (no object, a missing or mistyped value, a baby that
    is absent but has open eyes) is a LabellerError that quotes the problem."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced[1]
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end < start:
        raise LabellerError(f"the reply holds no JSON object: {_trim(text, 80)!r}", _trim(text))
    try:
        data = json.loads(stripped[start : end + 1])
    except ValueError as exc:
        raise LabellerError(f"the reply's JSON does not parse ({exc})", _trim(text)) from None
    present, eyes = (data.get("baby_present"), data.get("eyes")) if isinstance(data, dict) else (None, None)
    if not isinstance(present, bool):
        raise LabellerError(f"baby_present must be true or false, got {present!r}", _trim(text))
    if eyes not in EYES:
        raise LabellerError(f"eyes must be one of {', '.join(EYES)}, got {eyes!r}", _trim(text))
    if not present and eyes != "not_visible":
        raise LabellerError(f"contradictory: no baby present, yet eyes {eyes!r}", _trim(text))
    return PRESENCE[present], eyes


def ask(base_url: str, model: str, api_key: str, jpeg: bytes, timeout_s: float) -> Answer:
    """POST the frame to {base_url}/chat/completions and return the label; LabellerError on any failure."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = _post(f"{base_url}/chat/completions", json.dumps(request_body(model, jpeg)).encode(), headers, timeout_s)
    text = reply_text(body)
    presence, eyes = parse_label(text)
    return Answer(presence, eyes, _trim(text))


def _post(url: str, data: bytes, headers: dict[str, str], timeout_s: float) -> bytes:
    """The answer's body, through outbound.call: the configured URL only, every wait bounded by timeout_s."""
    try:
        return outbound.call("POST", url, headers=headers, data=data, timeout_s=timeout_s, max_bytes=MAX_ANSWER_BYTES)
    except outbound.OutboundError as exc:
        if exc.kind == "http":
            detail = _trim(exc.body[:300], 200)
            raise LabellerError(f"{url} answered {exc}: {detail}", detail) from None
        said = {
            "timeout": f"no answer from {url}: {exc} (FALLBACK_LABELLER_TIMEOUT_S)",
            "unreachable": f"cannot reach {url}: {exc}",
            "broken": f"{url} broke off the answer: {exc}",
        }
        raise LabellerError(said.get(exc.kind, str(exc))) from None


def _trim(text: str | bytes, keep: int = RAW_KEEP) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= keep else text[:keep] + "…"
