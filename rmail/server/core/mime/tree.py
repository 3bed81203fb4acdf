"""The byte-offset MIME tree (RFC 2045, RFC 2046 §5.1.1, RFC 3501 §6.4.5 part numbering).

Each :class:`Part` records where its MIME header and body lie in the raw
message, so FETCH can return exact bytes. A message/rfc822 part owns one
child: the encapsulated message, itself a :class:`Part` whose header is the
message header. The top-level message is such a part too.

Hostile input is bounded: nesting deeper than :data:`MAX_DEPTH` or more than
:data:`MAX_PARTS` parts are not split further (the rest stays opaque body,
as Dovecot does); nothing here raises on malformed input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .headers import (
    ContentType,
    Field,
    parse_content_type,
    parse_fields,
    split_header,
    unfold,
)

__all__ = ["Part", "parse_tree", "MAX_DEPTH", "MAX_PARTS"]

#: Nesting levels (multipart or message/rfc822) before parts are treated as opaque.
MAX_DEPTH = 32
#: Parts per message before further boundaries are ignored.
MAX_PARTS = 1000


@dataclass(slots=True)
class Part:
    """One MIME entity: ``data[start:body_start]`` is its header (with blank line), ``data[body_start:end]`` its body."""

    start: int
    header_end: int  # end of the header fields, before the blank line
    body_start: int
    end: int
    fields: list[Field]
    ctype: ContentType
    #: Lowercased (type, subtype), for decisions.
    kind: tuple[str, str]
    #: Subparts of a multipart; the encapsulated message of a message/rfc822 (one entry).
    children: list[Part] = field(default_factory=list)
    #: True when the children are multipart subparts, False for message/rfc822.
    multipart: bool = False
    message: bool = False
    #: Raw value of the first field of each name, built on first lookup:
    #: FETCH and parse_message ask for a dozen fields per part.
    _index: dict[str, bytes] | None = field(default=None, repr=False, compare=False)

    def _first_raw(self) -> dict[str, bytes]:
        index = self._index
        if index is None:
            index = self._index = _first_index(self.fields)
        return index

    def header(self, key: str) -> bytes | None:
        """Unfolded value of the first field named *key* (lowercase), or None."""
        value = self._first_raw().get(key)
        return None if value is None else unfold(value)

    def first_values(self, keys: tuple[str, ...]) -> dict[str, bytes]:
        """Unfolded value of the first field of each of *keys* that is present."""
        index = self._first_raw()
        return {k: unfold(index[k]) for k in keys if k in index}


def _first_index(fields: list[Field]) -> dict[str, bytes]:
    # Walking backwards, earlier fields overwrite later ones.
    return {key: value for key, value, _, _, _ in reversed(fields)}


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = 0


#: Parsed Content-Type values by raw value: leaf types such as
#: "text/plain; charset=utf-8" repeat across messages. Multipart values are
#: not kept: their boundaries are unique per message.
_CT_CACHE: dict[tuple[bytes | None, bool], tuple[ContentType, tuple[str, str]]] = {}
_CT_CACHE_SIZE = 512
_CT_CACHE_VALUE = 200  # longer values are not cached


def _content_type(raw: bytes | None, digest: bool) -> tuple[ContentType, tuple[str, str]]:
    key = (raw, digest)
    hit = _CT_CACHE.get(key)
    if hit is not None:
        return hit
    ct = parse_content_type(None if raw is None else unfold(raw), digest)
    result = (ct, ct.lower)
    if (raw is None or len(raw) <= _CT_CACHE_VALUE) and result[1][0] != "multipart":
        if len(_CT_CACHE) >= _CT_CACHE_SIZE:
            _CT_CACHE.clear()  # labels come from messages: bound the cache
        _CT_CACHE[key] = result
    return result


def parse_tree(data: bytes) -> Part:
    """Parse the whole message into its part tree; never raises."""
    return _entity(data, 0, len(data), 0, False, _Budget())


def _entity(data: bytes, start: int, end: int, depth: int, digest: bool, budget: _Budget) -> Part:
    budget.parts += 1
    header_end, body_start = split_header(data, start, end)
    fields = parse_fields(data, start, header_end)
    index = _first_index(fields)
    ct, kind = _content_type(index.get("content-type"), digest)
    part = Part(start, header_end, body_start, end, fields, ct, kind, _index=index)
    if depth >= MAX_DEPTH or budget.parts >= MAX_PARTS:
        return part
    if kind[0] == "multipart":
        boundary = None
        for k, v in ct.params:
            if k.lower() == b"boundary":
                boundary = v
                break
        if boundary:
            part.multipart = True
            _split_multipart(data, part, b"--" + boundary, depth, kind[1] == "digest", budget)
    elif kind == ("message", "rfc822"):
        # Dovecot only descends into identity-encoded messages: a base64
        # message/rfc822 is opaque until decoded (RFC 2046 §5.2.1 forbids it).
        cte = (part.header("content-transfer-encoding") or b"7bit").lower()
        if cte in (b"7bit", b"8bit", b"binary"):
            part.message = True
            part.children.append(_entity(data, body_start, end, depth + 1, False, budget))
    return part


def _split_multipart(
    data: bytes, part: Part, delim: bytes, depth: int, digest: bool, budget: _Budget
) -> None:
    """Find the delimiter lines of *part* and parse each body part between them (RFC 2046 §5.1.1).

    A delimiter line starts with ``--boundary`` at the beginning of a line;
    like Dovecot we accept any trailing text. The line break before a
    delimiter belongs to the delimiter, not to the preceding part. Text
    before the first delimiter (preamble) and after the close delimiter
    (epilogue) belongs to no part.
    """
    bs, end = part.body_start, part.end
    pos = bs
    part_start = -1  # start of the body part being collected, -1 in the preamble
    n = len(delim)
    while True:
        i = data.find(delim, pos, end)
        if i < 0:
            break
        if i != bs and data[i - 1] != 0x0A:  # not at the start of a line
            pos = i + 1
            continue
        nl = data.find(b"\n", i + n, end)
        line_end = end if nl < 0 else nl + 1
        closing = data.startswith(b"--", i + n, end)
        if part_start >= 0:
            stop = i
            if stop > part_start and data[stop - 1] == 0x0A:
                stop -= 1
                if stop > part_start and data[stop - 1] == 0x0D:
                    stop -= 1
            part.children.append(_entity(data, part_start, stop, depth + 1, digest, budget))
            if budget.parts >= MAX_PARTS and not closing:
                # Out of budget: like Dovecot, the rest of this multipart
                # becomes body of its last part (when that part is a leaf).
                last = part.children[-1]
                if not last.children:
                    last.end = end
                return
        if closing:
            return
        part_start = line_end
        pos = line_end
    if part_start >= 0:  # no close delimiter: the last part runs to the end
        part.children.append(_entity(data, part_start, end, depth + 1, digest, budget))
