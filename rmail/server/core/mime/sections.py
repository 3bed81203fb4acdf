"""FETCH BODY[section] byte cutting (RFC 3501 §6.4.5).

Part numbers are resolved as if the top-level message were the content of an
outer message/rfc822 part: ``1`` names the message body (its only part when
not multipart), and ``N`` below a message/rfc822 part names a part of the
encapsulated message's body.
"""

from __future__ import annotations

from .headers import parse_fields, split_header
from .tree import Part, parse_tree

__all__ = ["HeaderLines", "body_section", "header_lines", "header_section", "pick_fields", "resolve_part",
           "text_section"]

_SPECIFIERS = frozenset({"HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})


def header_section(data: bytes) -> bytes:
    """RFC822.HEADER / BODY[HEADER]: the header including the blank line."""
    _, body_start = split_header(data, 0, len(data))
    return data[:body_start]


def text_section(data: bytes) -> bytes:
    """RFC822.TEXT / BODY[TEXT]: everything after the blank line."""
    _, body_start = split_header(data, 0, len(data))
    return data[body_start:]


def _pick(node: Part, number: int) -> Part | None:
    if node.multipart:
        return node.children[number - 1] if 0 < number <= len(node.children) else None
    return node if number == 1 else None


def resolve_part(root: Part, part: tuple[int, ...]) -> Part | None:
    """The :class:`Part` named by a section part number, or None when it does not exist."""
    if not part:
        return None
    node = _pick(root, part[0])
    for number in part[1:]:
        if node is None:
            return None
        if node.message:  # numbers below message/rfc822 address its message's body
            node = _pick(node.children[0], number)
        elif node.multipart:
            node = _pick(node, number)
        else:
            return None
    return node


#: A header's fields as (lower-case name, the field's lines ending with a line end), and the
#: blank line that ends the header: what HEADER.FIELDS and HEADER.FIELDS.NOT pick from.
HeaderLines = tuple[tuple[tuple[str, bytes], ...], bytes]


def _header_lines(data: bytes, start: int, header_end: int, body_start: int) -> HeaderLines:
    eol = data[header_end:body_start] or b"\r\n"
    fields = []
    for f in parse_fields(data, start, header_end):
        line = data[f.start : f.end]
        fields.append((f.key, line if line.endswith(b"\n") else line + eol))
    return tuple(fields), eol


def header_lines(data: bytes) -> HeaderLines:
    """The top-level header's fields, for `pick_fields` (parsed once, picked from many times)."""
    header_end, body_start = split_header(data, 0, len(data))
    return _header_lines(data, 0, header_end, body_start)


def pick_fields(lines: HeaderLines, names: tuple[str, ...], negate: bool) -> bytes:
    """BODY[HEADER.FIELDS (names)] (or .NOT): the original lines, folding included, in their
    order, then the blank line."""
    wanted = {n.lower() for n in names}
    fields, eol = lines
    return b"".join([line for key, line in fields if (key in wanted) != negate] + [eol])


def _fields_section(
    data: bytes, start: int, header_end: int, body_start: int, names: tuple[str, ...], negate: bool
) -> bytes:
    return pick_fields(_header_lines(data, start, header_end, body_start), names, negate)


def body_section(
    data: bytes,
    part: tuple[int, ...],
    specifier: str | None,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """Exact bytes of ``BODY[part.specifier]``; None when the part or section does not exist.

    ``HEADER``, ``TEXT`` and ``HEADER.FIELDS[.NOT]`` apply to the top-level
    message (``part == ()``) or to a message/rfc822 part; ``MIME`` needs a part
    number. HEADER.FIELDS keeps the original lines (folding included) and ends
    with the blank line.
    """
    spec = specifier.upper() if specifier else None
    if spec is not None and spec not in _SPECIFIERS:
        return None
    if not part:
        if spec is None:
            return data
        if spec == "MIME":
            return None
        if spec == "HEADER":
            return header_section(data)
        if spec == "TEXT":
            return text_section(data)
        header_end, body_start = split_header(data, 0, len(data))
        return _fields_section(
            data, 0, header_end, body_start, fields, spec == "HEADER.FIELDS.NOT"
        )
    try:
        node = resolve_part(parse_tree(data), part)
    except RecursionError:  # defensive: depth is bounded by MAX_DEPTH
        return None
    if node is None:
        return None
    if spec is None:
        return data[node.body_start : node.end]
    if spec == "MIME":
        return data[node.start : node.body_start]
    if not node.message:
        return None
    msg = node.children[0]
    if spec == "HEADER":
        return data[msg.start : msg.body_start]
    if spec == "TEXT":
        return data[msg.body_start : msg.end]
    return _fields_section(
        data, msg.start, msg.header_end, msg.body_start, fields, spec == "HEADER.FIELDS.NOT"
    )
