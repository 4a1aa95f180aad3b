"""What a dashboard request may carry, checked before anything reads or writes: a bad one is a 400 (413 for a body
over the cap) that says what was wrong, never a 500 from deep inside SQLite or the JSON parser.

- ids in a path are SQLite integers (64-bit signed); a bigger number is no such tick (404), not an OverflowError.
- a JSON body is at most MAX_BODY_BYTES (Flask's MAX_CONTENT_LENGTH), nested at most MAX_JSON_DEPTH levels (the
  parser would recurse until RecursionError), and all of its text encodable (a lone surrogate such as "\\ud800" is
  valid JSON but no UTF-8 text: SQLite refuses to store it, and no backup line could hold it).
- numbers in the query are finite (nan and inf are numbers to float() but no time) and counts are ASCII digits
  ("²".isdigit() is True, int("²") raises).
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import abort, request
from werkzeug.routing import IntegerConverter

MAX_BODY_BYTES = 64 * 1024  # a correction is well under 1 kB
MAX_JSON_DEPTH = 8  # the deepest a correction goes is 3: {"changes": {"face_box": [...]}}
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER


class SqliteIdConverter(IntegerConverter):
    """`<int:...>` limited to what SQLite can hold: a larger id matches no route, so it is a 404 like any unknown id."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def _depth(value: Any) -> int:
    """How deep a parsed body nests (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _unencodable(value: Any) -> str | None:
    """The first string (key or value) of a parsed body that is not encodable text, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return next((bad for item in items if (bad := _unencodable(item)) is not None), None)


def json_body() -> Any:
    """The request's JSON body, checked as the module says; aborts with 400 (413 over MAX_CONTENT_LENGTH)."""
    if not request.is_json:
        abort(400, description="send the request as JSON (Content-Type: application/json)")
    raw = request.get_data(cache=True)  # raises RequestEntityTooLarge (413) beyond MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="the request body is not UTF-8 text")
    nested = f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # the parser recurses once per level: far too deep
        abort(400, description=nested)
    except ValueError as exc:
        abort(400, description=f"send a JSON object: the request body does not parse ({exc})")
    if _depth(body) > MAX_JSON_DEPTH:
        abort(400, description=nested)
    if (bad := _unencodable(body)) is not None:
        abort(400, description=f"text with a lone surrogate is not text: {bad.encode('utf-8', 'backslashreplace')!r}")
    return body


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def finite_arg(name: str) -> float | None:
    """A query parameter as a finite number (unix seconds), None when absent; aborts with 400 otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        abort(400, description=f"query parameter {name!r} must be a finite number (unix seconds), got {raw!r}")
    return value


def count_arg(name: str, default: int, low: int, high: int) -> int:
    """A query parameter as a whole number in [low, high] written in ASCII digits; aborts with 400 otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high):
        abort(400, description=f"query parameter {name!r} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)
