"""Pure parsing of the IMAP responses that imaplib hands back, and argument quoting.

imaplib leaves response parsing to its caller: a FETCH arrives as a list mixing ``bytes`` lines
and ``(line_ending_in_{n}, literal)`` tuples. This module turns those into Python values without
touching a socket (RFC 3501 §9 formal syntax, reduced to what a client reads).
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import re
from collections.abc import Iterable, Sequence
from typing import Union

from rmail.client.model import Address, MessageSummary

#: A parsed IMAP value: atom/string (str), literal (bytes), NIL (None) or a parenthesized list.
Value = Union[str, bytes, None, list["Value"]]

#: Longest response we agree to parse as one unit. Bodies come as literals, so this only
#: bounds pathological header pages; 64 MiB is above any sane page of 200 envelopes.
MAX_RESPONSE = 64 * 1024 * 1024


class ParseError(ValueError):
    """The server sent something that is not valid IMAP response syntax (server's fault)."""


_ATOM_END = b" ()\r\n"
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}(\r\n)?")


def parse_values(data: bytes) -> list[Value]:
    """Parse a sequence of IMAP values (RFC 3501 §9 ``astring``/``nstring``/list/literal).

    Atoms keep a bracketed section intact, so ``BODY[HEADER.FIELDS (A B)]`` is one atom.

    Raises:
        ParseError: on unbalanced parentheses, bad literals or oversized input.
    """
    if len(data) > MAX_RESPONSE:
        raise ParseError("response too large")
    stack: list[list[Value]] = [[]]
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c in b" \r\n":
            i += 1
        elif c == 0x28:  # (
            stack.append([])
            i += 1
        elif c == 0x29:  # )
            if len(stack) == 1:
                raise ParseError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == 0x22:  # "quoted" (RFC 3501 §4.3: only \\ and \" are escaped)
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ParseError("unterminated quoted string")
                ch = data[i]
                if ch == 0x5C and i + 1 < n:
                    out.append(data[i + 1])
                    i += 2
                elif ch == 0x22:
                    i += 1
                    break
                else:
                    out.append(ch)
                    i += 1
            stack[-1].append(out.decode("utf-8", "replace"))
        elif c == 0x7B:  # {n} literal; imaplib drops the CRLF after the brace
            m = _LITERAL.match(data, i)
            if not m:
                raise ParseError("bad literal")
            size = int(m.group(1))
            start = m.end()
            if start + size > n:
                raise ParseError("truncated literal")
            stack[-1].append(data[start : start + size])
            i = start + size
        else:
            j = i
            depth = 0
            while j < n:
                b = data[j]
                if b == 0x5B:  # [
                    depth += 1
                elif b == 0x5D and depth:
                    depth -= 1
                elif depth == 0 and b in _ATOM_END:
                    break
                j += 1
            atom = data[i:j].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
            i = j
    if len(stack) != 1:
        raise ParseError("unbalanced '('")
    return stack[0]


def join_responses(data: Iterable[bytes | tuple[bytes, bytes] | None]) -> list[bytes]:
    """Rebuild whole untagged responses from imaplib's fragment list.

    imaplib appends ``(line, literal)`` for each literal and then the rest of the line as
    ``bytes``; a response without literals is a single ``bytes`` item.
    """
    out: list[bytes] = []
    buf = bytearray()
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            buf += item[0] + b"\r\n" + item[1]
        else:
            buf += item
            out.append(bytes(buf))
            buf.clear()
    if buf:
        out.append(bytes(buf))
    return out


def parse_fetch(response: bytes) -> tuple[int, dict[str, Value]]:
    """Parse ``N (KEY value KEY value ...)`` (imaplib strips ``* `` and ``FETCH``).

    Keys are upper-cased; ``BODY[HEADER.FIELDS (...)]`` is normalised to ``BODY[HEADER.FIELDS]``
    because servers may echo the field list in any case or order.
    """
    values = parse_values(response)
    if len(values) != 2 or not isinstance(values[0], str) or not isinstance(values[1], list):
        raise ParseError("not a FETCH response")
    try:
        seq = int(values[0])
    except ValueError as exc:
        raise ParseError("bad sequence number") from exc
    items = values[1]
    if len(items) % 2:
        raise ParseError("odd FETCH item list")
    result: dict[str, Value] = {}
    for k in range(0, len(items), 2):
        key = items[k]
        if not isinstance(key, str):
            raise ParseError("FETCH item name is not an atom")
        key = key.upper()
        if key.startswith("BODY[HEADER.FIELDS"):
            key = "BODY[HEADER.FIELDS]"
        result[key] = items[k + 1]
    return seq, result


