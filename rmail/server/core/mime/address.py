"""Address lists (RFC 5322 §3.4) parsed tolerantly into IMAP address tuples (RFC 3501 §7.4.2).

Works on text decoded with ``surrogateescape`` so the exact header bytes can
be restored for ENVELOPE. Follows Dovecot where RFC 5322 is silent: a comment
stands in for a missing display name, a missing domain becomes "".
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .text import decode_words

__all__ = ["Addr", "parse_addresses", "display"]

#: Upper bound on addresses taken from one header; the rest is ignored.
MAX_ADDRESSES = 1000


class Addr(NamedTuple):
    """One ENVELOPE address. Group start: only ``mailbox`` (the group name); group end: all None.

    A NamedTuple (not a frozen dataclass) because it is built per address on
    the delivery hot path and tuple construction is much cheaper.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


GROUP_END = Addr(None, None, None, None)


# One lexical token per match; comments are handled by hand since they nest.
_TOKEN_RE = re.compile(
    r"""[ \t\r\n]+|"((?:[^"\\]|\\.)*)"?|(\()|(\[[^\]]*\]?)|([<>@,;:\\\]])|([^ \t\r\n<>@,;:\\"\[\]()]+)""",
    re.S,
)
_QPAIR_RE = re.compile(r"\\(.)", re.S)


def _comment(s: str, i: int) -> tuple[str, int]:
    """Comment text starting after the "(" at ``s[i-1]``, and the index after it (RFC 5322 §3.2.2)."""
    depth, j, n = 1, i, len(s)
    buf: list[str] = []
    while j < n:
        c = s[j]
        if c == "\\" and j + 1 < n:
            j += 1
            c = s[j]
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if not depth:
                break
        buf.append(c)
        j += 1
    return "".join(buf).strip(), j + 1


