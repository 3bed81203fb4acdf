"""Byte-level framing of IMAP client commands (RFC 3501 §2.2, §4.3; RFC 7888).

The framer turns the client's byte stream into complete command frames. It never reads a
socket: the I/O shell feeds bytes with `receive_data` and pulls events with `next_event`:

- `NEED_DATA` — nothing complete yet; feed more bytes.
- `NeedContinuation(size)` — a synchronizing literal `{n}` was announced and accepted; the
  shell must send a "+" continuation before the client sends the literal bytes.
- `Frame(parts)` — one complete command: line, literal, line, ..., line (CRLF and literal
  markers removed).
- `RawLine(line)` — one line read verbatim after `expect_line()` (IDLE's DONE, SASL replies).

A refused command raises `WireError`, the only exception that leaves this module. When it
is raised the framer has already resynchronised: whatever the client still sends for that
command (the rest of an over-long line, a non-synchronizing literal it already pushed, further
literals of the same command) is consumed and dropped without being buffered, so the caller
just replies with the error and keeps calling `next_event`.

Buffered bytes are never rescanned: the search for the next LF resumes where the last one
stopped (h11's `_receivebuffer` habit), so a slow-dripping client costs linear time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_MAX_LINE",
    "Framer",
    "Frame",
    "NEED_DATA",
    "NeedContinuation",
    "NeedData",
    "RawLine",
    "WireError",
]

#: 64 KiB per line, literals excluded. RFC 7162 §4 asks clients to keep lines under 8192
#: octets and servers to accept at least that; 64 KiB leaves room for long UID sets.
DEFAULT_MAX_LINE: Final = 64 * 1024
#: Literal cap: equal to the message-size limit (25 MiB by default, as for SMTP SIZE).
DEFAULT_MAX_LITERAL: Final = 25 * 1024 * 1024
#: Slack over one literal for the rest of a command (other lines, small literals).
COMMAND_SLACK: Final = 256 * 1024
#: Tags longer than this are not echoed back in error replies (Stalwart caps them too).
MAX_TAG: Final = 128
#: "{" + at most 10 digits + "+" + "}" — longer markers cannot be a literal we accept.
_MAX_MARKER: Final = 13


class ReplyError(Exception):
    """A refused command that knows its reply; each layer raises its own subclass.

    Attributes:
        tag: the command's tag when it could be read, else None (reply untagged).
        status: "BAD" for malformed input, "NO" for a well-formed request that is refused.
        code: an RFC 5530 response code without brackets, or None.
        text: human-readable reason.
    """

    def __init__(self, text: str, *, tag: str | None = None, status: str = "BAD",
                 code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.status = status
        self.code = code


class WireError(ReplyError):
    """A command refused by the framer (malformed, or over a limit: status "NO"); the framer
    has resynchronised already."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete command: line pieces interleaved with literals (always odd length)."""

    parts: tuple[bytes, ...]

    @property
    def lines(self) -> tuple[bytes, ...]:
        return self.parts[0::2]

    @property
    def literals(self) -> tuple[bytes, ...]:
        return self.parts[1::2]


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was accepted: send "+ ..." before the client continues."""

    size: int


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line read verbatim after `Framer.expect_line()`, without CRLF."""

    line: bytes


