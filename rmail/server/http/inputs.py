"""Reading request input with bounds: bodies, JSON fields, query integers, folder names.

Everything a client sends is checked here before it reaches the core: sizes first (the body
is never buffered past its cap), then types, then text that cannot be stored (lone
surrogates from JSON ``\\ud800`` escapes, control characters where a header would carry them).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from aiohttp import web

from rmail.server.core.errors import InvalidInput, LimitExceeded
from rmail.server.core.storage.names import normalize_mailbox_name

from .errors import ApiError

#: JSON bodies other than /messages/send are small (login, flags, alias rules).
MAX_JSON_BODY = 64 * 1024
#: Query integers: up to ten digits, no sign, no spaces, no "_" (which int() would accept).
_INT_RE = re.compile(r"[0-9]{1,10}")
MAX_OFFSET = 2**31 - 1


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    """A JSON object body (the Content-Type is not insisted on: bearer auth is not CSRF-prone)."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise InvalidInput("request body must be a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("request body must be a JSON object")
    return value


def check_text(value: str, name: str, *, max_length: int, single_line: bool = False, bulk: bool = False) -> str:
    """Refuse over-long text, text that is not valid Unicode, and (for header values) controls.

    ``bulk`` marks content (bodies, attachments) whose excess length is a 413, not a 400.
    """
    if len(value) > max_length:
        raise (LimitExceeded if bulk else InvalidInput)(f"{name} is longer than {max_length} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} is not valid Unicode") from None
    if single_line and any(c in "\r\n" for c in value):
        # RFC 5322 §2.2: a CR or LF in a header value would start a new header (injection).
        raise InvalidInput(f"{name} may not contain CR or LF")
    if single_line and any(ord(c) < 0x20 and c != "\t" or c == "\x7f" for c in value):
        raise InvalidInput(f"{name} may not contain control characters")
    return value


def get_str(body: dict[str, Any], key: str, *, max_length: int, required: bool = True,
            single_line: bool = False, bulk: bool = False) -> str | None:
    if key not in body:
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    value = body[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    return check_text(value, key, max_length=max_length, single_line=single_line, bulk=bulk)


def get_str_list(body: dict[str, Any], key: str, *, max_items: int, max_length: int,
                 allow_single: bool = False) -> list[str]:
    """A list of strings (or one string when ``allow_single``); missing means empty."""
    if key not in body:
        return []
    value = body[key]
    if allow_single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidInput(f"{key} must be a list of strings")
    if len(value) > max_items:
        raise InvalidInput(f"{key} has more than {max_items} entries")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidInput(f"{key} must be a list of strings")
        out.append(check_text(item, key, max_length=max_length, single_line=True))
    return out


def query_int(request: web.Request, key: str, *, default: int, maximum: int) -> int:
    """A non-negative integer query parameter no larger than ``maximum``."""
    values = request.query.getall(key, [])
    if not values:
        return default
    if len(values) > 1:
        raise InvalidInput(f"{key} given more than once")
    text = values[0]
    if not _INT_RE.fullmatch(text):
        raise InvalidInput(f"{key} must be a non-negative integer")
    value = int(text)
    if value > maximum:
        raise InvalidInput(f"{key} may be at most {maximum}")
    return value


def folder_name(request: web.Request) -> str:
    """The folder from the path, URL-decoded by the router (%2F gives "/" hierarchy).

    ``normalize_mailbox_name`` refuses "." and ".." levels, empty levels and controls; the
    name is only ever looked up among the caller's own mailboxes, never used as a path.
    """
    return _folder(request.match_info["folder"])


@lru_cache(maxsize=4096)
def _folder(name: str) -> str:
    """Pure, so cached: a client asks for the same few folders over and over."""
    check_text(name, "folder", max_length=1024)
    return normalize_mailbox_name(name)


def path_uid(request: web.Request) -> int:
    """RFC 3501 §2.3.1.1: a UID is a non-zero 32-bit unsigned integer."""
    text = request.match_info["uid"]
    if not _INT_RE.fullmatch(text) or not 0 < int(text) < 2**32:
        raise InvalidInput("uid must be an integer from 1 to 4294967295")
    return int(text)
