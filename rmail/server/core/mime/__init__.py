"""MIME parsing for rmail: byte-exact part tree, IMAP ENVELOPE/BODYSTRUCTURE, decoded views.

Invariants:

- Pure functions over ``bytes``: no I/O, no protocol imports, stdlib only.
- Malformed input never raises; it degrades the way Dovecot does (no blank
  line: all header; no boundary: one opaque part; unclosed multipart: the
  last part runs to the end).
- Offsets are into the raw message, so ``body_section`` returns the exact
  original bytes (RFC 3501 §6.4.5). CRLF and bare LF are both accepted.
- Work is bounded: nesting depth :data:`MAX_DEPTH`, :data:`MAX_PARTS` parts,
  :data:`MAX_SEARCH_TEXT` characters of search text.

Modules: ``tree`` (structure), ``headers`` (fields and parameters), ``text``
(charsets, RFC 2047, transfer encodings, HTML), ``address`` (RFC 5322
addresses), ``imapstruct`` (ENVELOPE/BODYSTRUCTURE), ``sections``
(BODY[section]), ``parse`` (ParsedMessage), ``view`` (MessageView), ``subject`` (RFC 5256
base subject), ``envelope`` (a stored ENVELOPE's addresses read back). IMAP strings are written by
``core.imapstring``, shared with the IMAP adapter.
"""

from __future__ import annotations

from .parse import MAX_SEARCH_TEXT, ParsedMessage, parse_message
from .sections import HeaderLines, body_section, header_lines, header_section, pick_fields, text_section
from .tree import MAX_DEPTH, MAX_PARTS
from .view import Attachment, MessageView, message_view, part_content

__all__ = [
    "ParsedMessage",
    "parse_message",
    "body_section",
    "header_section",
    "text_section",
    "HeaderLines",
    "header_lines",
    "pick_fields",
    "Attachment",
    "MessageView",
    "message_view",
    "part_content",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MAX_SEARCH_TEXT",
]
