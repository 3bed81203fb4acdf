"""The admin protocol, version 1: line-delimited JSON between the server and a console (sans-I/O).

Bytes go in (``LineBuffer.feed``), messages come out (``decode_request`` on the server,
``decode_from_server`` on the console), and ``encode`` turns a message into one line; nothing
here touches a socket. Every line is one JSON object with ``"v"``, the protocol version, and
ends with ``\\n`` (JSON escapes newlines inside strings, so a line never contains one).

The server speaks first::

    {"v": 1, "hello": {"versions": [1], "info": {...ServerInfo...}}}
    {"v": 1, "refused": "why"}                      (instead of hello, then it closes)

then the console sends requests and the server answers each by its ``id``, in any order::

    {"v": 1, "id": 7, "op": "users.add", "args": {"address": "a@example.com", ...}}
    {"v": 1, "id": 7, "ok": <result>}
    {"v": 1, "id": 7, "error": {"type": "AlreadyExists", "message": "..."}}

and, once the console sent ``subscribe``, events interleave with the answers::

    {"v": 1, "event": "MessageReceived", "data": {...}}
    {"v": 1, "resync": true}        (events were dropped: reload everything)
    {"v": 1, "bye": "the server is shutting down"}

An error with ``"id": null`` answers a line that could not be read as a request. The error
``type`` is a core error's class name (NotFound, AlreadyExists, InvalidInput, ...) or one of
``PROTOCOL_ERRORS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "VERSION", "SUPPORTED_VERSIONS", "MAX_REQUEST_LINE", "MAX_SERVER_LINE", "ProtocolError", "LineTooLong",
    "UnsupportedVersion", "LineBuffer", "Hello", "Refused", "Request", "Reply", "Failure", "EventLine",
    "Resync", "Bye", "encode", "decode_request", "decode_from_server",
]

#: The version this code speaks; a line carrying another one is refused with UnsupportedVersion.
VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({VERSION})
#: Longest line a console may send: the largest request is a form of a few 256-character
#: fields; 64 KiB is the cap h11 and the REST API's JSON bodies use for the same reason.
MAX_REQUEST_LINE: Final = 64 * 1024
#: Longest line a console accepts from the server: the connections list of a server at its
#: connection cap (tens of thousands of rows of ~200 bytes) fits with room to spare.
MAX_SERVER_LINE: Final = 32 * 1024 * 1024
#: Error types of the protocol itself (besides the core's error class names).
PROTOCOL_ERRORS: Final = ("BadRequest", "UnsupportedVersion", "UnknownOperation", "RateLimited",
                          "InternalError")


class ProtocolError(Exception):
    """The peer sent something that is not this protocol. ``kind`` is the error type to answer
    with; ``request_id`` is the request's id when the line got far enough to have one."""

    kind = "BadRequest"

    def __init__(self, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class LineTooLong(ProtocolError):
    """A line exceeded the cap; the rest of the stream cannot be trusted to be in step."""


class UnsupportedVersion(ProtocolError):
    kind = "UnsupportedVersion"


class LineBuffer:
    """Splits a byte stream into lines of at most ``max_line`` bytes (the newline excluded).

    Bytes already searched for a newline are not searched again (h11's receive buffer does
    the same), so a slow trickle of a long line costs linear time, not quadratic.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next complete line without its newline, or None until more data comes.

        Raises:
            LineTooLong: the line in progress is longer than ``max_line``.
        """
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if self._scanned > self.max_line:
                raise LineTooLong(f"line longer than {self.max_line} bytes")
            return None
        if end > self.max_line:
            raise LineTooLong(f"line longer than {self.max_line} bytes")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        return line.rstrip(b"\r")

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held."""
        return len(self._buffer)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Server → console, first line: the versions it speaks and what it is (a ServerInfo)."""

    versions: tuple[int, ...]
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refused:
    """Server → console instead of Hello (wrong user, too many consoles); then it closes."""

    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Failure:
    id: int | None
    kind: str            #: a core error class name or one of PROTOCOL_ERRORS
    message: str


@dataclass(frozen=True, slots=True)
class EventLine:
    kind: str            #: the event's class name (rmail.server.core.events)
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resync:
    """Events were dropped for this console: everything it shows must be reloaded."""


@dataclass(frozen=True, slots=True)
class Bye:
    """The server is about to close the connection (shutting down)."""

    reason: str


Message = Hello | Refused | Request | Reply | Failure | EventLine | Resync | Bye


def encode(message: Message) -> bytes:
    """One line (with its newline) for ``message``.

    Raises:
        ValueError: the message holds something JSON cannot carry (NaN, infinity).
    """
    body: dict[str, Any] = {"v": VERSION}
    match message:
        case Hello(versions, info):
            body["hello"] = {"versions": list(versions), "info": info}
        case Refused(reason):
            body["refused"] = reason
        case Request(id_, op, args):
            body.update(id=id_, op=op, args=args)
        case Reply(id_, result):
            body.update(id=id_, ok=result)
        case Failure(id_, kind, text):
            body.update(id=id_, error={"type": kind, "message": text})
        case EventLine(kind, data):
            body.update(event=kind, data=data)
        case Resync():
            body["resync"] = True
        case Bye(reason):
            body["bye"] = reason
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _parse(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("a line must be a JSON object")
    raw_id = body.get("id")
    request_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    version = body.get("v")
    if not isinstance(version, int) or isinstance(version, bool):     # JSON true is no 1
        raise ProtocolError('missing or malformed "v" (the protocol version)', request_id=request_id)
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(f"admin protocol version {version} is not supported (this side speaks "
                                 f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})", request_id=request_id)
    return body


def decode_request(line: bytes) -> Request:
    """A console's line as a Request.

    Raises:
        ProtocolError: not JSON, not an object, no id, op or args of the right type.
        UnsupportedVersion: another protocol version.
    """
    body = _parse(line)
    request_id = body.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise ProtocolError('a request needs an integer "id"')
    op = body.get("op")
    if not isinstance(op, str) or not op:
        raise ProtocolError('a request needs an "op" string', request_id=request_id)
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError('"args" must be an object', request_id=request_id)
    return Request(request_id, op, args)


def decode_from_server(line: bytes) -> Message:
    """A server's line as Hello, Refused, Reply, Failure, EventLine, Resync or Bye.

    Raises:
        ProtocolError: the line is none of them.
        UnsupportedVersion: another protocol version.
    """
    body = _parse(line)
    if "hello" in body:
        hello = body["hello"]
        if not isinstance(hello, dict) or not isinstance(hello.get("versions"), list) \
                or not isinstance(hello.get("info"), dict):
            raise ProtocolError("malformed hello")
        return Hello(tuple(v for v in hello["versions"] if isinstance(v, int)), hello["info"])
    if "refused" in body:
        return Refused(str(body["refused"]))
    if "event" in body:
        if not isinstance(body["event"], str) or not isinstance(body.get("data"), dict):
            raise ProtocolError("malformed event")
        return EventLine(body["event"], body["data"])
    if body.get("resync") is True:
        return Resync()
    if "bye" in body:
        return Bye(str(body["bye"]))
    request_id = body.get("id")
    if isinstance(request_id, bool):
        raise ProtocolError('malformed "id"')
    if "ok" in body and isinstance(request_id, int):
        return Reply(request_id, body["ok"])
    if "error" in body:
        error = body["error"]
        if not isinstance(error, dict) or not isinstance(error.get("type"), str) \
                or not isinstance(error.get("message"), str) or not (request_id is None or isinstance(request_id, int)):
            raise ProtocolError("malformed error")
        return Failure(request_id, error["type"], error["message"])
    raise ProtocolError("a line the console does not know")