def _tokens(s: str) -> list[tuple[str, str]]:
    """Lex into (kind, text): q=quoted, c=comment, a=atom/literal, s=special."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(s)
    match = _TOKEN_RE.match
    while pos < n:
        m = match(s, pos)
        if m is None:  # only a stray ")" gets here
            pos += 1
            continue
        pos = m.end()
        kind = m.lastindex
        if kind is None:  # whitespace
            continue
        if kind == 1:
            text = m.group(1)
            out.append(("q", _QPAIR_RE.sub(r"\1", text) if "\\" in text else text))
        elif kind == 2:
            text, pos = _comment(s, pos)
            out.append(("c", text))
        elif kind == 3:
            out.append(("a", m.group(3)))
        elif kind == 4:
            out.append(("s", m.group(4)))
        else:
            out.append(("a", m.group(5)))
    return out


def _finish(toks: list[tuple[str, str]]) -> Addr | None:
    words: list[str] = []
    adl: str | None = None
    comments: list[str] = []
    angle: list[tuple[str, str]] | None = None
    i, n = 0, len(toks)
    while i < n:
        kind, text = toks[i]
        if kind == "s" and text == "<" and angle is None:
            angle = []
            i += 1
            while i < n and toks[i] != ("s", ">"):
                if toks[i][0] != "c":
                    angle.append(toks[i])
                i += 1
        elif kind == "c":
            comments.append(text)
        elif angle is None:
            words.append(text)
        i += 1
    if angle is not None:
        name = " ".join(t for t in words if t not in "@.") or None
        if angle and angle[0] == ("s", "@"):
            stop = next((k for k, t in enumerate(angle) if t == ("s", ":")), -1)
            if stop > 0:
                adl = "".join(t[1] for t in angle[:stop])
                angle = angle[stop + 1 :]
        spec = [t[1] for t in angle]
    else:
        name = None
        spec = words
    if not spec and name is None:
        return None
    if "@" in spec:
        at = len(spec) - 1 - spec[::-1].index("@")
        mailbox, host = "".join(spec[:at]), "".join(spec[at + 1 :])
    else:
        mailbox, host = " ".join(spec) if angle is None else "".join(spec), ""
    if name is None and comments and comments[-1]:
        name = comments[-1]
    return Addr(name, adl, mailbox, host)


# Fast path for the shapes nearly all mail uses: comma-separated
# ``local@domain`` or ``Phrase <local@domain>`` of plain ASCII atoms,
# optionally as one ``group: ...;``. Anything else (quotes, comments,
# routes, non-ASCII, odd spacing inside words) takes the full lexer. Each
# quantified run is followed by a character it cannot contain, so failure
# costs linear time.
_ATOM = r"[!#-'*+\-./0-9=?A-Z^-~]+"
_WSP = r"[ \t\r\n]*"
_SIMPLE_RE = re.compile(
    rf"([!#-'*+\-./0-9=?A-Z^-~ \t\r\n]*)<{_WSP}({_ATOM}){_WSP}@{_WSP}({_ATOM}){_WSP}>{_WSP}"
    rf"|{_WSP}({_ATOM}){_WSP}@{_WSP}({_ATOM}){_WSP}"
)
_GROUP_RE = re.compile(r"([!#-'*+\-./0-9=?A-Z^-~ \t\r\n]*):([^:;]*);[ \t\r\n]*")
_new_addr = tuple.__new__


def _simple_list(value: str, out: list[Addr]) -> bool:
    """Append the addresses of a simple comma-separated list to *out*; False when not simple."""
    fullmatch = _SIMPLE_RE.fullmatch
    for piece in value.split(","):
        m = fullmatch(piece)
        if m is None:
            if piece.strip(" \t\r\n"):
                return False
            continue  # empty list element, as between ",,"
        if len(out) >= MAX_ADDRESSES:
            continue  # keep validating: a non-simple piece means the lexer decides
        phrase, local, domain, bare_local, bare_domain = m.groups()
        if bare_local is not None:
            out.append(_new_addr(Addr, (None, None, bare_local, bare_domain)))
        else:
            # A lone "." in a phrase is dropped, as _finish does.
            name = " ".join([w for w in phrase.split() if w != "."]) or None
            out.append(_new_addr(Addr, (name, None, local, domain)))
    return True


def _parse_simple(value: str) -> list[Addr] | None:
    """Addresses of a value in the fast-path shapes, or None to use the lexer."""
    out: list[Addr] = []
    if ":" not in value and ";" not in value:
        return out if _simple_list(value, out) else None
    m = _GROUP_RE.fullmatch(value)
    if m is None:
        return None
    out.append(_new_addr(Addr, (None, None, " ".join(m.group(1).split()), None)))
    if not _simple_list(m.group(2), out):
        return None
    out.append(GROUP_END)
    return out


def parse_addresses(value: str) -> list[Addr]:
    """Parse an address-list header value, groups included; never raises."""
    if value.isascii():
        simple = _parse_simple(value)
        if simple is not None:
            return simple
    out: list[Addr] = []
    cur: list[tuple[str, str]] = []
    in_group = False
    in_angle = False

    def flush() -> None:
        if cur:
            addr = _finish(cur)
            if addr is not None and len(out) < MAX_ADDRESSES:
                out.append(addr)
            cur.clear()

    for tok in _tokens(value):
        if tok[0] == "s":
            ch = tok[1]
            if ch == "<":
                in_angle = True
            elif ch == ">":
                in_angle = False
            elif not in_angle and ch == ",":
                flush()
                continue
            elif not in_angle and ch == ";":
                flush()
                if in_group:
                    out.append(GROUP_END)
                    in_group = False
                continue
            elif (
                not in_angle
                and ch == ":"
                and not in_group
                and ("s", "@") not in cur
                and ("s", "<") not in cur
            ):
                name = " ".join(t[1] for t in cur if t[0] != "c")
                cur.clear()
                out.append(Addr(None, None, name, None))
                in_group = True
                continue
        cur.append(tok)
    flush()
    if in_group:
        out.append(GROUP_END)
    return out


def display(addrs: list[Addr]) -> str:
    """Human form, ``Name <mailbox@host>`` comma-joined, names RFC 2047-decoded; groups flattened."""
    parts: list[str] = []
    for a in addrs:
        if a.host is None:  # group markers
            continue
        spec = f"{a.mailbox}@{a.host}" if a.host else (a.mailbox or "")
        if not spec.isascii():  # restore the header's bytes, then read them as UTF-8
            spec = spec.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        name = a.name
        if name:
            if not name.isascii():
                name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            parts.append(f"{decode_words(name)} <{spec}>")
        else:
            parts.append(spec)
    return ", ".join(parts)