class NeedData:
    """Sentinel type: more bytes are needed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

Event = Frame | NeedContinuation | RawLine | NeedData

_TAG_BYTES: Final = frozenset(
    b for b in range(0x21, 0x7F) if chr(b) not in '(){%*"\\+'
)


def _tag_of(line: bytes | bytearray) -> str | None:
    """The tag at the start of a command line, when it is a valid RFC 3501 tag."""
    end = line.find(b" ", 0, MAX_TAG + 1)
    if end <= 0:
        return None
    raw = bytes(line[:end])
    if all(b in _TAG_BYTES for b in raw):
        return raw.decode("ascii")
    return None


def _literal_marker(line: bytes | bytearray) -> tuple[int, bool, int] | None:
    """Parse a trailing literal marker: (size, synchronizing, marker start) or None.

    "{" is an atom-special and quoted strings cannot hold CR/LF (RFC 3501 §4.3, §9), so a line
    ending in "{digits}" or "{digits+}" (RFC 7888 §3) announces a literal. Any other "}" tail
    is left to the parser ("}" may end an atom).

    Raises:
        ValueError: the marker names a number too large for any literal.
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{", max(0, len(line) - _MAX_MARKER))
    if start < 0:
        return None
    body = bytes(line[start + 1:-1])
    sync = not body.endswith(b"+")
    if not sync:
        body = body[:-1]
    if not body or not body.isdigit():
        return None
    if len(body) > 10:
        raise ValueError("literal too large")
    return int(body), sync, start


class Framer:
    """IMAP command framer (sans I/O). See the module docstring for the event protocol.

    Args:
        max_line: cap on one line without its literals.
        max_literal: cap on one literal; refused before any continuation is sent.
        max_command: cap on a whole command, lines and literals together.
    """

    __slots__ = (
        "_buf", "_scan", "_parts", "_size", "_tag", "_literal", "_remaining",
        "_in_literal", "_discarding", "_discard_line", "_tail", "_raw_line",
        "_max_line", "_max_literal", "_max_command",
    )

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE,
                 max_literal: int = DEFAULT_MAX_LITERAL,
                 max_command: int | None = None) -> None:
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_command = (max_command if max_command is not None
                             else max_literal + COMMAND_SLACK)
        self._buf = bytearray()
        self._scan = 0            # bytes of _buf already searched for LF
        self._parts: list[bytes] = []
        self._size = 0            # bytes of the current command so far
        self._tag: str | None = None
        self._literal = bytearray()
        self._remaining = 0
        self._in_literal = False
        self._discarding = False  # current command already refused: drop its bytes
        self._discard_line = False  # inside an over-long line: drop until LF
        self._tail = b""          # last bytes of a dropped line, to spot a literal marker
        self._raw_line = False

    def set_limits(self, *, max_line: int, max_literal: int, max_command: int | None = None) -> None:
        """Change the caps for the commands still to come (the pre-login caps are smaller).

        Takes effect from the next line the framer looks at: call it between commands, before
        `next_event` reaches bytes that were buffered behind the command that changed the
        session's state (a LOGIN followed by a pipelined APPEND).
        """
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_command = max_command if max_command is not None else max_literal + COMMAND_SLACK

    # -- feeding -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append bytes received from the client."""
        self._buf += data

    def expect_line(self) -> None:
        """Read the next line verbatim (IDLE "DONE", AUTHENTICATE responses)."""
        self._raw_line = True

    def discard_buffered(self) -> int:
        """Drop every buffered byte and partial command; return how many bytes were dropped.

        Used after STARTTLS: anything the client pipelined in cleartext must not be executed
        inside the TLS session (RFC 3501 §6.2.1, the STARTTLS command injection attack).
        """
        dropped = len(self._buf)
        self._buf.clear()
        self._reset_command()
        self._discard_line = False
        self._raw_line = False
        return dropped

    def take_buffered(self) -> bytes:
        """Remove and return the bytes received after the last complete command.

        Used when COMPRESS takes effect (RFC 4978 §3): whatever the client sent after the
        command's CRLF is compressed, so it goes to the inflater rather than to the framer.
        Only called between commands, when no command is partly framed.
        """
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return data

    @property
    def buffered(self) -> int:
        """Bytes held for the current command and not yet returned (for memory accounting)."""
        return len(self._buf) + len(self._literal) + sum(len(p) for p in self._parts)

    @property
    def unprocessed(self) -> int:
        """Received bytes not yet framed (the I/O shell pauses reading when this grows)."""
        return len(self._buf)

    @property
    def draining(self) -> bool:
        """True while the bytes of a refused LITERAL+ literal are still being dropped."""
        return self._in_literal and self._discarding

    @property
    def in_command(self) -> bool:
        """True while part of a command has been received (a disconnect now loses it)."""
        return bool(self._parts or self._in_literal or self._buf)

    # -- events --------------------------------------------------------------------------

    def next_event(self) -> Event:
        """Return the next event; see the module docstring.

        Raises:
            WireError: the current command was refused (the framer stays usable).
        """
        while True:
            if self._in_literal:
                if not self._take_literal():
                    return NEED_DATA
                continue
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(self._buf)
                if self._discard_line:
                    self._drop_partial_line()
                elif len(self._buf) > self._max_line + 2:
                    report = not self._discarding
                    tag = self._tag_for_error(self._buf)
                    self._start_line_discard()
                    if report:
                        raise WireError("line too long", tag=tag)
                return NEED_DATA
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            self._scan = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._discard_line:
                self._discard_line = False
                tail = (self._tail + line)[-_MAX_MARKER:]
                self._tail = b""
                self._end_of_line(tail)
                continue
            if len(line) > self._max_line:
                # The LF came in the same chunk as the bytes that broke the cap.
                report = not self._discarding
                tag = self._tag_for_error(line)
                self._raw_line = False
                self._parts.clear()
                self._discarding = True
                self._end_of_line(line[-_MAX_MARKER:])
                if report:
                    raise WireError("line too long", tag=tag)
                continue
            if self._raw_line and not self._parts and not self._discarding:
                self._raw_line = False
                return RawLine(line)
            event = self._end_of_line(line)
            if event is not None:
                return event

    # -- internals -----------------------------------------------------------------------

    def _tag_for_error(self, line: bytes | bytearray | None = None) -> str | None:
        if self._tag is not None or self._parts:
            return self._tag
        return _tag_of(self._buf if line is None else line)

    def _start_line_discard(self) -> None:
        """Begin dropping an over-long line; its tail is kept to find a literal marker."""
        self._tag = self._tag_for_error()
        self._discarding = True
        self._discard_line = True
        self._raw_line = False
        self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        self._tail = (self._tail + bytes(self._buf[-_MAX_MARKER:]))[-_MAX_MARKER:]
        self._buf.clear()
        self._scan = 0

    def _end_of_line(self, line: bytes) -> Event | None:
        """Handle a complete line of the current command; return an event or None.

        While `_discarding`, the command was refused already: only the literal marker matters,
        to know how many bytes still belong to it.
        """
        if not self._parts and not self._discarding:
            self._tag = _tag_of(line)
        try:
            marker = _literal_marker(line)
        except ValueError as exc:
            return self._refuse_rest(str(exc))
        if marker is None:
            self._size += len(line)
            if self._discarding:
                self._reset_command()
                return None
            if self._size > self._max_command:
                return self._refuse_rest("command too large", status="NO", code="TOOBIG")
            self._parts.append(line)
            frame = Frame(tuple(self._parts))
            self._reset_command()
            return frame
        size, sync, start = marker
        if self._discarding:
            if sync:
                # A refused command ends at a synchronizing literal: the client waits for a
                # "+" that never comes and reads the error sent already.
                self._reset_command()
                return None
        else:
            self._size += start
            if size > self._max_literal:
                return self._refuse_literal(size, sync, "literal too large")
            if self._size + size > self._max_command:
                return self._refuse_literal(size, sync, "command too large")
            self._parts.append(line[:start])
            self._size += size
        self._in_literal = True
        self._remaining = size
        if sync:
            return NeedContinuation(size)
        return None

    def _refuse_literal(self, size: int, sync: bool, text: str) -> None:
        """Refuse an announced literal before any continuation is sent (RFC 7888 §4).

        The request is well-formed but over a limit, hence NO [TOOBIG] (RFC 4469 §4,
        RFC 7889 §3). A LITERAL+ client has sent the bytes already: they are counted off and
        dropped, never buffered.
        """
        tag = self._tag
        self._reset_command()
        if not sync:
            self._discarding = True
            self._in_literal = True
            self._remaining = size
        raise WireError(text, tag=tag, status="NO", code="TOOBIG")

    def _refuse_rest(self, text: str, *, status: str = "BAD",
                     code: str | None = None) -> None:
        """Refuse a command whose last line has just ended (nothing more follows it)."""
        tag = self._tag
        report = not self._discarding
        self._reset_command()
        if report:
            raise WireError(text, tag=tag, status=status, code=code)
        return None

    def _take_literal(self) -> bool:
        """Move literal bytes out of the buffer; True once the literal is complete."""
        take = min(self._remaining, len(self._buf))
        if take:
            if not self._discarding:
                self._literal += memoryview(self._buf)[:take]
            del self._buf[:take]
            self._remaining -= take
        if self._remaining:
            return False
        self._in_literal = False
        if not self._discarding:
            self._parts.append(bytes(self._literal))
        self._literal.clear()
        self._scan = 0
        return True

    def _reset_command(self) -> None:
        self._parts.clear()
        self._literal.clear()
        self._size = 0
        self._tag = None
        self._in_literal = False
        self._remaining = 0
        self._discarding = False