def as_text(value: Value) -> str:
    """An nstring as text (literals decoded as UTF-8, NIL as "")."""
    if value is None or isinstance(value, list):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words; broken encodings degrade to the raw text."""
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def parse_addresses(value: Value) -> tuple[Address, ...]:
    """ENVELOPE address list: ((name adl mailbox host) ...) or NIL (RFC 3501 §7.4.2).

    Group syntax (mailbox NIL / host NIL markers) is flattened away.
    """
    if not isinstance(value, list):
        return ()
    out: list[Address] = []
    for entry in value:
        if not isinstance(entry, list) or len(entry) != 4:
            continue
        name, _adl, mailbox, host = (as_text(v) if v is not None else None for v in entry)
        if host is None:  # group start/end marker (RFC 3501 §7.4.2)
            continue
        addr = f"{mailbox}@{host}" if mailbox else ""
        out.append(Address(decode_words(name or ""), addr))
    return tuple(out)


_MSGID = re.compile(r"<[^<>\s]+>")


def message_ids(text: str) -> tuple[str, ...]:
    """All ``<id>`` tokens of a References/In-Reply-To field, in order (RFC 5322 §3.6.4)."""
    return tuple(_MSGID.findall(text))


def _header_fields(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    current = ""
    for line in raw.decode("utf-8", "replace").splitlines():
        if line[:1] in (" ", "\t") and current:
            fields[current] += " " + line.strip()
        elif ":" in line:
            name, _, val = line.partition(":")
            current = name.strip().lower()
            fields[current] = val.strip()
    return fields


def summary_from_fetch(items: dict[str, Value]) -> MessageSummary | None:
    """Build a MessageSummary from UID FETCH (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[...]).

    Returns None for unsolicited FETCH responses (flag updates) that lack UID or ENVELOPE.
    """
    uid_v, env = items.get("UID"), items.get("ENVELOPE")
    if not isinstance(uid_v, str) or not isinstance(env, list) or len(env) < 10:
        return None
    try:
        uid = int(uid_v)
        size = int(as_text(items.get("RFC822.SIZE")) or 0)
    except ValueError:
        return None
    flags_v = items.get("FLAGS")
    flags = frozenset(f for f in flags_v if isinstance(f, str)) if isinstance(flags_v, list) else frozenset()
    date = as_text(env[0])
    extra = items.get("BODY[HEADER.FIELDS]")
    if isinstance(extra, str):
        extra = extra.encode()
    fields = _header_fields(extra) if isinstance(extra, bytes) else {}
    in_reply_to = message_ids(as_text(env[8]))
    refs = message_ids(fields.get("references", ""))
    if not in_reply_to:
        in_reply_to = message_ids(fields.get("in-reply-to", ""))
    try:
        parsed = email.utils.parsedate_to_datetime(date) if date else None
        timestamp = parsed.timestamp() if parsed else 0.0
    except (TypeError, ValueError, IndexError, OverflowError):
        timestamp = 0.0
    return MessageSummary(
        uid=uid,
        flags=flags,
        size=size,
        date=date,
        subject=decode_words(as_text(env[1])),
        sender=parse_addresses(env[2]),
        to=parse_addresses(env[5]),
        cc=parse_addresses(env[6]),
        message_id=(message_ids(as_text(env[9])) or ("",))[0],
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=refs,
        timestamp=timestamp,
    )


def parse_list(response: bytes) -> tuple[frozenset[str], str, str]:
    """``(\\Flags) "/" name`` from LIST (RFC 3501 §7.2.2) → (flags, delimiter, decoded name)."""
    values = parse_values(response)
    if len(values) != 3 or not isinstance(values[0], list):
        raise ParseError("not a LIST response")
    flags = frozenset(f for f in values[0] if isinstance(f, str))
    delim = as_text(values[1])
    name = values[2]
    raw_name = name.decode("utf-8", "replace") if isinstance(name, bytes) else as_text(name)
    return flags, delim, decode_mutf7(raw_name)


def parse_status(response: bytes) -> dict[str, int]:
    """``name (MESSAGES n UNSEEN n)`` from STATUS (RFC 3501 §7.2.4)."""
    values = parse_values(response)
    if len(values) != 2 or not isinstance(values[1], list):
        raise ParseError("not a STATUS response")
    items = values[1]
    out: dict[str, int] = {}
    for k in range(0, len(items) - 1, 2):
        try:
            out[as_text(items[k]).upper()] = int(as_text(items[k + 1]))
        except ValueError:
            continue
    return out


def parse_uids(data: Sequence[bytes | None]) -> list[int]:
    """UID SEARCH result lines → ascending UIDs (RFC 3501 §7.2.5)."""
    uids: set[int] = set()
    for line in data:
        if not line:
            continue
        for tok in line.split():
            if tok.isdigit():
                uids.add(int(tok))
    return sorted(uids)


def uid_set(uids: Iterable[int]) -> str:
    """Compact sequence-set such as ``1:5,9`` (RFC 3501 §9 ``sequence-set``)."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for u in ordered[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3); CR/LF cannot be quoted and are refused."""
    if "\r" in text or "\n" in text:
        raise ValueError("CR/LF in quoted string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_arg(name: str) -> str:
    """A mailbox name ready to send: modified UTF-7 (RFC 3501 §5.1.3), then quoted."""
    return quote(encode_mutf7(name))


def encode_mutf7(text: str) -> str:
    """Modified UTF-7 used for mailbox names (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Inverse of :func:`encode_mutf7`; malformed shifts are left as they are."""
    if "&" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return "&"
        b64 = body.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        try:
            return base64.b64decode(b64, validate=True).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return m.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", repl, text)
